public import PilotCore

/// `pilot silence add host=db-01 metric=disk_pct --for 2h --comment "disk swap"`:
/// alerts that match every matcher are not notified while it lasts. An
/// alert still firing when the silence ends is notified then.
public struct Silence: Sendable, Equatable {
    public var id: String
    public var matchers: [AlertMatcher]
    /// Unix seconds.
    public var startsAt: Int64
    public var endsAt: Int64
    public var comment: String
    public var createdBy: String

    public init(id: String, matchers: [AlertMatcher], startsAt: Int64, endsAt: Int64, comment: String, createdBy: String) {
        self.id = id
        self.matchers = matchers
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.comment = comment
        self.createdBy = createdBy
    }

    public func isActive(at now: Int64) -> Bool { startsAt <= now && now < endsAt }

    public func matches(_ alert: AlertEvent, tags: [String]) -> Bool {
        !matchers.isEmpty && matchers.allSatisfy { $0.matches(alert, tags: tags) }
    }

    /// Matchers as `pilot silence add` takes them; at least one, none a
    /// match-everything glob, since silencing every alert is never meant.
    public static func matchers(_ words: [String]) throws(ParseError) -> [AlertMatcher] {
        guard !words.isEmpty else { throw ParseError("silence", "", "give at least one matcher, e.g. host=db-01 metric=disk_pct") }
        var result: [AlertMatcher] = []
        for word in words { result.append(try AlertMatcher(parsing: word, what: "silence matcher")) }
        if result.allSatisfy({ if case .equal(_, "*") = $0.kind { return true } else { return false } }) {
            throw ParseError("silence", words.joined(separator: " "), "it would silence every alert")
        }
        return result
    }

    public var record: JSONObject {
        JSONObject([
            ("id", .string(id)), ("matchers", .array(matchers.map { .string($0.description) })),
            ("starts_at", .number(Double(startsAt))), ("ends_at", .number(Double(endsAt))),
            ("comment", .string(comment)), ("created_by", .string(createdBy)),
        ])
    }

    public init(record: JSONValue) throws(ParseError) {
        guard let id = record["id"]?.stringValue, case .array(let items)? = record["matchers"], let startsAt = record["starts_at"]?.int64Value,
              let endsAt = record["ends_at"]?.int64Value else {
            throw ParseError("silence record", record["id"]?.stringValue ?? "?", "it is incomplete")
        }
        var matchers: [AlertMatcher] = []
        for item in items { matchers.append(try AlertMatcher(parsing: item.stringValue ?? "", what: "silence matcher")) }
        self.init(id: id, matchers: matchers, startsAt: startsAt, endsAt: endsAt, comment: record["comment"]?.stringValue ?? "",
                  createdBy: record["created_by"]?.stringValue ?? "")
    }
}
