import CKlifeShim
import Klife
import KlifeIO
import Synchronization
import Glibc

/// The open-loop (fixed offered load) form of `klife bench produce`: `--rate N`.
///
/// Record `i` is *scheduled* at `start + i / N` seconds. A dedicated generator thread
/// produces every record whose scheduled time has passed, then sleeps until the next one
/// (at least ``minimumSleepNanoseconds``, so it wakes at most 20,000 times a second
/// instead of spinning a core at high rates). Each record's latency runs from its
/// *scheduled* time to its acknowledgement, so a producer that stalls — a full buffer, a
/// slow call, a late wake-up — shows the delay in the latency of every record it held back
/// instead of hiding it (no coordinated omission). Every record is timed. Records
/// scheduled in the first ``warmupSeconds`` are produced but not counted.
///
/// The generator calls the non-suspending ``KlifeClient/produce(_:onDelivery:)`` from a
/// plain thread: the schedule is kept with `clock_nanosleep`, independent of Swift's
/// cooperative executor (an `enqueue` loop would need a task, and a task can only wait
/// with `Task.sleep`, whose wake-ups are coarser, or by blocking a pool thread the
/// client's own tasks use). When that call refuses a record because the buffer is full
/// (`bufferFull`), the generator retries the same record after a short sleep; its latency
/// still counts from its scheduled time — the librdkafka peer handles `QUEUE_FULL` alike.
struct OpenLoopProduce {
    /// Records scheduled before this many seconds after the start are not measured.
    static let warmupSeconds = 0.5
    /// The generator never sleeps for less than this: records that fall due meanwhile are
    /// produced together when it wakes (their lateness counts in their latency).
    static let minimumSleepNanoseconds: UInt64 = 50_000
    /// Timer slack asked for on the generator thread (the kernel default is 50 µs).
    static let generatorTimerSlackNanoseconds = 1_000

    let run: ProduceRun
    /// Offered load, records per second.
    let rate: Int
    /// Records in the measured section (after the warm-up).
    let measured: Int

    /// Records produced in the warm-up.
    var warmupCount: Int { Int(Double(rate) * Self.warmupSeconds) }

    /// Runs the schedule and waits for every acknowledgement.
    /// - Parameters:
    ///   - partitions: the topic's partition count, for the result line.
    ///   - threads: print per-thread CPU of the measured section on stderr.
    /// - Returns: the result line's numbers (the caller adds the configuration fields).
    func execute(partitions: Int, threads: Bool) async throws -> BenchResult {
        let warmup = warmupCount
        let total = warmup + measured
        let recorder = OpenLoopRecorder(count: total)
        // A moment to start the thread before the first record is due.
        let start = BenchSupport.monotonicNanoseconds() + 1_000_000
        let schedule = OpenLoopSchedule(start: start, rate: UInt64(rate))
        let generator = try GeneratorThread.start { [run] in
            Self.generate(run: run, schedule: schedule, total: total, warmup: warmup, recorder: recorder)
        }
        // Per-thread CPU is read from /proc (too slow for the generator's schedule): take
        // it here, close to where the measured section starts.
        var threadsBefore: [Int: (name: String, nanoseconds: UInt64)] = [:]
        if threads {
            let boundary = schedule.time(of: warmup)
            let now = BenchSupport.monotonicNanoseconds()
            if boundary > now { try await Task.sleep(for: .nanoseconds(Int64(boundary - now))) }
            threadsBefore = BenchSupport.threadCPU()
        }
        let finished = await recorder.waitUntilFinished(total: total, timeoutAfterGenerator: 60_000_000_000)
        let cpuEnd = BenchSupport.processCPUNanoseconds()
        // A generator still running (only after a timeout) is left behind: the process exits.
        if recorder.generatorDone.load(ordering: .acquiring) { generator.join() }
        if threads {
            BenchSupport.printThreadCPU(BenchSupport.threadCPUDelta(threadsBefore, BenchSupport.threadCPU()), records: measured)
        }
        let failed = recorder.failed.load(ordering: .acquiring)
        if failed > 0 || !finished {
            let completed = recorder.completed.load(ordering: .acquiring)
            let first = recorder.firstError.withLock { $0 }.map { ": first error: \($0)" } ?? ""
            throw CommandFailure("\(failed) of \(total) records failed, \(total - completed) never completed\(first)")
        }
        let latencies = recorder.latencies(from: warmup, to: total)
        let measuredStart = schedule.time(of: warmup)
        var lastAcknowledged = measuredStart
        for (offset, latency) in latencies.enumerated() {
            lastAcknowledged = max(lastAcknowledged, schedule.time(of: warmup + offset) &+ latency)
        }
        let lag = recorder.sendLag.withLock { $0 }
        var result = BenchResult(mode: "produce", records: measured, recordSize: run.template.count, partitions: partitions,
                                 nanoseconds: lastAcknowledged - measuredStart,
                                 cpuNanoseconds: cpuEnd - min(cpuEnd, recorder.cpuAtMeasuredStart.load(ordering: .acquiring)),
                                 bytes: measured * run.template.count, latencies: latencies.sorted())
        result.extra = [
            ("target_rate", String(rate)),
            ("send_lag_mean_us", Format.fixed(lag.count > 0 ? Double(lag.sum) / Double(lag.count) / 1000 : 0, digits: 1)),
            ("send_lag_max_us", Format.fixed(Double(lag.max) / 1000, digits: 1)),
        ]
        return result
    }

