import XCTest
import KlifeProtocol

/// The consumer protocol's subscription and assignment (the bytes inside JoinGroup and SyncGroup).
final class ConsumerProtocolTests: XCTestCase {
    private static let subscription = ConsumerProtocolSubscription(
        topics: ["a", "b"], userData: [0x01], ownedPartitions: [.init(topic: "a", partitions: [0, 2])],
        generationID: 5, rackID: "r1")

    /// What of ``subscription`` a given version carries.
    private static func subscription(at version: Int16) -> ConsumerProtocolSubscription {
        var s = subscription
        if version < 1 { s.ownedPartitions = [] }
        if version < 2 { s.generationID = -1 }
        if version < 3 { s.rackID = nil }
        return s
    }

    private static let subscriptionV0: [UInt8] = [
        0x00, 0x00,  // version 0
        0x00, 0x00, 0x00, 0x02,  // topics: ARRAY 2
        0x00, 0x01, 0x61,  // "a"
        0x00, 0x01, 0x62,  // "b"
        0x00, 0x00, 0x00, 0x01, 0x01,  // user_data: NULLABLE_BYTES 1
    ]

    private static let subscriptionV1: [UInt8] = [
        0x00, 0x01,  // version 1
        0x00, 0x00, 0x00, 0x02,  // topics: ARRAY 2
        0x00, 0x01, 0x61,  // "a"
        0x00, 0x01, 0x62,  // "b"
        0x00, 0x00, 0x00, 0x01, 0x01,  // user_data: NULLABLE_BYTES 1
        0x00, 0x00, 0x00, 0x01,  // owned_partitions: ARRAY 1 (v1+)
        0x00, 0x01, 0x61,  // topic "a"
        0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,  // partitions [0, 2]
    ]

    private static let subscriptionV2: [UInt8] = [
        0x00, 0x02,  // version 2
        0x00, 0x00, 0x00, 0x02,  // topics: ARRAY 2
        0x00, 0x01, 0x61,  // "a"
        0x00, 0x01, 0x62,  // "b"
        0x00, 0x00, 0x00, 0x01, 0x01,  // user_data: NULLABLE_BYTES 1
        0x00, 0x00, 0x00, 0x01,  // owned_partitions: ARRAY 1
        0x00, 0x01, 0x61,  // topic "a"
        0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,  // partitions [0, 2]
        0x00, 0x00, 0x00, 0x05,  // generation_id 5 (v2+)
    ]

    private static let subscriptionV3: [UInt8] = [
        0x00, 0x03,  // version 3
        0x00, 0x00, 0x00, 0x02,  // topics: ARRAY 2
        0x00, 0x01, 0x61,  // "a"
        0x00, 0x01, 0x62,  // "b"
        0x00, 0x00, 0x00, 0x01, 0x01,  // user_data: NULLABLE_BYTES 1
        0x00, 0x00, 0x00, 0x01,  // owned_partitions: ARRAY 1
        0x00, 0x01, 0x61,  // topic "a"
        0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,  // partitions [0, 2]
        0x00, 0x00, 0x00, 0x05,  // generation_id 5
        0x00, 0x02, 0x72, 0x31,  // rack_id "r1" (v3+)
    ]

    private static let subscriptionGolden = [subscriptionV0, subscriptionV1, subscriptionV2, subscriptionV3]

    // MARK: Subscription

    func testSubscriptionGoldenBytesPerVersion() throws {
        XCTAssertEqual(ConsumerProtocol.protocolType, "consumer")
        XCTAssertEqual(ConsumerProtocol.supportedVersions, 0...3)
        for version in ConsumerProtocol.supportedVersions {
            let golden = Self.subscriptionGolden[Int(version)]
            XCTAssertEqual(Self.subscription.encoded(version: version), golden, "v\(version)")
            XCTAssertEqual(try ConsumerProtocolSubscription(decoding: golden), Self.subscription(at: version),
                           "v\(version)")
        }
        XCTAssertEqual(Self.subscription.encoded(), Self.subscriptionV3, "v3 unless told")
    }

    func testSubscriptionDefaultsAndNulls() throws {
        let minimal = ConsumerProtocolSubscription(topics: [])
        XCTAssertEqual(minimal.encoded(version: 3), [
            0x00, 0x03,  // version 3
            0x00, 0x00, 0x00, 0x00,  // topics: ARRAY 0
            0xff, 0xff, 0xff, 0xff,  // user_data null
            0x00, 0x00, 0x00, 0x00,  // owned_partitions: ARRAY 0
            0xff, 0xff, 0xff, 0xff,  // generation_id -1
            0xff, 0xff,  // rack_id null
        ])
        XCTAssertEqual(try ConsumerProtocolSubscription(decoding: minimal.encoded(version: 3)), minimal)
        // Empty user data is not null.
        let empty = ConsumerProtocolSubscription(topics: [], userData: [])
        XCTAssertEqual(empty.encoded(version: 0), [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00])
        XCTAssertEqual(try ConsumerProtocolSubscription(decoding: empty.encoded(version: 0)).userData, [])
    }

