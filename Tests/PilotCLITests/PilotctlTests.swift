@testable import PilotCLI
import PilotCore
import PilotCrypto
import PilotRegistry
import Testing

/// pilotctl's command lines as the monitoring guide writes them, and the
/// pilot verb each becomes.
@Suite struct PilotctlTests {
    private func plan(_ line: [String]) throws -> Pilotctl.Plan { try Pilotctl.plan(line) }

    @Test func theGuidesVerbsBecomeThePilotVerbsOfTheSameName() throws {
        #expect(try plan(["init", "--hostname", "web-server-04"]) == .pilot(verb: "init", arguments: ["--hostname", "web-server-04"]))
        #expect(try plan(["set-tags", "monitoring", "server", "web"]) == .pilot(verb: "set-tags", arguments: ["monitoring", "server", "web"]))
        #expect(try plan(["handshake", "metrics-aggregator", "Monitoring agent for web-server-04"])
                == .pilot(verb: "handshake", arguments: ["metrics-aggregator", "Monitoring agent for web-server-04"]))
        #expect(try plan(["peers", "--search", "tag:production"]) == .pilot(verb: "peers", arguments: ["--search", "tag:production"]))
        #expect(try plan(["approve", "web-01"]) == .pilot(verb: "approve", arguments: ["web-01"]))
        #expect(try plan(["info"]) == .pilot(verb: "status", arguments: []))
    }

    @Test func publishTakesTheGuidesFormAndPilotsFormWithTheHubFirst() throws {
        let data = #"{"host":"web-01","cpu_pct":12.5}"#
        #expect(try plan(["publish", "metrics/cpu/web-01", "--data", data])
                == .pilot(verb: "publish", arguments: ["metrics/cpu/web-01", "--data", data]))
        #expect(try plan(["publish", "metrics-aggregator", "metrics/cpu/web-01", "--data", data])
                == .pilot(verb: "publish", arguments: ["metrics/cpu/web-01", "--data", data, "--to", "metrics-aggregator"]))
        #expect(throws: Pilotctl.UsageError.self) { try plan(["publish", "a", "b", "c", "--data", "{}"]) }
    }

    @Test func subscribeTakesAFilterOrAHubAndAFilter() throws {
        #expect(try plan(["subscribe", "metrics/*"]) == .pilot(verb: "subscribe", arguments: ["metrics/*"]))
        #expect(try plan(["subscribe", "hub-01", "metrics/*"]) == .pilot(verb: "subscribe", arguments: ["metrics/*", "--from", "hub-01"]))
        #expect(try plan(["subscribe", "hub-01", "*", "--count", "5"])
                == .pilot(verb: "subscribe", arguments: ["*", "--count", "5", "--from", "hub-01"]))
        // Two filters stay two filters: a filter with '/' or '*' is no hostname.
        #expect(try plan(["subscribe", "metrics/*", "health/*"]) == .pilot(verb: "subscribe", arguments: ["metrics/*", "health/*"]))
    }

    @Test func jsonIsAcceptedAnywhereAndReachesTheVerbsThatHaveIt() throws {
        #expect(try plan(["--json", "peers"]) == .pilot(verb: "peers", arguments: ["--json"]))
        #expect(try plan(["peers", "--search", "tag:web", "--json"]) == .pilot(verb: "peers", arguments: ["--search", "tag:web", "--json"]))
        #expect(try plan(["--json", "subscribe", "hub-01", "alerts/*"])
                == .pilot(verb: "subscribe", arguments: ["alerts/*", "--from", "hub-01", "--json"]))
        // A verb without JSON output takes it without complaint.
        #expect(try plan(["--json", "set-tags", "web"]) == .pilot(verb: "set-tags", arguments: ["web"]))
        #expect(try plan(["--json", "daemon", "status"]) == .daemon(.status, arguments: ["--json"]))
    }

    @Test func daemonNeedsAnActionAndPassesItsFlagsOn() throws {
        #expect(try plan(["daemon", "start", "--registry", "10.0.0.1:9000", "--beacon", "10.0.0.1:9001"])
                == .daemon(.start, arguments: ["--registry", "10.0.0.1:9000", "--beacon", "10.0.0.1:9001"]))
        #expect(try plan(["daemon", "stop"]) == .daemon(.stop, arguments: []))
        #expect(throws: Pilotctl.UsageError("daemon needs start, stop or status")) { try plan(["daemon"]) }
        #expect(throws: Pilotctl.UsageError("daemon needs start, stop or status")) { try plan(["daemon", "restart"]) }
    }

    @Test func anUnknownVerbIsAUsageErrorNamingTheVerbs() async {
        let result = await run(["/usr/local/bin/pilotctl", "frobnicate"])
        #expect(result.status == 2)
        #expect(result.err.hasPrefix("pilotctl: unknown command 'frobnicate'; expected one of: approve, daemon, handshake, info, init,"))
        #expect(result.err.split(separator: "\n").count == 1)
        #expect(result.out.isEmpty)
    }

    @Test func errorsAreNamedAsPilotctlWithItsExitStatuses() async {
        // A usage error of the verb itself: exit 2, one line, named as pilotctl.
        let usage = await run(["pilotctl", "publish", "metrics/cpu/web-01", "--bogus"])
        #expect(usage.status == 2)
        #expect(usage.err.hasPrefix("pilotctl publish: "), "stderr was: \(usage.err)")
        #expect(usage.err.split(separator: "\n").count == 1)
        // An error: no node runs for this directory, exit 1.
        let failure = await run(["pilotctl", "peers", "--state-dir", "/nonexistent/pilotctl-test"])
        #expect(failure.status == 1)
        #expect(failure.err.hasPrefix("pilotctl peers: no pilot node is running for /nonexistent/pilotctl-test"), "stderr was: \(failure.err)")
        let daemon = await run(["pilotctl", "daemon", "status", "--state-dir", "/nonexistent/pilotctl-test"])
        #expect(daemon.status == 1)
        #expect(daemon.out == "daemon not running\n")
    }

    @Test func exitStatusesArePilotctls() {
        #expect(Pilotctl.exitStatus(0) == 0)
        #expect(Pilotctl.exitStatus(1) == 1)
        #expect(Pilotctl.exitStatus(64) == 2)
        #expect(Pilotctl.exitStatus(69) == 1)
    }

    @Test func aloneItPrintsItsHelpAndExitsTwo() async {
        let result = await run(["pilotctl"])
        #expect(result.status == 2)
        #expect(result.out.contains("pilotctl publish [HUB] TOPIC --data JSON"))
        let help = await run(["pilotctl", "--help"])
        #expect(help.status == 0)
    }
}