    /// The generator thread's loop: produce what is due, sleep, repeat.
    private static func generate(run: ProduceRun, schedule: OpenLoopSchedule, total: Int, warmup: Int,
                                 recorder: OpenLoopRecorder) {
        OpenLoopPacing.reduceTimerSlack(to: generatorTimerSlackNanoseconds)
        var lag = SendLag()
        var index = 0
        while index < total {
            let now = BenchSupport.monotonicNanoseconds()
            while index < total && schedule.time(of: index) <= now {
                if index == warmup {
                    recorder.cpuAtMeasuredStart.store(BenchSupport.processCPUNanoseconds(), ordering: .releasing)
                }
                let sentAt = produce(run: run, index: index, scheduledAt: schedule.time(of: index), recorder: recorder)
                if index >= warmup { lag.add(sentAt - schedule.time(of: index)) }
                index += 1
            }
            guard index < total else { break }
            let awake = BenchSupport.monotonicNanoseconds()
            let next = schedule.time(of: index)
            if next > awake { OpenLoopPacing.sleep(until: max(next, awake + minimumSleepNanoseconds)) }
        }
        recorder.sendLag.withLock { $0 = lag }
        recorder.generatorDone.store(true, ordering: .releasing)
    }

    /// Produces record `index`, retrying after a short sleep while the buffer is full.
    /// - Returns: when the record was handed to the client.
    private static func produce(run: ProduceRun, index: Int, scheduledAt: UInt64, recorder: OpenLoopRecorder) -> UInt64 {
        while true {
            let sentAt = BenchSupport.monotonicNanoseconds()
            let onDelivery: @Sendable (Result<RecordMetadata, KlifeError>) -> Void = { result in
                recorder.complete(index, scheduledAt: scheduledAt, result)
            }
            if run.borrowed {
                run.withValueBytes(index) { run.client.produce(topic: run.topic, value: $0, onDelivery: onDelivery) }
            } else {
                run.client.produce(ProducerRecord(topic: run.topic, value: run.value(index)), onDelivery: onDelivery)
            }
            // `bufferFull` is reported synchronously, on this thread, before `produce` returns.
            guard recorder.refused.exchange(false, ordering: .relaxed) else { return sentAt }
            OpenLoopPacing.sleep(until: BenchSupport.monotonicNanoseconds() + minimumSleepNanoseconds)
        }
    }
}

/// When each record of an open-loop run is due.
struct OpenLoopSchedule: Sendable {
    /// Monotonic nanoseconds at which record 0 is due.
    let start: UInt64
    /// Records per second.
    let rate: UInt64

    /// The scheduled time of record `index` (`start + index / rate` seconds).
    @inline(__always)
    func time(of index: Int) -> UInt64 {
        start &+ UInt64(index) &* 1_000_000_000 / rate
    }
}

/// How late the generator handed records to the client, relative to their schedule.
struct SendLag: Sendable {
    var count = 0
    var sum: UInt64 = 0
    var max: UInt64 = 0

    mutating func add(_ lag: UInt64) {
        count += 1
        sum &+= lag
        max = Swift.max(max, lag)
    }
}

