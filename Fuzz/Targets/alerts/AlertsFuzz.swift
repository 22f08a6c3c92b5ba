// What the alert router reads from others (PilotAlerts): an alert notice
// from the hub (AlertEvent), an SMTP server's replies (SMTPDialogue), and
// receiver and route lines from flags and config files.
//
// Input: lines. Properties checked (a violation traps): a notice that
// parses survives its own record unchanged; a dialogue fed any replies
// ends (delivered or failed) within the lines it got plus one close,
// never sending without bound; nothing crashes.
import FuzzSupport
import PilotAlerts
import PilotCore

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = FuzzInput(data, size).bytes
    let lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
    for line in lines {
        let text = String(decoding: line, as: UTF8.self)
        if case .object(let payload)? = try? JSONValue.parse(Array(line)), let alert = try? AlertEvent(topic: "alerts/m/h", payload: payload) {
            guard let again = try? AlertEvent(record: .object(alert.record)), again == alert else {
                violated("alert \(alert.fingerprint) does not survive its record")
            }
        }
        _ = try? ReceiverSpec(parsing: text)
        _ = try? Route(parsing: text)
        _ = try? AlertMatcher(parsing: text)
    }
    let credentials = SMTPDialogue.Credentials(user: "pilot", password: "secret", mechanism: nil)
    if var dialogue = try? SMTPDialogue(heloName: "fuzz", security: .none, credentials: nil, from: "a@example.com", to: ["b@example.com"],
                                        message: Array("Subject: x\r\n\r\nbody\r\n".utf8)) {
        drive(&dialogue, lines)
    }
    if var dialogue = try? SMTPDialogue(heloName: "fuzz", security: .starttls, credentials: credentials, from: "a@example.com",
                                        to: ["b@example.com"], message: Array("Subject: x\r\n\r\nbody\r\n".utf8)) {
        drive(&dialogue, lines)
    }
    return 0
}

func drive(_ dialogue: inout SMTPDialogue, _ lines: [ArraySlice<UInt8>]) {
    var sent = 0
    for line in lines {
        guard !dialogue.isFinished else { return }
        switch dialogue.received(line: Array(line)) {
        case .send(let bytes): sent += bytes.count
        case .startTLS: if case .send(let bytes) = dialogue.tlsEstablished() { sent += bytes.count }
        default: break
        }
        guard sent <= 1 << 20 else { violated("the dialogue sent more than 1 MB for a small message") }
    }
    if !dialogue.isFinished { _ = dialogue.connectionClosed() }
    guard dialogue.isFinished else { violated("a closed connection did not end the dialogue") }
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    [
        ("notice", #"{"host":"db-01","metric":"disk_pct","value":97.1,"threshold":95,"severity":"critical","ts":1764100120,"status":"firing","fingerprint":"a1b2c3d4e5f60718","starts_at":1764100000,"labels":{"mount":"/"}}"# + "\n"),
        ("smtp", "220 mail ESMTP\n250-mail\n250-STARTTLS\n250 AUTH LOGIN PLAIN\n220 go ahead\n250-mail\n250 AUTH LOGIN\n334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n235 ok\n250 ok\n250 ok\n354 go\n250 queued\n"),
        ("config", "slack:ops=@/etc/pilot/slack-url\nemail:m=smtp://mail:587 to=a@b password=env:PW\nseverity=critical tag:db -> oncall continue\nhost!=web-* -> x\n"),
    ].map { ($0.0, Array($0.1.utf8)) }
}
