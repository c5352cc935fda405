@testable import Klife
import KlifeProtocol
import XCTest

/// The bookkeeping of one fetch session (KIP-227): what each request sends and forgets, given
/// what is claimed and what the broker holds, and how answers and errors move the session.
final class FetchSessionTests: XCTestCase {
    private let a0 = TopicPartition(topic: "a", partition: 0)
    private let a1 = TopicPartition(topic: "a", partition: 1)
    private let b0 = TopicPartition(topic: "b", partition: 0)
    private let idA = KafkaUUID(high: 1, low: 1)
    private let idB = KafkaUUID(high: 2, low: 2)

    private func p(_ offset: Int64, _ maxBytes: Int32 = 1000, id: KafkaUUID? = nil) -> FetchSession.Partition {
        FetchSession.Partition(topicID: id ?? idA, fetchOffset: offset, maxBytes: maxBytes)
    }

    /// A session opened by a full fetch for `wanted` and answered with id 42.
    private func opened(_ wanted: [TopicPartition: FetchSession.Partition]) -> FetchSession {
        var session = FetchSession()
        let first = session.request(for: wanted, sessions: true)
        session.answered(first, sessionID: 42)
        return session
    }

    func testFirstRequestIsFullAndOpensASession() {
        var session = FetchSession()
        let wanted = [a0: p(0), a1: p(5)]
        let first = session.request(for: wanted, sessions: true)
        XCTAssertEqual(first, FetchSession.Request(sessionID: 0, epoch: 0, fetch: wanted, forget: [:]))
        XCTAssertTrue(first.isFull)
        XCTAssertFalse(session.isOpen, "not open until the broker names it")
        session.answered(first, sessionID: 42)
        XCTAssertTrue(session.isOpen)
        XCTAssertEqual(session.id, 42)
        XCTAssertEqual(session.nextEpoch, 1)
        XCTAssertEqual(session.partitions, wanted)
    }

    func testIncrementalSendsOnlyChangedAndNewPartitions() {
        var session = opened([a0: p(0), a1: p(5)])
        // a0 moved on, a1 unchanged, b0 new.
        let next = session.request(for: [a0: p(10), a1: p(5), b0: p(0, id: idB)], sessions: true)
        XCTAssertEqual(next, FetchSession.Request(sessionID: 42, epoch: 1, fetch: [a0: p(10), b0: p(0, id: idB)], forget: [:]))
        session.answered(next, sessionID: 42)
        // Nothing changed: an empty incremental fetch (the broker answers from what it holds).
        let quiet = session.request(for: [a0: p(10), a1: p(5), b0: p(0, id: idB)], sessions: true)
        XCTAssertEqual(quiet, FetchSession.Request(sessionID: 42, epoch: 2, fetch: [:], forget: [:]))
        XCTAssertFalse(quiet.isFull)
    }

    func testAChangedSizeLimitIsSentAgain() {
        var session = opened([a0: p(0, 1000)])
        let next = session.request(for: [a0: p(0, 200)], sessions: true)
        XCTAssertEqual(next.fetch, [a0: p(0, 200)], "the room left under the prefetch bound shrank")
        XCTAssertEqual(session.partitions[a0]?.maxBytes, 200)
    }

    /// A partition the session holds but this request does not claim (paused, in backoff,
    /// unassigned, in flight elsewhere) is forgotten, or the broker would answer it.
    func testHeldButUnclaimedPartitionsAreForgotten() {
        var session = opened([a0: p(0), a1: p(5), b0: p(7, id: idB)])
        let next = session.request(for: [a1: p(5)], sessions: true)
        XCTAssertEqual(next.fetch, [:])
        XCTAssertEqual(next.forget, [a0: idA, b0: idB])
        XCTAssertEqual(session.partitions, [a1: p(5)], "the session holds exactly the claimed partitions")
        session.answered(next, sessionID: 42)
        // Resumed later: added again with its position.
        let resumed = session.request(for: [a0: p(3), a1: p(5)], sessions: true)
        XCTAssertEqual(resumed.fetch, [a0: p(3)])
        XCTAssertEqual(resumed.forget, [:])
        XCTAssertEqual(resumed.epoch, 2)
    }

