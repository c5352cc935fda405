import Klife
import KlifeProtocol
import KlifeTesting
import XCTest

final class ErrorTests: XCTestCase {
    func testUnreachableBootstrapIsTypedError() async throws {
        // A port nobody listens on: bind to get a free port, then close it.
        var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:1", "localhost:2"])
        config.connectTimeout = .seconds(2)
        do {
            _ = try await KlifeClient.connect(config)
            XCTFail("connect succeeded")
        } catch {
            XCTAssertEqual(error.code, .bootstrapUnreachable)
            XCTAssertTrue(error.description.contains("127.0.0.1:1"), error.description)
        }
    }

    func testInvalidConfigurationNamesTheField() async throws {
        var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"])
        config.producer.maxInFlightPerBroker = 0
        do {
            _ = try await KlifeClient.connect(config)
            XCTFail("accepted invalid configuration")
        } catch {
            XCTAssertEqual(error.code, .invalidConfiguration)
            XCTAssertTrue(error.description.contains("producer.maxInFlightPerBroker"), error.description)
        }
        for bad in [[], ["nohost"], ["host:notaport"], ["host:70000"]] as [[String]] {
            XCTAssertThrowsError(try KlifeConfiguration(bootstrapServers: bad).validate()) { error in
                XCTAssertTrue("\(error)".contains("bootstrapServers"), "\(error)")
            }
        }
        var affinity = KlifeConfiguration(bootstrapServers: ["h:1"])
        affinity.reactorCount = 2
        affinity.reactorCPUAffinity = [[0]]
        XCTAssertThrowsError(try affinity.validate()) { XCTAssertTrue("\($0)".contains("reactorCPUAffinity")) }
        for bad in [-1, 100_001] {
            var polling = KlifeConfiguration(bootstrapServers: ["h:1"])
            polling.reactorBusyPollMicroseconds = bad
            XCTAssertThrowsError(try polling.validate()) { XCTAssertTrue("\($0)".contains("reactorBusyPollMicroseconds")) }
        }
        var polling = KlifeConfiguration(bootstrapServers: ["h:1"])
        polling.reactorBusyPollMicroseconds = 50
        XCTAssertNoThrow(try polling.validate())
    }

    func testUnknownTopicAndPartition() async throws {
        let client = try await Shared.client()
        do {
            _ = try await client.produce(ProducerRecord(topic: TestCluster.uniqueTopicName("missing"), value: "x"))
            XCTFail("produced to a missing topic")
        } catch {
            XCTAssertEqual(error.code, .unknownTopicOrPartition, error.description)
        }
        let topic = try await Shared.topic(client, partitions: 2)
        do {
            _ = try await client.produce(ProducerRecord(topic: topic, partition: 7, value: "x"))
            XCTFail("produced to a missing partition")
        } catch {
            XCTAssertEqual(error.code, .unknownTopicOrPartition)
            XCTAssertTrue(error.description.contains("/7"), error.description)
        }
        do {
            _ = try await client.fetch(topic: topic, partition: 9, offset: 0)
            XCTFail("fetched a missing partition")
        } catch {
            XCTAssertEqual(error.code, .unknownTopicOrPartition)
        }
        await client.close()
    }

    func testRecordLargerThanLimitFailsWithoutSending() async throws {
        let client = try await Shared.client { $0.producer.maxRecordBytes = 10_000 }
        let topic = try await Shared.topic(client, partitions: 1)
        let before = await client.statistics().requestsSent[.produce] ?? 0
        do {
            _ = try await client.produce(ProducerRecord(topic: topic, value: [UInt8](repeating: 7, count: 20_000)))
            XCTFail("oversized record accepted")
        } catch {
            XCTAssertEqual(error.code, .recordTooLarge)
            XCTAssertTrue(error.description.contains("producer.maxRecordBytes"), error.description)
        }
        let after = await client.statistics().requestsSent[.produce] ?? 0
        XCTAssertEqual(before, after)
        // The async form reports through its callback, exactly once.
        let failed = expectation(description: "callback")
        client.produce(ProducerRecord(topic: topic, value: [UInt8](repeating: 7, count: 20_000))) { result in
            if case .failure(let e) = result, e.code == .recordTooLarge { failed.fulfill() }
        }
        await fulfillment(of: [failed], timeout: 10)
        await client.close()
    }

