import FuzzSupport
import KlifeProtocol

/// Seeds for `FuzzResponses` and `FuzzFraming`: every byte array of the message tests that
/// one of the catalog's decoders reads cleanly (no error, every byte consumed), at the
/// lowest and highest version that reads it, plus bodies from the library's own encoder
/// (ProduceResponse) and Fetch responses that carry real record batches.
enum MessageSeeds {
    /// A body that decodes cleanly.
    struct Body {
        var name: String
        var decoder: Int
        var version: Int16
        var bytes: [UInt8]
    }

    /// The test files' arrays, matched against the decoders each file names.
    static func goldenBodies(_ golden: GoldenSources) -> [Body] {
        var bodies: [Body] = []
        for file in golden.files {
            let decoders = MessageCatalog.decoders.indices.filter { file.text.contains(MessageCatalog.decoders[$0].name) }
            for (name, bytes) in file.arrays {
                for index in decoders {
                    let decoder = MessageCatalog.decoders[index]
                    let clean = decoder.versions.filter { decodesCleanly(index, $0, bytes) }
                    for version in Set([clean.first, clean.last].compactMap { $0 }).sorted() {
                        bodies.append(Body(name: "\(decoder.name)-v\(version)-\(file.stem)-\(name)", decoder: index,
                                           version: version, bytes: bytes))
                    }
                }
            }
        }
        return bodies
    }

