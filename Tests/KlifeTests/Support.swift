import Foundation
import Klife
import KlifeTesting
import XCTest

/// One broker for the whole test process (started on first use, killed at exit).
enum Shared {
    static let cluster = Task { try await TestCluster.start() }

    static func client(_ configure: @escaping (inout KlifeConfiguration) -> Void = { _ in }) async throws -> KlifeClient {
        try await cluster.value.client(configure)
    }

    /// Creates a fresh topic and returns its name.
    static func topic(_ client: KlifeClient, partitions: Int32, prefix: String = "t") async throws -> String {
        let name = TestCluster.uniqueTopicName(prefix)
        try await client.createTopic(name, partitions: partitions)
        return name
    }
}

/// The repository root, found from this file's path.
let repositoryRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The Python that has `confluent_kafka` (librdkafka): `KLIFE_PYTHON` or the project's `.venv`.
func interopPython() throws -> String {
    if let p = ProcessInfo.processInfo.environment["KLIFE_PYTHON"], !p.isEmpty { return p }
    let venv = repositoryRoot.appendingPathComponent(".venv/bin/python").path
    guard FileManager.default.isExecutableFile(atPath: venv) else {
        throw XCTSkip("no .venv with confluent-kafka: run scripts/bootstrap.sh")
    }
    return venv
}

/// What a child process printed and how it exited.
struct ProcessRun {
    var status: Int32
    var output: String
    var errors: String
}

/// Runs the `klife` executable built next to the test bundle.
func runKlife(_ arguments: [String], stdin: String = "") throws -> ProcessRun {
    try runProcess(klifeBinary(), arguments, stdin: stdin)
}

/// The `klife` binary built next to the tests.
func klifeBinary() throws -> URL {
    let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var binary = directory.appendingPathComponent("klife")
    if !FileManager.default.isExecutableFile(atPath: binary.path) {
        // The test bundle may sit one level deeper (…/x.xctest/…): look upwards once.
        binary = directory.deletingLastPathComponent().appendingPathComponent("klife")
    }
    guard FileManager.default.isExecutableFile(atPath: binary.path) else {
        throw XCTSkip("klife binary not built next to the tests (\(directory.path)): run swift build --build-tests")
    }
    return binary
}

/// Runs `executable` with `arguments`, feeding it `stdin`, and waits for it to exit.
func runProcess(_ executable: URL, _ arguments: [String], stdin: String = "") throws -> ProcessRun {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let input = Pipe(), output = Pipe(), errors = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    input.fileHandleForWriting.write(Data(stdin.utf8))
    try input.fileHandleForWriting.close()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    let err = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessRun(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self),
                      errors: String(decoding: err, as: UTF8.self))
}

/// Runs a script from Tests/interop with `stdin`, returning stdout; fails on a non-zero exit.
func runInterop(_ script: String, _ arguments: [String], stdin: String = "") throws -> String {
    let run = try runProcess(URL(fileURLWithPath: try interopPython()),
                             [repositoryRoot.appendingPathComponent("Tests/interop/\(script)").path] + arguments, stdin: stdin)
    guard run.status == 0 else { throw InteropError(description: "\(script) exited \(run.status): \(run.errors)") }
    return run.output
}

/// The values a librdkafka consumer at `isolation` ("read_committed" or "read_uncommitted")
/// reads from partition 0 of `topic`: up to `count`, waiting at most `timeoutSeconds` for more
/// (an independent witness of what a transaction made visible).
func librdkafkaValues(topic: String, isolation: String, count: Int, timeoutSeconds: Int = 4) async throws -> [String] {
    let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
    let out = try runInterop("rdkafka_txn_produce.py", ["--bootstrap", bootstrap, "--topic", topic, "--consume", isolation,
                                                        "--count", "\(count)", "--timeout-s", "\(timeoutSeconds)"])
    return try out.split(separator: "\n").compactMap { line in
        (try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["value"] as? String
    }
}

func hex(_ bytes: [UInt8]?) -> String? {
    bytes.map { $0.map { String(format: "%02x", $0) }.joined() }
}

func unhex(_ text: String?) -> [UInt8]? {
    guard let text else { return nil }
    var bytes: [UInt8] = []
    var i = text.startIndex
    while i < text.endIndex {
        let j = text.index(i, offsetBy: 2)
        bytes.append(UInt8(text[i..<j], radix: 16)!)
        i = j
    }
    return bytes
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

struct InteropError: Error, CustomStringConvertible {
    let description: String
}
