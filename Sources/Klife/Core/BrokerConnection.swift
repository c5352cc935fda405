import KlifeIO
import KlifeProtocol

/// One TCP connection to one broker, confined to the reactor that owns it.
///
/// Requests are pipelined: each is encoded straight into the channel's outbound
/// buffer and remembered in a FIFO of in-flight entries. Kafka answers requests
/// on a connection strictly in order, so the head of the FIFO must match every
/// response's correlation id; anything else is a protocol violation and fails the
/// connection (and every request on it) with a typed error.
///
///     connect [+ TLS handshake] ──► ApiVersions v3 (v0 fallback) ──► [SASL] ──► ready ──► send / ... ──► close
///
/// With ``KlifeConfiguration/tls`` set the channel runs TLS and reports connected only
/// after the handshake and certificate checks; everything here sees plaintext either way.
/// A TLS failure while establishing the session fails the connection with `tlsHandshakeFailed`.
///
/// With ``KlifeConfiguration/sasl`` set, SaslHandshake and SaslAuthenticate run between
/// ApiVersions and ready (see `BrokerConnection+SASL.swift`).
///
/// Requests made before the handshake completes wait in `waiters` and go out once
/// the negotiated version table is known. A request whose deadline passes fails the
/// whole connection: after a timeout, later responses can no longer be trusted.
final class BrokerConnection: ChannelHandler {
    /// What the owner sees when a response arrives or the request fails.
    /// The reader borrows the receive buffer: it is valid only during the call.
    typealias ResponseHandler = (Result<ByteReader, KlifeError>) -> Void

    private struct InFlight {
        var correlationID: Int32
        var apiKey: ApiKey
        var responseHeaderVersion: Int16
        var deadline: UInt64
        var handler: ResponseHandler
        /// How many requests without an answer had been sent on the connection before this one
        /// (see `unanswered`).
        var unansweredSentBefore: Int
    }

    private enum State {
        case idle, connecting, handshaking, ready
    }

    let nodeID: Int32
    let address: BrokerAddress
    // unowned(unsafe): the hub owns its connections and outlives them.
    unowned(unsafe) let hub: ReactorHub
    private var channel: TCPChannel?
    private var state: State = .idle
    private(set) var versions: ApiVersionTable?
    private var inFlight: [InFlight] = []
    private var inFlightHead = 0
    /// Correlation ids of requests sent without expecting an answer (Produce with acks = 0),
    /// oldest first. Kafka never answers them, but some brokers do (Tansu 0.6): such an
    /// answer is recognised here and dropped instead of failing the connection. An id leaves
    /// once an answer to a later request arrived (answers come in order, so it can no longer
    /// be answered), or once 1,024 newer ones are kept.
    private var unanswered: [Int32] = []
    /// Requests without an answer sent so far, and how many of them left `unanswered`.
    private var unansweredSent = 0
    private var unansweredDropped = 0
    private var waiters: [(Result<BrokerConnection, KlifeError>) -> Void] = []
    private var nextCorrelationID: Int32 = 1
    private var timeoutTimer: TimerHandle?
    private var timeoutTimerDeadline: UInt64 = 0
    /// Requests sent on this connection (all APIs), for tests and metrics.
    private(set) var requestCounts: [ApiKey: Int] = [:]
    /// The SASL session lifetime the broker granted (KIP-368), 0 for none or before SASL.
    var saslSessionLifetimeMs: Int64 = 0
    /// Fires before the SASL session expires, to re-authenticate on this connection.
    var reauthenticationTimer: TimerHandle?
    /// Completed SASL re-authentications on this connection (KIP-368), for tests and metrics.
    var reauthenticationCount = 0
    /// True while a re-authentication (not the first authentication) runs.
    var reauthenticating = false
    /// Called after the connection closes, so owners can drop or replace it.
    var onClose: ((BrokerConnection, KlifeError) -> Void)?

    init(nodeID: Int32, address: BrokerAddress, hub: ReactorHub) {
        self.nodeID = nodeID
        self.address = address
        self.hub = hub
    }

    var isReady: Bool { state == .ready }

    /// Leaves `ready` for a SASL re-authentication on the open connection: requests already
    /// sent are answered first (in order), new ones wait in `waiters` until it completes.
    /// Returns false when the connection is not ready.
    func beginReauthentication() -> Bool {
        guard state == .ready else { return false }
        state = .handshaking
        return true
    }
    var inFlightCount: Int { inFlight.count - inFlightHead }

    // MARK: Readiness

