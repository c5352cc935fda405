import XCTest
@testable import KlifeProtocol

// MARK: - Shared helpers for the message tests (prefixed `Msg` to stay out of other test files' way)

/// Encoding and decoding message bodies as byte arrays.
enum MsgWire {
    /// The body of `request` at `version`.
    static func encode<R: KafkaRequest>(_ request: R, version: Int16) -> [UInt8] {
        var writer = ByteWriter()
        request.encode(into: &writer, version: version)
        return writer.bytes
    }

    /// Bytes produced by `body`.
    static func write(_ body: (inout ByteWriter) -> Void) -> [UInt8] {
        var writer = ByteWriter()
        body(&writer)
        return writer.bytes
    }

    /// Decodes `bytes` as `T` at `version`, reporting the reader's final state.
    static func decode<T: KafkaResponse>(_: T.Type, _ bytes: [UInt8], version: Int16)
        -> (value: T, error: DecodeError?, atEnd: Bool) {
        bytes.withUnsafeBytes { buffer in
            var reader = ByteReader(buffer)
            let value = T(from: &reader, version: version)
            return (value, reader.error, reader.isAtEnd)
        }
    }
}

/// Decodes `bytes`, failing the test unless decoding is clean and consumes every byte.
func msgDecode<T: KafkaResponse>(_ type: T.Type, _ bytes: [UInt8], version: Int16,
                                 file: StaticString = #filePath, line: UInt = #line) -> T {
    let (value, error, atEnd) = MsgWire.decode(type, bytes, version: version)
    XCTAssertNil(error, "\(T.self) v\(version): \(error.map(String.init(describing:)) ?? "")", file: file, line: line)
    XCTAssertTrue(atEnd, "\(T.self) v\(version): bytes left over", file: file, line: line)
    return value
}

/// A test UUID whose bytes are 0x01...0x10.
let msgUUID = KafkaUUID(high: 0x0102_0304_0506_0708, low: 0x090a_0b0c_0d0e_0f10)

/// Deterministic xorshift64* generator, so fuzz failures reproduce.
struct MsgXorShift: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9e37_79b9_7f4a_7c15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_f491_4f6c_dd1d
    }
}

/// One response type at one version, with a valid encoding to attack.
struct MsgHostileCase: Sendable {
    let label: String
    let valid: [UInt8]
    let decode: @Sendable ([UInt8]) -> (error: DecodeError?, atEnd: Bool)

    static func make<T: KafkaResponse>(_: T.Type, _ version: Int16, _ valid: [UInt8]) -> MsgHostileCase {
        MsgHostileCase(label: "\(T.self) v\(version)", valid: valid) { bytes in
            let r = MsgWire.decode(T.self, bytes, version: version)
            return (r.error, r.atEnd)
        }
    }
}

// MARK: - Hostile input

