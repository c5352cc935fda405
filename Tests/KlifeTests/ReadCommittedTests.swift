import Foundation
@testable import Klife
import KlifeProtocol
import KlifeTesting
import XCTest

/// Reading with isolation levels against real transactions written by librdkafka
/// (Tests/interop/rdkafka_txn_produce.py), plus the filter's rules on hand-built batches.
final class ReadCommittedTests: XCTestCase {
    // MARK: Real transactions (Tansu + librdkafka)

    func testCommitAbortCommitReadCommittedSeesOnlyCommittedValues() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "rc")
        let produced = try await produceTransactions(topic: topic, id: "rc-\(topic)", label: "A", plan: "commit:3,abort:2,commit:1")
        XCTAssertEqual(produced.count, 6)

        let committed = try await readAll(client, topic: topic, isolation: .readCommitted)
        XCTAssertEqual(committed.records.map(\.text), ["A-0-0", "A-0-1", "A-0-2", "A-2-0"])
        XCTAssertEqual(committed.records.map(\.offset), produced.filter { $0.outcome == "commit" }.map(\.offset))
        // 6 data records + 3 markers: the reader ends past the last COMMIT marker.
        XCTAssertEqual(committed.end, 9)
        XCTAssertEqual(committed.lastStableOffset, 9)

        let all = try await readAll(client, topic: topic, isolation: .readUncommitted)
        XCTAssertEqual(all.records.map(\.text), ["A-0-0", "A-0-1", "A-0-2", "A-1-0", "A-1-1", "A-2-0"])
        XCTAssertEqual(all.records.map(\.offset), produced.map(\.offset), "control records (offsets 3, 6, 8) never returned")
        XCTAssertEqual(all.end, 9)
        await client.close()
    }

    func testReadCommittedPagedOneBatchAtATime() async throws {
        // maxBytes 1: every answer holds one batch, so a batch arrives without the marker that
        // decides it. Kafka's rule reads the broker's aborted-transaction list; this broker
        // (Tansu 0.6) sends none, so the reader must find the marker in a later answer: it
        // hides the aborted transaction and still reaches the end, one answer at a time.
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "rcpage")
        _ = try await produceTransactions(topic: topic, id: "rcp-\(topic)", label: "A", plan: "commit:2,abort:2,commit:1",
                                          recordDelayMs: 5)
        let all = try await readAll(client, topic: topic, isolation: .readUncommitted, maxBytes: 1)
        XCTAssertEqual(all.records.map(\.text), ["A-0-0", "A-0-1", "A-1-0", "A-1-1", "A-2-0"])

        let committed = try await readAll(client, topic: topic, isolation: .readCommitted, maxBytes: 1)
        XCTAssertEqual(committed.records.map(\.text), ["A-0-0", "A-0-1", "A-2-0"])
        XCTAssertEqual(committed.end, all.end, "the reader reached the end of the log")
        await client.close()
    }

    func testInterleavedTransactionsOfTwoProducers() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "rcmix")
        let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
        // Both producers begin at the same instant (after their init_transactions), one batch per record.
        let startAt = Int64(Date().timeIntervalSince1970 * 1000) + 2_000
        async let a = Task.detached {
            try produceTransactionsSync(bootstrap: bootstrap, topic: topic, id: "rcA-\(topic)", label: "A",
                                        plan: "abort:3,commit:3,abort:2,commit:2", recordDelayMs: 20, startAt: startAt)
        }.value
        async let b = Task.detached {
            try produceTransactionsSync(bootstrap: bootstrap, topic: topic, id: "rcB-\(topic)", label: "B",
                                        plan: "commit:3,abort:3,commit:2,abort:2", recordDelayMs: 20, startAt: startAt)
        }.value
        let produced = try await a + b
        let byOffset = produced.sorted { $0.offset < $1.offset }

        let all = try await readAll(client, topic: topic, isolation: .readUncommitted)
        XCTAssertEqual(all.records.map(\.text), byOffset.map(\.value))
        // The two producers' transactions really overlap on the partition.
        let labels = byOffset.map { $0.value.prefix(1) }
        XCTAssertGreaterThan(zip(labels, labels.dropFirst()).filter { $0 != $1 }.count, 2, "no interleaving: \(labels)")

        let committed = try await readAll(client, topic: topic, isolation: .readCommitted)
        XCTAssertEqual(committed.records.map(\.text), byOffset.filter { $0.outcome == "commit" }.map(\.value))
        XCTAssertEqual(committed.records.map(\.offset), byOffset.filter { $0.outcome == "commit" }.map(\.offset))
        XCTAssertEqual(committed.end, all.end)
        await client.close()
    }

    func testOpenTransactionIsInvisibleToReadCommitted() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "rcopen")
        let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
        let open = try OpenTransaction(bootstrap: bootstrap, topic: topic, id: "rco-\(topic)", label: "A",
                                       plan: "commit:2,open:2", end: "commit")
        defer { open.kill() }
        // Committed 0-1, COMMIT marker 2, open transaction 3-4.
        XCTAssertEqual(open.produced.map(\.offset), [0, 1, 3, 4])

        let page = try await client.fetch(topic: topic, partition: 0, offset: 0, isolation: .readCommitted)
        XCTAssertEqual(page.records.map(\.text), ["A-0-0", "A-0-1"])
        XCTAssertEqual(page.lastStableOffset, 3, "LSO is the first offset of the open transaction")
        XCTAssertEqual(page.highWatermark, 5)
        XCTAssertEqual(page.nextOffset, 3, "read committed never moves past the LSO")
        let again = try await client.fetch(topic: topic, partition: 0, offset: 3, maxWait: .milliseconds(10), isolation: .readCommitted)
        XCTAssertEqual(again.records.count, 0)
        XCTAssertEqual(again.nextOffset, 3)

        let uncommitted = try await client.fetch(topic: topic, partition: 0, offset: 0)
        XCTAssertEqual(uncommitted.records.map(\.text), ["A-0-0", "A-0-1", "A-1-0", "A-1-1"])
        XCTAssertEqual(uncommitted.nextOffset, 5)

        try open.finish()
        let after = try await readAll(client, topic: topic, isolation: .readCommitted)
        XCTAssertEqual(after.records.map(\.text), ["A-0-0", "A-0-1", "A-1-0", "A-1-1"])
        XCTAssertEqual(after.end, 6)
        await client.close()
    }

    func testListOffsetLatestReadCommittedIsLastStableOffset() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1, prefix: "rclso")
        let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
        let open = try OpenTransaction(bootstrap: bootstrap, topic: topic, id: "rcl-\(topic)", label: "A",
                                       plan: "commit:2,open:2", end: "abort")
        defer { open.kill() }
        let committedLatest = try await client.listOffset(topic: topic, partition: 0, .latest, isolation: .readCommitted)
        let uncommittedLatest = try await client.listOffset(topic: topic, partition: 0, .latest)
        try open.finish()
        let closedCommitted = try await client.listOffset(topic: topic, partition: 0, .latest, isolation: .readCommitted)
        let closedUncommitted = try await client.listOffset(topic: topic, partition: 0, .latest)
        XCTAssertEqual(closedCommitted, 6)
        XCTAssertEqual(closedUncommitted, 6)
        if committedLatest != 3 || uncommittedLatest != 5 {
            throw XCTSkip("""
                broker's ListOffsets LATEST during an open transaction is not LSO/high watermark \
                (Tansu 0.6.0): read_committed gave \(committedLatest) (Kafka: 3), read_uncommitted \
                gave \(uncommittedLatest) (Kafka: 5); Fetch reports LSO 3 and high watermark 5 correctly
                """)
        }
        await client.close()
    }

    // MARK: The filter's rules on hand-built batches

    private let p1: Int64 = 7, p2: Int64 = 9

    func testAbortedListHidesBatchesUntilAbortMarker() {
        let batches = [
            data(0, count: 2, pid: p1),            // aborted (list)
            data(2, count: 1, pid: p2),            // committed elsewhere
            marker(3, pid: p1, .abort),
            data(4, count: 1, pid: p1),            // next transaction of p1: visible
            data(5, count: 1, pid: -1, transactional: false),
        ]
        let filter = TransactionFilter(isolation: .readCommitted, lastStableOffset: 6,
                                       abortedTransactions: [.init(producerID: p1, firstOffset: 0)])
        let out = filter.apply(batches, from: 0)
        XCTAssertEqual(out.records(in: batches).map(\.offset), [2, 4, 5])
        XCTAssertEqual(out.nextOffset, 6)
    }

    func testAbortedListAloneHidesBatchWithoutMarker() {
        let filter = TransactionFilter(isolation: .readCommitted, lastStableOffset: 10,
                                       abortedTransactions: [.init(producerID: p1, firstOffset: 4)])
        let batches = [data(2, count: 2, pid: p1), data(4, count: 2, pid: p1)]
        let out = filter.apply(batches, from: 0)
        XCTAssertEqual(out.records(in: batches).map(\.offset), [2, 3], "aborted transaction starts at 4, not before")
        XCTAssertEqual(out.nextOffset, 6, "skipped batches still advance the position")
    }

    func testMarkerLaterInAnswerDecidesWithoutAbortedList() {
        let batches = [data(0, count: 1, pid: p1), data(1, count: 1, pid: p2), marker(2, pid: p1, .abort),
                       marker(3, pid: p2, .commit)]
        let out = TransactionFilter(isolation: .readCommitted, lastStableOffset: 4, abortedTransactions: []).apply(batches, from: 0)
        XCTAssertEqual(out.records(in: batches).map(\.offset), [1])
        XCTAssertEqual(out.nextOffset, 4)
    }

    func testNothingAtOrAfterLastStableOffset() {
        let batches = [data(0, count: 2, pid: -1, transactional: false), data(2, count: 3, pid: p1)]
        let out = TransactionFilter(isolation: .readCommitted, lastStableOffset: 2, abortedTransactions: []).apply(batches, from: 1)
        XCTAssertEqual(out.records(in: batches).map(\.offset), [1])
        XCTAssertEqual(out.nextOffset, 2)
        let none = TransactionFilter(isolation: .readCommitted, lastStableOffset: 2, abortedTransactions: []).apply(batches, from: 2)
        XCTAssertEqual(none.records(in: batches).count, 0)
        XCTAssertEqual(none.nextOffset, 2)
    }

    func testReadUncommittedDropsOnlyControlBatches() {
        let batches = [data(0, count: 2, pid: p1), marker(2, pid: p1, .abort), data(3, count: 1, pid: p2), marker(4, pid: p2, .commit)]
        let filter = TransactionFilter(isolation: .readUncommitted, lastStableOffset: 1,
                                       abortedTransactions: [.init(producerID: p1, firstOffset: 0)])
        let out = filter.apply(batches, from: 0)
        XCTAssertEqual(out.records(in: batches).map(\.offset), [0, 1, 3])
        XCTAssertEqual(out.nextOffset, 5, "a trailing marker is stepped over")
    }

    private func data(_ base: Int64, count: Int, pid: Int64, transactional: Bool = true) -> DecodedBatch {
        batch(base, count: count, pid: pid, attributes: transactional ? RecordBatchAttributes.transactional : 0) { i in
            DecodedRecord(offset: base + Int64(i), timestamp: 0, timestampType: .createTime, key: nil,
                          value: Array("v\(base + Int64(i))".utf8), headers: [])
        }
    }

    private func marker(_ base: Int64, pid: Int64, _ type: ControlRecordType) -> DecodedBatch {
        batch(base, count: 1, pid: pid, attributes: RecordBatchAttributes.transactional | RecordBatchAttributes.control) { _ in
            DecodedRecord(offset: base, timestamp: 0, timestampType: .createTime,
                          key: [0, 0, 0, UInt8(type.rawValue)], value: [0, 0, 0, 0, 0, 0], headers: [])
        }
    }

    private func batch(_ base: Int64, count: Int, pid: Int64, attributes: Int16,
                       record: (Int) -> DecodedRecord) -> DecodedBatch {
        let header = RecordBatchHeader(baseOffset: base, length: 0, partitionLeaderEpoch: 0, magic: 2, crc: 0,
                                       attributes: attributes, lastOffsetDelta: Int32(count - 1), baseTimestamp: 0,
                                       maxTimestamp: 0, producerID: pid, producerEpoch: pid < 0 ? -1 : 0,
                                       baseSequence: pid < 0 ? -1 : 0, recordCount: Int32(count))
        return DecodedBatch(header: header, records: (0..<count).map(record))
    }
}