    /// Calls `body` once the connection is ready (connecting if needed), or with the error that prevented it.
    func whenReady(_ body: @escaping (Result<BrokerConnection, KlifeError>) -> Void) {
        switch state {
        case .ready:
            body(.success(self))
        case .idle:
            waiters.append(body)
            startConnect()
        case .connecting, .handshaking:
            waiters.append(body)
        }
    }

    private func startConnect() {
        state = .connecting
        channel = TCPChannel.connect(host: address.host, port: address.port, on: hub.reactor,
                                     connectTimeoutNanoseconds: hub.configuration.connectTimeout.nanoseconds,
                                     tls: hub.tls, handler: self)
    }

    func channelDidConnect(_ channel: TCPChannel) {
        state = .handshaking
        sendApiVersions(version: 3)
    }

    private func sendApiVersions(version: Int16) {
        let request = ApiVersionsRequest()
        sendFrame(apiKey: .apiVersions, version: version, flexible: ApiVersionsRequest.isFlexible(version),
                  responseHeaderVersion: 0, expectsResponse: true,
                  encodeBody: { request.encode(into: &$0, version: version) },
                  handler: { [unowned self] result in handleApiVersions(result, sentVersion: version) })
    }

    private func handleApiVersions(_ result: Result<ByteReader, KlifeError>, sentVersion: Int16) {
        switch result {
        case .failure(let error):
            fail(error)
        case .success(var reader):
            // A broker that does not know our version answers UNSUPPORTED_VERSION with a v0 body.
            var peek = reader
            let errorCode = KafkaErrorCode(rawValue: peek.readInt16())
            if errorCode == .unsupportedVersion && sentVersion > 0 {
                // KIP-511 says the body is in v0 layout; some brokers send another layout.
                // Use the advertised range when it decodes, else step down to v0, which every broker speaks.
                let response = ApiVersionsResponse(from: &reader, version: 0)
                let advertised = reader.error == nil ? ApiVersionTable(response.apiKeys).range(for: .apiVersions) : nil
                let retry = advertised.map { min($0.upperBound, sentVersion - 1) } ?? 0
                sendApiVersions(version: max(retry, 0))
                return
            }
            let response = ApiVersionsResponse(from: &reader, version: sentVersion)
            if let error = reader.error {
                fail(.malformed(error, broker: address.description))
                return
            }
            guard errorCode == .none else {
                fail(.broker(errorCode, "ApiVersions to \(address)"))
                return
            }
            versions = ApiVersionTable(response.apiKeys)
            if let sasl = hub.configuration.sasl {
                authenticate(sasl)   // BrokerConnection+SASL.swift; calls becomeReady() when done
            } else {
                becomeReady()
            }
        }
    }

    /// Ends the handshake: the connection is usable and every waiter is released.
    func becomeReady() {
        guard state == .handshaking else { return }
        state = .ready
        scheduleReauthentication()
        let ready = waiters
        waiters.removeAll()
        for waiter in ready { waiter(.success(self)) }
    }

    // MARK: Sending

    /// Negotiates a version for `R`, encodes `request` and calls `completion` with the decoded response.
    /// Must be called on a ready connection (see ``whenReady(_:)``).
    /// - Parameter extraTimeout: added to the request timeout, for requests the broker holds on
    ///   purpose (a JoinGroup for the rebalance timeout, a fetch for its `maxWait`).
    func send<R: KafkaRequest>(_ request: R, extraTimeout: UInt64 = 0,
                               completion: @escaping (Result<R.Response, KlifeError>) -> Void) {
        let version: Int16
        do {
            version = try negotiatedVersion(R.self)
        } catch {
            completion(.failure(error))
            return
        }
        let broker = address.description
        sendFrame(apiKey: R.apiKey, version: version, flexible: R.isFlexible(version),
                  responseHeaderVersion: R.responseHeaderVersion(version), expectsResponse: true,
                  extraTimeout: extraTimeout, encodeBody: { request.encode(into: &$0, version: version) },
                  handler: { [weak self] result in
                      switch result {
                      case .failure(let error):
                          completion(.failure(error))
                      case .success(var reader):
                          let response = R.Response(from: &reader, version: version)
                          if let error = reader.error {
                              // A peer whose answer does not decode is trusted with nothing more:
                              // the connection fails (its other requests with it), then this one.
                              let failure = KlifeError.malformed(error, broker: broker)
                              self?.fail(failure)
                              completion(.failure(failure))
                          } else {
                              completion(.success(response))
                          }
                      }
                  })
    }

