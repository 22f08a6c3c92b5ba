import PilotCore
@testable import PilotRoles
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Who may read and write the dashboard, and that the binary holds the
/// dashboard's files as they are in the tree.
@Suite struct DashboardAccessTests {
    func request(_ headers: [(String, String)] = [], method: String = "GET") -> StatusPage.Request {
        StatusPage.Request(method: method, path: "/api/v1/hosts", parameters: [], headers: headers.map { (name: $0.0, value: $0.1) })
    }

    @Test func onLoopbackWithoutTokensAnyoneReadsAndNobodyWrites() throws {
        let open = HTTPAccess()
        #expect(open.grant(request()) == .read)
        #expect(open.grant(request([("authorization", "Bearer anything")])) == .read)
        try open.validate(Endpoint(host: "127.0.0.1", port: 9190), flag: "--http")
        try open.validate(Endpoint(host: "::1", port: 9190), flag: "--http")
    }

    @Test func beyondLoopbackTLSAndATokenAreRequiredAndNamed() throws {
        let wide = Endpoint(host: "0.0.0.0", port: 9190)
        #expect(throws: ParseError.self) { try HTTPAccess(token: "t").validate(wide, flag: "--http") }
        #expect(throws: ParseError.self) { try HTTPAccess(tls: ("c", "k")).validate(wide, flag: "--http") }
        do {
            try HTTPAccess(token: "t").validate(wide, flag: "--http")
        } catch {
            #expect("\(error)".contains("--tls-cert"))
        }
        do {
            try HTTPAccess(tls: ("c", "k")).validate(wide, flag: "--http")
        } catch {
            #expect("\(error)".contains("--http-token"))
        }
        try HTTPAccess(token: "t", tls: ("c", "k")).validate(wide, flag: "--http")
        #expect { try HTTPAccess(token: "t").validate(wide, flag: "--http", stateDirectory: "/var/lib/pilot") } throws: {
            "\($0)".contains("or run 'pilot init --state-dir /var/lib/pilot' to make /var/lib/pilot/tls.crt")
        }
    }

    @Test func theTokenReadsTheAdminTokenWritesAndACookieNeverWrites() {
        let access = HTTPAccess(token: "reader-token", adminToken: "admin-token")
        #expect(access.grant(request()) == nil)
        #expect(access.grant(request([("authorization", "Bearer wrong")])) == nil)
        #expect(access.grant(request([("authorization", "Bearer reader-token")])) == .read)
        #expect(access.grant(request([("authorization", "bearer  admin-token")])) == .write)
        #expect(access.grant(request([("cookie", "a=b; \(HTTPAccess.cookie)=reader-token")])) == .read)
        #expect(access.grant(request([("cookie", "\(HTTPAccess.cookie)=admin-token")])) == .read) // a browser's cookie: reads only
        #expect(access.grant(request([("cookie", "\(HTTPAccess.cookie)=reader-tokenX")])) == nil)
        #expect(access.accepts("admin-token") && access.accepts("reader-token") && !access.accepts(""))
        // Without a read token but with an admin token: reads are open (loopback), writes need the admin token.
        let loopback = HTTPAccess(adminToken: "admin-token")
        #expect(loopback.grant(request()) == .read)
        #expect(loopback.grant(request([("authorization", "Bearer admin-token")])) == .write)
    }

    @Test func theEmbeddedFilesAreTheTreesFiles() throws {
        let web = String(#filePath.split(separator: "/").dropLast(3).joined(separator: "/"))
        for name in ["index.html", "app.css", "app.js", "icon.svg"] {
            let onDisk = try LocalFile.read("/" + web + "/Sources/CDashboard/web/" + name, maxBytes: 1 << 20)
            guard let embedded = DashboardFiles.assets[name] else {
                Issue.record("\(name) is not embedded")
                continue
            }
            // Stale after editing web/? touch Sources/CDashboard/assets.S (the assembler does not track .incbin).
            let same = Array(embedded.bytes.buffer) == onDisk
            #expect(same, "\(name): the build holds \(embedded.bytes.buffer.count) bytes, the tree \(onDisk.count)")
        }
        let chart = try LocalFile.read("/usr/share/javascript/chart.js/chart.min.js", maxBytes: 1 << 20)
        let sameChart = DashboardFiles.assets["chart.min.js"].map { Array($0.bytes.buffer) } == chart
        #expect(sameChart, "chart.min.js is not Debian's")
        let page = DashboardFiles.response("/assets/index.html", request())
        #expect(page.status == 200 && page.contentType.hasPrefix("text/html"))
        #expect(page.headers.contains { $0.0 == "Content-Security-Policy" })
        let etag = page.headers.first { $0.0 == "ETag" }?.1 ?? ""
        #expect(DashboardFiles.response("/assets/index.html", request([("if-none-match", etag)])).status == 304)
        #expect(DashboardFiles.response("/assets/../../etc/passwd", request()).status == 404)
    }
}
