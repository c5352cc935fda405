import KlifeIO
import Foundation
import Klife
import KlifeTesting
import Synchronization
import XCTest

/// The built-in partitioners, murmur2 compatibility (known vectors and librdkafka itself),
/// and per-topic partitioners inside the client.
final class PartitionerTests: XCTestCase {
    // MARK: murmur2

    /// Vectors from Apache Kafka's `UtilsTest.testMurmur2` and librdkafka's `unittest_murmur2`
    /// (`rdmurmur2.c`, which also covers every tail length and unaligned starts).
    func testMurmur2KnownVectors() {
        let java: [([UInt8], Int32)] = [
            (bytes("21"), -973_932_308),
            (bytes("foobar"), -790_332_482),
            (bytes("a-little-bit-long-string"), -985_981_536),
            (bytes("a-little-bit-longer-string"), -1_486_304_829),
            (bytes("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58_897_971),
            ([UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "c")], 479_470_107),
        ]
        let unaligned = "PreAmbleWillBeRemoved,ThePrePartThatIs"
        let librdkafka: [([UInt8], UInt32)] = [
            (bytes("kafka"), 0xd067_cf64),
            (bytes("giberish123456789"), 0x8f55_2b0c),
            (bytes("1234"), 0x9fc9_7b14),
            (bytes("234"), 0xe7c0_09ca),
            (bytes("34"), 0x8739_30da),
            (bytes("4"), 0x5a4b_5ca1),
            (bytes(unaligned), 0x7842_4f1c),
            (Array(bytes(unaligned).dropFirst(1)), 0x4a62_b377),
            (Array(bytes(unaligned).dropFirst(2)), 0xe0e4_e09e),
            (Array(bytes(unaligned).dropFirst(3)), 0x62b8_b43f),
            ([], 0x106e_08d9),
        ]
        let all = java + librdkafka.map { ($0.0, Int32(bitPattern: $0.1)) }
        for (key, expected) in all {
            XCTAssertEqual(DefaultPartitioner.murmur2(key), expected, "murmur2(\(String(decoding: key, as: UTF8.self)))")
            // The raw-buffer variant agrees, also at an unaligned start.
            let shifted = [0xAA] + key
            let raw = shifted.withUnsafeBytes { DefaultPartitioner.murmur2(UnsafeRawBufferPointer(rebasing: $0.dropFirst())) }
            XCTAssertEqual(raw, expected)
            for n: Int32 in [1, 3, 7, 12, 50] {
                // Java: Utils.toPositive(Utils.murmur2(key)) % numPartitions.
                let javaPartition = Int32(bitPattern: UInt32(bitPattern: expected) & 0x7fff_ffff) % n
                XCTAssertEqual(DefaultPartitioner.partition(forKey: key, partitionCount: n), javaPartition)
            }
        }
        XCTAssertEqual(DefaultPartitioner.partition(forKey: bytes("foobar"), partitionCount: 50), 16)
    }

    /// Our keyed partition equals the one librdkafka's `murmur2_random` picks, for every key,
    /// with 1, 3, 7 and 12 partitions: the keys are produced through confluent_kafka to real
    /// topics and the delivery reports say where librdkafka put them.
    func testMurmur2AgreesWithLibrdkafka() async throws {
        _ = try interopPython()
        let keys = Self.interopKeys()
        XCTAssertGreaterThanOrEqual(keys.count, 10_000)
        let cluster = try await Shared.cluster.value
        let client = try await Shared.client()
        let counts: [Int32] = [1, 3, 7, 12]
        var topics: [String] = []
        for n in counts { topics.append(try await Shared.topic(client, partitions: n, prefix: "murmur2-p\(n)")) }
        await client.close()

        let stdin = keys.map { hex($0)! + "\n" }.joined()
        let output = try runInterop("rdkafka_partitions.py",
                                    ["--bootstrap", cluster.bootstrapServers[0]] + topics.flatMap { ["--topic", $0] },
                                    stdin: stdin)
        let rows = output.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        XCTAssertEqual(rows.count, keys.count)
        var mismatches: [String] = []
        var checked = 0
        var seenWithTwelve = Set<Int32>()
        for (key, row) in zip(keys, rows) {
            let theirs = row.split(separator: " ").map { Int32($0)! }
            XCTAssertEqual(theirs.count, counts.count)
            if let last = theirs.last { seenWithTwelve.insert(last) }
            for (n, their) in zip(counts, theirs) {
                checked += 1
                let ours = DefaultPartitioner.partition(forKey: key, partitionCount: n)
                if ours != their { mismatches.append("key \(hex(key)!) n=\(n): ours \(ours), librdkafka \(their)") }
            }
        }
        XCTAssertEqual(checked, keys.count * counts.count)
        XCTAssertEqual(seenWithTwelve.count, 12, "librdkafka used every partition of the 12-partition topic")
        XCTAssertTrue(mismatches.isEmpty, "\(mismatches.count) of \(checked) disagree: \(mismatches.prefix(10))")
        print("murmur2 vs librdkafka murmur2_random: \(keys.count) keys x \(counts.count) partition counts, "
            + "\(checked - mismatches.count)/\(checked) agree")
    }

    /// About 12,000 keys: the empty key, every 1-byte key, random 2- and 3-byte keys, ASCII
    /// keys, random binary keys of every tail length, long keys and non-ASCII UTF-8.
    static func interopKeys() -> [[UInt8]] {
        var random = TestRandom(seed: 0x6b6c_6966_6521)
        var keys: [[UInt8]] = [[]]
        keys += (0...255).map { [UInt8($0)] }
        keys += (0..<1000).map { _ in random.bytes(2) }
        keys += (0..<1000).map { _ in random.bytes(3) }
        keys += (0..<3000).map { bytes("key-\($0)") }
        keys += (0..<4000).map { i in random.bytes(4 + i % 61) }
        keys += (0..<300).map { i in random.bytes(100 + i * 7) }
        keys += [Array(repeating: 0xff, count: 4096), Array(repeating: 0x00, count: 1001)]
        let words = ["ключ", "鍵", "🔑", "clé", "Schlüssel", "مفتاح", "κλειδί", "\u{0}nul", "tab\there"]
        keys += (0..<2700).map { i in bytes("\(words[i % words.count])-\(i)") }
        keys += [bytes("21"), bytes("foobar"), bytes("kafka"), bytes("giberish123456789")]
        return keys
    }

    // MARK: Sticky

    func testStickyStaysThenMovesToAnotherPartition() {
        // 90-byte values count 100 bytes each: ten records per partition, then a move.
        let sticky = StickyPartitioner(batchBytes: 1000)
        XCTAssertEqual(StickyPartitioner.recordOverheadBytes, 10)
        let value = [UInt8](repeating: 7, count: 90)
        let picks = (0..<10_000).map { _ in sticky.partition(topic: "t", key: nil, value: value, partitionCount: 5) }
        var runs: [(partition: Int32, length: Int)] = []
        for p in picks {
            if let last = runs.last, last.partition == p {
                runs[runs.count - 1].length += 1
            } else {
                runs.append((p, 1))
            }
        }
        XCTAssertEqual(runs.count, 1000, "a new partition every ten records, never the same one twice in a row")
        XCTAssertTrue(runs.allSatisfy { $0.length == 10 }, "\(runs.map(\.length).filter { $0 != 10 }.prefix(5))")

        // Tiny batchBytes: every record moves; nil values still count the overhead.
        let eager = StickyPartitioner(batchBytes: 0)
        XCTAssertEqual(eager.batchBytes, 1)
        var previous: Int32 = -1
        for _ in 0..<1000 {
            let p = eager.partition(topic: "t", key: nil, value: nil, partitionCount: 3)
            XCTAssertNotEqual(p, previous)
            previous = p
        }

        // Topics are independent, keyed records go by murmur2 and do not disturb the stint.
        let perTopic = StickyPartitioner(batchBytes: 1_000_000)
        let a = perTopic.partition(topic: "a", key: nil, value: value, partitionCount: 50)
        for i in 0..<100 {
            XCTAssertEqual(perTopic.partition(topic: "a", key: nil, value: value, partitionCount: 50), a)
            let key = bytes("k\(i)")
            XCTAssertEqual(perTopic.partition(topic: "a", key: key, value: value, partitionCount: 50),
                           DefaultPartitioner.partition(forKey: key, partitionCount: 50))
            _ = perTopic.partition(topic: "b\(i % 7)", key: nil, value: value, partitionCount: 50)
        }
    }

    func testStickyNeverLeavesTheRangeEvenWhenPartitionsChange() {
        let sticky = StickyPartitioner(batchBytes: 300)
        var random = TestRandom(seed: 42)
        for step in 0..<50_000 {
            let n = Int32(1 + (step / 500) % 20) // partition count changes every 500 records
            let value = random.bytes(Int(random.next() % 200))
            let p = sticky.partition(topic: "t\(step % 3)", key: nil, value: step % 11 == 0 ? nil : value, partitionCount: n)
            XCTAssertTrue((0..<n).contains(p), "partition \(p) of \(n)")
        }
        // Shrinking below the current partition restarts inside the new range at once.
        let big = StickyPartitioner(batchBytes: 1 << 30)
        for _ in 0..<100 { _ = big.partition(topic: "s", key: nil, value: nil, partitionCount: 1000) }
        XCTAssertEqual(big.partition(topic: "s", key: nil, value: nil, partitionCount: 1), 0)
        XCTAssertTrue((0..<2).contains(big.partition(topic: "s", key: nil, value: nil, partitionCount: 2)))
    }

    func testStickyIsRoughlyUniformOverManyBatches() {
        let sticky = StickyPartitioner(batchBytes: 100)
        let n: Int32 = 7
        let value = [UInt8](repeating: 1, count: 90) // one record per stint
        var stints = [Int](repeating: 0, count: Int(n))
        var moves = [[Int]](repeating: [Int](repeating: 0, count: Int(n)), count: Int(n))
        var previous = sticky.partition(topic: "u", key: nil, value: value, partitionCount: n)
        let total = 70_000
        for _ in 1..<total {
            let p = sticky.partition(topic: "u", key: nil, value: value, partitionCount: n)
            stints[Int(p)] += 1
            moves[Int(previous)][Int(p)] += 1
            previous = p
        }
        let expected = Double(total) / Double(n)
        for count in stints {
            XCTAssertEqual(Double(count), expected, accuracy: expected * 0.05, "\(stints)")
        }
        // The next partition is uniform among the *other* partitions.
        for from in 0..<Int(n) {
            XCTAssertEqual(moves[from][from], 0)
            let row = moves[from].enumerated().filter { $0.offset != from }.map(\.element)
            let mean = Double(row.reduce(0, +)) / Double(row.count)
            for c in row { XCTAssertEqual(Double(c), mean, accuracy: mean * 0.15, "\(moves[from])") }
        }
    }

    func testStickyIsThreadSafe() {
        let sticky = StickyPartitioner(batchBytes: 1000)
        let n: Int32 = 6
        let perThread = 100_000
        let value = [UInt8](repeating: 3, count: 90) // ten records per stint
        let totals = Locked([String: [Int]]())
        let group = DispatchGroup()
        for t in 0..<4 {
            group.enter()
            let thread = Thread {
                var local: [String: [Int]] = ["x": Array(repeating: 0, count: Int(n)), "y": Array(repeating: 0, count: Int(n))]
                for i in 0..<perThread {
                    let topic = (i + t) % 2 == 0 ? "x" : "y"
                    let p = sticky.partition(topic: topic, key: nil, value: value, partitionCount: n)
                    precondition((0..<n).contains(p))
                    local[topic]![Int(p)] += 1
                }
                totals.withLock { all in
                    for (topic, counts) in local {
                        all[topic] = zip(all[topic] ?? Array(repeating: 0, count: Int(n)), counts).map { $0 + $1 }
                    }
                }
                group.leave()
            }
            thread.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        let result = totals.withLock { $0 }
        for topic in ["x", "y"] {
            let counts = result[topic] ?? []
            XCTAssertEqual(counts.reduce(0, +), 2 * perThread, topic)
            // 200,000 records per topic are exactly 20,000 complete stints of ten: a lost or
            // doubled update under contention would leave some partition off a multiple of ten.
            XCTAssertTrue(counts.allSatisfy { $0 % 10 == 0 }, "\(topic): \(counts)")
            let mean = Double(2 * perThread) / Double(n)
            for c in counts { XCTAssertEqual(Double(c), mean, accuracy: mean * 0.1, "\(topic): \(counts)") }
        }
    }

    // MARK: Round robin, murmur2_random, default

    func testRoundRobinRotatesPerTopicIgnoringKeys() {
        let rr = RoundRobinPartitioner()
        for n: Int32 in [1, 2, 5, 12] {
            let topic = "rr-\(n)"
            let first = rr.partition(topic: topic, key: nil, value: nil, partitionCount: n)
            XCTAssertTrue((0..<n).contains(first))
            for i in 1..<(3 * Int(n) + 1) {
                // Same key every time: still rotates. Another topic in between does not interfere.
                let p = rr.partition(topic: topic, key: bytes("same"), value: nil, partitionCount: n)
                XCTAssertEqual(p, (first + Int32(i)) % n)
                _ = rr.partition(topic: "other", key: nil, value: nil, partitionCount: 3)
            }
        }
    }

    func testMurmur2PartitionerAndDefaultPartitioner() {
        let murmur = Murmur2Partitioner()
        let standard = DefaultPartitioner()
        var random = TestRandom(seed: 7)
        for _ in 0..<2000 {
            let key = random.bytes(Int(random.next() % 40))
            for n: Int32 in [1, 3, 12] {
                let expected = DefaultPartitioner.partition(forKey: key, partitionCount: n)
                XCTAssertEqual(murmur.partition(topic: "t", key: key, value: nil, partitionCount: n), expected)
                XCTAssertEqual(standard.partition(topic: "t", key: key, value: nil, partitionCount: n), expected)
            }
        }
        // murmur2_random: unkeyed records spread at random, record by record.
        var counts = [Int](repeating: 0, count: 4)
        for _ in 0..<40_000 { counts[Int(murmur.partition(topic: "t", key: nil, value: nil, partitionCount: 4))] += 1 }
        for c in counts { XCTAssertEqual(Double(c), 10_000, accuracy: 600, "\(counts)") }
        // Default: unkeyed records are sticky for 16 KiB (1014-byte values + 10 overhead = 1 KiB each).
        XCTAssertEqual(StickyPartitioner.defaultBatchBytes, 16_384)
        let value = [UInt8](repeating: 0, count: 1014)
        let picks = (0..<160).map { _ in standard.partition(topic: "d", key: nil, value: value, partitionCount: 8) }
        for stint in 0..<10 {
            let slice = picks[(stint * 16)..<(stint * 16 + 16)]
            XCTAssertEqual(Set(slice).count, 1, "stint \(stint): \(Array(slice))")
            if stint > 0 { XCTAssertNotEqual(picks[stint * 16], picks[stint * 16 - 1]) }
        }
    }

    // MARK: Inside the client

    private struct FixedPartitioner: Partitioner {
        let partition: Int32
        func partition(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32 { partition }
    }

    private struct OutOfRangePartitioner: Partitioner {
        func partition(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32 {
            key == nil ? partitionCount : -1
        }
    }

    func testTopicPartitionerIsUsedAndOthersKeepTheDefault() async throws {
        let admin = try await Shared.client()
        let custom = try await Shared.topic(admin, partitions: 4, prefix: "custom")
        let other = try await Shared.topic(admin, partitions: 4, prefix: "other")
        let client = try await Shared.client { $0.producer.topicPartitioners[custom] = FixedPartitioner(partition: 2) }

        var records: [ProducerRecord] = []
        for i in 0..<40 {
            let key: [UInt8]? = i % 2 == 0 ? bytes("user-\(i)") : nil
            records.append(ProducerRecord(topic: custom, key: key, value: bytes("c\(i)")))
            records.append(ProducerRecord(topic: other, key: bytes("user-\(i)"), value: bytes("o\(i)")))
        }
        let results = await client.produceBatch(records)
        for (record, result) in zip(records, results) {
            let meta = try result.get()
            let expected = record.topic == custom ? 2 : DefaultPartitioner.partition(forKey: record.key!, partitionCount: 4)
            XCTAssertEqual(meta.partition, expected, "\(record.topic) \(String(decoding: record.key ?? [], as: UTF8.self))")
        }
        // An explicit partition still wins over the topic's partitioner.
        let explicit = try await client.produce(ProducerRecord(topic: custom, partition: 0, value: "explicit"))
        XCTAssertEqual(explicit.partition, 0)

        let onTwo = try await admin.allRecords(topic: custom, partition: 2)
        XCTAssertEqual(onTwo.count, 40)
        let onZero = try await admin.allRecords(topic: custom, partition: 0)
        XCTAssertEqual(onZero.map { $0.value.map(Array.init) }, [bytes("explicit")])
        for p: Int32 in [1, 3] {
            let empty = try await admin.allRecords(topic: custom, partition: p)
            XCTAssertEqual(empty.count, 0)
        }
        let otherRecords = try await admin.allRecords(topic: other)
        XCTAssertEqual(otherRecords.count, 40)
        for r in otherRecords {
            XCTAssertEqual(r.partition, DefaultPartitioner.partition(forKey: Array(r.key!), partitionCount: 4))
        }
        await client.close()
        await admin.close()
    }

    func testOutOfRangePartitionFailsOnlyThatRecord() async throws {
        let admin = try await Shared.client()
        let good = try await Shared.topic(admin, partitions: 3, prefix: "good")
        let bad = TestCluster.uniqueTopicName("bad")
        let client = try await Shared.client { $0.producer.topicPartitioners[bad] = OutOfRangePartitioner() }
        // Created after the client loaded its metadata: the first record waits on the reactor for
        // metadata; later ones find it (the partitioner runs on the reactor with one reactor, on
        // the producing thread with several).
        try await admin.createTopic(bad, partitions: 3)

        func expectInvalidArgument(_ record: ProducerRecord, _ label: String) async {
            do {
                let meta = try await client.produce(record)
                XCTFail("\(label): produced to \(meta)")
            } catch {
                // `error` is a KlifeError: produce throws(KlifeError).
                XCTAssertEqual(error.code, .invalidArgument, "\(label): \(error)")
                XCTAssertTrue(error.description.contains(bad), error.description)
            }
        }
        await expectInvalidArgument(ProducerRecord(topic: bad, value: "first"), "first, routed on the reactor")
        await expectInvalidArgument(ProducerRecord(topic: bad, value: "second"), "second, metadata known")
        await expectInvalidArgument(ProducerRecord(topic: bad, key: "negative", value: "third"), "negative partition")

        // Mixed with good records in one batch and through the callback API: only the bad ones fail.
        var records: [ProducerRecord] = []
        for i in 0..<30 {
            records.append(ProducerRecord(topic: i % 3 == 0 ? bad : good, key: i % 2 == 0 ? nil : "k\(i)", value: "v\(i)"))
        }
        let results = await client.produceBatch(records)
        for (record, result) in zip(records, results) {
            switch result {
            case .success(let meta):
                XCTAssertEqual(record.topic, good)
                XCTAssertTrue((0..<3).contains(meta.partition))
            case .failure(let error):
                XCTAssertEqual(record.topic, bad)
                XCTAssertEqual(error.code, .invalidArgument)
            }
        }
        let callback = Locked<Result<RecordMetadata, KlifeError>?>(nil)
        client.produce(ProducerRecord(topic: bad, value: "callback")) { result in callback.withLock { $0 = result } }
        await client.flush()
        let deadline = ContinuousClock.now + .seconds(5)
        while callback.withLock({ $0 == nil }) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        if case .failure(let error)? = callback.withLock({ $0 }) {
            XCTAssertEqual(error.code, .invalidArgument)
        } else {
            XCTFail("callback produce: \(String(describing: callback.withLock { $0 }))")
        }

        let goodRecords = try await admin.allRecords(topic: good)
        XCTAssertEqual(goodRecords.count, 20)
        let badRecords = try await admin.allRecords(topic: bad)
        XCTAssertEqual(badRecords.count, 0)
        await client.close()
        await admin.close()
    }
}

/// Deterministic test data (SplitMix64).
struct TestRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}