/// Per-record outcomes of an open-loop run, written from reactor threads.
///
/// `@unchecked Sendable`: the latency slots are a preallocated buffer in which each
/// record's callback writes only its own slot, exactly once; the slots are read only after
/// `completed` (released by every writer) has reached the record count.
final class OpenLoopRecorder: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<UInt64>
    private let count: Int
    let completed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    /// Set by a callback that saw `bufferFull` (the generator retries that record).
    let refused = Atomic<Bool>(false)
    let generatorDone = Atomic<Bool>(false)
    /// Process CPU when the first measured record was produced.
    let cpuAtMeasuredStart = Atomic<UInt64>(0)
    let firstError = Locked<KlifeError?>(nil)
    let sendLag = Locked(SendLag())

    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: max(count, 1))
        slots.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { slots.deallocate() }

    /// Records record `index`'s outcome: its scheduled-time→acknowledgement latency.
    @inline(__always)
    func complete(_ index: Int, scheduledAt: UInt64, _ result: Result<RecordMetadata, KlifeError>) {
        let now = BenchSupport.monotonicNanoseconds()
        if case .failure(let error) = result {
            if error.code == .bufferFull {
                refused.store(true, ordering: .relaxed)
                return
            }
            failed.wrappingAdd(1, ordering: .relaxed)
            firstError.withLock { if $0 == nil { $0 = error } }
        }
        slots[index] = now &- scheduledAt
        completed.wrappingAdd(1, ordering: .releasing)
    }

    /// Waits until the generator finished and every record completed, or
    /// `timeoutAfterGenerator` nanoseconds after the generator finished.
    /// - Returns: whether every record completed.
    func waitUntilFinished(total: Int, timeoutAfterGenerator: UInt64) async -> Bool {
        var deadline = UInt64.max
        while completed.load(ordering: .acquiring) < total || !generatorDone.load(ordering: .acquiring) {
            if deadline == .max && generatorDone.load(ordering: .acquiring) {
                deadline = BenchSupport.monotonicNanoseconds() + timeoutAfterGenerator
            }
            if BenchSupport.monotonicNanoseconds() > deadline { return false }
            do { try await Task.sleep(for: .milliseconds(1)) } catch { return false }
        }
        return true
    }

    /// The latencies of records `from..<to` in record order (call after every record completed).
    func latencies(from: Int, to: Int) -> [UInt64] {
        precondition(completed.load(ordering: .acquiring) >= count && 0 <= from && from <= to && to <= count)
        return Array(UnsafeBufferPointer(start: slots + from, count: to - from))
    }
}

/// Sleeping for the generator: absolute-deadline `clock_nanosleep` with a small timer slack.
enum OpenLoopPacing {
    /// Sleeps until the monotonic clock reads `deadline` nanoseconds.
    static func sleep(until deadline: UInt64) {
        var target = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &target, nil) == EINTR {}
    }

    /// Lowers the calling thread's timer slack (how late the kernel may wake a sleeper so it
    /// can batch wake-ups; 50 µs by default) with `prctl(PR_SET_TIMERSLACK)`, through the C
    /// shim because `prctl` is variadic. Best effort: on failure the default stays.
    static func reduceTimerSlack(to nanoseconds: Int) {
        _ = klife_set_current_timer_slack(UInt(nanoseconds))
    }
}

/// A joinable plain pthread for the generator (kept off Swift's cooperative pool).
struct GeneratorThread {
    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    private let handle: pthread_t

    /// Starts `body` on a new thread named `klife-bench-gen`.
    static func start(_ body: @escaping @Sendable () -> Void) throws -> GeneratorThread {
        let argument = Unmanaged.passRetained(Body(body)).toOpaque()
        var handle = pthread_t()
        let rc = pthread_create(&handle, nil, { argument in
            let body = Unmanaged<Body>.fromOpaque(argument!).takeRetainedValue()
            let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
            if fd >= 0 {
                _ = Array("klife-bench-gen".utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
            }
            body.run()
            return nil
        }, argument)
        guard rc == 0 else {
            Unmanaged<Body>.fromOpaque(argument).release()
            throw CommandFailure("cannot start the generator thread: pthread_create returned \(rc)")
        }
        return GeneratorThread(handle: handle)
    }

    /// Waits for the thread to end (call once its work is known to be done: it blocks).
    func join() { pthread_join(handle, nil) }
}
