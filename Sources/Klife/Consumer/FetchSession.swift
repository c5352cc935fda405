import KlifeProtocol

/// One consumer's incremental fetch session with one broker (KIP-227, Fetch v7+): what the
/// broker holds, and from that what the next Fetch must say.
///
///     request                      session_id  epoch  partitions sent         forgotten
///     sessionless (before v7)      0           -1     all claimed             —
///     full, opens a session        0 | old id   0     all claimed             —
///     incremental                  id          1, 2…  new or changed claims   held but not claimed
///     close (consumer closes)      id          -1     —                       —
///
/// **The session holds exactly the partitions claimed by the last request.** A partition left
/// out of an incremental request stays in the broker's session, and the broker keeps answering
/// it from the offset it holds. So every partition the session holds that this request does
/// not claim (unassigned, paused, in backoff after an error, led elsewhere now, its position
/// being looked up) is *forgotten*, and every claimed partition whose fetch offset or size limit
/// differs from what the broker holds is sent again (a forgotten partition claimed again is
/// new to the broker, whatever its offset). While the prefetch bound leaves no room, no Fetch
/// is sent at all and the session stays as it is. Consequences:
/// - every partition in an answer is one this request claimed (its epoch and reserved room are
///   known; an answer naming another is not used), and a claimed partition missing from it
///   simply had nothing new (it is released);
/// - the broker never moves a session's offsets by itself, so a partition sent unchanged is
///   answered from exactly the position that was claimed.
///
/// Requests of one session must reach the broker in epoch order, so at most one is in flight
/// (``inFlight``; the fetch engine does not claim a broker's partitions meanwhile). Anything
/// that leaves the two sides unsure of each other resets to a full fetch (epoch 0):
/// a top-level error (`FETCH_SESSION_ID_NOT_FOUND` forgets the id as well; others close it by
/// naming it in the full request), a request with no answer (connection lost, timeout), an
/// answer naming another session, an answer naming a partition the request did not ask for
/// (the answer is not used), or a topic id that changed under a held partition.
/// A broker that answers a full request with session id 0 (none created: no session support,
/// or its cache is full) keeps getting full requests asking for one; they are plain full
/// fetches to a broker without sessions.
struct FetchSession: Sendable {
    /// What the broker holds for one partition of the session.
    struct Partition: Sendable, Equatable {
        /// The topic's id (how v13+ names it), zero when unknown.
        var topicID: KafkaUUID
        /// The offset the broker reads from.
        var fetchOffset: Int64
        /// The partition's size limit.
        var maxBytes: Int32
    }

    /// What the next Fetch carries.
    struct Request: Sendable, Equatable {
        /// The request's session id (0: none).
        var sessionID: Int32
        /// The request's epoch: -1 sessionless (or closing), 0 full, above 0 incremental.
        var epoch: Int32
        /// Partitions to put in the request's `topics`.
        var fetch: [TopicPartition: Partition]
        /// Partitions to put in `forgotten_topics_data`, with their topic ids.
        var forget: [TopicPartition: KafkaUUID]

        /// Whether the request lists every partition wanted (no session, or opening one).
        var isFull: Bool { epoch <= 0 }
    }

    /// The session the broker created, 0 for none.
    private(set) var id: Int32 = 0
    /// The epoch of the next request: 0 asks for a full fetch (and a new session).
    private(set) var nextEpoch: Int32 = 0
    /// What the broker holds (meaningful while ``id`` is not 0, or a full request is on its way).
    private(set) var partitions: [TopicPartition: Partition] = [:]
    /// A request of this session is on its way; no other may be sent until it is answered.
    var inFlight = false

    /// Whether the broker holds a session for us (the next request may be incremental).
    var isOpen: Bool { id != 0 && nextEpoch > 0 }

