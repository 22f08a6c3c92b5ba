/// A config file of one flag a line, the same flags the command line takes:
///
///     # comments and blank lines are ignored
///     --registry rv.example:9000
///     --check http:webapp=http://localhost:8080/health
///     --rule 'disk_pct > 90 for 2m critical > 95'
///
/// The value is the rest of the line (one pair of surrounding quotes is
/// removed); `--flag=value` works too. Errors name the file and line.
public struct ConfigFile: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var flag: String
        public var value: String?
        public var line: Int
    }

    public static let maxBytes = 1 << 20
    public static let maxLineBytes = 4096

    public private(set) var entries: [Entry] = []
    public let path: String

    public init(path: String) { self.path = path }

    public init(parsing text: String, path: String) throws(ConfigError) {
        self.path = path
        guard text.utf8.count <= Self.maxBytes else { throw ConfigError(path: path, line: nil, reason: "larger than \(Self.maxBytes) bytes") }
        // "\r\n" is one Character in Swift: split on it too, so CRLF files read line by line.
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let number = index + 1
            guard rawLine.utf8.count <= Self.maxLineBytes else {
                throw ConfigError(path: path, line: number, reason: "line longer than \(Self.maxLineBytes) bytes")
            }
            let line = rawLine.trimmingSpaces
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard line.hasPrefix("--") else {
                throw ConfigError(path: path, line: number, reason: "expected a flag starting with '--', found '\(line.prefix(60))'")
            }
            var flagEnd = line.firstIndex { $0 == " " || $0 == "\t" || $0 == "=" } ?? line.endIndex
            let flag = String(line[..<flagEnd])
            guard Self.isValidFlag(flag) else {
                throw ConfigError(path: path, line: number, reason: "'\(flag)' is not a flag name (letters, digits and '-')")
            }
            if flagEnd < line.endIndex, line[flagEnd] == "=" { flagEnd = line.index(after: flagEnd) }
            let rest = line[flagEnd...].trimmingSpaces
            entries.append(Entry(flag: flag, value: rest.isEmpty ? nil : Self.unquote(rest), line: number))
        }
    }

    /// The entries as command-line arguments, to be parsed before the real ones.
    public var arguments: [String] {
        entries.flatMap { entry in [entry.flag] + (entry.value.map { [$0] } ?? []) }
    }

    public func values(of flag: String) -> [String] {
        entries.filter { $0.flag == flag }.compactMap(\.value)
    }

    /// Replaces every occurrence of a single-valued flag (or removes it when `value` is nil).
    public mutating func set(_ flag: String, _ value: String?) {
        precondition(Self.isValidFlag(flag), "programming error: bad flag name \(flag)")
        let firstLine = entries.first { $0.flag == flag }?.line ?? Int.max
        entries.removeAll { $0.flag == flag }
        guard let value else { return }
        let entry = Entry(flag: flag, value: value, line: firstLine)
        let position = entries.firstIndex { $0.line > firstLine } ?? entries.endIndex
        entries.insert(entry, at: position)
    }

    /// Replaces every occurrence of a repeatable flag with `values`, where
    /// the first occurrence stood (or at the end).
    public mutating func setAll(_ flag: String, _ values: [String]) {
        precondition(Self.isValidFlag(flag), "programming error: bad flag name \(flag)")
        let position = entries.firstIndex { $0.flag == flag }
        entries.removeAll { $0.flag == flag }
        let line = position.map { entries.indices.contains($0) ? entries[$0].line : Int.max } ?? Int.max
        let insertAt = min(position ?? entries.endIndex, entries.endIndex)
        entries.insert(contentsOf: values.map { Entry(flag: flag, value: $0, line: line) }, at: insertAt)
    }

    public static let nodeHeader = "pilot node configuration: one flag a line; flags on the command line win."

    public func rendered(header: String) -> String {
        var text = header.split(separator: "\n", omittingEmptySubsequences: false).map { "# \($0)\n" }.joined()
        for entry in entries {
            text += entry.flag
            if let value = entry.value { text += " " + value }
            text += "\n"
        }
        return text
    }

    static func isValidFlag(_ flag: String) -> Bool {
        flag.count > 2 && flag.hasPrefix("--") && flag.dropFirst(2).utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || byte == UInt8(ascii: "-")
        }
    }

    static func unquote(_ value: Substring) -> String {
        if value.count >= 2, let first = value.first, first == "'" || first == "\"", value.last == first {
            return String(value.dropFirst().dropLast())
        }
        return String(value)
    }
}

public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let line: Int?
    public let reason: String
    public var description: String { line.map { "\(path):\($0): \(reason)" } ?? "\(path): \(reason)" }
}

extension Substring {
    /// Without leading and trailing spaces, tabs and carriage returns.
    public var trimmingSpaces: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = lastIndex(where: { !isSpace($0) })!
        return self[start...end]
    }
}
