import XCTest
import KlifeProtocol

extension DescribeGroupsResponse {
    /// Test-only encoder: throttle from v1, authorized operations from v3, instance ids from v4.
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 5
        return MsgWire.write { w in
            if v >= 1 { w.writeInt32(throttleTimeMs) }
            w.writeArrayCount(groups.count, flexible: f)
            for g in groups {
                w.writeInt16(g.errorCode)
                w.writeString(g.groupID, flexible: f)
                w.writeString(g.groupState, flexible: f)
                w.writeString(g.protocolType, flexible: f)
                w.writeString(g.protocolData, flexible: f)
                w.writeArrayCount(g.members.count, flexible: f)
                for m in g.members {
                    w.writeString(m.memberID, flexible: f)
                    if v >= 4 { w.writeNullableString(m.groupInstanceID, flexible: f) }
                    w.writeString(m.clientID, flexible: f)
                    w.writeString(m.clientHost, flexible: f)
                    w.writeSizedBytes(m.memberMetadata, flexible: f)
                    w.writeSizedBytes(m.memberAssignment, flexible: f)
                    w.writeEmptyTaggedFields(flexible: f)
                }
                if v >= 3 { w.writeInt32(g.authorizedOperations) }
                w.writeEmptyTaggedFields(flexible: f)
            }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    static let msgSample = DescribeGroupsResponse(throttleTimeMs: 6, groups: [
        DescribedGroup(
            groupID: "orders-app", groupState: "Stable", protocolType: "consumer", protocolData: "range", members: [
                Member(memberID: "m-1", groupInstanceID: "instance-1", clientID: "klife", clientHost: "/10.0.0.7",
                       memberMetadata: [0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x74],
                       memberAssignment: [0x00, 0x03, 0x00, 0x00, 0x00, 0x00]),
                Member(memberID: "m-2", clientID: "legacy", clientHost: "/10.0.0.8"),
            ], authorizedOperations: 0x0148),
        DescribedGroup(groupID: "ghost", groupState: "Dead"),
    ])

    /// ``msgSample`` as decoded at `version`: fields the version does not carry take their defaults.
    static func msgExpected(version v: Int16) -> DescribeGroupsResponse {
        var expected = msgSample
        if v < 1 { expected.throttleTimeMs = 0 }
        for g in expected.groups.indices {
            if v < 3 { expected.groups[g].authorizedOperations = .min }
            for m in expected.groups[g].members.indices where v < 4 {
                expected.groups[g].members[m].groupInstanceID = nil
            }
        }
        return expected
    }
}

final class DescribeGroupsTests: XCTestCase {
    func testApiKeyAndHeaders() {
        XCTAssertEqual(DescribeGroupsRequest.apiKey.rawValue, 15)
        XCTAssertEqual(DescribeGroupsRequest.apiKey.description, "DescribeGroups")
        XCTAssertEqual(DescribeGroupsRequest.supportedVersions, 0...5)
        XCTAssertEqual(DescribeGroupsRequest.requestHeaderVersion(4), 1)
        XCTAssertEqual(DescribeGroupsRequest.requestHeaderVersion(5), 2)
        XCTAssertEqual(DescribeGroupsRequest.responseHeaderVersion(4), 0)
        XCTAssertEqual(DescribeGroupsRequest.responseHeaderVersion(5), 1)
    }

    // MARK: Requests

    private let request = DescribeGroupsRequest(groupIDs: ["g", "h"], includeAuthorizedOperations: true)

    func testRequestV0ToV2() {
        let expected: [UInt8] = [
            0x00, 0x00, 0x00, 0x02,  // groups: ARRAY 2
            0x00, 0x01, 0x67,  // "g"
            0x00, 0x01, 0x68,  // "h"
            // include_authorized_operations: v3+
        ]
        for v: Int16 in 0...2 { XCTAssertEqual(MsgWire.encode(request, version: v), expected, "v\(v)") }
    }

    func testRequestV3AndV4() {
        let expected: [UInt8] = [
            0x00, 0x00, 0x00, 0x02,  // groups: ARRAY 2
            0x00, 0x01, 0x67,  // "g"
            0x00, 0x01, 0x68,  // "h"
            0x01,  // include_authorized_operations true (v3+)
        ]
        XCTAssertEqual(MsgWire.encode(request, version: 3), expected)
        XCTAssertEqual(MsgWire.encode(request, version: 4), expected, "v4 has v3's layout")
    }

    func testRequestV5() {
        XCTAssertEqual(MsgWire.encode(DescribeGroupsRequest(groupIDs: ["g", "h"]), version: 5), [
            0x03,  // groups: COMPACT_ARRAY 2
            0x02, 0x67,  // "g"
            0x02, 0x68,  // "h"
            0x00,  // include_authorized_operations false
            0x00,  // tagged fields
        ])
    }

    // MARK: Responses

