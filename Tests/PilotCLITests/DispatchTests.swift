import Glibc
@testable import PilotCLI
import Synchronization
import Testing

/// Runs the dispatcher with a capturing console.
func run(_ argv: [String]) async -> (status: Int32, out: String, err: String) {
    let out = Mutex(""), err = Mutex("")
    let console = Console(out: { text in out.withLock { $0 += text + "\n" } }, err: { text in err.withLock { $0 += text + "\n" } })
    let status = await Console.$current.withValue(console) { await Dispatcher.run(argv) }
    return (status, out.withLock { $0 }, err.withLock { $0 })
}

@Suite struct DispatchTests {
    @Test func theTableHasEveryRoleOnceAndEveryNameOnce() {
        #expect(CommandTable.roles.map(\.name) == ["agent", "aggregator", "store", "alert-router", "registry", "beacon"])
        let names = CommandTable.all.map(\.name)
        #expect(Set(names).count == names.count)
    }

    @Test(arguments: CommandTable.roles.map(\.name))
    func aRoleAnswersToItsLinkNameAndToTheFirstArgument(role: String) async {
        let viaLink = await run(["/usr/local/bin/pilot-\(role)", "--help"])
        let viaArgument = await run(["pilot", role, "--help"])
        #expect(viaLink.status == 0)
        let spec = CommandTable.spec(named: role)!
        if spec.isBuilt {
            #expect(viaLink.out.contains("USAGE: pilot \(role)"))
            #expect(viaLink.out.contains("pilot-\(role), a link to pilot"))
        } else {
            #expect(viaLink.out.hasPrefix("pilot \(role): "))
            #expect(viaLink.out.contains("pilot-\(role) [OPTIONS]"))
        }
        #expect(viaLink.out == viaArgument.out)
    }

    @Test func everyRoleIsBuiltAndTheRouterNamesWhatIsMissing() async {
        let unbuilt = CommandTable.roles.filter { !$0.isBuilt }.map(\.name)
        #expect(unbuilt.isEmpty)
        let result = await run(["pilot-alert-router", "--route", "severity=critical -> oncall"])
        #expect(result.status == 64)
        #expect(result.err == "pilot alert-router: --route needs a --receiver to route to (see 'pilot alert-router --help')\n")
        #expect(result.out.isEmpty)
    }

    @Test func anUnknownLinkNameFallsBackToTheFirstArgument() async {
        let result = await run(["./pilot-linux-x86_64", "version"])
        #expect(result.status == 0)
        #expect(result.out.hasPrefix("pilot \(BuildInfo.version)\n"))
    }

    @Test func helpListsEveryRoleAndCommandFromTheTable() async {
        for argv in [["pilot"], ["pilot", "--help"], ["pilot", "-h"], ["pilot", "help"]] {
            let result = await run(argv)
            #expect(result.status == 0)
            for spec in CommandTable.all {
                #expect(result.out.contains("  \(spec.name) "), "missing \(spec.name) in help for \(argv)")
            }
        }
        let one = await run(["pilot", "help", "init"])
        #expect(one.out.contains("--hostname"))
    }

    @Test func versionPrintsBuildInformation() async {
        for argv in [["pilot", "version"], ["pilot", "--version"]] {
            let result = await run(argv)
            #expect(result.status == 0)
            #expect(result.out.contains("libsodium:  1."))
            #expect(result.out.contains("sqlite:     3."))
        }
    }

    @Test(arguments: [
        (["pilot", "frobnicate"], Int32(64), "pilot: unknown role or command 'frobnicate'; expected one of: agent,"),
        (["pilot", "--frob"], 64, "pilot: unknown option '--frob'"),
        (["pilot", "help", "frob"], 64, "pilot: unknown role or command 'frob'"),
        (["pilot", "init", "--bogus"], 64, "pilot init: Unknown option '--bogus' (see 'pilot init --help')"),
        (["pilot", "init", "--hostname"], 64, "pilot init: Missing value for '--hostname <name>'"),
        (["pilot", "init", "--hostname", "bad name"], 64, "pilot init: invalid hostname 'bad name'"),
        (["pilot", "init", "--registry", "nowhere"], 64, "pilot init: --registry: invalid endpoint 'nowhere': expected HOST:PORT"),
        (["pilot", "version", "extra"], 64, "pilot version: Unexpected argument 'extra'"),
    ])
    func badInputGetsOneClearLineAndANonZeroExit(argv: [String], status: Int32, message: String) async {
        let result = await run(argv)
        #expect(result.status == status)
        #expect(result.err.hasPrefix(message), "stderr was: \(result.err)")
        #expect(result.err.split(separator: "\n").count == 1, "stderr was: \(result.err)")
    }

    @Test func linksListsOneLinkPerRoleAndPilotctl() async {
        let result = await run(["pilot", "links"])
        #expect(result.out == (CommandTable.roles.map { "pilot-\($0.name)" } + ["pilotctl"]).joined(separator: "\n") + "\n")
    }
}
