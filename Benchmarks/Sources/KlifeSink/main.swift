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

let listener: LoopbackListener
do {
    listener = try LoopbackListener(port: options.port)
} catch {
    fail(error.description)
}

let broker = SinkBroker(catalog: catalog, records: records, port: listener.port)
printToStandardOutput("listening 127.0.0.1:\(listener.port)")
if options.fetchRecords > 0 {
    printToStandardOutput("fetch record set: \(options.fetchRecords) records of \(options.fetchRecordSize) B per partition, "
          + "\(options.fetchCompression), \(records.batchRecords) records per batch, \(records.byteCount) bytes")
}

while true {
    let connection: Int32
    do {
        connection = try listener.accept()
    } catch {
        fail(error.description)
    }
    if !startDetachedThread({ broker.serve(connection: connection) }) {
        close(connection)
        printToStandardError("klife-sink: no thread for a new connection; closed it")
    }
}
