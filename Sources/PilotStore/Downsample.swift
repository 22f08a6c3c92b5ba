/// Aggregation of raw samples into steps: one point per step that has
/// samples, stamped at the step's start.
public enum Downsample {
    public enum Aggregate: String, Sendable, CaseIterable { case avg, min, max, last, count }

    public static func aggregate(_ samples: [Gorilla.Point], from: Int64, step: Int64, _ aggregate: Aggregate) -> [Gorilla.Point] {
        guard step > 0 else { return samples }
        var result: [Gorilla.Point] = []
        var bucket: Int64?
        var sum = 0.0, low = Double.infinity, high = -Double.infinity, last = 0.0, count = 0
        func flush() {
            guard let bucket, count > 0 else { return }
            let value: Double = switch aggregate {
            case .avg: sum / Double(count)
            case .min: low
            case .max: high
            case .last: last
            case .count: Double(count)
            }
            result.append(Gorilla.Point(bucket, value))
        }
        for sample in samples where sample.timestamp >= from {
            let start = from + (sample.timestamp - from) / step * step
            if start != bucket {
                flush()
                bucket = start
                sum = 0; low = .infinity; high = -.infinity; count = 0
            }
            sum += sample.value
            low = Swift.min(low, sample.value)
            high = Swift.max(high, sample.value)
            last = sample.value
            count += 1
        }
        flush()
        return result
    }

    /// Rollups merged into steps of at least their resolution.
    public static func aggregate(rollups: [SeriesStore.Rollup], from: Int64, step: Int64, _ aggregate: Aggregate) -> [Gorilla.Point] {
        merged(rollups, from: from, step: step).map { bucket in
            let value: Double = switch aggregate {
            case .min: bucket.min
            case .max: bucket.max
            case .count: Double(bucket.count)
            case .avg, .last: bucket.average
            }
            return Gorilla.Point(bucket.start, value)
        }
    }

    static func merged(_ rollups: [SeriesStore.Rollup], from: Int64, step: Int64) -> [SeriesStore.Rollup] {
        var buckets: [SeriesStore.Rollup] = []
        for rollup in rollups {
            let start = from + (rollup.start - from) / step * step
            if buckets.last?.start == start {
                buckets[buckets.count - 1].absorb(rollup)
            } else {
                var first = rollup
                first.start = start
                buckets.append(first)
            }
        }
        return buckets
    }

}

extension Downsample {
    /// One step's lowest, average and highest value.
    public struct Band: Equatable, Sendable {
        public var start: Int64, min: Double, average: Double, max: Double
    }

    /// `aggregate`'s steps with all three figures at once; the average is
    /// computed exactly as `.avg` computes it, so the two agree to the bit.
    public static func bands(_ samples: [Gorilla.Point], from: Int64, step: Int64) -> [Band] {
        precondition(step > 0)
        var result: [Band] = []
        var bucket: Int64?
        var sum = 0.0, low = Double.infinity, high = -Double.infinity, count = 0
        func flush() {
            guard let bucket, count > 0 else { return }
            result.append(Band(start: bucket, min: low, average: sum / Double(count), max: high))
        }
        for sample in samples where sample.timestamp >= from {
            let start = from + (sample.timestamp - from) / step * step
            if start != bucket {
                flush()
                bucket = start
                sum = 0; low = .infinity; high = -.infinity; count = 0
            }
            sum += sample.value
            low = Swift.min(low, sample.value)
            high = Swift.max(high, sample.value)
            count += 1
        }
        flush()
        return result
    }

    /// Rollups merged into steps, as `aggregate(rollups:)` merges them.
    public static func bands(rollups: [SeriesStore.Rollup], from: Int64, step: Int64) -> [Band] {
        merged(rollups, from: from, step: step).map { Band(start: $0.start, min: $0.min, average: $0.average, max: $0.max) }
    }
}
