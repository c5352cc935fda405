import KlifeIO
import KlifeProtocol

/// Transactions in closure style: commit when the block returns, abort when it throws.
extension KlifeClient {
    /// Runs `body` in a Kafka transaction on a producer from the transactional pool.
    ///
    /// Every record produced through the ``Transaction`` handed to `body` (and every offset
    /// sent with ``Transaction/sendOffsets(_:group:)``) is committed atomically when
    /// `body` returns — after all of them were acknowledged — or aborted when `body`
    /// throws, in which case that error is rethrown unchanged.
    ///
    /// ```swift
    /// let total = try await client.transaction { txn in
    ///     _ = try await txn.produce(ProducerRecord(topic: "debits", key: "acct-1", value: "-10"))
    ///     _ = try await txn.produce(ProducerRecord(topic: "credits", key: "acct-2", value: "+10"))
    ///     return 2
    /// }
    /// ```
    ///
    /// Waits for a free pool member first (``TransactionConfiguration/acquireTimeout``).
    /// The block runs on the caller's actor (`isolation` defaults to it), so it may use that
    /// actor's state directly; it need not be `Sendable`.
    /// - Returns: what `body` returned.
    /// - Throws: the error `body` threw (the transaction was aborted); or ``KlifeError``:
    ///   `transactionAborted` when a record failed or the transaction outlived
    ///   ``TransactionConfiguration/timeout`` (it was aborted instead of committed),
    ///   `producerFenced` when another instance took over the transactional id (fatal for
    ///   that pool member), `invalidConfiguration` without ``KlifeConfiguration/transactions``,
    ///   or a broker/connection error from the commit itself.
    public func transaction<T>(isolation: isolated (any Actor)? = #isolation,
                               _ body: (Transaction) async throws -> T) async throws -> T {
        let member = try await transactionPool.acquire(timeout: configuration.transactions?.acquireTimeout ?? .zero)
        defer { transactionPool.release(member) }
        let transaction = try await beginTransaction(on: member)
        let result: T
        do {
            result = try await body(transaction)
        } catch {
            await abortTransaction(transaction, reason: "the transaction block threw: \(error)")
            throw error
        }
        try await commitTransaction(transaction)
        return result
    }

    /// Produces `records` in one transaction: all of them become visible together, or, if
    /// any fails, none (the transaction is aborted and the first failure thrown).
    /// - Returns: each record's metadata, in order.
    public func produceBatchInTransaction(_ records: [ProducerRecord]) async throws(KlifeError) -> [RecordMetadata] {
        do {
            return try await transaction { txn in
                try await txn.produceBatch(records).map { try $0.get() }
            }
        } catch let error as KlifeError {
            throw error
        } catch {
            throw .transactionAborted(configuration.transactions?.baseTransactionalID ?? "", reason: "\(error)")
        }
    }

    // MARK: Lifecycle

    private func beginTransaction(on member: TransactionalMember) async throws(KlifeError) -> Transaction {
        if isClosing { throw .clientClosed }
        if let fatal = member.session.fatalError { throw fatal }
        if member.transactionMayBeOpen { await abortLeftOpen(member) }
        if member.needsNewEpoch {
            try await initTransactionalProducer(member)
            member.needsNewEpoch = false
        }
        member.session.clearAbortable()
        let timeout = configuration.transactions?.timeout ?? .seconds(60)
        return Transaction(client: self, member: member, deadline: Reactor.monotonicNanoseconds() &+ timeout.nanoseconds)
    }

