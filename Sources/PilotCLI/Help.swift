/// Help text rendered from the command table.
enum Help {
    static func overview() -> String {
        var text = """
            pilot \(BuildInfo.version): fleet monitoring in one binary, over an end-to-end encrypted overlay.

            Usage: pilot ROLE [OPTIONS]       run a role (also as pilot-ROLE through a link)
                   pilot COMMAND [OPTIONS]

            Roles:

            """
        text += rows(CommandTable.roles)
        text += "\nCommands:\n"
        text += rows(CommandTable.all.filter { $0.kind == .command })
        text += "\nRun 'pilot help NAME' or 'pilot NAME --help' for the options of one role or command."
        return text
    }

    static func text(for spec: CommandSpec) -> String {
        if let implementation = spec.implementation { return implementation.help() }
        var text = "pilot \(spec.name): \(spec.abstract)\n\nUsage: \(spec.usage)\n"
        if let link = spec.linkName { text += "   or: \(link) [OPTIONS]\n" }
        if !spec.details.isEmpty { text += "\n" + wrap(spec.details, width: 78) + "\n" }
        text += "\nNot built yet in pilot \(BuildInfo.version): running it exits with status \(ExitStatus.unavailable)."
        return text
    }

    private static func rows(_ specs: [CommandSpec]) -> String {
        let width = (specs.map(\.name.count).max() ?? 0) + 2
        return specs.map { spec in
            let pad = String(repeating: " ", count: width - spec.name.count)
            let note = spec.isBuilt ? "" : " (not built yet)"
            return "  \(spec.name)\(pad)\(spec.abstract)\(note)\n"
        }.joined()
    }

    static func wrap(_ text: String, width: Int) -> String {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.count + 1 + word.count > width {
                lines.append(line)
                line = ""
            }
            line += line.isEmpty ? String(word) : " " + word
        }
        if !line.isEmpty { lines.append(line) }
        return lines.joined(separator: "\n")
    }
}
