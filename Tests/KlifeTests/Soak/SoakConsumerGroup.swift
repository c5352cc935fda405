import Foundation
@testable import Klife
import KlifeIO
import KlifeTesting
import Synchronization

// MARK: - The consumer group

/// Settings of the soak's consumer group on Tansu.
enum SoakGroupSettings {
    /// Member slots of a soak; the bounded run has one.
    static let slots = 3
    /// Fetched-ahead bound of each member: small, so a member catching up after a restart or a
    /// rebalance reaches it (the memory bound counts it per member).
    static let maxBufferedBytes = 32 << 10
    /// The idempotent stream's producer batches are capped at this size: a fetch answer may pass
    /// a member's prefetch bound by one of them (KIP-74), so the cap enters the memory bound.
    /// At the soak's rates a batch holds a few KiB at most; the cap never splits one.
    static let producerBatchBytes = 32 << 10
    /// The smallest value the idempotent stream writes (`i:0:0`), no key: the most records the
    /// prefetch bound can hold.
    static let smallestRecordBytes = 5
    /// What one member's client holds whatever it reads: a reactor and a resolver thread (their
    /// malloc arenas), its connections (produce/metadata, fetch, group) with 64 KiB read buffers,
    /// request and answer buffers, the hub, timers and the record ring (2 slots).
    static let clientAllowanceBytes = 4 << 20

    /// Tansu holds a JoinGroup for about half the session timeout: short, so rebalances take
    /// seconds, yet above the longest stall (2.5 s) plus a heartbeat interval.
    static func consumer(groupID: String, topic: String) -> ConsumerConfiguration {
        var settings = ConsumerConfiguration()
        settings.groupID = groupID
        settings.topics = [topic]
        settings.offsetReset = .earliest
        settings.sessionTimeout = .seconds(6)
        settings.heartbeatInterval = .seconds(1)
        settings.rebalanceTimeout = .seconds(10)
        settings.revokeTimeout = .seconds(5)
        settings.autoCommitInterval = .milliseconds(500)
        settings.maxRecords = 200
        settings.maxBufferedBytes = maxBufferedBytes
        settings.partitionMaxBytes = Int32(maxBufferedBytes)
        settings.fetchMaxWait = .milliseconds(200)
        settings.retryBackoff = .milliseconds(50)
        settings.retryBackoffMax = .milliseconds(500)
        return settings
    }

    static func client(bootstrap: String) -> KlifeConfiguration {
        var config = KlifeConfiguration(bootstrapServers: [bootstrap])
        config.connectTimeout = .seconds(1)
        config.requestTimeout = .seconds(2)
        config.producer.idempotent = false
        config.producer.queueCapacity = 2
        config.logLevel = .debug
        return config
    }

    /// The most one member may hold: the prefetch bound plus one producer batch, as records of
    /// the smallest size (each a `ConsumerRecord` and its value array, twice while an answer is
    /// decoded and handed over), the answer's bytes twice (read buffer, decoded batches), and the
    /// member's client.
    static var memberBytes: Int {
        let prefetch = maxBufferedBytes + producerBatchBytes
        let perRecord = 2 * (MemoryLayout<ConsumerRecord>.stride + 64)
        return prefetch / smallestRecordBytes * perRecord + 2 * prefetch + clientAllowanceBytes
    }
}

/// The member's consumer, for its own hooks, which live in the consumer's settings (weak, or
/// the consumer would keep itself alive). The hooks may run before `client.consumer` returns.
final class ConsumerHandle: Sendable {
    private struct Reference: Sendable {
        weak var consumer: KlifeConsumer?
        var set = false
    }

    private let reference = Locked(Reference())

    func set(_ consumer: KlifeConsumer) {
        reference.withLock { r in
            r.consumer = consumer
            r.set = true
        }
    }

    /// The consumer once it exists; `nil` once it is gone.
    func wait() async -> KlifeConsumer? {
        while true {
            let (set, consumer) = reference.withLock { ($0.set, $0.consumer) }
            if set { return consumer }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }
}

/// One incarnation of a member slot: a client of its own (so it can be killed: the client closes
/// without the consumer committing or leaving), its consumer, and a task reading its batches
/// into the ledger.
final class SoakGroupMember: Sendable {
    let slot: Int
    let id: Int
    let name: String
    let client: KlifeClient
    let consumer: KlifeConsumer
    private let dead = Atomic<Bool>(false)
    private let reader = Locked<Task<Void, Never>?>(nil)
    /// The most bytes its consumer held fetched ahead, sampled after every batch.
    let peakBuffered = Atomic<Int>(0)
    let failure = Locked<String?>(nil)

