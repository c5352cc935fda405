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
        let groups = try await describeAtCoordinator(
            ShareGroupDescribeRequest(groupIDs: [groupID]), name: "ShareGroupDescribe", groupID: groupID, cache: cache
        ) { $0.groups }
        let coordinator = cache.node ?? -1
        guard let group = groups.first(where: { $0.groupID == groupID }), group.errorCode == 0 else {
            return GroupDescription(groupID: groupID, state: .dead, type: .share, protocolType: "", protocolName: "",
                                    coordinator: coordinator, members: [])
        }
        let topicNames = topicNamesByID()
        let members = group.members.map { m in
            let assignment = Self.partitions(m.assignment, topicNames: topicNames)
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
