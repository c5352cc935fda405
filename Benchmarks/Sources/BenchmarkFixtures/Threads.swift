// Threads of their own for the multi-threaded benchmarks (KlifeIO's thread helper is internal).

public import Glibc

/// Starts a joinable pthread running `body`; join it with `pthread_join`.
public func spawnThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Start { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
    let start = Unmanaged.passRetained(Start(body)).toOpaque()
    var handle = pthread_t()
    let rc = pthread_create(&handle, nil, { argument in
        Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue().body()
        return nil
    }, start)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return handle
}
