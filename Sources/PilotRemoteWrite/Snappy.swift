internal import CSnappy

/// Snappy's block format (what Prometheus remote write bodies use), through
/// Debian's libsnappy.
public enum Snappy {
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        var length = snappy_max_compressed_length(input.count)
        var output = [UInt8](repeating: 0, count: length)
        let status = input.withUnsafeBytes { source in
            output.withUnsafeMutableBytes { target in snappy_compress(chars(source), source.count, chars(target), &length) }
        }
        // Only SNAPPY_BUFFER_TOO_SMALL can fail, and the buffer is the maximum.
        precondition(status == SNAPPY_OK, "snappy_compress failed with a buffer of snappy_max_compressed_length")
        output.removeSubrange(length...)
        return output
    }

    /// Decompresses a block, refusing one that claims more than `maxLength`
    /// bytes (no unbounded allocation from a hostile header).
    public static func decompress(_ input: [UInt8], maxLength: Int) throws(RemoteWriteError) -> [UInt8] {
        var length = 0
        let known = input.withUnsafeBytes { snappy_uncompressed_length(chars($0), $0.count, &length) }
        guard known == SNAPPY_OK else { throw RemoteWriteError("not a snappy block: its length header is invalid") }
        guard length <= maxLength else { throw RemoteWriteError("a snappy block of \(length) bytes is over the limit of \(maxLength)") }
        var output = [UInt8](repeating: 0, count: length)
        let status = input.withUnsafeBytes { source in
            output.withUnsafeMutableBytes { target in snappy_uncompress(chars(source), source.count, chars(target), &length) }
        }
        guard status == SNAPPY_OK else { throw RemoteWriteError("not a snappy block: it does not decompress") }
        return output
    }
}

/// Bytes as the `char *` snappy's C API takes.
private func chars(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<CChar>? { buffer.baseAddress?.assumingMemoryBound(to: CChar.self) }
private func chars(_ buffer: UnsafeMutableRawBufferPointer) -> UnsafeMutablePointer<CChar>? { buffer.baseAddress?.assumingMemoryBound(to: CChar.self) }

public struct RemoteWriteError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
