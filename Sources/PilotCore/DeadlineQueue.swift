/// When each of many keys is next due, as a binary min-heap: finding the
/// earliest deadline and taking the due keys costs O(log n) per key, not
/// a scan of every key (a hub's 10,000 stream connections, polled on each
/// datagram, made that scan most of its CPU).
///
/// A key holds one deadline; scheduling it again replaces it. The heap
/// keeps replaced entries until they surface or until they outnumber the
/// keys, when it is rebuilt: at most about twice as many entries as keys.
///
/// Inlinable: callers in other modules get it specialized for their key
/// type (unspecialized, each call looked up generic metadata at run time,
/// a tenth of a tunnel's receive path).
public struct DeadlineQueue<Key: Hashable & Sendable>: Sendable {
    @usableFromInline var heap: [(at: Int64, key: Key)] = []
    /// Each key's deadline: the one entry of the heap that counts for it.
    @usableFromInline var due: [Key: Int64] = [:]

    @inlinable public init() {}

    @inlinable public var count: Int { due.count }

    /// Due at `at`, instead of any deadline it had.
    @inlinable public mutating func schedule(_ key: Key, at: Int64) {
        guard due.updateValue(at, forKey: key) != at else { return }
        push((at, key))
        if heap.count > 2 * due.count + 64 { rebuild() }
    }

    /// Due no later than `at`: an earlier deadline it has stays.
    @inlinable public mutating func schedule(_ key: Key, noLaterThan at: Int64) {
        if let current = due[key], current <= at { return }
        schedule(key, at: at)
    }

    /// Not due any more (its entries are dropped as they surface).
    @inlinable public mutating func remove(_ key: Key) {
        due[key] = nil
        if due.isEmpty { heap.removeAll(keepingCapacity: true) }
    }

    /// The earliest deadline, if any key is scheduled.
    @inlinable public mutating func next() -> Int64? {
        dropStale()
        return heap.first?.at
    }

    /// The keys due at `now`, earliest first; each is unscheduled.
    @inlinable public mutating func takeDue(now: Int64) -> [Key] {
        var keys: [Key] = []
        while let first = next(), first <= now {
            let entry = pop()
            due[entry.key] = nil
            keys.append(entry.key)
        }
        return keys
    }

    @inlinable mutating func dropStale() {
        while let first = heap.first, due[first.key] != first.at { _ = pop() }
    }

    @inlinable mutating func rebuild() {
        heap = due.map { (at: $0.value, key: $0.key) }
        for index in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(from: index) }
    }

    @inlinable mutating func push(_ entry: (at: Int64, key: Key)) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].at < heap[parent].at else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    @inlinable mutating func pop() -> (at: Int64, key: Key) {
        let top = heap[0]
        let last = heap.removeLast()
        guard !heap.isEmpty else { return top }
        heap[0] = last
        siftDown(from: 0)
        return top
    }

    @inlinable mutating func siftDown(from index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count, heap[left].at < heap[smallest].at { smallest = left }
            if right < heap.count, heap[right].at < heap[smallest].at { smallest = right }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
