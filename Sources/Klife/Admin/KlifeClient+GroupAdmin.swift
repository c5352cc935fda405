import KlifeIO
import KlifeProtocol

/// Consumer-group administration: list, describe, committed offsets with lag, offset resets,
/// deletion.
///
/// ListGroups goes to every broker (each lists only the groups it coordinates); everything else
/// goes to the group's coordinator through the shared coordinator loop (`coordinatorCall`),
/// which finds the coordinator again when it moved and waits out a coordinator still loading.
/// Offsets are read and written with the consumer's ``KlifeClient/committedOffsets(groupID:partitions:)``
/// and ``KlifeClient/commitOffsets(_:groupID:)``.
extension KlifeClient {
    /// Lists the groups of the whole cluster: asks every broker in the metadata at once and merges
    /// their answers.
    /// - Returns: one listing per group, sorted by group id. Groups that only commit offsets are
    ///   listed too (protocol type empty).
    /// - Throws: ``KlifeError`` — the first broker's failure (after retrying retriable errors such as
    ///   `COORDINATOR_LOAD_IN_PROGRESS` until `requestTimeout`): a partial list could hide a group.
    public func listGroups() async throws(KlifeError) -> [GroupListing] {
        let nodes = try await refreshMetadata(topics: []).brokers.keys.sorted()
        let answers = await withTaskGroup(of: (Int32, Result<ListGroupsResponse, KlifeError>).self) { tasks in
            for node in nodes {
                tasks.addTask {
                    do throws(KlifeError) { return (node, .success(try await self.listGroups(at: node))) } catch { return (node, .failure(error)) }
                }
            }
            var answers: [(Int32, Result<ListGroupsResponse, KlifeError>)] = []
            for await answer in tasks { answers.append(answer) }
            return answers.sorted { $0.0 < $1.0 }
        }
        var byID: [String: GroupListing] = [:]
        for (node, answer) in answers {
            for group in try answer.get().groups {
                let listing = GroupListing(
                    groupID: group.groupID, protocolType: group.protocolType,
                    state: group.groupState.isEmpty ? nil : GroupState(rawValue: group.groupState),
                    type: group.groupType.isEmpty ? nil : GroupType(rawValue: group.groupType), coordinator: node)
                // A coordinator that moved while we asked may list the group twice: keep the answer that says more.
                if let known = byID[group.groupID], known.state != nil, listing.state == nil { continue }
                byID[group.groupID] = listing
            }
        }
        return byID.values.sorted { $0.groupID < $1.groupID }
    }

    /// Describes a group at its coordinator: state, protocol, members and their partitions.
    ///
    /// Classic groups are described with DescribeGroups. A KIP-848 consumer group looks `Dead` to
    /// DescribeGroups (up to v5), like a group that does not exist; then, when the coordinator speaks
    /// ConsumerGroupDescribe, that describes it instead (``GroupDescription/type`` is
    /// ``GroupType/consumer``, with epochs and target assignments).
    /// - Returns: the description; a group the coordinator does not know is `Dead` with no members.
    /// - Throws: ``KlifeError`` — `brokerError` (e.g. `GROUP_AUTHORIZATION_FAILED`), `malformedResponse`
    ///   when a member's assignment does not decode, `unsupportedVersion` when the coordinator speaks
    ///   neither DescribeGroups nor ConsumerGroupDescribe.
    public func describeGroup(_ groupID: String) async throws(KlifeError) -> GroupDescription {
        guard !groupID.isEmpty else { throw .invalidArgument("group id is empty") }
        var classic: GroupDescription?
        var classicUnsupported: KlifeError?
        do {
            classic = try await describeClassicGroup(groupID)
        } catch where error.code == .unsupportedVersion {
            classicUnsupported = error
        }
        if let classic, classic.state != .dead { return classic }
        do {
            if let described = try await describeConsumerGroup(groupID) { return described }
        } catch where error.code == .unsupportedVersion {
            if let classic { return classic }
            throw .unsupported("describe group '\(groupID)': the coordinator speaks neither DescribeGroups "
                + "(\(classicUnsupported?.description ?? "unsupported")) nor ConsumerGroupDescribe (\(error))")
        }
        return classic ?? GroupDescription(groupID: groupID, state: .dead, type: .consumer, protocolType: "", protocolName: "",
                                           coordinator: groupCoordinator(groupID).node ?? -1, members: [])
    }

