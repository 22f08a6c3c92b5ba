import PilotCore
import PilotCrypto
import PilotRegistry
import Testing

@Suite struct DirectoryTests {
    let web = SigningKey.generate().publicKey
    let db = SigningKey.generate().publicKey
    let t0: Int64 = 1_764_100_000_000

    @Test func addressesAreStableForAKeyAcrossReRegistrationAndRestart() throws {
        var directory = Directory(now: t0)
        let first = try directory.register(key: web, hostname: "web-01", tags: ["web"], endpoints: ["10.0.0.5:4000"], now: t0).record
        let second = try directory.register(key: db, hostname: "db-01", tags: [], endpoints: [], now: t0).record
        #expect(first.address.description == "1:0001.0000.0001")
        #expect(second.address.description == "1:0001.0000.0002")
        let again = try directory.register(key: web, hostname: "web-01", tags: ["web", "prod"], endpoints: [], now: t0 + 5).record
        #expect(again.address == first.address)

        var restarted = Directory(records: [again, second], now: t0 + 60_000)
        #expect(try restarted.register(key: web, hostname: "web-01", tags: [], endpoints: [], now: t0 + 61_000).record.address == first.address)
        let third = try restarted.register(key: SigningKey.generate().publicKey, hostname: "new", tags: [], endpoints: [], now: t0 + 61_000).record
        #expect(third.address.description == "1:0001.0000.0003") // never reuses an address
    }