final class HostileInputTests: XCTestCase {
    /// Each response type at a non-flexible and a flexible version (and some in-between versions).
    static let cases: [MsgHostileCase] = [
        .make(ApiVersionsResponse.self, 0, ApiVersionsResponse.msgSample.msgEncoded(version: 0)),
        .make(ApiVersionsResponse.self, 2, ApiVersionsResponse.msgSample.msgEncoded(version: 2)),
        .make(ApiVersionsResponse.self, 3, ApiVersionsResponse.msgSample.msgEncoded(version: 3)),
        .make(MetadataResponse.self, 1, MetadataResponse.msgSample.msgEncoded(version: 1)),
        .make(MetadataResponse.self, 8, MetadataResponse.msgSample.msgEncoded(version: 8)),
        .make(MetadataResponse.self, 9, MetadataResponse.msgSample.msgEncoded(version: 9)),
        .make(MetadataResponse.self, 12, MetadataResponse.msgSample.msgEncoded(version: 12)),
        .make(ListOffsetsResponse.self, 5, ListOffsetsResponse.msgSample.msgEncoded(version: 5)),
        .make(ListOffsetsResponse.self, 9, ListOffsetsResponse.msgSample.msgEncoded(version: 9)),
        .make(CreateTopicsResponse.self, 4, CreateTopicsResponse.msgSample.msgEncoded(version: 4)),
        .make(CreateTopicsResponse.self, 7, CreateTopicsResponse.msgSample.msgEncoded(version: 7)),
        .make(DeleteTopicsResponse.self, 3, DeleteTopicsResponse.msgSample.msgEncoded(version: 3)),
        .make(DeleteTopicsResponse.self, 6, DeleteTopicsResponse.msgSample.msgEncoded(version: 6)),
        .make(FindCoordinatorResponse.self, 2, FindCoordinatorResponse.msgSample.msgEncoded(version: 2)),
        .make(FindCoordinatorResponse.self, 3, FindCoordinatorResponse.msgSample.msgEncoded(version: 3)),
        .make(FindCoordinatorResponse.self, 6, FindCoordinatorResponse.msgSample.msgEncoded(version: 6)),
        .make(FetchResponse.self, 11, FetchResponse.msgSample.msgEncoded(version: 11)),
        .make(FetchResponse.self, 12, FetchResponse.msgSample.msgEncoded(version: 12)),
        .make(FetchResponse.self, 17, FetchResponse.msgSample.msgEncoded(version: 17)),
        .make(OffsetCommitResponse.self, 2, OffsetCommitResponse.msgSample.msgEncoded(version: 2)),
        .make(OffsetCommitResponse.self, 3, OffsetCommitResponse.msgSample.msgEncoded(version: 3)),
        .make(OffsetCommitResponse.self, 7, OffsetCommitResponse.msgSample.msgEncoded(version: 7)),
        .make(OffsetCommitResponse.self, 8, OffsetCommitResponse.msgSample.msgEncoded(version: 8)),
        .make(OffsetFetchResponse.self, 1, OffsetFetchResponse.msgSample(version: 1).msgEncoded(version: 1)),
        .make(OffsetFetchResponse.self, 2, OffsetFetchResponse.msgSample(version: 2).msgEncoded(version: 2)),
        .make(OffsetFetchResponse.self, 3, OffsetFetchResponse.msgSample(version: 3).msgEncoded(version: 3)),
        .make(OffsetFetchResponse.self, 5, OffsetFetchResponse.msgSample(version: 5).msgEncoded(version: 5)),
        .make(OffsetFetchResponse.self, 6, OffsetFetchResponse.msgSample(version: 6).msgEncoded(version: 6)),
        .make(OffsetFetchResponse.self, 7, OffsetFetchResponse.msgSample(version: 7).msgEncoded(version: 7)),
        .make(OffsetFetchResponse.self, 8, OffsetFetchResponse.msgSample(version: 8).msgEncoded(version: 8)),
        .make(OffsetFetchResponse.self, 9, OffsetFetchResponse.msgSample(version: 9).msgEncoded(version: 9)),
        .make(ConsumerGroupHeartbeatResponse.self, 0, ConsumerGroupHeartbeatResponse.msgSample.msgEncoded(version: 0)),
        .make(ConsumerGroupHeartbeatResponse.self, 1, ConsumerGroupHeartbeatResponse.msgSample.msgEncoded(version: 1)),
        .make(ConsumerGroupHeartbeatResponse.self, 1,
              ConsumerGroupHeartbeatResponse.msgSampleWithoutAssignment.msgEncoded(version: 1)),
        .make(ConsumerGroupDescribeResponse.self, 0, ConsumerGroupDescribeResponse.msgSample.msgEncoded(version: 0)),
        .make(ConsumerGroupDescribeResponse.self, 1, ConsumerGroupDescribeResponse.msgSample.msgEncoded(version: 1)),
        .make(JoinGroupResponse.self, 0, JoinGroupResponse.msgSample.msgEncoded(version: 0)),
        .make(JoinGroupResponse.self, 2, JoinGroupResponse.msgSample.msgEncoded(version: 2)),
        .make(JoinGroupResponse.self, 5, JoinGroupResponse.msgSample.msgEncoded(version: 5)),
        .make(JoinGroupResponse.self, 6, JoinGroupResponse.msgSample.msgEncoded(version: 6)),
        .make(JoinGroupResponse.self, 7, JoinGroupResponse.msgSample.msgEncoded(version: 7)),
        .make(JoinGroupResponse.self, 9, JoinGroupResponse.msgSample.msgEncoded(version: 9)),
        .make(SyncGroupResponse.self, 0, SyncGroupResponse.msgSample.msgEncoded(version: 0)),
        .make(SyncGroupResponse.self, 1, SyncGroupResponse.msgSample.msgEncoded(version: 1)),
        .make(SyncGroupResponse.self, 4, SyncGroupResponse.msgSample.msgEncoded(version: 4)),
        .make(SyncGroupResponse.self, 5, SyncGroupResponse.msgSample.msgEncoded(version: 5)),
        .make(HeartbeatResponse.self, 0, HeartbeatResponse.msgSample.msgEncoded(version: 0)),
        .make(HeartbeatResponse.self, 1, HeartbeatResponse.msgSample.msgEncoded(version: 1)),
        .make(HeartbeatResponse.self, 4, HeartbeatResponse.msgSample.msgEncoded(version: 4)),
        .make(LeaveGroupResponse.self, 0, LeaveGroupResponse.msgSample.msgEncoded(version: 0)),
        .make(LeaveGroupResponse.self, 1, LeaveGroupResponse.msgSample.msgEncoded(version: 1)),
        .make(LeaveGroupResponse.self, 3, LeaveGroupResponse.msgSample.msgEncoded(version: 3)),
        .make(LeaveGroupResponse.self, 4, LeaveGroupResponse.msgSample.msgEncoded(version: 4)),
        .make(LeaveGroupResponse.self, 5, LeaveGroupResponse.msgSample.msgEncoded(version: 5)),
        .make(OffsetDeleteResponse.self, 0, OffsetDeleteResponse.msgSample.msgEncoded(version: 0)),
        .make(DescribeGroupsResponse.self, 0, DescribeGroupsResponse.msgSample.msgEncoded(version: 0)),
        .make(DescribeGroupsResponse.self, 1, DescribeGroupsResponse.msgSample.msgEncoded(version: 1)),
        .make(DescribeGroupsResponse.self, 3, DescribeGroupsResponse.msgSample.msgEncoded(version: 3)),
        .make(DescribeGroupsResponse.self, 4, DescribeGroupsResponse.msgSample.msgEncoded(version: 4)),
        .make(DescribeGroupsResponse.self, 5, DescribeGroupsResponse.msgSample.msgEncoded(version: 5)),
        .make(ListGroupsResponse.self, 0, ListGroupsResponse.msgSample.msgEncoded(version: 0)),
        .make(ListGroupsResponse.self, 1, ListGroupsResponse.msgSample.msgEncoded(version: 1)),
        .make(ListGroupsResponse.self, 3, ListGroupsResponse.msgSample.msgEncoded(version: 3)),
        .make(ListGroupsResponse.self, 4, ListGroupsResponse.msgSample.msgEncoded(version: 4)),
        .make(ListGroupsResponse.self, 5, ListGroupsResponse.msgSample.msgEncoded(version: 5)),
        .make(DeleteGroupsResponse.self, 0, DeleteGroupsResponse.msgSample.msgEncoded(version: 0)),
        .make(DeleteGroupsResponse.self, 2, DeleteGroupsResponse.msgSample.msgEncoded(version: 2)),
    ]