    /// The group's committed offsets next to each partition's end (high watermark) and the lag.
    /// - Parameters:
    ///   - groupID: The group.
    ///   - topics: Only the partitions of these topics, asked for by name; `nil` asks the coordinator
    ///     for every partition the group committed (a coordinator that cannot list them, such as
    ///     librdkafka's mock cluster, answers nothing to that).
    /// - Returns: one entry per partition with a committed offset; ``GroupPartitionOffsets/endOffset``
    ///   is `nil` for a partition that no longer exists (its topic was deleted).
    /// - Throws: ``KlifeError`` — `unknownTopicOrPartition` for a topic in `topics` the cluster lacks,
    ///   or the errors of OffsetFetch at the coordinator and ListOffsets at the leaders.
    public func groupOffsets(_ groupID: String,
                             topics: [String]? = nil) async throws(KlifeError) -> [TopicPartition: GroupPartitionOffsets] {
        guard !groupID.isEmpty else { throw .invalidArgument("group id is empty") }
        var partitions: [TopicPartition]?
        if let topics {
            let metadata = try await refreshMetadata(topics: topics)
            var all: [TopicPartition] = []
            for topic in topics {
                guard let t = metadata.topics[topic], !t.partitions.isEmpty else { throw .unknownTopicOrPartition(topic) }
                all += t.partitions.map { TopicPartition(topic: topic, partition: $0.partition) }
            }
            partitions = all
        }
        let committed = try await committedOffsets(groupID: groupID, partitions: partitions)
        guard !committed.isEmpty else { return [:] }
        let ends = try await partitionOffsets(Array(committed.keys), timestamp: ListOffsetsRequest.latestTimestamp)
        var result: [TopicPartition: GroupPartitionOffsets] = [:]
        for (tp, offset) in committed { result[tp] = GroupPartitionOffsets(committed: offset, endOffset: ends[tp]) }
        return result
    }

    /// Moves the group's committed offsets for every partition of `topic` to `target`.
    ///
    /// Refuses while the group has active members: a running consumer would overwrite the reset with
    /// its next commit, or keep reading from where it is. The group is described first and must be
    /// `Empty` or `Dead`; a member that joins between that check and the commit makes the coordinator
    /// refuse the commit (`UNKNOWN_MEMBER_ID` or `ILLEGAL_GENERATION`).
    /// - Parameters:
    ///   - groupID: The group.
    ///   - topic: Every partition of this topic is reset, committed before or not.
    ///   - target: Where to: earliest, latest, an offset (kept within each partition's log), or a timestamp.
    /// - Returns: the offsets committed, per partition.
    /// - Throws: ``KlifeError`` — `groupNotEmpty` naming the state and members, `unknownTopicOrPartition`,
    ///   or the errors of ``describeGroup(_:)``, ListOffsets and ``commitOffsets(_:groupID:)``.
    @discardableResult
    public func resetGroupOffsets(_ groupID: String, topic: String,
                                  to target: OffsetResetTarget) async throws(KlifeError) -> [TopicPartition: Int64] {
        let description = try await describeGroup(groupID)
        guard description.state.isInactive else {
            throw .groupNotEmpty(groupID, operation: "reset offsets of", detail: Self.activity(description))
        }
        let metadata = try await refreshMetadata(topics: [topic])
        guard let partitions = metadata.topics[topic]?.partitions, !partitions.isEmpty else { throw .unknownTopicOrPartition(topic) }
        let all = partitions.map { TopicPartition(topic: topic, partition: $0.partition) }
        let offsets: [TopicPartition: Int64]
        switch target {
        case .earliest:
            offsets = try await partitionOffsets(all, timestamp: ListOffsetsRequest.earliestTimestamp)
        case .latest:
            offsets = try await partitionOffsets(all, timestamp: ListOffsetsRequest.latestTimestamp)
        case .offset(let wanted):
            let first = try await partitionOffsets(all, timestamp: ListOffsetsRequest.earliestTimestamp)
            let end = try await partitionOffsets(all, timestamp: ListOffsetsRequest.latestTimestamp)
            offsets = first.reduce(into: [:]) { result, entry in
                result[entry.key] = min(max(wanted, entry.value), end[entry.key] ?? entry.value)
            }
        case .timestamp(let ms):
            guard ms >= 0 else { throw .invalidArgument("reset timestamp must not be negative, got \(ms)") }
            let found = try await partitionOffsets(all, timestamp: ms)
            let late = found.filter { $0.value < 0 }.map(\.key)
            let end = late.isEmpty ? [:] : try await partitionOffsets(late, timestamp: ListOffsetsRequest.latestTimestamp)
            offsets = found.reduce(into: [:]) { result, entry in result[entry.key] = entry.value >= 0 ? entry.value : end[entry.key] }
        }
        if let missing = all.first(where: { offsets[$0] == nil }) {
            throw .broker(.leaderNotAvailable, "list offsets \(missing)")
        }
        try await commitOffsets(offsets, groupID: groupID)
        return offsets
    }

