/// The Kafka error codes the sink answers with.
enum SinkErrorCode {
    /// Success.
    static let none: Int16 = 0
    /// A Fetch offset below 0 or past the high watermark.
    static let offsetOutOfRange: Int16 = 1
    /// No such topic, or no such partition in it.
    static let unknownTopicOrPartition: Int16 = 3
    /// Produce or Fetch sent to a node that does not lead the partition.
    static let notLeaderOrFollower: Int16 = 6
    /// An ApiVersions version the sink does not know.
    static let unsupportedVersion: Int16 = 35
    /// CreateTopics for a topic that exists.
    static let topicAlreadyExists: Int16 = 36
    /// CreateTopics with a partition count the sink refuses.
    static let invalidPartitions: Int16 = 37
}
