import Klife
import KlifeTesting
import Glibc

/// Exit statuses: 0 success, 1 runtime failure, 64 usage error (`EX_USAGE`).
enum ExitStatus {
    static let success: Int32 = 0
    static let failure: Int32 = 1
    static let usage: Int32 = 64
}

/// A `klife` subcommand: a name for the dispatcher and an entry point taking the words after it.
protocol Subcommand {
    /// The word after `klife`.
    static var name: String { get }
    /// One line for the top-level help.
    static var summary: String { get }
    /// Runs the command with the words after its name; returns the exit status.
    static func main(_ arguments: [String]) async throws -> Int32
}

/// The `klife` executable: dispatches to a subcommand and maps errors to exit statuses.
@main
struct KlifeCommand {
    static let version = "0.1.0"

    static var subcommands: [any Subcommand.Type] {
        [BrokerCommand.self, MetadataCommand.self, TopicCommand.self,
         ProduceCommand.self, ConsumeCommand.self, GroupCommand.self, DemoCommand.self, BenchCommand.self]
    }

    static var help: String {
        let width = subcommands.map { $0.name.count }.max() ?? 0
        let commands = subcommands.map { command in
            "  \(command.name)" + String(repeating: " ", count: width - command.name.count) + "   \(command.summary)"
        }.joined(separator: "\n")
        return """
            klife \(version) — a kcat-like Kafka command-line client built on Klife for Swift.

            Usage: klife <command> [options]

            Commands:
            \(commands)

            Options:
              -h, --help      Show this help ('klife <command> --help' for a command)
              -V, --version   Show the version

            Examples:
              klife broker                                   # dev broker on a free port
              klife topic create -b 127.0.0.1:9092 events --partitions 3
              seq 1 1000 | klife produce -b 127.0.0.1:9092 -t events
              klife consume -b 127.0.0.1:9092 -t events -o beginning -e
              klife group offsets -b 127.0.0.1:9092 billing
              klife demo

            Exit status: 0 success, 1 runtime failure, 64 usage error.
            """
    }

    static func main() async {
        let status = await run(Array(CommandLine.arguments.dropFirst()))
        exit(status)
    }

    /// Runs `klife` with `arguments` and returns the exit status; every error is reported here.
    static func run(_ arguments: [String]) async -> Int32 {
        do {
            return try await dispatch(arguments)
        } catch let help as HelpRequest {
            var out = OutputBuffer()
            try? out.write(help.text.hasSuffix("\n") ? help.text : help.text + "\n")
            try? out.flush()
            return ExitStatus.success
        } catch let usage as UsageError {
            let prefix = usage.command.map { "klife \($0)" } ?? "klife"
            printError("\(prefix): \(usage.message)")
            printError("Run '\(prefix) --help' for usage.")
            return ExitStatus.usage
        } catch is OutputClosed {
            return ExitStatus.success
        } catch {
            reportError(describe(error))
            return ExitStatus.failure
        }
    }

    private static func dispatch(_ arguments: [String]) async throws -> Int32 {
        guard let first = arguments.first else {
            throw UsageError("missing command (one of: \(subcommands.map { $0.name }.joined(separator: ", ")))")
        }
        switch first {
        case "-h", "--help":
            throw HelpRequest(text: help)
        case "help":
            guard arguments.count > 1 else { throw HelpRequest(text: help) }
            return try await dispatch([arguments[1], "--help"])
        case "-V", "--version", "version":
            var out = OutputBuffer()
            try out.line("klife \(version)")
            try out.flush()
            return ExitStatus.success
        default:
            guard let command = subcommands.first(where: { $0.name == first }) else {
                throw UsageError(first.hasPrefix("-") ? "unknown option '\(first)'" : "unknown command '\(first)'")
            }
            return try await command.main(Array(arguments.dropFirst()))
        }
    }

    /// The one-line text for an error, whatever its type.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as KlifeError: error.description
        case let error as TestBrokerError: error.description
        case let error as CommandFailure: error.description
        default: String(describing: error)
        }
    }
}
