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
    /// The last four names looked up (``InternedTopic`` addresses, 0 while empty), replaced in
    /// turn: producing threads sending to a few topics find them with a load and a comparison
    /// of the name each, without the lock and the hashing of the table.
    private let recent0 = Atomic<UInt>(0)
    private let recent1 = Atomic<UInt>(0)
    private let recent2 = Atomic<UInt>(0)
    private let recent3 = Atomic<UInt>(0)
    /// Which of the recent slots the next miss replaces.
    private let nextRecent = Atomic<UInt>(0)

    /// The handle of `name`, interning it on first use.
    @inline(__always)
    func handle(for name: String) -> TopicHandle {
        if let found = Self.match(recent0, name) ?? Self.match(recent1, name) ?? Self.match(recent2, name)
            ?? Self.match(recent3, name) {
            return found
        }
        return intern(name)
    }

    /// The handle in `slot` if it names `name`.
    @inline(__always)
    private static func match(_ slot: borrowing Atomic<UInt>, _ name: String) -> TopicHandle? {
        guard let pointer = UnsafeRawPointer(bitPattern: slot.load(ordering: .acquiring)) else { return nil }
        let interned = Unmanaged<InternedTopic>.fromOpaque(pointer)
        return interned._withUnsafeGuaranteedRef { $0.name == name } ? TopicHandle(interned: interned) : nil
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
        // Published with release ordering: a reader that loads the address sees the whole object.
        let bits = UInt(bitPattern: handle.toOpaque())
        switch nextRecent.add(1, ordering: .relaxed).oldValue & 3 {
        case 0: recent0.store(bits, ordering: .releasing)
        case 1: recent1.store(bits, ordering: .releasing)
        case 2: recent2.store(bits, ordering: .releasing)
        default: recent3.store(bits, ordering: .releasing)
        }
        return TopicHandle(interned: handle)
    }

    /// Names interned so far (tests).
    var count: Int { names.withLock { $0.count } }
}
