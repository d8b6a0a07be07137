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

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use prometheus::proto::{Quantile, Summary};

    use super::*;

    /// The lines as `suffix{label} value`, for comparing.
    fn shown(kind: MetricType, metric: &Metric, style: &Style) -> Vec<String> {
        let mut shown = Vec::new();
        lines(kind, metric, style, |line| {
            let label = match line.label {
                Some((name, Bound::Value(value))) => format!("{{{name}={value}}}"),
                Some((name, Bound::Inf)) => format!("{{{name}=+Inf}}"),
                None => String::new(),
            };
            shown.push(format!("{}{label} {}", line.suffix, line.value));
        });
        shown
    }

    #[test]
    fn a_summary_lists_its_quantiles_then_its_sum_and_count_in_the_styles_order() {
        let mut summary = Summary::default();
        let quantiles = [(0.5, 2.0), (0.9, 7.0)].map(|(q, value)| {
            let mut quantile = Quantile::default();
            quantile.set_quantile(q);
            quantile.set_value(value);
            quantile
        });
        summary.set_quantile(quantiles.to_vec());
        summary.set_sample_sum(12.5);
        summary.set_sample_count(4);
        let mut metric = Metric::default();
        metric.set_summary(summary);
        let text = Style {
            counter_suffix: "",
            count_first: false,
        };
        assert_eq!(
            shown(MetricType::SUMMARY, &metric, &text),
            [
                "{quantile=0.5} 2",
                "{quantile=0.9} 7",
                "_sum 12.5",
                "_count 4"
            ]
        );
        let openmetrics = Style {
            counter_suffix: "_total",
            count_first: true,
        };
        assert_eq!(
            shown(MetricType::SUMMARY, &metric, &openmetrics)[2..],
            ["_count 4", "_sum 12.5"]
        );
    }
}
