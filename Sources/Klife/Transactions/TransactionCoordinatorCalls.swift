import KlifeIO
import KlifeProtocol

/// The transaction protocol's round trips (through the shared coordinator loop in
/// `Core/CoordinatorCalls.swift`), each with its retry rules:
///
/// - `NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE` and lost connections: find the
///   coordinator again, then retry;
/// - `COORDINATOR_LOAD_IN_PROGRESS` and `CONCURRENT_TRANSACTIONS` (the previous transaction
///   of this id is still completing): retry after a short, growing backoff;
/// - `PRODUCER_FENCED`, `INVALID_PRODUCER_EPOCH`, `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`:
///   fatal for the producer (``KlifeError/Code/producerFenced``), never retried;
/// - anything else: a typed broker error naming the call.
///
/// Retries stop at the client's `requestTimeout`, measured from the first attempt.
extension KlifeClient {
    /// Sends `request` to `member`'s transaction coordinator: fencing answers
    /// (`PRODUCER_FENCED`, `INVALID_PRODUCER_EPOCH`, `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`)
    /// are fatal for the producer and never retried; the rest follows
    /// ``coordinatorCall(_:name:subject:cache:key:keyType:errorCode:fatal:)``.
    /// - Parameter fencingIsFatal: whether a fencing answer marks the member fenced for good.
    func transactionCoordinatorCall<R: KafkaRequest>(
        _ request: R, member: TransactionalMember, name: String, fencingIsFatal: Bool = true,
        errorCode: (R.Response) -> (KafkaErrorCode, String?)
    ) async throws(KlifeError) -> R.Response {
        try await coordinatorCall(request, name: name, subject: member.transactionalID, cache: member.coordinator,
                                  key: member.transactionalID, keyType: FindCoordinatorRequest.transactionKeyType,
                                  errorCode: errorCode,
                                  fatal: Self.fencing(member.transactionalID) { if fencingIsFatal { member.session.markFatal($0) } })
    }

    /// Turns a fencing code into ``KlifeError/Code/producerFenced`` (after `onFenced`).
    static func fencing(_ transactionalID: String, onFenced: @escaping (KlifeError) -> Void) -> (KafkaErrorCode) -> KlifeError? {
        { code in
            guard ProducerSession.isFencing(code) else { return nil }
            let fenced = KlifeError.producerFenced(transactionalID, code: code)
            onFenced(fenced)
            return fenced
        }
    }

    // MARK: The calls

    /// InitProducerId for a pool member: a new epoch for its transactional id, which fences
    /// any older holder of the id and aborts a transaction it left open. When the member
    /// already has an id (re-initialising after a failed transaction), the current id and
    /// epoch go along (KIP-360), so a member that was itself fenced meanwhile learns it
    /// instead of fencing its successor. Brokers that refuse that form get the plain one.
    func initTransactionalProducer(_ member: TransactionalMember) async throws(KlifeError) {
        let session = member.session
        let current = session.identity.current
        func initProducerID(_ producerID: Int64, _ epoch: Int16) async throws(KlifeError) -> InitProducerIdResponse {
            let request = InitProducerIdRequest(transactionalID: member.transactionalID, transactionTimeoutMs: member.timeoutMs,
                                                producerID: producerID, producerEpoch: epoch)
            return try await transactionCoordinatorCall(request, member: member, name: "InitProducerId") {
                (KafkaErrorCode(rawValue: $0.errorCode), nil)
            }
        }
        let response: InitProducerIdResponse
        do {
            response = try await initProducerID(current.producerID, current.epoch)
        } catch where current.producerID >= 0 && error.code == .brokerError && error.kafkaErrorCode != .concurrentTransactions {
            hubs[0].log(.warning, "InitProducerId with the current epoch refused for '\(member.transactionalID)' (\(error)); taking a new epoch without it")
            response = try await initProducerID(-1, -1)
        }
        session.adopt(producerID: response.producerID, epoch: response.producerEpoch)
        announceIdentity(session)
    }

    /// Initialises every member of the transactional pool (at connect).
    func initTransactionalProducers() async throws(KlifeError) {
        for member in transactionPool.members { try await initTransactionalProducer(member) }
    }

    /// AddPartitionsToTxn: the partitions must be part of the transaction before any of
    /// their records is produced.
    func addPartitionsToTransaction(_ partitions: [TopicPartition], member: TransactionalMember) async throws(KlifeError) {
        let identity = member.session.identity.current
        var byTopic: [String: [Int32]] = [:]
        for tp in partitions { byTopic[tp.topic, default: []].append(tp.partition) }
        let request = AddPartitionsToTxnRequest(
            transactionalID: member.transactionalID, producerID: identity.producerID, producerEpoch: identity.epoch,
            topics: byTopic.sorted { $0.key < $1.key }.map { .init(name: $0.key, partitions: $0.value.sorted()) })
        let response = try await transactionCoordinatorCall(request, member: member, name: "AddPartitionsToTxn") { response in
            Self.firstError(response.results.flatMap { t in t.partitions.map { $0.errorCode } })
        }
        let answered = Set(response.results.flatMap { t in t.partitions.map { TopicPartition(topic: t.name, partition: $0.partitionIndex) } })
        try Self.requireAnswers(for: partitions, in: answered, call: "AddPartitionsToTxn")
    }

