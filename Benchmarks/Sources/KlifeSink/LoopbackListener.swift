import Glibc

/// A TCP listening socket on 127.0.0.1.
struct LoopbackListener {
    /// The listening descriptor.
    let descriptor: Int32
    /// The bound port (the kernel's choice when 0 was asked for).
    let port: UInt16

    /// Binds and listens on 127.0.0.1:`port` (0: any free port).
    /// - Throws: ``SystemCallError`` when a socket call fails.
    init(port: UInt16) throws(SystemCallError) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { close(fd); throw SystemCallError("bind 127.0.0.1:\(port)") }
        guard listen(fd, 128) == 0 else { close(fd); throw SystemCallError("listen") }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        descriptor = fd
        self.port = UInt16(bigEndian: actual.sin_port)
    }

    /// Waits for the next connection and returns its descriptor (TCP_NODELAY set).
    /// - Throws: ``SystemCallError`` for errors other than an interrupted call.
    func accept() throws(SystemCallError) -> Int32 {
        while true {
            let fd = Glibc.accept(descriptor, nil, nil)
            if fd >= 0 {
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return fd
            }
            switch errno {
            case EINTR, ECONNABORTED: continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of descriptors or memory: wait a little instead of spinning.
                usleep(10_000)
            default: throw SystemCallError("accept")
            }
        }
    }
}

/// A failed system call, with `errno`'s text.
struct SystemCallError: Error, CustomStringConvertible {
    /// What was attempted, and why it failed.
    let description: String

    init(_ call: String) {
        description = "\(call): \(String(cString: strerror(errno)))"
    }
}
