public import PilotCore
public import PilotTransport

/// A role that runs on a node (agent metrics, aggregator, store, later the
/// alert router and the dashboard): the one way a role adds to the node.
/// It says what it adds to `pilot status`, which control requests it
/// answers, and how it starts on a running node and stops again. A role
/// never reaches into another role; what two roles share is on the node.
public protocol NodeRole: AnyObject, Sendable {
    /// Its section in `pilot status --json`, its name in logs and in a
    /// shutdown that runs late.
    var name: String { get }

    /// The control requests it answers (called once, when attached).
    func register(_ requests: inout ControlRequests)

    /// Starts on a node whose own services (tunnels, registry session,
    /// event service, control socket) are running.
    func start(on node: Node) async throws

    /// Its section of `pilot status --json` (nil: none).
    func statusSection() async -> JSONValue?

    /// Stops gracefully: what it holds committed and acknowledged, its
    /// timers and listeners closed. The node itself is still running.
    func stop() async
}

extension NodeRole {
    public func register(_ requests: inout ControlRequests) {}
    public func statusSection() async -> JSONValue? { nil }
}

/// A control request as a type: its command name, and its fields read from
/// the request line with a clear error for anything missing or malformed.
/// The node and the CLI share these types, so a field is named once.
public protocol ControlRequest: Sendable {
    /// The `cmd` values this type answers (a family such as the trust verbs
    /// may share one type).
    static var commands: [String] { get }
    init(command: String, fields: JSONValue) throws(ControlRequestError)
}

public struct ControlRequestError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The control requests a node answers, each with the handler of its type.
/// A handler returns the reply's fields, or throws: the error's text is the
/// reply's `error`.
public struct ControlRequests: Sendable {
    public typealias Handler = @Sendable (JSONValue) async -> JSONValue
    private var handlers: [String: Handler] = [:]

    public init() {}

    /// Answers `R`'s commands with `body`. A command answered twice is a
    /// programming error: the second registration would silently win.
    public mutating func answer<R: ControlRequest>(_ type: R.Type, _ body: @escaping @Sendable (R) async throws -> JSONObject) {
        for command in R.commands {
            precondition(handlers[command] == nil, "control command '\(command)' is answered twice")
            handlers[command] = { request in
                do {
                    let parsed = try R(command: command, fields: request)
                    return ControlSocket.ok(try await body(parsed))
                } catch {
                    return ControlSocket.failure("\(error)")
                }
            }
        }
    }

    public var commands: [String] { handlers.keys.sorted() }

    /// The reply to one request line.
    public func reply(to request: JSONValue) async -> JSONValue {
        let command = request["cmd"]?.stringValue ?? ""
        guard let handler = handlers[command] else {
            return ControlSocket.failure("unknown control command '\(command)'")
        }
        return await handler(request)
    }
}

extension JSONValue {
    /// A required string field of a control request.
    public func requiredString(_ name: String, for command: String) throws(ControlRequestError) -> String {
        guard let value = self[name]?.stringValue, !value.isEmpty else { throw ControlRequestError("\(command) needs \(name)") }
        return value
    }
}
