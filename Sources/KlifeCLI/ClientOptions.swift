import Klife
import KlifeProtocol
import Glibc

/// The options every broker-talking command shares (`-b`, `-X`, SASL, TLS) and the code
/// that turns them into a ``KlifeConfiguration`` and a connected client.
enum ClientOptions {
    /// `-b`, `-X` and the security options, for inclusion in a command's option table.
    static let specs: [OptionSpec] = [
        OptionSpec(["-b", "--brokers"], value: "HOST:PORT[,...]",
                   help: "Bootstrap servers (default: $KLIFE_BROKERS)"),
        OptionSpec(["-X", "--property"], value: "KEY=VALUE",
                   help: "Client setting, repeatable (see 'Properties' below)", repeatable: true),
    ] + securitySpecs

    /// SASL and TLS options (bench commands add them to their own table).
    static let securitySpecs: [OptionSpec] = [
        OptionSpec(["--sasl-mechanism"], value: "M", help: "SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
        OptionSpec(["--sasl-username"], value: "USER", help: "SASL user name"),
        OptionSpec(["--sasl-password"], value: "PASS", help: "SASL password (default: $KLIFE_SASL_PASSWORD)"),
        OptionSpec(["--tls"], help: "Connect with TLS, trusting the system CA store (any --tls-* option implies it)"),
        OptionSpec(["--tls-ca"], value: "FILE", help: "Trust the CA certificates in this PEM file instead"),
        OptionSpec(["--tls-ca-dir"], value: "DIR", help: "Trust the hashed CA certificates in this directory instead"),
        OptionSpec(["--tls-cert"], value: "FILE", help: "Client certificate PEM, for mutual TLS (needs --tls-key)"),
        OptionSpec(["--tls-key"], value: "FILE",
                   help: "Client private key PEM (an encrypted key's password: $KLIFE_TLS_KEY_PASSWORD)"),
        OptionSpec(["--tls-server-name"], value: "NAME", help: "Name to send in SNI and verify instead of each broker's host"),
        OptionSpec(["--tls-no-verify-hostname"], help: "Accept a certificate that does not name the broker (unsafe)"),
    ]

    /// Help paragraph listing the `-X` keys.
    static let propertiesHelp = """
        Properties (-X KEY=VALUE):
          linger.ms=N             producer linger before a batch is sent (default 0)
          acks=0|1|all            acknowledgement level (default all; 0 or 1 turn idempotence off
                                  unless enable.idempotence=true is given, which is then an error)
          enable.idempotence=B    true|false: idempotent production (default true with acks=all)
          compression.type=C      none|gzip|snappy|lz4|zstd (default none)
          reactors=N              reactor threads (default 1)
          reactor.affinity=L      pin reactor i to the i-th CPU id of L, e.g. 0,1 (one per reactor;
                                  default: unpinned)
          reactor.busy.poll.us=N  keep polling N µs after each event before sleeping (default 0:
                                  sleep at once; lower latency for a busy core)
          client.id=NAME          client id sent to the broker (default klife-swift)
          request.timeout.ms=N    request round-trip limit (default 30000)
          connect.timeout.ms=N    TCP connect limit (default 10000)
          delivery.timeout.ms=N   time a produced record may take, retries included (default 120000)
          max.in.flight=N         produce requests in flight per broker (default 5)
        """

    /// Settings a command's own flags apply on top of `-X` (see ``configuration(from:adjust:)``).
    struct Adjustments {
        /// Idempotence asked for explicitly (`-X enable.idempotence`, `--no-idempotence`);
        /// `nil` lets the acknowledgement level decide, as the Java client does.
        var idempotence: Bool?
        /// `-X reactor.affinity`: one CPU id per reactor, checked against the reactor count
        /// once every `-X` is read (the two may come in either order).
        var reactorCPUs: [Int]?
    }

    /// Builds a validated configuration from `-b` (or `$KLIFE_BROKERS`) and `-X`, then the
    /// command's own flags (`adjust`, which overrides `-X`).
    ///
    /// Idempotence follows the Java client: on by default, turned off when `acks` is 0 or 1
    /// unless it was asked for explicitly, in which case the combination is a usage error.
    /// - Throws: ``UsageError`` naming the bad option.
    static func configuration(
        from arguments: ParsedArguments,
        adjust: (inout KlifeConfiguration, inout Adjustments) throws(UsageError) -> Void = { _, _ in }
    ) throws(UsageError) -> KlifeConfiguration {
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
        var adjustments = Adjustments()
        for (key, value) in try arguments.pairs("--property") {
            try apply(key, value, to: &config, &adjustments, arguments)
        }
        try adjust(&config, &adjustments)
        if let cpus = adjustments.reactorCPUs {
            guard cpus.count == config.reactorCount else {
                throw arguments.usageError("-X reactor.affinity lists \(cpus.count) CPU id(s) but there are "
                    + "\(config.reactorCount) reactor(s) (-X reactors=N): give one CPU id per reactor")
            }
            config.reactorCPUAffinity = cpus.map { [$0] }
        }
        config.sasl = try sasl(from: arguments)
        config.tls = try tls(from: arguments)
        switch adjustments.idempotence {
        case true?:
            if config.producer.acks != .all {
                throw arguments.usageError("idempotence (-X enable.idempotence=true) needs acks=all, "
                    + "got acks=\(config.producer.acks.cliName)")
            }
            config.producer.idempotent = true
        case false?:
            config.producer.idempotent = false
        case nil:
            config.producer.idempotent = config.producer.acks == .all
        }
        do {
            try config.validate()
        } catch {
            throw arguments.usageError(error.description)
        }
        return config
    }

    /// `--sasl-mechanism`, `--sasl-username`, `--sasl-password` (or `$KLIFE_SASL_PASSWORD`,
    /// which keeps the password out of the process list); all or nothing.
    private static func sasl(from arguments: ParsedArguments) throws(UsageError) -> SASLConfiguration? {
        let mechanismName = arguments.value("--sasl-mechanism")
        let username = arguments.value("--sasl-username")
        var password = arguments.value("--sasl-password")
        if password == nil, let env = getenv("KLIFE_SASL_PASSWORD") { password = String(cString: env) }
        if mechanismName == nil && username == nil && arguments.value("--sasl-password") == nil { return nil }
        guard let mechanismName else { throw arguments.usageError("--sasl-username/--sasl-password need --sasl-mechanism") }
        guard let mechanism = SASLConfiguration.Mechanism.allCases.first(where: { $0.description == mechanismName.uppercased() }) else {
            throw arguments.usageError("invalid value '\(mechanismName)' for --sasl-mechanism: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        }
        guard let username else { throw arguments.usageError("--sasl-mechanism needs --sasl-username") }
        guard let password else { throw arguments.usageError("--sasl-mechanism needs --sasl-password or KLIFE_SASL_PASSWORD") }
        return SASLConfiguration(mechanism: mechanism, username: username, password: password)
    }

    /// `--tls` and the `--tls-*` options (any of them turns TLS on); an encrypted key's
    /// password comes from `$KLIFE_TLS_KEY_PASSWORD`, so it stays out of the process list.
    private static func tls(from arguments: ParsedArguments) throws(UsageError) -> TLSConfiguration? {
        let keys = ["--tls", "--tls-ca", "--tls-ca-dir", "--tls-cert", "--tls-key", "--tls-server-name", "--tls-no-verify-hostname"]
        guard keys.contains(where: { arguments.has($0) }) else { return nil }
        var tls = TLSConfiguration(caFile: arguments.value("--tls-ca"), caDirectory: arguments.value("--tls-ca-dir"),
                                   certificateFile: arguments.value("--tls-cert"), privateKeyFile: arguments.value("--tls-key"),
                                   serverName: arguments.value("--tls-server-name"),
                                   verifyHostname: !arguments.has("--tls-no-verify-hostname"))
        if tls.certificateFile != nil && tls.privateKeyFile == nil { throw arguments.usageError("--tls-cert needs --tls-key") }
        if tls.privateKeyFile != nil && tls.certificateFile == nil { throw arguments.usageError("--tls-key needs --tls-cert") }
        if tls.privateKeyFile != nil, let env = getenv("KLIFE_TLS_KEY_PASSWORD"), env.pointee != 0 {
            tls.privateKeyPassword = String(cString: env)
        }
        return tls
    }

    private static func apply(_ key: String, _ value: String, to config: inout KlifeConfiguration,
                              _ adjustments: inout Adjustments, _ arguments: ParsedArguments) throws(UsageError) {
        func number(_ range: ClosedRange<Int>) throws(UsageError) -> Int {
            guard let n = Int(value), range.contains(n) else {
                throw arguments.usageError("invalid value '\(value)' for -X \(key): expected an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return n
        }
        switch key {
        case "linger.ms": config.producer.linger = .milliseconds(try number(0...600_000))
        case "acks":
            guard let acks = Acks(cliName: value) else {
                throw arguments.usageError("invalid value '\(value)' for -X acks: expected 0, 1 or all")
            }
            config.producer.acks = acks
        case "enable.idempotence":
            switch value {
            case "true": adjustments.idempotence = true
            case "false": adjustments.idempotence = false
            default: throw arguments.usageError("invalid value '\(value)' for -X enable.idempotence: expected true or false")
            }
        case "compression.type", "compression.codec":
            guard let codec = CompressionCodec(cliName: value) else {
                throw arguments.usageError("invalid value '\(value)' for -X \(key): expected \(CompressionCodec.cliNames)")
            }
            config.producer.compression = codec
        case "reactors": config.reactorCount = try number(1...64)
        case "reactor.affinity": adjustments.reactorCPUs = try reactorCPUs(value, arguments)
        case "reactor.busy.poll.us": config.reactorBusyPollMicroseconds = try number(0...100_000)
        case "client.id":
            guard !value.isEmpty else { throw arguments.usageError("-X client.id must not be empty") }
            config.clientID = value
        case "request.timeout.ms": config.requestTimeout = .milliseconds(try number(1...3_600_000))
        case "connect.timeout.ms": config.connectTimeout = .milliseconds(try number(1...3_600_000))
        case "delivery.timeout.ms": config.producer.deliveryTimeout = .milliseconds(try number(1...86_400_000))
        case "max.in.flight": config.producer.maxInFlightPerBroker = try number(1...1000)
        default:
            throw arguments.usageError("unknown property '\(key)' (known: linger.ms, acks, enable.idempotence, "
                + "compression.type, reactors, reactor.affinity, reactor.busy.poll.us, client.id, request.timeout.ms, "
                + "connect.timeout.ms, "
                + "delivery.timeout.ms, max.in.flight)")
        }
    }

    /// Parses `-X reactor.affinity=0,1`: comma-separated CPU ids, each one this machine has
    /// (below the configured processor count).
    private static func reactorCPUs(_ value: String, _ arguments: ParsedArguments) throws(UsageError) -> [Int] {
        let machineCPUs = max(Int(sysconf(Int32(_SC_NPROCESSORS_CONF))), 1)
        var cpus: [Int] = []
        for item in value.split(separator: ",", omittingEmptySubsequences: false) {
            guard let cpu = Int(item.trimmingPrefix(" ")), cpu >= 0 else {
                throw arguments.usageError("invalid value '\(value)' for -X reactor.affinity: expected CPU ids "
                    + "separated by commas, one per reactor (e.g. 0,1)")
            }
            guard cpu < machineCPUs else {
                throw arguments.usageError("-X reactor.affinity: CPU \(cpu) does not exist "
                    + "(this machine has CPUs 0...\(machineCPUs - 1))")
            }
            cpus.append(cpu)
        }
        return cpus
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

extension Acks {
    /// Parses `0`, `1`, `all` (or `-1`), the spellings librdkafka and the Java client accept.
    init?(cliName: String) {
        switch cliName {
        case "0": self = .none
        case "1": self = .leader
        case "all", "-1": self = .all
        default: return nil
        }
    }

    /// `0`, `1` or `all`.
    var cliName: String {
        switch self {
        case .none: "0"
        case .leader: "1"
        case .all: "all"
        }
    }
}

extension CompressionCodec {
    /// Every codec, in the order help lists them.
    static let cliCodecs: [CompressionCodec] = [.none, .gzip, .snappy, .lz4, .zstd]

    /// `none|gzip|snappy|lz4|zstd`, for help and error messages.
    static var cliNames: String { cliCodecs.map(\.description).joined(separator: "|") }

    /// Parses a codec by its Kafka name (`compression.type`).
    init?(cliName: String) {
        guard let codec = Self.cliCodecs.first(where: { $0.description == cliName }) else { return nil }
        self = codec
    }
}
