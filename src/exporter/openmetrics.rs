//! OpenMetrics 1.0.0 text, written from gathered families and the layer's
//! extras (exemplars).
//!
//! Differs from text 0.0.4 where the specification says: a counter family
//! is named without `_total` and its samples with it, unknown types are
//! `unknown`, timestamps are in seconds, exemplars follow a bucket's or a
//! counter's sample, and the exposition ends with `# EOF`.

use std::fmt::Write as _;

use prometheus::proto::{Metric, MetricFamily, MetricType};

use super::walk::{self, Bound, Slot, Style};
use crate::extras::{Exemplar, Extras, MetricExtras, TRACE_ID_LABEL};

/// Appends `families` to `out` in OpenMetrics text, `# EOF` included.
pub(super) fn encode(families: &[MetricFamily], extras: &Extras, out: &mut String) {
    let mut bounds = Vec::new();
    for family in families {
        let name = family.name();
        let family_extras = extras.family(name);
        let (family_name, kind) = match family.get_field_type() {
            MetricType::COUNTER => (name.strip_suffix("_total").unwrap_or(name), "counter"),
            MetricType::GAUGE => (name, "gauge"),
            MetricType::SUMMARY => (name, "summary"),
            MetricType::HISTOGRAM => (name, "histogram"),
            MetricType::UNTYPED => (name, "unknown"),
        };
        let _ = writeln!(out, "# TYPE {family_name} {kind}");
        if !family.help().is_empty() {
            out.push_str("# HELP ");
            out.push_str(family_name);
            out.push(' ');
            super::text::push_escaped(out, family.help(), true);
            out.push('\n');
        }
        for metric in family.get_metric() {
            let extras = family_extras.and_then(|f| f.get(metric));
            write_metric(
                family_name,
                family.get_field_type(),
                metric,
                extras,
                &mut bounds,
                out,
            );
        }
    }
    out.push_str("# EOF\n");
}

const STYLE: Style = Style {
    counter_suffix: "_total",
    count_first: true,
};

fn write_metric(
    name: &str,
    kind: MetricType,
    metric: &Metric,
    extras: Option<&MetricExtras>,
    bounds: &mut Vec<(u64, String)>,
    out: &mut String,
) {
    walk::lines(kind, metric, &STYLE, |line| {
        let label = line.label.map(|(label, bound)| match bound {
            Bound::Value(bound) => (label, bound_text(bounds, bound)),
            Bound::Inf => (label, "+Inf"),
        });
        let exemplar = extras.and_then(|extras| match line.exemplar {
            Slot::None => None,
            Slot::Counter => extras.counter.as_ref(),
            Slot::Bucket(index) => extras.buckets.get(index).and_then(Option::as_ref),
        });
        sample(out, name, line.suffix, metric, label, line.value, exemplar);
    });
}

