import KlifeIO
import Synchronization

/// A topic name interned once for the process: records carry it as a fixed-size handle, so a
/// pending record holds no reference at all (moving, copying or destroying it touches no
/// reference count), and the reactor compares topics by identity instead of by bytes.
///
/// Interned names are never freed: one small object per distinct topic name a process
/// produces to (Kafka clients hold their topic objects for the client's life too).
struct TopicHandle: Sendable, Equatable, CustomStringConvertible {
    /// The interned name, unretained: ``TopicTable`` keeps every one alive for good.
    let interned: Unmanaged<InternedTopic>

    /// The topic's name.
    @inline(__always)
    var name: String { interned._withUnsafeGuaranteedRef { $0.name } }

    /// Whether this is the empty name (the placeholder a vacated or withdrawn ring slot holds).
    @inline(__always)
    var isEmpty: Bool { self == .empty }

    var description: String { name }

    @inline(__always)
    static func == (a: TopicHandle, b: TopicHandle) -> Bool { a.interned.toOpaque() == b.interned.toOpaque() }

    /// The empty name (placeholders; never a real topic: `prepare` refuses empty names).
    static let empty = TopicTable.shared.handle(for: "")
}

/// The object behind a ``TopicHandle``.
final class InternedTopic: Sendable {
    let name: String

    init(_ name: String) { self.name = name }
}

/// The process's interned topic names.
final class TopicTable: Sendable {
    /// The table every client interns into.
    static let shared = TopicTable()

    private let names = Locked<[String: InternedTopic]>([:])
    /// The last name looked up (an ``InternedTopic``'s address, 0 before the first): a producing
    /// thread sending to one topic finds it with one load and one comparison of the name.
    private let last = Atomic<UInt>(0)

    /// The handle of `name`, interning it on first use.
    @inline(__always)
    func handle(for name: String) -> TopicHandle {
        let bits = last.load(ordering: .acquiring)
        if let pointer = UnsafeRawPointer(bitPattern: bits) {
            let recent = Unmanaged<InternedTopic>.fromOpaque(pointer)
            if recent._withUnsafeGuaranteedRef({ $0.name == name }) { return TopicHandle(interned: recent) }
        }
        return intern(name)
    }

    @inline(never)
    private func intern(_ name: String) -> TopicHandle {
        let interned = names.withLock { names -> InternedTopic in
            if let known = names[name] { return known }
            let made = InternedTopic(name)
            names[name] = made
            return made
        }
        let handle = Unmanaged.passUnretained(interned)
        last.store(UInt(bitPattern: handle.toOpaque()), ordering: .releasing)
        return TopicHandle(interned: handle)
    }

    /// Names interned so far (tests).
    var count: Int { names.withLock { $0.count } }
}
