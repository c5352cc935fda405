import Klife
import PostgresNIO

/// The demo's PostgreSQL: the table the consumer writes, and the knob that makes it struggle.
///
/// Table `flow_demo_records` has the primary key (topic, partition, offset): a record written
/// twice (a batch handed out again after a crash or a bad commit) conflicts, and the insert
/// counts its conflicts instead of hiding them.
///
/// The struggle ("slow"): an AFTER INSERT statement trigger reads `flow_demo_settings.row_cost_ms`;
/// while it is above 0, each insert statement takes an advisory lock (statements go one at a
/// time, as on saturated storage) and sleeps `row_cost_ms` per inserted row before committing.
/// The demo flips that row at the start and the end of the phase; the consumer knows nothing of it.
final class Database: Sendable {
    let client: PostgresClient
    private let logger: Logger
    private let runner: Task<Void, Never>

    init(_ url: PostgresURL) {
        var config = PostgresClient.Configuration(host: url.host, port: url.port, username: url.user,
                                                  password: nil, database: url.database, tls: .disable)
        config.options.maximumConnections = 16
        var logger = Logger(label: "flow-demo.postgres")
        logger.logLevel = .error
        self.logger = logger
        let client = PostgresClient(configuration: config, backgroundLogger: logger)
        self.client = client
        self.runner = Task { await client.run() }
    }

    func shutdown() {
        runner.cancel()
    }

    private func execute(_ sql: String) async throws {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }

    /// Drops and creates the demo's tables and trigger.
    func prepare() async throws {
        // The server may have just started: retry the first statement for a while.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while true {
            do {
                try await execute("SELECT 1")
                break
            } catch {
                if clock.now > deadline { throw error }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        try await execute("DROP TABLE IF EXISTS flow_demo_records")
        try await execute("DROP TABLE IF EXISTS flow_demo_settings")
        try await execute("""
            CREATE TABLE flow_demo_records (
                topic text NOT NULL,
                partition integer NOT NULL,
                "offset" bigint NOT NULL,
                key text,
                seq bigint NOT NULL,
                value jsonb NOT NULL,
                inserted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                PRIMARY KEY (topic, partition, "offset"))
            """)
        try await execute("CREATE TABLE flow_demo_settings (id integer PRIMARY KEY, row_cost_ms double precision NOT NULL)")
        try await execute("INSERT INTO flow_demo_settings VALUES (1, 0)")
        try await execute("""
            CREATE OR REPLACE FUNCTION flow_demo_struggle() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                cost double precision;
                n bigint;
            BEGIN
                SELECT row_cost_ms INTO cost FROM flow_demo_settings WHERE id = 1;
                IF cost > 0 THEN
                    SELECT count(*) INTO n FROM new_rows;
                    PERFORM pg_advisory_xact_lock(4242);
                    PERFORM pg_sleep(cost * n / 1000.0);
                END IF;
                RETURN NULL;
            END $$
            """)
        try await execute("""
            CREATE TRIGGER flow_demo_struggle AFTER INSERT ON flow_demo_records
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flow_demo_struggle()
            """)
    }

    /// Inserts a batch in one statement; returns how many rows were new (the rest conflicted:
    /// they were written before).
    func insert(_ batch: ConsumerBatch) async throws -> Int {
        var offsets: [Int64] = []
        var keys: [String] = []
        var values: [String] = []
        offsets.reserveCapacity(batch.records.count)
        keys.reserveCapacity(batch.records.count)
        values.reserveCapacity(batch.records.count)
        for record in batch.records {
            offsets.append(record.offset)
            keys.append(record.keyString ?? "")
            values.append(record.valueString ?? "{}")
        }
        let topic = batch.topicPartition.topic
        let partition = batch.topicPartition.partition
        let query: PostgresQuery = """
            WITH ins AS (
                INSERT INTO flow_demo_records (topic, partition, "offset", key, seq, value)
                SELECT \(topic), \(partition), u.off, u.key, (u.value::jsonb->>'seq')::bigint, u.value::jsonb
                FROM unnest(\(offsets)::bigint[], \(keys)::text[], \(values)::text[]) AS u(off, key, value)
                ON CONFLICT (topic, partition, "offset") DO NOTHING
                RETURNING 1)
            SELECT count(*) FROM ins
            """
        let rows = try await client.query(query, logger: logger)
        var inserted: Int64 = 0
        for try await n in rows.decode(Int64.self) { inserted = n }
        return Int(inserted)
    }

    /// Sets the per-row cost of the "slow" struggle (0: none).
    func setRowCost(milliseconds: Double) async throws {
        try await client.query("UPDATE flow_demo_settings SET row_cost_ms = \(milliseconds) WHERE id = 1", logger: logger)
    }

    /// Holds an EXCLUSIVE lock on the table (inserts wait, reads go on) for `duration`, on a
    /// connection of its own, then commits.
    func holdExclusiveLock(for duration: Duration) async throws {
        try await client.withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            try await connection.query("LOCK TABLE flow_demo_records IN EXCLUSIVE MODE", logger: logger)
            try? await Task.sleep(for: duration)
            try await connection.query("COMMIT", logger: logger)
        }
    }

    struct Contents {
        var rows: Int
        /// Distinct sequence numbers in 0..<records.
        var distinctSeqs: Int
        /// The same sequence number at two offsets (a producer duplicate).
        var repeatedSeqs: Int
        /// Per partition: the offset after the highest one written.
        var endOffsets: [Int32: Int64]
    }

    /// What the table holds for `topic`.
    func contents(topic: String, records: Int) async throws -> Contents {
        let totals = try await client.query("""
            SELECT count(*), count(DISTINCT seq) FILTER (WHERE seq >= 0 AND seq < \(Int64(records))), count(DISTINCT seq)
            FROM flow_demo_records WHERE topic = \(topic)
            """, logger: logger)
        var c = Contents(rows: 0, distinctSeqs: 0, repeatedSeqs: 0, endOffsets: [:])
        for try await (rows, inRange, distinct) in totals.decode((Int64, Int64, Int64).self) {
            c.rows = Int(rows)
            c.distinctSeqs = Int(inRange)
            c.repeatedSeqs = Int(rows - distinct)
        }
        let ends = try await client.query("""
            SELECT partition, max("offset") + 1 FROM flow_demo_records WHERE topic = \(topic) GROUP BY partition
            """, logger: logger)
        for try await (partition, end) in ends.decode((Int32, Int64).self) { c.endOffsets[partition] = end }
        return c
    }
}
