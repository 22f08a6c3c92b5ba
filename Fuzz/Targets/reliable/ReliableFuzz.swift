// ReliableChannel (PilotWire/ReliableChannel.swift): segments from the
// tunnel peer, as a pure state machine.
//
// Input: `mode u8 | config u8 | steps...`.
//
// Mode even, hostile peer: each step is `op u8` and its operands —
//   0 receive(chunk)    1 poll(now)    2 now += byte ms    3 send(chunk)
// Any bytes at all; errors are expected. Checked: the channel never holds
// more in flight than its window allows.
//
// Mode odd, lossy network between two honest channels A and B: each step
// delivers, drops or reorders the next segment of one direction, advances
// the clock, or queues a message on one side. Then the network heals and
// the clock runs until both sides are idle. Checked (a violation traps):
// each side delivers exactly the messages the other sent, in order, none
// twice, none altered, and it gets there within a bounded time.
import FuzzSupport
import PilotWire

func configuration(_ selector: UInt8) -> ReliableChannel.Configuration {
    var configuration = ReliableChannel.Configuration()
    switch selector % 4 {
    case 0: break // the tunnel's defaults
    case 1: // tiny segments and windows: fragmentation, full windows, SACK
        configuration.maxSegmentBytes = 32
        configuration.sendWindow = 4
        configuration.receiveWindow = 8
        configuration.sendBufferMessages = 8
    case 2: // a receive window smaller than the peer's send window
        configuration.maxSegmentBytes = 64
        configuration.sendWindow = 16
        configuration.receiveWindow = 3
        configuration.maxMessageBytes = 512
    default: // small messages only
        configuration.maxSegmentBytes = 40
        configuration.maxMessageBytes = 100
        configuration.ackDelay = 0
    }
    return configuration
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let mode = input.byte()
    let config = configuration(input.byte())
    if mode & 1 == 0 { hostile(&input, config) } else { network(&input, config) }
    return 0
}

func hostile(_ input: inout FuzzInput, _ config: ReliableChannel.Configuration) {
    var channel = ReliableChannel(configuration: config)
    var now: Int64 = 1_000_000
    while !input.isAtEnd {
        switch input.byte() % 4 {
        case 0: _ = try? channel.receive(input.chunk() ?? [], now: now)
        case 1: _ = channel.poll(now: now)
        case 2: now += Int64(input.byte()) * 1000
        default: _ = try? channel.send(input.chunk() ?? [])
        }
        guard channel.bytesInFlight <= config.sendWindow * config.maxSegmentBytes else {
            violated("\(channel.bytesInFlight) bytes in flight, window \(config.sendWindow) x \(config.maxSegmentBytes)")
        }
    }
}

struct Side {
    var channel: ReliableChannel
    var sent: [[UInt8]] = []       // messages this side queued
    var delivered: [[UInt8]] = []  // messages this side received
    var outbox: [[UInt8]] = []     // segments on the wire towards the other side

    mutating func send(_ message: [UInt8]) {
        if (try? channel.send(message)) != nil { sent.append(message) }
    }

    mutating func poll(_ now: Int64) { outbox += channel.poll(now: now) }

    mutating func receive(_ segment: [UInt8], _ now: Int64, from other: Side) {
        let messages: [[UInt8]]
        do {
            messages = try channel.receive(segment, now: now)
        } catch {
            violated("an honest segment was refused: \(error)")
        }
        for message in messages {
            guard delivered.count < other.sent.count, sameBytes(message, other.sent[delivered.count]) else {
                violated("message \(delivered.count) delivered is not message \(delivered.count) sent (\(other.sent.count) sent)")
            }
            delivered.append(message)
        }
    }
}

