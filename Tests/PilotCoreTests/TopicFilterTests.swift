import PilotCore
import Testing

@Suite struct TopicFilterTests {
    /// The matching rules of DESIGN.md as a table: filter, topic, matches.
    static let cases: [(String, String, Bool)] = [
        // exact topics
        ("metrics/cpu/web-01", "metrics/cpu/web-01", true),
        ("metrics/cpu/web-01", "metrics/cpu/web-02", false),
        ("metrics/cpu/web-01", "metrics/cpu", false),
        ("metrics/cpu", "metrics/cpu/web-01", false),
        // a trailing * matches one or more levels
        ("metrics/*", "metrics/cpu/web-01", true),
        ("metrics/*", "metrics/cpu", true),
        ("metrics/*", "metrics/disk/db-01/var", true),
        ("metrics/*", "metrics", false),
        ("metrics/*", "health/http/web-01", false),
        ("*", "metrics", true),
        ("*", "alerts/disk_pct/db-01", true),
        // a * elsewhere matches exactly one level
        ("metrics/*/web-01", "metrics/cpu/web-01", true),
        ("metrics/*/web-01", "metrics/memory/web-01", true),
        ("metrics/*/web-01", "metrics/cpu/web-02", false),
        ("metrics/*/web-01", "metrics/cpu/extra/web-01", false),
        ("metrics/*/web-01", "metrics/web-01", false),
        ("*/cpu/web-01", "metrics/cpu/web-01", true),
        ("*/*/db-01", "health/postgres/db-01", true),
        ("*/*/db-01", "health/postgres/db-02", false),
        ("alerts/*/*", "alerts/disk_pct/db-01", true),
        ("alerts/*/*", "alerts/disk_pct", false),
        ("alerts/*/*", "alerts/disk_pct/db-01/var", true),
        ("health/*/web-01/*", "health/http/web-01", false),
        // levels compare exactly, not by prefix or case
        ("metrics/cpu", "metrics/cpus", false),
        ("Metrics/*", "metrics/cpu", false),
    ]

    @Test(arguments: cases)
    func matchesAsDesigned(filter: String, topic: String, expected: Bool) throws {
        #expect(try TopicFilter(filter).matches(Topic(topic)) == expected)
    }

    @Test(arguments: [
        ("", "it is empty"),
        ("metrics//web-01", "empty level"),
        ("/metrics", "empty level"),
        ("metrics/", "empty level"),
        ("metrics/cpu web", "space"),
        ("metrics/\u{7}", "control"),
        ("metrics/é", "non-ASCII"),
        ("metrics/*", "only allowed in subscription filters"),
        ("metrics/cp*", "only allowed in subscription filters"),
        (String(repeating: "a", count: 257), "longer than 256 bytes"),
        (Array(repeating: "a", count: 17).joined(separator: "/"), "more than 16 levels"),
    ])
    func refusesBadTopics(text: String, reason: String) {
        #expect { try Topic(text) } throws: { "\($0)".contains(reason) && "\($0)".hasPrefix("invalid topic") }
    }

    @Test(arguments: [
        ("metrics/cpu*", "must be a whole level"),
        ("**", "must be a whole level"),
        ("metrics//*", "empty level"),
    ])
    func refusesBadFilters(text: String, reason: String) {
        #expect { try TopicFilter(text) } throws: { "\($0)".contains(reason) && "\($0)".hasPrefix("invalid filter") }
    }
}
