import PilotCLI
#if canImport(Glibc)
import Glibc
#endif

Dispatcher.prepareProcess(CommandLine.arguments)
exit(await Dispatcher.run(CommandLine.arguments))
