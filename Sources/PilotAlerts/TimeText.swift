/// Times and durations as receivers and people read them, in UTC, from
/// Unix seconds.
///
/// The target uses no Foundation (the binary stays small and static), so the
/// calendar arithmetic is here: proleptic Gregorian days to and from the
/// civil date, valid for every Int64 second the formats can meet.
public enum TimeText {
    /// Alertmanager's (Go's) zero time: a firing alert's `endsAt`.
    public static let zeroTime = "0001-01-01T00:00:00Z"

    /// `2026-12-01T23:00:00Z`: RFC 3339 in UTC, whole seconds.
    public static func rfc3339(_ unixSeconds: Int64) -> String {
        let (days, second) = split(unixSeconds)
        let date = civil(fromDays: days)
        return year(date.year) + "-" + pad(date.month) + "-" + pad(date.day) + "T" + clockDigits(second) + "Z"
    }

    /// `23:00:05 UTC`: the time of day, for one-line summaries.
    public static func clock(_ unixSeconds: Int64) -> String {
        clockDigits(split(unixSeconds).second) + " UTC"
    }

    /// `Tue, 01 Dec 2026 23:00:00 +0000`: RFC 5322's date-time (email's `Date:`).
    public static func rfc5322(_ unixSeconds: Int64) -> String {
        let (days, second) = split(unixSeconds)
        let date = civil(fromDays: days)
        let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return weekdays[Int(weekday(days))] + ", " + pad(date.day) + " " + months[date.month - 1] + " " + year(date.year) + " "
            + clockDigits(second) + " +0000"
    }

    /// `45s`, `2m`, `1m30s`, `1h30m`, `3d4h`: the largest unit and the one
    /// below it (when not zero), which is as precise as an on-call line
    /// needs. Negative durations (clock skew between hosts) read as `0s`.
    public static func duration(_ seconds: Int64) -> String {
        let seconds = max(seconds, 0)
        let units: [(Int64, String)] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
        guard let first = units.firstIndex(where: { seconds >= $0.0 }) else { return "0s" }
        let (size, name) = units[first]
        var text = String(seconds / size) + name
        if first + 1 < units.count {
            let (nextSize, nextName) = units[first + 1]
            let rest = (seconds % size) / nextSize
            if rest > 0 { text += String(rest) + nextName }
        }
        return text
    }

    // MARK: The calendar

    /// Days since 1970-01-01 of a proleptic Gregorian date (month 1...12).
    ///
    /// Counts in 400-year eras that start on 1 March, so that the leap day
    /// is the last day of its year and needs no special case.
    static func days(fromCivil year: Int64, _ month: Int, _ day: Int) -> Int64 {
        let shifted = month <= 2 ? year - 1 : year
        let era = floorDivide(shifted, 400)
        let yearOfEra = shifted - era * 400                                   // 0...399
        let marchMonth = Int64(month > 2 ? month - 3 : month + 9)             // 0 = March
        let dayOfYear = (153 * marchMonth + 2) / 5 + Int64(day) - 1          // 0...365
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468                             // 719468: 0000-03-01 to 1970-01-01
    }

    /// The inverse of `days(fromCivil:)`.
    static func civil(fromDays days: Int64) -> (year: Int64, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = floorDivide(shifted, 146_097)
        let dayOfEra = shifted - era * 146_097                                // 0...146096
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let marchMonth = (5 * dayOfYear + 2) / 153                            // 0 = March
        let day = Int(dayOfYear - (153 * marchMonth + 2) / 5 + 1)
        let month = Int(marchMonth < 10 ? marchMonth + 3 : marchMonth - 9)
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    /// 0 = Sunday; 1970-01-01 was a Thursday.
    static func weekday(_ days: Int64) -> Int64 {
        let remainder = (days + 4) % 7
        return remainder < 0 ? remainder + 7 : remainder
    }

    private static func split(_ unixSeconds: Int64) -> (days: Int64, second: Int64) {
        let days = floorDivide(unixSeconds, 86_400)
        return (days, unixSeconds - days * 86_400)
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let quotient = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient
    }

    private static func clockDigits(_ secondOfDay: Int64) -> String {
        pad(Int(secondOfDay / 3_600)) + ":" + pad(Int(secondOfDay / 60 % 60)) + ":" + pad(Int(secondOfDay % 60))
    }

    private static func pad(_ value: Int) -> String { value < 10 ? "0" + String(value) : String(value) }

    /// Four digits (RFC 3339 allows no more); years before 1 BC get a sign.
    private static func year(_ value: Int64) -> String {
        let digits = String(value.magnitude)
        return (value < 0 ? "-" : "") + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
