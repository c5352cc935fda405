import Glibc

/// The brokers one `klife-sink` process plays (`--nodes N`): node ids `0..<N` on
/// 127.0.0.1, each on its own port, partition `p` of every topic led by node `p mod N`.
/// Every node answers every API from the same catalog; only Produce and Fetch check that
/// they reached the partition's leader.
struct SinkNodes: Sendable {
    /// The advertised host of every node.
    static let host = "127.0.0.1"

    /// The listening port of each node, indexed by node id.
    let ports: [Int32]

    /// Node ids in order.
    var ids: Range<Int32> { 0..<Int32(ports.count) }

    /// The node the coordinator lookups (FindCoordinator) name and Metadata calls controller.
    let coordinatorID: Int32 = 0

    init(ports: [UInt16]) {
        precondition(!ports.isEmpty, "a sink has at least one node")
        self.ports = ports.map(Int32.init)
    }

    /// The leader of `partition` (of any topic): node `partition mod N`.
    func leader(of partition: Int32) -> Int32 {
        Int32((Int(partition) % ports.count + ports.count) % ports.count)
    }

    /// The port of node `id`.
    func port(of id: Int32) -> Int32 { ports[Int(id)] }
}

/// Accepts connections on `listener` forever, serving each on its own detached thread as
/// `broker`. Exits the process when accepting fails.
func acceptConnections(on listener: LoopbackListener, for broker: SinkBroker) -> Never {
    while true {
        let connection: Int32
        do {
            connection = try listener.accept()
        } catch {
            fail("node \(broker.nodeID): \(error.description)")
        }
        if !startDetachedThread({ broker.serve(connection: connection) }) {
            close(connection)
            printToStandardError("klife-sink: no thread for a new connection to node \(broker.nodeID); closed it")
        }
    }
}
