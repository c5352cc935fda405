import Klife
import KlifeProtocol

/// Turns consumed records into output lines, kcat style.
///
/// A format string is compiled once into segments: literal bytes and fields.
/// Tokens: `%t` topic, `%p` partition, `%o` offset, `%k` key, `%s` value, `%h` headers
/// (`name=value` joined by `,`), `%T` timestamp (ms), `%K` key length, `%S` value length,
/// `%%` a percent sign. Escapes `\n`, `\t`, `\r`, `\\`. A newline is appended unless the
/// format already ends with one.
struct RecordFormatter {
    enum Segment: Equatable {
        case literal([UInt8])
        case topic, partition, offset, key, value, headers, timestamp, keyLength, valueLength
    }

    /// The tokens `-f` understands, for help text.
    static let tokenHelp = """
        Format tokens (-f):
          %t topic   %p partition   %o offset   %T timestamp (ms since epoch)
          %k key     %s value       %h headers (name=value,...)
          %K key length (-1 for null)   %S value length (-1 for null)   %% a percent sign
          Escapes: \\n \\t \\r \\\\. A newline is added unless FORMAT ends with \\n.
        """

    let segments: [Segment]
    /// Printed for a null key or value (empty unless `-Z`).
    let nullText: [UInt8]

    /// Compiles a `-f` format string.
    /// - Throws: ``UsageError`` for an unknown or dangling `%` token.
    init(format: String, nullText: String, command: String) throws(UsageError) {
        var segments: [Segment] = []
        var literal: [UInt8] = []
        func flushLiteral() {
            if !literal.isEmpty { segments.append(.literal(literal)); literal = [] }
        }
        var iterator = ParsedArguments.unescape(format).makeIterator()
        while let ch = iterator.next() {
            guard ch == "%" else { literal.append(contentsOf: ch.utf8); continue }
            guard let token = iterator.next() else {
                throw UsageError("format ends with a lone '%' (use %% for a percent sign)", command: command)
            }
            let field: Segment
            switch token {
            case "%": literal.append(UInt8(ascii: "%")); continue
            case "t": field = .topic
            case "p": field = .partition
            case "o": field = .offset
            case "k": field = .key
            case "s": field = .value
            case "h": field = .headers
            case "T": field = .timestamp
            case "K": field = .keyLength
            case "S": field = .valueLength
            default:
                throw UsageError("unknown format token '%\(token)' (known: %t %p %o %k %s %h %T %K %S %%)", command: command)
            }
            flushLiteral()
            segments.append(field)
        }
        // Pending literal text is only flushed before a field, so it holds the format's tail.
        if literal.last != UInt8(ascii: "\n") { literal.append(UInt8(ascii: "\n")) }
        flushLiteral()
        self.segments = segments
        self.nullText = Array(nullText.utf8)
    }

    /// `--tsv`: `partition<TAB>offset<TAB>key<TAB>value`.
    static let tsvFormat = "%p\\t%o\\t%k\\t%s\\n"

    /// The default layout built from the `--print-*` flags:
    /// `[topic/partition@offset<TAB>timestamp<TAB>][headers<TAB>][key<DELIM>]value`.
    static func defaultFormat(meta: Bool, headers: Bool, key: Bool, keyDelimiter: String) -> String {
        var format = ""
        if meta { format += "%t/%p@%o\t%T\t" }
        if headers { format += "%h\t" }
        if key { format += "%k" + keyDelimiter.replacingBackslashes() }
        return format + "%s\\n"
    }

    /// Appends the formatted `record` to `out`.
    func write(_ record: ConsumerRecord, to out: inout OutputBuffer) throws {
        for segment in segments {
            switch segment {
            case .literal(let bytes): try out.write(bytes)
            case .topic: try out.write(record.topic)
            case .partition: try out.write(String(record.partition))
            case .offset: try out.write(String(record.offset))
            case .timestamp: try out.write(String(record.timestamp))
            case .key: try out.write(record.key, null: nullText)
            case .value: try out.write(record.value, null: nullText)
            case .keyLength: try out.write(String(record.key?.count ?? -1))
            case .valueLength: try out.write(String(record.value?.count ?? -1))
            case .headers:
                for (i, header) in record.headers.enumerated() {
                    if i > 0 { try out.write(CollectionOfOne(UInt8(ascii: ","))) }
                    try out.write(header.key)
                    try out.write(CollectionOfOne(UInt8(ascii: "=")))
                    try out.write(header.value ?? nullText)
                }
            }
        }
    }
}

private extension String {
    /// Doubles backslashes so a literal delimiter survives ``ParsedArguments/unescape(_:)``
    /// and protects `%` so it survives format compilation.
    func replacingBackslashes() -> String {
        var out = ""
        for ch in self {
            switch ch {
            case "\\": out += "\\\\"
            case "%": out += "%%"
            default: out.append(ch)
            }
        }
        return out
    }
}
