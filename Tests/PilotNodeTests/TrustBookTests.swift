import PilotCore
import PilotCrypto
import PilotNode
import Testing

@Suite struct TrustBookTests {
    let web = SigningKey.generate().publicKey
    let db = SigningKey.generate().publicKey

    @Test func aRequestWaitsForTheOperatorThenBothTrust() throws {
        var dbBook = TrustBook(), webBook = TrustBook()
        let result1 = webBook.sent(to: db, hostname: "db-01", justification: "metrics", now: 1)
        #expect(result1 == .pending)
        let result2 = dbBook.received(from: web, hostname: "web-01", justification: "metrics", sameFleet: false, now: 1)
        #expect(result2 == .pending)
        #expect(!dbBook.isTrusted(web))
        #expect(dbBook.incoming[web]?.justification == "metrics")
        let result3 = try dbBook.approve("WEB-01", now: 2)
        #expect(result3.key == web)
        #expect(dbBook.isTrusted(web) && dbBook.incoming.isEmpty)
        let result4 = webBook.approvedByPeer(db, now: 2)
        #expect(result4)
        #expect(webBook.isTrusted(db) && webBook.outgoing.isEmpty)
    }

    @Test func bothAskingApprovesAtOnceInEitherOrder() {
        var book = TrustBook()
        let result5 = book.received(from: web, hostname: "web-01", justification: "", sameFleet: false, now: 1)
        #expect(result5 == .pending)
        let result6 = book.sent(to: web, hostname: "web-01", justification: "", now: 2)
        #expect(result6 == .trusted(autoApproved: "both nodes asked"))
        var other = TrustBook()
        let result7 = other.sent(to: db, hostname: "db-01", justification: "", now: 1)
        #expect(result7 == .pending)
        let result8 = other.received(from: db, hostname: "db-01", justification: "", sameFleet: false, now: 2)
        #expect(result8 == .trusted(autoApproved: "both nodes asked"))
    }

    @Test func theSameFleetTokenApprovesAndItsProofIsBoundToBothKeys() {
        var book = TrustBook()
        let result9 = book.received(from: web, hostname: "web-01", justification: "", sameFleet: true, now: 1)
        #expect(result9 == .trusted(autoApproved: "both hold the fleet join token"))
        let proof = TrustProof.make(token: "fleet-secret", from: web, to: db)
        #expect(TrustProof.verify(proof, token: "fleet-secret", from: web, to: db))
        #expect(!TrustProof.verify(proof, token: "other-secret", from: web, to: db))
        #expect(!TrustProof.verify(proof, token: "fleet-secret", from: db, to: web)) // not reusable the other way
        #expect(!TrustProof.verify(proof, token: "fleet-secret", from: web, to: SigningKey.generate().publicKey))
    }

    @Test func aChangedKeyForATrustedHostnameIsRefusedLoudly() throws {
        var book = TrustBook()
        _ = book.received(from: web, hostname: "web-01", justification: "", sameFleet: true, now: 1)
        let impostor = SigningKey.generate().publicKey
        guard case .refused(let reason) = book.received(from: impostor, hostname: "web-01", justification: "", sameFleet: true, now: 2) else {
            Issue.record("a new key for web-01 was accepted")
            return
        }
        #expect(reason.contains(web.fingerprint) && reason.contains(impostor.fingerprint) && reason.contains("pilot untrust web-01"))
        guard case .refused = book.sent(to: impostor, hostname: "web-01", justification: "", now: 2) else {
            Issue.record("asking a changed key was allowed")
            return
        }
        _ = try book.untrust("web-01")
        let result10 = book.received(from: impostor, hostname: "web-01", justification: "", sameFleet: true, now: 3)
        #expect(result10 == .trusted(autoApproved: "both hold the fleet join token"))
    }