// MARK: Helpers

/// One record written by rdkafka_txn_produce.py.
struct TxnRecord: Sendable {
    var step: Int
    var outcome: String
    var value: String
    var offset: Int64
}

private func parseTxnOutput(_ text: String) throws -> [TxnRecord] {
    try text.split(separator: "\n").compactMap { line -> TxnRecord? in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        guard let value = object["value"] as? String else { return nil }
        return TxnRecord(step: object["step"] as? Int ?? -1, outcome: object["outcome"] as? String ?? "",
                         value: value, offset: Int64(object["offset"] as? Int ?? -1))
    }
}

func produceTransactionsSync(bootstrap: String, topic: String, id: String, label: String, plan: String,
                             recordDelayMs: Int = 0, startAt: Int64 = 0) throws -> [TxnRecord] {
    let out = try runInterop("rdkafka_txn_produce.py", ["--bootstrap", bootstrap, "--topic", topic, "--transactional-id", id,
                                                        "--label", label, "--plan", plan,
                                                        "--record-delay-ms", "\(recordDelayMs)", "--start-at", "\(startAt)"])
    return try parseTxnOutput(out)
}

private func produceTransactions(topic: String, id: String, label: String, plan: String,
                                 recordDelayMs: Int = 0) async throws -> [TxnRecord] {
    let bootstrap = try await Shared.cluster.value.bootstrapServers[0]
    return try produceTransactionsSync(bootstrap: bootstrap, topic: topic, id: id, label: label, plan: plan,
                                       recordDelayMs: recordDelayMs)
}


