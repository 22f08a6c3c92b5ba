/// A value from outside (a flag, a config line, a frame field) that does not
/// parse: one line saying what it was meant to be, the text, and why not,
/// e.g. `invalid address '1:0001.0000': expected three dot-separated groups …`.
public struct ParseError: Error, Equatable, CustomStringConvertible {
    public let kind: String
    public let text: String
    public let reason: String

    public init(_ kind: String, _ text: String, _ reason: String) {
        self.kind = kind
        self.text = text
        self.reason = reason
    }

    public var description: String { "invalid \(kind) '\(text)': \(reason)" }
}
