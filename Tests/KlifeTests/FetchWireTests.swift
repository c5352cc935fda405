import KlifeProtocol
import XCTest

/// The proxy's broker-side Fetch codec against the client's: what one encodes the other reads
/// back, at every version.
final class FetchWireTests: XCTestCase {
    private let topicID = KafkaUUID(high: 0x0102_0304_0506_0708, low: 0x090a_0b0c_0d0e_0f10)

    func testRequestsRoundTripThroughTheBrokerSideDecoder() {
        for version in FetchRequest.supportedVersions {
            let byID = version >= 13
            let request = FetchRequest(
                maxWaitMs: 250, minBytes: 3, maxBytes: 4096, isolationLevel: 1,
                sessionID: version >= 7 ? 42 : 0, sessionEpoch: version >= 7 ? 5 : -1,
                topics: [.init(name: byID ? "" : "t", topicID: byID ? topicID : .zero, partitions: [
                    .init(partition: 2, currentLeaderEpoch: version >= 9 ? 7 : -1, fetchOffset: 99,
                          lastFetchedEpoch: version >= 12 ? 6 : -1, partitionMaxBytes: 512),
                ])],
                forgottenTopics: version >= 7 ? [.init(name: byID ? "" : "f", topicID: byID ? topicID : .zero, partitions: [0, 3])] : [],
                rackID: version >= 11 ? "rack" : "")
            var writer = ByteWriter()
            request.encode(into: &writer, version: version)
            let bytes = writer.bytes
            let decoded = bytes.withUnsafeBytes { raw -> (FetchRequest, Bool) in
                var reader = ByteReader(raw)
                let r = FetchRequest.decodeBody(from: &reader, version: version)
                return (r, reader.isAtEnd)
            }
            XCTAssertEqual(decoded.0, request, "v\(version)")
            XCTAssertTrue(decoded.1, "v\(version): every byte read")
        }
    }

    func testResponsesRoundTripThroughTheBrokerSideEncoder() {
        for version in FetchRequest.supportedVersions {
            let byID = version >= 13
            let flexible = version >= 12
            let response = FetchResponse(
                throttleTimeMs: 3, errorCode: 0, sessionID: version >= 7 ? 1001 : 0,
                responses: [.init(name: byID ? "" : "t", topicID: byID ? topicID : .zero, partitions: [
                    .init(partitionIndex: 1, errorCode: 0, highWatermark: 10, lastStableOffset: 9,
                          logStartOffset: version >= 5 ? 2 : -1, abortedTransactions: [.init(producerID: 8, firstOffset: 4)],
                          preferredReadReplica: version >= 11 ? 3 : -1, records: [1, 2, 3]),
                    .init(partitionIndex: 4, errorCode: 6, highWatermark: -1, lastStableOffset: -1,
                          logStartOffset: -1, abortedTransactions: nil, preferredReadReplica: -1, records: [],
                          currentLeader: flexible ? .init(leaderID: 2, leaderEpoch: 11) : nil),
                ])])
            var writer = ByteWriter()
            response.encodeBody(into: &writer, version: version)
            let bytes = writer.bytes
            let decoded = bytes.withUnsafeBytes { raw -> (FetchResponse, Bool) in
                var reader = ByteReader(raw)
                let r = FetchResponse(from: &reader, version: version)
                return (r, reader.isAtEnd)
            }
            XCTAssertEqual(decoded.0, response, "v\(version)")
            XCTAssertTrue(decoded.1, "v\(version): every byte read")
        }
    }
}
