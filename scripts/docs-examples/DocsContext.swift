// The names the documentation's examples take from their surroundings: the application's own
// code (a database, a search index, an `Order` type) and the values a fragment continues
// from (`client`, `consumer`, `config`, `settings`). scripts/docs-examples.sh compiles every
// Swift block of README.md and docs/*.md with these in scope; a block that declares one of
// them (`let client = ...`) uses its own.
import Foundation
import Klife
import KlifeTesting
import Logging

/// The bootstrap address the examples' `"127.0.0.1:9092"` stands for (the run sets it to an
/// embedded broker's).
nonisolated(unsafe) var docsBootstrap = "127.0.0.1:9092"

nonisolated(unsafe) var client: KlifeClient!
nonisolated(unsafe) var consumer: KlifeConsumer!
nonisolated(unsafe) var proxy: FaultProxy!
nonisolated(unsafe) var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"])
nonisolated(unsafe) var settings = ConsumerConfiguration()

struct ConnectionPool: Sendable {
    var size: Int { 8 }
    func reserve() async throws {}
    func unreserve() {}
}

struct Database: Sendable {
    var inMaintenance: Bool { false }
    var pool: ConnectionPool { ConnectionPool() }
    func insert<Records: Sendable>(_ records: Records) async throws {}
}

struct Order: Sendable {
    init?(json: RecordBytes?) { return nil }
}

struct SearchIndex: Sendable {
    func index(_ order: Order) async throws {}
}

struct AppLogger: Sendable {
    func warning(_ message: String) {}
}

struct ByRegion: Partitioner {
    func partition(topic: String, key: [UInt8]?, value: [UInt8]?, partitionCount: Int32) -> Int32 { 0 }
}

let logger = Logger(label: "docs")
let database = Database()
let pool = ConnectionPool()
let search = SearchIndex()
let myLogger = AppLogger()
let yesterdayMs: Int64 = 0
let shard = 0
let secret = "secret"
let payload: [UInt8] = []
let lines: [String] = []
let line = "an event"
let records: [ProducerRecord] = []
let batch: [ConsumerRecord] = []
let lastOffset: Int64 = 0
let response = (authBytes: [UInt8](), errorCode: Int16(0))

enum RenderError: Error { case corrupt }

func render(_ value: RecordBytes?) async throws {}
func render(_ record: ShareRecord) async throws {}
func store<Records: Sendable>(_ records: Records) async throws {}
func insert<Records: Sendable>(_ records: Records) async throws {}
func flushCaches<Partitions: Sendable>(_ partitions: Partitions) async {}
func parse(_ bytes: UnsafeRawBufferPointer) {}
func handle(_ record: ConsumerRecord) {}
func enrich(_ value: RecordBytes?) -> [UInt8] { [] }
func price(_ order: Order) -> String { "" }
func gauge<Value: BinaryInteger>(_ label: String, _ value: Value) {}
func log(_ error: KlifeError) {}
