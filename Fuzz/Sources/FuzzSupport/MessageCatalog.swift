public import KlifeProtocol

/// One message decoder a fuzz input can select: its name, the versions the library
/// speaks, and how a body is decoded (and then used, as the client would use it).
public struct MessageDecoder: Sendable {
    /// The message's name, used in seed file names.
    public let name: String
    /// The API it belongs to.
    public let apiKey: ApiKey
    /// The versions the library supports (the request type's ``KafkaRequest/supportedVersions``).
    public let versions: ClosedRange<Int16>
    /// True for responses (what a broker sends a client); false for the one request
    /// decoder, which an embedded broker runs on what a client sends.
    public let isResponse: Bool
    let headerVersion: @Sendable (Int16) -> Int16
    let body: @Sendable (inout ByteReader, Int16) -> Void

    /// The response header version at `version` (ApiVersions is always 0).
    public func responseHeaderVersion(_ version: Int16) -> Int16 { headerVersion(version) }

    /// Decodes a body at `version`; the reader's sticky error reports a rejection. A body that
    /// decodes cleanly is then handed to what the client does next with it (record batches of
    /// a Fetch response are decoded, an ApiVersions table is negotiated against).
    public func decode(_ reader: inout ByteReader, version: Int16) { body(&reader, version) }

    /// The decoder of `R`'s response; `use` runs on a response that decoded without error.
    static func response<R: KafkaRequest>(_: R.Type, use: (@Sendable (R.Response) -> Void)? = nil) -> MessageDecoder {
        MessageDecoder(
            name: String(describing: R.Response.self), apiKey: R.apiKey, versions: R.supportedVersions,
            isResponse: true, headerVersion: { R.responseHeaderVersion($0) },
            body: { reader, version in
                let response = R.Response(from: &reader, version: version)
                if reader.error == nil, let use { use(response) }
            })
    }
}

/// Every decoder of `KlifeProtocol/Messages`, in a fixed order: a fuzz input's first byte
/// picks one (modulo the count), its second byte the version (modulo the range's size).
///
///     ┌ decoder index ┬ version - lowest ┬ body ┐
///
/// Append new decoders at the end, so the checked-in seeds keep their meaning.
public enum MessageCatalog {
    /// The decoders, responses first, the embedded broker's Produce request decoder last.
    public static let decoders: [MessageDecoder] = [
        .response(ProduceRequest.self),
        .response(FetchRequest.self, use: useFetch),
        .response(ListOffsetsRequest.self),
        .response(MetadataRequest.self),
        .response(ApiVersionsRequest.self, use: useApiVersions),
        .response(CreateTopicsRequest.self),
        .response(DeleteTopicsRequest.self),
        .response(FindCoordinatorRequest.self),
        .response(InitProducerIdRequest.self),
        .response(AddPartitionsToTxnRequest.self),
        .response(AddOffsetsToTxnRequest.self),
        .response(TxnOffsetCommitRequest.self),
        .response(EndTxnRequest.self),
        .response(SaslHandshakeRequest.self),
        .response(SaslAuthenticateRequest.self),
        MessageDecoder(name: "ProduceRequest", apiKey: .produce, versions: ProduceRequest.supportedVersions,
                       isResponse: false, headerVersion: { _ in 0 },
                       body: { reader, version in _ = ProduceRequest(from: &reader, version: version) }),
        .response(OffsetCommitRequest.self),
        .response(OffsetFetchRequest.self),
        .response(ConsumerGroupHeartbeatRequest.self),
        .response(ConsumerGroupDescribeRequest.self),
        .response(JoinGroupRequest.self, use: useJoinGroup),
        .response(SyncGroupRequest.self, use: useSyncGroup),
        .response(HeartbeatRequest.self),
        .response(LeaveGroupRequest.self),
        .response(OffsetDeleteRequest.self),
        .response(DescribeGroupsRequest.self),
        .response(ListGroupsRequest.self),
        .response(DeleteGroupsRequest.self),
    ]

    /// The decoder and version that two selector bytes pick.
    public static func pick(_ decoderByte: UInt8, _ versionByte: UInt8) -> (decoder: MessageDecoder, version: Int16) {
        let decoder = decoders[Int(decoderByte) % decoders.count]
        let span = Int(decoder.versions.upperBound - decoder.versions.lowerBound) + 1
        return (decoder, decoder.versions.lowerBound + Int16(Int(versionByte) % span))
    }

    /// The selector bytes that pick the decoder at `index` at `version` (the inverse of ``pick(_:_:)``).
    public static func selector(index: Int, version: Int16) -> [UInt8] {
        let decoder = decoders[index]
        precondition(decoder.versions.contains(version), "\(decoder.name) has no version \(version)")
        return [UInt8(index), UInt8(version - decoder.versions.lowerBound)]
    }