    /// The pin holds by hostname in any case, across a save and a load, and
    /// goes with the last trusted entry of that name.
    @Test func aPinSurvivesTheBookOnDiskAndIgnoresCase() throws {
        var book = TrustBook()
        _ = book.received(from: web, hostname: "Web-01", justification: "", sameFleet: true, now: 1)
        var loaded = try TrustBook(json: JSONValue.parse(book.json.description))
        #expect(loaded == book)
        let impostor = SigningKey.generate().publicKey
        guard case .refused = loaded.received(from: impostor, hostname: "WEB-01", justification: "", sameFleet: true, now: 2) else {
            Issue.record("a new key for web-01 was accepted after the book was loaded")
            return
        }
        #expect(loaded.keyChange(hostname: "web-01", key: web) == nil)
        _ = try loaded.untrust("web-01")
        #expect(loaded.keyChange(hostname: "web-01", key: impostor) == nil)
    }

    @Test func decisionsNeedARequestAndNamesResolveByHostnameOrKey() throws {
        var book = TrustBook()
        #expect(throws: TrustError.noPendingRequest("web-01")) { try book.approve("web-01", now: 1) }
        #expect(throws: TrustError.notTrusted("web-01")) { try book.untrust("web-01") }
        _ = book.received(from: web, hostname: "web-01", justification: "", sameFleet: false, now: 1)
        let result11 = try book.reject(web.fingerprint)
        #expect(result11.key == web)
        #expect(book.incoming.isEmpty && !book.isTrusted(web))
    }

    @Test func grantsToPublishBeyondItsOwnTopicsAreKeptAndReplaced() throws {
        var book = TrustBook()
        _ = book.received(from: web, hostname: "web-01", justification: "", sameFleet: false, now: 1)
        #expect(book.publisher(web) == nil) // not trusted yet: no publisher
        _ = try book.approve("web-01", now: 2, publish: ["metrics/*"])
        #expect(book.publisher(web)?.hostname == "web-01" && book.publisher(web)?.grants == ["metrics/*"])
        // Given for a node trusted already, it replaces what it may publish.
        _ = try book.approve("web-01", now: 3, publish: ["metrics/*", "alerts/*"])
        #expect(book.publisher(web)?.grants == ["metrics/*", "alerts/*"])
        let restored = try TrustBook(json: JSONValue.parse(book.json.description))
        #expect(restored.publisher(web)?.grants == ["metrics/*", "alerts/*"])
        _ = try book.approve("web-01", now: 4, publish: [])
        #expect(book.publisher(web)?.grants == [])
        #expect(throws: TrustError.noPendingRequest("db-01")) { try book.approve("db-01", now: 5, publish: ["metrics/*"]) }
    }

    @Test func theBookRoundTripsThroughJSONAndRefusesDamage() throws {
        var book = TrustBook()
        _ = book.received(from: web, hostname: "web-01", justification: "hub \"metrics\"", sameFleet: true, now: 5)
        _ = book.received(from: db, hostname: "db-01", justification: "", sameFleet: false, now: 6)
        _ = book.sent(to: SigningKey.generate().publicKey, hostname: "app-01", justification: "x", now: 7)
        let restored = try TrustBook(json: JSONValue.parse(book.json.description))
        #expect(restored == book)
        #expect(throws: TrustError.corrupt("unknown version")) { try TrustBook(json: JSONValue.parse(#"{"version":2}"#)) }
        #expect(throws: TrustError.corrupt("an entry of \"trusted\" is damaged")) {
            try TrustBook(json: JSONValue.parse(#"{"version":1,"trusted":[{"key":"nope","hostname":"a"}],"incoming":[],"outgoing":[]}"#))
        }
    }

    @Test func incomingRequestsAreBounded() {
        var book = TrustBook()
        for _ in 0..<TrustBook.maxIncoming {
            _ = book.received(from: SigningKey.generate().publicKey, hostname: "x", justification: "", sameFleet: false, now: 1)
        }
        let result12 = book.received(from: SigningKey.generate().publicKey, hostname: "y", justification: "", sameFleet: false, now: 1)
        #expect(result12 == .refused("too many pending trust requests"))
    }
}
