//! The sample lines of one metric, in the order and with the labels both
//! text formats write them; each encoder formats them its own way.

use prometheus::proto::{Metric, MetricType};

/// One sample line of a metric.
pub(super) struct Line {
    /// What follows the name: `_bucket`, `_sum`, `_count`, or the counter
    /// suffix of the [`Style`].
    pub(super) suffix: &'static str,
    /// The label after the metric's own: `le` or `quantile`.
    pub(super) label: Option<(&'static str, Bound)>,
    pub(super) value: f64,
    /// Which of the metric's exemplars may follow the line.
    pub(super) exemplar: Slot,
}

/// A bucket bound or a quantile.
#[derive(Clone, Copy)]
pub(super) enum Bound {
    Value(f64),
    /// The `+Inf` bucket the prometheus crate's model leaves to the count.
    Inf,
}

/// Which exemplar a line may carry.
#[derive(Clone, Copy)]
pub(super) enum Slot {
    None,
    Counter,
    /// The bucket's, by index (the missing `+Inf` bucket is the last).
    Bucket(usize),
}

/// Where the two formats differ.
pub(super) struct Style {
    /// After a counter's name: text 0.0.4 names it whole, OpenMetrics names
    /// the family without `_total` and the sample with it.
    pub(super) counter_suffix: &'static str,
    /// OpenMetrics writes `_count` before `_sum`, text 0.0.4 after.
    pub(super) count_first: bool,
}

/// Calls `line` for each sample line of `metric`, a metric of a `kind`
/// family, in order.
pub(super) fn lines(kind: MetricType, metric: &Metric, style: &Style, mut line: impl FnMut(Line)) {
    let plain = |suffix, value| Line {
        suffix,
        label: None,
        value,
        exemplar: Slot::None,
    };
    let (sum, count) = match kind {
        MetricType::COUNTER => {
            line(Line {
                exemplar: Slot::Counter,
                ..plain(style.counter_suffix, metric.get_counter().get_value())
            });
            return;
        }
        MetricType::GAUGE => return line(plain("", metric.get_gauge().get_value())),
        // Untyped is deprecated in the prometheus crate's model, but other
        // collectors may still return it.
        #[allow(deprecated)]
        MetricType::UNTYPED => return line(plain("", metric.get_untyped().get_value())),
        MetricType::SUMMARY => {
            let summary = metric.get_summary();
            for quantile in summary.get_quantile() {
                line(Line {
                    label: Some(("quantile", Bound::Value(quantile.quantile()))),
                    ..plain("", quantile.value())
                });
            }
            (summary.sample_sum(), summary.sample_count() as f64)
        }
        MetricType::HISTOGRAM => {
            let histogram = metric.get_histogram();
            let buckets = histogram.get_bucket();
            let count = histogram.get_sample_count() as f64;
            for (index, bucket) in buckets.iter().enumerate() {
                line(Line {
                    label: Some(("le", Bound::Value(bucket.upper_bound()))),
                    exemplar: Slot::Bucket(index),
                    ..plain("_bucket", bucket.cumulative_count() as f64)
                });
            }
            if !buckets.iter().any(|b| b.upper_bound() == f64::INFINITY) {
                line(Line {
                    label: Some(("le", Bound::Inf)),
                    exemplar: Slot::Bucket(buckets.len()),
                    ..plain("_bucket", count)
                });
            }
            (histogram.get_sample_sum(), count)
        }
    };
    if style.count_first {
        line(plain("_count", count));
        line(plain("_sum", sum));
    } else {
        line(plain("_sum", sum));
        line(plain("_count", count));
    }
}
