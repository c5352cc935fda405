import CLibFuzzer
import FuzzSupport
import KlifeProtocol

/// Every message decoder of `KlifeProtocol/Messages` (see ``MessageCatalog``): the first
/// byte picks the decoder, the second its version, the rest is the body.
///
/// A clean Fetch response's record batches are decoded too, and a clean ApiVersions
/// response becomes a version table that every request negotiates against.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let (decoder, version) = MessageCatalog.pick(data[0], data[1])
    var reader = ByteReader(UnsafeRawBufferPointer(start: data + 2, count: size - 2))
    decoder.decode(&reader, version: version)
    fuzzCheck(reader.offset <= reader.count, "\(decoder.name) v\(version) read to \(reader.offset) of \(reader.count)")
    return 0
}

/// SwiftPM links an executable with `main` aliased to `<module>_main`, which a library-mode
/// module never defines; this one hands the process to libFuzzer's driver.
@_cdecl("FuzzResponses_main")
func runLibFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var (argc, argv) = (argc, argv)
    return LLVMFuzzerRunDriver(&argc, &argv, fuzz)
}