    /// A seek back to the offset the broker holds needs no resend: the broker never moves a
    /// session's offsets by itself.
    func testUnchangedOffsetAfterDroppedAnswerIsNotResent() {
        var session = opened([a0: p(100)])
        let next = session.request(for: [a0: p(100)], sessions: true)
        XCTAssertEqual(next.fetch, [:])
        XCTAssertEqual(session.partitions[a0]?.fetchOffset, 100)
    }

    func testSessionErrorsResetToAFullFetch() {
        for code in [KafkaErrorCode.fetchSessionIDNotFound, .invalidFetchSessionEpoch, .fetchSessionTopicIDError, .notController] {
            var session = opened([a0: p(0), a1: p(5)])
            _ = session.request(for: [a0: p(9)], sessions: true)
            session.failed(code)
            XCTAssertFalse(session.isOpen, "\(code)")
            let full = session.request(for: [a0: p(9), a1: p(5)], sessions: true)
            XCTAssertEqual(full.epoch, 0, "\(code)")
            XCTAssertEqual(full.fetch, [a0: p(9), a1: p(5)], "a full fetch lists every claimed partition (\(code))")
            XCTAssertEqual(full.forget, [:])
            // The broker said it has no such session: open a new one without naming it. Otherwise
            // the full request names the old id, which closes it on the broker.
            let forgetsID = code == .fetchSessionIDNotFound
            XCTAssertEqual(full.sessionID, forgetsID ? 0 : 42, "\(code)")
            XCTAssertEqual(FetchSession.isSessionError(code), code != .notController)
        }
    }

    /// FETCH_SESSION_ID_NOT_FOUND: the broker has no such session, so the full request that
    /// follows names none and the broker's new session carries on incrementally.
    func testSessionNotFoundOpensANewSessionWithoutNamingTheOld() {
        var session = opened([a0: p(0), a1: p(5)])
        let next = session.request(for: [a0: p(3), a1: p(5)], sessions: true)
        XCTAssertEqual(next.epoch, 1)
        session.failed(.fetchSessionIDNotFound)
        XCTAssertEqual(session.id, 0)
        let full = session.request(for: [a0: p(3), a1: p(5)], sessions: true)
        XCTAssertEqual(full, FetchSession.Request(sessionID: 0, epoch: 0, fetch: [a0: p(3), a1: p(5)], forget: [:]))
        XCTAssertTrue(session.answered(full, sessionID: 43, named: [a0]))
        XCTAssertEqual(session.request(for: [a0: p(4), a1: p(5)], sessions: true),
                       FetchSession.Request(sessionID: 43, epoch: 1, fetch: [a0: p(4)], forget: [:]))
    }

    /// INVALID_FETCH_SESSION_EPOCH: the broker still has the session, so the full request names
    /// it (which closes it) and the broker's new one starts again at epoch 1.
    func testInvalidEpochClosesTheSessionInTheNextFullRequest() {
        var session = opened([a0: p(0), a1: p(5)])
        for _ in 0..<3 { session.answered(session.request(for: [a0: p(0), a1: p(5)], sessions: true), sessionID: 42) }
        let next = session.request(for: [a0: p(0)], sessions: true)
        XCTAssertEqual(next.epoch, 4)
        XCTAssertEqual(next.forget, [a1: idA])
        session.failed(.invalidFetchSessionEpoch)
        XCTAssertFalse(session.isOpen)
        let full = session.request(for: [a0: p(0), a1: p(5)], sessions: true)
        XCTAssertEqual(full, FetchSession.Request(sessionID: 42, epoch: 0, fetch: [a0: p(0), a1: p(5)], forget: [:]),
                       "every claimed partition, a1 too (the broker may or may not have forgotten it)")
        session.answered(full, sessionID: 43)
        XCTAssertEqual(session.request(for: [a0: p(0), a1: p(5)], sessions: true),
                       FetchSession.Request(sessionID: 43, epoch: 1, fetch: [:], forget: [:]))
    }

