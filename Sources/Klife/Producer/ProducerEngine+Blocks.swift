import KlifeIO
import KlifeProtocol

/// A partition of the blocks an engine expects.
struct OpenBlockKey: Hashable {
    let topic: TopicHandle
    let partition: Int32

    static func == (a: OpenBlockKey, b: OpenBlockKey) -> Bool { a.topic == b.topic && a.partition == b.partition }

    func hash(into hasher: inout Hasher) {
        hasher.combine(topic.interned.toOpaque())
        hasher.combine(partition)
    }
}

/// The blocks producing threads opened for one engine's session, as the notices in the ring
/// told the engine, and the records waiting for one of them.
///
/// A partition's expected block is the last one announced whose descriptor has not arrived:
/// open on the producing side (the engine may seal it: at its linger end, or before a record
/// handed over by the ring is buffered for the partition) or *sealed elsewhere* — sealed by
/// a producing thread, its descriptor behind in the ring. A record from the ring that finds
/// it sealed elsewhere waits for that descriptor: the producer that handed the record over
/// may have appended records to the block before it (docs/DESIGN.md, "Records appended on
/// the producing thread").
struct ExpectedBlocks {
    struct Expected {
        let log: PartitionLog
        let block: ProducerBlock
        /// When its linger ends (`.max` once sealed elsewhere).
        var due: UInt64
        var sealedElsewhere: Bool
    }

    var entries: [OpenBlockKey: Expected] = [:]
    /// Records from the ring waiting for their partition's block sealed elsewhere, in order.
    var waiting: [OpenBlockKey: [PendingRecord]] = [:]
    /// The earliest linger end among `entries`.
    var earliestDue = UInt64.max

    var isEmpty: Bool { entries.isEmpty && waiting.isEmpty }

    /// A block's descriptor arrived: its partition expects nothing more of it.
    /// - Returns: the records that waited for it (to be routed right after it).
    mutating func arrived(_ block: Unmanaged<ProducerBlock>, at key: OpenBlockKey) -> [PendingRecord] {
        guard let entry = entries[key], Unmanaged.passUnretained(entry.block).toOpaque() == block.toOpaque() else { return [] }
        entries[key] = nil
        return waiting.removeValue(forKey: key) ?? []
    }

    /// Forgets everything (shutdown, an aborted transaction). - Returns: the waiting records.
    mutating func removeAll() -> [PendingRecord] {
        let records = waiting.values.flatMap { $0 }
        self = ExpectedBlocks()
        return records
    }
}

extension ProducerEngine {
    /// A producing thread opened a block: expected from now on, sealable until its linger ends
    /// (sooner when it must). A notice about a block sealed by a producing thread since makes
    /// it expected as sealed elsewhere; one about a block failed since (shutdown, an aborted
    /// transaction) is dropped.
    func noteOpened(_ notice: PendingRecord) {
        guard let block = notice.block?.takeUnretainedValue(),
              let log = session.logs.log(topic: notice.topic, partition: notice.partition) else { return }
        let key = OpenBlockKey(topic: notice.topic, partition: notice.partition)
        switch log.state(of: block, opening: notice.noticeOf) {
        case .gone:
            return
        case .handedOver:
            expected.entries[key] = .init(log: log, block: block, due: .max, sealedElsewhere: true)
        case .open:
            let due = notice.deadline &- config.deliveryTimeout.nanoseconds &+ lingerNanos
            expected.entries[key] = .init(log: log, block: block, due: due, sealedElsewhere: false)
            if due < expected.earliestDue { expected.earliestDue = due }
            armLingerTimer(at: due)
        }
    }

    /// Before a record handed over by the ring is buffered: its partition's expected block
    /// goes first — sealed here and buffered if still open; if sealed elsewhere, the record
    /// waits for its descriptor (as do records already waiting for it).
    /// - Returns: whether the record waits (it was taken).
    func waitsBehindBlock(_ record: borrowing PendingRecord, now: UInt64) -> Bool {
        let key = OpenBlockKey(topic: record.topic, partition: record.partition)
        if expected.waiting[key] != nil {
            expected.waiting[key]!.append(copy record)
            return true
        }
        guard var entry = expected.entries[key] else { return false }
        if !entry.sealedElsewhere, let descriptor = seal(entry) {
            expected.entries[key] = nil
            route(descriptor, now: now)
            return false
        }
        entry.sealedElsewhere = true
        entry.due = .max
        expected.entries[key] = entry
        expected.waiting[key] = [copy record]
        return true
    }

    /// Whether `key`'s leader (as this reactor's snapshot knows it) is below its in-flight
    /// limit; `true` when the leader or its sink is not known (the block is then parked).
    private func leaderTakesRequests(_ key: OpenBlockKey) -> Bool {
        guard let route = service.snapshot.routes[key.topic.name], key.partition < route.partitionCount,
              let leader = route.leader(key.partition), let sink = existingSink(for: leader) else { return true }
        return sink.inFlightRequests < config.maxInFlightPerBroker
    }

    /// Seals an expected block if it is still open, taking it from its log.
    /// - Returns: its descriptor, or `nil` when a producing thread sealed it first.
    private func seal(_ entry: ExpectedBlocks.Expected) -> PendingRecord? {
        guard let block = entry.log.seal(ifOpen: entry.block) else { return nil }
        let descriptor = block._withUnsafeGuaranteedRef {
            $0.sealedDescriptor(log: entry.log, slot: session.slot, deliveryTimeoutNanos: config.deliveryTimeout.nanoseconds)
        }
        block.release()
        return descriptor
    }

    /// Seals and buffers the expected open blocks whose linger ended (all of them while
    /// producers wait for room: lingering cannot fill them, it only holds room back) — but
    /// only those whose leader can take a request now: while its in-flight limit is reached, a
    /// block stays open and keeps taking records, as records accumulated in the buffer did
    /// (dynamic batching; sealed at once, a block per loop iteration would leave in its own
    /// request).
    func sealDueBlocks(now: UInt64) {
        guard !expected.entries.isEmpty else { return }
        let exhausted = lingerNanos > 0 && bufferCounter.waitingCount > 0
        guard exhausted || now >= expected.earliestDue else {
            // Woken before the earliest linger end (the timer was armed for something earlier): wake then.
            if expected.earliestDue != .max { armLingerTimer(at: expected.earliestDue) }
            return
        }
        var sealed: [(due: UInt64, descriptor: PendingRecord)] = []
        var next = UInt64.max
        var earliest = UInt64.max
        for (key, entry) in expected.entries where !entry.sealedElsewhere {
            guard exhausted || entry.due <= now else {
                next = min(next, entry.due)
                earliest = min(earliest, entry.due)
                continue
            }
            // Due, but its leader is busy: looked at again on the loop iteration after the
            // answer that frees a slot (no timer: that answer wakes the loop).
            guard leaderTakesRequests(key) else {
                earliest = min(earliest, entry.due)
                continue
            }
            if let descriptor = seal(entry) {
                expected.entries[key] = nil
                sealed.append((entry.due, descriptor))
            } else {
                expected.entries[key]!.sealedElsewhere = true
                expected.entries[key]!.due = .max
            }
        }
        expected.earliestDue = earliest
        if next != .max { armLingerTimer(at: next) }
        for (_, descriptor) in sealed.sorted(by: { $0.due < $1.due }) { route(descriptor, now: now) }
    }
}
