import CLibFuzzer
import FuzzSupport
import KlifeProtocol

/// Response framing and correlation: a byte stream from a broker, cut into size-prefixed
/// frames, each frame's response header read and its correlation id matched against the
/// oldest request in flight, then the body decoded (see ``FramingScript`` for the input).
///
/// `BrokerConnection` (module Klife) does this on the reactor around a socket; its splitting
/// loop is private there, so ``ResponseReader`` follows the same steps with the
/// `KlifeProtocol` pieces it uses: the INT32 size prefix, `KafkaFrame.decodeResponseHeader`
/// (v0, or v1 with tagged fields), the strict in-order correlation check, ApiVersions'
/// header v0 and its UNSUPPORTED_VERSION fallback, and every response decoder.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    guard let script = FramingScript(input) else { return 0 }
    var connection = ResponseReader(script)
    var pending: [UInt8] = []
    var offset = script.streamOffset
    while offset < size && !connection.failed {
        let end = offset + min(script.readSize, size - offset)
        pending += UnsafeRawBufferPointer(rebasing: input[offset..<end])
        offset = end
        let consumed = pending.withUnsafeBytes { connection.read($0) }
        fuzzCheck(consumed <= pending.count, "consumed \(consumed) of \(pending.count) bytes")
        pending.removeFirst(consumed)
    }
    fuzzCheck(connection.head <= connection.inFlight.count, "answered \(connection.head) of \(connection.inFlight.count)")
    return 0
}

/// The receiving half of one connection: the in-flight FIFO and the frame loop.
struct ResponseReader {
    struct InFlight {
        var decoder: MessageDecoder
        var version: Int16
        var correlationID: Int32
    }

    private(set) var inFlight: [InFlight] = []
    /// Index of the oldest unanswered request.
    private(set) var head = 0
    /// Set once the connection would be failed (it then reads nothing more).
    private(set) var failed = false
    private var nextCorrelationID: Int32

    init(_ script: FramingScript) {
        nextCorrelationID = script.firstCorrelationID
        for request in script.requests { send(request.decoder, version: request.version) }
    }

    private mutating func send(_ decoder: MessageDecoder, version: Int16) {
        inFlight.append(InFlight(decoder: decoder, version: version, correlationID: nextCorrelationID))
        nextCorrelationID = FramingScript.nextCorrelationID(after: nextCorrelationID)
    }

    /// Delivers every complete frame at the start of `bytes`; returns the bytes consumed
    /// (a partial frame stays for the next read), or all of them once the connection failed.
    mutating func read(_ bytes: UnsafeRawBufferPointer) -> Int {
        var consumed = 0
        while !failed && bytes.count - consumed >= 4 {
            let size = Int(Int32(bigEndian: bytes.loadUnaligned(fromByteOffset: consumed, as: Int32.self)))
            if size < 4 || size > MessageCatalog.maxFrameBytes {
                failed = true
                break
            }
            guard bytes.count - consumed - 4 >= size else { break }
            deliver(UnsafeRawBufferPointer(rebasing: bytes[(consumed + 4)..<(consumed + 4 + size)]))
            consumed += 4 + size
        }
        return failed ? bytes.count : consumed
    }

    /// Hands one frame to the oldest request in flight.
    private mutating func deliver(_ frame: UnsafeRawBufferPointer) {
        guard head < inFlight.count else {
            failed = true // a response with no request in flight
            return
        }
        let entry = inFlight[head]
        var reader = ByteReader(frame)
        let headerVersion = entry.decoder.responseHeaderVersion(entry.version)
        fuzzCheck(entry.decoder.apiKey != .apiVersions || headerVersion == 0, "ApiVersions answered with header v\(headerVersion)")
        let correlationID = KafkaFrame.decodeResponseHeader(from: &reader, headerVersion: headerVersion)
        guard reader.error == nil, correlationID == entry.correlationID else {
            failed = true
            return
        }
        head += 1
        if entry.decoder.apiKey == .apiVersions {
            answerApiVersions(&reader, entry)
        } else {
            entry.decoder.decode(&reader, version: entry.version)
            if reader.error != nil { failed = true }
        }
    }

    /// ApiVersions as the handshake reads it: an UNSUPPORTED_VERSION answer to v1+ carries a v0
    /// body whose advertised range picks the version to retry with.
    private mutating func answerApiVersions(_ reader: inout ByteReader, _ entry: InFlight) {
        var peek = reader
        let errorCode = KafkaErrorCode(rawValue: peek.readInt16())
        guard errorCode == .unsupportedVersion && entry.version > 0 else {
            entry.decoder.decode(&reader, version: entry.version)
            if reader.error != nil { failed = true }
            return
        }
        let response = ApiVersionsResponse(from: &reader, version: 0)
        let advertised = reader.error == nil ? ApiVersionTable(response.apiKeys).range(for: .apiVersions) : nil
        let retry = max(advertised.map { min($0.upperBound, entry.version - 1) } ?? 0, 0)
        fuzzCheck(retry < entry.version && entry.decoder.versions.contains(retry),
                  "ApiVersions v\(entry.version) retried at v\(retry)")
        send(entry.decoder, version: retry)
    }
}

/// SwiftPM links an executable with `main` aliased to `<module>_main`, which a library-mode
/// module never defines; this one hands the process to libFuzzer's driver.
@_cdecl("FuzzFraming_main")
func runLibFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var (argc, argv) = (argc, argv)
    return LLVMFuzzerRunDriver(&argc, &argv, fuzz)
}
