import Foundation
import KlifeProtocol
import XCTest

/// Inputs the fuzz targets (`Fuzz/`, `scripts/fuzz.sh`) turned up, kept as tests.
final class FuzzRegressionTests: XCTestCase {
    /// FuzzResponses, run with `-max_len=262144 -len_control=0 -malloc_limit_mb=4` and then
    /// minimized with `-malloc_limit_mb=1` (its filler bytes made uniform here): a
    /// ProduceResponse v3 whose topic count, 65,538, fits the 65,542 bytes left at one byte a
    /// topic. The array reserved room for every topic before decoding one, 24 bytes each:
    /// 1.5 MB from 64 KB of input, and about 6 GB from a 256 MiB response.
    static let produceResponseTopicCount: [UInt8] = [
        0x00, 0x01, 0x00, 0x02,                          // topics: 65,538
        0x00, 0x06, 0x6f, 0x1d, 0x72, 0x64, 0x65, 0x73,  //   name: 6 bytes
        0x00, 0x01, 0x0d, 0x00,                          //   partitions: 68,864, more than the bytes left
    ] + [UInt8](repeating: 0x08, count: 65_526)

    func testProduceResponseWithHugeTopicCountIsRejected() {
        let (_, error, _) = MsgWire.decode(ProduceResponse.self, Self.produceResponseTopicCount, version: 3)
        XCTAssertEqual(error?.kind, .invalidLength)
    }

    /// The same input grown to 4 MiB (count 4,194,300): before its first topic decodes, the
    /// array may take at most four bytes of memory per byte of input, 16 MiB, where it used to
    /// take 96 MiB. Allocations that large are mapped on their own, so the process's data size
    /// (`VmData`) shows them while the first topic decodes.
    func testArrayReservesAtMostFourBytesPerByteLeft() throws {
        let size = 4 << 20
        var bytes = Self.produceResponseTopicCount
        bytes.replaceSubrange(0..<4, with: withUnsafeBytes(of: Int32(size - 4).bigEndian) { Array($0) })
        bytes += [UInt8](repeating: 0x08, count: size - bytes.count)
        let before = try dataSize()
        var during = before
        let (_, error, _) = bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let count = reader.readArrayCount(flexible: false)
            let topics = reader.readArray(count: count) { r -> ProduceResponse.Topic in
                if during == before { during = (try? dataSize()) ?? before }
                r.fail(.invalidValue, "stop after the first topic")
                return ProduceResponse.Topic(name: "", partitions: [])
            }
            return (topics, reader.error, count)
        }
        XCTAssertEqual(error?.kind, .invalidValue)
        XCTAssertLessThan(during - before, 48 << 20, "\((during - before) >> 20) MiB taken for 4 MiB of input")
    }

    /// The process's `VmData` (heap and private mappings) in bytes.
    private func dataSize() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmData:") }),
              let kB = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { throw XCTSkip("no VmData in /proc/self/status") }
        return kB * 1024
    }
}