    init(slot: Int, id: Int, name: String, client: KlifeClient, consumer: KlifeConsumer, ledger: GroupLedger) {
        self.slot = slot
        self.id = id
        self.name = name
        self.client = client
        self.consumer = consumer
        let task = Task { [self] in await read(into: ledger) }
        reader.withLock { $0 = task }
    }

    /// Reads every batch into the ledger until the consumer closes. A killed member stops at
    /// once, as a crashed process would: the batch it was handed as it died is not read, and
    /// not processed either (with `onNextBatch` a batch counts as processed only when the reader
    /// asks for the next one).
    private func read(into ledger: GroupLedger) async {
        do {
            while let batch = try await consumer.next() {
                if dead.load(ordering: .acquiring) { return }
                ledger.read(member: id, name: name, batch: batch)
                sampleBuffered()
            }
        } catch {
            if !dead.load(ordering: .acquiring) { failure.withLock { $0 = "\(name): batches ended with \(error)" } }
        }
    }

    func sampleBuffered() {
        let buffered = consumer.state.state.withLock { $0.bufferedBytes }
        peakBuffered.max(buffered, ordering: .relaxed)
    }

    /// Stops reading as a crash would (see ``read(into:)``).
    func die() {
        dead.store(true, ordering: .releasing)
        reader.withLock { $0 }?.cancel()
    }

    func readerFinished() async { await reader.withLock { $0 }?.value }
}

/// A consumer group on Tansu reading the idempotent stream's topic through the ``FaultProxy``
/// while its members restart: gracefully (`close`: commit, LeaveGroup) or killed (the member's
/// client closes without leaving or committing; the coordinator notices after the session
/// timeout). The proxy's faults reach the members' connections as they reach the producers'.
/// After each round, faults off, the group catches up to the end of the log and ``GroupLedger``
/// checks what it read.
final class SoakConsumerGroup: Sendable {
    struct Totals: Sendable {
        var ledger = GroupLedger.Totals()
        var started = 0
        var closed = 0
        var killed = 0
        var rebalances = 0
        var lostEvents = 0
        var peakBufferedBytes = 0
        var longestCatchUp = 0.0
        var lastCatchUp = 0.0
        /// Who owned what when the group last caught up (`slot:[partitions]`).
        var owners = ""
    }

    /// A retired member's client, to tell whether it was freed.
    private struct Retired: Sendable {
        weak var client: KlifeClient?
        var name: String
    }

    private struct State: Sendable {
        var members: [SoakGroupMember?]
        /// Slots whose new member is being started (connecting), so no one starts a second.
        var starting: Set<Int> = []
        var retired: [Retired] = []
        var nextID = 0
        var totals = Totals()
    }

    let topic: String
    let groupID: String
    let bootstrap: String
    let partitions: Int
    let slots: Int
    let ledger: GroupLedger
    let events: SoakEventLog
    /// A member's fetched-ahead bytes may reach this: the prefetch bound plus one producer batch.
    let bufferBound = SoakGroupSettings.maxBufferedBytes + SoakGroupSettings.producerBatchBytes
    private let state: Locked<State>

    init(topic: String, partitions: Int, bootstrap: String, slots: Int, events: SoakEventLog) {
        self.topic = topic
        self.groupID = "soak-group-" + topic
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.slots = slots
        self.ledger = GroupLedger(partitions: partitions)
        self.events = events
        state = Locked(State(members: Array(repeating: nil, count: slots)))
    }

    var totals: Totals {
        let (members, ended) = state.withLock { ($0.members.compactMap { $0 }, $0.totals) }
        var totals = ended
        totals.ledger = ledger.totals
        for member in members {
            let stats = member.consumer.groupStatistics
            totals.rebalances += stats.rebalances
            totals.lostEvents += stats.partitionsLostEvents
            totals.peakBufferedBytes = max(totals.peakBufferedBytes, member.peakBuffered.load(ordering: .relaxed))
        }
        return totals
    }

