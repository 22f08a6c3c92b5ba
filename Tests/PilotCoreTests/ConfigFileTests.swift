import PilotCore
import Testing

@Suite struct ConfigFileTests {
    @Test func readsOneFlagALine() throws {
        let text = """
            # a comment
            --registry rv.example:9000

              --check http:webapp=http://localhost:8080/health
            --rule 'disk_pct > 90 for 2m critical > 95'
            --interval=30
            --once
            """
        let config = try ConfigFile(parsing: text, path: "agent.conf")
        #expect(config.arguments == [
            "--registry", "rv.example:9000",
            "--check", "http:webapp=http://localhost:8080/health",
            "--rule", "disk_pct > 90 for 2m critical > 95",
            "--interval", "30",
            "--once",
        ])
        #expect(config.entries.map(\.line) == [2, 4, 5, 6, 7])
    }

    @Test(arguments: [
        ("registry rv:9000", 1, "expected a flag starting with '--', found 'registry rv:9000'"),
        ("--ok 1\n-x 2", 2, "expected a flag starting with '--'"),
        ("# c\n\n--b@d 1", 3, "'--b@d' is not a flag name"),
        ("--", 1, "'--' is not a flag name"),
    ])
    func namesTheFileAndLineOfABadLine(text: String, line: Int, reason: String) {
        #expect { try ConfigFile(parsing: text, path: "/etc/pilot/agent.conf") } throws: { error in
            "\(error)".hasPrefix("/etc/pilot/agent.conf:\(line): \(reason)")
        }
    }

    @Test func refusesHugeFilesAndLines() {
        let longLine = "--x " + String(repeating: "a", count: 5000)
        #expect { try ConfigFile(parsing: longLine, path: "c") } throws: { "\($0)" == "c:1: line longer than 4096 bytes" }
    }

    @Test func setReplacesInPlaceAndRendersBack() throws {
        var config = try ConfigFile(parsing: "--hostname a\n--registry r:1\n--hostname b\n", path: "c")
        config.set("--hostname", "web-01")
        config.set("--beacon", "b:2")
        config.set("--registry", nil)
        #expect(config.rendered(header: "hi") == "# hi\n--hostname web-01\n--beacon b:2\n")
        #expect(try ConfigFile(parsing: config.rendered(header: "hi"), path: "c").arguments == ["--hostname", "web-01", "--beacon", "b:2"])
    }
}

@Suite struct EndpointAndHostnameTests {
    @Test(arguments: [
        ("rv.example:9000", "rv.example", UInt16(9000)),
        ("127.0.0.1:1", "127.0.0.1", 1),
        ("[::1]:9001", "::1", 9001),
    ])
    func parsesEndpoints(text: String, host: String, port: UInt16) throws {
        let endpoint = try Endpoint(parsing: text)
        #expect(endpoint == Endpoint(host: host, port: port))
        #expect(endpoint.description == text)
    }

    @Test(arguments: [
        ("rv.example", "expected HOST:PORT"),
        (":9000", "the host is empty"),
        ("rv:0", "not a number from 1 to 65535"),
        ("rv:70000", "not a number from 1 to 65535"),
        ("::1:9000", "IPv6 address in brackets"),
        ("[::1", "missing ']'"),
        ("a b:1", "space"),
    ])
    func refusesBadEndpoints(text: String, reason: String) {
        #expect { try Endpoint(parsing: text) } throws: { "\($0)".contains(reason) }
    }

    @Test func usesTheDefaultPortWhenAllowed() throws {
        #expect(try Endpoint(parsing: "rv.example", defaultPort: 9000).port == 9000)
    }

    @Test(arguments: ["web-01", "db_2.dc1.example", "A"])
    func acceptsHostnames(name: String) throws {
        #expect(try Hostname.validate(name) == name)
    }

    @Test(arguments: ["", "-web", "web-", "a..b", "web 01", "wéb", String(repeating: "a", count: 64)])
    func refusesHostnames(name: String) {
        #expect { try Hostname.validate(name) } throws: { "\($0)".hasPrefix("invalid hostname") }
    }

    @Test func resolvesTheStateDirectoryByPrecedence() {
        #expect(StateDirectory.resolve(flag: "/x", environment: ["PILOT_STATE_DIR": "/y"], isRoot: true) == "/x")
        #expect(StateDirectory.resolve(flag: nil, environment: ["PILOT_STATE_DIR": "/y"], isRoot: true) == "/y")
        #expect(StateDirectory.resolve(flag: nil, environment: ["HOME": "/home/u"], isRoot: true) == "/var/lib/pilot")
        #expect(StateDirectory.resolve(flag: nil, environment: ["HOME": "/home/u"], isRoot: false) == "/home/u/.pilot")
    }
}

@Suite struct FuzzRegressionTests {
    /// Found by the fuzzer: "\r\n" is one Character, so CRLF files were one line.
    @Test func crlfConfigFilesReadLineByLine() throws {
        let config = try ConfigFile(parsing: "--registry rv:9000\r\n--tag web\r\n", path: "c")
        #expect(config.arguments == ["--registry", "rv:9000", "--tag", "web"])
    }

    /// Found by the fuzzer: "[[]" parsed to a host "[" that printed as text that did not parse back.
    @Test(arguments: ["[[]", "[[x]:9000", "a]b:1", "[a[b]:1"])
    func bracketsInsideHostsAreRefused(text: String) {
        #expect(throws: ParseError.self) { try Endpoint(parsing: text, defaultPort: 9000) }
    }

    @Test func wholeNumbersFromPeersNeverTrap() throws {
        #expect(JSONValue.number(42).int64Value == 42)
        #expect(JSONValue.number(-7).int64Value == -7)
        #expect(JSONValue.number(1.5).int64Value == nil)
        #expect(JSONValue.number(1e19).int64Value == nil)
        #expect(JSONValue.number(-1e300).int64Value == nil)
        #expect(JSONValue.string("1").int64Value == nil)
    }
}
