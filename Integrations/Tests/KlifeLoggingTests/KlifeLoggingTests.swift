import InMemoryLogging
import Klife
import KlifeLogging
import Logging
import XCTest

final class KlifeLoggingTests: XCTestCase {
    func testEventsReachTheLoggerWithTheirLevelAndBroker() throws {
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "test") { _ in handler }
        logger.logLevel = .debug
        var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"])
        config.log(to: logger)
        let hook = try XCTUnwrap(config.logHandler)

        hook(Klife.LogEvent(level: .warning, message: "connection lost", broker: "127.0.0.1:9092"))
        hook(Klife.LogEvent(level: .debug, message: "metadata refreshed"))

        let entries = handler.entries
        XCTAssertEqual(entries.count, 2)
        XCTAssertEqual(entries.first?.level, .warning)
        XCTAssertEqual(entries.first?.message.description, "connection lost")
        XCTAssertEqual(entries.first?.metadata["broker"], .string("127.0.0.1:9092"))
        XCTAssertEqual(entries.last?.level, .debug)
        XCTAssertNil(entries.last?.metadata["broker"])
    }

    func testTheLoggersLevelBecomesTheClientsFilter() {
        var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:9092"])
        var logger = Logger(label: "test")
        for (level, expected) in [(Logger.Level.trace, Klife.LogLevel.debug), (.debug, .debug), (.info, .info),
                                  (.notice, .info), (.warning, .warning), (.error, .error), (.critical, .error)] {
            logger.logLevel = level
            config.log(to: logger)
            XCTAssertEqual(config.logLevel, expected, "\(level)")
        }
    }

    func testEveryKlifeLevelKeepsItsName() {
        for level in [Klife.LogLevel.debug, .info, .warning, .error] {
            XCTAssertEqual("\(Logger.Level(level))", level.description)
            XCTAssertEqual(Klife.LogLevel(Logger.Level(level)), level)
        }
    }

    func testARealClientsEventsArriveThroughTheHook() async throws {
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "test") { _ in handler }
        logger.logLevel = .debug
        var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:1"])
        config.connectTimeout = .milliseconds(200)
        config.log(to: logger)
        do {
            let client = try await KlifeClient.connect(config)
            await client.close()
            XCTFail("nothing listens on port 1")
        } catch {
            XCTAssertFalse(handler.entries.isEmpty, "a refused bootstrap is logged")
        }
    }
}
