/// Settings of the transactional producer pool used by ``KlifeClient/transaction(isolation:_:)``.
///
/// The client runs `poolSize` transactional producers, each with its own transactional id
/// `"<baseTransactionalID>-<n>"` (n = 0..<poolSize), producer id and epoch. A transaction
/// takes a free member for its whole life, so up to `poolSize` transactions run at once;
/// more wait for a member.
///
/// The ids must be stable across restarts of the same application instance and unique
/// between instances running at the same time: starting a client with the same ids
/// fences the previous holder (its transactions fail with ``KlifeError/Code/producerFenced``),
/// which is how a restarted instance makes sure a stalled predecessor can never commit.
///
/// ```swift
/// var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"])
/// config.transactions = TransactionConfiguration(baseTransactionalID: "orders-service-0", poolSize: 4)
/// ```
public struct TransactionConfiguration: Sendable {
    /// Prefix of every pool member's transactional id.
    public var baseTransactionalID: String
    /// Transactional producers in the pool (transactions that may run at once), 1...64.
    public var poolSize: Int
    /// Longest a transaction may stay open. The coordinator aborts transactions older than
    /// this, and the client aborts (rather than commits) a transaction whose block returns
    /// after it. The broker caps it with `transaction.max.timeout.ms` (15 minutes by default).
    public var timeout: Duration
    /// How long `transaction` waits for a free pool member before failing with `timedOut`.
    public var acquireTimeout: Duration

    /// Creates transaction settings.
    public init(baseTransactionalID: String, poolSize: Int = 1, timeout: Duration = .seconds(60),
                acquireTimeout: Duration = .seconds(30)) {
        self.baseTransactionalID = baseTransactionalID
        self.poolSize = poolSize
        self.timeout = timeout
        self.acquireTimeout = acquireTimeout
    }

    /// The transactional id of pool member `member`.
    public func transactionalID(member: Int) -> String {
        "\(baseTransactionalID)-\(member)"
    }

    func validate(producer: ProducerConfiguration) throws(KlifeError) {
        if baseTransactionalID.isEmpty { throw .invalidConfiguration("transactions.baseTransactionalID", "must not be empty") }
        if poolSize < 1 || poolSize > 64 { throw .invalidConfiguration("transactions.poolSize", "must be 1...64, got \(poolSize)") }
        if timeout < .milliseconds(1) || timeout.nanoseconds / 1_000_000 > UInt64(Int32.max) {
            throw .invalidConfiguration("transactions.timeout", "must be 1 ms...24 days")
        }
        if acquireTimeout < .zero { throw .invalidConfiguration("transactions.acquireTimeout", "must not be negative") }
        if producer.acks != .all { throw .invalidConfiguration("producer.acks", "transactions need acks = .all") }
        if producer.maxInFlightPerBroker > 5 {
            throw .invalidConfiguration("producer.maxInFlightPerBroker", "must be 1...5 with transactions, got \(producer.maxInFlightPerBroker)")
        }
    }
}
