import Foundation
import Klife
import KlifeServiceLifecycle
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import XCTest

/// The share consumer service on librdkafka's mock cluster (the broker here with share groups):
/// started and driven through `Tests/interop/mock_cluster.py` of this repository.
final class KlifeShareConsumerServiceTests: XCTestCase {
    func testGracefulShutdownLetsTheBatchInHandFinishAndAcceptsWhatWasProcessed() async throws {
        let mock = try ShareMock(topic: "svc-share")
        defer { mock.stop() }
        let client = try await mock.client()
        for i in 0..<30 { client.produce(ProducerRecord(topic: "svc-share", partition: 0, value: "r\(i)")) { _ in } }
        await client.flush()
        var settings = ShareConsumerConfiguration(groupID: "svc", topics: ["svc-share"])
        settings.maxRecords = 10
        settings.fetchMaxWait = .milliseconds(100)
        let consumer = try client.shareConsumer(settings)
        let handled = Mutex<[Int64]>([])
        let (startedNotice, started) = AsyncStream<Void>.makeStream()
        let finishBatch = Mutex(false)
        let heldAtTheEnd = Mutex<(held: Int, accepted: Int)>((0, -1))

        try await testGracefulShutdown { trigger in
            let service = KlifeShareConsumerService(consumer: consumer) { batch in
                started.yield()
                // The shutdown comes while this batch is in hand: it must finish first.
                while !finishBatch.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
                // Still held and unsettled after the shutdown began: nothing closed under the handler.
                heldAtTheEnd.withLock { $0 = (consumer.heldRecords, consumer.statistics.accepted) }
                handled.withLock { h in for record in batch { h.append(record.offset) } }
            }
            let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
            async let running: Void = group.run()
            var notices = startedNotice.makeAsyncIterator()
            _ = await notices.next()
            trigger.triggerGracefulShutdown()
            try await Task.sleep(for: .milliseconds(50))
            finishBatch.withLock { $0 = true }
            try await running
        }

        let atTheEnd = heldAtTheEnd.withLock { $0 }
        XCTAssertGreaterThanOrEqual(atTheEnd.held, 10, "the batch in hand was still held when its handler ended")
        XCTAssertEqual(atTheEnd.accepted, 0, "nothing accepted before the handler ended")
        let offsets = handled.withLock { $0 }
        XCTAssertEqual(offsets.count, 10, "exactly the batch in hand was processed, no batch after the shutdown")
        XCTAssertEqual(consumer.statistics.accepted, 10, "the processed batch was accepted when the consumer closed")
        XCTAssertEqual(consumer.heldRecords, 0)
        await client.close()
    }

    func testAHandlerThatThrowsReleasesItsBatchAndEndsTheService() async throws {
        let mock = try ShareMock(topic: "svc-share-fail")
        defer { mock.stop() }
        let client = try await mock.client()
        for i in 0..<5 { client.produce(ProducerRecord(topic: "svc-share-fail", partition: 0, value: "r\(i)")) { _ in } }
        await client.flush()
        var settings = ShareConsumerConfiguration(groupID: "svc-fail", topics: ["svc-share-fail"])
        settings.fetchMaxWait = .milliseconds(100)
        let consumer = try client.shareConsumer(settings)
        struct DownstreamDown: Error {}
        let service = KlifeShareConsumerService(consumer: consumer) { _ in throw DownstreamDown() }
        let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
        do {
            try await group.run()
            XCTFail("the service must end with the handler's error")
        } catch {
            XCTAssertTrue("\(error)".contains("DownstreamDown"), "\(error)")
        }
        XCTAssertEqual(consumer.statistics.accepted, 0, "nothing accepted unprocessed")
        XCTAssertEqual(consumer.statistics.released, 5, "the failed batch was released")

        // Released records come back, to the next member, with a higher delivery count.
        let next = try client.shareConsumer(settings)
        var deliveries: [Int] = []
        while deliveries.count < 5, let batch = try await next.next() {
            for record in batch { deliveries.append(record.deliveryCount) }
        }
        XCTAssertEqual(deliveries, Array(repeating: 2, count: 5))
        await next.close()
        await client.close()
    }
}

private struct MockFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// librdkafka's mock cluster in a child process (one broker, one topic of one partition),
/// share groups starting at the earliest offset with a 200 ms heartbeat.
private final class ShareMock: @unchecked Sendable {
    // @unchecked: used by one test at a time; the process handles are only read after init.
    let bootstrap: [String]
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    init(topic: String) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let environment = ProcessInfo.processInfo.environment
        let python = environment["KLIFE_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
            ?? root.appendingPathComponent(".venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw XCTSkip("no Python with confluent-kafka: run scripts/bootstrap.sh")
        }
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [root.appendingPathComponent("Tests/interop/mock_cluster.py").path,
                             "--brokers", "1", "--topic", "\(topic):1"]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let first = try Self.line(output.fileHandleForReading)
        guard let object = try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any],
              let servers = object["bootstrap"] as? String else {
            throw MockFailure(message: "the mock cluster did not start: \(first)")
        }
        bootstrap = servers.split(separator: ",").map(String.init)
        try command("share_group 10000 200 30000")
        try command("share_offset_reset earliest")
    }

    func client() async throws -> KlifeClient {
        var config = KlifeConfiguration(bootstrapServers: bootstrap)
        config.connectTimeout = .seconds(3)
        return try await KlifeClient.connect(config)
    }

    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    private func command(_ line: String) throws {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
        let answer = try Self.line(output.fileHandleForReading)
        guard answer.contains("\"ok\": true") || answer.contains("\"ok\":true") else {
            throw MockFailure(message: "mock command '\(line)' failed: \(answer)")
        }
    }

    private static func line(_ handle: FileHandle) throws -> String {
        var bytes: [UInt8] = []
        while true {
            guard let byte = try handle.read(upToCount: 1)?.first else { break }
            if byte == UInt8(ascii: "\n") { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