    /// Waits for the transaction's records, then commits — or aborts when any failed or the
    /// transaction ran out of time.
    private func commitTransaction(_ transaction: Transaction) async throws(KlifeError) {
        let member = transaction.member
        let session = member.session
        await waitForSessionRecords(session)
        let begun = transaction.close()
        if let fatal = session.fatalError { throw fatal }
        let failures = session.outstanding.failedCount - transaction.failuresBefore
        var reason: String?
        let timedOut = Reactor.monotonicNanoseconds() >= transaction.deadline
        if failures > 0 || session.abortableError != nil {
            reason = "\(max(failures, 1)) operation(s) failed" + (session.abortableError.map { ", first: \($0)" } ?? "")
        } else if timedOut {
            reason = "the transaction outlived its timeout (\(configuration.transactions?.timeout ?? .zero))"
        }
        if let reason {
            await endAborted(transaction, begun: begun, timedOut: timedOut,
                             needsNewEpoch: failures > 0 || session.abortableError != nil)
            throw .transactionAborted(member.transactionalID, reason: reason)
        }
        guard begun else { return }
        do {
            try await endTransaction(member: member, commit: true)
        } catch {
            // The outcome is unknown (or the coordinator refused): the next transaction
            // starts with a new epoch, after aborting whatever may still be open.
            if error.code != .producerFenced {
                member.needsNewEpoch = true
                member.transactionMayBeOpen = true
            }
            throw error
        }
    }

    /// Aborts: unsent records fail, in-flight ones are awaited, then EndTxn(abort).
    private func abortTransaction(_ transaction: Transaction, reason: String) async {
        let begun = transaction.close()
        let session = transaction.member.session
        let error = KlifeError.transactionAborted(transaction.member.transactionalID, reason: reason)
        // Blocks still open on producing threads (a reactor may have no engine for the session yet).
        session.failOpenBlocks(error)
        forEachEngine(of: session) { $0.failAll(error) }
        await waitForSessionRecords(session)
        let failures = session.outstanding.failedCount - transaction.failuresBefore
        await endAborted(transaction, begun: begun, timedOut: Reactor.monotonicNanoseconds() >= transaction.deadline,
                         needsNewEpoch: failures > 0 || session.abortableError != nil)
    }

    /// EndTxn(abort). A transaction whose records failed leaves sequence gaps (or lost
    /// sequence state), so its member takes a new epoch before the next transaction; after
    /// a clean abort the sequences simply continue.
    private func endAborted(_ transaction: Transaction, begun: Bool, timedOut: Bool, needsNewEpoch: Bool) async {
        let member = transaction.member
        if needsNewEpoch { member.needsNewEpoch = true }
        guard begun, member.session.fatalError == nil else { return }
        do {
            try await endTransaction(member: member, commit: false, fencingIsFatal: !timedOut)
        } catch {
            // Tried again before the next transaction takes a new epoch.
            member.needsNewEpoch = true
            if error.code != .producerFenced { member.transactionMayBeOpen = true }
            hubs[0].log(.warning, "EndTxn(abort) for '\(member.transactionalID)' failed: \(error)")
        }
    }

    /// Before a member whose last EndTxn had an unknown outcome takes a new epoch: EndTxn(abort)
    /// under the old epoch, so nothing it wrote stays undecided even at a broker that does not
    /// abort an open transaction when the epoch is bumped. The coordinator answers that nothing
    /// is open (`INVALID_TXN_STATE`) when the transaction was completed after all; fencing means
    /// a newer epoch took over (which aborted it). Best effort: on any other failure the new
    /// epoch (and the transaction timeout) are left to do it.
    private func abortLeftOpen(_ member: TransactionalMember) async {
        member.transactionMayBeOpen = false
        do {
            try await endTransaction(member: member, commit: false, fencingIsFatal: false)
        } catch where error.kafkaErrorCode == .invalidTxnState || error.code == .producerFenced {
            return
        } catch {
            hubs[0].log(.warning, "aborting the transaction '\(member.transactionalID)' may have left open failed: \(error)")
        }
    }

    /// Suspends until every record of `session` has been acknowledged or failed. Runs in
    /// its own task: a transaction must not end early because its caller was cancelled.
    private func waitForSessionRecords(_ session: ProducerSession) async {
        await Task { [self] in
            var delay = 100
            while session.outstanding.value > 0 && !isClosed {
                try? await Task.sleep(for: .microseconds(delay))
                delay = min(delay * 2, 2000)
            }
        }.value
    }
}
