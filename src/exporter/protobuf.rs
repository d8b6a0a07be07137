//! The Prometheus protobuf format: length-delimited `MetricFamily`
//! messages, with exemplars and native histograms.
//!
//! The messages are in [`crate::proto`].

use prometheus::proto::{self as plain, MetricType};

use crate::extras::{Exemplar as RecordedExemplar, Extras, MetricExtras, TRACE_ID_LABEL};

use crate::proto as pb;

/// `families` as length-delimited `MetricFamily` messages.
pub(super) fn encode(families: &[plain::MetricFamily], extras: &Extras) -> Vec<u8> {
    let mut out = Vec::new();
    for family in families {
        let family_extras = extras.family(family.name());
        let message = pb::MetricFamily {
            name: Some(family.name().to_owned()),
            help: Some(family.help().to_owned()),
            r#type: Some(kind(family.get_field_type()) as i32),
            metric: family
                .get_metric()
                .iter()
                .map(|metric| {
                    let extras = family_extras.and_then(|f| f.get(metric));
                    convert(family.get_field_type(), metric, extras)
                })
                .collect(),
        };
        // Writing to a `Vec` cannot run out of room.
        let _ = prost::Message::encode_length_delimited(&message, &mut out);
    }
    out
}

fn kind(kind: MetricType) -> pb::MetricType {
    match kind {
        MetricType::COUNTER => pb::MetricType::Counter,
        MetricType::GAUGE => pb::MetricType::Gauge,
        MetricType::SUMMARY => pb::MetricType::Summary,
        MetricType::UNTYPED => pb::MetricType::Untyped,
        MetricType::HISTOGRAM => pb::MetricType::Histogram,
    }
}

fn convert(kind: MetricType, metric: &plain::Metric, extras: Option<&MetricExtras>) -> pb::Metric {
    let mut message = pb::Metric {
        label: metric
            .get_label()
            .iter()
            .map(|label| label_pair(label.name(), label.value()))
            .collect(),
        timestamp_ms: (metric.timestamp_ms() != 0).then_some(metric.timestamp_ms()),
        ..pb::Metric::default()
    };
    match kind {
        MetricType::COUNTER => {
            message.counter = Some(pb::Counter {
                value: Some(metric.get_counter().get_value()),
                exemplar: extras.and_then(|e| e.counter.as_ref()).map(exemplar),
            });
        }
        MetricType::GAUGE => {
            message.gauge = Some(pb::Gauge {
                value: Some(metric.get_gauge().get_value()),
            });
        }
        // Untyped is deprecated in the prometheus crate's model, but other
        // collectors may still return it, and the format carries it.
        #[allow(deprecated)]
        MetricType::UNTYPED => {
            message.untyped = Some(pb::Untyped {
                value: Some(metric.get_untyped().get_value()),
            });
        }
        MetricType::SUMMARY => {
            let summary = metric.get_summary();
            message.summary = Some(pb::Summary {
                sample_count: Some(summary.sample_count()),
                sample_sum: Some(summary.sample_sum()),
                quantile: summary
                    .get_quantile()
                    .iter()
                    .map(|q| pb::Quantile {
                        quantile: Some(q.quantile()),
                        value: Some(q.value()),
                    })
                    .collect(),
            });
        }
        MetricType::HISTOGRAM => {
            message.histogram = Some(histogram(metric.get_histogram(), extras))
        }
    }
    message
}

fn histogram(histogram: &plain::Histogram, extras: Option<&MetricExtras>) -> pb::Histogram {
    let exemplars = extras.map_or(&[][..], |e| e.buckets.as_slice());
    let native = extras.and_then(|e| e.native.as_ref());
    // One count for both views. The classic buckets and the native ones are
    // different counters, read one after the other while requests go on, so
    // their totals can differ by the requests recorded in between. The
    // native count is the zero bucket plus the buckets, exactly (Prometheus
    // 2.48 and later reject the whole scrape otherwise); the classic
    // cumulative counts are capped at it, which keeps them monotonic, each
    // within the requests in flight of its true value, and never below
    // what an earlier scrape showed.
    let count = native.map_or(histogram.get_sample_count(), |native| native.count);
    let buckets = histogram.get_bucket();
    let mut message = pb::Histogram {
        sample_count: Some(count),
        sample_sum: Some(histogram.get_sample_sum()),
        bucket: buckets
            .iter()
            .enumerate()
            .map(|(index, bucket)| pb::Bucket {
                cumulative_count: Some(bucket.cumulative_count().min(count)),
                upper_bound: Some(bucket.upper_bound()),
                exemplar: exemplars.get(index).and_then(Option::as_ref).map(exemplar),
            })
            .collect(),
        ..pb::Histogram::default()
    };
    if let Some(slowest) = exemplars.get(buckets.len()).and_then(Option::as_ref) {
        // The `+Inf` bucket is implied by the count; its exemplar needs the
        // bucket written out.
        message.bucket.push(pb::Bucket {
            cumulative_count: Some(count),
            upper_bound: Some(f64::INFINITY),
            exemplar: Some(exemplar(slowest)),
        });
    }
    if let Some(native) = native {
        message.schema = Some(native.schema);
        message.zero_threshold = Some(native.zero_threshold);
        message.zero_count = Some(native.zero_count);
        message.positive_span = native
            .spans
            .iter()
            .map(|&(offset, length)| pb::BucketSpan {
                offset: Some(offset),
                length: Some(length),
            })
            .collect();
        message.positive_delta = native.deltas.clone();
        // Native histograms take their exemplars here, not on buckets.
        message.exemplars = exemplars.iter().flatten().map(exemplar).collect();
    }
    message
}

