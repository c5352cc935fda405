/// What a `FuzzFraming` input describes: the requests a connection has in flight, and the
/// bytes the broker sends back, delivered in reads of a chosen size.
///
///     ┌ flags ┬ (decoder, version) × n ┬ stream … ┐
///
///     flags  bits 0-2  n - 1: one to eight requests in flight, answered in order
///            bit  3    correlation ids start at Int32.max - 1, so they wrap to 1 as the client's do
///            bits 4-7  k: the stream arrives in reads of k² bytes, or all at once when k is 0
///
/// A request is a response decoder of ``MessageCatalog/responses`` (its index modulo their
/// count) and a version byte (modulo the decoder's range), like a `FuzzResponses` selector.
public struct FramingScript {
    /// One request in flight.
    public struct Request {
        /// Decodes the answer's body.
        public var decoder: MessageDecoder
        /// The version the request was sent at.
        public var version: Int16
    }

    /// The requests in flight, oldest first.
    public var requests: [Request]
    /// The correlation id of the first request; the next ones follow as the client numbers them.
    public var firstCorrelationID: Int32
    /// Bytes per read, `Int.max` for one read of the whole stream.
    public var readSize: Int
    /// Where the stream starts in the input.
    public var streamOffset: Int

    /// Reads the script at the start of `input`; `nil` when the input is too short to hold it.
    public init?(_ input: UnsafeRawBufferPointer) {
        guard let flags = input.first else { return nil }
        let count = Int(flags & 7) + 1
        guard input.count >= 1 + 2 * count else { return nil }
        requests = (0..<count).map { i in
            let decoder = MessageCatalog.responses[Int(input[1 + 2 * i]) % MessageCatalog.responses.count]
            let span = Int(decoder.versions.upperBound - decoder.versions.lowerBound) + 1
            return Request(decoder: decoder, version: decoder.versions.lowerBound + Int16(Int(input[2 + 2 * i]) % span))
        }
        firstCorrelationID = flags & 8 != 0 ? Int32.max - 1 : 1
        let k = Int(flags >> 4)
        readSize = k == 0 ? Int.max : k * k
        streamOffset = 1 + 2 * count
    }

    /// The correlation id the client gives the request after one numbered `id` (1 after Int32.max).
    public static func nextCorrelationID(after id: Int32) -> Int32 { id == Int32.max ? 1 : id + 1 }

    /// A script input: `requests` are (response decoder name, version) pairs.
    public static func encode(requests: [(name: String, version: Int16)], wrapCorrelation: Bool = false,
                              readSizeRoot k: UInt8 = 0, stream: [UInt8]) -> [UInt8] {
        precondition((1...8).contains(requests.count) && k < 16, "at most 8 requests, k below 16")
        var out: [UInt8] = [UInt8(requests.count - 1) | (wrapCorrelation ? 8 : 0) | k << 4]
        for (name, version) in requests {
            guard let index = MessageCatalog.responses.firstIndex(where: { $0.name == name }) else {
                preconditionFailure("no response decoder named \(name)")
            }
            out += [UInt8(index), UInt8(version - MessageCatalog.responses[index].versions.lowerBound)]
        }
        return out + stream
    }

    /// One response frame: size, correlation id, an empty tagged-field section for header v1, body.
    public static func frame(correlationID: Int32, headerVersion: Int16, body: [UInt8]) -> [UInt8] {
        let header = bigEndian(correlationID) + (headerVersion >= 1 ? [0] : [])
        return bigEndian(Int32(header.count + body.count)) + header + body
    }

    static func bigEndian(_ value: Int32) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}

extension MessageCatalog {
    /// The decoders of what brokers send, the ones a request in flight can expect.
    public static let responses: [MessageDecoder] = decoders.filter(\.isResponse)

    /// The largest frame accepted (the client's `maxResponseBytes` plays this part).
    public static let maxFrameBytes = 1 << 20
}
