// A service that consumes `orders` in group `order-audit`, with the three adapters:
// the client's log events in swift-log, its statistics in swift-metrics (whatever backend
// `MetricsSystem.bootstrap` installed; none here, so they go nowhere), and a ServiceGroup that
// starts the client and the consumer and, on SIGTERM or SIGINT, commits, leaves the group,
// flushes and closes.
//
//   klife broker --port 9092 &
//   swift run --package-path Integrations integrations-example 127.0.0.1:9092
import Foundation
import Klife
import KlifeLogging
import KlifeMetrics
import KlifeServiceLifecycle
import Logging
import ServiceLifecycle

let logger = Logger(label: "order-audit")
let bootstrap = CommandLine.arguments.dropFirst().first ?? "127.0.0.1:9092"

var config = KlifeConfiguration(bootstrapServers: [bootstrap])
config.log(to: logger)
let client = try await KlifeClient.connect(config)
try await client.createTopic("orders", partitions: 3)

var settings = ConsumerConfiguration()
settings.groupID = "order-audit"
settings.topics = ["orders"]
let consumer = try client.consumer(settings)

let clientMetrics = ClientMetrics(client: client, dimensions: [("service", "order-audit")])
let consumerMetrics = ConsumerMetrics(consumer: consumer, dimensions: [("group", "order-audit")])

let audit = KlifeConsumerService(consumer: consumer) { batch in
    for record in batch.records {
        logger.info("order \(record.keyString ?? "-"): \(record.valueString ?? "")")
    }
}
let metricsPolling = Task {
    async let producer: Void = clientMetrics.run(every: .seconds(10))
    async let reader: Void = consumerMetrics.run(every: .seconds(10))
    _ = await (producer, reader)
}

// The group stops services in reverse order: the consumer first, then the client.
let group = ServiceGroup(services: [KlifeClientService(client: client), audit],
                         gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
try await group.run()
metricsPolling.cancel()
