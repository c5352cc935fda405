import KlifeIO
import KlifeProtocol
import Synchronization

/// Why a connection to a broker exists. Kafka answers the requests of one connection strictly
/// in order, so requests a broker may hold for long get connections of their own and never
/// delay produce acknowledgements.
enum ConnectionPurpose: UInt8, Hashable, Sendable, CaseIterable {
    /// Produce requests, and short control-plane calls (metadata, admin, transactions, offsets).
    case produce
    /// Fetch requests, which the broker holds up to their `maxWait` (long polls).
    case fetch
    /// Consumer-group coordination: a JoinGroup may be held for a whole rebalance.
    case group
}

/// A part of the client that lives on every reactor: the producer today, the fetch engine
/// and group coordinator beside it. The hub calls these on its own thread only.
protocol ReactorService: AnyObject {
    /// Once per reactor loop iteration, after socket events, timers and tasks.
    func iterate()
    /// The hub installed a newer metadata snapshot (`previousVersion`: the one it replaced);
    /// `unknownTopics`: topics the cluster said do not exist.
    func metadataChanged(from previousVersion: UInt64, unknownTopics: [String])
    /// The cluster said `topics` do not exist, with a snapshot that was not newer.
    func topicsUnknown(_ topics: [String])
    /// Fails everything waiting (client shutdown); called before connections close.
    func failAll(_ error: KlifeError)
}

/// What one reactor owns, whatever the client does with it: its broker connections (by node
/// and purpose), its copy of the metadata snapshot, its logger, and the services that run on it.
///
/// Each broker connection belongs to exactly one reactor for its whole life
/// (``index(forNode:reactorCount:)``), so no connection is ever touched by two threads.
final class ReactorHub: @unchecked Sendable {
    // Safe to share: `index`, `reactor`, `configuration` and `tls` are immutable references to
    // thread-safe objects, and the callbacks are set before the reactor starts. Every other
    // property is read and written only on `reactor`'s thread (inside tasks, hooks, timers and
    // channel callbacks it runs), which `assertOnReactor()` checks in debug builds.

    let index: Int
    let reactor: Reactor
    let configuration: KlifeConfiguration
    /// The client's TLS context (shared by all reactors), `nil` for plain TCP.
    let tls: TLSContext?
    /// Asks the client for a metadata refresh (of one topic, or of everything with `nil`).
    var onMetadataRefreshNeeded: (@Sendable (String?) -> Void)?

    private(set) var snapshot = MetadataSnapshot(.empty, version: 0)
    private(set) var services: [any ReactorService] = []
    private var connections: [ConnectionKey: BrokerConnection] = [:]
    private var bootstrapConnections: [BrokerAddress: BrokerConnection] = [:]
    /// Requests sent on dedicated connections already closed (so counts never go down).
    private var retiredRequestCounts: [ApiKey: Int] = [:]

    private struct ConnectionKey: Hashable {
        let node: Int32
        let purpose: ConnectionPurpose
        /// 0 for the shared connection of a purpose; otherwise the owner of a dedicated one.
        var owner: UInt64 = 0
    }

    init(index: Int, configuration: KlifeConfiguration, tls: TLSContext?) throws(KlifeError) {
        self.index = index
        self.configuration = configuration
        self.tls = tls
        do {
            self.reactor = try Reactor(name: "klife-reactor-\(index)",
                                       cpuAffinity: configuration.reactorCPUAffinity?[index],
                                       busyPollNanoseconds: UInt64(configuration.reactorBusyPollMicroseconds) * 1_000)
        } catch {
            throw .invalidConfiguration("reactorCPUAffinity", "reactor \(index) could not start: \(error)")
        }
    }

    /// Registers a service (before ``start()``).
    func register(_ service: any ReactorService) {
        services.append(service)
    }

    func start() {
        reactor.start()
        reactor.submit { [self] in
            // A strong capture on purpose: the loop keeps its hub (and everything that refers
            // to it unowned) alive until shutdown removes the hook.
            reactor.addIterationHook { [self] in
                for service in services { service.iterate() }
            }
        }
    }

    func assertOnReactor() {
        assert(reactor.isInReactorThread, "ReactorHub used off its reactor thread")
    }

    /// The reactor that owns broker `node`'s connections: the one rule every router uses.
    static func index(forNode node: Int32, reactorCount: Int) -> Int {
        Int(UInt32(bitPattern: node) % UInt32(reactorCount))
    }