fn label_pair(name: &str, value: &str) -> pb::LabelPair {
    pb::LabelPair {
        name: Some(name.to_owned()),
        value: Some(value.to_owned()),
    }
}

fn exemplar(recorded: &RecordedExemplar) -> pb::Exemplar {
    let seconds = recorded.timestamp.floor();
    pb::Exemplar {
        label: vec![label_pair(TRACE_ID_LABEL, &recorded.trace_id.to_string())],
        value: Some(recorded.value),
        timestamp: Some(pb::Timestamp {
            seconds: seconds as i64,
            nanos: ((recorded.timestamp - seconds) * 1e9) as i32,
        }),
    }
}

/// Decodes an exposition back into its messages.
#[cfg(test)]
#[cfg(not(loom))]
pub(crate) fn decode(mut bytes: &[u8]) -> Vec<pb::MetricFamily> {
    let mut families = Vec::new();
    while !bytes.is_empty() {
        let family: pb::MetricFamily =
            prost::Message::decode_length_delimited(&mut bytes).expect("a valid exposition");
        families.push(family);
    }
    families
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};

    use super::*;
    use crate::extras::NativeHistogram;

    #[test]
    fn families_decode_back_to_what_was_gathered() {
        let registry = Registry::new();
        let counter = IntCounter::new("jobs_total", "Jobs.").unwrap();
        counter.inc_by(7);
        registry.register(Box::new(counter)).unwrap();
        let histogram = Histogram::with_opts(
            HistogramOpts::new("wait_seconds", "Wait.").buckets(vec![0.5, 1.0]),
        )
        .unwrap();
        histogram.observe(0.25);
        histogram.observe(0.75);
        histogram.observe(3.0);
        registry.register(Box::new(histogram)).unwrap();

        let families = decode(&encode(&registry.gather(), &Extras::default()));
        assert_eq!(families.len(), 2);
        let jobs = &families[0];
        assert_eq!(jobs.name.as_deref(), Some("jobs_total"));
        assert_eq!(jobs.r#type, Some(pb::MetricType::Counter as i32));
        assert_eq!(jobs.metric[0].counter.as_ref().unwrap().value, Some(7.0));
        let wait = families[1].metric[0].histogram.as_ref().unwrap();
        assert_eq!(wait.sample_count, Some(3));
        assert_eq!(wait.sample_sum, Some(4.0));
        let buckets: Vec<_> = wait
            .bucket
            .iter()
            .map(|b| (b.upper_bound.unwrap(), b.cumulative_count.unwrap()))
            .collect();
        assert_eq!(buckets, [(0.5, 1), (1.0, 2)]);
        assert_eq!(wait.schema, None, "no native histogram unless kept");
        assert_eq!(families[1].r#type, Some(pb::MetricType::Histogram as i32));
    }

    #[test]
    fn a_timestamp_and_an_exemplars_time_are_kept() {
        let mut family = plain::MetricFamily::default();
        family.set_name("jobs_total".to_owned());
        family.set_field_type(MetricType::COUNTER);
        let mut metric = plain::Metric::default();
        metric.set_timestamp_ms(1_700_000_000_123);
        metric.set_counter(plain::Counter::default());
        family.mut_metric().push(metric);
        let message = &decode(&encode(&[family], &Extras::default()))[0].metric[0];
        assert_eq!(message.timestamp_ms, Some(1_700_000_000_123));

        let recorded = RecordedExemplar {
            trace_id: crate::TraceId::from_bytes([7; 16]).unwrap(),
            value: 0.25,
            timestamp: 1_700_000_000.75,
        };
        let timestamp = exemplar(&recorded).timestamp.unwrap();
        assert_eq!(timestamp.seconds, 1_700_000_000);
        let nanos = timestamp.nanos;
        assert!((749_999_000..=750_001_000).contains(&nanos), "{nanos}");
    }

    fn classic(count: u64) -> plain::Histogram {
        let histogram = Histogram::with_opts(
            HistogramOpts::new("wait_seconds", "Wait.").buckets(vec![0.5, 1.0]),
        )
        .unwrap();
        for _ in 0..count {
            histogram.observe(0.25);
        }
        prometheus::core::Metric::metric(&histogram)
            .get_histogram()
            .clone()
    }

    fn with_native(count: u64) -> MetricExtras {
        MetricExtras {
            native: Some(NativeHistogram {
                schema: 3,
                zero_count: 0,
                count,
                spans: vec![(-8, 1)],
                deltas: vec![count as i64],
                ..NativeHistogram::default()
            }),
            ..MetricExtras::default()
        }
    }

    #[test]
    fn a_histogram_read_while_a_request_is_recorded_keeps_one_count() {
        // Classic buckets read one request ahead of the native ones, and
        // one behind: the count is the native buckets' total either way,
        // and the classic buckets never pass it.
        for (classic_count, native_count) in [(4, 3), (3, 4)] {
            let message = histogram(&classic(classic_count), Some(&with_native(native_count)));
            assert_eq!(message.sample_count, Some(native_count));
            let cumulative: Vec<u64> = message
                .bucket
                .iter()
                .map(|b| b.cumulative_count.unwrap())
                .collect();
            let expected = classic_count.min(native_count);
            assert_eq!(cumulative, [expected, expected]);
        }
    }
}
