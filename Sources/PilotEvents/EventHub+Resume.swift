internal import PilotCore

/// A plain subscriber back after a lost connection: what it missed is
/// counted from the log and told as `DROP n`, like what a full queue drops,
/// instead of leaving a silent gap.
extension EventHub {
    /// After a message's requests: a plain subscription learns where its
    /// live messages begin (`POSITION`), and one that said where it was
    /// (`RESUME`) is told what it missed since, once it has its filters.
    func settlePlainSubscription(_ connection: Connection) {
        guard let session = sessions[connection], session.durable == nil, !session.filters.isEmpty else { return }
        if let after = session.resumeAfter {
            sessions[connection]!.resumeAfter = nil
            let missed = missedMessages(after: after, upTo: log.lastID, filters: session.filters)
            if missed > 0 {
                sessions[connection]!.droppedUnreported += missed
                statistics.droppedSlow += missed
            }
        }
        if session.positionDue {
            sessions[connection]!.positionDue = false
            sessions[connection]!.replies.append(EventReply.position(log.lastID).line)
        }
    }

    /// Messages in the log after `after` and up to `upTo` that match any of
    /// `filters`. Only the newest `resumeScanLimit` are checked; older ones,
    /// and any that retention removed, count whatever their topic.
    func missedMessages(after: UInt64, upTo: UInt64, filters: [TopicFilter]) -> Int {
        guard upTo > after else { return 0 }
        let scanFrom = max(after, upTo - min(upTo, options.resumeScanLimit), log.firstID - 1)
        guard let counts = try? log.topicCounts(after: scanFrom, upTo: upTo) else { return Int(upTo - after) } // unknown: all of them
        var missed = Int(scanFrom - after)
        for (text, count) in counts {
            guard let topic = try? Topic(text), filters.contains(where: { $0.matches(topic) }) else { continue }
            missed += count
        }
        return missed
    }
}
