public import KlifeProtocol
import KlifeIO
import Synchronization

/// A broker as advertised in cluster metadata.
public struct BrokerInfo: Sendable, Hashable {
    /// The broker's node id.
    public var nodeID: Int32
    /// Where clients connect.
    public var address: BrokerAddress
    /// Rack, when configured on the broker.
    public var rack: String?
}

/// One partition of a topic.
public struct PartitionMetadata: Sendable, Hashable {
    /// Partition index.
    public var partition: Int32
    /// Node id of the leader, or -1 when none is available.
    public var leaderID: Int32
    /// Leader epoch (-1 when the broker does not report it).
    public var leaderEpoch: Int32
    /// All replicas' node ids.
    public var replicas: [Int32]
    /// In-sync replicas' node ids.
    public var isr: [Int32]
    /// The partition-level error the broker reported, if any.
    public var error: KafkaErrorCode?
}

/// One topic.
public struct TopicMetadata: Sendable, Hashable {
    /// Topic name.
    public var name: String
    /// Topic id (zero when the broker does not report ids).
    public var topicID: KafkaUUID
    /// Whether the topic is internal (for example `__consumer_offsets`).
    public var isInternal: Bool
    /// Partitions sorted by index.
    public var partitions: [PartitionMetadata]
}

/// What the client knows about the cluster at one moment.
public struct ClusterMetadata: Sendable {
    /// Brokers by node id.
    public var brokers: [Int32: BrokerInfo]
    /// The controller's node id (-1 if unknown).
    public var controllerID: Int32
    /// The cluster id, when the broker reports one.
    public var clusterID: String?
    /// Topics by name (only those the client asked about, unless it listed all).
    public var topics: [String: TopicMetadata]

    /// Empty metadata (before bootstrap).
    public static let empty = ClusterMetadata(brokers: [:], controllerID: -1, clusterID: nil, topics: [:])

    /// Builds metadata from a Metadata response, merging topics into `previous`.
    /// Topics the broker reports as unknown are removed; other topic errors keep the old entry.
    static func merging(_ response: MetadataResponse, into previous: ClusterMetadata) -> (ClusterMetadata, unknownTopics: [String]) {
        var brokers: [Int32: BrokerInfo] = [:]
        for b in response.brokers {
            brokers[b.nodeID] = BrokerInfo(nodeID: b.nodeID, address: BrokerAddress(host: b.host, port: Int(b.port)), rack: b.rack)
        }
        var topics = previous.topics
        var unknown: [String] = []
        for t in response.topics {
            let code = KafkaErrorCode(rawValue: t.errorCode)
            if code == .unknownTopicOrPartition || code == .invalidTopicException {
                topics[t.name] = nil
                unknown.append(t.name)
                continue
            }
            guard code == .none else { continue }
            let partitions = t.partitions.map { p in
                PartitionMetadata(partition: p.partitionIndex, leaderID: p.leaderID, leaderEpoch: p.leaderEpoch,
                                  replicas: p.replicaNodes, isr: p.isrNodes,
                                  error: p.errorCode == 0 ? nil : KafkaErrorCode(rawValue: p.errorCode))
            }.sorted { $0.partition < $1.partition }
            topics[t.name] = TopicMetadata(name: t.name, topicID: t.topicID, isInternal: t.isInternal, partitions: partitions)
        }
        let merged = ClusterMetadata(brokers: brokers.isEmpty ? previous.brokers : brokers,
                                     controllerID: response.controllerID, clusterID: response.clusterID ?? previous.clusterID,
                                     topics: topics)
        return (merged, unknown)
    }

    /// The leader of `partition` in `topic`, or `nil` when unknown.
    func leader(topic: String, partition: Int32) -> Int32? {
        guard let t = topics[topic], partition >= 0, Int(partition) < t.partitions.count else { return nil }
        let p = t.partitions[Int(partition)]
        guard p.partition == partition, p.leaderID >= 0, brokers[p.leaderID] != nil else { return nil }
        return p.leaderID
    }
}

