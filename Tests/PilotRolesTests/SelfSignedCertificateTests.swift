import Logging
import NIOSSL
import PilotCore
@testable import PilotRoles
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The HTTPS certificate `pilot init` makes: DER as X.690 writes it, a
/// certificate BoringSSL reads back with the names and key it should have,
/// and a key file that goes with it.
@Suite struct SelfSignedCertificateTests {
    let directory: String

    init() {
        var template = Array("/tmp/pilot-cert-XXXXXX".utf8CString)
        directory = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
    }

    @Test func derLengthsIntegersIdentifiersAndTimesAreX690s() {
        #expect(DER.length(127) == [0x7F])
        #expect(DER.length(128) == [0x81, 0x80])
        #expect(DER.length(300) == [0x82, 0x01, 0x2C])
        #expect(DER.integer(unsigned: [0x00, 0x00, 0x01]) == [0x02, 0x01, 0x01])
        #expect(DER.integer(unsigned: [0x80]) == [0x02, 0x02, 0x00, 0x80])
        #expect(DER.integer(unsigned: []) == [0x02, 0x01, 0x00])
        #expect(DER.objectIdentifier("1.2.840.10045.2.1") == [0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01])
        #expect(DER.objectIdentifier("2.5.29.17") == [0x06, 0x03, 0x55, 0x1D, 0x11])
        #expect(DER.time(0) == [0x17, 13] + Array("700101000000Z".utf8))
        #expect(DER.time(2_524_607_999) == [0x17, 13] + Array("491231235959Z".utf8))
        #expect(DER.time(2_524_608_000) == [0x18, 15] + Array("20500101000000Z".utf8))
        #expect(DER.sequence([DER.integer(1), DER.true]) == [0x30, 0x06, 0x02, 0x01, 0x01, 0x01, 0x01, 0xFF])
    }

    @Test func pemIsBase64InLinesOf64() {
        let text = DER.pem("CERTIFICATE", [UInt8](repeating: 0, count: 60))
        let lines = text.split(separator: "\n")
        #expect(lines.first == "-----BEGIN CERTIFICATE-----" && lines.last == "-----END CERTIFICATE-----")
        #expect(lines.count == 4 && lines[1].count == 64 && lines[2].count == 16)
    }

    @Test func theCertificateParsesWithAP256KeyTheNamesAndTheValidity() throws {
        let now: Int64 = 1_796_000_000
        let made = try SelfSignedCertificate.make(hostname: "web-01", now: now)
        let certificate = try NIOSSLCertificate(bytes: Array(made.certificate.utf8), format: .pem)
        let spki = try certificate.extractPublicKey().toSPKIBytes()
        #expect(spki.count == 91 && spki.starts(with: [0x30, 0x59] + SelfSignedCertificate.p256Algorithm))
        let names = certificate._subjectAlternativeNames().map { ($0.nameType, Array($0.contents)) }
        #expect(names.filter { $0.0 == .dnsName }.map { String(decoding: $0.1, as: UTF8.self) } == ["web-01", "localhost"])
        #expect(names.filter { $0.0 == .ipAddress }.map(\.1) == [[127, 0, 0, 1]])
        #expect(certificate.description.contains("common_name=web-01"))
        #expect(Int64(certificate.notValidBefore) == now - 3600)
        #expect(Int64(certificate.notValidAfter) == now + 3650 * 86_400)
        #expect((8...17).contains(certificate.serialNumber.count))
        let critical = certificate._extensions.filter(\.isCritical).map { "\($0.objectIdentifier)" }
        #expect(Set(critical) == ["2.5.29.19", "2.5.29.15"])
        #expect(made.fingerprint == SelfSignedCertificate.fingerprint(try certificate.toDERBytes()))
    }

    @Test func aLocalhostNodeIsNamedOnce() {
        let request = SelfSignedCertificate(hostname: "localhost", serial: [1], notBefore: 0, notAfter: 1, publicKey: [4])
        #expect(request.dnsNames == ["localhost"])
    }

    @Test func theFingerprintIsColonHexOfTheSHA256() {
        // SHA-256 of the empty string.
        #expect(SelfSignedCertificate.fingerprint([]) == "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55")
    }

    @Test func initsPairServesTLSAndIsKeptTheNextTime() throws {
        let first = try SelfSignedCertificate.ensure(in: directory, hostname: "web-01")
        #expect(first.created)
        let files = SelfSignedCertificate.files(in: directory)
        #expect(SelfSignedCertificate.existing(in: directory)?.key == files.key)
        var info = stat()
        #expect(stat(files.key, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat(files.certificate, &info) == 0 && info.st_mode & 0o777 == 0o644)
        let key = try LocalFile.readText(files.key, maxBytes: 4096)
        #expect(key.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        // The key goes with the certificate: BoringSSL checks it when the server context is made.
        #expect(try HTTPAccess(tls: files).serverContext(logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }) != nil)

        let again = try SelfSignedCertificate.ensure(in: directory, hostname: "other")
        #expect(!again.created && again.fingerprint == first.fingerprint)
        #expect(try LocalFile.readText(files.key, maxBytes: 4096) == key)
        #expect(try SelfSignedCertificate.fingerprint(ofFile: files.certificate) == first.fingerprint)
    }

    @Test func aKeyOfAnotherPairIsRefusedNamingTheFile() throws {
        _ = try SelfSignedCertificate.ensure(in: directory, hostname: "web-01")
        let other = try SelfSignedCertificate.make(hostname: "web-01", now: 1_796_000_000)
        let stray = directory + "/other.key"
        try LocalFile.writeAtomically(stray, Array(other.key.utf8), mode: 0o600)
        let access = HTTPAccess(tls: (SelfSignedCertificate.files(in: directory).certificate, stray))
        #expect { try access.serverContext(logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }) } throws: { "\($0)".contains("does not go with --tls-key \(stray)") }
    }

    @Test func halfAPairIsRefusedAndLeftAlone() throws {
        let files = SelfSignedCertificate.files(in: directory)
        try LocalFile.writeAtomically(files.key, Array("mine\n".utf8), mode: 0o600)
        #expect { try SelfSignedCertificate.ensure(in: directory, hostname: "web-01") } throws: { "\($0)".hasPrefix("\(files.certificate) is missing") }
        #expect(try LocalFile.readText(files.key, maxBytes: 100) == "mine\n")
        #expect(SelfSignedCertificate.existing(in: directory) == nil)
    }
}
