import Foundation
@testable import Klife
import KlifeIO
import KlifeTesting

// MARK: - What the consumer group read

/// Every record the soak's consumer group read, by partition and by assignment, and the rules
/// it is held to:
///
/// - **none skipped**: after each round every offset of every partition, up to the end of the
///   log, was read by some member;
/// - **re-deliveries only from the last commit**: an assignment of a partition to a member
///   starts at the offset the group had committed when the member got it (read from the broker
///   in `onAssigned`, before the consumer reads it itself). Every record read in that assignment
///   is at or after that offset (`before commit`), the first one is exactly there
///   (`started past commit`), and the next ones follow without a gap or a repeat. So a record
///   read twice was read again from the commit its partition's new owner started at;
/// - **commits never go back**: an assignment's starting commit is at least every commit an
///   earlier owner of the partition saw succeed (`commit went back`).
///
/// An assignment is identified by the member (one id per incarnation of a slot), the partition
/// and the consumer's own assignment id, which every batch carries, so a batch handed out just
/// before a revoke still counts for the assignment it came from.
final class GroupLedger: Sendable {
    struct Totals: Sendable {
        /// Records handed to members, re-deliveries included.
        var read = 0
        /// Records handed out again (read before, by the same member or another one).
        var redelivered = 0
        /// Offsets checked as read after a round (each once).
        var verified = 0
        /// Partitions assigned to a member.
        var assignments = 0
        /// Assignments ended, by how: revoked, lost, closed, killed.
        var ended: [String: Int] = [:]
    }

    private struct Assignment: Sendable {
        var member: String
        var committedAtStart: Int64
        /// The offset after the last record read in this assignment; -1 before the first.
        var next: Int64 = -1
    }

    private struct Key: Hashable, Sendable {
        var member: Int
        var partition: Int
        var assignmentID: UInt64
    }

    private struct State: Sendable {
        /// Times each offset was read, per partition (saturating at 255).
        var counts: [[UInt8]]
        /// Offsets below this were checked by ``verify(ends:)``.
        var verifiedUpTo: [Int64]
        /// Offsets below this are known to be read (a cursor for ``uncovered(ends:)``).
        var coveredUpTo: [Int64]
        /// The highest commit an owner of the partition saw succeed.
        var lastSeenCommit: [Int64]
        var assignments: [Key: Assignment] = [:]
        var issues = SoakIssues()
        var totals = Totals()
    }

    let partitions: Int
    private let state: Locked<State>

    init(partitions: Int) {
        self.partitions = partitions
        let zeros = [Int64](repeating: 0, count: partitions)
        state = Locked(State(counts: Array(repeating: [], count: partitions), verifiedUpTo: zeros, coveredUpTo: zeros,
                             lastSeenCommit: zeros))
    }

    var totals: Totals { state.withLock { $0.totals } }

    /// A member got `partition` (its consumer's assignment `assignmentID`) while the group's
    /// committed offset for it was `committed` (0 when none: the log starts at 0).
    func assigned(member: Int, name: String, partition: Int, assignmentID: UInt64, committed: Int64) {
        state.withLock { s in
            if committed < s.lastSeenCommit[partition] {
                s.issues.add("commit went back", "\(name) got partition \(partition) at committed offset \(committed), "
                    + "an earlier owner had committed \(s.lastSeenCommit[partition])")
            }
            s.lastSeenCommit[partition] = max(s.lastSeenCommit[partition], committed)
            s.assignments[Key(member: member, partition: partition, assignmentID: assignmentID)] =
                Assignment(member: name, committedAtStart: committed)
            s.totals.assignments += 1
        }
    }

    /// A member's assignment of `partition` ended (`how`: revoked, lost, closed, killed) with
    /// `committed` as the last commit it saw succeed (-1: none).
    func ended(partition: Int, how: String, committed: Int64) {
        state.withLock { s in
            s.lastSeenCommit[partition] = max(s.lastSeenCommit[partition], committed)
            s.totals.ended[how, default: 0] += 1
        }
    }

