import Foundation
import Glibc
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import Synchronization
import XCTest

// MARK: - The run

struct SoakRoundSummary: Sendable {
    var round: Int
    var plan: SoakFaultPlan
    var seconds: Double
    var rssMedianKiB: Int
    var violations: [String]
    var line: String
}

struct SoakReport: Sendable {
    var settings: SoakSettings
    var elapsed: Double
    var rounds: [SoakRoundSummary]
    var violations: [String]
    var tansu: NumberedStream.Totals
    var mock: NumberedStream.Totals
    var transactions: TransactionStream.Totals
    var group: SoakConsumerGroup.Totals
    var connectionsKilled: Int
    var connectionsKilledMidTransfer: Int
    var connectionsAccepted: Int
    var bytesGarbled: Int
    var stalls: Int
    var leaderMoves: Int
    var brokerRestarts: Int
    var clientReplacements: Int
    var epochBumps: Int
    var samples: Int
    var rssMinKiB: Int
    var rssMedianKiB: Int
    var rssMaxKiB: Int
    var series: [MemorySampler.Sample]
    var bound: SoakMemoryBound
    var leak: SoakLeakCheck.Verdict
    var csv: String

    var passed: Bool { violations.isEmpty && rssMaxKiB <= bound.totalKiB && !leak.leaking }

    func print() {
        let minutes = Int(elapsed) / 60, seconds = Int(elapsed) % 60
        let plans = Dictionary(grouping: rounds, by: \.plan).mapValues(\.count)
        let points = series.map { "\(Int($0.elapsed))s:\(SoakFormat.mib($0.rssKiB))" }.joined(separator: " ")
        let failures = transactions.failuresByCode.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        Swift.print("""
            [soak] ---- summary (seed \(settings.seed)) ----
            [soak] duration: \(minutes)m\(String(format: "%02d", seconds))s, rounds: \(rounds.count) \
            (kills \(plans[.kills] ?? 0), stalls \(plans[.stalls] ?? 0), garbling \(plans[.garbling] ?? 0))
            [soak] records acknowledged: \(tansu.acked + mock.acked) idempotent (Tansu \(tansu.acked), mock \(mock.acked)), \
            failed explicitly \(tansu.failed + mock.failed), read back \(tansu.read + mock.read + transactions.recordsRead)
            [soak] idempotent anomalies under garbling: duplicates \(tansu.duplicates), reordered \(tansu.reorderings), \
            offsets misreported \(tansu.offsetMismatches), failed but written \(tansu.failedButWritten), epoch bumps \(epochBumps)
            [soak] transactions: \(transactions.started) (committed \(transactions.committed), aborted on purpose \
            \(transactions.abortedOnPurpose), failed \(transactions.failed)\(failures.isEmpty ? "" : ": \(failures)"); \
            failed yet committed whole \(transactions.failedButCommitted)), pool clients replaced \(clientReplacements)
            [soak] consumer group: \(group.ledger.read) records read (\(group.ledger.verified) offsets checked, \
            re-delivered \(group.ledger.redelivered)), members started \(group.started) (closed \(group.closed), killed \
            \(group.killed)), rebalances \(group.rebalances), lost events \(group.lostEvents), assignments \
            \(group.ledger.assignments) (ended \(group.ledger.ended.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))), \
            peak fetched ahead \(group.peakBufferedBytes) B per member, longest catch-up \(String(format: "%.1f", group.longestCatchUp)) s
            [soak] faults: connections killed \(connectionsKilled) (mid-transfer \(connectionsKilledMidTransfer), accepted \
            \(connectionsAccepted)), stalls \(stalls), bytes garbled \(bytesGarbled), leader moves \(leaderMoves), \
            broker restarts \(brokerRestarts)
            [soak] rss: min \(SoakFormat.mib(rssMinKiB)) / median \(SoakFormat.mib(rssMedianKiB)) / max \
            \(SoakFormat.mib(rssMaxKiB)) MiB over \(samples) samples; bound \(bound.description)
            [soak] rss trend: \(leak.detail)\(leak.leaking ? " — LEAK" : "")
            [soak] rss series (MiB): \(points)
            [soak] rss csv: \(csv)
            [soak] result: \(passed ? "PASS" : "FAIL")\(violations.isEmpty ? "" : " (\(violations.count) violation(s); first: \(violations[0]))")
            """)
    }
}

