internal import NIOSSL
public import PilotCore
internal import PilotTransport

/// The pair in a state directory: `tls.crt` (0644) and `tls.key` (0600).
/// Made once; a role on a non-loopback `--http` without `--tls-cert` uses it.
extension SelfSignedCertificate {
    public static let certificateFile = "tls.crt"
    public static let keyFile = "tls.key"

    public static func files(in directory: String) -> (certificate: String, key: String) {
        (directory + "/" + certificateFile, directory + "/" + keyFile)
    }

    /// The pair in `directory` if both files are there.
    public static func existing(in directory: String) -> (certificate: String, key: String)? {
        let files = files(in: directory)
        return LocalFile.exists(files.certificate) && LocalFile.exists(files.key) ? files : nil
    }

    /// Keeps the pair in `directory`, else makes one (the key first, each
    /// file atomically) valid from `now` (Unix seconds; default the clock);
    /// half a pair is refused, never overwritten.
    public static func ensure(in directory: String, hostname: String, now: Int64? = nil) throws(FileError) -> (fingerprint: String, created: Bool) {
        let files = files(in: directory)
        switch (LocalFile.exists(files.certificate), LocalFile.exists(files.key)) {
        case (true, true): return (try fingerprint(ofFile: files.certificate), false)
        case (true, false): throw FileError(path: files.key, reason: "is missing beside \(files.certificate): put it back, or remove both for a new pair")
        case (false, true): throw FileError(path: files.certificate, reason: "is missing beside \(files.key): put it back, or remove both for a new pair")
        case (false, false): break
        }
        let made: (certificate: String, key: String, fingerprint: String)
        do { made = try make(hostname: hostname, now: now ?? WallClock.nowMilliseconds() / 1000) } catch { throw FileError(path: files.key, reason: "could not be made: \(error)") }
        try LocalFile.writeAtomically(files.key, Array(made.key.utf8), mode: 0o600)
        try LocalFile.writeAtomically(files.certificate, Array(made.certificate.utf8), mode: 0o644)
        return (made.fingerprint, true)
    }

    /// The fingerprint of the first certificate in a PEM file.
    public static func fingerprint(ofFile path: String) throws(FileError) -> String {
        do {
            guard let first = try NIOSSLCertificate.fromPEMFile(path).first else { throw FileError(path: path, reason: "holds no certificate") }
            return fingerprint(try first.toDERBytes())
        } catch let error as FileError {
            throw error
        } catch {
            throw FileError(path: path, reason: "is not a readable PEM certificate (\(error))")
        }
    }
}