    /// The index of the decoder named `name`.
    public static func index(of name: String) -> Int? { decoders.firstIndex { $0.name == name } }

    /// The bound on decompressed bytes when record batches are decoded (the client's
    /// default is 256 MiB; a small bound keeps each fuzz input fast and its memory low).
    public static let maxUncompressedBytes = 1 << 20

    /// A Fetch response's partitions carry record batches: decode them as the consumer does.
    @Sendable static func useFetch(_ response: FetchResponse) {
        for topic in response.responses {
            for partition in topic.partitions where !partition.recordBlock.isEmpty {
                partition.recordBlock.withUnsafeBytes { decodeRecordBatches($0) }
            }
        }
    }

    /// An ApiVersions answer becomes the connection's version table: negotiate every request with it.
    @Sendable static func useApiVersions(_ response: ApiVersionsResponse) {
        let table = ApiVersionTable(response)
        negotiate(table, ProduceRequest.self)
        negotiate(table, FetchRequest.self)
        negotiate(table, ListOffsetsRequest.self)
        negotiate(table, MetadataRequest.self)
        negotiate(table, ApiVersionsRequest.self)
        negotiate(table, CreateTopicsRequest.self)
        negotiate(table, DeleteTopicsRequest.self)
        negotiate(table, FindCoordinatorRequest.self)
        negotiate(table, InitProducerIdRequest.self)
        negotiate(table, AddPartitionsToTxnRequest.self)
        negotiate(table, AddOffsetsToTxnRequest.self)
        negotiate(table, TxnOffsetCommitRequest.self)
        negotiate(table, EndTxnRequest.self)
        negotiate(table, SaslHandshakeRequest.self)
        negotiate(table, SaslAuthenticateRequest.self)
        _ = table.description
    }

    /// A JoinGroup response hands the leader every member's metadata: decode each as the
    /// consumer protocol's subscription, as a consumer group leader does.
    @Sendable static func useJoinGroup(_ response: JoinGroupResponse) {
        for member in response.members {
            guard let subscription = read(member.metadata, { ConsumerProtocolSubscription(from: &$0) }) else { continue }
            let again = read(subscription.encoded(), { ConsumerProtocolSubscription(from: &$0) })
            fuzzCheck(again == subscription, "a subscription changed through its own encoding")
        }
    }

    /// A SyncGroup response carries this member's assignment: decode it as a consumer does.
    @Sendable static func useSyncGroup(_ response: SyncGroupResponse) {
        guard let assignment = read(response.assignment, { ConsumerProtocolAssignment(from: &$0) }) else { return }
        let again = read(assignment.encoded(), { ConsumerProtocolAssignment(from: &$0) })
        fuzzCheck(again == assignment, "an assignment changed through its own encoding")
    }

    /// The value `decode` reads from `bytes`, or `nil` when the reader reports an error.
    static func read<T>(_ bytes: [UInt8], _ decode: (inout ByteReader) -> T) -> T? {
        bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let value = decode(&reader)
            return reader.error == nil ? value : nil
        }
    }

    /// A negotiated version lies in both the library's and the broker's range.
    static func negotiate<R: KafkaRequest>(_ table: ApiVersionTable, _: R.Type) {
        guard let version = try? table.negotiate(R.self) else { return }
        fuzzCheck(R.supportedVersions.contains(version), "\(R.apiKey) negotiated v\(version) outside ours")
        fuzzCheck(table.range(for: R.apiKey)?.contains(version) == true, "\(R.apiKey) negotiated v\(version) outside the broker's")
    }

    /// Decodes record batches (CRC checked, as the consumer does) and checks what was accepted.
    public static func decodeRecordBatches(_ bytes: UnsafeRawBufferPointer, verifyCRC: Bool = true) {
        guard let result = try? RecordBatchDecoder.decode(bytes, verifyCRC: verifyCRC,
                                                          maxUncompressedBytes: maxUncompressedBytes) else { return }
        var size = 0
        for batch in result.batches {
            fuzzCheck(batch.header.magic == 2, "accepted a batch with magic \(batch.header.magic)")
            fuzzCheck(batch.records.count == Int(batch.header.recordCount),
                      "\(batch.records.count) records decoded, \(batch.header.recordCount) declared")
            fuzzCheck(batch.header.byteCount >= RecordBatchLayout.headerSize, "batch of \(batch.header.byteCount) bytes")
            size += batch.header.byteCount
        }
        if result.truncatedTail {
            fuzzCheck(size < bytes.count, "truncated tail, but the batches cover all \(bytes.count) bytes")
        } else {
            fuzzCheck(size == bytes.count, "batches cover \(size) of \(bytes.count) bytes")
        }
    }
}
