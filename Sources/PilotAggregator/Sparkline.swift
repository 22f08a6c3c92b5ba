public import PilotCore

/// The last hour of a host's CPU, memory and fullest disk, one value per
/// minute (the minute's last): what the fleet page draws beside each host
/// without a store. A fixed ring of 60 slots, so a host costs the same
/// whatever it sends.
public struct Sparkline: Sendable {
    public enum Field: Int, Sendable, CaseIterable {
        case cpu, mem, disk
        var name: String { ["cpu", "mem", "disk"][rawValue] }
    }

    public static let minutes = 60
    /// The minutes a changes answer repeats.
    public static let recentMinutes = 5
    /// The minute (Unix seconds / 60) each slot holds, or -1.
    private var stamps = [Int64](repeating: -1, count: minutes)
    private var values = [Float](repeating: .nan, count: minutes * Field.allCases.count)
    /// The newest minute recorded.
    public private(set) var newest: Int64 = -1

    public init() {}

    public mutating func record(_ field: Field, _ value: Double, at seconds: Int64) {
        guard value.isFinite else { return }
        let minute = Self.minute(seconds)
        guard minute > newest - Int64(Self.minutes) else { return } // older than the window
        let slot = Int(minute % Int64(Self.minutes))
        if stamps[slot] != minute {
            stamps[slot] = minute
            for field in Field.allCases { values[slot * Field.allCases.count + field.rawValue] = .nan }
        }
        values[slot * Field.allCases.count + field.rawValue] = Float(value)
        newest = max(newest, minute)
    }

    /// The value of a field in a minute, if one was recorded.
    public func value(_ field: Field, minute: Int64) -> Double? {
        let slot = Int(minute % Int64(Self.minutes))
        guard minute >= 0, stamps[slot] == minute else { return nil }
        let value = values[slot * Field.allCases.count + field.rawValue]
        return value.isNaN ? nil : Double(value)
    }

    /// `{"start":S,"step":60,"cpu":[…],"mem":[…],"disk":[…]}`: the hour up
    /// to `now` from its first minute with a value, or (`newestOnly`) the
    /// newest `recentMinutes` up to the newest recorded, enough for a
    /// client that polls at least that often to miss none.
    public func json(now: Int64, newestOnly: Bool) -> JSONValue {
        let last = newestOnly ? newest : Self.minute(now)
        // From the first minute that has a value: a new host's hour is short.
        var first = newestOnly ? newest - Int64(Self.recentMinutes) + 1 : last - Int64(Self.minutes) + 1
        while first < last, Field.allCases.allSatisfy({ value($0, minute: first) == nil }) { first += 1 }
        guard last >= 0 else { return .object(JSONObject([("start", .number(Double(Self.minute(now) * 60))), ("step", .number(60))] + Field.allCases.map { ($0.name, JSONValue.array([])) })) }
        var members: [(String, JSONValue)] = [("start", .number(Double(first * 60))), ("step", .number(60))]
        for field in Field.allCases {
            members.append((field.name, .array((first...last).map { minute in value(field, minute: minute).map { .number(Self.rounded($0)) } ?? .null })))
        }
        return .object(JSONObject(members))
    }

    static func minute(_ seconds: Int64) -> Int64 { seconds >= 0 ? seconds / 60 : -1 }
    /// Floats carry 7 digits; one decimal is what a sparkline shows.
    static func rounded(_ value: Double) -> Double { (value * 10).rounded() / 10 }
}
