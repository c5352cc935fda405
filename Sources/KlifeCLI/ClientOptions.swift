import Klife
import Glibc

/// The options every broker-talking command shares (`-b`, `-X`) and the code that turns
/// them into a ``KlifeConfiguration`` and a connected client.
enum ClientOptions {
    /// `-b` and `-X`, for inclusion in a command's option table.
    static let specs: [OptionSpec] = [
        OptionSpec(["-b", "--brokers"], value: "HOST:PORT[,...]",
                   help: "Bootstrap servers (default: $KLIFE_BROKERS)"),
        OptionSpec(["-X", "--property"], value: "KEY=VALUE",
                   help: "Client setting, repeatable (see 'Properties' below)", repeatable: true),
    ]

    /// Help paragraph listing the `-X` keys.
    static let propertiesHelp = """
        Properties (-X KEY=VALUE):
          linger.ms=N             producer linger before a batch is sent (default 0)
          acks=0|1|all            acknowledgement level (default all)
          reactors=N              reactor threads (default 1)
          client.id=NAME          client id sent to the broker (default klife-swift)
          request.timeout.ms=N    request round-trip limit (default 30000)
          connect.timeout.ms=N    TCP connect limit (default 10000)
          delivery.timeout.ms=N   time a produced record may take, retries included (default 120000)
          max.in.flight=N         produce requests in flight per broker (default 5)
        """

    /// Builds a validated configuration from `-b` (or `$KLIFE_BROKERS`) and `-X`.
    /// - Throws: ``UsageError`` naming the bad option.
    static func configuration(from arguments: ParsedArguments) throws(UsageError) -> KlifeConfiguration {
        let list: String
        if let given = arguments.value("--brokers") {
            list = given
        } else if let env = getenv("KLIFE_BROKERS"), !String(cString: env).isEmpty {
            list = String(cString: env)
        } else {
            throw arguments.usageError("missing -b HOST:PORT (or set KLIFE_BROKERS)")
        }
        let servers = list.split(separator: ",").map { String($0) }.filter { !$0.isEmpty }
        for server in servers where BrokerAddress(parsing: server) == nil {
            throw arguments.usageError("invalid broker address '\(server)': expected HOST:PORT")
        }
        var config = KlifeConfiguration(bootstrapServers: servers)
        for (key, value) in try arguments.pairs("--property") {
            try apply(key, value, to: &config, arguments)
        }
        do {
            try config.validate()
        } catch {
            throw arguments.usageError(error.description)
        }
        return config
    }

    private static func apply(_ key: String, _ value: String, to config: inout KlifeConfiguration,
                              _ arguments: ParsedArguments) throws(UsageError) {
        func number(_ range: ClosedRange<Int>) throws(UsageError) -> Int {
            guard let n = Int(value), range.contains(n) else {
                throw arguments.usageError("invalid value '\(value)' for -X \(key): expected an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return n
        }
        switch key {
        case "linger.ms": config.producer.linger = .milliseconds(try number(0...600_000))
        case "acks":
            switch value {
            case "0": config.producer.acks = .none
            case "1": config.producer.acks = .leader
            case "all", "-1": config.producer.acks = .all
            default: throw arguments.usageError("invalid value '\(value)' for -X acks: expected 0, 1 or all")
            }
        case "reactors": config.reactorCount = try number(1...64)
        case "client.id":
            guard !value.isEmpty else { throw arguments.usageError("-X client.id must not be empty") }
            config.clientID = value
        case "request.timeout.ms": config.requestTimeout = .milliseconds(try number(1...3_600_000))
        case "connect.timeout.ms": config.connectTimeout = .milliseconds(try number(1...3_600_000))
        case "delivery.timeout.ms": config.producer.deliveryTimeout = .milliseconds(try number(1...86_400_000))
        case "max.in.flight": config.producer.maxInFlightPerBroker = try number(1...1000)
        default:
            throw arguments.usageError("unknown property '\(key)' (known: linger.ms, acks, reactors, client.id, "
                + "request.timeout.ms, connect.timeout.ms, delivery.timeout.ms, max.in.flight)")
        }
    }

    /// Connects, runs `body`, and closes the client whether `body` succeeds or throws.
    static func withClient<T: Sendable>(_ config: KlifeConfiguration,
                                        _ body: (KlifeClient) async throws -> T) async throws -> T {
        let client = try await KlifeClient.connect(config)
        do {
            let result = try await body(client)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }

    /// Fetches metadata for one topic and fails with a clear message when it does not exist.
    static func topicMetadata(_ client: KlifeClient, _ topic: String) async throws -> TopicMetadata {
        let metadata = try await client.metadata(topics: [topic])
        guard let found = metadata.topics[topic], !found.partitions.isEmpty else {
            throw CommandFailure("topic '\(topic)' does not exist (create it with: klife topic create -b ... \(topic))")
        }
        return found
    }
}
