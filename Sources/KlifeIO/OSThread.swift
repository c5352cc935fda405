import CKlifeShim
import Glibc

/// Plain pthreads for the reactor loop and the resolver, without Foundation.
enum OSThread {
    /// The body handed to the new thread; retained across `pthread_create` by `Unmanaged`.
    private final class Start {
        let name: String
        let body: () -> Void
        init(name: String, body: @escaping () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Starts a thread running `body`.
    /// - Parameters:
    ///   - name: Thread name as shown by `top -H`/`gdb`; truncated to 15 bytes (the kernel limit).
    ///   - detached: When `true` the thread cleans up on its own and must not be joined.
    ///   - body: What the thread runs.
    /// - Returns: The pthread handle (join it with ``join(_:)`` unless detached).
    /// - Throws: ``IOError`` with `pthread_create`'s error code (e.g. EAGAIN: no more threads).
    static func spawn(name: String, detached: Bool, _ body: @escaping @Sendable () -> Void) throws(IOError) -> pthread_t {
        let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var handle = pthread_t()
        let rc = pthread_create(&handle, nil, { argument in
            let start = Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue()
            OSThread.setCurrentName(start.name)
            start.body()
            return nil
        }, start)
        guard rc == 0 else {
            Unmanaged<Start>.fromOpaque(start).release()
            throw IOError(.syscall(name: "pthread_create", errno: rc))
        }
        if detached { pthread_detach(handle) }
        return handle
    }

    /// Waits for a joinable thread to finish.
    static func join(_ handle: pthread_t) {
        let rc = pthread_join(handle, nil)
        precondition(rc == 0, "pthread_join failed: \(IOError.message(forErrno: rc))")
    }

    /// The calling thread's handle.
    static var current: pthread_t { pthread_self() }

    /// Names the calling thread (at most 15 UTF-8 bytes are kept, the kernel's limit).
    /// `pthread_setname_np` is a GNU extension Swift's Glibc module does not export, so
    /// this writes `/proc/thread-self/comm`, which is what that function does on Linux.
    static func setCurrentName(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        Posix.close(fd)
    }

    /// Pins the calling thread to `cpus` (the shim's `sched_setaffinity` wrapper).
    /// - Returns: 0 or the errno from `sched_setaffinity`.
    static func pinCurrent(to cpus: [Int]) -> Int32 {
        let ids = cpus.map { Int32(truncatingIfNeeded: $0) }
        return ids.withUnsafeBufferPointer { klife_pin_current_thread($0.baseAddress, Int32($0.count)) }
    }

    /// The CPU ids the calling thread may run on, ascending (the kernel's
    /// `Cpus_allowed_list`, i.e. what `sched_getaffinity` reports; that function is a GNU
    /// extension Swift's Glibc module does not export).
    static func currentAffinity() -> [Int] {
        allowedCPUs(statusFile: "/proc/thread-self/status") ?? []
    }

    /// Checks a CPU affinity list before a thread is started.
    /// - Returns: `nil` when every id exists and this process may run on it, else why not.
    static func affinityProblem(_ cpus: [Int]) -> String? {
        if cpus.isEmpty { return "cpuAffinity is empty" }
        let configured = Int(klife_cpu_count())
        let allowed = allowedCPUs(statusFile: "/proc/self/status")
        for cpu in cpus {
            if cpu < 0 || cpu >= configured {
                return "cpuAffinity contains CPU \(cpu), but CPU ids on this machine are 0..<\(configured)"
            }
            if let allowed, !allowed.contains(cpu) {
                return "cpuAffinity contains CPU \(cpu), which this process may not use (allowed: \(allowed))"
            }
        }
        return nil
    }

    /// Parses `Cpus_allowed_list:` (e.g. `0-3,8,10-11`) from a `/proc/.../status` file.
    static func allowedCPUs(statusFile path: String) -> [Int]? {
        guard let text = readSmallFile(path),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return nil }
        return parseCPUList(line.dropFirst("Cpus_allowed_list:".count))
    }

    /// Parses a kernel CPU list such as `0-3,8`.
    static func parseCPUList(_ list: Substring) -> [Int]? {
        var cpus: [Int] = []
        for part in list.split(separator: ",") {
            let bounds = part.split(separator: "-").map { Int($0.trimmingWhitespace()) }
            guard let low = bounds.first ?? nil, let high = bounds.last ?? nil, bounds.count <= 2, low <= high
            else { return nil }
            cpus.append(contentsOf: low...high)
        }
        return cpus
    }

    /// Reads a small text file (procfs) with plain syscalls.
    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Posix.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { bytes.append(contentsOf: chunk.prefix(n)); continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" { s.removeLast() }
        return s
    }
}