    func testSubscriptionRoundTripsAtEveryVersion() throws {
        let samples = [
            Self.subscription,
            ConsumerProtocolSubscription(topics: ["événements"], ownedPartitions: [
                .init(topic: "événements", partitions: [3]), .init(topic: "x", partitions: []),
            ], generationID: 0),
        ]
        for sample in samples {
            for version in ConsumerProtocol.supportedVersions {
                let bytes = sample.encoded(version: version)
                let decoded = try ConsumerProtocolSubscription(decoding: bytes)
                XCTAssertEqual(decoded.encoded(version: version), bytes, "v\(version)")
                XCTAssertEqual(decoded.topics, sample.topics)
            }
        }
    }

    /// A newer member's subscription: v3's fields, then fields this codec does not know.
    private static let subscriptionV9: [UInt8] = [
        0x00, 0x09,  // version 9
        0x00, 0x00, 0x00, 0x02,  // topics: ARRAY 2
        0x00, 0x01, 0x61,  // "a"
        0x00, 0x01, 0x62,  // "b"
        0x00, 0x00, 0x00, 0x01, 0x01,  // user_data: NULLABLE_BYTES 1
        0x00, 0x00, 0x00, 0x01,  // owned_partitions: ARRAY 1
        0x00, 0x01, 0x61,  // topic "a"
        0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,  // partitions [0, 2]
        0x00, 0x00, 0x00, 0x05,  // generation_id 5
        0x00, 0x02, 0x72, 0x31,  // rack_id "r1"
        0x00, 0x03, 0x6e, 0x65, 0x77,  // a v4+ field (unknown here)
        0xde, 0xad, 0xbe, 0xef,  // another one
    ]