    private var live: [SoakGroupMember] { state.withLock { $0.members.compactMap { $0 } } }

    // MARK: Members

    /// Starts a member in every empty slot (at once, so one join takes them all in).
    func startMissing() async {
        let empty = state.withLock { s in s.members.indices.filter { s.members[$0] == nil && !s.starting.contains($0) } }
        await withTaskGroup(of: Void.self) { group in
            for slot in empty { group.addTask { await self.start(slot) } }
        }
    }

    /// Starts a member in `slot` unless one is there or being started: a client of its own
    /// (connecting may take attempts under faults), its consumer and reader. A slot that cannot
    /// start stays empty until the group settles.
    private func start(_ slot: Int) async {
        let reserved = state.withLock { s -> Int? in
            guard s.members[slot] == nil, !s.starting.contains(slot) else { return nil }
            s.starting.insert(slot)
            s.nextID += 1
            return s.nextID
        }
        guard let id = reserved else { return }
        defer { state.withLock { _ = $0.starting.remove(slot) } }
        let name = "member \(id) (slot \(slot))"
        var config = SoakGroupSettings.client(bootstrap: bootstrap)
        config.logHandler = events.handler("[\(name)]")
        var connected: KlifeClient?
        for attempt in 1...20 {
            do {
                connected = try await KlifeClient.connect(config)
                break
            } catch {
                events.append("\(name): connect attempt \(attempt) failed: \(error)")
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        guard let client = connected else { return }
        let handle = ConsumerHandle()
        var settings = SoakGroupSettings.consumer(groupID: groupID, topic: topic)
        let (ledger, groupID, events) = (self.ledger, self.groupID, self.events)
        settings.onAssigned = { tps in
            guard let consumer = await handle.wait() else { return }
            let ids = consumer.state.assignmentIDs(tps)
            guard let committed = await Self.committed(consumer.client, groupID: groupID, tps) else { return }
            events.append("\(name): assigned \(Self.describe(tps)) at committed \(Self.describe(committed))")
            for tp in tps {
                guard let assignmentID = ids[tp] else { continue }
                ledger.assigned(member: id, name: name, partition: Int(tp.partition), assignmentID: assignmentID,
                                committed: committed[tp] ?? 0)
            }
        }
        settings.onRevoked = { tps in
            guard let consumer = await handle.wait() else { return }
            Self.ended(consumer, tps, how: "revoked", name: name, ledger: ledger, events: events)
        }
        settings.onLost = { tps in
            guard let consumer = await handle.wait() else { return }
            Self.ended(consumer, tps, how: "lost", name: name, ledger: ledger, events: events)
        }
        let consumer: KlifeConsumer
        do {
            consumer = try client.consumer(settings)
        } catch {
            events.append("\(name): cannot create the consumer: \(error)")
            await client.close()
            return
        }
        handle.set(consumer)
        let member = SoakGroupMember(slot: slot, id: id, name: name, client: client, consumer: consumer, ledger: ledger)
        state.withLock { s in
            s.members[slot] = member
            s.totals.started += 1
        }
        events.append("\(name): started")
    }

    /// The group's committed offsets for `tps`, asked until answered; `nil` once the client closed.
    private static func committed(_ client: KlifeClient, groupID: String,
                                  _ tps: Set<TopicPartition>) async -> [TopicPartition: Int64]? {
        while !client.isClosed {
            do {
                return try await client.committedOffsets(groupID: groupID, partitions: Array(tps))
            } catch {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        return nil
    }

    /// Tells the ledger that `consumer` gives `tps` up, with the commits it saw succeed.
    private static func ended(_ consumer: KlifeConsumer, _ tps: Set<TopicPartition>, how: String, name: String,
                              ledger: GroupLedger, events: SoakEventLog) {
        let partitions = consumer.statistics().partitions
        var committed: [TopicPartition: Int64] = [:]
        for tp in tps {
            let offset = partitions[tp]?.committed ?? -1
            committed[tp] = offset
            ledger.ended(partition: Int(tp.partition), how: how, committed: offset)
        }
        events.append("\(name): \(how) \(describe(tps)), committed \(describe(committed))")
    }

    /// Takes the member out of its slot and adds its counters to the totals.
    private func retire(_ slot: Int) -> SoakGroupMember? {
        state.withLock { s in
            guard let member = s.members[slot] else { return nil }
            s.members[slot] = nil
            return member
        }
    }

    private func account(_ member: SoakGroupMember, killed: Bool) {
        let stats = member.consumer.groupStatistics
        state.withLock { s in
            s.retired.append(Retired(client: member.client, name: member.name))
            if killed { s.totals.killed += 1 } else { s.totals.closed += 1 }
            s.totals.rebalances += stats.rebalances
            s.totals.lostEvents += stats.partitionsLostEvents
            s.totals.peakBufferedBytes = max(s.totals.peakBufferedBytes, member.peakBuffered.load(ordering: .relaxed))
        }
    }

    /// Closes the member in `slot` gracefully: the consumer commits what it read and leaves
    /// (either may fail under faults: its partitions then move from the last commit that
    /// succeeded, after the session timeout if the LeaveGroup was lost).
    private func close(_ slot: Int) async -> SoakIssues {
        guard let member = retire(slot) else { return SoakIssues() }
        events.append("\(member.name): closing")
        let assigned = member.consumer.assignment
        Self.ended(member.consumer, assigned, how: "closed", name: member.name, ledger: ledger, events: events)
        await member.consumer.close(timeout: .seconds(5))
        await member.readerFinished()
        await member.client.close()
        account(member, killed: false)
        return check(member)
    }

    /// Kills the member in `slot`: it stops reading, its client closes without the consumer
    /// committing or leaving. Closing the consumer afterwards only frees it (nothing can be sent
    /// on a closed client); if that does not finish, something waits on the closed client.
    private func kill(_ slot: Int) async -> SoakIssues {
        guard let member = retire(slot) else { return SoakIssues() }
        member.die()
        events.append("\(member.name): killed (client closed without leaving)")
        Self.ended(member.consumer, member.consumer.assignment, how: "killed", name: member.name, ledger: ledger, events: events)
        await member.client.close(timeout: .zero)
        var issues = check(member)
        let freed = await finishes(within: .seconds(30)) {
            await member.consumer.close(timeout: .zero)
            await member.readerFinished()
        }
        if !freed { issues.add("stuck after kill", "\(member.name): closing its consumer after its client closed did not finish in 30 s") }
        account(member, killed: true)
        return issues
    }

    /// What a member broke on its own: its batches ended with an error, or it held more than
    /// its prefetch bound.
    private func check(_ member: SoakGroupMember) -> SoakIssues {
        var issues = SoakIssues()
        if let failure = member.failure.withLock({ $0 }) { issues.add("member failed", failure) }
        let peak = member.peakBuffered.load(ordering: .relaxed)
        if peak > bufferBound {
            issues.add("prefetch bound", "\(member.name) held \(peak) bytes fetched ahead, bound \(bufferBound)")
        }
        return issues
    }

    // MARK: Rounds

    /// During a round's faults (a soak, not the bounded run), one of three disturbances, chosen
    /// by the round's seed; the members not disturbed keep reading throughout:
    /// - one member killed and another closed, each at a random moment, each slot starting a
    ///   new member 0.5–3 s later: the newcomers join the rebalances their predecessors caused
    ///   (a killed member's partitions wait for its session timeout);
    /// - one member closed, its successor started 8–12 s later: the others take its partitions
    ///   in a rebalance of their own (Tansu holds it about 3 s), and the newcomer's join makes
    ///   one of them revoke a partition, committing it on the way;
    /// - one member killed, its successor started 16–20 s later: the same, once the coordinator
    ///   removed the dead member (Tansu notices the session timeout, 6 s, some seconds late).
    /// Under random kills no JoinGroup lasts the seconds Tansu holds it, so a kill round's
    /// rebalances finish once the faults stop, all at once: revokes come from stall rounds.
    func disturb(for duration: Duration, seed: UInt64) async -> SoakIssues {
        var random = ChaosRandom(seed: seed)
        let span = Int(SoakFormat.seconds(duration) * 1000)
        let first = Int(random.next() % UInt64(slots))
        let second = (first + 1 + Int(random.next() % UInt64(max(1, slots - 1)))) % slots
        let (firstAt, secondAt) = (random.milliseconds((span / 10)...(span / 2)), random.milliseconds((span / 10)...(span / 2)))
        var plan: [(slot: Int, at: Duration, kill: Bool, pause: Duration)]
        switch random.next() % 3 {
        case 0:
            plan = [(first, firstAt, true, random.milliseconds(500...3000))]
            if second != first { plan.append((second, secondAt, false, random.milliseconds(500...3000))) }
        case 1:
            plan = [(first, firstAt, false, random.milliseconds(8000...12_000))]
        default:
            plan = [(first, firstAt, true, random.milliseconds(16_000...20_000))]
        }
        return await withTaskGroup(of: SoakIssues.self) { group in
            for step in plan {
                group.addTask {
                    try? await Task.sleep(for: step.at)
                    let issues = step.kill ? await self.kill(step.slot) : await self.close(step.slot)
                    try? await Task.sleep(for: step.pause)
                    await self.start(step.slot)
                    return issues
                }
            }
            var issues = SoakIssues()
            for await found in group { issues.merge(found) }
            return issues
        }
    }

    /// Every member closes gracefully (before garbled answers: forged fetch answers carry no
    /// checksum on a batch's base offset or the high watermark, so they could make any client
    /// skip records or reset its position, and a forged SyncGroup answer could hand a partition
    /// to two members).
    func rest() async -> SoakIssues {
        // A member being started (its connecting is bounded) is closed with the others.
        while state.withLock({ !$0.starting.isEmpty }) { try? await Task.sleep(for: .milliseconds(10)) }
        return await withTaskGroup(of: SoakIssues.self) { group in
            for slot in 0..<slots { group.addTask { await self.close(slot) } }
            var issues = SoakIssues()
            for await found in group { issues.merge(found) }
            return issues
        }
    }

    /// Faults off and the producers done: fills empty slots, waits until the group caught up
    /// with the end of the log (stable and balanced: one generation, every member holding its
    /// share, every partition owned by exactly one of them; every offset below the end read; the
    /// group's committed offsets at the end), then checks what it read.
    func settle(observer: KlifeClient, limit: Duration) async -> SoakIssues {
        var issues = SoakIssues()
        guard let ends = await endOffsets(observer) else {
            issues.add("end offsets", "cannot list the end offsets of \(topic)")
            return issues
        }
        await startMissing()
        let began = ContinuousClock.now
        var caughtUp = false
        while ContinuousClock.now - began < limit {
            if await isCaughtUp(ends: ends, observer: observer) {
                caughtUp = true
                break
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        let took = SoakFormat.seconds(ContinuousClock.now - began)
        let owners = live.sorted { $0.slot < $1.slot }.map { "\($0.slot):\(Self.describe($0.consumer.assignment))" }
        state.withLock { s in
            s.totals.longestCatchUp = max(s.totals.longestCatchUp, took)
            s.totals.lastCatchUp = took
            s.totals.owners = owners.joined(separator: " ")
        }
        if !caughtUp {
            let progress = await describeProgress(ends: ends, observer: observer)
            issues.add("not caught up", "after \(SoakFormat.seconds(limit)) s: \(progress)")
        }
        for member in live {
            member.sampleBuffered()
            issues.merge(check(member))
        }
        issues.merge(ledger.verify(ends: ends))
        return issues
    }

    /// The end of every partition (nothing is produced to it while the group settles): the high
    /// watermark of a fetch. Not ListOffsets: Tansu 0.6 answers `latest` with the base offset of
    /// the partition's last batch plus one, short of the end when that batch holds several records.
    private func endOffsets(_ observer: KlifeClient) async -> [Int64]? {
        let from = ledger.verifiedUpTo
        var ends: [Int64] = []
        for p in 0..<partitions {
            guard let page = try? await SoakLog.fetch(observer, topic: topic, partition: p, offset: from[p], maxBytes: 1024,
                                                      isolation: .readUncommitted), page.highWatermark >= 0 else { return nil }
            ends.append(page.highWatermark)
        }
        return ends
    }

    private func isCaughtUp(ends: [Int64], observer: KlifeClient) async -> Bool {
        let members = live
        guard members.count == slots else { return false }
        // Stable: every member in the same generation, holding its share (cooperative-sticky
        // balances to within one partition once its follow-up rebalance is done).
        let generations = Set(members.map { $0.consumer.groupStatistics.generation })
        guard generations.count == 1, let generation = generations.first, generation >= 0 else { return false }
        var owners = [Int](repeating: 0, count: partitions)
        for member in members {
            let assigned = member.consumer.assignment
            guard (partitions / slots)...((partitions + slots - 1) / slots) ~= assigned.count else { return false }
            for tp in assigned where Int(tp.partition) < partitions { owners[Int(tp.partition)] += 1 }
        }
        guard owners.allSatisfy({ $0 == 1 }), ledger.uncovered(ends: ends).isEmpty else { return false }
        guard let committed = try? await observer.committedOffsets(groupID: groupID) else { return false }
        return (0..<partitions).allSatisfy { committed[TopicPartition(topic: topic, partition: Int32($0))] == ends[$0] }
    }

    /// Who owns what, how far each partition was read and committed: for a group that did not
    /// catch up.
    private func describeProgress(ends: [Int64], observer: KlifeClient) async -> String {
        var lines: [String] = []
        for member in live {
            let stats = member.consumer.statistics()
            let positions = stats.partitions.sorted { $0.key.partition < $1.key.partition }
                .map { "\($0.key.partition): position \($0.value.position) committed \($0.value.committed)" }
            lines.append("\(member.name) generation \(stats.group.generation) rebalances \(stats.group.rebalances) "
                + "[\(positions.joined(separator: ", "))]")
        }
        let missing = ledger.uncovered(ends: ends)
        for (p, count) in missing.sorted(by: { $0.key < $1.key }) {
            lines.append("partition \(p): \(count) unread below \(ends[p]), first \(ledger.unread(partition: p, end: ends[p]))")
        }
        let committed = (try? await observer.committedOffsets(groupID: groupID)).map(Self.describe) ?? "unknown"
        lines.append("committed \(committed), ends \(ends)")
        return lines.joined(separator: "; ")
    }

    /// Closes every member gracefully (end of the run), then checks that the group committed
    /// exactly as far as its reads were verified, and that every member's client was freed (a
    /// killed member's client is closed under its consumer: nothing may keep either alive).
    func stop(observer: KlifeClient) async -> SoakIssues {
        var issues = await rest()
        let deadline = ContinuousClock.now + .seconds(30)
        var alive = state.withLock { $0.retired.filter { $0.client != nil }.map(\.name) }
        while !alive.isEmpty && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
            alive = state.withLock { $0.retired.filter { $0.client != nil }.map(\.name) }
        }
        let retired = state.withLock { $0.retired.count }
        if !alive.isEmpty {
            issues.add("not freed", "\(alive.count) of \(retired) retired members' clients still alive 30 s after the last "
                + "left: \(alive.prefix(8).joined(separator: ", "))")
        }
        let verified = ledger.verifiedUpTo
        do {
            let committed = try await observer.committedOffsets(groupID: groupID)
            for p in 0..<partitions where verified[p] > 0 {
                let c = committed[TopicPartition(topic: topic, partition: Int32(p))] ?? 0
                if c != verified[p] {
                    issues.add("final commit", "partition \(p): committed \(c), read and verified up to \(verified[p])")
                }
            }
        } catch {
            issues.add("final commit", "cannot read the group's committed offsets: \(error)")
        }
        return issues
    }

    static func describe(_ tps: Set<TopicPartition>) -> String {
        "[" + tps.map(\.partition).sorted().map(String.init).joined(separator: ",") + "]"
    }

    static func describe(_ offsets: [TopicPartition: Int64]) -> String {
        "[" + offsets.sorted { $0.key.partition < $1.key.partition }.map { "\($0.key.partition):\($0.value)" }
            .joined(separator: " ") + "]"
    }
}

/// Runs `work` and waits up to `limit` for it; `false` if it has not finished by then (it is
/// left running).
func finishes(within limit: Duration, _ work: @escaping @Sendable () async -> Void) async -> Bool {
    let done = Locked(false)
    Task {
        await work()
        done.withLock { $0 = true }
    }
    let deadline = ContinuousClock.now + limit
    while !done.withLock({ $0 }) && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
    return done.withLock { $0 }
}
