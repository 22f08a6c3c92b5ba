/// Which frame counters a receiver has already accepted, over a sliding
/// window of the last `size` counters: a replayed frame, or one older than
/// the window, is refused; frames may arrive out of order within it.
///
/// Ask `check` before decrypting and `mark` only after the frame
/// authenticated, so forged frames cannot move the window.
public struct ReplayWindow: Sendable, Equatable {
    /// The default: datagram carriers reorder, so keep a wide window.
    public static let size: UInt64 = 4096

    /// Counters remembered below the highest one seen.
    public let size: UInt64
    private var bitmap: [UInt64]
    /// Highest counter accepted so far, if any.
    public private(set) var highest: UInt64?

    /// `size` is rounded up to a multiple of 64. A byte stream (TCP) never
    /// reorders, so its channels use a small window and save memory per
    /// connection; datagram tunnels keep the default.
    public init(size: UInt64 = ReplayWindow.size) {
        let words = max(1, Int((size + 63) / 64))
        self.size = UInt64(words) * 64
        bitmap = [UInt64](repeating: 0, count: words)
    }

    public func check(_ counter: UInt64) throws(WireError) {
        guard let highest, counter <= highest else { return }
        guard highest - counter < size else { throw .tooOld(counter: counter) }
        if isMarked(counter) { throw .replayed(counter: counter) }
    }

    public mutating func mark(_ counter: UInt64) {
        if let highest, counter <= highest {
            setBit(counter)
            return
        }
        let previous = highest
        highest = counter
        // Clear the slots the window slid over: they now stand for new counters.
        if let previous, counter - previous < size {
            var slot = previous + 1
            while slot < counter {
                clearBit(slot)
                slot += 1
            }
        } else {
            for index in bitmap.indices { bitmap[index] = 0 }
        }
        setBit(counter)
    }

    private func position(_ counter: UInt64) -> (word: Int, bit: UInt64) {
        let slot = counter % size
        return (Int(slot / 64), slot % 64)
    }

    private func isMarked(_ counter: UInt64) -> Bool {
        let (word, bit) = position(counter)
        return bitmap[word] & (1 << bit) != 0
    }

    private mutating func setBit(_ counter: UInt64) {
        let (word, bit) = position(counter)
        bitmap[word] |= 1 << bit
    }

    private mutating func clearBit(_ counter: UInt64) {
        let (word, bit) = position(counter)
        bitmap[word] &= ~(1 << bit)
    }
}