/// One sample line: the name and suffix, the metric's labels and `extra`,
/// the value, the metric's timestamp, and the exemplar.
fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    metric: &Metric,
    extra: Option<(&str, &str)>,
    value: f64,
    exemplar: Option<&Exemplar>,
) {
    out.push_str(name);
    out.push_str(suffix);
    let labels = metric.get_label();
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        let mut first = true;
        let pairs = labels
            .iter()
            .map(|label| (label.name(), label.value()))
            .chain(extra);
        for (label, value) in pairs {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(label);
            out.push_str("=\"");
            super::text::push_escaped(out, value, true);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    push_float(out, value);
    if metric.timestamp_ms() != 0 {
        out.push(' ');
        push_float(out, metric.timestamp_ms() as f64 / 1000.0);
    }
    if let Some(exemplar) = exemplar {
        let _ = write!(out, " # {{{TRACE_ID_LABEL}=\"{}\"}} ", exemplar.trace_id);
        push_float(out, exemplar.value);
        out.push(' ');
        push_float(out, exemplar.timestamp);
    }
    out.push('\n');
}

/// A number as OpenMetrics writes it: `+Inf`, `-Inf`, `NaN`, integers with
/// `.0` (the canonical form of a bucket bound), others in Rust's shortest
/// round-trip form, in exponent form when very large or small. Written in
/// place: a scrape writes one per sample.
fn push_float(out: &mut String, value: f64) {
    if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if value.is_nan() {
        out.push_str("NaN");
    } else if value != 0.0 && !(1e-4..1e15).contains(&value.abs()) {
        // Rust writes every digit of a very large or small number.
        let _ = write!(out, "{value:e}");
    } else if value.fract() == 0.0 {
        if value == 0.0 && value.is_sign_negative() {
            out.push_str("-0.0");
        } else {
            let _ = write!(out, "{}.0", value as i64);
        }
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
#[cfg(not(loom))]
fn float(value: f64) -> String {
    let mut out = String::new();
    push_float(&mut out, value);
    out
}

/// `value` as [`push_float`] writes it, formatted once per family: bucket
/// bounds repeat on every series.
fn bound_text(bounds: &mut Vec<(u64, String)>, value: f64) -> &str {
    let bits = value.to_bits();
    let index = match bounds.iter().position(|(known, _)| *known == bits) {
        Some(index) => index,
        None => {
            let mut text = String::new();
            push_float(&mut text, value);
            bounds.push((bits, text));
            bounds.len() - 1
        }
    };
    &bounds[index].1
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use prometheus::{
        core::Collector, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry,
    };

    use super::*;

    fn render(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&registry.gather(), &Extras::default(), &mut out);
        out
    }

    fn register(registry: &Registry, collector: impl Collector + 'static) {
        registry.register(Box::new(collector)).unwrap();
    }

    #[test]
    fn counters_are_named_without_total_and_sampled_with_it() {
        let registry = Registry::new();
        let counter =
            IntCounterVec::new(Opts::new("jobs_total", "Jobs \"done\"\\ok."), &["kind"]).unwrap();
        counter.with_label_values(&["a\nb"]).inc_by(3);
        register(&registry, counter);
        assert_eq!(
            render(&registry),
            "# TYPE jobs counter\n# HELP jobs Jobs \\\"done\\\"\\\\ok.\njobs_total{kind=\"a\\nb\"} 3.0\n# EOF\n"
        );
    }

    #[test]
    fn a_counter_without_total_gets_it_on_its_sample() {
        let registry = Registry::new();
        let counter = prometheus::IntCounter::new("jobs", "Jobs.").unwrap();
        counter.inc();
        register(&registry, counter);
        assert!(
            render(&registry).contains("# TYPE jobs counter\n# HELP jobs Jobs.\njobs_total 1.0\n")
        );
    }

    #[test]
    fn histograms_end_with_an_inf_bucket_count_and_sum() {
        let registry = Registry::new();
        let histogram = Histogram::with_opts(
            HistogramOpts::new("wait_seconds", "Wait.").buckets(vec![0.5, 1.0]),
        )
        .unwrap();
        histogram.observe(0.25);
        histogram.observe(2.0);
        register(&registry, histogram);
        assert_eq!(
            render(&registry),
            "# TYPE wait_seconds histogram\n# HELP wait_seconds Wait.\n\
             wait_seconds_bucket{le=\"0.5\"} 1.0\nwait_seconds_bucket{le=\"1.0\"} 1.0\n\
             wait_seconds_bucket{le=\"+Inf\"} 2.0\nwait_seconds_count 2.0\nwait_seconds_sum 2.25\n# EOF\n"
        );
    }

    #[test]
    fn gauges_keep_their_name_and_the_exposition_ends_with_eof() {
        let registry = Registry::new();
        let gauge = IntGauge::new("queue_depth", "Depth.").unwrap();
        gauge.set(-4);
        register(&registry, gauge);
        let text = render(&registry);
        assert!(text.contains("# TYPE queue_depth gauge\n"), "{text}");
        assert!(text.contains("\nqueue_depth -4.0\n"), "{text}");
        assert!(text.ends_with("\n# EOF\n"), "{text}");
    }

    #[test]
    fn an_empty_registry_is_just_eof() {
        assert_eq!(render(&Registry::new()), "# EOF\n");
    }

    #[test]
    fn numbers_are_written_as_openmetrics_reads_them() {
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(0.01), "0.01");
        assert_eq!(float(10.0), "10.0");
        assert_eq!(float(1e300), "1e300");
        assert_eq!(float(1.5e-7), "1.5e-7");
        assert_eq!(float(0.0), "0.0");
    }
}
