internal import CDashboard
internal import NIOCore

/// The dashboard's files as the binary holds them (Sources/CDashboard:
/// web/ and Debian's Chart.js, embedded by the assembler), with their
/// content types and validators.
enum DashboardFiles {
    /// The embedded files, with their content types and validators.
    static let assets: [String: (bytes: StatusPage.StaticBytes, type: String, etag: String)] = {
        var table: [String: (bytes: StatusPage.StaticBytes, type: String, etag: String)] = [:]
        var index = 0
        while let cName = pilot_dashboard_asset_name(index) {
            let name = String(cString: cName)
            var length = 0
            if let start = pilot_dashboard_asset(cName, &length) {
                let buffer = UnsafeRawBufferPointer(start: start, count: length)
                let type = switch name.split(separator: ".").last ?? "" {
                case "html": "text/html; charset=utf-8"
                case "css": "text/css; charset=utf-8"
                case "js": "text/javascript; charset=utf-8"
                case "svg": "image/svg+xml"
                default: "application/octet-stream"
                }
                table[name] = (StatusPage.StaticBytes(buffer: buffer), type, "\"\(fnv(buffer))\"")
            }
            index += 1
        }
        return table
    }()

    static func fnv(_ bytes: UnsafeRawBufferPointer) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
    }

    static func response(_ path: String, _ request: StatusPage.Request) -> StatusPage.Response {
        let name = path == "/favicon.ico" ? "icon.svg" : String(path.dropFirst("/assets/".count))
        guard let asset = assets[name] else { return .init(status: 404, contentType: "text/plain", body: "no such file: \(path)\n", headers: AggregatorService.securityHeaders) }
        // Revalidated each time (cheap: 304), so a new binary's files are never stale.
        var headers = AggregatorService.securityHeaders + [("ETag", asset.etag), ("Cache-Control", "no-cache")]
        if name.hasSuffix(".html") { headers.append(AggregatorService.contentPolicy) }
        if request.header("if-none-match") == asset.etag { return .init(status: 304, contentType: asset.type, body: "", headers: headers) }
        return .init(status: 200, contentType: asset.type, bytes: asset.bytes, headers: headers)
    }

}
