public import Klife

/// A consumer-group helper did not reach its goal in time.
public struct GroupTestingTimeout: Error, Sendable, CustomStringConvertible {
    /// What was awaited.
    public let description: String
}

extension KlifeConsumer {
    /// Waits until this group member holds an assignment (at least `minimumPartitions`
    /// partitions, in a generation of its group) and returns it.
    ///
    /// ```swift
    /// let consumer = try client.consumer(settings)
    /// let partitions = try await consumer.waitForAssignment()
    /// ```
    /// - Throws: ``GroupTestingTimeout`` after `timeout`.
    @discardableResult
    public func waitForAssignment(minimumPartitions: Int = 1, timeout: Duration = .seconds(60)) async throws -> Set<TopicPartition> {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let assigned = assignment
            if assigned.count >= minimumPartitions && groupStatistics.generation >= 0 { return assigned }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw GroupTestingTimeout(description: "no assignment of \(minimumPartitions)+ partitions within \(timeout)")
    }
}

/// Waits until the members together hold every one of `partitions`, each exactly once (a
/// balanced, stable group from the members' own view).
/// - Throws: ``GroupTestingTimeout`` after `timeout`.
public func waitUntilGroupIsStable(_ members: [KlifeConsumer], partitions: Set<TopicPartition>,
                                   timeout: Duration = .seconds(60)) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        let held = members.map(\.assignment)
        let total = held.reduce(0) { $0 + $1.count }
        if total == partitions.count && Set(held.flatMap { $0 }) == partitions { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw GroupTestingTimeout(description: "the \(members.count) members did not hold the \(partitions.count) partitions once each within \(timeout)")
}

extension KlifeClient {
    /// Reads `count` records of `topics` as a member of `group` (from the group's committed
    /// offsets, or the beginning where there are none), commits them, leaves the group and
    /// returns them in the order they arrived (offset order within each partition).
    ///
    /// ```swift
    /// let records = try await client.consumeRecords(topics: ["orders"], group: "audit", count: 3)
    /// XCTAssertEqual(records.map(\.valueString), ["a", "b", "c"])
    /// ```
    /// - Parameter configure: adjusts the consumer's settings (session timeout, protocol, …).
    /// - Throws: ``GroupTestingTimeout`` when fewer records arrived within `timeout`, or the
    ///   consumer's ``KlifeError``.
    public func consumeRecords(topics: [String], group: String, count: Int, timeout: Duration = .seconds(60),
                               configure: (inout ConsumerConfiguration) -> Void = { _ in }) async throws -> [ConsumerRecord] {
        var settings = ConsumerConfiguration()
        settings.groupID = group
        settings.topics = topics
        settings.offsetReset = .earliest
        settings.acknowledgement = .explicit
        configure(&settings)
        let consumer = try self.consumer(settings)
        let reading = Task { () throws -> [ConsumerRecord] in
            var records: [ConsumerRecord] = []
            while records.count < count, let batch = try await consumer.next() {
                var taken = batch
                let room = count - records.count
                if batch.records.count > room {
                    taken.records = batch.records.prefix(room)
                    taken.nextOffset = taken.records[room - 1].offset + 1
                }
                records += taken.records
                consumer.markProcessed(taken)
            }
            return records
        }
        let timer = Task {
            try await Task.sleep(for: timeout)
            reading.cancel()
        }
        defer { timer.cancel() }
        let records: [ConsumerRecord]
        do {
            records = try await reading.value
        } catch let error as KlifeError where error.code == .cancelled {
            await consumer.close()
            throw GroupTestingTimeout(description: "fewer than \(count) records of \(topics) in group '\(group)' within \(timeout)")
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
        return records
    }
}