/// An immutable snapshot shared between threads by reference, so readers on the
/// produce path take one lock-protected pointer copy instead of copying dictionaries.
final class MetadataSnapshot: Sendable {
    let metadata: ClusterMetadata
    let version: UInt64
    /// Per-topic routing, precomputed so the produce path does one dictionary lookup
    /// and no struct copies per record.
    let routes: [String: TopicRoute]

    /// - Parameters:
    ///   - previous: the snapshot this one replaces, for ``TopicRoute/ownerChangedAt``.
    ///   - reactorCount: how many reactors route records (owners are reactor indexes).
    init(_ metadata: ClusterMetadata, version: UInt64, previous: MetadataSnapshot? = nil, reactorCount: Int = 1) {
        self.metadata = metadata
        self.version = version
        var routes: [String: TopicRoute] = [:]
        for (name, topic) in metadata.topics where !topic.partitions.isEmpty {
            let leaders = (0..<Int32(topic.partitions.count)).map { metadata.leader(topic: name, partition: $0) ?? -1 }
            let before = previous?.routes[name]
            let changedAt = leaders.indices.map { p -> UInt64 in
                guard reactorCount > 1 else { return 0 }
                guard let before, p < before.leaders.count else { return version }  // new: records waited on reactor 0
                let moved = TopicRoute.owner(ofLeader: before.leaders[p], reactorCount: reactorCount)
                    != TopicRoute.owner(ofLeader: leaders[p], reactorCount: reactorCount)
                return moved ? version : before.ownerChangedAt[p]
            }
            routes[name] = TopicRoute(leaders: leaders, ownerChangedAt: changedAt)
        }
        self.routes = routes
    }

    /// Whether some partition's owning reactor changed in this version.
    var ownershipChanged: Bool {
        routes.values.contains { $0.ownerChangedAt.contains(version) }
    }
}

/// Where each partition of one topic is led (-1 when no leader is known).
final class TopicRoute: Sendable {
    let leaders: [Int32]
    /// Per partition, the snapshot version in which the reactor owning it last changed (a
    /// leader moved to a broker of another reactor, or the partition appeared); 0 with one
    /// reactor. Records routed before that version may still be on their way to the new owner.
    let ownerChangedAt: [UInt64]
    var partitionCount: Int32 { Int32(leaders.count) }

    init(leaders: [Int32], ownerChangedAt: [UInt64]? = nil) {
        self.leaders = leaders
        self.ownerChangedAt = ownerChangedAt ?? Array(repeating: 0, count: leaders.count)
    }

    /// The reactor whose ring takes records of a partition led by `leader` (reactor 0 while
    /// the leader is unknown: it parks them until metadata names one).
    static func owner(ofLeader leader: Int32, reactorCount: Int) -> Int {
        leader >= 0 ? ReactorHub.index(forNode: leader, reactorCount: reactorCount) : leaderlessOwner
    }

    /// The reactor that keeps records no leader can take yet (unknown topic, partition or leader).
    static let leaderlessOwner = 0

    /// The leader of `partition`, or `nil` when unknown.
    @inline(__always)
    func leader(_ partition: Int32) -> Int32? {
        let leader = leaders[Int(partition)]
        return leader >= 0 ? leader : nil
    }
}

/// The client's current snapshot; writers replace it whole.
final class MetadataStore: Sendable {
    private let current = Locked(MetadataSnapshot(.empty, version: 0))
    private let reactorCount: Int
    /// The current snapshot's version, stored (sequentially consistent) after the snapshot is
    /// installed: producing threads re-check it after claiming a ring slot, and reactors read
    /// it before their ring's producer cursor (see ``MPSCRing/offer(_:placeholder:stillValid:)``).
    let publishedVersion = Atomic<UInt64>(0)

    init(reactorCount: Int = 1) { self.reactorCount = reactorCount }

    var snapshot: MetadataSnapshot { current.withLock { $0 } }

    /// Installs `metadata` and returns the new snapshot.
    @discardableResult
    func publish(_ metadata: ClusterMetadata) -> MetadataSnapshot {
        current.withLock { old in
            let next = MetadataSnapshot(metadata, version: old.version + 1, previous: old, reactorCount: reactorCount)
            old = next
            publishedVersion.store(next.version, ordering: .sequentiallyConsistent)
            return next
        }
    }
}