    /// The request for `wanted` (every partition to fetch now, with its offset and limit), and
    /// the session as the broker will hold it once the request arrives.
    /// - Parameter sessions: the negotiated Fetch version has sessions (v7+).
    mutating func request(for wanted: [TopicPartition: Partition], sessions: Bool) -> Request {
        guard sessions else {
            // A broker that cannot hold sessions (it may be a new one behind the same address).
            id = 0
            nextEpoch = 0
            partitions = [:]
            return Request(sessionID: 0, epoch: -1, fetch: wanted, forget: [:])
        }
        let topicMoved = partitions.contains { tp, held in wanted[tp].map { $0.topicID != held.topicID } ?? false }
        guard isOpen, !topicMoved else {
            // A full request opens a session holding exactly `wanted`; naming the old id closes it.
            partitions = wanted
            nextEpoch = 0
            return Request(sessionID: id, epoch: 0, fetch: wanted, forget: [:])
        }
        var fetch: [TopicPartition: Partition] = [:]
        for (tp, p) in wanted where partitions[tp] != p { fetch[tp] = p }
        var forget: [TopicPartition: KafkaUUID] = [:]
        for (tp, held) in partitions where wanted[tp] == nil { forget[tp] = held.topicID }
        partitions = wanted
        let epoch = nextEpoch
        nextEpoch = epoch == Int32.max ? 1 : epoch + 1
        return Request(sessionID: id, epoch: epoch, fetch: fetch, forget: forget)
    }

    /// The broker answered `request` without a top-level error, naming session `sessionID` and
    /// the partitions `named` (those it returned). Returns false when it named a partition the
    /// request did not ask for (one the session does not hold, or a full request did not list):
    /// the two sides disagree about the session, so nothing of the answer may be trusted, and the
    /// next request is full, closing the session the broker has (as after a lost answer).
    @discardableResult
    mutating func answered(_ request: Request, sessionID: Int32, named: some Sequence<TopicPartition> = [TopicPartition]()) -> Bool {
        let asked = request.epoch > 0 ? partitions : request.fetch
        if named.contains(where: { asked[$0] == nil }) {
            if request.epoch == 0 && sessionID != request.sessionID && sessionID != 0 { id = sessionID }
            if request.epoch >= 0 { reset(keepingID: true) }
            return false
        }
        switch request.epoch {
        case ..<0:
            break
        case 0:
            // A broker that only echoes the id it was sent (librdkafka's mock does) never opened
            // a session: a new one never has the id the request closed.
            if sessionID == 0 || sessionID == request.sessionID {
                reset(keepingID: false)
            } else {
                id = sessionID
                nextEpoch = 1
            }
        default:
            if sessionID != id { reset(keepingID: false) }
        }
        return true
    }

    /// The request got a top-level error (`code`), or no answer at all (`nil`: connection lost,
    /// timed out, undecodable): the next request is full. The id is kept, so that request closes
    /// the broker's session, unless the broker said it has none (`FETCH_SESSION_ID_NOT_FOUND`).
    mutating func failed(_ code: KafkaErrorCode?) {
        reset(keepingID: code != .fetchSessionIDNotFound)
    }

    /// Whether `code` says the session (not the partitions) is wrong: retried at once, full.
    static func isSessionError(_ code: KafkaErrorCode) -> Bool {
        code == .fetchSessionIDNotFound || code == .invalidFetchSessionEpoch || code == .fetchSessionTopicIDError
    }

    /// Ends the session: the id to close on the broker (a Fetch with epoch -1), if there is one.
    mutating func close() -> Int32? {
        defer { reset(keepingID: false) }
        return id != 0 ? id : nil
    }

    /// Moves an open session's epoch (tests of the wrap-around).
    mutating func setNextEpochForTesting(_ epoch: Int32) {
        if isOpen { nextEpoch = epoch }
    }

    private mutating func reset(keepingID: Bool) {
        if !keepingID { id = 0 }
        nextEpoch = 0
        partitions = [:]
    }
}
