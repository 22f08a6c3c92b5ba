import Glibc
import PilotCrypto
import Testing

@Suite struct IdentityFileTests {
    let directory: String

    init() throws {
        var template = Array("/tmp/pilot-identity-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        try #require(made != nil)
        directory = String(cString: made!)
    }

    private func write(_ text: String, to path: String, mode: mode_t) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        fchmod(fd, mode)
        close(fd)
    }

    @Test func savesWithMode0600AndLoadsTheSameKey() throws {
        let path = directory + "/identity.key"
        let key = SigningKey.generate()
        let oldMask = umask(0)
        defer { umask(oldMask) }
        try IdentityFile.save(key, to: path)
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        let loaded = try IdentityFile.load(from: path)
        #expect(loaded.publicKey == key.publicKey)
        #expect(loaded.seed == key.seed)
    }

    @Test func refusesToReplaceAnExistingIdentity() throws {
        let path = directory + "/identity.key"
        try IdentityFile.save(SigningKey.generate(), to: path)
        #expect { try IdentityFile.save(SigningKey.generate(), to: path) } throws: { "\($0)".contains("already exists") }
    }

    @Test(arguments: [mode_t(0o644), 0o640, 0o604, 0o660, 0o666])
    func refusesLooserPermissions(mode: mode_t) throws {
        let path = directory + "/identity.key"
        try IdentityFile.save(SigningKey.generate(), to: path)
        chmod(path, mode)
        #expect { try IdentityFile.load(from: path) } throws: { error in
            "\(error)".contains("has mode 0\(String(mode, radix: 8))") && "\(error)".contains("chmod 600")
        }
    }

    @Test(arguments: [
        ("", "no ed25519-seed line"),
        ("garbage\n", "line 1 is not 'NAME VALUE'"),
        ("ed25519-seed !!!\n", "the seed is not valid base64"),
        ("ed25519-seed AAAA\n", "an Ed25519 seed must be 32 bytes, got 3"),
        ("colour blue\n", "unknown entry 'colour'"),
        ("ed25519-seed nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyufWA=\ned25519-public E+6FzyaGeGGPM+3lYb+L+feQyTQ0Nxfid+tS/uqPpvs=\n",
         "the public key does not match the seed"),
    ])
    func refusesCorruptContents(text: String, reason: String) {
        let path = directory + "/identity.key"
        write(text, to: path, mode: 0o600)
        #expect { try IdentityFile.load(from: path) } throws: { error in
            "\(error)".hasPrefix("identity file \(path) is corrupt") && "\(error)".contains(reason)
        }
    }

    @Test func refusesMissingFilesDirectoriesAndOversizedFiles() {
        #expect { try IdentityFile.load(from: directory + "/none") } throws: { "\($0)".contains("does not exist (run 'pilot init' first)") }
        #expect { try IdentityFile.load(from: directory) } throws: { "\($0)".contains("is not a regular file") }
        let path = directory + "/big.key"
        write(String(repeating: "#", count: 5000), to: path, mode: 0o600)
        #expect { try IdentityFile.load(from: path) } throws: { "\($0)".contains("larger than 4096 bytes") }
    }
}