/// `pilot peers` and `pilotctl peers` print the guide's lines, byte for byte.
@Suite struct PeersTableTests {
    private func view(_ address: String, _ hostname: String, _ tags: [String], _ presence: Presence) throws -> NodeView {
        try Sodium.initialize()
        let record = NodeRecord(publicKey: SigningKey.generate().publicKey, address: try Address(parsing: address), hostname: hostname,
                                tags: tags, endpoints: [], registeredAt: 0)
        return NodeView(record: record, presence: presence, lastSeen: nil)
    }

    @Test func theGuidesLineComesOutByteForByte() throws {
        let table = PeersTable.render([
            try view("1:0001.0000.0001", "web-server-01", ["web-server", "production", "us-east"], .online),
            try view("1:0001.0000.0002", "db-01", [], .offline),
        ])
        #expect(table == """
            1:0001.0000.0001  web-server-01    [web-server, production, us-east]          online
            1:0001.0000.0002  db-01            []                                         offline
            """)
    }

    @Test func aLongNameOrLongTagsWidenTheirColumnForEveryLine() throws {
        let tags = ["a-rather-long-tag-name", "another-long-tag-name", "third"]
        let table = PeersTable.render([
            try view("1:0001.0000.0001", "a-hostname-of-twenty-two", tags, .online),
            try view("1:0001.0000.0002", "db-01", ["db"], .online),
        ]).split(separator: "\n").map(String.init)
        #expect(table[0] == "1:0001.0000.0001  a-hostname-of-twenty-two [a-rather-long-tag-name, another-long-tag-name, third] online")
        #expect(table[1] == "1:0001.0000.0002  db-01                    [db]                                                   online")
    }
}

/// `pilot aggregator --with`: the roles a hub's node may also run.
@Suite struct AggregatorWithTests {
    @Test func anUnknownRoleOrARouterWithoutReceiverIsAUsageErrorOfOneLine() async {
        let unknown = await run(["pilot", "aggregator", "--with", "store,dashboard", "--state-dir", "/nonexistent/pilot-with"])
        #expect(unknown.status == 64)
        #expect(unknown.err.hasPrefix("pilot aggregator: --with: unknown role 'dashboard'"), "stderr was: \(unknown.err)")
        #expect(unknown.err.split(separator: "\n").count == 1)
        let router = await run(["pilot", "aggregator", "--with", "alert-router", "--state-dir", "/nonexistent/pilot-with"])
        #expect(router.status == 64)
        #expect(router.err.hasPrefix("pilot aggregator: --with alert-router needs a --receiver"), "stderr was: \(router.err)")
        let history = await run(["pilot", "aggregator", "--remote-write", "https://prom.example/api/v1/write", "--state-dir", "/nonexistent/pilot-with"])
        #expect(history.status == 64)
        #expect(history.err.hasPrefix("pilot aggregator: --retention, --rollup-retention and --remote-write need --with store"), "stderr was: \(history.err)")
    }
}
