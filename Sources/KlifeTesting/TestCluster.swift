public import Klife
import Foundation

/// The cluster a test runs against: an external one named by `KLIFE_BOOTSTRAP_SERVERS`,
/// or an embedded ``TestBroker`` started for the test.
///
/// ```swift
/// let cluster = try await TestCluster.start()
/// defer { cluster.stop() }
/// let client = try await cluster.client()
/// ```
public final class TestCluster: Sendable {
    /// Bootstrap servers as `host:port` entries.
    public let bootstrapServers: [String]
    /// The embedded broker, when one was started.
    public let broker: TestBroker?

    private init(bootstrapServers: [String], broker: TestBroker?) {
        self.bootstrapServers = bootstrapServers
        self.broker = broker
    }

    /// Uses `KLIFE_BOOTSTRAP_SERVERS` (comma-separated) when set, else starts a ``TestBroker``.
    public static func start() async throws -> TestCluster {
        if let external = ProcessInfo.processInfo.environment["KLIFE_BOOTSTRAP_SERVERS"], !external.isEmpty {
            let servers = external.split(separator: ",").map { String($0) }
            return TestCluster(bootstrapServers: servers, broker: nil)
        }
        let broker = try await TestBroker.start()
        return TestCluster(bootstrapServers: [broker.bootstrapServers], broker: broker)
    }

    /// A configuration for this cluster, adjusted by `configure`.
    public func configuration(_ configure: (inout KlifeConfiguration) -> Void = { _ in }) -> KlifeConfiguration {
        var config = KlifeConfiguration(bootstrapServers: bootstrapServers)
        config.requestTimeout = .seconds(15)
        configure(&config)
        return config
    }

    /// A connected client for this cluster.
    public func client(_ configure: (inout KlifeConfiguration) -> Void = { _ in }) async throws -> KlifeClient {
        try await KlifeClient.connect(configuration(configure))
    }

    /// A topic name unique to this process and call, so tests never share state.
    public static func uniqueTopicName(_ prefix: String = "klife-test") -> String {
        "\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Stops the embedded broker, if any.
    public func stop() { broker?.stop() }
}