/// A transaction left open by rdkafka_txn_produce.py (plan ending in `open:N`) until ``finish()``.
private final class OpenTransaction {
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    var produced: [TxnRecord] = []

    init(bootstrap: String, topic: String, id: String, label: String, plan: String, end: String) throws {
        process.executableURL = URL(fileURLWithPath: try interopPython())
        process.arguments = [repositoryRoot.appendingPathComponent("Tests/interop/rdkafka_txn_produce.py").path,
                             "--bootstrap", bootstrap, "--topic", topic, "--transactional-id", id, "--label", label,
                             "--plan", plan, "--open-end", end]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        var text = ""
        let reader = output.fileHandleForReading
        while !text.contains("\"done\"") {
            let chunk = reader.availableData
            if chunk.isEmpty { throw InteropError(description: "rdkafka_txn_produce.py ended early: \(text)") }
            text += String(decoding: chunk, as: UTF8.self)
        }
        produced = try parseTxnOutput(text)
    }

    /// Commits or aborts (per `end`) the open transaction and waits for the script to exit.
    func finish() throws {
        input.fileHandleForWriting.write(Data("\n".utf8))
        try input.fileHandleForWriting.close()
        _ = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw InteropError(description: "rdkafka_txn_produce.py exited \(process.terminationStatus)")
        }
    }

    func kill() {
        if process.isRunning { process.terminate() }
    }
}

