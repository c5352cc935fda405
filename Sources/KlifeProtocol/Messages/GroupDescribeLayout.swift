/// The request layout that ConsumerGroupDescribe (KIP-848) and ShareGroupDescribe (KIP-932)
/// share, flexible in every version:
///
///     group_ids:[COMPACT_STRING] include_authorized_operations:BOOL <tags>
protocol FlexibleGroupDescribeRequest: KafkaRequest {
    /// The groups to describe.
    var groupIDs: [String] { get }
    /// Ask for each group's authorized-operations bitfield.
    var includeAuthorizedOperations: Bool { get }
}

extension FlexibleGroupDescribeRequest {
    /// Encodes the body at `version` (every version has the same layout).
    public func encode(into writer: inout ByteWriter, version: Int16) {
        writer.writeArrayCount(groupIDs.count, flexible: true)
        for id in groupIDs { writer.writeCompactString(id) }
        writer.writeBool(includeAuthorizedOperations)
        writer.writeEmptyTaggedFields()
    }
}

/// A group entry of a ConsumerGroupDescribe (KIP-848) or ShareGroupDescribe (KIP-932) response:
/// both carry the same per-group fields around their own kind of member entry.
///
///     error_code:INT16 error_message:COMPACT_NULLABLE_STRING group_id:COMPACT_STRING
///     group_state:COMPACT_STRING group_epoch:INT32 assignment_epoch:INT32 assignor_name:COMPACT_STRING
///     members:[Member] authorized_operations:INT32 <tags>
public struct DescribedGroupEntry<Member: Sendable & Hashable>: Sendable, Hashable {
    /// The group's error, 0 on success (for example `GROUP_ID_NOT_FOUND`).
    public var errorCode: Int16
    /// Error details, if any.
    public var errorMessage: String?
    /// The group id.
    public var groupID: String
    /// The group state (for example `Stable`, `Assigning`, `Empty`, or `Dead`), or empty.
    public var groupState: String
    /// The group epoch.
    public var groupEpoch: Int32
    /// The epoch of the group's target assignment.
    public var assignmentEpoch: Int32
    /// The server-side assignor in use (`simple` in a share group).
    public var assignorName: String
    /// The members.
    public var members: [Member]
    /// Authorized operations bitfield (only when asked; `Int32.min` otherwise).
    public var authorizedOperations: Int32

    /// Creates a group entry.
    public init(
        errorCode: Int16 = 0, errorMessage: String? = nil, groupID: String, groupState: String = "",
        groupEpoch: Int32 = 0, assignmentEpoch: Int32 = 0, assignorName: String = "", members: [Member] = [],
        authorizedOperations: Int32 = .min
    ) {
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.groupID = groupID
        self.groupState = groupState
        self.groupEpoch = groupEpoch
        self.assignmentEpoch = assignmentEpoch
        self.assignorName = assignorName
        self.members = members
        self.authorizedOperations = authorizedOperations
    }

    /// Bytes a group takes at least: error, three empty strings, two epochs, no members,
    /// the bitfield, no tags (and a null message).
    static var minimumSize: Int { 20 }

    /// Reads a group whose members take at least `memberMinimumSize` bytes each and are read
    /// by `readMember`; check `r.error` afterwards.
    init(from r: inout ByteReader, memberMinimumSize: Int, readMember: (inout ByteReader) -> Member) {
        errorCode = r.readInt16()
        errorMessage = r.readCompactNullableString()
        groupID = r.readCompactString()
        groupState = r.readCompactString()
        groupEpoch = r.readInt32()
        assignmentEpoch = r.readInt32()
        assignorName = r.readCompactString()
        let n = r.readArrayCount(flexible: true, minimumElementSize: memberMinimumSize)
        members = r.readArray(count: n) { readMember(&$0) }
        authorizedOperations = r.readInt32()
        r.skipTaggedFields()
    }
}
