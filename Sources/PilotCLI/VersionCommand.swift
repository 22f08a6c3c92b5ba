internal import ArgumentParser

struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "version")

    func run() async throws {
        var text = "pilot \(BuildInfo.version)\n"
        for (key, value) in BuildInfo.lines {
            text += "  \(key):" + String(repeating: " ", count: 11 - key.count) + value + "\n"
        }
        Console.current.out(String(text.dropLast()))
    }
}

struct LinksCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "links")

    func run() async throws {
        Console.current.out((CommandTable.roles.compactMap(\.linkName) + [Pilotctl.name]).joined(separator: "\n"))
    }
}
