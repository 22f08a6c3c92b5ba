import Dispatch
import PilotCLI
#if canImport(Glibc)
import Glibc
#endif

/// Runs the command on the cooperative pool while the main thread waits.
/// Not an `async` main: that ends the main thread in dispatch_main's
/// pthread_exit, whose unwinding makes libgcc sort every frame description
/// of the static binary into a table (1 MB of the agent's anonymous memory).
func runBlocking(_ arguments: [String]) -> Int32 {
    final class Outcome: @unchecked Sendable { var status: Int32 = 1 }
    let outcome = Outcome()
    let finished = DispatchSemaphore(value: 0)
    Task.detached {
        outcome.status = await Dispatcher.run(arguments)
        finished.signal()
    }
    finished.wait()
    return outcome.status
}

Dispatcher.prepareProcess(CommandLine.arguments)
exit(runBlocking(CommandLine.arguments))
