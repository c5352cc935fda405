import Glibc
import KlifeProtocol

/// One response being built: header and fields in a ``ByteWriter``, with record bytes of
/// the prepared log spliced in by reference (written with `writev`, never copied).
struct ResponseFrame: ~Copyable {
    /// The frame's bytes so far; handlers write the response body here.
    var body = ByteWriter(capacity: 64 << 10)
    /// Record slices and the writer offset each one goes after.
    private var splices: [(at: Int, bytes: UnsafeRawBufferPointer)] = []
    private var splicedBytes = 0
    private var iovecs: [iovec] = []

    /// Starts a response: size placeholder, correlation id, and the tagged-field byte of
    /// response header v1 when `flexibleHeader`.
    mutating func begin(correlationID: Int32, flexibleHeader: Bool) {
        body.removeAll()
        splices.removeAll(keepingCapacity: true)
        splicedBytes = 0
        body.writeInt32(0)
        body.writeInt32(correlationID)
        if flexibleHeader { body.writeUnsignedVarint(0) }
    }

    /// Writes a non-null BYTES field whose content is `records`, without copying them.
    mutating func writeRecords(_ records: UnsafeRawBufferPointer) {
        body.writeInt32(Int32(records.count))
        guard records.count > 0 else { return }
        splices.append((body.count, records))
        splicedBytes += records.count
    }

    /// Patches the size and writes the whole frame to `descriptor`.
    /// - Returns: `false` when the peer is gone or the write failed.
    mutating func send(to descriptor: Int32) -> Bool {
        let total = body.count + splicedBytes
        guard total - 4 <= Int(Int32.max) else { return false }
        body.patchInt32(Int32(total - 4), at: 0)
        if splices.isEmpty {
            return body.withUnsafeBytes { Self.writeAll(descriptor, $0) }
        }
        var vectors = iovecs
        iovecs = []
        defer { iovecs = vectors }
        return body.withUnsafeBytes { head in
            vectors.removeAll(keepingCapacity: true)
            var position = 0
            func add(_ bytes: UnsafeRawBufferPointer) {
                guard let base = bytes.baseAddress, bytes.count > 0 else { return }
                vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: base), iov_len: bytes.count))
            }
            for splice in splices {
                add(UnsafeRawBufferPointer(rebasing: head[position..<splice.at]))
                add(splice.bytes)
                position = splice.at
            }
            add(UnsafeRawBufferPointer(rebasing: head[position...]))
            return Self.writeAll(descriptor, &vectors)
        }
    }

    /// Writes `bytes` completely (retrying short writes and interruptions).
    private static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = write(descriptor, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        return true
    }

    /// Writes every vector completely, at most `IOV_MAX` at a time; consumes `vectors`.
    private static func writeAll(_ descriptor: Int32, _ vectors: inout [iovec]) -> Bool {
        var first = 0
        while first < vectors.count {
            let batch = Int32(min(vectors.count - first, 1024))
            let n = vectors.withUnsafeBufferPointer { writev(descriptor, $0.baseAddress! + first, batch) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            var left = n
            while left > 0 && first < vectors.count {
                let length = vectors[first].iov_len
                if left >= length {
                    left -= length
                    first += 1
                } else {
                    vectors[first].iov_base += left
                    vectors[first].iov_len -= left
                    left = 0
                }
            }
        }
        return true
    }
}