    /// A batch a member read (handed out by its consumer), checked against its assignment.
    func read(member: Int, name: String, batch: ConsumerBatch) {
        let p = Int(batch.topicPartition.partition)
        state.withLock { s in
            let key = Key(member: member, partition: p, assignmentID: batch.assignmentID)
            var assignment = s.assignments[key]
            if assignment == nil, let first = batch.records.first {
                s.issues.add("unattributed", "\(name) read partition \(p) from \(first.offset) in assignment "
                    + "\(batch.assignmentID), which onAssigned never reported")
            }
            for record in batch.records {
                let offset = record.offset
                if var a = assignment {
                    if offset < a.committedAtStart {
                        s.issues.add("before commit", "\(name) read \(p)@\(offset), below the committed offset "
                            + "\(a.committedAtStart) its assignment started from")
                    }
                    if a.next < 0 && offset > a.committedAtStart {
                        s.issues.add("started past commit", "\(name) started partition \(p) at \(offset), "
                            + "the committed offset was \(a.committedAtStart)")
                    } else if a.next >= 0 && offset < a.next {
                        s.issues.add("repeat in assignment", "\(name) read \(p)@\(offset) after \(a.next - 1) in one assignment")
                    } else if a.next >= 0 && offset > a.next {
                        s.issues.add("gap in assignment", "\(name) read \(p)@\(offset) after \(a.next - 1) in one assignment")
                    }
                    a.next = offset + 1
                    assignment = a
                }
                guard offset >= 0 else { continue }
                let i = Int(offset)
                if i >= s.counts[p].count {
                    s.counts[p].append(contentsOf: repeatElement(0, count: i + 1 - s.counts[p].count + 1024))
                }
                if s.counts[p][i] > 0 { s.totals.redelivered += 1 }
                if s.counts[p][i] < 255 { s.counts[p][i] += 1 }
                s.totals.read += 1
            }
            if let assignment { s.assignments[key] = assignment }
        }
    }

    /// Per partition, how many offsets below `ends` nobody read yet (partitions with none left out).
    func uncovered(ends: [Int64]) -> [Int: Int64] {
        state.withLock { s in
            var missing: [Int: Int64] = [:]
            for p in 0..<partitions {
                var covered = s.coveredUpTo[p]
                while covered < ends[p] && Int(covered) < s.counts[p].count && s.counts[p][Int(covered)] > 0 { covered += 1 }
                s.coveredUpTo[p] = covered
                guard covered < ends[p] else { continue }
                var count: Int64 = 0
                for o in covered..<ends[p] where Int(o) >= s.counts[p].count || s.counts[p][Int(o)] == 0 { count += 1 }
                missing[p] = count
            }
            return missing
        }
    }

    /// The first offsets of `partition` below `end` that nobody read (at most `limit`).
    func unread(partition p: Int, end: Int64, limit: Int = 5) -> [Int64] {
        state.withLock { s in
            var found: [Int64] = []
            var o = s.verifiedUpTo[p]
            while o < end && found.count < limit {
                if Int(o) >= s.counts[p].count || s.counts[p][Int(o)] == 0 { found.append(o) }
                o += 1
            }
            return found
        }
    }

    /// Checks everything read since the last call: every offset from where the previous check
    /// stopped up to `ends` was read (`skipped` otherwise), and hands over what the reads
    /// themselves broke (see the type's rules).
    func verify(ends: [Int64]) -> SoakIssues {
        state.withLock { s in
            var issues = s.issues
            s.issues = SoakIssues()
            for p in 0..<partitions where ends[p] > s.verifiedUpTo[p] {
                var o = s.verifiedUpTo[p]
                while o < ends[p] {
                    if Int(o) >= s.counts[p].count || s.counts[p][Int(o)] == 0 {
                        var to = o + 1
                        while to < ends[p] && (Int(to) >= s.counts[p].count || s.counts[p][Int(to)] == 0) { to += 1 }
                        issues.add("skipped", "partition \(p): offsets \(o)..<\(to) (\(to - o)) read by no member; end \(ends[p])")
                        o = to
                    } else {
                        o += 1
                    }
                }
                s.totals.verified += Int(ends[p] - s.verifiedUpTo[p])
                s.verifiedUpTo[p] = ends[p]
            }
            return issues
        }
    }

    /// Where the checks got to, per partition.
    var verifiedUpTo: [Int64] { state.withLock { $0.verifiedUpTo } }
}
