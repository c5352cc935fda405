import KlifeProtocol

/// Share group administration (KIP-932): describing a share group at its coordinator.
extension KlifeClient {
    /// Describes share group `groupID` with ShareGroupDescribe at its coordinator: its state,
    /// epochs, assignor and members (each with the partitions the coordinator assigned it;
    /// in a share group several members may hold one partition).
    ///
    /// A group the coordinator does not know as a share group (`GROUP_ID_NOT_FOUND`) is
    /// described as `dead` with no members.
    /// - Throws: ``KlifeError`` — `invalidArgument` for an empty id, `unsupportedVersion` naming
    ///   ShareGroupDescribe when the coordinator does not speak it, `brokerError` (for example
    ///   `GROUP_AUTHORIZATION_FAILED`, or `INVALID_GROUP_TYPE` for a group of another type).
    public func describeShareGroup(_ groupID: String) async throws(KlifeError) -> GroupDescription {
        guard !groupID.isEmpty else { throw .invalidArgument("group id is empty") }
        let cache = groupCoordinator(groupID)
        let response = try await coordinatorCall(
            ShareGroupDescribeRequest(groupIDs: [groupID]), name: "ShareGroupDescribe", subject: groupID, cache: cache,
            key: groupID, keyType: FindCoordinatorRequest.groupKeyType,
            errorCode: { response in
                guard let group = response.groups.first(where: { $0.groupID == groupID }) ?? response.groups.first else {
                    return (.none, nil)
                }
                let code = KafkaErrorCode(rawValue: group.errorCode)
                return (code == .groupIDNotFound ? .none : code, group.errorMessage)
            })
        let coordinator = cache.node ?? -1
        guard let group = response.groups.first(where: { $0.groupID == groupID }), group.errorCode == 0 else {
            return GroupDescription(groupID: groupID, state: .dead, type: .share, protocolType: "", protocolName: "",
                                    coordinator: coordinator, members: [])
        }
        let topicNames = metadataStore.snapshot.metadata.topics.values.reduce(into: [KafkaUUID: String]()) {
            $0[$1.topicID] = $1.name
        }
        let members = group.members.map { m in
            let assignment = m.assignment.topicPartitions.flatMap { entry in
                let topic = entry.topicName.isEmpty ? topicNames[entry.topicID] ?? "\(entry.topicID)" : entry.topicName
                return entry.partitions.map { TopicPartition(topic: topic, partition: $0) }
            }.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
            return GroupMemberDescription(memberID: m.memberID, clientID: m.clientID, host: m.clientHost,
                                          assignment: assignment, subscribedTopics: m.subscribedTopicNames.sorted(),
                                          memberEpoch: m.memberEpoch)
        }
        return GroupDescription(groupID: groupID, state: GroupState(rawValue: group.groupState), type: .share,
                                protocolType: "share", protocolName: group.assignorName, groupEpoch: group.groupEpoch,
                                assignmentEpoch: group.assignmentEpoch, coordinator: coordinator,
                                members: members.sorted { $0.memberID < $1.memberID })
    }
}
