import CLibFuzzer
import FuzzSupport
import KlifeProtocol

/// `RecordBatchDecoder.decode` over arbitrary bytes, as found in a Fetch partition's records
/// field: any number of batches, every codec (the codec sits in each batch's attributes).
///
/// Each input is decoded twice: with the CRC checked, as the consumer does, and without, so
/// mutated batches (whose CRC no longer matches) still reach the record and decompression code.
/// Decompression is bounded by ``MessageCatalog/maxUncompressedBytes``.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    MessageCatalog.decodeRecordBatches(bytes, verifyCRC: true)
    MessageCatalog.decodeRecordBatches(bytes, verifyCRC: false)
    return 0
}

/// SwiftPM links an executable with `main` aliased to `<module>_main`, which a library-mode
/// module never defines; this one hands the process to libFuzzer's driver.
@_cdecl("FuzzRecordBatch_main")
func runLibFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var (argc, argv) = (argc, argv)
    return LLVMFuzzerRunDriver(&argc, &argv, fuzz)
}