final class SoakRun: Sendable {
    let settings: SoakSettings
    let counters: SoakCounters
    let broker: TestBroker
    let proxy: FaultProxy
    let mock: MockCluster
    let tansu: NumberedStream
    let transactions: TransactionStream
    let mockStream: NumberedStream
    let mockFaults: MockFaults
    let group: SoakConsumerGroup
    let sampler: MemorySampler
    let bound: SoakMemoryBound
    /// Events of the Tansu side (the two clients) and of the mock side (its client and faults).
    let tansuEvents: SoakEventLog
    let mockEvents: SoakEventLog
    /// Events of the consumer group (restarts, assignments, its members' log events).
    let groupEvents: SoakEventLog

    private init(settings: SoakSettings, counters: SoakCounters, broker: TestBroker, proxy: FaultProxy, mock: MockCluster,
                 tansu: NumberedStream, transactions: TransactionStream, mockStream: NumberedStream, mockFaults: MockFaults,
                 group: SoakConsumerGroup, sampler: MemorySampler, bound: SoakMemoryBound, tansuEvents: SoakEventLog,
                 mockEvents: SoakEventLog, groupEvents: SoakEventLog) {
        self.tansuEvents = tansuEvents
        self.mockEvents = mockEvents
        self.groupEvents = groupEvents
        self.group = group
        self.settings = settings
        self.counters = counters
        self.broker = broker
        self.proxy = proxy
        self.mock = mock
        self.tansu = tansu
        self.transactions = transactions
        self.mockStream = mockStream
        self.mockFaults = mockFaults
        self.sampler = sampler
        self.bound = bound
    }