    /// Deletes a group and its committed offsets (DeleteGroups at the coordinator).
    ///
    /// The group is described first and must be `Empty` or `Dead`, as for a reset: Kafka's
    /// coordinator refuses a group with members itself (`NON_EMPTY_GROUP`), but not every broker
    /// does (Tansu 0.6 deletes it under its members' feet).
    /// - Throws: ``KlifeError`` — `groupNotEmpty` while it has members, `brokerError` with
    ///   `GROUP_ID_NOT_FOUND` when it does not exist (on brokers that say so).
    public func deleteGroup(_ groupID: String) async throws(KlifeError) {
        guard !groupID.isEmpty else { throw .invalidArgument("group id is empty") }
        let description = try await describeGroup(groupID)
        guard description.state.isInactive else {
            throw .groupNotEmpty(groupID, operation: "delete", detail: Self.activity(description))
        }
        _ = try await coordinatorCall(
            DeleteGroupsRequest(groupIDs: [groupID]), name: "DeleteGroups", subject: groupID,
            cache: groupCoordinator(groupID), key: groupID, keyType: FindCoordinatorRequest.groupKeyType,
            errorCode: { response in
                guard let result = response.results.first(where: { $0.groupID == groupID }) ?? response.results.first else {
                    return (.none, nil)
                }
                return (KafkaErrorCode(rawValue: result.errorCode), nil)
            },
            fatal: { code in
                code == .nonEmptyGroup ? .groupNotEmpty(groupID, operation: "delete", detail: "the coordinator says it has members") : nil
            })
    }

    /// Deletes the group's committed offsets for `partitions` (OffsetDelete at the coordinator, KIP-496).
    /// - Throws: ``KlifeError`` — `brokerError` with `GROUP_SUBSCRIBED_TO_TOPIC` while members consume
    ///   a topic, `GROUP_ID_NOT_FOUND` for an unknown group; `unsupportedVersion` when the coordinator
    ///   lacks OffsetDelete.
    public func deleteGroupOffsets(_ groupID: String, partitions: [TopicPartition]) async throws(KlifeError) {
        guard !groupID.isEmpty else { throw .invalidArgument("group id is empty") }
        guard !partitions.isEmpty else { return }
        var byTopic: [String: [Int32]] = [:]
        for tp in partitions { byTopic[tp.topic, default: []].append(tp.partition) }
        let request = OffsetDeleteRequest(groupID: groupID, topics: byTopic.sorted { $0.key < $1.key }.map {
            .init(name: $0.key, partitionIndexes: $0.value.sorted())
        })
        _ = try await coordinatorCall(
            request, name: "OffsetDelete", subject: groupID, cache: groupCoordinator(groupID), key: groupID,
            keyType: FindCoordinatorRequest.groupKeyType,
            errorCode: { response in
                if response.errorCode != 0 { return (KafkaErrorCode(rawValue: response.errorCode), nil) }
                for t in response.topics {
                    for p in t.partitions where p.errorCode != 0 {
                        return (KafkaErrorCode(rawValue: p.errorCode), "\(t.name)/\(p.partitionIndex)")
                    }
                }
                return (.none, nil)
            })
    }

