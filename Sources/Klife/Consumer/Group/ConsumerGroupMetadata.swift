import KlifeProtocol

/// Who is consuming, as a transaction's offsets must say it (KIP-447): the group, and the
/// member's generation (classic protocol) or member epoch (consumer protocol), member id and
/// static instance id.
///
/// Sent with ``Transaction/sendOffsets(_:group:)``, it lets the group coordinator refuse
/// offsets from a member the group has moved on without (a zombie that stalled while its
/// partitions went to another member), so two members can never both commit the same input.
/// Read it from ``KlifeConsumer/groupMetadata`` right before sending: it changes with every
/// rebalance.
public struct ConsumerGroupMetadata: Sendable, Hashable, CustomStringConvertible {
    /// The consumer group.
    public var groupID: String
    /// The classic group's generation, or the consumer group member's epoch (KIP-848); -1
    /// for a consumer that is not a member (partitions assigned by hand) or is between
    /// generations.
    public var generationID: Int32
    /// The member id the coordinator knows the member by; empty for a non-member.
    public var memberID: String
    /// The static member's instance id (``ConsumerConfiguration/groupInstanceID``), if any.
    public var groupInstanceID: String?

    /// Creates the metadata. With only a group id the offsets are sent as by a non-member,
    /// which the coordinator accepts only while the group has no active members.
    /// - Parameters:
    ///   - groupID: The consumer group.
    ///   - generationID: The generation or member epoch; -1 for none.
    ///   - memberID: The member id; empty for none.
    ///   - groupInstanceID: The static instance id, if any.
    public init(groupID: String, generationID: Int32 = -1, memberID: String = "", groupInstanceID: String? = nil) {
        self.groupID = groupID
        self.generationID = generationID
        self.memberID = memberID
        self.groupInstanceID = groupInstanceID
    }

    /// `group 'g' generation 5 member 'm'` (and the instance id when set).
    public var description: String {
        "group '\(groupID)' generation \(generationID) member '\(memberID)'" + (groupInstanceID.map { " instance '\($0)'" } ?? "")
    }
}

extension KlifeConsumer {
    /// The group and this member's current generation (or member epoch) and ids, for
    /// ``Transaction/sendOffsets(_:group:)``; `nil` without ``ConsumerConfiguration/groupID``.
    ///
    /// A consumer that assigns its partitions by hand gets generation -1 and an empty member
    /// id. A member between generations (joining, or just removed from the group) gets
    /// generation -1 with its ids: the coordinator refuses offsets sent with it while the
    /// group has members (``KlifeError/Code/groupMemberFenced``).
    public var groupMetadata: ConsumerGroupMetadata? {
        guard let groupID = state.configuration.groupID else { return nil }
        guard let membership else { return ConsumerGroupMetadata(groupID: groupID) }
        if let identity = membership.commitIdentity {
            return ConsumerGroupMetadata(groupID: groupID, generationID: identity.generationOrEpoch,
                                         memberID: identity.memberID, groupInstanceID: identity.instanceID)
        }
        return ConsumerGroupMetadata(groupID: groupID, memberID: membership.statistics.memberID,
                                     groupInstanceID: state.configuration.groupInstanceID)
    }
}

extension GroupCommitIdentity {
    /// The identity `metadata` describes.
    init(_ metadata: ConsumerGroupMetadata) {
        self.init(generationOrEpoch: metadata.generationID, memberID: metadata.memberID,
                  instanceID: metadata.groupInstanceID)
    }
}
