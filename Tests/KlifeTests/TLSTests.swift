import Foundation
import Glibc
import Klife
import KlifeTesting
import XCTest

/// TLS against a real broker: Tansu behind socat, which terminates TLS with certificates
/// generated for the run (CA, server cert for `localhost` and 127.0.0.1, client cert).
/// The broker advertises socat's port, so every connection after bootstrap is TLS too.
final class TLSTests: XCTestCase {
    /// Brokers shared by the tests of this class: one behind server-authenticated TLS, one
    /// behind mutual TLS (socat demands a client certificate from the test CA).
    enum Fixture {
        static let serverAuth = Task { try await TestBroker.startWithTLS() }
        static let mutual = Task { try await TestBroker.startWithTLS(requireClientCertificate: true) }
    }

    override func setUp() async throws {
        guard TLSTestProxy.isAvailable else {
            throw XCTSkip("TLS integration tests need socat and openssl (scripts/bootstrap.sh installs them)")
        }
    }

    private func configuration(_ proxy: TLSTestProxy, host: String = "127.0.0.1",
                               _ tls: TLSConfiguration?) -> KlifeConfiguration {
        var config = KlifeConfiguration(bootstrapServers: ["\(host):\(proxy.port)"])
        config.connectTimeout = .seconds(5)
        config.requestTimeout = .seconds(15)
        config.tls = tls
        return config
    }

    /// Connecting must fail with `code`; returns the error for further checks.
    private func connectFailure(_ config: KlifeConfiguration, _ code: KlifeError.Code,
                                file: StaticString = #filePath, line: UInt = #line) async -> KlifeError? {
        do {
            let client = try await KlifeClient.connect(config)
            await client.close(timeout: .zero)
            XCTFail("connected, expected \(code)", file: file, line: line)
            return nil
        } catch {
            XCTAssertEqual(error.code, code, error.description, file: file, line: line)
            return error
        }
    }

    /// Creates a topic, produces `count` records (sync, async and batch forms) and fetches
    /// them back, all over TLS.
    private func produceAndFetch(_ client: KlifeClient, count: Int = 300) async throws {
        let topic = TestCluster.uniqueTopicName("tls")
        try await client.createTopic(topic, partitions: 2)
        let first = try await client.produce(ProducerRecord(topic: topic, partition: 0, key: "k", value: "first"))
        XCTAssertEqual(first.offset, 0)
        let large = [UInt8](repeating: 0x5a, count: 200_000)   // spans many TLS records
        _ = try await client.produce(ProducerRecord(topic: topic, partition: 1, value: large))
        let batch = (0..<count).map { ProducerRecord(topic: topic, partition: Int32($0 % 2), value: "value-\($0)") }
        for result in await client.produceBatch(batch) { _ = try result.get() }
        let records = try await client.allRecords(topic: topic)
        XCTAssertEqual(records.count, count + 2)
        XCTAssertEqual(records.filter { $0.partition == 0 }.first?.valueString, "first")
        XCTAssertEqual(records.first { $0.partition == 1 }?.value.map(Array.init), large)
        let values = Set(records.compactMap(\.valueString))
        for i in 0..<count { XCTAssertTrue(values.contains("value-\(i)"), "value-\(i) missing") }
    }

    // MARK: Working connections

    func testProduceAndFetchOverTLSWithTheTestCA() async throws {
        let (_, proxy) = try await Fixture.serverAuth.value
        let client = try await KlifeClient.connect(configuration(proxy, TLSConfiguration(caFile: proxy.certificates.caFile)))
        try await produceAndFetch(client)
        let metadata = try await client.metadata()
        XCTAssertEqual(metadata.brokers.values.first?.address.port, proxy.port, "the broker must advertise the TLS port")
        await client.close()
    }

    func testDNSNameIsVerifiedWhenConnectingByName() async throws {
        // Bootstrap by name (SNI + DNS name check), then the advertised 127.0.0.1 (IP SAN check).
        let (_, proxy) = try await Fixture.serverAuth.value
        let client = try await KlifeClient.connect(configuration(proxy, host: "localhost",
                                                                 TLSConfiguration(caFile: proxy.certificates.caFile)))
        let topic = TestCluster.uniqueTopicName("tls-dns")
        try await client.createTopic(topic, partitions: 1)
        _ = try await client.produce(ProducerRecord(topic: topic, value: "by name"))
        let records = try await client.allRecords(topic: topic)
        XCTAssertEqual(records.map(\.valueString), ["by name"])
        await client.close()
    }

