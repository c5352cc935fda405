/// Stops the fuzzer with `message` when an invariant of a decoder's result fails.
///
/// A decoder may reject any input; what it accepts must still make sense (counts match
/// what was decoded, sizes add up). `fatalError` is kept in release builds, so libFuzzer
/// records the input as a crash like any trap.
@inline(never)
public func fuzzCheck(_ condition: Bool, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError("fuzz invariant: \(message())", file: file, line: line) }
}

extension UnsafeRawBufferPointer {
    /// The bytes after the first `n` (empty when there are fewer).
    @inlinable
    public func dropping(_ n: Int) -> UnsafeRawBufferPointer {
        n >= count ? UnsafeRawBufferPointer(start: nil, count: 0) : UnsafeRawBufferPointer(rebasing: self[n...])
    }
}
