internal import CSodium

/// Secret key material that is wiped when the last reference goes away.
/// Immutable after creation, hence safe to share across tasks.
final class SecretBytes: @unchecked Sendable {
    private let storage: UnsafeMutableRawBufferPointer

    init(_ bytes: [UInt8]) {
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        storage.copyBytes(from: bytes)
        count = bytes.count
    }

    init(count: Int, initializer: (UnsafeMutablePointer<UInt8>) -> Void) {
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        self.count = count
        initializer(storage.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }

    let count: Int

    func withUnsafeBytes<R>(_ body: (UnsafePointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafePointer(storage.baseAddress!.assumingMemoryBound(to: UInt8.self)))
    }

    var bytes: [UInt8] { withUnsafeBytes { Array(UnsafeBufferPointer(start: $0, count: count)) } }

    deinit {
        sodium_memzero(storage.baseAddress, storage.count)
        storage.deallocate()
    }
}
