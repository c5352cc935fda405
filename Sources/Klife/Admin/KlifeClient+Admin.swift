import KlifeProtocol

/// Topic administration and metadata.
extension KlifeClient {
    /// Creates a topic and waits until the broker has it.
    /// - Parameters:
    ///   - name: Topic name.
    ///   - partitions: Number of partitions.
    ///   - replicationFactor: Replicas per partition; -1 uses the broker default.
    ///   - configs: Topic configuration entries such as `retention.ms`.
    /// - Throws: ``KlifeError`` — `brokerError` with `TOPIC_ALREADY_EXISTS`, `INVALID_PARTITIONS`, …
    public func createTopic(_ name: String, partitions: Int32 = 1, replicationFactor: Int16 = -1,
                            configs: [String: String] = [:]) async throws(KlifeError) {
        guard !name.isEmpty else { throw .invalidArgument("topic name is empty") }
        guard partitions >= 1 else { throw .invalidArgument("partitions must be at least 1, got \(partitions)") }
        let topic = CreateTopicsRequest.Topic(name: name, numPartitions: partitions, replicationFactor: replicationFactor,
                                              configs: configs.sorted { $0.key < $1.key }.map { .init(name: $0.key, value: $0.value) })
        let request = CreateTopicsRequest(topics: [topic], timeoutMs: configuration.requestTimeout.int32Milliseconds)
        let response = try await sendToController(request)
        for t in response.topics where t.name == name {
            let code = KafkaErrorCode(rawValue: t.errorCode)
            if code != .none { throw .broker(code, "create topic \(name)", message: t.errorMessage) }
        }
        try await refreshMetadata(topics: [name])
    }

    /// Deletes a topic.
    /// - Throws: ``KlifeError`` — `unknownTopicOrPartition` when it does not exist.
    public func deleteTopic(_ name: String) async throws(KlifeError) {
        let request = DeleteTopicsRequest(topicNames: [name], timeoutMs: configuration.requestTimeout.int32Milliseconds)
        let response = try await sendToController(request)
        for r in response.responses where r.name == name || r.name == nil {
            let code = KafkaErrorCode(rawValue: r.errorCode)
            if code != .none { throw .broker(code, "delete topic \(name)", message: r.errorMessage) }
        }
    }

    /// Fetches fresh metadata for `topics`, or for every topic when `nil`.
    public func metadata(topics: [String]? = nil) async throws(KlifeError) -> ClusterMetadata {
        try await refreshMetadata(topics: topics)
    }

    /// The metadata the client currently holds, without a network round trip.
    public var cachedMetadata: ClusterMetadata { metadataStore.snapshot.metadata }

    /// Sends an admin request to the controller, retrying once elsewhere on NOT_CONTROLLER.
    private func sendToController<R: KafkaRequest>(_ request: R) async throws(KlifeError) -> R.Response {
        var controller = metadataStore.snapshot.metadata.controllerID
        if controller < 0 || metadataStore.snapshot.metadata.brokers[controller] == nil {
            controller = try await refreshMetadata(topics: []).controllerID
        }
        if controller >= 0, metadataStore.snapshot.metadata.brokers[controller] != nil {
            return try await roundTrip(request, node: controller)
        }
        return try await roundTripAnyBroker(request)
    }
}
