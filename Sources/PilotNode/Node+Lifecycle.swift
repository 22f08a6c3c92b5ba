public import PilotCore
public import ServiceLifecycle

/// A node and its roles as swift-service-lifecycle services. Each runs
/// until graceful shutdown is asked for, then stops; a `ServiceGroup`
/// stops its services in reverse order, so `services` lists the node first
/// and its roles after it: the roles stop (last attached first), then the node.
extension Node: Service {
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    public var services: [any Service] { [self] + roles.map { RoleService(role: $0) } }
}

/// One role of a node as a service.
struct RoleService: Service {
    let role: any NodeRole

    func run() async throws {
        try? await gracefulShutdown()
        ShutdownProgress.shared.waiting(role.name)
        await role.stop()
        ShutdownProgress.shared.finished(role.name)
    }
}
