/// 128 bytes of nothing, declared between stored properties that different threads write,
/// so they never share a cache line (nor the adjacent line the CPU fetches with it).
///
/// A line written by one core and read by another moves between their caches on every
/// write: fields a producing thread updates per record must not sit beside fields a reactor
/// polls per loop iteration. Swift lays a class's stored properties out in declaration order.
///
/// ```swift
/// final class Counters {
///     let perRecord = Atomic<Int>(0)   // producing threads
///     private let gap = CacheLinePadding()
///     let polled = Atomic<Int>(0)      // read by the reactor on every iteration
/// }
/// ```
public struct CacheLinePadding: Sendable, BitwiseCopyable {
    private let words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    /// The padding (its bytes are never read).
    public init() {
        words = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    }
}
