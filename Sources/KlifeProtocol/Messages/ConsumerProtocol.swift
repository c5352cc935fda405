/// The consumer protocol: the bytes a classic consumer group carries inside JoinGroup's
/// protocol metadata (``ConsumerProtocolSubscription``) and SyncGroup's assignment
/// (``ConsumerProtocolAssignment``), for groups whose protocol type is `"consumer"`.
///
/// Neither is a flexible message: both use the classic types (INT16 string lengths, INT32
/// array counts and byte lengths) and no tagged fields. Each starts with its own INT16 version:
///
///     subscription, versions 0–3:
///         version:INT16
///         topics:[STRING]
///         user_data:NULLABLE_BYTES
///         owned_partitions:[topic:STRING partitions:[INT32]]   (v1+)
///         generation_id:INT32                                  (v2+, default -1)
///         rack_id:NULLABLE_STRING                              (v3+)
///
///     assignment, versions 0–3 (one layout; v2 and v3 follow the subscription's versions):
///         version:INT16
///         assigned_partitions:[topic:STRING partitions:[INT32]]
///         user_data:NULLABLE_BYTES
///
/// **Newer versions.** Kafka's rule for these two structures is that a new version may only
/// append fields, never remove or reorder them. A decoder that meets a version higher than it
/// knows therefore reads the fields of the highest version it knows and ignores the bytes
/// after them, as Kafka's own clients do; decoding here does the same, so a member running a
/// newer client can still join a group led by this one. For the same reason bytes after the
/// known fields are ignored at every version. A negative version is rejected
/// (`DecodeError.Kind.invalidValue`).
public enum ConsumerProtocol {
    /// The protocol type of a consumer group (``JoinGroupRequest/protocolType``).
    public static let protocolType = "consumer"
    /// The versions this codec writes, and reads in full; higher versions are read up to v3's fields.
    public static let supportedVersions: ClosedRange<Int16> = 0...3

    /// Reads the INT16 version in front of a subscription or an assignment; fails on a negative one.
    static func readVersion(_ reader: inout ByteReader) -> Int16 {
        let version = reader.readInt16()
        if version < 0 { reader.fail(.invalidValue, "consumer protocol version \(version)") }
        return version
    }

    /// Runs `body` on a reader over `bytes` and throws the reader's error, if any.
    static func decode<T>(_ bytes: [UInt8], _ body: (inout ByteReader) -> T) throws(DecodeError) -> T {
        let (value, error) = bytes.withUnsafeBytes { raw -> (T, DecodeError?) in
            var reader = ByteReader(raw)
            let value = body(&reader)
            return (value, reader.error)
        }
        if let error { throw error }
        return value
    }

    /// The bytes `body` writes.
    static func encode(_ body: (inout ByteWriter) -> Void) -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        body(&writer)
        return writer.bytes
    }
}

/// A member's subscription (JoinGroup protocol metadata of a consumer group), versions 0–3.
/// See ``ConsumerProtocol`` for the layout and the rule for newer versions.
///
/// The group leader decodes every member's subscription and assigns partitions from them.
/// A cooperative assignor needs ``ownedPartitions`` (v1+) and ``generationID`` (v2+) to tell
/// partitions a member still owns from stale claims; ``rackID`` (v3+) enables rack-aware
/// assignment.
public struct ConsumerProtocolSubscription: Sendable, Hashable {
    /// Partitions of one topic, by name: owned (here) or assigned (``ConsumerProtocolAssignment``).
    public typealias TopicPartitions = ConsumerProtocolTopicPartitions

    /// The subscribed topic names.
    public var topics: [String]
    /// Opaque data for the assignor, if any.
    public var userData: [UInt8]?
    /// The partitions the member owns now (v1+; empty before).
    public var ownedPartitions: [TopicPartitions]
    /// The generation in which the member last owned ``ownedPartitions`` (v2+), or -1.
    public var generationID: Int32
    /// The member's rack (v3+), if configured.
    public var rackID: String?

    /// Creates a subscription.
    public init(topics: [String], userData: [UInt8]? = nil, ownedPartitions: [TopicPartitions] = [],
                generationID: Int32 = -1, rackID: String? = nil) {
        self.topics = topics
        self.userData = userData
        self.ownedPartitions = ownedPartitions
        self.generationID = generationID
        self.rackID = rackID
    }

    /// Writes the version and the fields of `version`, which lies in ``ConsumerProtocol/supportedVersions``.
    /// Fields newer than `version` are left out.
    public func encode(into writer: inout ByteWriter, version: Int16) {
        writer.writeInt16(version)
        writer.writeArrayCount(topics.count, flexible: false)
        for topic in topics { writer.writeString(topic) }
        writer.writeNullableSizedBytes(userData)
        if version >= 1 {
            writer.writeArrayCount(ownedPartitions.count, flexible: false)
            for topic in ownedPartitions { topic.encode(into: &writer) }
        }
        if version >= 2 { writer.writeInt32(generationID) }
        if version >= 3 { writer.writeNullableString(rackID) }
    }

