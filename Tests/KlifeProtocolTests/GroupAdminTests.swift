import XCTest
import KlifeProtocol

extension ListGroupsResponse {
    /// Test-only encoder: throttle from v1, state from v4, type from v5.
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 3
        return MsgWire.write { w in
            if v >= 1 { w.writeInt32(throttleTimeMs) }
            w.writeInt16(errorCode)
            w.writeArrayCount(groups.count, flexible: f)
            for g in groups {
                w.writeString(g.groupID, flexible: f)
                w.writeString(g.protocolType, flexible: f)
                if v >= 4 { w.writeCompactString(g.groupState) }
                if v >= 5 { w.writeCompactString(g.groupType) }
                w.writeEmptyTaggedFields(flexible: f)
            }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    static let msgSample = ListGroupsResponse(throttleTimeMs: 8, errorCode: 0, groups: [
        .init(groupID: "orders-app", protocolType: "consumer", groupState: "Stable", groupType: "classic"),
        .init(groupID: "offsets-only", protocolType: "", groupState: "Empty", groupType: "classic"),
        .init(groupID: "payments", protocolType: "consumer", groupState: "Reconciling", groupType: "consumer"),
    ])

    /// ``msgSample`` as decoded at `version`.
    static func msgExpected(version v: Int16) -> ListGroupsResponse {
        var expected = msgSample
        if v < 1 { expected.throttleTimeMs = 0 }
        for g in expected.groups.indices {
            if v < 4 { expected.groups[g].groupState = "" }
            if v < 5 { expected.groups[g].groupType = "" }
        }
        return expected
    }
}

extension DeleteGroupsResponse {
    /// Test-only encoder.
    func msgEncoded(version v: Int16) -> [UInt8] {
        let f = v >= 2
        return MsgWire.write { w in
            w.writeInt32(throttleTimeMs)
            w.writeArrayCount(results.count, flexible: f)
            for r in results {
                w.writeString(r.groupID, flexible: f)
                w.writeInt16(r.errorCode)
                w.writeEmptyTaggedFields(flexible: f)
            }
            w.writeEmptyTaggedFields(flexible: f)
        }
    }

    static let msgSample = DeleteGroupsResponse(throttleTimeMs: 1, results: [
        .init(groupID: "old-app"), .init(groupID: "busy-app", errorCode: 68), .init(groupID: "ghost", errorCode: 69),
    ])
}

/// ListGroups and DeleteGroups codecs.
final class GroupAdminTests: XCTestCase {
    func testApiKeysAndHeaders() {
        XCTAssertEqual(ListGroupsRequest.apiKey.rawValue, 16)
        XCTAssertEqual(ListGroupsRequest.apiKey.description, "ListGroups")
        XCTAssertEqual(ListGroupsRequest.supportedVersions, 0...5)
        XCTAssertEqual(ListGroupsRequest.requestHeaderVersion(2), 1)
        XCTAssertEqual(ListGroupsRequest.requestHeaderVersion(3), 2)
        XCTAssertEqual(ListGroupsRequest.responseHeaderVersion(3), 1)
        XCTAssertEqual(DeleteGroupsRequest.apiKey.rawValue, 42)
        XCTAssertEqual(DeleteGroupsRequest.apiKey.description, "DeleteGroups")
        XCTAssertEqual(DeleteGroupsRequest.supportedVersions, 0...2)
        XCTAssertEqual(DeleteGroupsRequest.requestHeaderVersion(1), 1)
        XCTAssertEqual(DeleteGroupsRequest.requestHeaderVersion(2), 2)
        XCTAssertEqual(DeleteGroupsRequest.responseHeaderVersion(2), 1)
    }

    // MARK: ListGroups requests

    private let list = ListGroupsRequest(statesFilter: ["Stable"], typesFilter: ["consumer"])

    func testListRequestV0ToV3() {
        for v: Int16 in 0...2 { XCTAssertEqual(MsgWire.encode(list, version: v), [], "v\(v): empty body") }
        XCTAssertEqual(MsgWire.encode(list, version: 3), [
            0x00,  // tagged fields (the filters come with v4 and v5)
        ])
    }

    func testListRequestV4() {
        XCTAssertEqual(MsgWire.encode(list, version: 4), [
            0x02,  // states_filter: COMPACT_ARRAY 1
            0x07, 0x53, 0x74, 0x61, 0x62, 0x6c, 0x65,  // "Stable"
            // types_filter: v5+
            0x00,  // tagged fields
        ])
    }

    func testListRequestV5() {
        XCTAssertEqual(MsgWire.encode(list, version: 5), [
            0x02,  // states_filter: COMPACT_ARRAY 1
            0x07, 0x53, 0x74, 0x61, 0x62, 0x6c, 0x65,  // "Stable"
            0x02,  // types_filter: COMPACT_ARRAY 1
            0x09, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // "consumer"
            0x00,  // tagged fields
        ])
        XCTAssertEqual(MsgWire.encode(ListGroupsRequest(), version: 5), [
            0x01,  // states_filter: empty (every state)
            0x01,  // types_filter: empty (every type)
            0x00,  // tagged fields
        ])
    }

    // MARK: ListGroups responses