func network(_ input: inout FuzzInput, _ config: ReliableChannel.Configuration) {
    var a = Side(channel: ReliableChannel(configuration: config))
    var b = Side(channel: ReliableChannel(configuration: config))
    var now: Int64 = 1_000_000
    var serial: UInt16 = 0
    func message(_ length: Int) -> [UInt8] {
        serial &+= 1
        // Distinct by serial and length; filled without a per-byte loop (an
        // instrumented loop here would cost more than the channel itself).
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: serial), count: max(2, min(length, config.maxMessageBytes)))
        bytes[0] = UInt8(serial >> 8)
        return bytes
    }

    while !input.isAtEnd {
        let op = input.byte()
        switch op % 8 {
        case 0, 1: // deliver the next segment towards B
            if !a.outbox.isEmpty { b.receive(a.outbox.removeFirst(), now, from: a) }
        case 2:
            if !b.outbox.isEmpty { a.receive(b.outbox.removeFirst(), now, from: b) }
        case 3: // lose one
            if !a.outbox.isEmpty { a.outbox.removeFirst() }
        case 4:
            if !b.outbox.isEmpty { b.outbox.removeFirst() }
        case 5: // reorder, or duplicate when the high bit is set
            if let first = a.outbox.first {
                if op & 0x80 == 0 { a.outbox.removeFirst() }
                a.outbox.append(first)
            }
            if let first = b.outbox.first, op & 0x40 != 0 {
                b.outbox.removeFirst()
                b.outbox.append(first)
            }
        case 6: // time passes
            now += Int64(input.byte()) * 500
            a.poll(now)
            b.poll(now)
        default:
            let size = Int(input.byte())
            if op & 0x80 == 0 { a.send(message(size * 7)) } else { b.send(message(size * 7)) }
        }
    }

    // The network heals: everything arrives, time runs on until both are idle.
    let deadline = now + 3_600_000_000
    while true {
        a.poll(now)
        b.poll(now)
        while !a.outbox.isEmpty || !b.outbox.isEmpty {
            if !a.outbox.isEmpty { b.receive(a.outbox.removeFirst(), now, from: a) }
            if !b.outbox.isEmpty { a.receive(b.outbox.removeFirst(), now, from: b) }
        }
        if a.channel.isIdle, b.channel.isIdle, a.channel.nextDeadline == nil, b.channel.nextDeadline == nil { break }
        guard now < deadline else {
            violated("not idle an hour after the network healed: A delivered \(a.delivered.count)/\(b.sent.count), B \(b.delivered.count)/\(a.sent.count)")
        }
        // An ack that opened the window leaves work for the next poll without a
        // deadline: carriers poll after every receive, so poll again at once.
        let next = min(a.channel.nextDeadline ?? .max, b.channel.nextDeadline ?? .max)
        now = next == .max ? now + 1 : max(now + 1, next)
    }
    // Each delivery was checked against what was sent: the counts say the rest.
    guard a.delivered.count == b.sent.count, b.delivered.count == a.sent.count else {
        violated("idle but A delivered \(a.delivered.count)/\(b.sent.count), B \(b.delivered.count)/\(a.sent.count)")
    }
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    // A real exchange for the hostile mode: what an honest peer sends.
    var peer = ReliableChannel(configuration: configuration(1))
    try! peer.send(Array("a message longer than one tiny segment".utf8))
    try! peer.send([1, 2, 3])
    let segments = peer.poll(now: 1_000_000)
    var hostile: [UInt8] = [0, 1]
    for segment in segments.reversed() { hostile += [0] + FuzzLayout.chunk(segment) }
    hostile += [2, 10, 1]
    let ack: [UInt8] = [2, 0, 0, 0, 1, 0, 8, 1, 0, 0, 0, 2, 0, 0, 0, 3]
    var sender: [UInt8] = [0, 1, 3] + FuzzLayout.chunk(Array(repeating: 9, count: 100)) + [1]
    sender += [0] + FuzzLayout.chunk(ack) + [2, 255, 1, 2, 255, 1, 0] + FuzzLayout.chunk([2, 0, 0, 0, 4, 0, 8, 0]) + [1]
    return [
        ("hostile-data", hostile),
        ("hostile-acks", sender),
        ("network-clean", [1, 0, 7, 20, 7, 0x83, 6, 10, 0, 0, 0, 2, 2, 6, 20, 0, 2]),
        ("network-lossy", [1, 1, 7, 30, 7, 0x85, 6, 1, 3, 0, 5, 0x85, 0, 4, 2, 6, 255, 0, 0, 2, 6, 255]),
        ("network-small-window", [1, 2, 7, 60, 7, 60, 7, 0x81, 6, 1, 0, 0, 0, 0, 3, 3, 2, 2, 6, 100]),
        ("network-reorder", [1, 3, 7, 3, 7, 4, 7, 5, 6, 1, 5, 5, 0xC5, 0, 0, 0, 2, 2, 2]),
    ]
}