    /// AddOffsetsToTxn then TxnOffsetCommit: the group's offsets commit or abort with the
    /// transaction. TxnOffsetCommit carries `group`'s generation, member id and instance id
    /// (v3+, KIP-447); the codes by which the coordinator refuses a stale member become
    /// ``KlifeError/Code/groupMemberFenced`` (not fatal for the producer, never retried).
    func sendOffsetsToTransaction(_ offsets: [TopicPartition: Int64], group: ConsumerGroupMetadata,
                                  member: TransactionalMember) async throws(KlifeError) {
        let groupID = group.groupID
        let identity = member.session.identity.current
        let add = AddOffsetsToTxnRequest(transactionalID: member.transactionalID, producerID: identity.producerID,
                                         producerEpoch: identity.epoch, groupID: groupID)
        _ = try await transactionCoordinatorCall(add, member: member, name: "AddOffsetsToTxn") {
            (KafkaErrorCode(rawValue: $0.errorCode), nil)
        }
        var byTopic: [String: [TxnOffsetCommitRequest.Partition]] = [:]
        for (tp, offset) in offsets {
            byTopic[tp.topic, default: []].append(.init(partitionIndex: tp.partition, committedOffset: offset))
        }
        let commit = TxnOffsetCommitRequest(
            transactionalID: member.transactionalID, groupID: groupID, producerID: identity.producerID,
            producerEpoch: identity.epoch, generationID: group.generationID, memberID: group.memberID,
            groupInstanceID: group.groupInstanceID,
            topics: byTopic.sorted { $0.key < $1.key }.map { t in
                .init(name: t.key, partitions: t.value.sorted { $0.partitionIndex < $1.partitionIndex })
            })
        let cache = member.groupCoordinator(groupID)
        let response = try await coordinatorCall(commit, name: "TxnOffsetCommit", subject: member.transactionalID,
                                                 cache: cache, key: groupID, keyType: FindCoordinatorRequest.groupKeyType,
                                                 errorCode: { response in
                                                     Self.firstError(response.topics.flatMap { t in t.partitions.map { $0.errorCode } })
                                                 },
                                                 fatal: { code in
                                                     if let fenced = Self.groupFencing(group, code) { return fenced }
                                                     return Self.fencing(member.transactionalID) { member.session.markFatal($0) }(code)
                                                 })
        let answered = Set(response.topics.flatMap { t in t.partitions.map { TopicPartition(topic: t.name, partition: $0.partitionIndex) } })
        try Self.requireAnswers(for: Array(offsets.keys), in: answered, call: "TxnOffsetCommit")
    }

    /// The codes by which a group coordinator refuses offsets of a member it no longer counts
    /// as the partitions' owner, for offsets sent as a member (a generation or member id).
    static func groupFencing(_ group: ConsumerGroupMetadata, _ code: KafkaErrorCode) -> KlifeError? {
        guard group.generationID >= 0 || !group.memberID.isEmpty else { return nil }
        switch code {
        case .illegalGeneration, .unknownMemberID, .fencedInstanceID, .fencedMemberEpoch:
            return .groupMemberFenced(group.groupID, generation: group.generationID, code: code)
        default:
            return nil
        }
    }

    /// A success answer that leaves out a partition asked about is malformed: that partition's
    /// state is unknown, so the transaction must not go on as if it had joined.
    private static func requireAnswers(for asked: [TopicPartition], in answered: Set<TopicPartition>,
                                       call: String) throws(KlifeError) {
        guard let missing = asked.first(where: { !answered.contains($0) }) else { return }
        throw .malformed(DecodeError(.invalidValue, offset: 0, detail: "\(call) answer lacks partition \(missing)"),
                         broker: "transaction coordinator")
    }

    /// EndTxn: commits or aborts everything the transaction wrote and the offsets it sent.
    /// - Parameter fencingIsFatal: false when aborting a transaction that outlived its
    ///   timeout: the coordinator has aborted it already and bumped the epoch, which looks
    ///   like fencing but is recovered from by re-initialising (KIP-588).
    func endTransaction(member: TransactionalMember, commit: Bool, fencingIsFatal: Bool = true) async throws(KlifeError) {
        let identity = member.session.identity.current
        let request = EndTxnRequest(transactionalID: member.transactionalID, producerID: identity.producerID,
                                    producerEpoch: identity.epoch, committed: commit)
        _ = try await transactionCoordinatorCall(request, member: member, name: commit ? "EndTxn(commit)" : "EndTxn(abort)",
                                                 fencingIsFatal: fencingIsFatal) { (KafkaErrorCode(rawValue: $0.errorCode), nil) }
    }

    /// The first real error among per-partition codes (`OPERATION_NOT_ATTEMPTED` only
    /// accompanies another partition's error, so it is reported last).
    private static func firstError(_ codes: [Int16]) -> (KafkaErrorCode, String?) {
        var notAttempted = false
        for raw in codes where raw != 0 {
            let code = KafkaErrorCode(rawValue: raw)
            if code == .operationNotAttempted { notAttempted = true; continue }
            return (code, nil)
        }
        return (notAttempted ? .operationNotAttempted : .none, nil)
    }
}