    // MARK: Describing

    /// DescribeGroups at the coordinator; `GROUP_ID_NOT_FOUND` (a newer coordinator's answer for a
    /// group that is not classic) reads as `Dead`.
    private func describeClassicGroup(_ groupID: String) async throws(KlifeError) -> GroupDescription {
        let cache = groupCoordinator(groupID)
        let response = try await coordinatorCall(
            DescribeGroupsRequest(groupIDs: [groupID]), name: "DescribeGroups", subject: groupID, cache: cache,
            key: groupID, keyType: FindCoordinatorRequest.groupKeyType,
            errorCode: { response in
                guard let group = response.groups.first(where: { $0.groupID == groupID }) ?? response.groups.first else {
                    return (.none, nil)
                }
                let code = KafkaErrorCode(rawValue: group.errorCode)
                return (code == .groupIDNotFound ? .none : code, nil)
            })
        let coordinator = cache.node ?? -1
        guard let group = response.groups.first(where: { $0.groupID == groupID }),
              group.errorCode == 0, !group.groupState.isEmpty else {
            return GroupDescription(groupID: groupID, state: .dead, type: .classic, protocolType: "", protocolName: "",
                                    coordinator: coordinator, members: [])
        }
        var members: [GroupMemberDescription] = []
        for m in group.members {
            var assignment: [TopicPartition] = []
            var topics: [String] = []
            if group.protocolType == ConsumerProtocol.protocolType {
                // The coordinator sends assignments only while the group is Stable: empty bytes mean "none yet".
                if !m.memberAssignment.isEmpty {
                    do {
                        let decoded = try ConsumerProtocolAssignment(decoding: m.memberAssignment)
                        assignment = Self.partitions(decoded.assignedPartitions.map { ($0.topic, $0.partitions) })
                    } catch {
                        throw .malformed(error, broker: "group coordinator (assignment of member \(m.memberID) in '\(groupID)')")
                    }
                }
                if !m.memberMetadata.isEmpty {
                    do {
                        topics = try ConsumerProtocolSubscription(decoding: m.memberMetadata).topics.sorted()
                    } catch {
                        throw .malformed(error, broker: "group coordinator (subscription of member \(m.memberID) in '\(groupID)')")
                    }
                }
            }
            members.append(GroupMemberDescription(memberID: m.memberID, instanceID: m.groupInstanceID, clientID: m.clientID,
                                                  host: m.clientHost, assignment: assignment, subscribedTopics: topics))
        }
        return GroupDescription(groupID: groupID, state: GroupState(rawValue: group.groupState), type: .classic,
                                protocolType: group.protocolType, protocolName: group.protocolData, coordinator: coordinator,
                                members: members.sorted { $0.memberID < $1.memberID })
    }

