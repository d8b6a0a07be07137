//! The text format 0.0.4, written straight into one buffer.
//!
//! Byte for byte what the prometheus crate's `TextEncoder` writes (a test
//! holds it to that), at a fraction of its cost: that encoder formats every
//! value through `f64`'s `Display` into a fresh `String`, escapes every
//! label value into another, and writes each piece through `io::Write`.
//! Counts here are integers, written as such; bucket bounds repeat on every
//! series, so each is formatted once per family; label values are copied
//! as they are unless they hold a byte that needs escaping. Unlike that
//! encoder, which panics on it, an untyped family is written as `untyped`.

use std::fmt::Write as _;

use prometheus::proto::{Metric, MetricFamily, MetricType};

use super::walk::{self, Bound, Style};

/// Appends `families` to `out` in the text format 0.0.4.
pub(super) fn encode(families: &[MetricFamily], out: &mut String) {
    // Bucket bounds as text, by their bits: the same few on every series.
    let mut bounds: Vec<(u64, String)> = Vec::new();
    for family in families {
        let name = family.name();
        if !family.help().is_empty() {
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            push_escaped(out, family.help(), false);
            out.push('\n');
        }
        let kind = family.get_field_type();
        out.push_str("# TYPE ");
        out.push_str(name);
        out.push_str(match kind {
            MetricType::COUNTER => " counter\n",
            MetricType::GAUGE => " gauge\n",
            MetricType::SUMMARY => " summary\n",
            MetricType::UNTYPED => " untyped\n",
            MetricType::HISTOGRAM => " histogram\n",
        });
        for metric in family.get_metric() {
            write_metric(name, kind, metric, &mut bounds, out);
        }
    }
}

const STYLE: Style = Style {
    counter_suffix: "",
    count_first: false,
};

fn write_metric(
    name: &str,
    kind: MetricType,
    metric: &Metric,
    bounds: &mut Vec<(u64, String)>,
    out: &mut String,
) {
    walk::lines(kind, metric, &STYLE, |line| {
        let label = line.label.map(|(label, bound)| match bound {
            Bound::Value(bound) => (label, bound_text(bounds, bound)),
            Bound::Inf => (label, "+Inf"),
        });
        sample(out, name, line.suffix, metric, label, line.value);
    });
}

