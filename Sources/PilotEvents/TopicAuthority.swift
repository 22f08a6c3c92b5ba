public import PilotCore

/// Who may publish what at a hub: the hub binds every message to the node
/// that sent it. A host's own `metrics/*/HOST` and `health/*/HOST` (and a
/// payload's `host`) must name that node's hostname; `alerts/*` comes from
/// the hub's own node only. A grant (`pilot approve NODE --publish
/// FILTER`) widens it: `metrics/*` for a collector relaying for others,
/// `alerts/*` for another aggregator. Other topics are anyone's.
public enum TopicAuthority {
    /// Nil when the node may publish this, else the rule it breaks (the
    /// publisher is told, so it names the way out).
    public static func refusal(topic: Topic, payload: String, hostname: String, grants: [TopicFilter]) -> String? {
        guard !grants.contains(where: { $0.matches(topic) }) else { return nil }
        let kind = topic.levels[0]
        if kind == "alerts" {
            return "only the hub's own node publishes alerts/*: approve \(hostname) with --publish 'alerts/*' to let it"
        }
        guard kind == "metrics" || kind == "health" else { return nil }
        if topic.levels.count >= 3, topic.levels[2].lowercased() != hostname.lowercased() {
            return "\(kind)/*/HOST must name the publisher (\(hostname)), not \(topic.levels[2]): approve \(hostname) with --publish '\(kind)/*' to relay for others"
        }
        // Only a payload that names a host is parsed again.
        if payload.contains("\"host\""),
           let named = (try? JSONValue.parse(Array(payload.utf8), limits: .init(maxBytes: payload.utf8.count + 1, maxDepth: 64)))?["host"]?.stringValue,
           named.lowercased() != hostname.lowercased() {
            return "a \(kind) payload's host must be the publisher (\(hostname)), not \(named): approve \(hostname) with --publish '\(kind)/*' to relay for others"
        }
        return nil
    }
}
