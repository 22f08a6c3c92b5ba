public import PilotCore
public import PilotCrypto

/// Datagrams between a node and the beacon (UDP, default port 9001). They
/// share the tunnel's version byte and use kinds from 16 up, so one node
/// socket carries both.
///
///     hello        16 | node key 32 | timestamp u64 (Unix ms) | signature 64 | ticket 115
///     welcome      17 | observed endpoint
///     connect      18 | node key 32 | target key 32 | timestamp u64 | signature 64
///     punch        19 | peer key 32 | peer endpoint
///     relay        20 | target key 32 | tunnel datagram
///     relayed      21 | source key 32 | tunnel datagram
///     refused      22 | reason (UTF-8)
///
/// An endpoint is `family u8 (4 or 6) | address (4 or 16) | port u16`.
///
/// Hello and connect are signed by the node's identity, so nobody can
/// place another node's key at their address; what is relayed is tunnel
/// ciphertext the beacon cannot read. The beacon learns who talks to
/// whom, as any relay must. A hello carries the registry's `BeaconTicket`
/// for the node's key (the beacon serves no one else); a hello without
/// one (a node from before tickets) still parses, so the beacon can count
/// it as such, and is refused.
public enum BeaconMessage: Equatable, Sendable {
    case hello(node: PublicKey, timestamp: UInt64, signature: [UInt8], ticket: BeaconTicket?)
    case welcome(observed: Endpoint)
    case connect(node: PublicKey, target: PublicKey, timestamp: UInt64, signature: [UInt8])
    case punch(peer: PublicKey, endpoint: Endpoint)
    case relay(target: PublicKey, datagram: [UInt8])
    case relayed(source: PublicKey, datagram: [UInt8])
    case refused(String)

    public enum Kind: UInt8, Sendable {
        case hello = 16, welcome, connect, punch, relay, relayed, refused
    }

    /// Whether a datagram is for the beacon protocol rather than a tunnel.
    public static func isBeaconDatagram(_ datagram: [UInt8]) -> Bool {
        datagram.count >= 2 && datagram[0] == TunnelFrame.version && (Kind.hello.rawValue...Kind.refused.rawValue).contains(datagram[1])
    }

    public static func signedHello(_ key: SigningKey, timestamp: UInt64, ticket: BeaconTicket?) -> BeaconMessage {
        .hello(node: key.publicKey, timestamp: timestamp, signature: key.sign(helloBytes(key.publicKey, timestamp, ticket)), ticket: ticket)
    }

    public static func signedConnect(_ key: SigningKey, to target: PublicKey, timestamp: UInt64) -> BeaconMessage {
        .connect(node: key.publicKey, target: target, timestamp: timestamp, signature: key.sign(connectBytes(key.publicKey, target, timestamp)))
    }

    /// What a hello's signature covers: the ticket too, so a hello is one
    /// statement ("this key, now, vouched for by this ticket").
    static func helloBytes(_ node: PublicKey, _ timestamp: UInt64, _ ticket: BeaconTicket?) -> [UInt8] {
        guard let ticket else { return Array("pilot-beacon-hello/1".utf8) + node.bytes + timestamp.bigEndianBytes }
        return Array("pilot-beacon-hello/2".utf8) + node.bytes + timestamp.bigEndianBytes + ticket.encoded
    }

    static func connectBytes(_ node: PublicKey, _ target: PublicKey, _ timestamp: UInt64) -> [UInt8] {
        Array("pilot-beacon-connect/1".utf8) + node.bytes + target.bytes + timestamp.bigEndianBytes
    }

    /// Checks the signature of a hello or connect (other messages are not signed).
    public func verifySignature() throws(WireError) {
        do {
            switch self {
            case let .hello(node, timestamp, signature, ticket): try node.verify(signature, for: Self.helloBytes(node, timestamp, ticket))
            case let .connect(node, target, timestamp, signature): try node.verify(signature, for: Self.connectBytes(node, target, timestamp))
            default: return
            }
        } catch {
            throw .authenticationFailed
        }
    }

