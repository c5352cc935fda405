/// The golden bytes one unit-test file spells out.
///
/// A byte array is read where the file declares one (`let|var name: [UInt8] = …`) and grows
/// with each later `name += …`. The expression may concatenate (`+`) array literals of
/// integers, `[UInt8](repeating:count:)`, the `RBBytes` helpers of the protocol tests
/// (`i8`/`i16`/`i32`/`u32`/`i64` with a literal, `utf8` with a string), `Array("…".utf8)`,
/// and arrays declared earlier in the file (`name` or `Self.name`). An array whose
/// expression holds anything else is dropped: its value is not known without running the test.
struct GoldenFile {
    /// The file's name without directory and extension, for seed names.
    let stem: String
    /// The file's text.
    let text: String
    /// Every byte array read, in declaration order, with its name.
    private(set) var arrays: [(name: String, bytes: [UInt8])] = []
    /// Every string literal without interpolation.
    private(set) var strings: [String] = []
    /// Every chain of string literals (`"…" + "…"`) made only of hex digits, decoded.
    private(set) var hexChains: [[UInt8]] = []

    init(path: String, text: String) {
        self.stem = String(path.split(separator: "/").last ?? "").replacingOccurrences(of: ".swift", with: "")
        self.text = text
        let tokens = SwiftTokenizer.tokens(text)
        var reader = Evaluator(tokens: tokens)
        arrays = reader.readArrays()
        for token in tokens { if case .string(let s?) = token { strings.append(s) } }
        hexChains = Self.hexChains(tokens)
    }

    private static func hexChains(_ tokens: [SwiftToken]) -> [[UInt8]] {
        var chains: [[UInt8]] = []
        var i = 0
        while i < tokens.count {
            guard case .string(let first?) = tokens[i] else { i += 1; continue }
            var text = first
            var j = i + 1
            while j + 1 < tokens.count, tokens[j] == .punctuation("+"), case .string(let next?) = tokens[j + 1] {
                text += next
                j += 2
            }
            if text.count >= 2, text.count % 2 == 0, text.unicodeScalars.allSatisfy(\.properties.isASCIIHexDigit) {
                var bytes: [UInt8] = []
                var index = text.startIndex
                while index < text.endIndex {
                    let next = text.index(index, offsetBy: 2)
                    bytes.append(UInt8(text[index..<next], radix: 16)!)
                    index = next
                }
                chains.append(bytes)
            }
            i = j
        }
        return chains
    }
}

/// Reads declarations and appends from a token stream.
private struct Evaluator {
    let tokens: [SwiftToken]
    var position = 0
    /// Latest value of each known array, by name.
    var known: [String: [UInt8]] = [:]

    init(tokens: [SwiftToken]) { self.tokens = tokens }

    mutating func readArrays() -> [(name: String, bytes: [UInt8])] {
        var found: [(name: String, bytes: [UInt8])] = []
        var latest: [String: Int] = [:]   // name → index in `found` of its current declaration
        while position < tokens.count {
            let start = position
            if case .identifier(let keyword) = tokens[position], keyword == "let" || keyword == "var",
               case .identifier(let name)? = at(1), at(2) == .punctuation(":"), at(3) == .punctuation("["),
               at(4) == .identifier("UInt8"), at(5) == .punctuation("]"), at(6) == .punctuation("=") {
                position += 7
                latest[name] = nil
                known[name] = nil
                if let bytes = expression() {
                    known[name] = bytes
                    latest[name] = found.count
                    found.append((name, bytes))
                }
            } else if case .identifier(let name) = tokens[position], at(1) == .punctuation("+"),
                      at(2) == .punctuation("="), let index = latest[name] {
                position += 3
                if let more = expression(), let current = known[name] {
                    known[name] = current + more
                    found[index].bytes = current + more
                } else {
                    // The array grew by something unknown: its final value is unknown too.
                    known[name] = nil
                    latest[name] = nil
                    found[index].bytes = []
                }
            }
            if position == start { position += 1 }
        }
        return found.filter { !$0.bytes.isEmpty }
    }