    /// Starts the sampler (first, so the CSV covers everything), Tansu behind its proxy, the
    /// mock cluster, the three clients and their topics, and the consumer group's members.
    static func start(_ settings: SoakSettings) async throws -> SoakRun {
        let baseline = ResidentMemory.currentKiB() ?? 0
        let counters = SoakCounters()
        let csv = settings.directory.appendingPathComponent("rss-\(settings.stamp).csv")
        let sampler = try MemorySampler(csv: csv, interval: settings.sampleInterval) { counters.acked.load(ordering: .relaxed) }
        sampler.start()
        var cleanup: [() -> Void] = [{ sampler.stop() }]
        let tansuEvents = SoakEventLog(), mockEvents = SoakEventLog(), groupEvents = SoakEventLog(capacity: 600)
        var clients: [KlifeClient] = []
        do {
            let (broker, proxy) = try await TestBroker.startBehindProxy()
            cleanup.append { proxy.stop(); broker.stop() }
            let mockTopic = "soak"
            let mock = try MockCluster(brokers: SoakRates.mockBrokers, topics: [(mockTopic, Int32(SoakRates.mockPartitions))])
            cleanup.append { mock.stop() }

            var idempotent = KlifeConfiguration(bootstrapServers: [proxy.address])
            idempotent.connectTimeout = .seconds(1)
            idempotent.requestTimeout = ChaosRun.requestTimeout
            idempotent.producer.maxInFlightPerBroker = 5
            idempotent.producer.retryBackoff = .milliseconds(20)
            idempotent.producer.retryBackoffMax = .milliseconds(250)
            idempotent.producer.deliveryTimeout = .seconds(120)
            idempotent.producer.linger = .milliseconds(1)
            SoakMemoryBound.applyLimits(&idempotent.producer)
            idempotent.producer.maxBatchBytes = SoakGroupSettings.producerBatchBytes
            idempotent.producer.maxRecordBytes = SoakGroupSettings.producerBatchBytes
            idempotent.logHandler = tansuEvents.handler("[idempotent]")

            var transactional = KlifeConfiguration(bootstrapServers: [proxy.address])
            transactional.connectTimeout = .seconds(2)
            transactional.requestTimeout = .seconds(2)
            transactional.producer.retryBackoff = .milliseconds(20)
            transactional.producer.retryBackoffMax = .milliseconds(250)
            transactional.producer.deliveryTimeout = .seconds(30)
            transactional.producer.linger = .milliseconds(1)
            transactional.transactions = TransactionConfiguration(baseTransactionalID: "soak-\(settings.seed)",
                                                                  poolSize: SoakRates.transactionWorkers, timeout: .seconds(30))
            SoakMemoryBound.applyLimits(&transactional.producer)
            transactional.logHandler = tansuEvents.handler("[transactional]")

            var onMock = KlifeConfiguration(bootstrapServers: mock.bootstrap)
            onMock.reactorCount = 2
            onMock.connectTimeout = .seconds(3)
            onMock.requestTimeout = .seconds(3)
            onMock.producer.maxInFlightPerBroker = 5
            onMock.producer.retryBackoff = .milliseconds(20)
            onMock.producer.retryBackoffMax = .milliseconds(250)
            onMock.producer.deliveryTimeout = .seconds(120)
            onMock.producer.linger = .milliseconds(1)
            SoakMemoryBound.applyLimits(&onMock.producer)
            onMock.logHandler = mockEvents.handler("[mock client]")

            let tansuClient = try await KlifeClient.connect(idempotent)
            clients.append(tansuClient)
            let transactionClient = try await KlifeClient.connect(transactional)
            clients.append(transactionClient)
            let mockClient = try await KlifeClient.connect(onMock)
            clients.append(mockClient)

            let tansuTopic = TestCluster.uniqueTopicName("soak-idempotent")
            let transactionTopic = TestCluster.uniqueTopicName("soak-transactions")
            try await tansuClient.createTopic(tansuTopic, partitions: Int32(SoakRates.tansuPartitions))
            try await tansuClient.createTopic(transactionTopic, partitions: Int32(SoakRates.transactionPartitions))
            _ = try await tansuClient.metadata(topics: [tansuTopic])
            _ = try await transactionClient.metadata(topics: [transactionTopic])
            _ = try await mockClient.metadata(topics: [mockTopic])

            let tansu = NumberedStream(name: "tansu", tag: "i", topic: tansuTopic, partitions: SoakRates.tansuPartitions,
                                       client: tansuClient, counters: counters)
            let transactions = TransactionStream(topic: transactionTopic, partitions: SoakRates.transactionPartitions,
                                                 configuration: transactional, client: transactionClient)
            let mockStream = NumberedStream(name: "mock", tag: "m", topic: mockTopic, partitions: SoakRates.mockPartitions,
                                            client: mockClient, counters: counters)
            let mockFaults = try MockFaults(mock: mock, stream: mockStream, events: mockEvents, counters: counters)
            let slots = settings.minutes == nil ? 1 : SoakGroupSettings.slots
            let group = SoakConsumerGroup(topic: tansuTopic, partitions: SoakRates.tansuPartitions, bootstrap: proxy.address,
                                          slots: slots, events: groupEvents)
            // The members join while the first round runs (Tansu holds a join for seconds).
            Task { await group.startMissing() }
            let bound = SoakMemoryBound.derive(baselineKiB: baseline, clients: [
                ("tansu idempotent", idempotent), ("tansu transactional", transactional), ("mock idempotent", onMock),
            ], groupMembers: slots)
            Swift.print("[soak] memory bound: \(bound.description) (PendingRecord stride \(MemoryLayout<PendingRecord>.stride) B)")
            return SoakRun(settings: settings, counters: counters, broker: broker, proxy: proxy, mock: mock, tansu: tansu,
                           transactions: transactions, mockStream: mockStream, mockFaults: mockFaults, group: group,
                           sampler: sampler, bound: bound, tansuEvents: tansuEvents, mockEvents: mockEvents,
                           groupEvents: groupEvents)
        } catch {
            for client in clients { await client.close() }
            for step in cleanup.reversed() { step() }
            throw error
        }
    }

    /// Closes the group's members and the clients, and stops the brokers, the proxy and the
    /// sampler (if still running).
    func shutdown() async {
        _ = await group.rest()
        await tansu.client.close()
        await transactions.client.close()
        await mockStream.client.close()
        proxy.stop()
        broker.stop()
        mock.stop()
    }

