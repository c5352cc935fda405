import KlifeIO
import Glibc

/// A child process started with `posix_spawn`, with an empty signal mask and default
/// signal handlers.
///
/// Foundation's `Process` passes on the signal mask of whatever thread launches it; from
/// a Swift concurrency worker that mask blocks SIGTERM, and the broker then ignores a
/// polite stop. Spawning with `POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF` makes
/// SIGTERM work no matter which thread starts the broker.
///
/// With `ownProcessGroup` the child leads a new process group and signals go to the whole
/// group, so children it forks (socat's per-connection processes) stop with it.
final class BrokerProcess: Sendable {
    let pid: Int32
    private let ownProcessGroup: Bool
    private let exited = Locked(false)

    private init(pid: Int32, ownProcessGroup: Bool) {
        self.pid = pid
        self.ownProcessGroup = ownProcessGroup
    }

    /// The `kill` target: the child, or its whole process group.
    private var signalTarget: Int32 { ownProcessGroup ? -pid : pid }

    /// Starts `path` with `arguments`, stdout and stderr appended to `logPath`, stdin from /dev/null.
    static func spawn(_ path: String, arguments: [String], environment: [String: String],
                      logPath: String, ownProcessGroup: Bool = false) throws -> BrokerProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard code == 0 else {
            throw TestBrokerError(description: "starting \(path) failed: \(String(cString: strerror(code)))")
        }
        let process = BrokerProcess(pid: pid, ownProcessGroup: ownProcessGroup)
        BrokerReaper.shared.track(process.signalTarget)
        return process
    }

    /// Whether the child is still alive (reaps it if it has exited).
    var isRunning: Bool {
        exited.withLock { done in
            if done { return false }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { done = true }
            return !done
        }
    }

    /// SIGTERM, wait up to 3 s, then SIGKILL; reaps the child. Idempotent.
    func stop() {
        guard isRunning else { return }
        kill(signalTarget, SIGTERM)
        for _ in 0..<300 {
            if !isRunning { break }
            usleep(10_000)
        }
        exited.withLock { done in
            guard !done else { return }
            kill(signalTarget, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            done = true
        }
        BrokerReaper.shared.untrack(signalTarget)
    }
}
