import PilotCLI
#if canImport(Glibc)
import Glibc
#endif

exit(await Dispatcher.run(CommandLine.arguments))
