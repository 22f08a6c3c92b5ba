public import PilotCore

/// The subset of PromQL the store answers, so Grafana's Prometheus data
/// source and `promtool query` can read Pilot's history: a selector
/// `metric{label="value",...}` (equality matchers), and for instant
/// queries `avg_over_time`, `max_over_time`, `min_over_time` and `rate`
/// over `selector[range]`.
public struct PromQuery: Equatable, Sendable {
    public enum Function: String, Sendable { case avgOverTime = "avg_over_time", maxOverTime = "max_over_time", minOverTime = "min_over_time", rate }

    public var metric: String
    public var matchers: [(String, String)]
    public var function: Function?
    public var rangeMilliseconds: Int64?

    public static func == (a: PromQuery, b: PromQuery) -> Bool {
        a.metric == b.metric && a.function == b.function && a.rangeMilliseconds == b.rangeMilliseconds
            && a.matchers.elementsEqual(b.matchers, by: { $0 == $1 })
    }

    public static func parse(_ text: String) throws(ParseError) -> PromQuery {
        func fail(_ reason: String) -> ParseError { ParseError("query", text, reason) }
        var rest = Substring(text.filter { !$0.isWhitespace })
        var function: Function?
        if let open = rest.firstIndex(of: "("), rest.hasSuffix(")") {
            guard let named = Function(rawValue: String(rest[..<open])) else {
                throw fail("only a selector, avg_over_time, min_over_time, max_over_time or rate is supported")
            }
            function = named
            rest = rest[rest.index(after: open)..<rest.index(before: rest.endIndex)]
        }
        var range: Int64?
        if rest.hasSuffix("]"), let open = rest.lastIndex(of: "[") {
            let duration = String(rest[rest.index(after: open)..<rest.index(before: rest.endIndex)])
            do { range = try DurationText.seconds(duration) * 1000 } catch { throw fail("bad range [\(duration)]") }
            rest = rest[..<open]
        }
        if function != nil, range == nil { throw fail("\(function!.rawValue) needs a range like [5m]") }
        if function == nil, range != nil { throw fail("a range vector needs a function such as avg_over_time") }
        var metric = String(rest.prefix { $0 != "{" })
        var matchers: [(String, String)] = []
        if let open = rest.firstIndex(of: "{") {
            guard rest.hasSuffix("}") else { throw fail("unclosed '{'") }
            let body = rest[rest.index(after: open)..<rest.index(before: rest.endIndex)]
            for item in body.split(separator: ",") {
                guard let equals = item.firstIndex(of: "="), item[item.index(after: equals)...].hasPrefix("\""), item.hasSuffix("\""),
                      item[..<equals].last != "!", item[..<equals].last != "=" else {
                    throw fail("only equality matchers like host=\"web-01\" are supported")
                }
                let name = String(item[..<equals])
                let value = String(item[item.index(equals, offsetBy: 2)..<item.index(before: item.endIndex)])
                if name == "__name__" { metric = value } else { matchers.append((name, value)) }
            }
        }
        guard !metric.isEmpty, metric.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }) else {
            throw fail("a metric name is needed")
        }
        return PromQuery(metric: metric, matchers: matchers, function: function, rangeMilliseconds: range)
    }

    public func matches(_ key: SeriesStore.Key) -> Bool {
        key.metric == metric && matchers.allSatisfy { want in key.labels.contains { $0.name == want.0 && $0.value == want.1 } }
    }

    /// Prometheus's lookback: the newest sample at most 5 minutes old.
    public static let lookback: Int64 = 300_000

    /// The value at `time` from samples sorted by time.
    public func value(at time: Int64, in samples: [Gorilla.Point]) -> Double? {
        if let function, let range = rangeMilliseconds {
            let window = samples.filter { $0.timestamp > time - range && $0.timestamp <= time }
            guard !window.isEmpty else { return nil }
            switch function {
            case .avgOverTime: return window.reduce(0) { $0 + $1.value } / Double(window.count)
            case .maxOverTime: return window.map(\.value).max()
            case .minOverTime: return window.map(\.value).min()
            case .rate:
                guard window.count >= 2 else { return nil }
                var increase = 0.0
                for (previous, next) in zip(window, window.dropFirst()) { increase += next.value >= previous.value ? next.value - previous.value : next.value }
                return increase / (Double(window.last!.timestamp - window.first!.timestamp) / 1000)
            }
        }
        return samples.last { $0.timestamp <= time && $0.timestamp > time - Self.lookback }?.value
    }
}
