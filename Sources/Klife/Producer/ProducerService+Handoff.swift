import KlifeIO
import Synchronization

/// Keeping each partition's order when records cross reactors (several reactors only).
///
/// Producing threads pick a record's reactor from the metadata snapshot (the reactor owning
/// its leader's connection). When a leader moves to a broker of another reactor, records of
/// the partition chosen with the old snapshot can still be in the old reactor's ring or
/// buffers while newer ones reach the new owner directly; the newer ones must not take
/// sequence numbers first. The rule, for a partition whose owner changed at version `c`:
/// a record chosen with version `r` is routed at its owner only once every reactor has
/// *settled* version `min(r, c)`; until then it is held, in order.
///
///     producing thread:  claim slot in ring R (seq-cst CAS) ─► re-read published version
///                        changed? placeholder into the slot, choose again   (MPSCRing.offer(_:placeholder:stillValid:))
///     reactor X, version v with an owner change:  read published version, then R's claimed count = tail
///        drained(v)  when X popped everything below tail (every record chosen before v), forwarded
///                    to its owner, in order, on the X→owner channel (one task per target per pass)
///        settled(v)  when X has drained(v) from every reactor (so everything they forwarded to X
///                    before it was processed, and passed on, before this message)
///        released    = the lowest settled version over all reactors: records with
///                    min(routedAt, ownerChangedAt) <= released may be routed
///
/// Messages and forwarded records between two reactors travel in one FIFO (tasks submitted
/// by one reactor thread run in order), so `settled(v)` from X arrives after every record X
/// forwarded before it. Sequenced records (already sent once) are never held: the sequence
/// registry keeps them first (``SequenceRegistry/willResend(_:producerID:epoch:)``).
struct HandoffState {
    /// One message or record travelling from one reactor to another.
    enum Item: Sendable {
        case record(PendingRecord)
        case drained(version: UInt64, from: Int)
        case settled(version: UInt64, from: Int)
    }

    /// Items for each reactor, sent as one task per reactor at the end of a pass.
    var outbox: [[Item]]
    /// Records waiting for `released` to reach them, in arrival order.
    var held: [PendingRecord] = []
    /// Own ring: once everything below `tail` is popped, `drained(version)` may be sent.
    var pendingDrain: (version: UInt64, tail: Int)?
    /// Highest `drained` / `settled` version heard from each reactor (this one included).
    var drained: [UInt64]
    var settled: [UInt64]
    /// Records with `min(routedAt, ownerChangedAt)` at or below this may be routed.
    var released: UInt64 = 0

    init(reactorCount: Int) {
        outbox = Array(repeating: [], count: reactorCount)
        drained = Array(repeating: 0, count: reactorCount)
        settled = Array(repeating: 0, count: reactorCount)
    }

    /// Whether a record may be routed at its owner now.
    @inline(__always)
    func mayRoute(routedAt: UInt64, ownerChangedAt: UInt64) -> Bool {
        min(routedAt, ownerChangedAt) <= released
    }
}

extension ProducerService {
    /// Routes a record taken from this reactor's ring: placeholders (slots whose producer
    /// chose again) are skipped, and a record chosen with a newer snapshot than this
    /// reactor's makes it catch up first, so it is never routed with an older view.
    func routeFromRing(_ record: consuming PendingRecord, now: UInt64) {
        if record.topic.isEmpty { return }
        if record.routedAt > snapshot.version { catchUpWithMetadata() }
        route(consume record, now: now)
    }

    /// Installs the published snapshot when it is newer than this reactor's.
    func catchUpWithMetadata() {
        guard let store = metadataStore,
              store.publishedVersion.load(ordering: .sequentiallyConsistent) > snapshot.version else { return }
        hub.apply(store.snapshot, unknownTopics: [])
    }

    /// After installing a snapshot: when a partition changed owner since `previous`, every
    /// record chosen before this version that can still be in the ring is below the ring's
    /// claimed count read now (producers re-check the version after claiming).
    func noteOwnershipChanges(since previous: UInt64) {
        guard handoff != nil else { return }
        let changed = snapshot.routes.values.contains { route in route.ownerChangedAt.contains { $0 > previous } }
        guard changed else { return }
        // The published version was stored before this snapshot could be installed; loading it
        // again (sequentially consistent) orders the count read below after it.
        _ = metadataStore?.publishedVersion.load(ordering: .sequentiallyConsistent)
        handoff!.pendingDrain = (snapshot.version, records.claimedCount)
    }