    public static func parse(_ datagram: [UInt8]) throws(WireError) -> BeaconMessage {
        var reader = WireReader(datagram)
        let version = try reader.readByte("beacon datagram header")
        guard version == TunnelFrame.version else { throw .unsupportedVersion(got: version, supported: TunnelFrame.version) }
        guard datagram.count <= TunnelFrame.maxDatagramBytes + 40 else {
            throw .frameTooLarge(length: datagram.count, limit: TunnelFrame.maxDatagramBytes + 40)
        }
        let kindByte = try reader.readByte("beacon datagram header")
        guard let kind = Kind(rawValue: kindByte) else { throw .unknownFrameKind(kindByte) }
        func key(_ reader: inout WireReader) throws(WireError) -> PublicKey {
            do { return try PublicKey(bytes: try reader.read(32, "node key")) } catch let error as WireError { throw error } catch {
                throw .malformed("not a valid Ed25519 key")
            }
        }
        switch kind {
        case .hello:
            let node = try key(&reader)
            let timestamp = try reader.readUInt64("timestamp")
            let signature = try reader.read(64, "signature")
            let ticket = reader.remaining == 0 ? nil : try BeaconTicket.read(&reader)
            guard reader.remaining == 0 else { throw .malformed("trailing bytes after hello") }
            return .hello(node: node, timestamp: timestamp, signature: signature, ticket: ticket)
        case .welcome:
            return .welcome(observed: try readEndpoint(&reader))
        case .connect:
            let node = try key(&reader)
            let target = try key(&reader)
            let timestamp = try reader.readUInt64("timestamp")
            let signature = try reader.read(64, "signature")
            guard reader.remaining == 0 else { throw .malformed("trailing bytes after connect") }
            return .connect(node: node, target: target, timestamp: timestamp, signature: signature)
        case .punch:
            let peer = try key(&reader)
            return .punch(peer: peer, endpoint: try readEndpoint(&reader))
        case .relay:
            let target = try key(&reader)
            let inner = reader.readRest()
            guard !inner.isEmpty, inner.count <= TunnelFrame.maxDatagramBytes else { throw .malformed("relay without a tunnel datagram, or too large") }
            return .relay(target: target, datagram: inner)
        case .relayed:
            let source = try key(&reader)
            let inner = reader.readRest()
            guard !inner.isEmpty, inner.count <= TunnelFrame.maxDatagramBytes else { throw .malformed("relayed without a tunnel datagram, or too large") }
            return .relayed(source: source, datagram: inner)
        case .refused:
            return .refused(String(decoding: reader.readRest().prefix(300), as: UTF8.self))
        }
    }

    public var encoded: [UInt8] {
        let header: (Kind) -> [UInt8] = { [TunnelFrame.version, $0.rawValue] }
        switch self {
        case let .hello(node, timestamp, signature, ticket):
            return header(.hello) + node.bytes + timestamp.bigEndianBytes + signature + (ticket?.encoded ?? [])
        case let .welcome(observed): return header(.welcome) + Self.encode(observed)
        case let .connect(node, target, timestamp, signature):
            return header(.connect) + node.bytes + target.bytes + timestamp.bigEndianBytes + signature
        case let .punch(peer, endpoint): return header(.punch) + peer.bytes + Self.encode(endpoint)
        case let .relay(target, datagram): return header(.relay) + target.bytes + datagram
        case let .relayed(source, datagram): return header(.relayed) + source.bytes + datagram
        case let .refused(reason): return header(.refused) + Array(reason.utf8.prefix(300))
        }
    }

    static func encode(_ endpoint: Endpoint) -> [UInt8] {
        if let v4 = IPAddressBytes.v4(endpoint.host) { return [4] + v4 + [UInt8(endpoint.port >> 8), UInt8(endpoint.port & 0xFF)] }
        if let v6 = IPAddressBytes.v6(endpoint.host) { return [6] + v6 + [UInt8(endpoint.port >> 8), UInt8(endpoint.port & 0xFF)] }
        return [0]
    }

    static func readEndpoint(_ reader: inout WireReader) throws(WireError) -> Endpoint {
        let family = try reader.readByte("endpoint")
        let host: String
        switch family {
        case 4: host = try reader.read(4, "IPv4 address").map(String.init).joined(separator: ".")
        case 6: host = IPAddressBytes.format6(try reader.read(16, "IPv6 address"))
        default: throw .malformed("unknown address family \(family)")
        }
        let port = try reader.read(2, "port")
        return Endpoint(host: host, port: UInt16(port[0]) << 8 | UInt16(port[1]))
    }
}

/// Text to bytes and back for IP addresses, without the C library.
enum IPAddressBytes {
    static func v4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    static func v6(_ text: String) -> [UInt8]? {
        guard text.contains(":") else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            var result: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard !group.isEmpty, group.count <= 4, let value = UInt16(group, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        let tail = halves.count == 2 ? groups(halves[1]) : []
        guard let tail else { return nil }
        let missing = 8 - head.count - tail.count
        guard halves.count == 2 ? missing >= 1 : missing == 0 else { return nil }
        let all = head + Array(repeating: 0, count: halves.count == 2 ? missing : 0) + tail
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    static func format6(_ bytes: [UInt8]) -> String {
        stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
    }
}

extension String {
    fileprivate func components(separatedBy separator: String) -> [String] {
        var result: [String] = []
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            result.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        result.append(String(rest))
        return result
    }
}
