/// Durations as people write them in flags and config lines: a whole
/// number and a unit, `30s`, `90m`, `24h`, `7d` (a bare number is seconds).
public enum DurationText {
    public static let maxSeconds: Int64 = 100 * 365 * 86_400

    public static func seconds(_ text: String) throws(ParseError) -> Int64 {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800]
        var digits = Substring(text)
        var unit: Int64 = 1
        if let last = text.last, let multiplier = units[last] {
            unit = multiplier
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.count <= 12, digits.allSatisfy(\.isASCII), let value = Int64(digits), value >= 0 else {
            throw ParseError("duration", text, "use a whole number with s, m, h, d or w, like 90m or 7d")
        }
        guard value <= maxSeconds / unit else { throw ParseError("duration", text, "longer than 100 years") }
        return value * unit
    }
}