    /// ConsumerGroupDescribe at the coordinator; `nil` when it does not know the group as a
    /// KIP-848 consumer group (`GROUP_ID_NOT_FOUND`).
    private func describeConsumerGroup(_ groupID: String) async throws(KlifeError) -> GroupDescription? {
        let cache = groupCoordinator(groupID)
        let groups = try await describeAtCoordinator(
            ConsumerGroupDescribeRequest(groupIDs: [groupID]), name: "ConsumerGroupDescribe", groupID: groupID, cache: cache
        ) { $0.groups }
        guard let group = groups.first(where: { $0.groupID == groupID }),
              group.errorCode == 0, !group.groupState.isEmpty else { return nil }
        let topicNames = topicNamesByID()
        let members = group.members.map { m in
            GroupMemberDescription(memberID: m.memberID, instanceID: m.instanceID, clientID: m.clientID, host: m.clientHost,
                                   assignment: Self.partitions(m.assignment, topicNames: topicNames),
                                   targetAssignment: Self.partitions(m.targetAssignment, topicNames: topicNames),
                                   subscribedTopics: m.subscribedTopicNames.sorted(), memberEpoch: m.memberEpoch)
        }
        return GroupDescription(groupID: groupID, state: GroupState(rawValue: group.groupState), type: .consumer,
                                protocolType: ConsumerProtocol.protocolType, protocolName: group.assignorName,
                                groupEpoch: group.groupEpoch, assignmentEpoch: group.assignmentEpoch,
                                coordinator: cache.node ?? -1, members: members.sorted { $0.memberID < $1.memberID })
    }

    /// `(topic, partitions)` pairs as sorted topic-partitions.
    private static func partitions(_ entries: [(String, [Int32])]) -> [TopicPartition] {
        entries.flatMap { topic, partitions in partitions.map { TopicPartition(topic: topic, partition: $0) } }
            .sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }

    /// ConsumerGroupDescribe or ShareGroupDescribe (`request`, named `name`) for `groupID` at its
    /// coordinator; returns the answer's group entries, taken from it by `groups`. A group the
    /// coordinator does not know (`GROUP_ID_NOT_FOUND`) is no error: its entry comes back as is.
    func describeAtCoordinator<R: KafkaRequest, Member: Sendable & Hashable>(
        _ request: R, name: String, groupID: String, cache: CoordinatorCache,
        groups: (R.Response) -> [DescribedGroupEntry<Member>]
    ) async throws(KlifeError) -> [DescribedGroupEntry<Member>] {
        let response = try await coordinatorCall(
            request, name: name, subject: groupID, cache: cache, key: groupID, keyType: FindCoordinatorRequest.groupKeyType,
            errorCode: { response in
                let entries = groups(response)
                guard let group = entries.first(where: { $0.groupID == groupID }) ?? entries.first else {
                    return (.none, nil)
                }
                let code = KafkaErrorCode(rawValue: group.errorCode)
                return (code == .groupIDNotFound ? .none : code, group.errorMessage)
            })
        return groups(response)
    }

    /// Topic names by topic id, from the metadata cache.
    func topicNamesByID() -> [KafkaUUID: String] {
        metadataStore.snapshot.metadata.topics.values.reduce(into: [KafkaUUID: String]()) { $0[$1.topicID] = $1.name }
    }

    /// The partitions of a described member's `assignment`, sorted; a topic the coordinator did
    /// not name is named from `topicNames`, or by its id when the metadata does not know it.
    static func partitions(_ assignment: ConsumerGroupDescribeResponse.Assignment,
                           topicNames: [KafkaUUID: String]) -> [TopicPartition] {
        partitions(assignment.topicPartitions.map { entry in
            (entry.topicName.isEmpty ? topicNames[entry.topicID] ?? "\(entry.topicID)" : entry.topicName, entry.partitions)
        })
    }

    /// `state Stable with 2 members (m-1, m-2)`, for the refusal of an active group.
    private static func activity(_ description: GroupDescription) -> String {
        let count = description.members.count
        let ids = description.members.prefix(3).map(\.memberID).joined(separator: ", ")
        let more = count > 3 ? ", …" : ""
        return "it is \(description.state) with \(count) member\(count == 1 ? "" : "s")" + (count > 0 ? " (\(ids)\(more))" : "")
    }

    // MARK: Brokers and leaders