    /// Runs rounds until the time is up (or the bounded number); a round with violations
    /// does not end the run (its cursors moved past what it checked), so a long run reports
    /// how often a fault shows up and still measures memory to the end. Then the whole-log
    /// pass and the memory verdict.
    func execute() async -> SoakReport {
        let started = ContinuousClock.now
        var rounds: [SoakRoundSummary] = []
        var violations: [String] = []
        var epochBumps = 0
        var failedRounds = 0
        let end = settings.minutes.map { started + .milliseconds(Int($0 * 60_000)) }
        var n = 0
        while true {
            if let end {
                if n > 0 && ContinuousClock.now + settings.roundDuration > end { break }
            } else if n >= settings.boundedRounds {
                break
            }
            let (summary, bumps) = await round(n)
            epochBumps += bumps
            rounds.append(summary)
            Swift.print(summary.line)
            if !summary.violations.isEmpty {
                failedRounds += 1
                for v in summary.violations { Swift.print("[soak]   violation: \(v)") }
            }
            if !summary.violations.isEmpty && failedRounds <= 3 {
                for (name, log) in [("tansu", tansuEvents), ("mock", mockEvents), ("group", groupEvents)] {
                    Swift.print("[soak]   latest \(name) events:")
                    for line in log.recent(80) { Swift.print("[soak]     \(line)") }
                }
            }
            violations += summary.violations.map { "round \(n) (\(summary.plan)): \($0)" }
            n += 1
        }

        // The group's last members leave; what it committed must be what it read.
        violations += await group.stop(observer: tansu.client).violations(tolerating: []).map { "consumer group (end): \($0)" }

        // The whole run once more, from the start of every log.
        let finalPass = ContinuousClock.now
        var whole = await tansu.verifyWholeLog()
        whole.merge(await mockStream.verifyWholeLog())
        whole.merge(await transactions.verifyWholeLog())
        violations += whole.violations(tolerating: []).map { "whole log: \($0)" }
        Swift.print("[soak] whole-log pass: \(whole.summary) in \(String(format: "%.1f", SoakFormat.seconds(ContinuousClock.now - finalPass))) s")

        sampler.stop()
        let samples = sampler.all
        let rss = samples.map(\.rssKiB).sorted()
        let leak = SoakLeakCheck.evaluate(rounds.map(\.rssMedianKiB))
        var series: [MemorySampler.Sample] = []
        if !samples.isEmpty {
            let points = min(10, samples.count)
            for k in 0..<points { series.append(samples[points == 1 ? 0 : k * (samples.count - 1) / (points - 1)]) }
        }
        return SoakReport(settings: settings, elapsed: SoakFormat.seconds(ContinuousClock.now - started), rounds: rounds,
                          violations: violations, tansu: tansu.totals, mock: mockStream.totals, transactions: transactions.totals,
                          group: group.totals,
                          connectionsKilled: proxy.connectionsKilled, connectionsKilledMidTransfer: proxy.connectionsKilledMidTransfer,
                          connectionsAccepted: proxy.connectionsAccepted, bytesGarbled: proxy.bytesGarbled,
                          stalls: counters.stalls.load(ordering: .relaxed), leaderMoves: counters.leaderMoves.load(ordering: .relaxed),
                          brokerRestarts: counters.brokerRestarts.load(ordering: .relaxed),
                          clientReplacements: counters.clientReplacements.load(ordering: .relaxed), epochBumps: epochBumps,
                          samples: samples.count, rssMinKiB: rss.first ?? 0, rssMedianKiB: rss.isEmpty ? 0 : rss[rss.count / 2],
                          rssMaxKiB: rss.last ?? 0, series: series, bound: bound, leak: leak, csv: sampler.csv.path)
    }

