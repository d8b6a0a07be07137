//! Native (exponential) histograms of request durations: buckets whose
//! bounds grow by a constant factor, `2^(2^-schema)`, so that any quantile
//! is known to within that factor without choosing buckets.
//!
//! Each cell keeps a fixed range of buckets, allocated on its first
//! request: from the zero bucket's threshold, 2^-20 s (about 1 µs), to
//! 2^16 s (about 18 hours), 36 doublings of `2^schema` buckets each. A
//! request faster than the threshold counts in the zero bucket, as native
//! histograms define it; one slower than the top (a request of more than 18
//! hours) counts in the top bucket. The classic buckets and the sum stay
//! exact either way.

use crate::{extras::NativeHistogram, limits::MAX_NATIVE_SCHEMA};

/// The zero bucket's threshold: 2^-20 s.
const LOWEST_POWER: i32 = -20;
/// The top bucket's bound: 2^16 s.
const HIGHEST_POWER: i32 = 16;

/// The bucket layout of one schema.
#[derive(Debug)]
pub(crate) struct NativeLayout {
    schema: i32,
    /// Per bucket of one doubling: its upper bound as a fraction in
    /// [0.5, 1), as `frexp` splits a number.
    fractions: Box<[f64]>,
    /// The key of the first bucket above the zero bucket.
    first_key: i32,
    /// Buckets above the zero bucket.
    buckets: usize,
}

impl NativeLayout {
    /// The layout of `schema`, which the builder has checked to be in
    /// `0..=MAX_NATIVE_SCHEMA`.
    pub(crate) fn new(schema: i8) -> Self {
        let schema = i32::from(schema.clamp(0, MAX_NATIVE_SCHEMA));
        let per_doubling = 1_i32 << schema;
        let fractions = (0..per_doubling)
            .map(|i| (f64::from(i) / f64::from(per_doubling) - 1.0).exp2())
            .collect();
        Self {
            schema,
            fractions,
            first_key: LOWEST_POWER * per_doubling + 1,
            buckets: ((HIGHEST_POWER - LOWEST_POWER) * per_doubling) as usize,
        }
    }

    /// Counters a cell needs: the zero bucket, then the buckets.
    pub(crate) fn counters(&self) -> usize {
        self.buckets + 1
    }

    fn zero_threshold() -> f64 {
        f64::from(LOWEST_POWER).exp2()
    }

    /// The counter a duration of `ns` nanoseconds goes to: 0 for the zero
    /// bucket, else 1 + its bucket's position.
    pub(crate) fn index(&self, ns: u64) -> usize {
        let seconds = ns as f64 / 1e9;
        if seconds <= Self::zero_threshold() {
            return 0;
        }
        let (fraction, exponent) = frexp(seconds);
        // The first bound at or above the fraction; bucket `key` holds
        // (2^((key-1)/2^schema), 2^(key/2^schema)].
        let within = self.fractions.partition_point(|&bound| bound < fraction) as i32;
        let key = within + (exponent - 1) * (1 << self.schema);
        let position = (key - self.first_key).clamp(0, self.buckets as i32 - 1);
        position as usize + 1
    }

    /// The native histogram of `counts`, a cell's counters summed over the
    /// shards.
    pub(crate) fn histogram(&self, counts: &[u64]) -> NativeHistogram {
        let mut histogram = NativeHistogram {
            schema: self.schema,
            zero_threshold: Self::zero_threshold(),
            zero_count: counts.first().copied().unwrap_or(0),
            ..NativeHistogram::default()
        };
        histogram.count = histogram.zero_count;
        // Spans of populated buckets: an offset from where the previous one
        // ended (the first from key 0), and a length.
        let mut previous_end: Option<i32> = None;
        let mut previous_count = 0_i64;
        for (position, &count) in counts.iter().skip(1).enumerate() {
            if count == 0 {
                continue;
            }
            let key = self.first_key + position as i32;
            match (previous_end, histogram.spans.last_mut()) {
                (Some(end), Some(span)) if end == key => span.1 += 1,
                (end, _) => histogram.spans.push((key - end.unwrap_or(0), 1)),
            }
            previous_end = Some(key + 1);
            let count = i64::try_from(count).unwrap_or(i64::MAX);
            histogram.deltas.push(count - previous_count);
            previous_count = count;
            histogram.count += count as u64;
        }
        if histogram.spans.is_empty() && histogram.zero_count == 0 {
            // An empty span marks a histogram with no observations yet as
            // native, so that its series exists from the start.
            histogram.spans.push((0, 0));
        }
        histogram
    }
}

/// `value` as `fraction * 2^exponent` with `fraction` in [0.5, 1), for a
/// positive, finite, normal `value`.
fn frexp(value: f64) -> (f64, i32) {
    let bits = value.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let fraction = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (fraction, exponent)
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    /// The bucket bounds of the counter `ns` goes to.
    fn bounds(layout: &NativeLayout, ns: u64) -> (f64, f64) {
        let key = layout.first_key + layout.index(ns) as i32 - 1;
        let factor = 2_f64.powf(2_f64.powi(-layout.schema));
        (factor.powi(key - 1), factor.powi(key))
    }

    #[test]
    fn a_duration_falls_in_the_bucket_whose_bounds_hold_it() {
        for schema in 0..=MAX_NATIVE_SCHEMA {
            let layout = NativeLayout::new(schema);
            for ns in [
                1_000,
                1_234,
                999_999,
                1_000_000,
                7_777_777,
                1_000_000_000,
                3_600_000_000_000,
            ] {
                let (low, high) = bounds(&layout, ns);
                let seconds = ns as f64 / 1e9;
                assert!(
                    low < seconds * (1.0 + 1e-12) && seconds <= high * (1.0 + 1e-12),
                    "schema {schema}: {seconds} s in ({low}, {high}]"
                );
            }
        }
    }

    #[test]
    fn a_power_of_two_is_the_upper_bound_of_its_bucket() {
        let layout = NativeLayout::new(3);
        // 2^-3 s = 125 ms exactly: the top of the bucket with key -24.
        assert_eq!(layout.first_key + layout.index(125_000_000) as i32 - 1, -24);
    }

    #[test]
    fn faster_than_the_threshold_is_the_zero_bucket_and_slower_than_the_top_the_top() {
        let layout = NativeLayout::new(3);
        assert_eq!(layout.index(0), 0);
        assert_eq!(layout.index(900), 0);
        assert_eq!(layout.index(u64::MAX), layout.buckets);
    }

    #[test]
    fn spans_and_deltas_describe_the_populated_buckets() {
        let layout = NativeLayout::new(0);
        let mut counts = vec![0; layout.counters()];
        counts[0] = 2;
        counts[layout.index(1_000_000_000)] = 3; // key 0
        counts[layout.index(2_000_000_000)] = 1; // key 1
        counts[layout.index(8_000_000_000)] = 4; // key 3
        let histogram = layout.histogram(&counts);
        assert_eq!(histogram.zero_count, 2);
        assert_eq!(histogram.count, 10);
        assert_eq!(histogram.spans, [(0, 2), (1, 1)]);
        assert_eq!(histogram.deltas, [3, -2, 3]);
    }

    #[test]
    fn an_empty_histogram_is_marked_native_with_an_empty_span() {
        let layout = NativeLayout::new(3);
        let histogram = layout.histogram(&vec![0; layout.counters()]);
        assert_eq!(histogram.spans, [(0, 0)]);
        assert_eq!(histogram.count, 0);
    }
}