    /// The subscription's bytes at `version` (v3 unless told), for ``JoinGroupRequest/GroupProtocol/metadata``.
    public func encoded(version: Int16 = 3) -> [UInt8] {
        ConsumerProtocol.encode { encode(into: &$0, version: version) }
    }

    /// Reads a subscription, its version first, from `reader`, which holds it to its end:
    /// whatever follows the fields of the version read (or of v3, for a higher one) is skipped.
    /// Check `reader.error` afterwards.
    public init(from reader: inout ByteReader) {
        let version = ConsumerProtocol.readVersion(&reader)
        // A topic name is at least its INT16 length.
        let n = reader.readArrayCount(flexible: false, minimumElementSize: 2)
        topics = reader.readArray(count: n) { $0.readString() }
        userData = reader.readNullableSizedBytes()
        if version >= 1 {
            let m = reader.readArrayCount(flexible: false, minimumElementSize: TopicPartitions.minimumSize)
            ownedPartitions = reader.readArray(count: m) { TopicPartitions(from: &$0) }
        } else {
            ownedPartitions = []
        }
        generationID = version >= 2 ? reader.readInt32() : -1
        rackID = version >= 3 ? reader.readNullableString() : nil
        reader.skip(reader.remaining)
    }

    /// Decodes a member's subscription (``JoinGroupResponse/Member/metadata``).
    /// - Throws: the reader's ``DecodeError`` when the bytes are short or invalid.
    public init(decoding bytes: [UInt8]) throws(DecodeError) {
        self = try ConsumerProtocol.decode(bytes) { Self(from: &$0) }
    }
}

/// A member's assignment (SyncGroup assignment of a consumer group), versions 0–3, which
/// share one layout. See ``ConsumerProtocol`` for the layout and the rule for newer versions.
///
/// The leader encodes one per member into ``SyncGroupRequest/Assignment/assignment``; every
/// member decodes its own from ``SyncGroupResponse/assignment``. An empty assignment
/// (zero bytes) is what the coordinator sends a member the leader left out: it is not a valid
/// encoding, so check for it before decoding.
public struct ConsumerProtocolAssignment: Sendable, Hashable {
    /// Partitions of one topic, by name.
    public typealias TopicPartitions = ConsumerProtocolTopicPartitions

    /// The partitions assigned to the member.
    public var assignedPartitions: [TopicPartitions]
    /// Opaque data from the assignor, if any.
    public var userData: [UInt8]?

    /// Creates an assignment.
    public init(assignedPartitions: [TopicPartitions], userData: [UInt8]? = nil) {
        self.assignedPartitions = assignedPartitions
        self.userData = userData
    }

    /// Writes the version and the fields (the same at every version in ``ConsumerProtocol/supportedVersions``).
    public func encode(into writer: inout ByteWriter, version: Int16) {
        writer.writeInt16(version)
        writer.writeArrayCount(assignedPartitions.count, flexible: false)
        for topic in assignedPartitions { topic.encode(into: &writer) }
        writer.writeNullableSizedBytes(userData)
    }

    /// The assignment's bytes at `version` (v3 unless told), for ``SyncGroupRequest/Assignment/assignment``.
    public func encoded(version: Int16 = 3) -> [UInt8] {
        ConsumerProtocol.encode { encode(into: &$0, version: version) }
    }

    /// Reads an assignment, its version first, from `reader`, which holds it to its end:
    /// whatever follows the known fields is skipped. Check `reader.error` afterwards.
    public init(from reader: inout ByteReader) {
        _ = ConsumerProtocol.readVersion(&reader)
        let n = reader.readArrayCount(flexible: false, minimumElementSize: TopicPartitions.minimumSize)
        assignedPartitions = reader.readArray(count: n) { TopicPartitions(from: &$0) }
        userData = reader.readNullableSizedBytes()
        reader.skip(reader.remaining)
    }

    /// Decodes a member's assignment (``SyncGroupResponse/assignment``).
    /// - Throws: the reader's ``DecodeError`` when the bytes are short or invalid.
    public init(decoding bytes: [UInt8]) throws(DecodeError) {
        self = try ConsumerProtocol.decode(bytes) { Self(from: &$0) }
    }
}

/// Partitions of one topic, by name, as the consumer protocol writes them:
///
///     topic:STRING partitions:[INT32]
public struct ConsumerProtocolTopicPartitions: Sendable, Hashable {
    /// Topic name.
    public var topic: String
    /// Partition indexes.
    public var partitions: [Int32]

    /// Creates an entry.
    public init(topic: String, partitions: [Int32]) {
        self.topic = topic
        self.partitions = partitions
    }

    /// Bytes an entry takes at least: an empty name and an empty array.
    static let minimumSize = 6

    /// Writes the entry.
    func encode(into writer: inout ByteWriter) {
        writer.writeString(topic)
        writer.writeArrayCount(partitions.count, flexible: false)
        for partition in partitions { writer.writeInt32(partition) }
    }

    /// Reads an entry; check `r.error` afterwards.
    init(from r: inout ByteReader) {
        topic = r.readString()
        let n = r.readArrayCount(flexible: false, minimumElementSize: 4)
        partitions = r.readArray(count: n) { $0.readInt32() }
    }
}