private struct ReadAll {
    var records: [ConsumerRecord]
    /// Where the reader stopped: the high watermark (uncommitted) or the last stable offset (committed).
    var end: Int64
    var lastStableOffset: Int64
}

/// Reads a partition from offset 0 until the end visible at `isolation`.
private func readAll(_ client: KlifeClient, topic: String, isolation: IsolationLevel, maxBytes: Int32 = 1 << 20) async throws -> ReadAll {
    var records: [ConsumerRecord] = []
    var offset: Int64 = 0
    var last = FetchResult(records: ConsumerRecords(topic: "", partition: 0, []), highWatermark: -1, logStartOffset: -1, nextOffset: 0)
    for _ in 0..<200 {
        last = try await client.fetch(topic: topic, partition: 0, offset: offset, maxBytes: maxBytes,
                                      maxWait: .milliseconds(10), isolation: isolation)
        records += last.records
        let end = isolation == .readCommitted ? last.lastStableOffset : last.highWatermark
        if last.nextOffset >= end || last.nextOffset == offset { break }
        offset = last.nextOffset
    }
    return ReadAll(records: records, end: last.nextOffset, lastStableOffset: last.lastStableOffset)
}

private extension ConsumerRecord {
    var text: String { String(decoding: value ?? [], as: UTF8.self) }
}
