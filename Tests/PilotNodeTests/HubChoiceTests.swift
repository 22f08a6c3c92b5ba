@testable import PilotNode
import Testing

/// Which announced hub a node with no hub configured picks.
@Suite struct HubChoiceTests {
    @Test func theOnlyCandidateIsTheHubOnlineOrNot() throws {
        #expect(try HubChoice.pick([("hub-01", false)]) == "hub-01")
        #expect(try HubChoice.pick([("hub-01", true)]) == "hub-01")
    }

    @Test func amongSeveralTheOnlyOneOnlineWins() throws {
        #expect(try HubChoice.pick([("old-hub", false), ("hub-02", true), ("older", false)]) == "hub-02")
    }

    @Test func noneOrSeveralIsAnErrorThatSaysWhatToDo() {
        #expect(throws: NodeError.self) { try HubChoice.pick([]) }
        do {
            _ = try HubChoice.pick([("hub-b", true), ("hub-a", true), ("stale", false)])
            Issue.record("two hubs online were accepted")
        } catch {
            #expect("\(error)" == "several nodes announce themselves as the hub (hub-a, hub-b); name one with 'pilot init --hub NAME' (or --to/--from)")
        }
        do {
            _ = try HubChoice.pick([("hub-b", false), ("hub-a", false)])
            Issue.record("two offline hubs were accepted")
        } catch {
            #expect("\(error)".hasPrefix("several nodes announce themselves as the hub (hub-a, hub-b)"))
        }
        do { _ = try HubChoice.pick([]) } catch {
            #expect("\(error)".contains("no node at the registry announces itself as the hub (tag pilot-hub)"))
        }
    }
}