    /// ListGroups at one broker, retrying retriable errors until `requestTimeout`.
    private func listGroups(at node: Int32) async throws(KlifeError) -> ListGroupsResponse {
        let deadline = Reactor.monotonicNanoseconds() &+ configuration.requestTimeout.nanoseconds
        var attempt = 0
        while true {
            attempt += 1
            let code: KafkaErrorCode
            do {
                let response = try await roundTrip(ListGroupsRequest(), node: node)
                code = KafkaErrorCode(rawValue: response.errorCode)
                if code == .none { return response }
            } catch {
                guard error.isRetriable, Reactor.monotonicNanoseconds() < deadline else { throw error }
                await Self.adminBackoff(attempt)
                continue
            }
            guard code.isRetriable, Reactor.monotonicNanoseconds() < deadline else {
                throw .broker(code, "ListGroups at node \(node)")
            }
            await Self.adminBackoff(attempt)
        }
    }

    /// The offsets ListOffsets gives for `timestamp` (earliest, latest or a time) in each of
    /// `partitions`: one request per leader, every leader at once. Partitions of topics the
    /// metadata does not know are left out; a leader that moved is looked up again until
    /// `requestTimeout`. An offset of -1 means no record at or after the time asked.
    private func partitionOffsets(_ partitions: [TopicPartition],
                                  timestamp: Int64) async throws(KlifeError) -> [TopicPartition: Int64] {
        let topics = Set(partitions.map(\.topic))
        var metadata = try await refreshMetadata(topics: topics.sorted())
        var pending = Set(partitions.filter { tp in
            metadata.topics[tp.topic]?.partitions.contains { $0.partition == tp.partition } ?? false
        })
        let deadline = Reactor.monotonicNanoseconds() &+ configuration.requestTimeout.nanoseconds
        var result: [TopicPartition: Int64] = [:]
        var attempt = 0
        while !pending.isEmpty {
            attempt += 1
            var byLeader: [Int32: [TopicPartition]] = [:]
            var lastError: KlifeError?
            for tp in pending {
                if let node = metadata.leader(topic: tp.topic, partition: tp.partition) {
                    byLeader[node, default: []].append(tp)
                } else {
                    lastError = .broker(.leaderNotAvailable, "list offsets \(tp)")
                }
            }
            let answers = await withTaskGroup(of: Result<ListOffsetsResponse, KlifeError>.self) { tasks in
                for (node, tps) in byLeader {
                    let request = ListOffsetsRequest(topics: Dictionary(grouping: tps, by: \.topic).sorted { $0.key < $1.key }.map { topic, tps in
                        .init(name: topic, partitions: tps.map { .init(partitionIndex: $0.partition, timestamp: timestamp) })
                    })
                    tasks.addTask {
                        do throws(KlifeError) { return .success(try await self.roundTrip(request, node: node)) } catch { return .failure(error) }
                    }
                }
                var answers: [Result<ListOffsetsResponse, KlifeError>] = []
                for await answer in tasks { answers.append(answer) }
                return answers
            }
            for answer in answers {
                let response: ListOffsetsResponse
                switch answer {
                case .success(let r): response = r
                case .failure(let error):
                    guard error.isRetriable else { throw error }
                    lastError = error
                    continue
                }
                for t in response.topics {
                    for p in t.partitions {
                        let tp = TopicPartition(topic: t.name, partition: p.partitionIndex)
                        guard pending.contains(tp) else { continue }
                        let code = KafkaErrorCode(rawValue: p.errorCode)
                        if code == .none {
                            result[tp] = p.offset
                            pending.remove(tp)
                        } else if code.isRetriable {
                            lastError = .broker(code, "list offsets \(tp)")
                        } else {
                            throw .broker(code, "list offsets \(tp)")
                        }
                    }
                }
            }
            guard !pending.isEmpty else { break }
            guard Reactor.monotonicNanoseconds() < deadline else {
                throw lastError ?? .malformed(DecodeError(.invalidValue, offset: 0, detail: "ListOffsets answer lacks \(pending.first!)"),
                                              broker: "partition leader")
            }
            await Self.adminBackoff(attempt)
            metadata = try await refreshMetadata(topics: topics.sorted())
        }
        return result
    }

    /// 20 ms doubling to 500 ms between retries of an admin call.
    private static func adminBackoff(_ attempt: Int) async {
        try? await Task.sleep(for: .milliseconds(min(20 << min(attempt - 1, 5), 500)))
    }
}
