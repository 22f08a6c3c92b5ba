/// Where a node keeps its identity, config, pinned keys, spools and control
/// socket: `--state-dir`, else `PILOT_STATE_DIR`, else `/var/lib/pilot` for
/// root and `~/.pilot` for everyone else.
public enum StateDirectory {
    public static func resolve(flag: String?, environment: [String: String], isRoot: Bool) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let fromEnvironment = environment["PILOT_STATE_DIR"], !fromEnvironment.isEmpty { return fromEnvironment }
        if isRoot { return "/var/lib/pilot" }
        if let home = environment["HOME"], !home.isEmpty { return home + "/.pilot" }
        return "/var/lib/pilot"
    }

    public static let identityFile = "identity.key"
    public static let configFile = "config"
}
