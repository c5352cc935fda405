import Foundation
import Glibc
import Klife
import XCTest

/// A peer that is not a Kafka broker answers with hostile bytes: the client must fail
/// the connection with a typed error and never trap.
final class HostilePeerTests: XCTestCase {
    /// Accepts connections on a free loopback port and answers every request with `reply(request)`.
    final class HostileServer: @unchecked Sendable {
        // Only `port` is read from other threads, and it is set before init returns.
        let port: Int
        private let listener: Int32
        private var stopped = false

        init(closeAfterReply: Bool = false, reply: @escaping @Sendable ([UInt8]) -> [UInt8]) throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var yes: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
            listen(fd, 16)
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            port = Int(UInt16(bigEndian: addr.sin_port))
            listener = fd
            Thread.detachNewThread {
                while true {
                    let conn = accept(fd, nil, nil)
                    if conn < 0 { return }
                    Thread.detachNewThread {
                        defer { close(conn) }
                        var buffer = [UInt8](repeating: 0, count: 65536)
                        while true {
                            let n = read(conn, &buffer, buffer.count)
                            if n <= 0 { return }
                            let answer = reply(Array(buffer[0..<n]))
                            if answer.isEmpty { return }
                            _ = answer.withUnsafeBytes { write(conn, $0.baseAddress, $0.count) }
                            if closeAfterReply { return }
                        }
                    }
                }
            }
        }

        func stop() {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
        }
    }

    private func connectExpectingFailure(_ server: HostileServer, file: StaticString = #filePath, line: UInt = #line) async -> KlifeError? {
        var config = KlifeConfiguration(bootstrapServers: ["127.0.0.1:\(server.port)"])
        config.connectTimeout = .seconds(2)
        config.requestTimeout = .seconds(2)
        config.maxResponseBytes = 1 << 20
        do {
            let client = try await KlifeClient.connect(config)
            await client.close()
            XCTFail("connected to a hostile peer", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    /// The correlation id of a request frame (bytes 8..<12).
    private static func correlationID(_ request: [UInt8]) -> [UInt8] {
        request.count >= 12 ? Array(request[8..<12]) : [0, 0, 0, 0]
    }

    func testGarbageFrameFailsConnectionWithTypedError() async throws {
        let server = try HostileServer { request in
            [0, 0, 0, 12] + Self.correlationID(request) + [0xff, 0xff, 0xff, 0xff, 0x80, 0x80, 0x80, 0x80]
        }
        defer { server.stop() }
        let error = await connectExpectingFailure(server)
        XCTAssertEqual(error?.code, .bootstrapUnreachable)
        XCTAssertTrue(error?.description.contains("malformed") ?? false, error?.description ?? "")
    }

    func testAbsurdFrameSizeFailsConnection() async throws {
        let server = try HostileServer { _ in [0x7f, 0xff, 0xff, 0xff, 1, 2, 3] }
        defer { server.stop() }
        let error = await connectExpectingFailure(server)
        XCTAssertTrue(error?.description.contains("response size") ?? false, error?.description ?? "")
    }

    func testWrongCorrelationIDFailsConnection() async throws {
        let server = try HostileServer { _ in [0, 0, 0, 6, 0x12, 0x34, 0x56, 0x78, 0, 0] }
        defer { server.stop() }
        let error = await connectExpectingFailure(server)
        XCTAssertTrue(error?.description.contains("correlation id") ?? false, error?.description ?? "")
    }

    func testSeededRandomAnswersNeverTrap() async throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var answers: [[UInt8]] = []
        for _ in 0..<40 {
            var bytes: [UInt8] = []
            let n = 4 + Int(state % 64)
            for _ in 0..<n {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                bytes.append(UInt8(truncatingIfNeeded: state))
            }
            answers.append(bytes)
        }
        for answer in answers {
            let server = try HostileServer { request in
                // A plausible frame: right size prefix and correlation id, random body.
                let body = Self.correlationID(request) + answer
                let size = UInt32(body.count)
                return [UInt8(size >> 24), UInt8(truncatingIfNeeded: size >> 16), UInt8(truncatingIfNeeded: size >> 8), UInt8(truncatingIfNeeded: size)] + body
            }
            let error = await connectExpectingFailure(server)
            XCTAssertNotNil(error)
            server.stop()
        }
    }

    func testPeerClosingMidResponseFailsConnection() async throws {
        // Promises 256 bytes, sends 2, then closes: the close is seen, not a timeout.
        let server = try HostileServer(closeAfterReply: true) { _ in [0, 0, 1, 0, 0, 0] }
        defer { server.stop() }
        let error = await connectExpectingFailure(server)
        XCTAssertEqual(error?.code, .bootstrapUnreachable)
        XCTAssertTrue(error?.description.contains("closed by peer") ?? false, error?.description ?? "")
    }
}