    func testSubscriptionOfAHigherVersionReadsTheKnownPrefix() throws {
        XCTAssertEqual(try ConsumerProtocolSubscription(decoding: Self.subscriptionV9), Self.subscription)
        // The reader form consumes everything, so an enclosing decoder sees the bytes as used.
        Self.subscriptionV9.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            XCTAssertEqual(ConsumerProtocolSubscription(from: &reader), Self.subscription)
            XCTAssertTrue(reader.isAtEnd)
        }
        // A higher version that stops right after v3's fields is as good.
        var v4 = Self.subscriptionV3
        v4[1] = 0x04
        XCTAssertEqual(try ConsumerProtocolSubscription(decoding: v4), Self.subscription)
        // Trailing bytes after a known version's fields are ignored too, as Kafka's reader does.
        XCTAssertEqual(try ConsumerProtocolSubscription(decoding: Self.subscriptionV1 + [0x00, 0x00, 0x00, 0x07]),
                       Self.subscription(at: 1))
    }

    func testSubscriptionTruncationsFail() {
        for golden in Self.subscriptionGolden + [Self.subscriptionV9] {
            // Every cut inside v3's fields (or the version's own) fails; past them is unknown data.
            let known = golden == Self.subscriptionV9 ? Self.subscriptionV3.count : golden.count
            for n in 0..<known {
                XCTAssertThrowsError(try ConsumerProtocolSubscription(decoding: Array(golden.prefix(n))),
                                     "v\(golden[1]) prefix \(n)") { error in
                    XCTAssertTrue(error is DecodeError, "v\(golden[1]) prefix \(n)")
                }
            }
        }
    }

    func testSubscriptionHostileInput() {
        func kind(_ bytes: [UInt8]) -> DecodeError.Kind? {
            do throws(DecodeError) {
                _ = try ConsumerProtocolSubscription(decoding: bytes)
                return nil
            } catch {
                return error.kind
            }
        }
        XCTAssertEqual(kind([0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), .invalidValue, "version -1")
        XCTAssertEqual(kind([0x80, 0x00]), .invalidValue, "version -32768")
        XCTAssertEqual(kind([0, 0, 0x7f, 0xff, 0xff, 0xff]), .invalidLength, "topic count 0x7fffffff")
        XCTAssertEqual(kind([0, 0, 0, 0, 0, 1, 0x7f, 0xff]), .invalidLength, "topic name length 0x7fff")
        XCTAssertEqual(kind([0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]), .invalidLength, "user_data length")
        XCTAssertEqual(kind([0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe]), .invalidLength, "user_data length -2")
        // v1: owned_partitions claims 2 entries in 10 bytes (each needs 6).
        XCTAssertEqual(kind([0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2] + [UInt8](repeating: 0, count: 10)),
                       .invalidLength, "owned_partitions count")
        // v1: one owned topic whose partitions claim 1,000,000 entries.
        XCTAssertEqual(kind([0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0x00, 0x0f, 0x42, 0x40]),
                       .invalidLength, "partition count")
        XCTAssertEqual(kind([0, 0, 0, 0, 0, 1, 0, 2, 0xc3, 0x28, 0xff, 0xff, 0xff, 0xff]), .invalidString,
                       "topic name not UTF-8")
    }

    // MARK: Assignment

    private static let assignment = ConsumerProtocolAssignment(assignedPartitions: [
        .init(topic: "a", partitions: [0, 1]),
        .init(topic: "b", partitions: []),
    ])

    private static let assignmentV0: [UInt8] = [
        0x00, 0x00,  // version 0
        0x00, 0x00, 0x00, 0x02,  // assigned_partitions: ARRAY 2
        0x00, 0x01, 0x61,  // topic "a"
        0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  // partitions [0, 1]
        0x00, 0x01, 0x62,  // topic "b"
        0x00, 0x00, 0x00, 0x00,  // partitions []
        0xff, 0xff, 0xff, 0xff,  // user_data null
    ]

    func testAssignmentGoldenBytesPerVersion() throws {
        // Every version shares v0's layout; only the version differs.
        for version in ConsumerProtocol.supportedVersions {
            var golden = Self.assignmentV0
            golden[1] = UInt8(version)
            XCTAssertEqual(Self.assignment.encoded(version: version), golden, "v\(version)")
            XCTAssertEqual(try ConsumerProtocolAssignment(decoding: golden), Self.assignment, "v\(version)")
        }
        XCTAssertEqual(Self.assignment.encoded().prefix(2), [0x00, 0x03], "v3 unless told")
    }

    /// v3 with user data.
    private static let assignmentWithUserData: [UInt8] = [
        0x00, 0x03,  // version 3
        0x00, 0x00, 0x00, 0x00,  // assigned_partitions: ARRAY 0
        0x00, 0x00, 0x00, 0x02, 0xca, 0xfe,  // user_data: NULLABLE_BYTES 2
    ]

    func testAssignmentWithUserDataRoundTrips() throws {
        let a = try ConsumerProtocolAssignment(decoding: Self.assignmentWithUserData)
        XCTAssertEqual(a, ConsumerProtocolAssignment(assignedPartitions: [], userData: [0xca, 0xfe]))
        XCTAssertEqual(a.encoded(version: 3), Self.assignmentWithUserData)
    }

    func testAssignmentOfAHigherVersionReadsTheKnownPrefix() throws {
        var v7 = Self.assignmentV0 + [0x00, 0x00, 0x00, 0x2a, 0x01]
        v7[1] = 0x07
        XCTAssertEqual(try ConsumerProtocolAssignment(decoding: v7), Self.assignment)
    }

    func testAssignmentTruncationsAndHostileInputFail() {
        for n in 0..<Self.assignmentV0.count {
            XCTAssertThrowsError(try ConsumerProtocolAssignment(decoding: Array(Self.assignmentV0.prefix(n))),
                                 "prefix \(n)")
        }
        func kind(_ bytes: [UInt8]) -> DecodeError.Kind? {
            do throws(DecodeError) {
                _ = try ConsumerProtocolAssignment(decoding: bytes)
                return nil
            } catch {
                return error.kind
            }
        }
        XCTAssertEqual(kind([]), .truncated, "the empty assignment a left-out member gets")
        XCTAssertEqual(kind([0xff, 0xfe, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), .invalidValue, "version -2")
        XCTAssertEqual(kind([0, 0, 0x7f, 0xff, 0xff, 0xff]), .invalidLength, "topic count 0x7fffffff")
        XCTAssertEqual(kind([0, 0, 0, 0, 0, 1, 0, 0, 0x00, 0x0f, 0x42, 0x40]), .invalidLength, "partition count")
        XCTAssertEqual(kind([0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]), .invalidLength, "user_data length")
    }

    // MARK: Inside the group messages

    func testLeaderFlow() throws {
        // The leader reads each member's subscription from its JoinGroup response...
        let join = JoinGroupResponse(generationID: 3, protocolName: "range", leader: "m1", memberID: "m1", members: [
            .init(memberID: "m1", metadata: Self.subscriptionV9),
            .init(memberID: "m2", metadata: ConsumerProtocolSubscription(topics: ["b"]).encoded(version: 0)),
        ])
        let subscriptions = try join.members.map { try ConsumerProtocolSubscription(decoding: $0.metadata) }
        XCTAssertEqual(subscriptions.map(\.topics), [["a", "b"], ["b"]])
        // ...and sends every member's assignment; a member decodes its own from SyncGroup.
        let sync = SyncGroupRequest(groupID: "g", generationID: join.generationID, memberID: join.memberID,
                                    assignments: [.init(memberID: "m2", assignment: Self.assignment.encoded(version: 0))])
        let bytes = MsgWire.encode(sync, version: 0)
        XCTAssertEqual(Array(bytes.suffix(Self.assignmentV0.count)), Self.assignmentV0)
        let answer = SyncGroupResponse(assignment: Self.assignmentV0)
        XCTAssertEqual(try ConsumerProtocolAssignment(decoding: answer.assignment), Self.assignment)
    }
}
