public import PilotCore

/// One condition on an alert: `severity=critical`, `host!=db-01`,
/// `host=web-*` (a `*` matches any run of characters), `metric=disk_pct`,
/// `status=firing`, any series label (`mount=/var`), or `tag:db` (the
/// host carries the tag in the registry).
public struct AlertMatcher: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case equal(String, String)
        case notEqual(String, String)
        case tag(String)
    }
    public var kind: Kind

    public init(parsing text: String, what: String = "matcher") throws(ParseError) {
        func fail(_ reason: String) -> ParseError { ParseError(what, text, reason) }
        if text.hasPrefix("tag:") {
            let tag = String(text.dropFirst(4))
            guard !tag.isEmpty, !tag.contains("=") else { throw fail("use tag:NAME") }
            kind = .tag(tag)
            return
        }
        let negated = text.contains("!=")
        guard let range = text.firstRange(of: negated ? "!=" : "=") else {
            throw fail("use NAME=VALUE, NAME!=VALUE or tag:NAME (names: severity, metric, host, status or a label such as mount)")
        }
        let name = String(text[..<range.lowerBound])
        let value = String(text[range.upperBound...])
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw fail("'\(name)' is not a label name")
        }
        guard !value.isEmpty else { throw fail("the value after \(negated ? "!=" : "=") is empty") }
        if name == "severity", !value.contains("*"), !["warning", "critical"].contains(value) { throw fail("severity is warning or critical") }
        if name == "status", !["firing", "resolved"].contains(value) { throw fail("status is firing or resolved") }
        kind = negated ? .notEqual(name, value) : .equal(name, value)
    }

    public func matches(_ alert: AlertEvent, tags: [String]) -> Bool {
        switch kind {
        case .equal(let name, let value): return alert.label(name).map { Self.glob(value, $0) } ?? false
        case .notEqual(let name, let value): return !(alert.label(name).map { Self.glob(value, $0) } ?? false)
        case .tag(let tag): return tags.contains(tag)
        }
    }

    public var description: String {
        switch kind {
        case .equal(let name, let value): return "\(name)=\(value)"
        case .notEqual(let name, let value): return "\(name)!=\(value)"
        case .tag(let tag): return "tag:\(tag)"
        }
    }

    /// `*` matches any run of characters; everything else itself.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        guard pattern.contains("*") else { return pattern == text }
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false)
        var rest = Substring(text)
        guard rest.hasPrefix(parts[0]) else { return false }
        rest = rest.dropFirst(parts[0].count)
        for (index, part) in parts.enumerated().dropFirst() {
            if index == parts.count - 1 { return part.isEmpty || rest.hasSuffix(part) }
            guard let found = rest.firstRange(of: part) else { return false }
            rest = rest[found.upperBound...]
        }
        return true
    }
}

/// A route on one line, tried in order; the first that matches decides,
/// unless it ends in `continue`, when later routes are tried too:
///
///     severity=critical -> oncall
///     tag:db -> dba continue
///     host=web-* metric=cpu_pct -> web-team,slack
///     default -> slack
///
/// Alerts no route takes go to the receivers that no route names (or to
/// every receiver when each is named), so an alert is never routed nowhere.
public struct Route: Sendable, Equatable, CustomStringConvertible {
    public var matchers: [AlertMatcher]
    public var receivers: [String]
    public var continues: Bool

    public init(matchers: [AlertMatcher], receivers: [String], continues: Bool = false) {
        self.matchers = matchers
        self.receivers = receivers
        self.continues = continues
    }

    public init(parsing text: String) throws(ParseError) {
        func fail(_ reason: String) -> ParseError { ParseError("route", text, reason) }
        guard let arrow = text.firstRange(of: "->") else { throw fail("use 'MATCHERS -> RECEIVER', e.g. 'severity=critical -> oncall'") }
        let left = text[..<arrow.lowerBound].split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" }).map(String.init)
        var right = text[arrow.upperBound...].split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        continues = right.last == "continue"
        if continues { right.removeLast() }
        receivers = right.flatMap { $0.split(separator: ",").map(String.init) }
        guard !receivers.isEmpty else { throw fail("it names no receiver after ->") }
        if left == ["default"] || left == ["*"] || left.isEmpty {
            matchers = []
        } else {
            var parsed: [AlertMatcher] = []
            for word in left { parsed.append(try AlertMatcher(parsing: word, what: "route '\(text)': matcher")) }
            matchers = parsed
        }
    }

    public func matches(_ alert: AlertEvent, tags: [String]) -> Bool { matchers.allSatisfy { $0.matches(alert, tags: tags) } }

    public var description: String {
        (matchers.isEmpty ? "default" : matchers.map(\.description).joined(separator: " ")) + " -> " + receivers.joined(separator: ",")
            + (continues ? " continue" : "")
    }
}

/// The routes and what becomes of an alert no route takes.
public struct RoutingTable: Sendable, Equatable {
    public var routes: [Route]
    /// Receivers for alerts no route takes.
    public var fallback: [String]

    /// Refuses a route that names a receiver that does not exist.
    public init(routes: [Route], receivers: [String]) throws(ParseError) {
        for route in routes {
            for name in route.receivers where !receivers.contains(name) {
                throw ParseError("route", route.description, "no receiver is named '\(name)' (receivers: \(receivers.isEmpty ? "none" : receivers.joined(separator: ", ")))")
            }
        }
        self.routes = routes
        let named = Set(routes.flatMap(\.receivers))
        let unnamed = receivers.filter { !named.contains($0) }
        fallback = unnamed.isEmpty ? receivers : unnamed
    }

    /// Each (route index, receiver) that takes the alert, in order; route
    /// index `routes.count` is the fallback.
    public func destinations(_ alert: AlertEvent, tags: [String]) -> [(route: Int, receiver: String)] {
        var found: [(route: Int, receiver: String)] = []
        for (index, route) in routes.enumerated() where route.matches(alert, tags: tags) {
            for receiver in route.receivers where !found.contains(where: { $0.receiver == receiver }) { found.append((index, receiver)) }
            if !route.continues { return found }
        }
        if found.isEmpty { return fallback.map { (routes.count, $0) } }
        return found
    }
}