    /// Whether a record chosen with `routedAt`, of a partition whose owner changed at
    /// `ownerChangedAt`, must wait here (sequenced records never wait).
    @inline(__always)
    func mustHold(routedAt: UInt64, batchBase: Int32, ownerChangedAt: UInt64) -> Bool {
        guard let state = handoff, batchBase < 0 else { return false }
        return !state.mayRoute(routedAt: routedAt, ownerChangedAt: ownerChangedAt)
    }

    /// Keeps a record until ``progressHandoff()`` releases it.
    func hold(_ record: consuming PendingRecord) {
        handoff!.held.append(record)
    }

    /// After a new snapshot: held records of partitions this reactor no longer owns move on
    /// now (before this reactor's `drained` for the snapshot), in order; the rest stay held.
    func rerouteHeld() {
        guard handoff != nil, !handoff!.held.isEmpty else { return }
        let waiting = handoff!.held
        handoff!.held = []
        let now = Reactor.monotonicNanoseconds()
        for r in waiting { route(r, now: now) }
    }

    /// Sends a record to the reactor owning `node`'s connection (in order with every other
    /// record and message this reactor sends it).
    func forward(_ record: consuming PendingRecord, toNode node: Int32) {
        forward(record, toReactor: ReactorHub.index(forNode: node, reactorCount: siblings.count))
    }

    /// Sends a record to reactor `target` (in order with everything else this reactor sends it).
    func forward(_ record: consuming PendingRecord, toReactor target: Int) {
        guard handoff != nil, target != index else {
            route(record, now: Reactor.monotonicNanoseconds())
            return
        }
        handoff!.outbox[target].append(.record(record))
    }

    /// Handles what another reactor sent, in order.
    func receive(_ items: [HandoffState.Item]) {
        guard handoff != nil else {
            for case .record(let r) in items { r.fail(.clientClosed) }
            return
        }
        catchUpWithMetadata()
        let now = Reactor.monotonicNanoseconds()
        for item in items {
            switch item {
            case .record(let r):
                if r.routedAt > snapshot.version { catchUpWithMetadata() }
                route(r, now: now)
            case .drained(let version, let from):
                handoff!.drained[from] = max(handoff!.drained[from], version)
            case .settled(let version, let from):
                handoff!.settled[from] = max(handoff!.settled[from], version)
            }
        }
        progressHandoff()
        for engine in engines { engine?.flushAll(now: now) }
    }

    /// Sends `drained` once the ring is popped past its mark, `settled` once every reactor
    /// drained, releases held records once every reactor settled, and sends the outbox.
    func progressHandoff() {
        guard handoff != nil else { return }
        if let pending = handoff!.pendingDrain, records.consumedCount - pending.tail >= 0 {
            handoff!.pendingDrain = nil
            handoff!.drained[index] = max(handoff!.drained[index], pending.version)
            broadcast(.drained(version: pending.version, from: index))
        }
        let allDrained = handoff!.drained.min() ?? 0
        if allDrained > handoff!.settled[index] {
            handoff!.settled[index] = allDrained
            broadcast(.settled(version: allDrained, from: index))
        }
        let released = handoff!.settled.min() ?? 0
        if released > handoff!.released {
            handoff!.released = released
            let waiting = handoff!.held
            handoff!.held = []
            let now = Reactor.monotonicNanoseconds()
            // Stable by the version each record was chosen with: one thread's records keep
            // their order (a thread sees versions only grow), older choices go first.
            for r in waiting.enumerated().sorted(by: { ($0.element.routedAt, $0.offset) < ($1.element.routedAt, $1.offset) }) {
                route(r.element, now: now)
            }
        }
        sendOutbox()
    }

    private func broadcast(_ item: HandoffState.Item) {
        for i in siblings.indices where i != index { handoff!.outbox[i].append(item) }
    }

    /// One task per reactor with everything queued for it, in order.
    func sendOutbox() {
        guard handoff != nil else { return }
        for i in siblings.indices where !handoff!.outbox[i].isEmpty {
            let items = handoff!.outbox[i]
            handoff!.outbox[i] = []
            let target = siblings[i]
            target.hub.reactor.submit { target.receive(items) }
        }
    }

    /// Fails held and not yet sent records (client shutdown).
    func failHandoffRecords(_ error: KlifeError) {
        guard let state = handoff else { return }
        for r in state.held { r.fail(error) }
        for items in state.outbox { for case .record(let r) in items { r.fail(error) } }
        handoff = nil
    }
}