    func testCADirectoryIsAnAlternativeToCAFile() async throws {
        let (_, proxy) = try await Fixture.serverAuth.value
        let directory = proxy.certificates.directory + "/ca-dir"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // OpenSSL looks certificates up by subject hash: <hash>.0.
        let hash = try runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                  ["openssl", "x509", "-noout", "-subject_hash", "-in", proxy.certificates.caFile])
            .output.trimmingCharacters(in: .whitespacesAndNewlines)
        try? FileManager.default.removeItem(atPath: "\(directory)/\(hash).0")
        try FileManager.default.copyItem(atPath: proxy.certificates.caFile, toPath: "\(directory)/\(hash).0")
        let client = try await KlifeClient.connect(configuration(proxy, TLSConfiguration(caDirectory: directory)))
        _ = try await client.metadata()
        await client.close()
    }

    // MARK: Verification failures

    func testUnrelatedCAFailsWithCertificateVerifyFailed() async throws {
        let (_, proxy) = try await Fixture.serverAuth.value
        let error = await connectFailure(configuration(proxy, TLSConfiguration(caFile: proxy.certificates.unrelatedCAFile)),
                                         .tlsHandshakeFailed)
        XCTAssertFalse(error?.isRetriable ?? true)
        let text = error?.description ?? ""
        XCTAssertTrue(text.contains("certificate verify failed"), text)
        XCTAssertTrue(text.contains("unable to get local issuer certificate"), text)
        XCTAssertTrue(text.contains("127.0.0.1:\(proxy.port)"), text)
    }

    func testSystemTrustStoreDoesNotTrustTheTestCA() async throws {
        let (_, proxy) = try await Fixture.serverAuth.value
        let error = await connectFailure(configuration(proxy, TLSConfiguration()), .tlsHandshakeFailed)
        XCTAssertTrue(error?.description.contains("certificate verify failed") ?? false, error?.description ?? "")
    }

    func testWrongServerNameFailsWithHostnameMismatch() async throws {
        let (_, proxy) = try await Fixture.serverAuth.value
        let error = await connectFailure(configuration(proxy, TLSConfiguration(caFile: proxy.certificates.caFile,
                                                                               serverName: "wrong.example")),
                                         .tlsHandshakeFailed)
        XCTAssertTrue(error?.description.contains("certificate verify failed: hostname mismatch") ?? false,
                      error?.description ?? "")
    }

    func testCertificateWithoutTheIPAddressFailsWithIPAddressMismatch() async throws {
        let (broker, _) = try await Fixture.serverAuth.value
        let certificates = try TestCertificates.generate(serverDNSNames: ["localhost"], serverIPAddresses: [])
        let proxy = try TLSTestProxy.start(upstreamPort: broker.port, certificates: certificates)
        defer { proxy.stop() }
        let error = await connectFailure(configuration(proxy, TLSConfiguration(caFile: certificates.caFile)),
                                         .tlsHandshakeFailed)
        XCTAssertTrue(error?.description.contains("certificate verify failed: IP address mismatch") ?? false,
                      error?.description ?? "")
    }

    func testHostnameCheckCanBeTurnedOff() async throws {
        let (_, proxy) = try await Fixture.serverAuth.value
        let client = try await KlifeClient.connect(configuration(proxy, TLSConfiguration(caFile: proxy.certificates.caFile,
                                                                                         serverName: "wrong.example",
                                                                                         verifyHostname: false)))
        _ = try await client.metadata()
        await client.close()
    }

    func testVerificationCanBeTurnedOffForDevelopment() async throws {
        let (_, proxy) = try await Fixture.serverAuth.value
        let client = try await KlifeClient.connect(configuration(proxy, TLSConfiguration(caFile: proxy.certificates.unrelatedCAFile,
                                                                                         verifyCertificates: false)))
        _ = try await client.metadata()
        await client.close()
    }

    func testTLSClientOnAPlaintextPortFailsClearly() async throws {
        let (broker, proxy) = try await Fixture.serverAuth.value
        var config = configuration(proxy, TLSConfiguration(caFile: proxy.certificates.caFile))
        config.bootstrapServers = [broker.bootstrapServers]
        config.connectTimeout = .seconds(2)
        do {
            let client = try await KlifeClient.connect(config)
            await client.close(timeout: .zero)
            XCTFail("a TLS handshake succeeded with a plaintext Kafka port")
        } catch {
            // Tansu either closes (tlsHandshakeFailed) or waits for a 369 MB frame (handshake timeout).
            XCTAssertTrue(error.description.contains("TLS handshake with \(broker.bootstrapServers)"), error.description)
        }
    }

    // MARK: Mutual TLS

    func testMutualTLSWithClientCertificate() async throws {
        let (_, proxy) = try await Fixture.mutual.value
        let certificates = proxy.certificates
        let client = try await KlifeClient.connect(configuration(proxy, TLSConfiguration(
            caFile: certificates.caFile, certificateFile: certificates.clientCertificateFile,
            privateKeyFile: certificates.clientKeyFile)))
        try await produceAndFetch(client, count: 50)
        await client.close()
    }

    func testMutualTLSWithEncryptedKeyAndPassword() async throws {
        let (_, proxy) = try await Fixture.mutual.value
        let certificates = proxy.certificates
        let client = try await KlifeClient.connect(configuration(proxy, TLSConfiguration(
            caFile: certificates.caFile, certificateFile: certificates.clientCertificateFile,
            privateKeyFile: certificates.encryptedClientKeyFile, privateKeyPassword: certificates.clientKeyPassword)))
        _ = try await client.metadata()
        await client.close()
    }

    func testMutualTLSWithoutClientCertificateFails() async throws {
        let (_, proxy) = try await Fixture.mutual.value
        let error = await connectFailure(configuration(proxy, TLSConfiguration(caFile: proxy.certificates.caFile)),
                                         .tlsHandshakeFailed)
        // TLS 1.3: the server's alert arrives after the client finished its side of the handshake.
        XCTAssertTrue(error?.description.contains("certificate required") ?? false, error?.description ?? "")
    }

    // MARK: Configuration errors

    func testConfigurationErrorsNameTheField() async throws {
        let certificates = try TestCertificates.generate()
        let cases: [(TLSConfiguration, String, String)] = [
            (TLSConfiguration(caFile: certificates.directory + "/missing.pem"), "tls.caFile", "No such file"),
            (TLSConfiguration(caFile: certificates.serverKeyFile), "tls.caFile", "no usable CA certificate"),
            (TLSConfiguration(caDirectory: certificates.caFile), "tls.caDirectory", "not a directory"),
            (TLSConfiguration(caFile: certificates.caFile, certificateFile: certificates.clientCertificateFile,
                              privateKeyFile: certificates.serverKeyFile), "tls.privateKeyFile", "does not match"),
            (TLSConfiguration(caFile: certificates.caFile, certificateFile: certificates.clientCertificateFile,
                              privateKeyFile: certificates.encryptedClientKeyFile), "tls.privateKeyFile", "needs a password"),
            (TLSConfiguration(caFile: certificates.caFile, certificateFile: certificates.clientCertificateFile,
                              privateKeyFile: certificates.encryptedClientKeyFile, privateKeyPassword: "wrong"),
             "tls.privateKeyFile", "cannot read or decrypt"),
            (TLSConfiguration(caFile: certificates.caFile, certificateFile: certificates.clientKeyFile,
                              privateKeyFile: certificates.clientKeyFile), "tls.certificateFile", "not a PEM certificate"),
            (TLSConfiguration(certificateFile: certificates.clientCertificateFile), "tls.privateKeyFile", "required"),
            (TLSConfiguration(privateKeyFile: certificates.clientKeyFile), "tls.certificateFile", "required"),
            (TLSConfiguration(caFile: ""), "tls.caFile", "must not be empty"),
            (TLSConfiguration(serverName: ""), "tls.serverName", "non-empty"),
        ]
        for (tls, field, words) in cases {
            var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:1"])
            config.tls = tls
            let error = await connectFailure(config, .invalidConfiguration)
            let text = error?.description ?? ""
            XCTAssertTrue(text.contains("invalid configuration \(field):"), "\(tls): \(text)")
            XCTAssertTrue(text.contains(words), "\(tls): \(text)")
        }
        let redacted = TLSConfiguration(certificateFile: "c", privateKeyFile: "k", privateKeyPassword: "hunter2")
        XCTAssertFalse(redacted.description.contains("hunter2"))
    }

    // MARK: Command line

    func testCommandLineTLSOptions() async throws {
        let (_, proxy) = try await Fixture.serverAuth.value
        let ca = proxy.certificates.caFile
        let topic = TestCluster.uniqueTopicName("tls-cli")
        let create = try runKlife(["topic", "create", "-b", proxy.address, "--tls-ca", ca, topic])
        XCTAssertEqual(create.status, 0, create.errors)
        let produce = try runKlife(["produce", "-b", proxy.address, "--tls-ca", ca, "-t", topic, "-K", ":"],
                                   stdin: "a:1\nb:2\n")
        XCTAssertEqual(produce.status, 0, produce.errors)
        let consume = try runKlife(["consume", "-b", "localhost:\(proxy.port)", "--tls-ca", ca, "-t", topic,
                                    "-o", "beginning", "-e"])
        XCTAssertEqual(consume.output, "1\n2\n", consume.errors)

        let untrusted = try runKlife(["metadata", "-b", proxy.address, "--tls"])
        XCTAssertEqual(untrusted.status, 1)
        XCTAssertTrue(untrusted.errors.contains("certificate verify failed: unable to get local issuer certificate"),
                      untrusted.errors)
        let wrongName = try runKlife(["metadata", "-b", proxy.address, "--tls-ca", ca, "--tls-server-name", "wrong.example"])
        XCTAssertTrue(wrongName.errors.contains("hostname mismatch"), wrongName.errors)
        let unchecked = try runKlife(["metadata", "-b", proxy.address, "--tls-ca", ca, "--tls-server-name", "wrong.example",
                                      "--tls-no-verify-hostname"])
        XCTAssertEqual(unchecked.status, 0, unchecked.errors)
        let missing = try runKlife(["metadata", "-b", proxy.address, "--tls-ca", proxy.certificates.directory + "/nope.pem"])
        XCTAssertTrue(missing.errors.contains("invalid configuration tls.caFile"), missing.errors)
        let halfPair = try runKlife(["metadata", "-b", proxy.address, "--tls-cert", proxy.certificates.clientCertificateFile])
        XCTAssertEqual(halfPair.status, 64)
        XCTAssertTrue(halfPair.errors.contains("--tls-cert needs --tls-key"), halfPair.errors)
    }

    func testCommandLineMutualTLS() async throws {
        let (_, proxy) = try await Fixture.mutual.value
        let certificates = proxy.certificates
        let withCertificate = try runKlife(["metadata", "-b", proxy.address, "--tls-ca", certificates.caFile,
                                            "--tls-cert", certificates.clientCertificateFile,
                                            "--tls-key", certificates.clientKeyFile])
        XCTAssertEqual(withCertificate.status, 0, withCertificate.errors)
        setenv("KLIFE_TLS_KEY_PASSWORD", certificates.clientKeyPassword, 1)
        defer { unsetenv("KLIFE_TLS_KEY_PASSWORD") }
        let encryptedKey = try runKlife(["metadata", "-b", proxy.address, "--tls-ca", certificates.caFile,
                                         "--tls-cert", certificates.clientCertificateFile,
                                         "--tls-key", certificates.encryptedClientKeyFile])
        XCTAssertEqual(encryptedKey.status, 0, encryptedKey.errors)
        let without = try runKlife(["metadata", "-b", proxy.address, "--tls-ca", certificates.caFile])
        XCTAssertEqual(without.status, 1)
        XCTAssertTrue(without.errors.contains("certificate required"), without.errors)
    }

    // MARK: SASL_SSL

    func testSASLRunsInsideTheTLSSession() async throws {
        // Tansu has no usable SASL: its SaslHandshake answer (UNSUPPORTED_SASL_MECHANISM, or
        // no SaslHandshake API at all in other versions) proves ApiVersions went through the
        // TLS session and SASL came next in it, as with SASL_SSL on a real cluster.
        let (_, proxy) = try await Fixture.serverAuth.value
        var config = configuration(proxy, TLSConfiguration(caFile: proxy.certificates.caFile))
        config.sasl = SASLConfiguration(mechanism: .scramSHA512, username: "alice", password: "secret")
        do {
            let client = try await KlifeClient.connect(config)
            await client.close(timeout: .zero)
            XCTFail("SASL succeeded against a broker without SASL")
        } catch {
            XCTAssertNotEqual(error.code, .tlsHandshakeFailed, error.description)
            XCTAssertTrue(error.description.contains("SaslHandshake"), error.description)
        }
    }
}