    /// The highest version of `R` both sides support.
    func negotiatedVersion<R: KafkaRequest>(_: R.Type) throws(KlifeError) -> Int16 {
        guard let versions else { throw .unsupported("\(R.apiKey): connection to \(address) is not ready") }
        do {
            return try versions.negotiate(R.self)
        } catch {
            throw .unsupported("broker \(address): \(error)")
        }
    }

    /// Writes one request frame into the outbound buffer and flushes.
    /// - Parameter expectsResponse: false for Produce with acks=0, which the broker never answers.
    func sendFrame(apiKey: ApiKey, version: Int16, flexible: Bool, responseHeaderVersion: Int16,
                   expectsResponse: Bool, extraTimeout: UInt64 = 0, encodeBody: (inout ByteWriter) -> Void,
                   handler: @escaping ResponseHandler) {
        guard let channel, state == .ready || state == .handshaking else {
            handler(.failure(.connection(IOError(.closedByUser), broker: address.description)))
            return
        }
        let correlationID = nextCorrelationID
        nextCorrelationID = nextCorrelationID == Int32.max ? 1 : nextCorrelationID + 1
        let start = KafkaFrame.beginRequest(apiKey, version: version, correlationID: correlationID,
                                            clientID: hub.configuration.clientID, flexible: flexible,
                                            into: &channel.outbound)
        encodeBody(&channel.outbound)
        KafkaFrame.endRequest(start: start, into: &channel.outbound)
        requestCounts[apiKey, default: 0] += 1
        if expectsResponse {
            let deadline = Reactor.monotonicNanoseconds() &+ hub.configuration.requestTimeout.nanoseconds &+ extraTimeout
            inFlight.append(InFlight(correlationID: correlationID, apiKey: apiKey,
                                     responseHeaderVersion: responseHeaderVersion, deadline: deadline, handler: handler,
                                     unansweredSentBefore: unansweredSent))
            armTimeoutTimer()
        } else {
            unanswered.append(correlationID)
            unansweredSent += 1
            if unanswered.count > 1024 { dropUnanswered(unanswered.count - 1024) }
        }
        channel.flush()
        if !expectsResponse { handler(.success(ByteReader(UnsafeRawBufferPointer(start: nil, count: 0)))) }
    }

    // MARK: Receiving

    func channelDidRead(_ channel: TCPChannel, _ bytes: UnsafeRawBufferPointer) -> Int {
        var consumed = 0
        while bytes.count - consumed >= 4 {
            let size = Int(Int32(bigEndian: bytes.loadUnaligned(fromByteOffset: consumed, as: Int32.self)))
            if size < 4 || size > hub.configuration.maxResponseBytes {
                fail(.malformed(DecodeError(.invalidLength, offset: 0, detail: "response size \(size)"),
                                broker: address.description))
                return bytes.count
            }
            guard bytes.count - consumed - 4 >= size else {
                // A large answer carrying records, still arriving: the rest is read straight
                // into a block of its own, which its records are then slices of (no copy out
                // of the receive buffer).
                if size >= Self.collectedFrameBytes && headExpectsRecords
                    && channel.collectNext(size, then: { [weak self] channel, block in self?.deliver(collected: block, on: channel) }) {
                    consumed += 4
                }
                break
            }
            let frame = UnsafeRawBufferPointer(rebasing: bytes[(consumed + 4)..<(consumed + 4 + size)])
            consumed += 4 + size
            if !deliver(frame, on: channel) { return bytes.count }
        }
        return consumed
    }

    /// Answers at least this large to Fetch and ShareFetch are read into blocks of their own
    /// (the smallest size the block pool keeps).
    static let collectedFrameBytes = ByteBlockPool.minimumPooledBytes

    /// Whether the oldest request in flight is answered with records (Fetch, ShareFetch).
    private var headExpectsRecords: Bool {
        guard inFlightHead < inFlight.count else { return false }
        let key = inFlight[inFlightHead].apiKey
        return key == .fetch || key == .shareFetch
    }

    /// Hands a frame read into a block of its own to the head in-flight request; its reader
    /// slices the block instead of copying out of it.
    private func deliver(collected block: ByteBlock, on source: TCPChannel) {
        block.withUnsafeBytes { frame in _ = deliver(frame, backing: block, on: source) }
    }