    // MARK: Connections

    /// The connection to `node` for `purpose`, created on first use; `nil` if the broker is not
    /// in metadata (and no connection to it exists).
    func connection(forNode node: Int32, purpose: ConnectionPurpose = .produce) -> BrokerConnection? {
        connection(ConnectionKey(node: node, purpose: purpose))
    }

    /// A connection to `node` that only `owner` uses (a group member: two members' JoinGroups
    /// on one connection would wait for each other until the rebalance timeout), created on
    /// first use; `nil` if the broker is not in metadata. Closed by ``closeDedicatedConnections(owner:)``.
    func dedicatedConnection(forNode node: Int32, purpose: ConnectionPurpose, owner: UInt64) -> BrokerConnection? {
        precondition(owner != 0, "owner 0 is the shared connection")
        return connection(ConnectionKey(node: node, purpose: purpose, owner: owner))
    }

    /// Closes every dedicated connection of `owner`.
    func closeDedicatedConnections(owner: UInt64) {
        assertOnReactor()
        for key in connections.keys where key.owner == owner {
            guard let connection = connections.removeValue(forKey: key) else { continue }
            retiredRequestCounts.merge(connection.requestCounts, uniquingKeysWith: +)
            connection.close()
        }
    }

    /// A fresh owner id for ``dedicatedConnection(forNode:purpose:owner:)``.
    static func newConnectionOwner() -> UInt64 {
        nextConnectionOwner.add(1, ordering: .relaxed).newValue
    }

    private static let nextConnectionOwner = Atomic<UInt64>(0)

    private func connection(_ key: ConnectionKey) -> BrokerConnection? {
        assertOnReactor()
        let node = key.node
        guard let broker = snapshot.metadata.brokers[node] else { return connections[key] }
        if let existing = connections[key] {
            if existing.address == broker.address { return existing }
            existing.close()
        }
        let connection = BrokerConnection(nodeID: node, address: broker.address, hub: self)
        connections[key] = connection
        return connection
    }

    /// A connection to a bootstrap address (node id unknown), reused until ``closeBootstrapConnections()``.
    func bootstrapConnection(_ address: BrokerAddress) -> BrokerConnection {
        assertOnReactor()
        if let existing = bootstrapConnections[address] { return existing }
        let connection = BrokerConnection(nodeID: -1, address: address, hub: self)
        bootstrapConnections[address] = connection
        return connection
    }

    /// Drops bootstrap connections once real broker connections exist.
    func closeBootstrapConnections() {
        for c in bootstrapConnections.values { c.close() }
        bootstrapConnections.removeAll()
    }

    /// Requests sent per API over every connection of this reactor.
    func requestCounts() -> [ApiKey: Int] {
        var total = retiredRequestCounts
        for c in connections.values { total.merge(c.requestCounts, uniquingKeysWith: +) }
        for c in bootstrapConnections.values { total.merge(c.requestCounts, uniquingKeysWith: +) }
        return total
    }

    /// Open connections by purpose (bootstrap connections not counted).
    func connectionCounts() -> [ConnectionPurpose: Int] {
        var counts: [ConnectionPurpose: Int] = [:]
        for key in connections.keys { counts[key.purpose, default: 0] += 1 }
        return counts
    }

    // MARK: Metadata

    /// Installs `snapshot` when it is newer than this reactor's and tells every service.
    func apply(_ snapshot: MetadataSnapshot, unknownTopics: [String]) {
        guard snapshot.version > self.snapshot.version else {
            if !unknownTopics.isEmpty { for service in services { service.topicsUnknown(unknownTopics) } }
            return
        }
        let previous = self.snapshot.version
        self.snapshot = snapshot
        for service in services { service.metadataChanged(from: previous, unknownTopics: unknownTopics) }
    }

    func requestMetadataRefresh(topic: String?) {
        onMetadataRefreshNeeded?(topic)
    }

    /// Sends an event to the configured log handler.
    func log(_ level: LogLevel, _ message: @autoclosure () -> String, broker: String? = nil) {
        guard let handler = configuration.logHandler, level >= configuration.logLevel else { return }
        handler(LogEvent(level: level, message: message(), broker: broker))
    }

    // MARK: Shutdown

    /// Fails what every service holds, then closes every connection.
    func closeAll(_ error: KlifeError) {
        for service in services { service.failAll(error) }
        for c in connections.values { c.close() }
        connections.removeAll()
        closeBootstrapConnections()
    }
}
