import Glibc
import KlifeProtocol

// klife-sink: a Kafka-speaking sink broker for benchmarks. See SinkOptions.usage and
// Benchmarks/README.md ("The sink broker").

func fail(_ message: String) -> Never {
    printToStandardError("klife-sink: \(message)")
    exit(1)
}

let options: SinkOptions
do {
    options = try SinkOptions.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    if error.isHelp { print(error.message); exit(0) }
    fail(error.message)
}

signal(SIGPIPE, SIG_IGN)

let records: PreparedRecordSet
do {
    records = try PreparedRecordSet(recordCount: options.fetchRecords, valueSize: options.fetchRecordSize,
                                    compression: options.fetchCompression, batchRecords: options.fetchBatchRecords)
} catch {
    fail("cannot prepare the fetch record set: \(error)")
}

let catalog = SinkCatalog(preparedRecords: options.fetchRecords, defaultPartitions: options.defaultPartitions)
for topic in options.topics { catalog.create(topic.name, partitions: topic.partitions) }

var listeners: [LoopbackListener] = []
for node in 0..<options.nodes {
    do {
        listeners.append(try LoopbackListener(port: options.port == 0 ? 0 : options.port + UInt16(node)))
    } catch {
        fail("node \(node): \(error.description)")
    }
}

let nodes = SinkNodes(ports: listeners.map(\.port))
let brokers = nodes.ids.map { SinkBroker(catalog: catalog, records: records, nodes: nodes, nodeID: $0) }
printToStandardOutput("listening \(SinkNodes.host):\(listeners[0].port)")
for node in 1..<listeners.count {
    printToStandardOutput("node \(node) listening \(SinkNodes.host):\(listeners[node].port)")
}
if options.fetchRecords > 0 {
    printToStandardOutput("fetch record set: \(options.fetchRecords) records of \(options.fetchRecordSize) B per partition, "
          + "\(options.fetchCompression), \(records.batchRecords) records per batch, \(records.byteCount) bytes")
}

for node in 1..<listeners.count {
    let listener = listeners[node], broker = brokers[node]
    guard startDetachedThread({ acceptConnections(on: listener, for: broker) }) else {
        fail("no thread to accept connections for node \(node)")
    }
}
acceptConnections(on: listeners[0], for: brokers[0])