    static func decodesCleanly(_ index: Int, _ version: Int16, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            MessageCatalog.decoders[index].decode(&reader, version: version)
            return reader.isAtEnd
        }
    }

    /// Bodies the library's encoder and this generator write.
    static func encodedBodies() throws -> [Body] {
        var bodies: [Body] = []
        let produce = MessageCatalog.index(of: "ProduceResponse")!
        for version: Int16 in [3, 8, 12] {
            var writer = ByteWriter(capacity: 256)
            sampleProduceResponse.encode(into: &writer, version: version)
            bodies.append(Body(name: "ProduceResponse-v\(version)-encoder", decoder: produce, version: version,
                               bytes: writer.bytes))
        }
        let fetch = MessageCatalog.index(of: "FetchResponse")!
        let records = RecordBatchSeeds.sampleRecords(4)
        let batches = RecordBatchEncoder.encode(baseTimestamp: RecordBatchSeeds.baseTimestamp, records: records)
            + (try RecordBatchEncoder.encode(baseTimestamp: RecordBatchSeeds.baseTimestamp, records: records, compression: .zstd))
        for version: Int16 in [4, 12, 16] {
            bodies.append(Body(name: "FetchResponse-v\(version)-with-batches", decoder: fetch, version: version,
                               bytes: fetchResponse(version: version, records: batches)))
        }
        return bodies
    }

    static let sampleProduceResponse = ProduceResponse(topics: [
        .init(name: "orders", partitions: [
            .init(index: 0, errorCode: 0, baseOffset: 42, logAppendTimeMs: 1_700_000_000_000, logStartOffset: 7),
            .init(index: 3, errorCode: 6, baseOffset: -1, recordErrors: [.init(batchIndex: 2, message: "bad record")],
                  errorMessage: "dropped", currentLeader: .init(leaderID: 2, leaderEpoch: 11)),
        ]),
        .init(name: "événements", partitions: [.init(index: 1, errorCode: 87, baseOffset: -1)]),
    ], throttleTimeMs: 5, nodeEndpoints: [.init(nodeID: 2, host: "broker-2", port: 9092, rack: "r1")])

    /// A Fetch response body with one partition holding `records`, written field by field
    /// (the library has no Fetch response encoder): names up to v12, topic ids from v13,
    /// a current-leader tag from v12 and a node endpoint from v16.
    static func fetchResponse(version v: Int16, records: [UInt8]) -> [UInt8] {
        let flexible = v >= 12
        var w = ByteWriter(capacity: 512)
        w.writeInt32(0)                                        // throttle_time_ms
        if v >= 7 { w.writeInt16(0); w.writeInt32(77) }        // error_code, session_id
        w.writeArrayCount(1, flexible: flexible)               // responses
        if v <= 12 { w.writeString("events", flexible: flexible) } else { w.writeUUID(KafkaUUID(high: 1, low: 2)) }
        w.writeArrayCount(1, flexible: flexible)               // partitions
        w.writeInt32(0)                                        // partition_index
        w.writeInt16(0)                                        // error_code
        w.writeInt64(100)                                      // high_watermark
        w.writeInt64(100)                                      // last_stable_offset
        if v >= 5 { w.writeInt64(0) }                          // log_start_offset
        w.writeNullableArrayCount(1, flexible: flexible)       // aborted_transactions
        w.writeInt64(9)                                        //   producer_id
        w.writeInt64(0)                                        //   first_offset
        w.writeEmptyTaggedFields(flexible: flexible)
        if v >= 11 { w.writeInt32(-1) }                        // preferred_read_replica
        w.writeNullableSizedBytes(records, flexible: flexible) // records
        if flexible {
            w.writeUnsignedVarint(1)                           // one tagged field:
            w.writeUnsignedVarint(1)                           //   tag 1 current_leader,
            w.writeUnsignedVarint(9)                           //   9 bytes
            w.writeInt32(2)
            w.writeInt32(11)
            w.writeEmptyTaggedFields()
            w.writeEmptyTaggedFields()                         // topic tags
        }
        guard flexible else { return w.bytes }
        guard v >= 16 else { w.writeEmptyTaggedFields(); return w.bytes }
        var endpoints = ByteWriter(capacity: 32)
        endpoints.writeArrayCount(1, flexible: true)
        endpoints.writeInt32(2)
        endpoints.writeCompactString("broker-2")
        endpoints.writeInt32(9092)
        endpoints.writeCompactNullableString(nil)
        endpoints.writeEmptyTaggedFields()
        w.writeUnsignedVarint(1)                               // one tagged field: tag 0 node_endpoints
        w.writeUnsignedVarint(0)
        w.writeUnsignedVarint(UInt32(endpoints.count))
        w.writeBytes(endpoints.bytes)
        return w.bytes
    }

    /// Every encoder-made body, and the test bodies of each decoder at its lowest and
    /// highest version among those found.
    static func responsesCorpus(encoded: [Body], golden: [Body]) -> Corpus {
        var corpus = Corpus("FuzzResponses")
        for body in encoded {
            corpus.add(body.name, MessageCatalog.selector(index: body.decoder, version: body.version) + body.bytes)
        }
        for index in MessageCatalog.decoders.indices {
            let found = golden.filter { $0.decoder == index }
            guard let low = found.min(by: { $0.version < $1.version }),
                  let high = found.max(by: { $0.version < $1.version }) else { continue }
            for body in [low, high] {
                corpus.add(body.name, MessageCatalog.selector(index: index, version: body.version) + body.bytes)
            }
        }
        return corpus
    }

    /// One frame per response decoder (its highest-version body), and the handshake and
    /// pipelining cases: several answers in one stream, byte-by-byte reads, wrapping
    /// correlation ids, ApiVersions' fallback answer.
    static func framingCorpus(_ bodies: [Body]) -> Corpus {
        var corpus = Corpus("FuzzFraming")
        var best: [String: Body] = [:]
        for body in bodies where MessageCatalog.decoders[body.decoder].isResponse {
            let name = MessageCatalog.decoders[body.decoder].name
            if let kept = best[name], kept.version >= body.version { continue }
            best[name] = body
        }
        func frame(_ body: Body, _ correlationID: Int32) -> [UInt8] {
            let decoder = MessageCatalog.decoders[body.decoder]
            return FramingScript.frame(correlationID: correlationID, headerVersion: decoder.responseHeaderVersion(body.version),
                                       body: body.bytes)
        }
        for body in best.values.sorted(by: { $0.name < $1.name }) {
            let name = MessageCatalog.decoders[body.decoder].name
            corpus.add("one-\(body.name)", FramingScript.encode(requests: [(name, body.version)], stream: frame(body, 1)))
        }
        // Three answers in one stream, read whole, then a byte at a time, then with ids wrapping past Int32.max.
        let pipeline = ["MetadataResponse", "ProduceResponse", "FetchResponse"].compactMap { best[$0] }
        if pipeline.count == 3 {
            let requests = pipeline.map { (MessageCatalog.decoders[$0.decoder].name, $0.version) }
            let stream = pipeline.enumerated().flatMap { frame($1, Int32($0 + 1)) }
            corpus.add("pipeline-3", FramingScript.encode(requests: requests, stream: stream))
            corpus.add("pipeline-3-bytewise", FramingScript.encode(requests: requests, readSizeRoot: 1, stream: stream))
            let wrapped = frame(pipeline[0], Int32.max - 1) + frame(pipeline[1], Int32.max) + frame(pipeline[2], 1)
            corpus.add("pipeline-3-wrapping", FramingScript.encode(requests: requests, wrapCorrelation: true,
                                                                   readSizeRoot: 3, stream: wrapped))
        }
        // ApiVersions v3 answered UNSUPPORTED_VERSION with a v0 body advertising 0...2, then the v2 answer.
        var fallback = ByteWriter(capacity: 64)
        fallback.writeInt16(KafkaErrorCode.unsupportedVersion.rawValue)
        fallback.writeArrayCount(1, flexible: false)
        fallback.writeInt16(ApiKey.apiVersions.rawValue)
        fallback.writeInt16(0)
        fallback.writeInt16(2)
        var v2 = ByteWriter(capacity: 64)
        v2.writeInt16(0)
        v2.writeArrayCount(2, flexible: false)
        for (key, high) in [(ApiKey.apiVersions, Int16(3)), (ApiKey.metadata, Int16(12))] {
            v2.writeInt16(key.rawValue)
            v2.writeInt16(0)
            v2.writeInt16(high)
        }
        v2.writeInt32(0)
        let handshake = FramingScript.frame(correlationID: 1, headerVersion: 0, body: fallback.bytes)
            + FramingScript.frame(correlationID: 2, headerVersion: 0, body: v2.bytes)
        corpus.add("apiversions-fallback", FramingScript.encode(requests: [("ApiVersionsResponse", 3)], stream: handshake))
        return corpus
    }
}
