extension Formats {
    /// Hosts an email subject names before it counts the rest (`+2`).
    static let emailSubjectHosts = 3
    /// Alerts whose details an email lists in full; the summary lines above
    /// them name every alert.
    static let emailDetailsShown = 50

    /// An email's subject and plain-text body (lines joined by "\n"; the
    /// message and SMTP layers turn them into CRLF).
    ///
    /// The subject names severity, host and metric, so an inbox sorts and
    /// filters on it: `[CRITICAL] db-01 disk_pct 97.1 % on /` for one alert,
    /// `[FIRING:3] disk_pct on db-01, db-02, web-01` for several,
    /// `[RESOLVED] …` when nothing fires any more. The body starts with the
    /// summary lines, gives each alert's details, and ends with the
    /// notification's id, the key to the router's delivery log. `to` and
    /// `from` appear in its last lines, so a forwarded mail still says whom
    /// the router meant it for.
    public static func email(_ notification: Notification, context: FormatContext, from: String, to: [String]) -> (subject: String, body: String) {
        (emailSubject(notification, context: context), emailBody(notification, context: context, from: from, to: to))
    }

    static func emailSubject(_ notification: Notification, context: FormatContext) -> String {
        if notification.isTest { return testSummary(context: context) }
        let subject: String
        if notification.alerts.count == 1, let alert = notification.alerts.first {
            subject = "[" + (alert.status == .firing ? alert.severity.uppercased() : "RESOLVED") + "] " + headline(alert)
        } else {
            let named = notification.status == .firing ? notification.firing : notification.alerts
            var hosts: [String] = []
            for host in named.map(\.host).sorted() where !hosts.contains(host) { hosts.append(host) }
            var hostText = hosts.prefix(emailSubjectHosts).joined(separator: ", ")
            if hosts.count > emailSubjectHosts { hostText += " +\(hosts.count - emailSubjectHosts)" }
            subject = title(notification) + (hostText.isEmpty ? "" : " on " + hostText)
        }
        return limited(subject, to: 200)
    }

    static func emailBody(_ notification: Notification, context: FormatContext, from: String, to: [String]) -> String {
        var lines = notification.alerts.map { summary($0, in: notification, context: context) }
        for (index, alert) in notification.alerts.prefix(emailDetailsShown).enumerated() {
            lines.append("")
            lines.append("-- \(index + 1) of \(notification.alerts.count): \(alert.name) on \(alert.host) (\(alert.severity), \(alert.status.rawValue))")
            lines.append("   Labels:    " + alert.allLabels.map { $0.name + "=" + $0.value }.joined(separator: " "))
            if let value = alert.value { lines.append("   Value:     " + valueText(value, metric: alert.name)) }
            if let threshold = alert.threshold { lines.append("   Threshold: \(comparison(alert)) \(trimmed(threshold))") }
            lines.append("   Since:     \(TimeText.rfc3339(alert.startsAt)) (\(TimeText.clock(alert.startsAt)))")
            if alert.status == .resolved {
                let end = resolvedAt(alert)
                lines.append("   Resolved:  \(TimeText.rfc3339(end)) (\(TimeText.clock(end))), after \(TimeText.duration(end - alert.startsAt))")
            }
            if context.base != nil { lines.append("   Host:      " + context.hostURL(alert.host)) }
        }
        if notification.alerts.count > emailDetailsShown {
            lines += ["", "… and the details of \(notification.alerts.count - emailDetailsShown) more alerts"]
        }
        lines.append("")
        if let base = context.base { lines.append("Dashboard: " + base) }
        lines.append("Sent by pilot alert-router on \(context.sender) (\(from)) to \(to.joined(separator: ", ")).")
        lines.append("Notification ID: " + notification.id)
        return lines.joined(separator: "\n")
    }

    /// The whole RFC 5322 message, CRLF throughout, ready for SMTP's DATA
    /// (which dot-stuffs it) or for sendmail's standard input.
    ///
    /// `Date:` is when the notification was made, so every retry of it is
    /// the same message; `Message-ID` is its id, so mail clients thread
    /// retries as one. Header values lose any CR or LF (a host name or
    /// label must not add a header), the subject is RFC 2047-encoded when
    /// not ASCII, and body lines longer than RFC 5322's 998 octets are split.
    public static func emailMessage(_ notification: Notification, context: FormatContext, from: String, to: [String]) -> String {
        let (subject, body) = email(notification, context: context, from: from, to: to)
        let headers = [
            "Date: " + TimeText.rfc5322(notification.createdAt),
            "From: " + headerSafe(from),
            "To: " + headerSafe(to.joined(separator: ", ")),
            "Subject: " + encodedHeader(headerSafe(subject)),
            "Message-ID: <" + messageIDPart(notification.id) + "@pilot>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ]
        var bodyLines: [String] = []
        // By scalars: "\r\n" is one Character, which a split on "\n" misses.
        for line in body.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false) {
            bodyLines += splitLine(String(String.UnicodeScalarView(line.filter { $0 != "\r" })), maxOctets: 998)
        }
        return (headers + [""] + bodyLines).joined(separator: "\r\n") + "\r\n"
    }

    /// Control characters (CR and LF above all) become spaces.
    static func headerSafe(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : $0 }))
    }

    /// The id with only the characters a Message-ID's left part may carry.
    static func messageIDPart(_ id: String) -> String {
        let kept = id.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-._".unicodeScalars.contains($0)) }
        return kept.isEmpty ? "notification" : String(String.UnicodeScalarView(kept))
    }

    /// ASCII as it is; anything else as RFC 2047 `=?UTF-8?B?…?=` words of at
    /// most 75 characters (45 bytes each, never cutting a character),
    /// folded onto continuation lines.
    static func encodedHeader(_ text: String) -> String {
        guard !text.unicodeScalars.allSatisfy(\.isASCII) else { return text }
        var words: [String] = []
        var chunk: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            if !chunk.isEmpty, chunk.count + bytes.count > 45 {
                words.append("=?UTF-8?B?" + base64(chunk) + "?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append("=?UTF-8?B?" + base64(chunk) + "?=") }
        return words.joined(separator: "\r\n ")
    }

    /// Base64 with padding (RFC 4648), for encoded words. PilotCore has
    /// none, and PilotCrypto's would pull libsodium into this target.
    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".unicodeScalars)
        var out = String.UnicodeScalarView()
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            var group: UInt32 = 0
            for offset in 0..<3 { group = group << 8 | UInt32(offset < count ? bytes[index + offset] : 0) }
            for position in 0..<4 {
                out.append(position <= count ? alphabet[Int(group >> (18 - 6 * position) & 0x3F)] : "=")
            }
            index += 3
        }
        return String(out)
    }

    /// A line cut into pieces of at most `maxOctets` UTF-8 bytes, at
    /// character boundaries.
    static func splitLine(_ line: String, maxOctets: Int) -> [String] {
        guard line.utf8.count > maxOctets else { return [line] }
        var pieces: [String] = []
        var piece = ""
        var octets = 0
        for character in line {
            let size = String(character).utf8.count
            if octets + size > maxOctets, !piece.isEmpty {
                pieces.append(piece)
                piece = ""
                octets = 0
            }
            piece.append(character)
            octets += size
        }
        pieces.append(piece)
        return pieces
    }
}
