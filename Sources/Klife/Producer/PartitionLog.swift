import Glibc
import KlifeIO
import KlifeProtocol
import Synchronization

/// One partition's open ``ProducerBlock`` for one producer session: producing threads append
/// records to it under its lock, in their wire form, and hand it to the reactor when it is full;
/// the reactor seals it when its linger ends (or sooner, when it must).
///
/// Order (docs/DESIGN.md, "Records appended on the producing thread"): whatever hands a block
/// to the reactor — the *notice* that a block was opened, the *descriptor* of a block sealed
/// because it was full — is pushed into the reactor's ring while the lock is held. Anyone who
/// appended to a block therefore pushes anything later (a record that takes the ring path)
/// behind that block's notice; the reactor, which seals only blocks whose notice it has seen,
/// puts such a record behind the block.
final class PartitionLog: @unchecked Sendable {
    let topic: TopicHandle
    let partition: Int32
    /// The lock: a flag taken with one compare-and-swap and given back with one store (held
    /// for an append, a few tens of nanoseconds).
    private let held = Atomic<Bool>(false)
    /// The open block, retained while open (guarded by the lock).
    @exclusivity(unchecked) private var openBlock: Unmanaged<ProducerBlock>?

    init(topic: TopicHandle, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// Runs `body` with the lock held, on the open block (`nil` when none); `body` may replace
    /// it (the log retains the block it is given and gives up the one it drops).
    @inline(__always)
    func withOpenBlock<R>(_ body: (inout Unmanaged<ProducerBlock>?) -> R) -> R {
        lock()
        defer { unlock() }
        return body(&openBlock)
    }

    @inline(__always)
    private func lock() {
        if _fastPath(held.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged) { return }
        lockContended()
    }

    /// Spins briefly (the holder is appending a record), then yields the CPU between attempts.
    @inline(never)
    private func lockContended() {
        var attempts = 0
        while true {
            if !held.load(ordering: .relaxed),
               held.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
                return
            }
            attempts += 1
            if attempts > 64 { sched_yield() }
        }
    }

    @inline(__always)
    private func unlock() {
        held.store(false, ordering: .releasing)
    }

    /// Where opening `generation` of `block`, announced for this log, stands.
    func state(of block: ProducerBlock, opening generation: UInt32) -> BlockState {
        withOpenBlock { open in
            if open?.toOpaque() == Unmanaged.passUnretained(block).toOpaque() && block.generation == generation { return .open }
            return block.wasHandedOver(opening: generation) ? .handedOver : .gone
        }
    }

    /// Where an announced block stands when its notice is read.
    enum BlockState {
        /// Still open in its log: the reactor may seal it.
        case open
        /// Sealed by a producing thread: its descriptor follows in the ring.
        case handedOver
        /// Failed and dropped since (shutdown, an aborted transaction): nothing follows.
        case gone
    }

    /// Seals the open block if it is `expected` (the reactor's known one), taking it from
    /// the log. - Returns: the block (the log's reference passed on), or `nil` when a
    /// producing thread sealed it first.
    func seal(ifOpen expected: ProducerBlock) -> Unmanaged<ProducerBlock>? {
        withOpenBlock { open -> Unmanaged<ProducerBlock>? in
            guard let current = open, current.toOpaque() == Unmanaged.passUnretained(expected).toOpaque() else { return nil }
            open = nil
            return current
        }
    }

    /// Takes whatever block is open (shutdown: its records are failed), with the log's reference.
    func takeOpen() -> Unmanaged<ProducerBlock>? {
        withOpenBlock { open -> Unmanaged<ProducerBlock>? in
            defer { open = nil }
            return open
        }
    }
}

/// A topic's partition logs for one session, with the partition count they were made for.
/// Immutable: a grown partition count gets a new `TopicLogs` reusing the existing logs.
final class TopicLogs: Sendable {
    let topic: TopicHandle
    /// The metadata version the partition count was read at.
    let version: UInt64
    let partitionCount: Int32
    /// One log per partition.
    let logs: [PartitionLog]
    /// The same, lent (`logs` keeps them): reading one takes no reference.
    let unretainedLogs: [Unmanaged<PartitionLog>]

    init(topic: TopicHandle, version: UInt64, partitionCount: Int32, reusing previous: TopicLogs?) {
        self.topic = topic
        self.version = version
        self.partitionCount = partitionCount
        var logs = previous?.logs ?? []
        if logs.count > Int(partitionCount) { logs.removeLast(logs.count - Int(partitionCount)) }
        while logs.count < Int(partitionCount) { logs.append(PartitionLog(topic: topic, partition: Int32(logs.count))) }
        self.logs = logs
        unretainedLogs = logs.map { Unmanaged.passUnretained($0) }
    }
}

/// The partition logs of one producer session, by topic.
///
/// Producing threads find a topic's logs with an atomic load and an identity comparison per
/// slot among the last four topics looked up (``RecentObjects``), else under the table's lock. Every
/// ``TopicLogs`` ever made stays alive as long as the table (a producing thread may still be
/// reading one that was replaced): one small object per topic and partition-count change.
final class PartitionLogTable: Sendable {
    private struct State {
        var current: [UInt: TopicLogs] = [:]
        var retired: [TopicLogs] = []
    }

    private let state = Locked(State())
    private let recent = RecentObjects()

    /// The logs of `topic` made at metadata `version`, if the table has them.
    @inline(__always)
    func logs(for topic: TopicHandle, version: UInt64) -> Unmanaged<TopicLogs>? {
        recent.first(as: TopicLogs.self) { $0.topic == topic && $0.version == version }
    }

    /// The logs of `topic` for `partitionCount` partitions as of metadata `version`, made or
    /// refreshed (keeping the logs of existing partitions) when the table has none for it.
    func logs(for topic: TopicHandle, version: UInt64, partitionCount: Int32) -> Unmanaged<TopicLogs> {
        let key = UInt(bitPattern: topic.interned.toOpaque())
        let logs = state.withLock { state -> TopicLogs in
            let previous = state.current[key]
            if let previous, previous.version >= version { return previous }
            let made = TopicLogs(topic: topic, version: version, partitionCount: partitionCount, reusing: previous)
            if let previous { state.retired.append(previous) }
            state.current[key] = made
            return made
        }
        recent.remember(Unmanaged.passUnretained(logs))
        return Unmanaged.passUnretained(logs)
    }

    /// The log of `topic`'s `partition`, if the table has it (a reactor, once per block notice).
    func log(topic: TopicHandle, partition: Int32) -> PartitionLog? {
        let key = UInt(bitPattern: topic.interned.toOpaque())
        return state.withLock { state in
            guard let logs = state.current[key], partition >= 0, Int(partition) < logs.logs.count else { return nil }
            return logs.logs[Int(partition)]
        }
    }

    /// Every partition log of every topic (shutdown, tests).
    var allLogs: [PartitionLog] {
        state.withLock { state in state.current.values.flatMap(\.logs) }
    }
}