    /// The opening request itself lost: the next one is full again, naming no session (none
    /// was known), and a late-created one on the broker is left to expire.
    func testNoAnswerToTheOpeningRequestStaysFull() {
        var session = FetchSession()
        let first = session.request(for: [a0: p(0)], sessions: true)
        session.failed(nil)
        XCTAssertEqual(session.request(for: [a0: p(0)], sessions: true), first)
    }

    /// A partition left out of requests for a while (paused, unassigned, backing off after an
    /// error in an answer, incremental or full) was forgotten: when it is claimed again it is
    /// sent again, even at the offset the broker held before, or the broker would not answer it.
    func testAPartitionClaimedAgainAfterBeingForgottenIsSentAgainAtTheSameOffset() {
        var session = opened([a0: p(7), a1: p(5)])
        let without = session.request(for: [a1: p(5)], sessions: true)
        XCTAssertEqual(without.forget, [a0: idA])
        XCTAssertTrue(session.answered(without, sessionID: 42, named: [a1]))
        let quiet = session.request(for: [a1: p(5)], sessions: true)
        XCTAssertEqual(quiet.fetch, [:])
        XCTAssertEqual(quiet.forget, [:], "forgotten once")
        session.answered(quiet, sessionID: 42)
        let back = session.request(for: [a0: p(7), a1: p(5)], sessions: true)
        XCTAssertEqual(back.fetch, [a0: p(7)])
        XCTAssertEqual(back.forget, [:])
        XCTAssertEqual(back.epoch, 3)
    }

    /// An answer naming a partition the request did not ask for: the broker's session is not
    /// what this side thinks, so the answer is refused and the next request is full, closing
    /// the session the broker has.
    func testAnAnswerNamingAPartitionNotAskedForIsRefusedAndResets() {
        // Incremental: partitions held but not sent this time are asked for; others are not.
        var session = opened([a0: p(0), a1: p(5)])
        let next = session.request(for: [a0: p(3), a1: p(5)], sessions: true)
        XCTAssertEqual(next.fetch, [a0: p(3)])
        var copy = session
        XCTAssertTrue(copy.answered(next, sessionID: 42, named: [a0, a1]), "a1 is held: it may be answered")
        XCTAssertTrue(copy.isOpen)
        XCTAssertFalse(session.answered(next, sessionID: 42, named: [a0, b0]))
        XCTAssertFalse(session.isOpen)
        XCTAssertEqual(session.request(for: [a0: p(3), a1: p(5)], sessions: true),
                       FetchSession.Request(sessionID: 42, epoch: 0, fetch: [a0: p(3), a1: p(5)], forget: [:]))

        // A partition forgotten by this very request is not asked for either.
        session = opened([a0: p(0), a1: p(5)])
        let forgetting = session.request(for: [a0: p(0)], sessions: true)
        XCTAssertFalse(session.answered(forgetting, sessionID: 42, named: [a1]))

        // Full: only what it listed; the session the broker opened with it is closed next.
        session = FetchSession()
        let full = session.request(for: [a0: p(0)], sessions: true)
        XCTAssertFalse(session.answered(full, sessionID: 44, named: [a0, a1]))
        XCTAssertFalse(session.isOpen)
        XCTAssertEqual(session.request(for: [a0: p(0)], sessions: true).sessionID, 44)

        // Sessionless: refused too; nothing to reset.
        session = FetchSession()
        let plain = session.request(for: [a0: p(0)], sessions: false)
        XCTAssertFalse(session.answered(plain, sessionID: 0, named: [b0]))
        XCTAssertTrue(session.answered(plain, sessionID: 0, named: [a0]))
    }

    func testNoAnswerClosesTheSessionInTheNextFullRequest() {
        var session = opened([a0: p(0)])
        _ = session.request(for: [a0: p(4)], sessions: true)
        session.failed(nil)
        let full = session.request(for: [a0: p(4)], sessions: true)
        XCTAssertEqual(full, FetchSession.Request(sessionID: 42, epoch: 0, fetch: [a0: p(4)], forget: [:]))
        session.answered(full, sessionID: 43)
        XCTAssertEqual(session.id, 43)
        XCTAssertEqual(session.nextEpoch, 1)
    }

