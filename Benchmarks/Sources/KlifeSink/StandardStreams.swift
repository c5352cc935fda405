import Glibc

/// Writes `text` and a newline straight to file descriptor 2 (unbuffered; any thread).
func printToStandardError(_ text: String) {
    writeLine(text, to: 2)
}

/// Writes `text` and a newline straight to file descriptor 1 (unbuffered, so a script
/// reading the pipe sees it at once).
func printToStandardOutput(_ text: String) {
    writeLine(text, to: 1)
}

private func writeLine(_ text: String, to descriptor: Int32) {
    var line = text + "\n"
    line.withUTF8 { bytes in
        var done = 0
        while done < bytes.count {
            let n = write(descriptor, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }
}
