internal import PilotCore

/// Which node is the fleet's hub: the one given (`pilot init --hub`), else
/// the one the registry lists as announcing itself (an aggregator
/// registers with the tag `pilot-hub`), so that a node set up as the
/// monitoring guide does it (registry and beacon, no hub) publishes to
/// the right place.
extension Node {
    public static let hubTag = "pilot-hub"

    /// The hub's hostname, asking the registry when none is configured;
    /// an error names what to do when none, or more than one, announces itself.
    public func hub() async throws -> String {
        if let hub = options.hub { return hub }
        guard let registry else { throw NodeError("no hub configured (pilot init --hub NAME) and no registry to find one at") }
        let nodes = try await registry.search("tag:\(Self.hubTag)")
        return try HubChoice.pick(nodes.compactMap { node in
            node["hostname"]?.stringValue.map { (hostname: $0, online: node["presence"]?.stringValue == "online") }
        })
    }
}

/// The choice among the nodes that announce themselves as the hub.
public enum HubChoice {
    /// The only one; else the only one online (a hub replaced by another
    /// lingers offline in the directory); else an error naming them.
    public static func pick(_ candidates: [(hostname: String, online: Bool)]) throws -> String {
        if candidates.count == 1 { return candidates[0].hostname }
        let online = candidates.filter(\.online)
        if online.count == 1 { return online[0].hostname }
        guard !candidates.isEmpty else {
            throw NodeError("no hub configured, and no node at the registry announces itself as the hub (tag \(Node.hubTag)); "
                            + "start 'pilot aggregator' on the hub's host, or name it with 'pilot init --hub NAME'")
        }
        let names = (online.isEmpty ? candidates : online).map(\.hostname).sorted().joined(separator: ", ")
        throw NodeError("several nodes announce themselves as the hub (\(names)); name one with 'pilot init --hub NAME' (or --to/--from)")
    }
}