    private func at(_ offset: Int) -> SwiftToken? {
        position + offset < tokens.count ? tokens[position + offset] : nil
    }

    private mutating func take(_ token: SwiftToken) -> Bool {
        guard at(0) == token else { return false }
        position += 1
        return true
    }

    /// term { "+" term }, not followed by a member access or call.
    private mutating func expression() -> [UInt8]? {
        guard var value = term() else { return nil }
        while at(0) == .punctuation("+"), at(1) != .punctuation("=") {
            position += 1
            guard let next = term() else { return nil }
            value += next
        }
        return at(0) == .punctuation(".") ? nil : value
    }

    private mutating func term() -> [UInt8]? {
        switch at(0) {
        case .punctuation("(")?:
            position += 1
            guard let value = expression(), take(.punctuation(")")) else { return nil }
            return value
        case .punctuation("[")?:
            if at(1) == .identifier("UInt8") && at(2) == .punctuation("]") { return repeating() }
            return arrayLiteral()
        case .identifier("RBBytes")?:
            return helper()
        case .identifier("Array")?:
            // Array("text".utf8)
            guard at(1) == .punctuation("("), case .string(let s?)? = at(2), at(3) == .punctuation("."),
                  at(4) == .identifier("utf8"), at(5) == .punctuation(")") else { return nil }
            position += 6
            return Array(s.utf8)
        case .identifier("Self")?:
            guard at(1) == .punctuation("."), case .identifier(let name)? = at(2), let value = known[name] else { return nil }
            position += 3
            return value
        case .identifier(let name)?:
            guard let value = known[name] else { return nil }
            position += 1
            return value
        default:
            return nil
        }
    }

    /// [ int, int, … ] with every int in 0...255.
    private mutating func arrayLiteral() -> [UInt8]? {
        position += 1
        var bytes: [UInt8] = []
        while true {
            if take(.punctuation("]")) { return bytes }
            guard case .integer(let v)? = at(0), (0...255).contains(v) else { return nil }
            bytes.append(UInt8(v))
            position += 1
            if take(.punctuation("]")) { return bytes }
            guard take(.punctuation(",")) else { return nil }
        }
    }

    /// [UInt8](repeating: v, count: n)
    private mutating func repeating() -> [UInt8]? {
        guard at(3) == .punctuation("("), at(4) == .identifier("repeating"), at(5) == .punctuation(":"),
              case .integer(let v)? = at(6), (0...255).contains(v), at(7) == .punctuation(","),
              at(8) == .identifier("count"), at(9) == .punctuation(":"), case .integer(let n)? = at(10),
              (0...65_536).contains(n), at(11) == .punctuation(")") else { return nil }
        position += 12
        return [UInt8](repeating: UInt8(v), count: Int(n))
    }

    /// RBBytes.i8/i16/i32/u32/i64(literal) and RBBytes.utf8("text").
    private mutating func helper() -> [UInt8]? {
        guard at(1) == .punctuation("."), case .identifier(let kind)? = at(2), at(3) == .punctuation("(") else { return nil }
        position += 4
        if kind == "utf8" {
            guard case .string(let s?)? = at(0), at(1) == .punctuation(")") else { return nil }
            position += 2
            return Array(s.utf8)
        }
        let negative = take(.punctuation("-"))
        guard case .integer(let magnitude)? = at(0), at(1) == .punctuation(")") else { return nil }
        position += 2
        let v = negative ? -magnitude : magnitude
        func bigEndian<T: FixedWidthInteger>(_: T.Type) -> [UInt8]? {
            guard let x = T(exactly: v) else { return nil }
            return withUnsafeBytes(of: x.bigEndian) { Array($0) }
        }
        switch kind {
        case "i8": return bigEndian(Int8.self)
        case "i16": return bigEndian(Int16.self)
        case "i32": return bigEndian(Int32.self)
        case "u32": return bigEndian(UInt32.self)
        case "i64": return bigEndian(Int64.self)
        default: return nil
        }
    }
}
