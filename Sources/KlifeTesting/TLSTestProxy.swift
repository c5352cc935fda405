import Foundation
import Glibc
import Klife

/// A TLS front for a plaintext listener: `socat` on a free `127.0.0.1` port that
/// terminates TLS with a ``TestCertificates`` server certificate and forwards the
/// plaintext to an upstream loopback port (a new socat process per connection).
///
/// ```swift
/// let (broker, tls) = try await TestBroker.startWithTLS()
/// defer { tls.stop(); broker.stop() }
/// var config = KlifeConfiguration(bootstrapServers: [tls.address])
/// config.tls = TLSConfiguration(caFile: tls.certificates.caFile)
/// ```
///
/// With `requireClientCertificate` the proxy demands a client certificate signed by the
/// test CA (mutual TLS). ``stop()`` (also run by `deinit` and at process exit) ends socat
/// and every per-connection process it forked.
public final class TLSTestProxy: Sendable {
    /// `127.0.0.1:PORT`, where clients connect with TLS.
    public let address: String
    /// The loopback port socat listens on.
    public let port: Int
    /// The certificates the proxy presents (and checks client certificates against).
    public let certificates: TestCertificates
    /// Whether a client certificate signed by ``TestCertificates/caFile`` is required.
    public let requiresClientCertificate: Bool
    private let process: BrokerProcess
    private let logPath: String

    private init(port: Int, certificates: TestCertificates, requiresClientCertificate: Bool,
                 process: BrokerProcess, logPath: String) {
        self.port = port
        self.address = "127.0.0.1:\(port)"
        self.certificates = certificates
        self.requiresClientCertificate = requiresClientCertificate
        self.process = process
        self.logPath = logPath
    }

    deinit { stop() }

    /// Whether `socat` and `openssl` are installed (`scripts/bootstrap.sh` installs both).
    public static var isAvailable: Bool {
        TestCertificates.findExecutable("socat") != nil && TestCertificates.isAvailable
    }

    /// Starts the proxy and waits until it accepts connections.
    /// - Parameters:
    ///   - upstreamPort: The `127.0.0.1` port plaintext is forwarded to.
    ///   - certificates: The server certificate and CA to use.
    ///   - requireClientCertificate: Demand a client certificate signed by the test CA.
    ///   - port: A fixed loopback port, or `nil` for a free one.
    /// - Throws: ``TestBrokerError`` when socat is missing, exits, or never listens.
    public static func start(upstreamPort: Int, certificates: TestCertificates,
                             requireClientCertificate: Bool = false, port: Int? = nil) throws -> TLSTestProxy {
        guard let socat = TestCertificates.findExecutable("socat") else {
            throw TestBrokerError(description: "socat is not installed (scripts/bootstrap.sh installs it)")
        }
        let port = try port ?? TestBroker.freeLoopbackPort()
        let verify = requireClientCertificate ? "verify=1,cafile=\(certificates.caFile)" : "verify=0"
        let listen = "OPENSSL-LISTEN:\(port),bind=127.0.0.1,reuseaddr,fork,"
            + "cert=\(certificates.serverCertificateFile),key=\(certificates.serverKeyFile),\(verify)"
        let logPath = certificates.directory + "/socat-\(port).log"
        let process = try BrokerProcess.spawn(socat, arguments: ["-d", listen, "TCP:127.0.0.1:\(upstreamPort)"],
                                              environment: ProcessInfo.processInfo.environment,
                                              logPath: logPath, ownProcessGroup: true)
        let proxy = TLSTestProxy(port: port, certificates: certificates,
                                 requiresClientCertificate: requireClientCertificate,
                                 process: process, logPath: logPath)
        try proxy.waitUntilListening()
        return proxy
    }

    /// Stops socat and its per-connection processes (idempotent).
    public func stop() {
        process.stop()
    }

    /// socat's log so far (handshake errors appear here).
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Polls with plain TCP connects (each makes socat fork a child that fails its TLS
    /// accept and exits) until one succeeds, for at most 10 s.
    private func waitUntilListening() throws {
        for _ in 0..<1000 {
            guard process.isRunning else {
                throw TestBrokerError(description: "socat exited before listening: \(log)")
            }
            if Self.canConnect(port: port) { return }
            usleep(10_000)
        }
        stop()
        throw TestBrokerError(description: "socat not listening on 127.0.0.1:\(port): \(log)")
    }

    private static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

extension TestBroker {
    /// Starts a broker reachable with TLS through a ``TLSTestProxy``.
    ///
    /// The broker listens on one loopback port and advertises the proxy's port in Metadata,
    /// so a client bootstrapped on `tls.address` stays on TLS for every connection (the
    /// same arrangement as ``startBehindProxy(readyTimeout:)``).
    /// - Parameters:
    ///   - requireClientCertificate: The proxy demands a client certificate (mutual TLS).
    ///   - certificates: Certificates to use; `nil` generates fresh ones (owned by the proxy).
    ///   - readyTimeout: How long the broker may take to answer through the proxy.
    /// - Throws: ``TestBrokerError`` when socat, openssl or the broker cannot start.
    public static func startWithTLS(requireClientCertificate: Bool = false, certificates: TestCertificates? = nil,
                                    readyTimeout: Duration = .seconds(20)) async throws -> (broker: TestBroker, tls: TLSTestProxy) {
        let certificates = try certificates ?? TestCertificates.generate()
        let brokerPort = try freeLoopbackPort()
        let proxy = try TLSTestProxy.start(upstreamPort: brokerPort, certificates: certificates,
                                           requireClientCertificate: requireClientCertificate)
        do {
            let tls = requireClientCertificate
                ? TLSConfiguration(caFile: certificates.caFile, certificateFile: certificates.clientCertificateFile,
                                   privateKeyFile: certificates.clientKeyFile)
                : TLSConfiguration(caFile: certificates.caFile)
            let broker = try await TestBroker.start(port: brokerPort, advertisedPort: proxy.port,
                                                    readyTimeout: readyTimeout, advertisedTLS: tls)
            return (broker, proxy)
        } catch {
            proxy.stop()
            throw error
        }
    }
}
