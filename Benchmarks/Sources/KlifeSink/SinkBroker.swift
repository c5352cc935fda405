import Glibc
import KlifeProtocol

/// One node of the sink broker: what its connections share (topics, prepared records, the
/// nodes' addresses, its own node id) and the per-connection request loop. The nodes of a
/// `--nodes N` sink share the catalog and the record set.
final class SinkBroker: Sendable {
    /// Topics and high watermarks.
    let catalog: SinkCatalog
    /// What Fetch serves.
    let records: PreparedRecordSet
    /// Every node's address and the partition leaders.
    let nodes: SinkNodes
    /// The node id this broker answers as.
    let nodeID: Int32

    /// Frames larger than this are treated as malformed input.
    static let maxFrameBytes = 256 << 20

    init(catalog: SinkCatalog, records: PreparedRecordSet, nodes: SinkNodes, nodeID: Int32) {
        self.catalog = catalog
        self.records = records
        self.nodes = nodes
        self.nodeID = nodeID
    }

    /// Whether this node leads `partition` (Produce and Fetch elsewhere get NOT_LEADER_OR_FOLLOWER).
    func leads(_ partition: Int32) -> Bool { nodes.leader(of: partition) == nodeID }

    /// Answers requests on `descriptor` until the peer closes it or sends something the
    /// sink cannot parse (then the connection is closed with a line on stderr). Closes
    /// `descriptor` on return.
    func serve(connection descriptor: Int32) {
        defer { close(descriptor) }
        var frame = FrameBuffer()
        var response = ResponseFrame()
        while true {
            var sizeBytes: UInt32 = 0
            switch withUnsafeMutableBytes(of: &sizeBytes, { readFully(descriptor, $0) }) {
            case .closed: return
            case .failed(let why): return report(descriptor, "read failed: \(why)")
            case .complete: break
            }
            let size = Int(Int32(bigEndian: Int32(bitPattern: sizeBytes)))
            guard size >= 8, size <= Self.maxFrameBytes else {
                return report(descriptor, "frame size \(size) out of range")
            }
            let bytes = frame.reserve(size)
            switch readFully(descriptor, bytes) {
            case .closed: return report(descriptor, "connection closed inside a \(size)-byte frame")
            case .failed(let why): return report(descriptor, "read failed: \(why)")
            case .complete: break
            }
            var reader = ByteReader(UnsafeRawBufferPointer(bytes))
            let apiKey = reader.readInt16()
            let version = reader.readInt16()
            let correlationID = reader.readInt32()
            _ = reader.readNullableString()   // client_id
            if let error = reader.error { return report(descriptor, "bad request header: \(error)") }
            let key = ApiKey(rawValue: apiKey)
            let supported = key.flatMap(SupportedApis.versions(for:))
            guard let key, let supported, supported.contains(version) else {
                if apiKey == ApiKey.apiVersions.rawValue {
                    // Unknown ApiVersions version: v0 body, UNSUPPORTED_VERSION, our ranges.
                    response.begin(correlationID: correlationID, flexibleHeader: false)
                    SupportedApis.writeApiVersions(version: nil, into: &response.body)
                    guard response.send(to: descriptor) else { return }
                    continue
                }
                let name = key.map(String.init(describing:)) ?? "key \(apiKey)"
                return report(descriptor, "\(name) v\(version) is not supported (advertised: "
                              + (supported.map { "v\($0.lowerBound)-\($0.upperBound)" } ?? "none") + ")")
            }
            // Among the supported versions only ApiVersions v3 is flexible (request header v2);
            // its response header stays v0, so every response here uses header v0.
            if key == .apiVersions && version >= 3 { reader.skipTaggedFields() }
            response.begin(correlationID: correlationID, flexibleHeader: false)
            let answer = handle(key, version: version, request: &reader, into: &response)
            if let error = reader.error {
                return report(descriptor, "malformed \(key) v\(version) request: \(error)")
            }
            if answer, !response.send(to: descriptor) { return }
        }
    }

    /// Runs the handler of `key`. - Returns: whether a response is sent (not for acks=0).
    private func handle(_ key: ApiKey, version: Int16, request: inout ByteReader,
                        into response: inout ResponseFrame) -> Bool {
        switch key {
        case .apiVersions:
            SupportedApis.writeApiVersions(version: version, into: &response.body)   // body not needed
        case .metadata: handleMetadata(&request, version: version, into: &response.body)
        case .produce: return handleProduce(&request, version: version, into: &response.body)
        case .fetch: handleFetch(&request, version: version, into: &response)
        case .listOffsets: handleListOffsets(&request, version: version, into: &response.body)
        case .findCoordinator: handleFindCoordinator(&request, version: version, into: &response.body)
        case .createTopics: handleCreateTopics(&request, version: version, into: &response.body)
        case .deleteTopics: handleDeleteTopics(&request, version: version, into: &response.body)
        case .initProducerId: handleInitProducerId(&request, version: version, into: &response.body)
        default: break   // not in SupportedApis: never reached
        }
        return true
    }

    private func report(_ descriptor: Int32, _ message: String) {
        printToStandardError("klife-sink: connection \(descriptor) closed: \(message)")
    }
}