    func testResponseV0() {
        let r = msgDecode(DescribeGroupsResponse.self, [
            // throttle_time_ms: v1+
            0x00, 0x00, 0x00, 0x01,  // groups: ARRAY 1
            0x00, 0x00,  // error_code 0
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x06, 0x53, 0x74, 0x61, 0x62, 0x6c, 0x65,  // group_state "Stable"
            0x00, 0x08, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer"
            0x00, 0x05, 0x72, 0x61, 0x6e, 0x67, 0x65,  // protocol_data "range"
            0x00, 0x00, 0x00, 0x01,  // members: ARRAY 1
            0x00, 0x01, 0x6d,  // member_id "m"
            // group_instance_id: v4+
            0x00, 0x01, 0x63,  // client_id "c"
            0x00, 0x01, 0x68,  // client_host "h"
            0x00, 0x00, 0x00, 0x02, 0x00, 0x01,  // member_metadata: BYTES 2
            0x00, 0x00, 0x00, 0x00,  // member_assignment: BYTES 0
            // authorized_operations: v3+
        ], version: 0)
        XCTAssertEqual(r, DescribeGroupsResponse(groups: [
            .init(groupID: "g", groupState: "Stable", protocolType: "consumer", protocolData: "range", members: [
                .init(memberID: "m", clientID: "c", clientHost: "h", memberMetadata: [0x00, 0x01]),
            ]),
        ]))
    }

    func testResponseV5() {
        let r = msgDecode(DescribeGroupsResponse.self, [
            0x00, 0x00, 0x00, 0x03,  // throttle_time_ms 3
            0x03,  // groups: COMPACT_ARRAY 2
            0x00, 0x00,  // error_code 0
            0x02, 0x67,  // group_id "g"
            0x07, 0x53, 0x74, 0x61, 0x62, 0x6c, 0x65,  // group_state "Stable"
            0x09, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer"
            0x06, 0x72, 0x61, 0x6e, 0x67, 0x65,  // protocol_data "range"
            0x02,  // members: COMPACT_ARRAY 1
            0x02, 0x6d,  // member_id "m"
            0x02, 0x69,  // group_instance_id "i"
            0x02, 0x63,  // client_id "c"
            0x02, 0x68,  // client_host "h"
            0x03, 0x00, 0x01,  // member_metadata: COMPACT_BYTES 2
            0x01,  // member_assignment: COMPACT_BYTES 0
            0x00,  // member tagged fields
            0x00, 0x00, 0x01, 0x48,  // authorized_operations READ | DELETE | DESCRIBE
            0x00,  // group tagged fields
            0x00, 0x10,  // error_code 16 NOT_COORDINATOR
            0x02, 0x78,  // group_id "x"
            0x01,  // group_state ""
            0x01,  // protocol_type ""
            0x01,  // protocol_data ""
            0x01,  // members: COMPACT_ARRAY 0
            0x80, 0x00, 0x00, 0x00,  // authorized_operations INT32_MIN (not asked)
            0x01, 0x05, 0x01, 0x2a,  // group tagged fields: one unknown tag 5 of 1 byte, skipped
            0x00,  // tagged fields
        ], version: 5)
        XCTAssertEqual(r, DescribeGroupsResponse(throttleTimeMs: 3, groups: [
            .init(groupID: "g", groupState: "Stable", protocolType: "consumer", protocolData: "range", members: [
                .init(memberID: "m", groupInstanceID: "i", clientID: "c", clientHost: "h", memberMetadata: [0x00, 0x01]),
            ], authorizedOperations: 0x0148),
            .init(errorCode: 16, groupID: "x"),
        ]))
    }

    func testRoundTripAllVersions() {
        for v in DescribeGroupsRequest.supportedVersions {
            let bytes = DescribeGroupsResponse.msgSample.msgEncoded(version: v)
            let decoded = msgDecode(DescribeGroupsResponse.self, bytes, version: v)
            XCTAssertEqual(decoded, DescribeGroupsResponse.msgExpected(version: v), "v\(v)")
            XCTAssertEqual(decoded.msgEncoded(version: v), bytes, "v\(v)")
        }
    }

    func testHostileNestedCountsAndLengthsAreRejected() {
        // v0: one group (error, four empty strings) whose members claim 0x7fffffff entries.
        let group: [UInt8] = [0, 0, 0, 1, /* error */ 0, 0] + [UInt8](repeating: 0, count: 8)
        let members = group + [0x7f, 0xff, 0xff, 0xff] + [UInt8](repeating: 0, count: 20)
        XCTAssertEqual(MsgWire.decode(DescribeGroupsResponse.self, members, version: 0).error?.kind, .invalidLength)
        // v5: one member whose metadata claims 1,000,000 bytes.
        let flexibleGroup: [UInt8] = [0, 0, 0, 0, /* groups */ 0x02, /* error */ 0, 0, 0x01, 0x01, 0x01, 0x01]
        let member: [UInt8] = [/* members */ 0x02, /* id */ 0x01, /* instance */ 0x00, 0x01, 0x01]
        let metadata = flexibleGroup + member + [0xc1, 0x84, 0x3d] + [UInt8](repeating: 0, count: 12)
        XCTAssertEqual(MsgWire.decode(DescribeGroupsResponse.self, metadata, version: 5).error?.kind, .invalidLength)
    }
}
