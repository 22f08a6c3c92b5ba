public import PilotCore

/// A threshold rule on one metric field:
///
///     disk_pct > 90 for 2m critical > 95
///     mem_pct > 85
///     free_kb < 100000 for 5m critical < 20000 clear 150000
///
/// warning when the comparison holds for `for` (default: at once), critical
/// when the critical comparison holds too; it recovers only past the clear
/// value (default: 5 % of the threshold on the safe side), so a value
/// hovering at the threshold does not flap.
public struct AlertRule: Equatable, Sendable, CustomStringConvertible {
    public enum Comparison: String, Sendable { case above = ">", below = "<" }

    public var metric: String
    public var comparison: Comparison
    public var warning: Double
    public var critical: Double?
    public var forSeconds: Int64 = 0
    public var clear: Double?

    public init(metric: String, comparison: Comparison, warning: Double, critical: Double? = nil, forSeconds: Int64 = 0, clear: Double? = nil) {
        self.metric = metric
        self.comparison = comparison
        self.warning = warning
        self.critical = critical
        self.forSeconds = forSeconds
        self.clear = clear
    }

    /// The seed's defaults: warning above the threshold, critical above threshold + 5.
    public static let defaults: [AlertRule] = [
        AlertRule(metric: "cpu_pct", comparison: .above, warning: 90, critical: 95),
        AlertRule(metric: "mem_pct", comparison: .above, warning: 85, critical: 90),
        AlertRule(metric: "disk_pct", comparison: .above, warning: 90, critical: 95),
    ]

    public var description: String {
        var text = "\(metric) \(comparison.rawValue) \(Self.number(warning))"
        if forSeconds > 0 { text += " for \(forSeconds)s" }
        if let critical { text += " critical \(comparison.rawValue) \(Self.number(critical))" }
        if let clear { text += " clear \(Self.number(clear))" }
        return text
    }

    static func number(_ value: Double) -> String { value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value) }

    public func breaches(_ value: Double, _ threshold: Double) -> Bool {
        comparison == .above ? value > threshold : value < threshold
    }

    /// The value a firing alert must pass to recover from `threshold`.
    public func clearValue(for threshold: Double) -> Double {
        if let clear, threshold == warning { return clear }
        let margin = max(abs(threshold) * 0.05, 0.000_001)
        return comparison == .above ? threshold - margin : threshold + margin
    }

    public func recovered(_ value: Double, from threshold: Double) -> Bool {
        comparison == .above ? value < clearValue(for: threshold) : value > clearValue(for: threshold)
    }

    public static func parse(_ text: String) throws(ParseError) -> AlertRule {
        func fail(_ reason: String) -> ParseError { ParseError("rule", text, reason) }
        var words = text.split(separator: " ").map(String.init)[...]
        func next(_ what: String) throws(ParseError) -> String {
            guard let word = words.popFirst() else { throw fail("\(what) is missing (e.g. 'disk_pct > 90 for 2m critical > 95')") }
            return word
        }
        func number(_ what: String) throws(ParseError) -> Double {
            let word = try next(what)
            guard let value = Double(word), value.isFinite else { throw fail("\(what) '\(word)' is not a number") }
            return value
        }
        let metric = try next("the metric")
        guard metric.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }), metric.first?.isLetter == true else {
            throw fail("the metric '\(metric)' must be a field name like disk_pct")
        }
        guard let comparison = Comparison(rawValue: try next("the comparison")) else { throw fail("the comparison must be > or <") }
        var rule = AlertRule(metric: metric, comparison: comparison, warning: try number("the threshold"))
        while let word = words.popFirst() {
            switch word {
            case "for":
                let duration = try next("the duration")
                do { rule.forSeconds = try DurationText.seconds(duration) } catch { throw fail("\(error)") }
            case "critical":
                guard try next("the critical comparison") == comparison.rawValue else { throw fail("the critical comparison must be \(comparison.rawValue) too") }
                rule.critical = try number("the critical threshold")
            case "clear":
                rule.clear = try number("the clear value")
            default:
                throw fail("unexpected '\(word)' (use: METRIC > N [for DURATION] [critical > N] [clear N])")
            }
        }
        if let critical = rule.critical, !rule.breaches(critical, rule.warning) && critical != rule.warning {
            throw fail("the critical threshold must be past the warning one")
        }
        if let clear = rule.clear, rule.breaches(clear, rule.warning) || clear == rule.warning {
            throw fail("the clear value must be on the safe side of the threshold")
        }
        return rule
    }
}