    /// Hands one frame to the head in-flight request. Returns false when the connection failed.
    private func deliver(_ frame: UnsafeRawBufferPointer, backing: ByteBlock? = nil, on source: TCPChannel) -> Bool {
        // Every response header starts with the correlation id.
        if frame.count >= 4, !unanswered.isEmpty,
           let index = unanswered.firstIndex(of: Int32(bigEndian: frame.loadUnaligned(as: Int32.self))),
           inFlightHead == inFlight.count || inFlight[inFlightHead].correlationID != unanswered[index] {
            // An answer the request did not ask for (acks = 0): dropped, with every older one.
            dropUnanswered(index + 1)
            return true
        }
        guard inFlightHead < inFlight.count else {
            fail(.malformed(DecodeError(.invalidValue, offset: 0, detail: "response with no request in flight"),
                            broker: address.description))
            return false
        }
        let entry = inFlight[inFlightHead]
        var reader = ByteReader(frame)
        reader.backingBlock = backing.map { Unmanaged.passUnretained($0) }
        let correlationID = KafkaFrame.decodeResponseHeader(from: &reader, headerVersion: entry.responseHeaderVersion)
        if let error = reader.error {
            fail(.malformed(error, broker: address.description))
            return false
        }
        guard correlationID == entry.correlationID else {
            fail(.malformed(DecodeError(.invalidValue, offset: 0,
                                        detail: "correlation id \(correlationID), expected \(entry.correlationID)"),
                            broker: address.description))
            return false
        }
        popInFlight()
        let stale = entry.unansweredSentBefore - unansweredDropped
        if stale > 0 { dropUnanswered(min(stale, unanswered.count)) }
        entry.handler(.success(reader))
        return channel === source
    }

    /// Forgets the `count` oldest requests sent without an answer.
    private func dropUnanswered(_ count: Int) {
        unanswered.removeFirst(count)
        unansweredDropped += count
    }

    private func popInFlight() {
        inFlightHead += 1
        if inFlightHead == inFlight.count {
            inFlight.removeAll(keepingCapacity: true)
            inFlightHead = 0
        } else if inFlightHead >= 64 && inFlightHead * 2 >= inFlight.count {
            inFlight.removeFirst(inFlightHead)
            inFlightHead = 0
        }
    }

    // MARK: Timeouts

    private func armTimeoutTimer() {
        guard inFlightHead < inFlight.count else { return }
        let deadline = inFlight[inFlightHead].deadline
        if timeoutTimer != nil && timeoutTimerDeadline <= deadline { return }
        if let timer = timeoutTimer { hub.reactor.cancelTimer(timer) }
        let now = Reactor.monotonicNanoseconds()
        timeoutTimerDeadline = deadline
        timeoutTimer = hub.reactor.scheduleTimer(afterNanoseconds: deadline > now ? deadline - now : 0) { [weak self] in
            self?.timeoutTimerFired()
        }
    }

    private func timeoutTimerFired() {
        timeoutTimer = nil
        guard inFlightHead < inFlight.count else { return }
        let head = inFlight[inFlightHead]
        if head.deadline <= Reactor.monotonicNanoseconds() {
            fail(.timedOut("\(head.apiKey) request to \(address)"))
        } else {
            armTimeoutTimer()
        }
    }

    // MARK: Closing

    func channelDidClose(_ channel: TCPChannel, error: IOError?) {
        // A channel we already abandoned (failed, then replaced) reports its close late: ignore it.
        guard channel === self.channel else { return }
        let reason: KlifeError = .connection(error ?? IOError(.peerClosed), broker: address.description)
        finishClose(reason)
    }

    /// Fails the connection: every waiter and in-flight request gets `error`, once.
    func fail(_ error: KlifeError) {
        guard state != .idle else { return }
        let channel = self.channel
        finishClose(error)
        channel?.close()
    }

    /// Closes deliberately (client shutdown).
    func close() {
        fail(.clientClosed)
    }

    private func finishClose(_ error: KlifeError) {
        guard state != .idle else { return }
        channel = nil
        state = .idle
        versions = nil
        saslSessionLifetimeMs = 0
        reauthenticating = false
        if let timer = reauthenticationTimer {
            hub.reactor.cancelTimer(timer)
            reauthenticationTimer = nil
        }
        if let timer = timeoutTimer {
            hub.reactor.cancelTimer(timer)
            timeoutTimer = nil
        }
        let pending = inFlight[inFlightHead...]
        inFlight.removeAll()
        inFlightHead = 0
        unanswered.removeAll()
        unansweredSent = 0
        unansweredDropped = 0
        let waiting = waiters
        waiters.removeAll()
        if error.code != .clientClosed {
            hub.log(.warning, "connection lost: \(error)", broker: address.description)
        }
        for entry in pending { entry.handler(.failure(error)) }
        for waiter in waiting { waiter(.failure(error)) }
        onClose?(self, error)
    }
}
