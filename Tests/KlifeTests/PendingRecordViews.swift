@testable import Klife
import KlifeProtocol

/// A pending record's key, value and headers as arrays, read back from its payload chunk.
extension PendingRecord {
    var key: [UInt8]? { payload.key.map { Array($0) } }
    var value: [UInt8]? { payload.value.map { Array($0) } }
    /// The headers, decoded from their wire form.
    var headers: [RecordHeader] {
        let encoded = payload.headers
        var reader = ByteReader(encoded.bytes)
        return (0..<encoded.count).map { _ in
            let key = reader.readBytes(count: Int(reader.readVarint()))
            let valueCount = Int(reader.readVarint())
            return RecordHeader(key: String(decoding: key, as: UTF8.self),
                                value: valueCount < 0 ? nil : reader.readBytes(count: valueCount))
        }
    }
}
