/// Retry and dead-letter topics: where records go when their in-process attempts run out
/// (``FailurePolicy/maxAttempts``) or a handler dead-letters them.
///
/// A chain per source topic: retry topic 1 (read again after `delays[0]`), retry topic 2
/// (after `delays[1]`), …, then the dead-letter topic. The consumer reads its retry topics
/// itself (they join its subscription), hands their records to the same handler once due, and
/// moves a record that fails there too one step further along the chain.
///
/// Names follow the convention `<topic>.retry.<delay>` and `<topic>.dlq` (`orders.retry.5s`,
/// `orders.retry.1m`, `orders.retry.10m`, `orders.dlq`) unless ``perTopic`` gives them; a
/// topic's chain may also have delays of its own there.
///
/// ```swift
/// settings.topics = ["orders"]
/// settings.failurePolicy = FailurePolicy(maxAttempts: 3)
/// settings.retryTopics = RetryTopics(delays: [.seconds(5), .seconds(60), .seconds(600)],
///                                    createMissing: true)
/// ```
public struct RetryTopics: Sendable, Equatable {
    /// How long a record waits in each retry topic before it is handed out again, in chain
    /// order; empty: failed records go straight to the dead-letter topic.
    public var delays: [Duration]
    /// Whether the chain ends in a dead-letter topic. Without one, a record failing in the
    /// last retry topic stops that partition (``KlifeError/Code/recordFailed``).
    public var deadLetter: Bool
    /// A chain of its own for some source topics (delays, names); others use ``delays`` and the
    /// naming convention.
    public var perTopic: [String: Chain]
    /// Creates missing retry and dead-letter topics (with the source topic's partition count)
    /// when the consumer starts.
    public var createMissing: Bool
    /// While a key has a record in the retry chain, later records of that key (read by this
    /// consumer) follow it into the chain instead of overtaking it.
    public var perKeyOrder: Bool
    /// The replication factor of created topics (`-1`: the broker's default).
    public var replicationFactor: Int16

    /// One source topic's own chain: each field left `nil` follows the ``RetryTopics`` default.
    public struct Chain: Sendable, Equatable {
        /// Delays of this topic's retry topics, in chain order (`nil`: ``RetryTopics/delays``).
        public var delays: [Duration]?
        /// Names of its retry topics, one per delay (`nil`: the naming convention).
        public var retryNames: [String]?
        /// Name of its dead-letter topic (`nil`: `<topic>.dlq`).
        public var deadLetterName: String?
        /// A chain; `retryNames`, when given, must have one name per delay.
        public init(delays: [Duration]? = nil, retryNames: [String]? = nil, deadLetterName: String? = nil) {
            self.delays = delays
            self.retryNames = retryNames
            self.deadLetterName = deadLetterName
        }
    }

    /// A chain of retry topics with `delays`, then a dead-letter topic when `deadLetter`.
    public init(delays: [Duration] = [], deadLetter: Bool = true, perTopic: [String: Chain] = [:],
                createMissing: Bool = false, perKeyOrder: Bool = false, replicationFactor: Int16 = -1) {
        self.delays = delays
        self.deadLetter = deadLetter
        self.perTopic = perTopic
        self.createMissing = createMissing
        self.perKeyOrder = perKeyOrder
        self.replicationFactor = replicationFactor
    }

    /// The delays of `topic`'s retry topics, in chain order.
    public func delays(of topic: String) -> [Duration] { perTopic[topic]?.delays ?? delays }

    /// The retry topics of `topic`, in chain order.
    public func retryTopics(of topic: String) -> [String] {
        if let explicit = perTopic[topic]?.retryNames { return explicit }
        return delays(of: topic).map { "\(topic).retry.\(Self.label($0))" }
    }

    /// The dead-letter topic of `topic` (`nil` without one).
    public func deadLetterTopic(of topic: String) -> String? {
        guard deadLetter else { return nil }
        return perTopic[topic]?.deadLetterName ?? "\(topic).dlq"
    }

    /// A delay as a topic-name label: `500ms`, `5s`, `1m`, `2h`, the largest exact unit.
    static func label(_ delay: Duration) -> String {
        let ms = delay.nanoseconds / 1_000_000
        if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }

    func validate(sources: [String]) throws(KlifeError) {
        if delays.contains(where: { $0 < .milliseconds(1) }) {
            throw .invalidConfiguration("consumer.retryTopics.delays", "every delay must be at least 1 ms")
        }
        for (topic, chain) in perTopic {
            if chain.delays?.contains(where: { $0 < .milliseconds(1) }) == true {
                throw .invalidConfiguration("consumer.retryTopics.perTopic[\(topic)].delays", "every delay must be at least 1 ms")
            }
            if let names = chain.retryNames, names.count != delays(of: topic).count {
                throw .invalidConfiguration("consumer.retryTopics.perTopic[\(topic)].retryNames",
                                            "must name one topic per delay (\(delays(of: topic).count))")
            }
        }
        for source in sources where delays(of: source).isEmpty && !deadLetter {
            throw .invalidConfiguration("consumer.retryTopics", "needs a delay or a dead-letter topic (for \(source))")
        }
        for source in sources {
            let chain = retryTopics(of: source) + [deadLetterTopic(of: source)].compactMap { $0 }
            if chain.contains(source) || Set(chain).count != chain.count {
                throw .invalidConfiguration("consumer.retryTopics.perTopic[\(source)]", "every topic of a chain must differ from the others and from its source")
            }
        }
    }
}

/// Where a record stands in its retry chain, from the headers it was moved with.
struct RetryChainPosition: Sendable, Equatable {
    /// The topic the record was first read from.
    var source: String
    /// Which retry topic holds it (0-based), or `nil` when it is read from its source.
    var stage: Int?
}