    /// A broker without sessions answers id 0: every request stays full (asking for one).
    func testBrokerWithoutSessionsStaysFull() {
        var session = FetchSession()
        for offset in Int64(0)..<3 {
            let request = session.request(for: [a0: p(offset)], sessions: true)
            XCTAssertEqual(request, FetchSession.Request(sessionID: 0, epoch: 0, fetch: [a0: p(offset)], forget: [:]))
            session.answered(request, sessionID: 0)
            XCTAssertFalse(session.isOpen)
        }
    }

    /// A broker that echoes the id it was sent did not open a session.
    func testAnEchoedIDIsNoNewSession() {
        var session = opened([a0: p(0)])
        session.failed(.invalidFetchSessionEpoch)
        let full = session.request(for: [a0: p(0)], sessions: true)
        XCTAssertEqual(full.sessionID, 42)
        session.answered(full, sessionID: 42)
        XCTAssertFalse(session.isOpen)
        XCTAssertEqual(session.request(for: [a0: p(0)], sessions: true).sessionID, 0)
    }

    func testAnIncrementalAnswerNamingAnotherSessionResets() {
        var session = opened([a0: p(0)])
        let next = session.request(for: [a0: p(1)], sessions: true)
        session.answered(next, sessionID: 0)
        XCTAssertFalse(session.isOpen)
        XCTAssertEqual(session.request(for: [a0: p(1)], sessions: true).epoch, 0)
    }

    func testVersionsWithoutSessionsAreSessionless() {
        var session = opened([a0: p(0)])
        let request = session.request(for: [a0: p(0), a1: p(1)], sessions: false)
        XCTAssertEqual(request, FetchSession.Request(sessionID: 0, epoch: -1, fetch: [a0: p(0), a1: p(1)], forget: [:]))
        session.answered(request, sessionID: 0)
        XCTAssertFalse(session.isOpen)
        XCTAssertEqual(session.id, 0)
    }

    /// A topic recreated under the same name (new id) while held: full fetch, no forget-and-add
    /// of one name in one request (the broker adds before it forgets).
    func testATopicIDChangeForcesAFullFetch() {
        var session = opened([a0: p(0), b0: p(0, id: idB)])
        let newID = KafkaUUID(high: 9, low: 9)
        let request = session.request(for: [a0: p(0, id: newID), b0: p(0, id: idB)], sessions: true)
        XCTAssertEqual(request.epoch, 0)
        XCTAssertEqual(request.sessionID, 42)
        XCTAssertEqual(request.fetch.count, 2)
    }

    func testEpochsWrapToOne() {
        var session = opened([a0: p(0)])
        var epochs: [Int32] = []
        for _ in 0..<3 {
            let r = session.request(for: [a0: p(0)], sessions: true)
            session.answered(r, sessionID: 42)
            epochs.append(r.epoch)
        }
        XCTAssertEqual(epochs, [1, 2, 3])
        session.setNextEpochForTesting(Int32.max)
        let last = session.request(for: [a0: p(0)], sessions: true)
        session.answered(last, sessionID: 42)
        XCTAssertEqual(last.epoch, Int32.max)
        let wrapped = session.request(for: [a0: p(0)], sessions: true)
        XCTAssertEqual(wrapped.epoch, 1, "0 would mean a full fetch")
        XCTAssertEqual(wrapped.sessionID, 42)
        XCTAssertFalse(wrapped.isFull)
        session.answered(wrapped, sessionID: 42)
        XCTAssertEqual(session.request(for: [a0: p(0)], sessions: true).epoch, 2)
        // A lost answer after the wrap resets to a full request, not to a smaller epoch.
        session.failed(nil)
        XCTAssertEqual(session.request(for: [a0: p(0)], sessions: true).epoch, 0)
    }

    func testCloseNamesTheSessionOnce() {
        var session = opened([a0: p(0)])
        XCTAssertEqual(session.close(), 42)
        XCTAssertNil(session.close())
        XCTAssertEqual(session.request(for: [a0: p(0)], sessions: true).epoch, 0)
        var never = FetchSession()
        XCTAssertNil(never.close())
    }
}