    func testListResponseV0() {
        let r = msgDecode(ListGroupsResponse.self, [
            // throttle_time_ms: v1+
            0x00, 0x00,  // error_code 0
            0x00, 0x00, 0x00, 0x02,  // groups: ARRAY 2
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x08, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer"
            0x00, 0x01, 0x68,  // group_id "h"
            0x00, 0x00,  // protocol_type ""
        ], version: 0)
        XCTAssertEqual(r, ListGroupsResponse(groups: [.init(groupID: "g", protocolType: "consumer"), .init(groupID: "h")]))
    }

    func testListResponseV5() {
        let r = msgDecode(ListGroupsResponse.self, [
            0x00, 0x00, 0x00, 0x02,  // throttle_time_ms 2
            0x00, 0x00,  // error_code 0
            0x02,  // groups: COMPACT_ARRAY 1
            0x02, 0x67,  // group_id "g"
            0x09, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // protocol_type "consumer"
            0x06, 0x45, 0x6d, 0x70, 0x74, 0x79,  // group_state "Empty" (v4+)
            0x09, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72,  // group_type "consumer" (v5+)
            0x00,  // group tagged fields
            0x00,  // tagged fields
        ], version: 5)
        XCTAssertEqual(r, ListGroupsResponse(throttleTimeMs: 2, groups: [
            .init(groupID: "g", protocolType: "consumer", groupState: "Empty", groupType: "consumer"),
        ]))
    }

    func testListResponseRoundTrips() {
        for v in ListGroupsRequest.supportedVersions {
            let bytes = ListGroupsResponse.msgSample.msgEncoded(version: v)
            let decoded = msgDecode(ListGroupsResponse.self, bytes, version: v)
            XCTAssertEqual(decoded, ListGroupsResponse.msgExpected(version: v), "v\(v)")
            XCTAssertEqual(decoded.msgEncoded(version: v), bytes, "v\(v)")
        }
    }

    // MARK: DeleteGroups

    func testDeleteRequestV0AndV1() {
        let expected: [UInt8] = [
            0x00, 0x00, 0x00, 0x02,  // groups_names: ARRAY 2
            0x00, 0x01, 0x67,  // "g"
            0x00, 0x01, 0x68,  // "h"
        ]
        XCTAssertEqual(MsgWire.encode(DeleteGroupsRequest(groupIDs: ["g", "h"]), version: 0), expected)
        XCTAssertEqual(MsgWire.encode(DeleteGroupsRequest(groupIDs: ["g", "h"]), version: 1), expected, "v1 has v0's layout")
    }

    func testDeleteRequestV2() {
        XCTAssertEqual(MsgWire.encode(DeleteGroupsRequest(groupIDs: ["g", "h"]), version: 2), [
            0x03,  // groups_names: COMPACT_ARRAY 2
            0x02, 0x67,  // "g"
            0x02, 0x68,  // "h"
            0x00,  // tagged fields
        ])
    }

    func testDeleteResponseV0() {
        let r = msgDecode(DeleteGroupsResponse.self, [
            0x00, 0x00, 0x00, 0x00,  // throttle_time_ms 0
            0x00, 0x00, 0x00, 0x02,  // results: ARRAY 2
            0x00, 0x01, 0x67,  // group_id "g"
            0x00, 0x00,  // error_code 0
            0x00, 0x01, 0x68,  // group_id "h"
            0x00, 0x44,  // error_code 68 NON_EMPTY_GROUP
        ], version: 0)
        XCTAssertEqual(r, DeleteGroupsResponse(results: [.init(groupID: "g"), .init(groupID: "h", errorCode: 68)]))
    }

    func testDeleteResponseV2() {
        let r = msgDecode(DeleteGroupsResponse.self, [
            0x00, 0x00, 0x00, 0x09,  // throttle_time_ms 9
            0x02,  // results: COMPACT_ARRAY 1
            0x02, 0x67,  // group_id "g"
            0x00, 0x45,  // error_code 69 GROUP_ID_NOT_FOUND
            0x00,  // result tagged fields
            0x00,  // tagged fields
        ], version: 2)
        XCTAssertEqual(r, DeleteGroupsResponse(throttleTimeMs: 9, results: [.init(groupID: "g", errorCode: 69)]))
    }

    func testDeleteResponseRoundTrips() {
        for v in DeleteGroupsRequest.supportedVersions {
            let bytes = DeleteGroupsResponse.msgSample.msgEncoded(version: v)
            let decoded = msgDecode(DeleteGroupsResponse.self, bytes, version: v)
            XCTAssertEqual(decoded, DeleteGroupsResponse.msgSample, "v\(v)")
            XCTAssertEqual(decoded.msgEncoded(version: v), bytes, "v\(v)")
        }
    }

    // MARK: Hostile input

    func testHostileLengthsAreRejected() {
        // ListGroups v4: a group whose state claims 1,000,000 bytes.
        let state: [UInt8] = [0, 0, 0, 0, 0, 0, /* groups */ 0x02, 0x02, 0x67, 0x01, /* state */ 0xc1, 0x84, 0x3d, 0x00, 0x00]
        XCTAssertEqual(MsgWire.decode(ListGroupsResponse.self, state, version: 4).error?.kind, .invalidLength)
        // DeleteGroups v0: a group id longer than what is left.
        let name: [UInt8] = [0, 0, 0, 0, /* results */ 0, 0, 0, 1, /* length */ 0x00, 0x10, 0x67, 0x00, 0x00]
        XCTAssertEqual(MsgWire.decode(DeleteGroupsResponse.self, name, version: 0).error?.kind, .invalidLength)
    }
}