/// `bound` as `f64`'s `Display` writes it, formatted once.
fn bound_text(bounds: &mut Vec<(u64, String)>, bound: f64) -> &str {
    let bits = bound.to_bits();
    let index = match bounds.iter().position(|(known, _)| *known == bits) {
        Some(index) => index,
        None => {
            bounds.push((bits, bound.to_string()));
            bounds.len() - 1
        }
    };
    &bounds[index].1
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    metric: &Metric,
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let labels = metric.get_label();
    if !labels.is_empty() || extra.is_some() {
        let mut separator = '{';
        let pairs = labels
            .iter()
            .map(|label| (label.name(), label.value()))
            .chain(extra);
        for (label, text) in pairs {
            out.push(separator);
            separator = ',';
            out.push_str(label);
            out.push_str("=\"");
            push_escaped(out, text, true);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    push_value(out, value);
    if metric.timestamp_ms() != 0 {
        let _ = write!(out, " {}", metric.timestamp_ms());
    }
    out.push('\n');
}

/// `value` as `f64`'s `Display` writes it (`3`, `0.25`, `inf`, `NaN`),
/// integers through the integer formatter.
pub(super) fn push_value(out: &mut String, value: f64) {
    // Below 2^53 every integer is exact, and `Display` writes it without a
    // fraction or an exponent, as an integer formatter does. (`-0.0` is
    // left to `Display`, which keeps its sign.)
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 && value != 0.0
        || value == 0.0 && value.is_sign_positive()
    {
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

/// `text` with `\` and newlines escaped, and `"` too when `quotes`.
pub(super) fn push_escaped(out: &mut String, text: &str, quotes: bool) {
    let special = |byte: u8| byte == b'\\' || byte == b'\n' || quotes && byte == b'"';
    if !text.bytes().any(special) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use prometheus::{
        core::Collector, Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, Opts,
        Registry, TextEncoder,
    };

    use super::*;

    fn theirs(families: &[MetricFamily]) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(families, &mut buffer).unwrap();
        String::from_utf8(buffer).unwrap()
    }

    fn ours(families: &[MetricFamily]) -> String {
        let mut out = String::new();
        encode(families, &mut out);
        out
    }

    fn register(registry: &Registry, collector: impl Collector + 'static) {
        registry.register(Box::new(collector)).unwrap();
    }

    #[test]
    fn the_output_is_the_prometheus_crates_byte_for_byte() {
        let registry = Registry::new_custom(Some("app".into()), None).unwrap();
        let counter = IntCounterVec::new(
            Opts::new("jobs_total", "Jobs \\ done\nby \"kind\"."),
            &["kind", "queue"],
        )
        .unwrap();
        counter.with_label_values(&["plain", "q1"]).inc_by(3);
        counter
            .with_label_values(&["with \"quotes\"", "a\\b\nc"])
            .inc();
        counter.with_label_values(&["zero", "é ∞"]);
        register(&registry, counter);
        let gauge = Gauge::new("temperature", "Degrees.").unwrap();
        gauge.set(-0.0);
        register(&registry, gauge.clone());
        let histogram = HistogramVec::new(
            HistogramOpts::new("wait_seconds", "Wait.")
                .buckets(vec![1e-7, 0.005, 0.25, 1.0, 2.5, 10.0, 1e16]),
            &["path"],
        )
        .unwrap();
        for value in [1e-8, 0.004, 0.3, 3.0, 1e17] {
            histogram.with_label_values(&["/a"]).observe(value);
        }
        histogram.with_label_values(&["/b"]).observe(0.1);
        register(&registry, histogram);
        let mut special = prometheus::proto::MetricFamily::default();
        special.set_name("special".into());
        special.set_field_type(MetricType::GAUGE);
        let values = [
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1.5e300,
            -2.0,
            9.5e15,
        ];
        special.set_metric(
            values
                .iter()
                .enumerate()
                .map(|(index, &value)| {
                    let mut label = prometheus::proto::LabelPair::default();
                    label.set_name("n".into());
                    label.set_value(index.to_string());
                    let mut gauge = prometheus::proto::Gauge::default();
                    gauge.set_value(value);
                    let mut metric = prometheus::proto::Metric::from_label(vec![label]);
                    metric.set_gauge(gauge);
                    metric.set_timestamp_ms(if index % 2 == 0 { 0 } else { 1_700_000_000_123 });
                    metric
                })
                .collect(),
        );
        let mut families = registry.gather();
        families.push(special);
        assert_eq!(ours(&families), theirs(&families));
        for value in [-0.0, 0.0, 1.0, -3.0, 0.1, 1e20, 2.5e-9] {
            gauge.set(value);
            let families = registry.gather();
            assert_eq!(ours(&families), theirs(&families), "{value}");
        }
    }

    /// A gauge family of one series per `(label value, value)`.
    fn gauges(series: &[(String, f64)]) -> MetricFamily {
        let mut family = MetricFamily::default();
        family.set_name("g".into());
        family.set_help("h\\\n\"".into());
        family.set_field_type(MetricType::GAUGE);
        family.set_metric(
            series
                .iter()
                .map(|(text, value)| {
                    let mut label = prometheus::proto::LabelPair::default();
                    label.set_name("l".into());
                    label.set_value(text.clone());
                    let mut gauge = prometheus::proto::Gauge::default();
                    gauge.set_value(*value);
                    let mut metric = prometheus::proto::Metric::from_label(vec![label]);
                    metric.set_gauge(gauge);
                    metric
                })
                .collect(),
        );
        family
    }

    #[test]
    fn any_label_value_and_any_number_come_out_as_the_prometheus_crate_writes_them() {
        use proptest::prelude::*;
        let value = prop_oneof![
            any::<f64>(),
            (-1_000_000_i64..1_000_000).prop_map(|n| n as f64),
            Just(9_007_199_254_740_992.0),
            Just(-0.0),
        ];
        let series =
            proptest::collection::vec(("(?s)[\\\\\"\\n a-zé∞]{0,6}|(?s).{0,12}", value), 1..8);
        proptest!(ProptestConfig::with_cases(256), |(series in series)| {
            let families = [gauges(&series)];
            prop_assert_eq!(ours(&families), theirs(&families));
        });
    }

    #[test]
    fn an_untyped_family_is_written_as_untyped() {
        let mut family = prometheus::proto::MetricFamily::default();
        family.set_name("legacy".into());
        family.set_field_type(MetricType::UNTYPED);
        #[allow(deprecated)]
        let metric = {
            let mut untyped = prometheus::proto::Untyped::default();
            untyped.set_value(4.0);
            let mut metric = prometheus::proto::Metric::default();
            metric.set_untyped(untyped);
            metric
        };
        family.set_metric(vec![metric]);
        assert_eq!(ours(&[family]), "# TYPE legacy untyped\nlegacy 4\n");
    }
}
