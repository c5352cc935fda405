/// Just enough of a Swift tokenizer to read byte-array and string literals out of the
/// unit tests: identifiers, integer literals, string literals (with their escapes
/// decoded) and single-character punctuation. Comments and whitespace are dropped.
enum SwiftToken: Equatable {
    case identifier(String)
    case integer(Int64)
    /// A string literal; `nil` when it interpolates (`\(…)`) and so has no fixed value.
    case string(String?)
    case punctuation(Character)
    /// Anything else (floating-point literals, operators this reader has no use for).
    case other
}

enum SwiftTokenizer {
    static func tokens(_ source: String) -> [SwiftToken] {
        let chars = Array(source.unicodeScalars)
        var out: [SwiftToken] = []
        var i = 0
        func peek(_ k: Int) -> Unicode.Scalar? { i + k < chars.count ? chars[i + k] : nil }
        while i < chars.count {
            let c = chars[i]
            if c.properties.isWhitespace {
                i += 1
            } else if c == "/" && peek(1) == "/" {
                while i < chars.count && chars[i] != "\n" { i += 1 }
            } else if c == "/" && peek(1) == "*" {
                i += 2
                while i < chars.count && !(chars[i] == "*" && peek(1) == "/") { i += 1 }
                i += 2
            } else if c == "\"" {
                out.append(.string(readString(chars, &i)))
            } else if c.properties.isAlphabetic || c == "_" {
                var name = ""
                while i < chars.count && (chars[i].properties.isAlphabetic || chars[i] == "_"
                                          || ("0"..."9").contains(chars[i])) {
                    name.unicodeScalars.append(chars[i])
                    i += 1
                }
                out.append(.identifier(name))
            } else if ("0"..."9").contains(c) {
                out.append(readNumber(chars, &i))
            } else {
                out.append("[](){},:=+-.&".unicodeScalars.contains(c) ? .punctuation(Character(c)) : .other)
                i += 1
            }
        }
        return out
    }

    /// Reads a string literal starting at its opening quote; multi-line literals are skipped whole.
    private static func readString(_ chars: [Unicode.Scalar], _ i: inout Int) -> String? {
        if i + 2 < chars.count && chars[i + 1] == "\"" && chars[i + 2] == "\"" {
            i += 3
            while i + 2 < chars.count && !(chars[i] == "\"" && chars[i + 1] == "\"" && chars[i + 2] == "\"") { i += 1 }
            i += 3
            return nil
        }
        i += 1
        var value = String.UnicodeScalarView()
        var fixed = true
        while i < chars.count && chars[i] != "\"" && chars[i] != "\n" {
            guard chars[i] == "\\", i + 1 < chars.count else {
                value.append(chars[i])
                i += 1
                continue
            }
            let escaped = chars[i + 1]
            i += 2
            switch escaped {
            case "n": value.append("\n")
            case "t": value.append("\t")
            case "r": value.append("\r")
            case "0": value.append("\0")
            case "u":
                // \u{hex}
                var hex = ""
                if i < chars.count && chars[i] == "{" { i += 1 }
                while i < chars.count && chars[i] != "}" { hex.unicodeScalars.append(chars[i]); i += 1 }
                i += 1
                if let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) { value.append(scalar) } else { fixed = false }
            case "(":
                fixed = false
                var depth = 1
                while i < chars.count && depth > 0 {
                    if chars[i] == "(" { depth += 1 } else if chars[i] == ")" { depth -= 1 }
                    i += 1
                }
            default: value.append(escaped) // \\ \" \'
            }
        }
        i += 1
        return fixed ? String(value) : nil
    }

    private static func readNumber(_ chars: [Unicode.Scalar], _ i: inout Int) -> SwiftToken {
        var text = ""
        var radix = 10
        if chars[i] == "0", i + 1 < chars.count, chars[i + 1] == "x" || chars[i + 1] == "b" || chars[i + 1] == "o" {
            radix = chars[i + 1] == "x" ? 16 : (chars[i + 1] == "b" ? 2 : 8)
            i += 2
        }
        var isFloat = false
        while i < chars.count {
            let c = chars[i]
            if c == "_" {
                i += 1
            } else if c.properties.isASCIIHexDigit || ("0"..."9").contains(c) {
                text.unicodeScalars.append(c)
                i += 1
            } else if c == ".", radix == 10, i + 1 < chars.count, ("0"..."9").contains(chars[i + 1]) {
                isFloat = true
                text.unicodeScalars.append(c)
                i += 1
            } else {
                break
            }
        }
        guard !isFloat, let value = Int64(text, radix: radix) else { return .other }
        return .integer(value)
    }
}