    func testValidEncodingsDecodeCleanly() {
        for c in Self.cases {
            let (error, atEnd) = c.decode(c.valid)
            XCTAssertNil(error, c.label)
            XCTAssertTrue(atEnd, c.label)
        }
    }

    func testEveryTruncationFailsWithoutTrapping() {
        for c in Self.cases {
            for length in 0..<c.valid.count {
                let (error, atEnd) = c.decode(Array(c.valid.prefix(length)))
                // A prefix may only decode cleanly if it is itself a complete message.
                XCTAssertTrue(error != nil || atEnd, "\(c.label): prefix \(length) of \(c.valid.count)")
            }
        }
    }

    func testRandomBytesAndMutationsNeverTrap() {
        var rng = MsgXorShift(seed: 0x6b6c_6966_6521)
        var failures = 0
        for i in 0..<2000 {
            let c = Self.cases[i % Self.cases.count]
            var bytes: [UInt8]
            switch i % 4 {
            case 0:  // pure noise of random length
                bytes = (0..<Int.random(in: 0...256, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:  // flip 1–4 bytes of a valid encoding
                bytes = c.valid
                for _ in 0..<Int.random(in: 1...4, using: &rng) where !bytes.isEmpty {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 2:  // set a byte to a boundary value (lengths and counts love these)
                bytes = c.valid
                let edges: [UInt8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff]
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = edges.randomElement(using: &rng)!
            default:  // splice: valid prefix + noise
                bytes = Array(c.valid.prefix(Int.random(in: 0...c.valid.count, using: &rng)))
                bytes += (0..<Int.random(in: 0...32, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            let (error, _) = c.decode(bytes)
            if error != nil { failures += 1 }
        }
        // Not an assertion about which inputs fail, only that none trapped and most noise is rejected.
        XCTAssertGreaterThan(failures, 500)
    }

    func testHugeArrayCountIsRejectedBeforeAllocating() {
        // INT32 0x7fffffff as an ARRAY count, and the same count as a COMPACT_ARRAY varint (N+1 = 0x80000000).
        let int32Count: [UInt8] = [0x7f, 0xff, 0xff, 0xff]
        let varintCount: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x08]
        let zero32: [UInt8] = [0, 0, 0, 0]
        func at<T: KafkaResponse>(_: T.Type, _ v: Int16) -> ([UInt8]) -> DecodeError? {
            { MsgWire.decode(T.self, $0, version: v).error }
        }
        let attacks: [(String, [UInt8], ([UInt8]) -> DecodeError?)] = [
            ("ApiVersions v0 api_keys", [0, 0] + int32Count, at(ApiVersionsResponse.self, 0)),
            ("ApiVersions v3 api_keys", [0, 0] + varintCount, at(ApiVersionsResponse.self, 3)),
            ("Metadata v1 brokers", int32Count, at(MetadataResponse.self, 1)),
            ("Metadata v12 brokers", zero32 + varintCount, at(MetadataResponse.self, 12)),
            ("ListOffsets v5 topics", zero32 + int32Count, at(ListOffsetsResponse.self, 5)),
            ("ListOffsets v9 topics", zero32 + varintCount, at(ListOffsetsResponse.self, 9)),
            ("CreateTopics v4 topics", zero32 + int32Count, at(CreateTopicsResponse.self, 4)),
            ("CreateTopics v7 topics", zero32 + varintCount, at(CreateTopicsResponse.self, 7)),
            ("DeleteTopics v3 responses", zero32 + int32Count, at(DeleteTopicsResponse.self, 3)),
            ("DeleteTopics v6 responses", zero32 + varintCount, at(DeleteTopicsResponse.self, 6)),
            ("FindCoordinator v6 coordinators", zero32 + varintCount, at(FindCoordinatorResponse.self, 6)),
            ("Fetch v11 responses", zero32 + [0, 0] + zero32 + int32Count, at(FetchResponse.self, 11)),
            ("Fetch v17 responses", zero32 + [0, 0] + zero32 + varintCount, at(FetchResponse.self, 17)),
            ("OffsetCommit v2 topics", int32Count, at(OffsetCommitResponse.self, 2)),
            ("OffsetCommit v8 topics", zero32 + varintCount, at(OffsetCommitResponse.self, 8)),
            ("OffsetFetch v1 topics", int32Count, at(OffsetFetchResponse.self, 1)),
            ("OffsetFetch v6 topics", zero32 + varintCount, at(OffsetFetchResponse.self, 6)),
            ("OffsetFetch v8 groups", zero32 + varintCount, at(OffsetFetchResponse.self, 8)),
            // throttle, error, null message, null member id, epoch, interval, assignment present.
            ("ConsumerGroupHeartbeat v0 assignment topics", zero32 + [0, 0, 0x00, 0x00] + zero32 + zero32 + [0x01]
                + varintCount, at(ConsumerGroupHeartbeatResponse.self, 0)),
            ("ConsumerGroupHeartbeat v1 assignment topics", zero32 + [0, 0, 0x00, 0x00] + zero32 + zero32 + [0x01]
                + varintCount, at(ConsumerGroupHeartbeatResponse.self, 1)),
            ("ConsumerGroupDescribe v0 groups", zero32 + varintCount, at(ConsumerGroupDescribeResponse.self, 0)),
            ("ConsumerGroupDescribe v1 groups", zero32 + varintCount, at(ConsumerGroupDescribeResponse.self, 1)),
            // error, generation, then empty protocol name, leader and member id.
            ("JoinGroup v0 members", [0, 0] + zero32 + [0, 0, 0, 0, 0, 0] + int32Count, at(JoinGroupResponse.self, 0)),
            ("JoinGroup v5 members", zero32 + [0, 0] + zero32 + [0, 0, 0, 0, 0, 0] + int32Count,
             at(JoinGroupResponse.self, 5)),
            ("JoinGroup v6 members", zero32 + [0, 0] + zero32 + [0x01, 0x01, 0x01] + varintCount,
             at(JoinGroupResponse.self, 6)),
            // v9: null protocol type and name, empty leader, skip_assignment, empty member id.
            ("JoinGroup v9 members", zero32 + [0, 0] + zero32 + [0x00, 0x00, 0x01, 0x00, 0x01] + varintCount,
             at(JoinGroupResponse.self, 9)),
            ("LeaveGroup v3 members", zero32 + [0, 0] + int32Count, at(LeaveGroupResponse.self, 3)),
            ("LeaveGroup v5 members", zero32 + [0, 0] + varintCount, at(LeaveGroupResponse.self, 5)),
            ("OffsetDelete v0 topics", [0, 0] + zero32 + int32Count, at(OffsetDeleteResponse.self, 0)),
            ("DescribeGroups v0 groups", int32Count, at(DescribeGroupsResponse.self, 0)),
            ("DescribeGroups v4 groups", zero32 + int32Count, at(DescribeGroupsResponse.self, 4)),
            ("DescribeGroups v5 groups", zero32 + varintCount, at(DescribeGroupsResponse.self, 5)),
            ("ListGroups v0 groups", [0, 0] + int32Count, at(ListGroupsResponse.self, 0)),
            ("ListGroups v2 groups", zero32 + [0, 0] + int32Count, at(ListGroupsResponse.self, 2)),
            ("ListGroups v5 groups", zero32 + [0, 0] + varintCount, at(ListGroupsResponse.self, 5)),
            ("DeleteGroups v0 results", zero32 + int32Count, at(DeleteGroupsResponse.self, 0)),
            ("DeleteGroups v2 results", zero32 + varintCount, at(DeleteGroupsResponse.self, 2)),
        ]
        for (label, bytes, decode) in attacks {
            XCTAssertEqual(decode(bytes)?.kind, .invalidLength, label)
        }
    }

    func testHugeNestedCountsAndLengthsAreRejected() {
        // Metadata v1 with one broker whose host length claims 0x7fff bytes.
        let hostLength: [UInt8] = [0, 0, 0, 1, /* node */ 0, 0, 0, 1, /* host len */ 0x7f, 0xff]
        XCTAssertEqual(MsgWire.decode(MetadataResponse.self, hostLength, version: 1).error?.kind, .invalidLength)
        // Fetch v4: a partition whose records claim 0x7fffffff bytes.
        var fetch: [UInt8] = [0, 0, 0, 0, /* responses */ 0, 0, 0, 1, 0, 1, 0x74, /* partitions */ 0, 0, 0, 1]
        fetch += [0, 0, 0, 0, /* error */ 0, 0] + [UInt8](repeating: 0, count: 16) + [0xff, 0xff, 0xff, 0xff]
        fetch += [0x7f, 0xff, 0xff, 0xff]
        XCTAssertEqual(MsgWire.decode(FetchResponse.self, fetch, version: 4).error?.kind, .invalidLength)
        // Fetch v12: a top-level tagged field whose size runs past the end.
        let tag: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* responses */ 0x01, /* 1 tag */ 0x01, 0x00, 0x7f]
        XCTAssertNotNil(MsgWire.decode(FetchResponse.self, tag, version: 12).error)
        // SyncGroup v5: null protocol type and name, then an assignment claiming 0x7fffffff bytes.
        let assignment: [UInt8] = [0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x80, 0x80, 0x80, 0x80, 0x08]
        XCTAssertEqual(MsgWire.decode(SyncGroupResponse.self, assignment, version: 5).error?.kind, .invalidLength)
        // JoinGroup v6: one member whose metadata claims 0x7fffffff bytes.
        let metadata: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x01, 0x01, 0x02, 0x01, 0x00,
                                 0x80, 0x80, 0x80, 0x80, 0x08]
        XCTAssertEqual(MsgWire.decode(JoinGroupResponse.self, metadata, version: 6).error?.kind, .invalidLength)
    }

    func testMalformedTaggedPayloadIsReported() {
        // Fetch v16: node_endpoints (tag 0) declares 2 bytes, but its array needs more.
        let bytes: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x01, 0x00, 0x02, 0x02, 0x00]
        XCTAssertNotNil(MsgWire.decode(FetchResponse.self, bytes, version: 16).error)
        // The same payload under an unknown tag is simply skipped.
        let unknown: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x01, 0x07, 0x02, 0x02, 0x00]
        XCTAssertNil(MsgWire.decode(FetchResponse.self, unknown, version: 16).error)
    }
}
