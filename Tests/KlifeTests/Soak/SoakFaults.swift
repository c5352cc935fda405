import Foundation
import Glibc
@testable import Klife
import KlifeIO
import KlifeProtocol
import KlifeTesting
import Synchronization
import XCTest

final class SoakCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// The latest events of one side of the run (fault actions, the clients' log events), kept
/// in a fixed-size ring and printed when a round fails.
final class SoakEventLog: Sendable {
    private struct State: Sendable {
        var lines: [String] = []
        var next = 0
    }

    private let capacity: Int
    private let started = ContinuousClock.now
    private let state = Locked(State())

    init(capacity: Int = 300) { self.capacity = capacity }

    func append(_ line: String) {
        let stamped = String(format: "%9.3f ", SoakFormat.seconds(ContinuousClock.now - started)) + line
        state.withLock { s in
            if s.lines.count < capacity {
                s.lines.append(stamped)
            } else {
                s.lines[s.next] = stamped
            }
            s.next = (s.next + 1) % capacity
        }
    }

    /// A log handler for a client, its events prefixed with `name`.
    func handler(_ name: String) -> @Sendable (LogEvent) -> Void {
        { [self] event in append("\(name) \(event)") }
    }

    /// The latest `count` lines, oldest first.
    func recent(_ count: Int) -> [String] {
        state.withLock { s in
            let ordered = s.lines.count < capacity ? s.lines : Array(s.lines[s.next...] + s.lines[..<s.next])
            return Array(ordered.suffix(count))
        }
    }
}

// MARK: - Faults

enum SoakFaultPlan: String, Sendable, CaseIterable {
    /// Random kills, plus one stall longer than the request timeout.
    case kills
    /// Stalls of 1.5–2.5 s every 0.4–1.2 s.
    case stalls
    /// Garbled broker answers.
    case garbling
}

/// Runs a round's fault plan on the proxy until cancelled. A stall, once begun, always lasts
/// its full length.
func driveProxyFaults(_ plan: SoakFaultPlan, proxy: FaultProxy, seed: UInt64, round: Duration, counters: SoakCounters) async {
    var random = ChaosRandom(seed: seed)
    func stall() async {
        let length = random.milliseconds(1500...2500)
        proxy.pause()
        counters.stalls.add(1, ordering: .relaxed)
        let until = ContinuousClock.now + length
        while ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(20)) }
        proxy.resume()
    }
    switch plan {
    case .kills:
        proxy.setRandomKills(every: .milliseconds(30) ... .milliseconds(300), seed: seed)
        let roundMs = Int(SoakFormat.seconds(round) * 1000)
        try? await Task.sleep(for: random.milliseconds((roundMs * 3 / 10)...(roundMs * 6 / 10)))
        guard !Task.isCancelled else { return }
        await stall()
    case .stalls:
        for _ in 0..<10_000 {
            try? await Task.sleep(for: random.milliseconds(400...1200))
            guard !Task.isCancelled else { return }
            await stall()
        }
    case .garbling:
        proxy.setRandomGarbling(every: .milliseconds(40) ... .milliseconds(300), seed: seed)
    }
}

/// Drives the mock cluster's faults while its stream produces: leader moves with records in
/// flight, and broker restarts (down, optionally fail-over of its partitions, up) begun with
/// nothing in flight. Every fault starts from a quiet producer (everything answered), so no
/// request is still on its way to a broker that is about to lead its partition again.
final class MockFaults: Sendable {
    private struct State: Sendable {
        var leaders: [Int32]
        var actions = 0
    }

    let mock: MockCluster
    let stream: NumberedStream
    let events: SoakEventLog
    private let counters: SoakCounters
    private let state: Locked<State>

    init(mock: MockCluster, stream: NumberedStream, events: SoakEventLog, counters: SoakCounters) throws {
        self.mock = mock
        self.stream = stream
        self.events = events
        self.counters = counters
        let brokers = Int32(mock.brokerCount)
        let leaders = (0..<stream.partitions).map { Int32($0) % brokers + 1 }
        for (p, broker) in leaders.enumerated() { try mock.leader(stream.topic, Int32(p), broker: broker) }
        state = Locked(State(leaders: leaders))
    }

