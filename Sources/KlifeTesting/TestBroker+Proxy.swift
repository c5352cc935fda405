extension TestBroker {
    /// Starts a broker whose every client connection passes through a ``FaultProxy``.
    ///
    /// Clients learn broker addresses from Metadata, so the broker advertises the proxy's
    /// address: a client bootstrapped on either `proxy.address` or `broker.bootstrapServers`
    /// talks to the broker through the proxy from its first Metadata answer on.
    ///
    /// ```swift
    /// let (broker, proxy) = try await TestBroker.startBehindProxy()
    /// defer { proxy.stop(); broker.stop() }
    /// let client = try await KlifeClient.connect(KlifeConfiguration(bootstrapServers: [proxy.address]))
    /// proxy.setRandomKills(every: .milliseconds(100) ... .milliseconds(400), seed: 7)
    /// ```
    /// - Throws: ``FaultProxyError`` or ``TestBrokerError``.
    public static func startBehindProxy(readyTimeout: Duration = .seconds(20)) async throws -> (broker: TestBroker, proxy: FaultProxy) {
        let brokerPort = try freeLoopbackPort()
        let proxy = try FaultProxy.start(upstream: "127.0.0.1:\(brokerPort)")
        do {
            let broker = try await TestBroker.start(port: brokerPort, advertisedPort: proxy.port, readyTimeout: readyTimeout)
            return (broker, proxy)
        } catch {
            proxy.stop()
            throw error
        }
    }
}
