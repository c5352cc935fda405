// Group administration: ListGroups (key 16) and DeleteGroups (key 42).

/// ListGroups request (key 16), versions 0–5; flexible from v3.
///
///     v0–3: <tags v3>
///     v4+:  states_filter:[COMPACT_STRING] types_filter:[COMPACT_STRING] (v5+) <tags>
///
/// Each broker lists only the groups it coordinates: ask every broker for the whole cluster.
/// Versions 0–2 have an empty body. An empty filter matches every group (states such as `Stable`
/// or `Empty`, KIP-518; types `classic`, `consumer` or `share`, KIP-848).
public struct ListGroupsRequest: KafkaRequest, Equatable {
    /// Answered by ``ListGroupsResponse``.
    public typealias Response = ListGroupsResponse
    /// Key 16.
    public static let apiKey = ApiKey.listGroups
    /// v0 through v5.
    public static let supportedVersions: ClosedRange<Int16> = 0...5
    /// v3.
    public static let firstFlexibleVersion: Int16 = 3

    /// Only groups in these states (sent from v4); empty for all.
    public var statesFilter: [String]
    /// Only groups of these types (sent from v5); empty for all.
    public var typesFilter: [String]

    /// Creates the request.
    public init(statesFilter: [String] = [], typesFilter: [String] = []) {
        self.statesFilter = statesFilter
        self.typesFilter = typesFilter
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        if version >= 4 {
            writer.writeArrayCount(statesFilter.count, flexible: true)
            for state in statesFilter { writer.writeCompactString(state) }
        }
        if version >= 5 {
            writer.writeArrayCount(typesFilter.count, flexible: true)
            for type in typesFilter { writer.writeCompactString(type) }
        }
        writer.writeEmptyTaggedFields(flexible: version >= 3)
    }
}

/// ListGroups response (key 16), versions 0–5.
///
///     throttle_time_ms:INT32 (v1+) error_code:INT16
///     groups:[group_id:STRING protocol_type:STRING group_state:STRING (v4+) group_type:STRING (v5+)
///             <tags v3+>] <tags v3+>
///
/// ``Group/protocolType`` is `consumer` for consumer groups and empty for groups that only
/// commit offsets.
public struct ListGroupsResponse: KafkaResponse, Equatable {
    /// Quota throttle time (v1+; 0 before).
    public var throttleTimeMs: Int32
    /// The error, 0 on success (for example `COORDINATOR_LOAD_IN_PROGRESS`, 14).
    public var errorCode: Int16
    /// The groups this broker coordinates.
    public var groups: [Group]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, errorCode: Int16 = 0, groups: [Group] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.groups = groups
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 3
        throttleTimeMs = version >= 1 ? reader.readInt32() : 0
        errorCode = reader.readInt16()
        // A group is at least two string lengths (and a tag section when flexible).
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: flexible ? 3 : 4)
        groups = reader.readArray(count: n) { r in
            let group = Group(groupID: r.readString(flexible: flexible), protocolType: r.readString(flexible: flexible),
                              groupState: version >= 4 ? r.readCompactString() : "",
                              groupType: version >= 5 ? r.readCompactString() : "")
            r.skipTaggedFields(flexible: flexible)
            return group
        }
        reader.skipTaggedFields(flexible: flexible)
    }

    /// One listed group.
    public struct Group: Sendable, Hashable {
        /// The group id.
        public var groupID: String
        /// The protocol type (`consumer`), or empty.
        public var protocolType: String
        /// The group state (v4+; empty before).
        public var groupState: String
        /// The group type, `classic`, `consumer` or `share` (v5+; empty before).
        public var groupType: String

        /// Creates a group entry.
        public init(groupID: String, protocolType: String = "", groupState: String = "", groupType: String = "") {
            self.groupID = groupID
            self.protocolType = protocolType
            self.groupState = groupState
            self.groupType = groupType
        }
    }
}

/// DeleteGroups request (key 42), versions 0–2; flexible from v2.
///
///     groups_names:[STRING] <tags v2+>
///
/// Sent to each group's coordinator. Only a group without members can be deleted (else
/// `NON_EMPTY_GROUP`, 68); its committed offsets go with it. v1 has v0's layout.
public struct DeleteGroupsRequest: KafkaRequest, Equatable {
    /// Answered by ``DeleteGroupsResponse``.
    public typealias Response = DeleteGroupsResponse
    /// Key 42.
    public static let apiKey = ApiKey.deleteGroups
    /// v0 through v2.
    public static let supportedVersions: ClosedRange<Int16> = 0...2
    /// v2.
    public static let firstFlexibleVersion: Int16 = 2

    /// The groups to delete.
    public var groupIDs: [String]

    /// Creates the request.
    public init(groupIDs: [String]) {
        self.groupIDs = groupIDs
    }

    /// Encodes the body at `version`.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        let flexible = version >= 2
        writer.writeArrayCount(groupIDs.count, flexible: flexible)
        for id in groupIDs { writer.writeString(id, flexible: flexible) }
        writer.writeEmptyTaggedFields(flexible: flexible)
    }
}

/// DeleteGroups response (key 42), versions 0–2.
///
///     throttle_time_ms:INT32 results:[group_id:STRING error_code:INT16 <tags v2+>] <tags v2+>
public struct DeleteGroupsResponse: KafkaResponse, Equatable {
    /// Quota throttle time.
    public var throttleTimeMs: Int32
    /// One result per group.
    public var results: [Result]

    /// Creates a response.
    public init(throttleTimeMs: Int32 = 0, results: [Result] = []) {
        self.throttleTimeMs = throttleTimeMs
        self.results = results
    }

    /// Decodes the body at `version`; check `reader.error` afterwards.
    public init(from reader: inout ByteReader, version: Int16) {
        let flexible = version >= 2
        throttleTimeMs = reader.readInt32()
        // A result is at least a name length and an error code (a compact length and a tag section when flexible).
        let n = reader.readArrayCount(flexible: flexible, minimumElementSize: 4)
        results = reader.readArray(count: n) { r in
            let result = Result(groupID: r.readString(flexible: flexible), errorCode: r.readInt16())
            r.skipTaggedFields(flexible: flexible)
            return result
        }
        reader.skipTaggedFields(flexible: flexible)
    }

    /// The outcome for one group.
    public struct Result: Sendable, Hashable {
        /// The group id.
        public var groupID: String
        /// The error, 0 on success (for example `NON_EMPTY_GROUP`, 68, or `GROUP_ID_NOT_FOUND`, 69).
        public var errorCode: Int16

        /// Creates a result.
        public init(groupID: String, errorCode: Int16 = 0) {
            self.groupID = groupID
            self.errorCode = errorCode
        }
    }
}
