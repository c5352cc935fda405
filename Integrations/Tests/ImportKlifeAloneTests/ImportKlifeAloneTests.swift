// Only `import Klife` (and XCTest): every type the public API of Klife names must be usable
// from here, as in a user's package that depends on the Klife product alone.
import Klife
import XCTest

final class ImportKlifeAloneTests: XCTestCase {
    func testTheWireTypesOfTheClientAPIAreInScope() {
        let header = RecordHeader(key: "type", value: Array("paid".utf8))
        let record = ProducerRecord(topic: "orders", key: Array("42".utf8), value: Array("{}".utf8), headers: [header])
        XCTAssertEqual(record.headers, [header])

        var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"])
        config.producer.compression = CompressionCodec.zstd
        XCTAssertEqual(config.producer.compression, .zstd)

        let requests: [ApiKey: Int] = [.produce: 1]
        XCTAssertEqual(requests[ApiKey.produce], 1)
        let brokerCode: (KlifeError) -> KafkaErrorCode? = \.kafkaErrorCode
        _ = brokerCode
    }
}
