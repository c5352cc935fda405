import CKlifeShim
package import Synchronization

/// A mutex around a value, whose critical sections ThreadSanitizer can see.
///
/// `Synchronization.Mutex` is the lock underneath. Under contention it takes and hands over
/// the lock inside the standard library's futex code, which is not instrumented, so under
/// ThreadSanitizer every access it protects looks like a data race. `Locked` tells the
/// sanitizer about each acquire and release — in builds made by `scripts/sanitize.sh thread`,
/// which defines `KLIFE_TSAN` for the C shim. In every other build the annotations are empty
/// inline C functions and compile to nothing.
///
/// A class, so the mutex lives at one address for its whole life (a futex is its address; a
/// struct around `Mutex` could be moved or borrowed through a temporary), and that address
/// names the lock for the sanitizer. Use it for every lock in the package (never `Mutex`
/// directly), or the sanitizer run reports races that are not there.
package final class Locked<Value: ~Copyable> {
    @usableFromInline
    let mutex: Mutex<Value>

    /// A lock around `value`.
    @inlinable
    package init(_ value: consuming sending Value) {
        mutex = Mutex(value)
    }

    /// Runs `body` with exclusive access to the value.
    @inlinable
    package func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        let name = Unmanaged.passUnretained(self).toOpaque()
        return try mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
            klife_tsan_acquire(name)
            defer { klife_tsan_release(name) }
            return try body(&value)
        }
    }
}

// @unchecked: the value is reached only through the mutex, as with `Mutex` itself.
extension Locked: @unchecked Sendable where Value: ~Copyable {}