    @Test func aHostnameBelongsToTheFirstKeyUntilRevoked() throws {
        var directory = Directory(now: t0)
        _ = try directory.register(key: web, hostname: "web-01", tags: [], endpoints: [], now: t0)
        #expect(throws: RegistryError.hostnameTaken("WEB-01", ownerFingerprint: web.fingerprint)) {
            try directory.register(key: db, hostname: "WEB-01", tags: [], endpoints: [], now: t0)
        }
        let revoked = try directory.revoke(hostname: "web-01")
        #expect(revoked.hostname.isEmpty)
        let taken = try directory.register(key: db, hostname: "web-01", tags: [], endpoints: [], now: t0).record
        #expect(taken.publicKey == db)
        #expect(directory.lookup(hostname: "web-01", now: t0)?.record.publicKey == db)
    }

    @Test func offlineAfterTheWindowAndBackOnlineWithTheSameAddress() throws {
        var directory = Directory(timing: .init(offlineAfterMs: 120_000), now: t0)
        let record = try directory.register(key: web, hostname: "web-01", tags: [], endpoints: [], now: t0).record
        #expect(directory.sweep(now: t0).isEmpty) // registering reported it online already
        _ = try directory.heartbeat(key: web, now: t0 + 30_000)
        #expect(directory.sweep(now: t0 + 149_999).isEmpty)
        #expect(directory.presence(of: web, now: t0 + 149_999) == .online)
        #expect(directory.sweep(now: t0 + 150_000) == [PresenceEvent(address: record.address, hostname: "web-01", presence: .offline)])
        #expect(directory.sweep(now: t0 + 151_000).isEmpty) // reported once
        let back = try directory.heartbeat(key: web, now: t0 + 200_000)
        #expect(back == [PresenceEvent(address: record.address, hostname: "web-01", presence: .online)])
        #expect(directory.lookup(hostname: "web-01", now: t0 + 200_000)?.record.address == record.address)
    }

    /// Nodes heard from at different times each go offline when their own
    /// window runs out, in the sweep of that second, once; a heartbeat in
    /// time moves the deadline, and a deregistered node is never reported.
    @Test func eachNodeGoesOfflineWhenItsOwnWindowRunsOut() throws {
        var directory = Directory(timing: .init(offlineAfterMs: 10_000), now: t0)
        var keys: [PublicKey] = []
        for index in 0..<20 {
            let key = SigningKey.generate().publicKey
            keys.append(key)
            _ = try directory.register(key: key, hostname: "n\(index)", tags: [], endpoints: [], now: t0 + Int64(index) * 1000)
        }
        _ = try directory.heartbeat(key: keys[3], now: t0 + 12_000) // due at 22 s instead of 13 s
        _ = try directory.deregister(key: keys[5])
        var wentOffline: [Int64: [String]] = [:]
        for second in Int64(0)...40 {
            let events = directory.sweep(now: t0 + second * 1000)
            #expect(events.allSatisfy { $0.presence == .offline })
            if !events.isEmpty { wentOffline[second] = events.map(\.hostname) }
        }
        var expected: [Int64: [String]] = [:]
        for index in 0..<20 where index != 3 && index != 5 { expected[Int64(index) + 10] = ["n\(index)"] }
        expected[22] = ["n3", "n12"] // in address order
        #expect(wentOffline == expected)
    }

    @Test func afterARestartPresenceIsUnknownForAFullWindowNotOffline() throws {
        var before = Directory(now: t0)
        let records = try (1...50).map { index in
            try before.register(key: SigningKey.generate().publicKey, hostname: "h\(index)", tags: [], endpoints: [], now: t0).record
        }
        let restart = t0 + 3_600_000
        var directory = Directory(timing: .init(offlineAfterMs: 120_000), records: records, now: restart)
        #expect(directory.sweep(now: restart + 1000).isEmpty)
        #expect(directory.search("", onlineOnly: false, now: restart + 1000).allSatisfy { $0.presence == .unknown })
        // Half the fleet heartbeats within the window; only the silent half is then offline.
        var online = 0
        for record in records.prefix(25) { online += try directory.heartbeat(key: record.publicKey, now: restart + 30_000).count }
        #expect(online == 25) // each first heartbeat reports the node online
        #expect(directory.sweep(now: restart + 119_000).isEmpty)
        let offline = directory.sweep(now: restart + 120_000)
        #expect(offline.count == 25 && offline.allSatisfy { $0.presence == .offline })
    }

    /// Records restored in any order and new ones after them: a search
    /// runs in address order from after any address, at most `limit`.
    @Test func searchRunsInAddressOrderFromAfterAnAddress() throws {
        var first = Directory(now: t0)
        var records: [NodeRecord] = []
        for index in 0..<20 {
            records.append(try first.register(key: SigningKey.generate().publicKey, hostname: "h-\(index)", tags: [], endpoints: [], now: t0).record)
        }
        var directory = Directory(records: records.shuffled(), now: t0)
        _ = try directory.register(key: SigningKey.generate().publicKey, hostname: "h-20", tags: [], endpoints: [], now: t0)
        let names = { (views: [NodeView]) in views.map(\.record.hostname) }
        #expect(names(directory.search("", onlineOnly: false, now: t0)) == (0...20).map { "h-\($0)" })
        #expect(names(directory.search("", onlineOnly: false, now: t0, after: records[4].address, limit: 3)) == ["h-5", "h-6", "h-7"])
        #expect(names(directory.search("h-1", onlineOnly: false, now: t0, after: records[10].address)) == (11...19).map { "h-\($0)" })
        #expect(directory.search("", onlineOnly: false, now: t0, after: try Address(parsing: "1:0001.0000.FFFF")).isEmpty)
    }

    @Test func searchByTagSubstringAndOnline() throws {
        var directory = Directory(now: t0)
        _ = try directory.register(key: web, hostname: "web-server-01", tags: ["web-server", "production", "us-east"], endpoints: [], now: t0)
        _ = try directory.register(key: db, hostname: "db-01", tags: ["production"], endpoints: [], now: t0)
        let old = SigningKey.generate().publicKey
        _ = try directory.register(key: old, hostname: "staging-web", tags: ["staging"], endpoints: [], now: t0 - 500_000)
        let now = t0 + 1000
        #expect(directory.search("tag:production", onlineOnly: false, now: now).map(\.record.hostname) == ["web-server-01", "db-01"])
        #expect(directory.search("WEB", onlineOnly: false, now: now).map(\.record.hostname) == ["web-server-01", "staging-web"])
        #expect(directory.search("", onlineOnly: true, now: now).map(\.record.hostname) == ["web-server-01", "db-01"])
        #expect(directory.search("tag:prod", onlineOnly: false, now: now).isEmpty)
    }

    @Test func tagsAreCheckedAndBounded() throws {
        var directory = Directory(now: t0)
        #expect(try directory.register(key: web, hostname: "a", tags: ["x", "x", "y-1"], endpoints: [], now: t0).record.tags == ["x", "y-1"])
        for bad in [["Prod"], ["has space"], [""], [String(repeating: "a", count: 33)], (0..<11).map { "t\($0)" }] {
            #expect(throws: RegistryError.self) { try directory.setTags(key: web, tags: bad) }
        }
        #expect(throws: RegistryError.self) { try directory.register(key: db, hostname: "b", tags: [], endpoints: ["nope"], now: t0) }
        #expect(throws: RegistryError.notRegistered) { try directory.heartbeat(key: db, now: t0) }
    }

    @Test func deregisteredKeysKeepTheirAddressForAReturn() throws {
        var directory = Directory(now: t0)
        let record = try directory.register(key: web, hostname: "web-01", tags: [], endpoints: [], now: t0).record
        _ = try directory.deregister(key: web)
        #expect(directory.lookup(hostname: "web-01", now: t0) == nil)
        #expect(directory.count == 0)
        #expect(try directory.register(key: web, hostname: "web-02", tags: [], endpoints: [], now: t0).record.address == record.address)
    }
}
