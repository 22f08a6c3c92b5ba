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
    /// One step's lowest, average and highest value, and how many samples.
    public struct Band: Equatable, Sendable {
        public var start: Int64, min: Double, average: Double, max: Double, count: Int
    }

    /// Samples or rollups in time order folded into steps from `from`: the
    /// store's one way of stepping a range, for `pilot query --step` and
    /// the dashboard alike.
    public struct Folding {
        let from: Int64, step: Int64
        var bands: [Band] = []
        var current: SeriesStore.Rollup?

        public init(from: Int64, step: Int64) { (self.from, self.step) = (from, step) }

        public mutating func add(_ sample: Gorilla.Point) {
            guard sample.timestamp >= from else { return }
            add(SeriesStore.Rollup(start: sample.timestamp, sample: sample.value), checked: true)
        }

        public mutating func add(_ rollup: SeriesStore.Rollup) {
            guard rollup.start >= from else { return }
            add(rollup, checked: true)
        }

        private mutating func add(_ part: SeriesStore.Rollup, checked: Bool) {
            let start = from + (part.start - from) / step * step
            if current?.start == start {
                current!.absorb(part)
            } else {
                flush()
                current = part
                current!.start = start
            }
        }

        mutating func flush() {
            guard let bucket = current, bucket.count > 0 else { return }
            bands.append(Band(start: bucket.start, min: bucket.min, average: bucket.sum / Double(bucket.count), max: bucket.max, count: bucket.count))
            current = nil
        }

        public mutating func finish() -> [Band] {
            flush()
            return bands
        }
    }
}
