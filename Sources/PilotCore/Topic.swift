/// A `/`-separated event-stream topic such as `metrics/cpu/web-01`.
///
/// Levels are non-empty runs of printable ASCII other than `/` and `*`
/// (a `*` is only meaningful in a `TopicFilter`).
public struct Topic: Hashable, Sendable, CustomStringConvertible {
    public static let maxLength = 256
    public static let maxLevels = 16

    public let levels: [Substring]
    public var description: String { levels.joined(separator: "/") }

    public init(_ text: some StringProtocol) throws(ParseError) {
        let levels = try Self.split(String(text), kind: "topic")
        for level in levels where level.contains("*") {
            throw ParseError("topic", String(text), "'*' is only allowed in subscription filters")
        }
        self.levels = levels
    }

    /// Splits and validates the levels shared by topics and filters.
    static func split(_ text: String, kind: String) throws(ParseError) -> [Substring] {
        guard !text.isEmpty else { throw ParseError(kind, text, "it is empty") }
        guard text.utf8.count <= maxLength else {
            throw ParseError(kind, String(text.prefix(40)) + "…", "longer than \(maxLength) bytes")
        }
        let levels = text.split(separator: "/", omittingEmptySubsequences: false)
        guard levels.count <= maxLevels else { throw ParseError(kind, text, "more than \(maxLevels) levels") }
        for level in levels {
            guard !level.isEmpty else { throw ParseError(kind, text, "it has an empty level") }
            guard level.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ParseError(kind, text, "level '\(level)' has a space, control or non-ASCII character")
            }
        }
        return levels
    }
}

/// A subscription filter: `*` matches exactly one level, and a trailing `*`
/// matches one or more remaining levels, so `metrics/*` receives
/// `metrics/cpu/web-01` and `metrics/*/web-01` receives every metric of one host.
public struct TopicFilter: Hashable, Sendable, CustomStringConvertible {
    public let levels: [Substring]
    public var description: String { levels.joined(separator: "/") }

    public init(_ text: some StringProtocol) throws(ParseError) {
        let levels = try Topic.split(String(text), kind: "filter")
        for level in levels where level != "*" && level.contains("*") {
            throw ParseError("filter", String(text), "'*' must be a whole level, not part of '\(level)'")
        }
        self.levels = levels
    }

    public func matches(_ topic: Topic) -> Bool {
        let pattern = levels, subject = topic.levels
        for (index, level) in pattern.enumerated() {
            let isLast = index == pattern.count - 1
            if isLast && level == "*" {
                return subject.count > index // one or more remaining levels
            }
            guard index < subject.count else { return false }
            if level != "*" && level != subject[index] { return false }
        }
        return subject.count == pattern.count
    }
}
