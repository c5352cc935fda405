import KlifeProtocol

/// Turning a Fetch answer's record bytes into records, shared by ``KlifeClient/fetch(topic:partition:offset:maxBytes:maxWait:isolation:)``
/// and the fetch engine.
enum FetchDecoding {
    /// Locates a partition's records (CRC checked, decompressed at most `maxUncompressedBytes`)
    /// without copying them. A batch cut off at the end of the answer is reported, not an error.
    static func index(_ bytes: ByteBlock, broker: String, maxUncompressedBytes: Int) throws(KlifeError) -> RecordIndex {
        guard !bytes.isEmpty else { return .empty }
        do {
            return try RecordBatchDecoder.index(bytes, maxUncompressedBytes: maxUncompressedBytes)
        } catch {
            throw .malformed(error, broker: broker)
        }
    }

    /// The records `output` says are visible, as views over `index`'s buffers. When they are one
    /// run of slots (no transaction markers or aborted records in between: the usual case) the
    /// slots are shared; otherwise the visible ones are gathered into one array.
    static func visibleRecords(_ index: RecordIndex, _ output: TransactionFilter.Output, topic: String,
                               partition: Int32) -> ConsumerRecords {
        var runs: [Range<Int>] = []
        for (batch, range) in output.visible {
            let base = index.batches[batch].records.lowerBound
            let slots = base + range.lowerBound..<base + range.upperBound
            if let last = runs.last, last.upperBound == slots.lowerBound {
                runs[runs.count - 1] = last.lowerBound..<slots.upperBound
            } else {
                runs.append(slots)
            }
        }
        let slots: ArraySlice<RecordSlot>
        switch runs.count {
        case 0: slots = []
        case 1: slots = index.slots[runs[0]]
        default:
            var gathered: [RecordSlot] = []
            gathered.reserveCapacity(runs.reduce(0) { $0 + $1.count })
            for run in runs { gathered += index.slots[run] }
            slots = gathered[...]
        }
        return ConsumerRecords(topic: topic, partition: partition, fetched: index.fetched, inflated: index.inflated, slots: slots)
    }
}