    /// One round: produce under faults, quiet down, settle, verify. Returns its summary and
    /// the idempotent Tansu producer's epoch bumps during it.
    private func round(_ n: Int) async -> (SoakRoundSummary, Int) {
        let plan = SoakFaultPlan.allCases[n % SoakFaultPlan.allCases.count]
        let seed = settings.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(n) &+ 1
        let startedAt = sampler.elapsed
        let began = ContinuousClock.now
        let before = (killed: proxy.connectionsKilled, garbled: proxy.bytesGarbled, stalls: counters.stalls.load(ordering: .relaxed),
                      moves: counters.leaderMoves.load(ordering: .relaxed), restarts: counters.brokerRestarts.load(ordering: .relaxed),
                      tansu: tansu.totals, mock: mockStream.totals, txn: transactions.totals)
        let bumpsBefore = await tansu.client.statistics().requestsSent[.initProducerId] ?? 0

        // The consumer group rests while answers are garbled (see SoakConsumerGroup.rest); in
        // the other rounds of a soak, members are killed and closed while the faults run.
        let consumerGroup = self.group
        let groupBefore = consumerGroup.totals
        let groupRests = plan == .garbling
        var groupIssues = groupRests ? await consumerGroup.rest() : SoakIssues()

        let tansuLedger = tansu.newRound()
        let mockLedger = mockStream.newRound()
        let transactionLedger = TransactionLedger(counters: counters)
        let produceUntil = ContinuousClock.now + settings.roundDuration
        let (proxy, counters, duration) = (self.proxy, self.counters, settings.roundDuration)
        let faults = Task { await driveProxyFaults(plan, proxy: proxy, seed: seed, round: duration, counters: counters) }
        let disturbing = settings.minutes != nil && !groupRests
            ? Task { await consumerGroup.disturb(for: duration, seed: seed ^ 0x6A09_E667_F3BC_C908) } : nil

        var mockIssues = SoakIssues()
        let (tansu, transactions, mockFaults) = (self.tansu, self.transactions, self.mockFaults)
        await withTaskGroup(of: SoakIssues?.self) { group in
            group.addTask {
                await tansu.produce(tansuLedger, for: duration, perSecond: SoakRates.tansuPerSecond)
                return nil
            }
            // No transactions while answers are garbled: a forged answer the client cannot
            // tell from a real one can leave a transaction open at the broker, and Tansu
            // (v0.6.0) never times transactions out, so the partition's last stable offset
            // stays behind it until that transactional id is initialised again (seen: seed
            // 729024722, round 2). Garbled answers are the idempotent stream's (here and in
            // ChaosTests); transactions get kills and stalls.
            for worker in 0..<SoakRates.transactionWorkers where plan != .garbling {
                group.addTask {
                    await transactions.work(until: produceUntil, ledger: transactionLedger, seed: seed &+ UInt64(worker) &* 7919)
                    return nil
                }
            }
            group.addTask { await mockFaults.run(mockLedger, until: produceUntil, seed: seed ^ 0x5DEE_CE66) }
            for await issues in group { if let issues { mockIssues.merge(issues) } }
        }

        // Faults go on a moment while the tail drains, then stop; the proxy forgets anything armed.
        try? await Task.sleep(for: settings.tail)
        faults.cancel()
        await faults.value
        proxy.setRandomKills(every: nil, seed: 0)
        proxy.resume()
        if let disturbing { groupIssues.merge(await disturbing.value) }

        var tansuIssues = SoakIssues()
        if !(await tansu.waitForCallbacks(tansuLedger, upTo: .seconds(150))) {
            tansuIssues.add("not drained", "tansu: \(tansuLedger.pending) record(s) without a callback 150 s after the round")
        }
        // The group catches up with the stream while the rest is verified. After resting, the
        // bounded run's group stays out: one join and one leave in all (Tansu holds every join
        // for seconds).
        let observer = tansu.client
        let settling = !groupRests || settings.minutes != nil
            ? Task { await consumerGroup.settle(observer: observer, limit: .seconds(120)) } : nil
        let bumps = (await tansu.client.statistics().requestsSent[.initProducerId] ?? 0) - bumpsBefore
        var transactionIssues = await transactions.settle()

        // Garbled answers carry no checksum: failures and misreported offsets are allowed,
        // duplicates and reorderings only after an epoch bump (see ChaosTests).
        let garbling = plan == .garbling
        tansuIssues.merge(await tansu.verifyRound(tansuLedger, tolerant: garbling && bumps > 0))
        mockIssues.merge(await mockStream.verifyRound(mockLedger, tolerant: false))
        transactionIssues.merge(await transactions.verifyRound(transactionLedger))

        var tansuTolerated: Set<String> = ["unknown offset"]
        if garbling {
            tansuTolerated.formUnion(["failed", "failed but written", "offset mismatch"])
            if bumps > 0 { tansuTolerated.formUnion(["duplicate", "reordered"]) }
        }
        // "broker lso behind": Tansu's last stable offset stays behind transactions its log
        // decides (see SoakLog.readDecided) — the broker's, counted and shown, not the client's.
        var transactionTolerated: Set<String> = ["failed", "failed but committed", "broker lso behind"]
        if garbling { transactionTolerated.insert("fenced") }
        var violations = tansuIssues.violations(tolerating: tansuTolerated).map { "tansu idempotent: \($0)" }
        violations += mockIssues.violations(tolerating: ["unknown offset"]).map { "mock idempotent: \($0)" }
        violations += transactionIssues.violations(tolerating: transactionTolerated).map { "transactions: \($0)" }
        if let settling { groupIssues.merge(await settling.value) }
        violations += groupIssues.violations(tolerating: []).map { "consumer group: \($0)" }

        if transactionIssues.count("fenced") > 0 {
            do {
                try await transactions.replaceClient()
                counters.clientReplacements.add(1, ordering: .relaxed)
            } catch {
                violations.append("transactions: cannot replace the fenced client: \(error)")
            }
        }

        let endedAt = sampler.elapsed
        let inRound = sampler.all.filter { $0.elapsed >= startedAt && $0.elapsed <= endedAt }.map(\.rssKiB)
        let rssMedian = SoakLeakCheck.median(inRound.isEmpty ? [ResidentMemory.currentKiB() ?? 0] : inRound)
        let (t, m, x, g) = (tansu.totals, mockStream.totals, transactions.totals, consumerGroup.totals)
        let seconds = SoakFormat.seconds(ContinuousClock.now - began)
        let line = """
            [soak] round \(n) \(plan.rawValue) (seed \(seed)): \(String(format: "%.1f", seconds)) s; \
            tansu +\(t.acked - before.tansu.acked) acked, +\(t.failed - before.tansu.failed) failed [\(tansuIssues.summary)]; \
            transactions +\(x.started - before.txn.started) (committed +\(x.committed - before.txn.committed), \
            aborted on purpose +\(x.abortedOnPurpose - before.txn.abortedOnPurpose), failed +\(x.failed - before.txn.failed)) \
            [\(transactionIssues.summary)]; mock +\(m.acked - before.mock.acked) acked [\(mockIssues.summary)]; \
            group +\(g.ledger.read - groupBefore.ledger.read) read (re-delivered +\(g.ledger.redelivered - groupBefore.ledger.redelivered)), \
            members started +\(g.started - groupBefore.started) closed +\(g.closed - groupBefore.closed) killed \
            +\(g.killed - groupBefore.killed), \(settling == nil ? "resting" : String(format: "caught up in %.1f s", g.lastCatchUp) + " owning \(g.owners)") \
            [\(groupIssues.summary)]; \
            kills +\(proxy.connectionsKilled - before.killed), stalls +\(counters.stalls.load(ordering: .relaxed) - before.stalls), \
            garbled +\(proxy.bytesGarbled - before.garbled) B, epoch bumps +\(bumps), \
            moves +\(counters.leaderMoves.load(ordering: .relaxed) - before.moves), \
            restarts +\(counters.brokerRestarts.load(ordering: .relaxed) - before.restarts); \
            rss median \(SoakFormat.mib(rssMedian)) MiB; \(violations.isEmpty ? "ok" : "FAILED: \(violations.count) violation(s)")
            """
        return (SoakRoundSummary(round: n, plan: plan, seconds: seconds, rssMedianKiB: rssMedian, violations: violations, line: line),
                bumps)
    }
}