    /// Produces and injects faults until `deadline`, then waits until everything is answered.
    /// Every third action is a broker restart, the others move leaders.
    func run(_ ledger: StreamLedger, until deadline: ContinuousClock.Instant, seed: UInt64) async -> SoakIssues {
        var issues = SoakIssues()
        var random = ChaosRandom(seed: seed)
        let rate = SoakRates.mockPerSecond
        let brokers = Int32(mock.brokerCount)
        func produce(_ range: ClosedRange<Int>) async {
            let left = deadline - ContinuousClock.now
            await stream.produce(ledger, for: min(random.milliseconds(range), max(left, .milliseconds(50))), perSecond: rate)
        }
        func other(than excluded: Set<Int32>) -> Int32 {
            let candidates = (1...brokers).filter { !excluded.contains($0) }
            return candidates[Int(random.next() % UInt64(candidates.count))]
        }
        func move(_ p: Int, to broker: Int32) throws {
            events.append("mock: partition \(p) leader \(state.withLock { $0.leaders[p] }) → \(broker) (pending \(stream.client.pendingRecordCount))")
            try mock.leader(stream.topic, Int32(p), broker: broker)
            state.withLock { $0.leaders[p] = broker }
            counters.leaderMoves.add(1, ordering: .relaxed)
        }
        do {
            while ContinuousClock.now < deadline {
                await produce(200...800)
                let action = state.withLock { s -> Int in
                    s.actions += 1
                    return s.actions
                }
                if action % 3 != 2 {
                    // Leaders move while records are in flight: the old leader answers what it
                    // wrote and refuses the rest (NOT_LEADER_OR_FOLLOWER); the client retries
                    // those at the new leader, in order.
                    let count = 1 + Int(random.next() % UInt64(stream.partitions))
                    for _ in 0..<count {
                        let p = Int(random.next() % UInt64(stream.partitions))
                        try move(p, to: other(than: [state.withLock { $0.leaders[p] }]))
                    }
                    await produce(200...800)
                } else {
                    // A broker goes down with nothing in flight (the mock would write a resent
                    // request twice: it checks no sequences), stays down while records for its
                    // partitions pile up, maybe hands its partitions to the others, comes back.
                    guard await stream.waitUntilIdle(upTo: .seconds(60)) else {
                        issues.add("stuck", "mock: records unanswered for 60 s before a restart")
                        break
                    }
                    let broker = Int32(1 + random.next() % UInt64(brokers))
                    let led = state.withLock { s in s.leaders.indices.filter { s.leaders[$0] == broker } }
                    events.append("mock: broker \(broker) down (leads \(led))")
                    try mock.down(broker)
                    await produce(300...1500)
                    if random.next() % 2 == 0 {
                        events.append("mock: fail-over of broker \(broker)'s partitions \(led)")
                        for p in led { try move(p, to: other(than: [broker])) }
                        await produce(200...800)
                    }
                    events.append("mock: broker \(broker) up (pending \(stream.client.pendingRecordCount))")
                    try mock.up(broker)
                    counters.brokerRestarts.add(1, ordering: .relaxed)
                    await produce(200...800)
                }
                guard await stream.waitUntilIdle(upTo: .seconds(60)) else {
                    issues.add("stuck", "mock: records unanswered for 60 s after a fault")
                    break
                }
                events.append("mock: idle (\(ledger.snapshot.registered) records so far this round)")
            }
        } catch {
            issues.add("mock command", "\(error)")
            for b in 1...brokers { try? mock.up(b) }
        }
        if !(await stream.waitForCallbacks(ledger, upTo: .seconds(150))) {
            issues.add("not drained", "mock: \(ledger.pending) record(s) without a callback 150 s after the round")
        }
        return issues
    }
}
