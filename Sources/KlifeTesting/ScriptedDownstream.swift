public import Klife
import KlifeIO

/// A downstream for flow-control tests: a handler writes batches to it, it behaves as its
/// script says call by call (deterministic: by call number, never by wall-clock time), and it
/// keeps every record written, in order, for ``check(expected:duplicates:)``.
///
/// ```swift
/// let gate = DownstreamGate()
/// let downstream = ScriptedDownstream([
///     .succeed,
///     .delay(.milliseconds(200)),            // a slow insert
///     .fail("deadlock detected"),            // the whole batch fails: the consumer retries it
///     .hold(gate),                           // waits until the test opens the gate
///     .action { proxy.killAllConnections() } // commits and fetches in flight fail
/// ])
/// try await consumer.run { batch in try await downstream.write(batch) }
/// …
/// let report = downstream.check(expected: [tp: 0..<1_000])
/// XCTAssertTrue(report.isClean, "\(report)")
/// ```
public final class ScriptedDownstream: Sendable {
    /// What one call of ``write(_:)`` does.
    public enum Step: Sendable {
        /// Writes the batch.
        case succeed
        /// Waits, then writes the batch (a slow downstream).
        case delay(Duration)
        /// Throws ``DownstreamFailure`` and writes nothing (the whole batch failed).
        case fail(String)
        /// Writes the records `accept` takes and throws ``DownstreamFailure`` naming the others'
        /// offsets, as a bulk write that rejects some rows after committing the rest would.
        case rejectRecords(String, accept: @Sendable (ConsumerRecord) -> Bool)
        /// Waits until `gate` opens, then writes the batch (a partition revoked mid-batch: the
        /// test rebalances while the handler is held here).
        case hold(DownstreamGate)
        /// Runs `action` (kill connections, start another member, …), then writes the batch.
        case action(@Sendable () async -> Void)
    }

    /// A record the downstream took.
    public struct Written: Sendable, Hashable {
        /// Where it was read.
        public var topicPartition: TopicPartition
        /// Its offset.
        public var offset: Int64
        /// The call of ``write(_:)`` that wrote it (1-based).
        public var call: Int
    }

    private struct State {
        var calls = 0
        var written: [Written] = []
    }

    private let script: [Step]
    private let afterScript: Step
    private let state = Locked(State())

    /// A downstream following `script`, one step per call, then `afterScript` for every call
    /// after it.
    public init(_ script: [Step], afterScript: Step = .succeed) {
        self.script = script
        self.afterScript = afterScript
    }

    /// Takes `batch` as the script's next step says.
    /// - Throws: ``DownstreamFailure`` for a failing step.
    public func write(_ batch: ConsumerBatch) async throws {
        let call = state.withLock { s -> Int in
            s.calls += 1
            return s.calls
        }
        let step = call <= script.count ? script[call - 1] : afterScript
        switch step {
        case .succeed:
            break
        case .delay(let duration):
            try? await Task.sleep(for: duration)
        case .fail(let reason):
            throw DownstreamFailure(reason: reason, call: call, rejected: batch.records.map(\.offset))
        case .rejectRecords(let reason, let accept):
            let rejected = batch.records.filter { !accept($0) }.map(\.offset)
            record(batch.records.filter(accept), of: batch, call: call)
            if !rejected.isEmpty { throw DownstreamFailure(reason: reason, call: call, rejected: rejected) }
            return
        case .hold(let gate):
            await gate.wait()
        case .action(let action):
            await action()
        }
        record(Array(batch.records), of: batch, call: call)
    }

    private func record(_ records: [ConsumerRecord], of batch: ConsumerBatch, call: Int) {
        state.withLock { s in
            for r in records { s.written.append(Written(topicPartition: batch.topicPartition, offset: r.offset, call: call)) }
        }
    }

    /// Calls of ``write(_:)`` so far.
    public var calls: Int { state.withLock { $0.calls } }

    /// Every record written, in the order it was written.
    public var written: [Written] { state.withLock { $0.written } }

    /// Compares what was written with `expected` (the offsets each partition must have): lost
    /// records, records written more than once, and records written out of their partition's
    /// offset order (a record's first write before an earlier offset's first write).
    /// - Parameters:
    ///   - expected: The offsets each partition must have been written with.
    ///   - duplicates: whether a second write counts against ``FlowCheck/isClean``
    ///     (`.forbidden`) or is only reported (`.allowed`, for at-least-once scenarios such as a
    ///     revoke that outlives its timeout).
    public func check(expected: [TopicPartition: Range<Int64>], duplicates: FlowCheck.Duplicates = .forbidden) -> FlowCheck {
        FlowCheck(written: written, expected: expected, duplicates: duplicates)
    }
}

/// A downstream call failed (thrown by ``ScriptedDownstream/write(_:)``).
public struct DownstreamFailure: Error, Sendable, CustomStringConvertible {
    /// The script's reason.
    public var reason: String
    /// Which call failed (1-based).
    public var call: Int
    /// Offsets of the records not written.
    public var rejected: [Int64]
    /// A one-line description.
    public var description: String { "downstream call \(call) failed: \(reason) (\(rejected.count) records not written)" }
}

/// A gate a ``ScriptedDownstream/Step/hold(_:)`` step waits at until the test opens it.
public final class DownstreamGate: Sendable {
    private struct State {
        var open = false
        var waiting: [CheckedContinuation<Void, Never>] = []
        var arrivals = 0
    }
    private let state = Locked(State())

    /// A closed gate.
    public init() {}

    /// Opens the gate: every call waiting at it goes on, and later ones do not wait.
    public func open() {
        let waiting = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiting.removeAll() }
            return s.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    /// How many calls reached the gate so far.
    public var arrivals: Int { state.withLock { $0.arrivals } }

    /// Waits until the gate is open.
    public func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let go = state.withLock { s -> Bool in
                s.arrivals += 1
                if s.open { return true }
                s.waiting.append(continuation)
                return false
            }
            if go { continuation.resume() }
        }
    }
}
