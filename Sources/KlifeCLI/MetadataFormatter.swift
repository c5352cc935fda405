import Klife
import KlifeProtocol

/// Renders ``ClusterMetadata`` for people (kcat `-L` style) or as JSON.
/// Brokers are sorted by node id, topics by name, partitions by index.
enum MetadataFormatter {
    /// Human-readable text, one line per broker and partition.
    static func text(_ metadata: ClusterMetadata) -> String {
        var lines: [String] = []
        lines.append("cluster: \(metadata.clusterID ?? "(unknown)")")
        lines.append("controller: \(metadata.controllerID >= 0 ? String(metadata.controllerID) : "(none)")")

        let brokers = metadata.brokers.values.sorted { $0.nodeID < $1.nodeID }
        lines.append("\(brokers.count) \(plural(brokers.count, "broker")):")
        for broker in brokers {
            var line = "  broker \(broker.nodeID) at \(broker.address)"
            if broker.nodeID == metadata.controllerID { line += " (controller)" }
            if let rack = broker.rack { line += " rack \(rack)" }
            lines.append(line)
        }

        let topics = metadata.topics.values.sorted { $0.name < $1.name }
        lines.append("\(topics.count) \(plural(topics.count, "topic")):")
        for topic in topics {
            var header = "  topic \"\(topic.name)\" with \(topic.partitions.count) \(plural(topic.partitions.count, "partition"))"
            if topic.topicID != .zero { header += ", id \(topic.topicID)" }
            if topic.isInternal { header += " (internal)" }
            lines.append(header + ":")
            for p in topic.partitions {
                var line = "    partition \(p.partition): leader \(p.leaderID >= 0 ? String(p.leaderID) : "none")"
                if p.leaderEpoch >= 0 { line += ", epoch \(p.leaderEpoch)" }
                line += ", replicas [\(list(p.replicas))], isr [\(list(p.isr))]"
                if let error = p.error { line += ", error \(error)" }
                lines.append(line)
            }
        }
        return lines.joined(separator: "\n")
    }

    /// A JSON document with `cluster_id`, `controller_id`, `brokers` and `topics`.
    static func json(_ metadata: ClusterMetadata) -> JSONValue {
        let brokers = metadata.brokers.values.sorted { $0.nodeID < $1.nodeID }.map { broker -> JSONValue in
            .object([
                ("id", .int(broker.nodeID)),
                ("host", .string(broker.address.host)),
                ("port", .int(broker.address.port)),
                ("rack", .optional(broker.rack)),
                ("controller", .bool(broker.nodeID == metadata.controllerID)),
            ])
        }
        let topics = metadata.topics.values.sorted { $0.name < $1.name }.map { topic -> JSONValue in
            .object([
                ("name", .string(topic.name)),
                ("topic_id", topic.topicID == .zero ? .null : .string(topic.topicID.description)),
                ("internal", .bool(topic.isInternal)),
                ("partitions", .array(topic.partitions.map(partition))),
            ])
        }
        return .object([
            ("cluster_id", .optional(metadata.clusterID)),
            ("controller_id", .int(metadata.controllerID)),
            ("brokers", .array(brokers)),
            ("topics", .array(topics)),
        ])
    }

    private static func partition(_ p: PartitionMetadata) -> JSONValue {
        .object([
            ("partition", .int(p.partition)),
            ("leader", .int(p.leaderID)),
            ("leader_epoch", .int(p.leaderEpoch)),
            ("replicas", .array(p.replicas.map { .int($0) })),
            ("isr", .array(p.isr.map { .int($0) })),
            ("error", .optional(p.error?.name)),
        ])
    }

    private static func list(_ ids: [Int32]) -> String {
        ids.map(String.init).joined(separator: ",")
    }

    private static func plural(_ count: Int, _ word: String) -> String {
        count == 1 ? word : word + "s"
    }
}