    func testBrokerErrorCodeIsReported() async throws {
        let client = try await Shared.client()
        let topic = try await Shared.topic(client, partitions: 1)
        do {
            try await client.createTopic(topic, partitions: 1)
            XCTFail("created a topic twice")
        } catch {
            XCTAssertEqual(error.code, .brokerError)
            XCTAssertEqual(error.kafkaErrorCode, .topicAlreadyExists)
            XCTAssertFalse(error.isRetriable)
        }
        // Past the end: Kafka answers OFFSET_OUT_OF_RANGE; Tansu answers an empty page.
        do {
            let page = try await client.fetch(topic: topic, partition: 0, offset: 1_000)
            XCTAssertTrue(page.records.isEmpty)
            XCTAssertEqual(page.highWatermark, 0)
            XCTAssertEqual(page.nextOffset, 1_000)
        } catch {
            XCTAssertEqual(error.kafkaErrorCode, .offsetOutOfRange, error.description)
        }
        await client.close()
    }

    func testClosedClientRejectsWork() async throws {
        let client = try await Shared.client()
        await client.close()
        do {
            _ = try await client.produce(ProducerRecord(topic: "any", value: "x"))
            XCTFail("closed client produced")
        } catch {
            XCTAssertEqual(error.code, .clientClosed)
        }
    }
}

final class BrokerLimitTests: XCTestCase {
    /// A record within the client's limit but over the topic's `max.message.bytes` fails
    /// with the broker's MESSAGE_TOO_LARGE, reported as `recordTooLarge`.
    func testRecordOverBrokerLimitIsTyped() async throws {
        let client = try await Shared.client()
        let topic = TestCluster.uniqueTopicName("limit")
        try await client.createTopic(topic, partitions: 1, configs: ["max.message.bytes": "2000"])
        do {
            let meta = try await client.produce(ProducerRecord(topic: topic, partition: 0, value: [UInt8](repeating: 1, count: 50_000)))
            throw XCTSkip("broker accepted a 50 kB record over max.message.bytes=2000 (offset \(meta.offset)): it does not enforce the limit")
        } catch let error as KlifeError {
            XCTAssertEqual(error.code, .recordTooLarge, error.description)
            XCTAssertEqual(error.kafkaErrorCode, .messageTooLarge)
        }
        await client.close()
    }
}

final class BadInputIsolationTests: XCTestCase {
    /// Bad records in one batch fail with typed errors naming their cause; every good
    /// record of the same batch is delivered and readable.
    func testBadRecordsFailAloneAndGoodOnesLand() async throws {
        let client = try await Shared.client {
            $0.producer.maxRecordBytes = 10_000
            $0.producer.unknownTopicTimeout = .milliseconds(300)
        }
        let topic = try await Shared.topic(client, partitions: 2)
        let missing = TestCluster.uniqueTopicName("absent")
        var records: [ProducerRecord] = []
        for i in 0..<20 { records.append(ProducerRecord(topic: topic, value: "good-\(i)")) }
        records.insert(ProducerRecord(topic: topic, value: [UInt8](repeating: 1, count: 20_000)), at: 5)
        records.insert(ProducerRecord(topic: missing, value: "lost topic"), at: 12)
        let results = await client.produceBatch(records)

        guard case .failure(let tooLarge) = results[5] else { return XCTFail("oversize record accepted") }
        XCTAssertEqual(tooLarge.code, .recordTooLarge)
        XCTAssertTrue(tooLarge.description.contains("producer.maxRecordBytes"), tooLarge.description)
        guard case .failure(let unknown) = results[12] else { return XCTFail("record for a missing topic accepted") }
        XCTAssertEqual(unknown.code, .unknownTopicOrPartition)
        XCTAssertTrue(unknown.description.contains(missing), unknown.description)

        let good = results.enumerated().filter { $0.offset != 5 && $0.offset != 12 }
        XCTAssertEqual(good.filter { (try? $0.element.get()) != nil }.count, 20)
        let stored = try await client.allRecords(topic: topic).compactMap(\.valueString).sorted()
        XCTAssertEqual(stored, (0..<20).map { "good-\($0)" }.sorted())
        await client.close()
    }
}
