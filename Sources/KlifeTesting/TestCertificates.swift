import KlifeIO
import Foundation
import Glibc

/// A throwaway PKI for TLS tests, made with the `openssl` command in a fresh temporary
/// directory: a CA, a server certificate it signed, a client certificate it signed (also as
/// a password-protected key), and an unrelated second CA for "wrong CA" tests.
///
/// ```swift
/// let certificates = try TestCertificates.generate()
/// var config = KlifeConfiguration(bootstrapServers: [address])
/// config.tls = TLSConfiguration(caFile: certificates.caFile)
/// ```
///
/// Keys are ECDSA P-256; certificates are valid for two days. The directory is removed by
/// ``remove()``, when the object is released, or at process exit (for fixtures kept in
/// statics, which are never released).
public final class TestCertificates: Sendable {
    /// The temporary directory holding every file.
    public let directory: String
    /// The CA certificate (PEM) that signed the server and client certificates.
    public let caFile: String
    /// The server certificate (PEM), for the names given to ``generate(serverDNSNames:serverIPAddresses:)``.
    public let serverCertificateFile: String
    /// The server's private key (PEM, unencrypted).
    public let serverKeyFile: String
    /// A client certificate (PEM, `CN=klife-test-client`, extended key usage clientAuth).
    public let clientCertificateFile: String
    /// The client's private key (PEM, unencrypted).
    public let clientKeyFile: String
    /// The client's private key again, encrypted (PKCS#8, AES-256) with ``clientKeyPassword``.
    public let encryptedClientKeyFile: String
    /// The password of ``encryptedClientKeyFile``.
    public let clientKeyPassword = "klife-test-password"
    /// A CA certificate that signed nothing here: trusting only it makes verification fail.
    public let unrelatedCAFile: String

    private init(directory: String) {
        self.directory = directory
        caFile = directory + "/ca.pem"
        serverCertificateFile = directory + "/server.pem"
        serverKeyFile = directory + "/server.key"
        clientCertificateFile = directory + "/client.pem"
        clientKeyFile = directory + "/client.key"
        encryptedClientKeyFile = directory + "/client-encrypted.key"
        unrelatedCAFile = directory + "/unrelated-ca.pem"
    }

    deinit { remove() }

    /// Whether the `openssl` command is on `PATH`.
    public static var isAvailable: Bool { findExecutable("openssl") != nil }

    /// Generates the files.
    /// - Parameters:
    ///   - serverDNSNames: DNS names the server certificate is valid for (the first is also its CN).
    ///   - serverIPAddresses: IP addresses it is valid for.
    /// - Throws: ``TestBrokerError`` when `openssl` is missing or fails.
    public static func generate(serverDNSNames: [String] = ["localhost"],
                                serverIPAddresses: [String] = ["127.0.0.1"]) throws -> TestCertificates {
        guard let openssl = findExecutable("openssl") else {
            throw TestBrokerError(description: "the openssl command is not installed (scripts/bootstrap.sh installs it)")
        }
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("klife-tls-XXXXXX").path
        var pattern = Array(template.utf8CString)
        guard mkdtemp(&pattern) != nil else {
            throw TestBrokerError(description: "mkdtemp failed: errno \(errno)")
        }
        let path = String(decoding: pattern.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let certificates = TestCertificates(directory: path)
        DirectoryReaper.shared.track(path)
        let d = certificates.directory
        func run(_ arguments: [String]) throws { try runOpenSSL(openssl, arguments, in: d) }
        let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

        for (name, file) in [("Klife Test CA", "ca"), ("Klife Unrelated CA", "unrelated-ca")] {
            try run(["req", "-x509"] + newKey + ["-keyout", "\(d)/\(file).key", "-out", "\(d)/\(file).pem",
                     "-days", "2", "-subj", "/CN=\(name)",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        }
        let alternativeNames = (serverDNSNames.map { "DNS:\($0)" } + serverIPAddresses.map { "IP:\($0)" })
            .joined(separator: ",")
        try issue(name: "server", commonName: serverDNSNames.first ?? "klife-test-server",
                  extensions: (alternativeNames.isEmpty ? "" : "subjectAltName=\(alternativeNames)\n")
                      + "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
                  newKey: newKey, directory: d, run: run)
        try issue(name: "client", commonName: "klife-test-client",
                  extensions: "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
                  newKey: newKey, directory: d, run: run)
        try run(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", certificates.clientKeyFile,
                 "-out", certificates.encryptedClientKeyFile, "-passout", "pass:\(certificates.clientKeyPassword)"])
        return certificates
    }

    /// A key and a certificate signed by `ca`, with `extensions` (an openssl extension file).
    private static func issue(name: String, commonName: String, extensions: String, newKey: [String],
                              directory d: String, run: ([String]) throws -> Void) throws {
        try extensions.write(toFile: "\(d)/\(name).ext", atomically: true, encoding: .utf8)
        try run(["req", "-new"] + newKey + ["-keyout", "\(d)/\(name).key", "-out", "\(d)/\(name).csr",
                                            "-subj", "/CN=\(commonName)"])
        try run(["x509", "-req", "-in", "\(d)/\(name).csr", "-CA", "\(d)/ca.pem", "-CAkey", "\(d)/ca.key",
                 "-CAcreateserial", "-out", "\(d)/\(name).pem", "-days", "2", "-extfile", "\(d)/\(name).ext"])
    }

    /// Deletes the directory and its files (idempotent).
    public func remove() {
        try? FileManager.default.removeItem(atPath: directory)
        DirectoryReaper.shared.untrack(directory)
    }

    private static func runOpenSSL(_ openssl: String, _ arguments: [String], in directory: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestBrokerError(description: "openssl \(arguments.prefix(2).joined(separator: " ")) failed: "
                + String(decoding: text, as: UTF8.self))
        }
    }

    /// The first executable `name` on `PATH` (then `/usr/bin`, `/usr/local/bin`).
    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"] {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

/// Removes temporary directories still present when the process exits.
final class DirectoryReaper: Sendable {
    static let shared = DirectoryReaper()
    private let paths = Locked<Set<String>>([])

    private init() {
        atexit {
            for path in DirectoryReaper.shared.paths.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
        }
    }

    func track(_ path: String) { _ = paths.withLock { $0.insert(path) } }
    func untrack(_ path: String) { _ = paths.withLock { $0.remove(path) } }
}
