public import PilotCrypto

/// The registry's word, for the beacon, that a key is a registered node:
/// signed with the registry's identity key, short-lived, and carried in
/// the node's hello. The beacon checks it with the registry's public key
/// alone, so vouching costs the registry one signature per node every
/// half-lifetime and the beacon no registry session at all.
///
///     ticket   version u8 (1) | node key 32 | network u16 | issued u64 | expires u64 | signature 64
///
/// Times are the registry's Unix milliseconds. The signature covers
/// `"pilot-beacon-ticket/1"` and every field before it.
public struct BeaconTicket: Equatable, Hashable, Sendable {
    public static let version: UInt8 = 1
    public static let encodedBytes = 1 + 32 + 2 + 8 + 8 + 64

    public let node: PublicKey
    public let network: UInt16
    public let issued: Int64
    public let expires: Int64
    public let signature: [UInt8]

    public init(node: PublicKey, network: UInt16, issued: Int64, expires: Int64, signature: [UInt8]) {
        self.node = node
        self.network = network
        self.issued = issued
        self.expires = expires
        self.signature = signature
    }

    /// A ticket for `node`, valid from `now` for `lifetimeMs`, signed by the registry.
    public static func issue(for node: PublicKey, network: UInt16, now: Int64, lifetimeMs: Int64, by registry: SigningKey) -> BeaconTicket {
        let expires = now.addingReportingOverflow(lifetimeMs).overflow ? Int64.max : now + lifetimeMs
        let unsigned = BeaconTicket(node: node, network: network, issued: now, expires: expires, signature: [])
        return BeaconTicket(node: node, network: network, issued: now, expires: expires, signature: registry.sign(unsigned.signedBytes))
    }

    /// How long the registry meant it to last (its clock on both ends, so
    /// a node may time renewal by it whatever its own clock says).
    public var lifetimeMs: Int64 { expires > issued ? expires - issued : 0 }

    var signedBytes: [UInt8] {
        Array("pilot-beacon-ticket/1".utf8) + [Self.version] + node.bytes + [UInt8(network >> 8), UInt8(network & 0xFF)]
            + UInt64(bitPattern: issued).bigEndianBytes + UInt64(bitPattern: expires).bigEndianBytes
    }

    public var encoded: [UInt8] {
        [Self.version] + node.bytes + [UInt8(network >> 8), UInt8(network & 0xFF)]
            + UInt64(bitPattern: issued).bigEndianBytes + UInt64(bitPattern: expires).bigEndianBytes + signature
    }

    /// Whether `registry` signed exactly this ticket.
    public func verify(issuer registry: PublicKey) throws(WireError) {
        do { try registry.verify(signature, for: signedBytes) } catch { throw .authenticationFailed }
    }

    public static func parse(_ bytes: [UInt8]) throws(WireError) -> BeaconTicket {
        var reader = WireReader(bytes)
        let ticket = try read(&reader)
        guard reader.remaining == 0 else { throw .malformed("trailing bytes after a beacon ticket") }
        return ticket
    }

    static func read(_ reader: inout WireReader) throws(WireError) -> BeaconTicket {
        let version = try reader.readByte("beacon ticket")
        guard version == Self.version else { throw .unsupportedVersion(got: version, supported: Self.version) }
        let node: PublicKey
        do { node = try PublicKey(bytes: try reader.read(32, "ticket node key")) } catch let error as WireError { throw error } catch {
            throw .malformed("not a valid Ed25519 key")
        }
        let network = try reader.read(2, "ticket network")
        let issued = Int64(bitPattern: try reader.readUInt64("ticket issue time"))
        let expires = Int64(bitPattern: try reader.readUInt64("ticket expiry"))
        let signature = try reader.read(64, "ticket signature")
        return BeaconTicket(node: node, network: UInt16(network[0]) << 8 | UInt16(network[1]), issued: issued, expires: expires, signature: signature)
    }

    /// The ticket as the registry's JSON answers carry it.
    public var base64: String { Base64.encode(encoded) }

    public init(base64: String) throws(WireError) {
        let bytes: [UInt8]
        do { bytes = try Base64.decode(base64, what: "beacon ticket") } catch { throw .malformed("beacon ticket is not base64") }
        self = try Self.parse(bytes)
    }
}
