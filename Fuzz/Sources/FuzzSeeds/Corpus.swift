import Foundation

/// The seed files of one fuzz target, named for what they hold; identical contents are kept once.
struct Corpus {
    let target: String
    private(set) var files: [(name: String, bytes: [UInt8])] = []
    private var contents: Set<[UInt8]> = []

    init(_ target: String) { self.target = target }

    /// Adds a seed unless the same bytes are already in; `name` is made file-system safe.
    mutating func add(_ name: String, _ bytes: [UInt8]) {
        guard !bytes.isEmpty, contents.insert(bytes).inserted else { return }
        let safe = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
        var unique = safe
        var n = 2
        while files.contains(where: { $0.name == unique }) {
            unique = "\(safe)-\(n)"
            n += 1
        }
        files.append((unique, bytes))
    }

    /// Replaces the files of `directory/target` with this corpus.
    func write(under directory: URL) throws {
        let folder = directory.appendingPathComponent(target, isDirectory: true)
        let manager = FileManager.default
        if manager.fileExists(atPath: folder.path) {
            for old in try manager.contentsOfDirectory(atPath: folder.path) {
                try manager.removeItem(at: folder.appendingPathComponent(old))
            }
        } else {
            try manager.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        for (name, bytes) in files {
            try Data(bytes).write(to: folder.appendingPathComponent(name))
        }
    }
}

/// The golden bytes of the unit tests, read once.
struct GoldenSources {
    let files: [GoldenFile]

    /// Reads every `.swift` file under `Tests/<folder>` for each of `folders`.
    init(root: URL, folders: [String]) throws {
        var files: [GoldenFile] = []
        for folder in folders {
            let directory = root.appendingPathComponent("Tests").appendingPathComponent(folder)
            for name in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
            where name.hasSuffix(".swift") {
                let url = directory.appendingPathComponent(name)
                files.append(GoldenFile(path: url.path, text: try String(contentsOf: url, encoding: .utf8)))
            }
        }
        self.files = files
    }

    /// The file named `stem` (for example `"SCRAMTests"`).
    func file(_ stem: String) -> GoldenFile? { files.first { $0.stem == stem } }
}
