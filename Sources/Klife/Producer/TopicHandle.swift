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
    /// The last four names looked up: producing threads sending to a few topics find them
    /// with a load and a comparison of the name each, without the lock and the hashing of the
    /// table.
    private let recent = RecentObjects()

    /// The handle of `name`, interning it on first use.
    @inline(__always)
    func handle(for name: String) -> TopicHandle {
        if let found = recent.first(as: InternedTopic.self, where: { $0.name == name }) { return TopicHandle(interned: found) }
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
        recent.remember(handle)
        return TopicHandle(interned: handle)
    }

    /// Names interned so far (tests).
    var count: Int { names.withLock { $0.count } }
}

/// The last four objects a table looked up (their addresses, 0 while empty), replaced in turn
/// and found again with an atomic load and a test per slot. The table keeps the objects alive
/// for good: a slot lends its object without a reference.
final class RecentObjects: Sendable {
    private let slot0 = Atomic<UInt>(0)
    private let slot1 = Atomic<UInt>(0)
    private let slot2 = Atomic<UInt>(0)
    private let slot3 = Atomic<UInt>(0)
    /// Which slot the next ``remember(_:)`` replaces.
    private let next = Atomic<UInt>(0)

    /// The first remembered object (of type `T`: a table remembers one type) that passes `test`.
    @inline(__always)
    func first<T: AnyObject>(as type: T.Type, where test: (T) -> Bool) -> Unmanaged<T>? {
        Self.match(slot0, test) ?? Self.match(slot1, test) ?? Self.match(slot2, test) ?? Self.match(slot3, test)
    }

    @inline(__always)
    private static func match<T: AnyObject>(_ slot: borrowing Atomic<UInt>, _ test: (T) -> Bool) -> Unmanaged<T>? {
        guard let pointer = UnsafeRawPointer(bitPattern: slot.load(ordering: .acquiring)) else { return nil }
        let object = Unmanaged<T>.fromOpaque(pointer)
        return object._withUnsafeGuaranteedRef(test) ? object : nil
    }

    /// Remembers `object` in place of the oldest slot. Published with release ordering: a
    /// reader that loads the address sees the whole object.
    func remember<T: AnyObject>(_ object: Unmanaged<T>) {
        let bits = UInt(bitPattern: object.toOpaque())
        switch next.add(1, ordering: .relaxed).oldValue & 3 {
        case 0: slot0.store(bits, ordering: .releasing)
        case 1: slot1.store(bits, ordering: .releasing)
        case 2: slot2.store(bits, ordering: .releasing)
        default: slot3.store(bits, ordering: .releasing)
        }
    }
}
