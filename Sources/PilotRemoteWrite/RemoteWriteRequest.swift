internal import SwiftProtobuf
public import PilotCore
public import PilotStore

/// Builds Prometheus remote-write requests from the store's samples.
///
/// Names follow the aggregator's `/metrics`: `pilot_` + the field, so a
/// dashboard built on the scrape reads the remote-written history too.
/// Serialised WriteRequests concatenate into a valid WriteRequest (a
/// repeated field), which is how the outbox joins rows into one batch.
public enum RemoteWriteRequest {
    public static let metricPrefix = "pilot_"

    /// One uncompressed WriteRequest: a TimeSeries per series in the order
    /// first seen, its samples oldest first, labels sorted by name.
    /// A series is the store's (`SeriesStore.Key`): labels in any order are
    /// one series, as they are one row of the store's `series` table.
    public static func encode(_ samples: [Sample]) throws(RemoteWriteError) -> [UInt8] {
        var order: [SeriesStore.Key] = []
        var grouped: [SeriesStore.Key: [Sample]] = [:]
        for sample in samples {
            let key = SeriesStore.Key(sample)
            if grouped[key] == nil { order.append(key) }
            grouped[key, default: []].append(sample)
        }
        var request = Prometheus_WriteRequest()
        request.timeseries.reserveCapacity(order.count)
        for key in order {
            var series = Prometheus_TimeSeries()
            series.labels = labels(key).map { name, value in
                var label = Prometheus_Label()
                label.name = name
                label.value = value
                return label
            }
            series.samples = grouped[key]!.sorted { $0.timestamp < $1.timestamp }.map { sample in
                var encoded = Prometheus_Sample()
                encoded.timestamp = sample.timestamp
                encoded.value = sample.value
                return encoded
            }
            request.timeseries.append(series)
        }
        do { return try request.serializedBytes() } catch { throw RemoteWriteError("cannot encode a remote-write request: \(error)") }
    }

    /// `__name__` and the series' labels, sorted by name, with names made
    /// valid for Prometheus (`[a-zA-Z_][a-zA-Z0-9_]*`; anything else `_`).
    public static func labels(_ key: SeriesStore.Key) -> [(String, String)] {
        var pairs = [("__name__", sanitized(metricPrefix + key.metric, colons: true))]
        for label in key.labels where label.name != "__name__" { pairs.append((sanitized(label.name, colons: false), label.value)) }
        pairs.sort { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }
        var unique: [(String, String)] = []
        for pair in pairs where unique.last?.0 != pair.0 { unique.append(pair) }
        return unique
    }

    static func sanitized(_ name: String, colons: Bool) -> String {
        var bytes = Array(name.utf8).map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"), UInt8(ascii: "0")...UInt8(ascii: "9"): byte
            case UInt8(ascii: ":") where colons: byte
            default: UInt8(ascii: "_")
            }
        }
        if let first = bytes.first, first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9") { bytes.insert(UInt8(ascii: "_"), at: 0) }
        return bytes.isEmpty ? "_" : String(decoding: bytes, as: UTF8.self)
    }

    /// The (series labels, samples) a request holds, for tests and checks.
    public static func decode(_ bytes: [UInt8]) throws(RemoteWriteError) -> [(labels: [(String, String)], samples: [(timestamp: Int64, value: Double)])] {
        let request: Prometheus_WriteRequest
        do { request = try Prometheus_WriteRequest(serializedBytes: bytes) } catch { throw RemoteWriteError("not a remote-write request: \(error)") }
        return request.timeseries.map { series in
            (series.labels.map { ($0.name, $0.value) }, series.samples.map { ($0.timestamp, $0.value) })
        }
    }
}
