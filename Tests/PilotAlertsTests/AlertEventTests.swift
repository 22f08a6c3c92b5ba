import Testing
@testable import PilotAlerts

