//! What the layer's series carry beyond the prometheus crate's data model:
//! exemplars and native histograms.
//!
//! The prometheus crate's `MetricFamily` has no field for either, yet a
//! scrape must show them next to the values the registry gathers, taken at
//! the same moment. So the exporter gathers inside [`capture`]: while it
//! runs, the layer's collectors, called by `gather()` on the same thread,
//! [`deposit`] the extras of the series they collect, keyed by the series'
//! own label values. The exporter then finds each series' extras by those
//! labels, whatever prefix or constant labels the registry added. Outside a
//! capture (a plain `gather()`, the text format) collectors do not build
//! extras at all.

use std::{cell::RefCell, collections::HashMap};

use prometheus::proto;

use crate::TraceId;

/// An exemplar as a scrape shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) trace_id: TraceId,
    /// The observed value: the duration in seconds, or 1 on a counter.
    pub(crate) value: f64,
    /// When it was recorded, in seconds since the Unix epoch.
    pub(crate) timestamp: f64,
}

/// The label an exemplar's trace id goes under.
pub(crate) const TRACE_ID_LABEL: &str = "trace_id";

/// A native histogram's buckets, as the protobuf format sends them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct NativeHistogram {
    pub(crate) schema: i32,
    pub(crate) zero_threshold: f64,
    pub(crate) zero_count: u64,
    /// Observations in the buckets and the zero bucket.
    pub(crate) count: u64,
    /// `(offset, length)` runs of populated buckets.
    pub(crate) spans: Vec<(i32, u32)>,
    /// Each bucket's count minus the previous one's.
    pub(crate) deltas: Vec<i64>,
}

/// The extras of one series.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct MetricExtras {
    /// Per classic bucket, `+Inf` last.
    pub(crate) buckets: Vec<Option<Exemplar>>,
    /// On a counter.
    pub(crate) counter: Option<Exemplar>,
    pub(crate) native: Option<NativeHistogram>,
}

/// The extras of one family's series, by their label values.
#[derive(Debug)]
pub(crate) struct FamilyExtras {
    /// The name as collected, before any registry prefix.
    name: String,
    /// The family's own label names, in the order of the keys.
    label_names: &'static [&'static str],
    metrics: HashMap<Vec<String>, MetricExtras>,
}

impl FamilyExtras {
    pub(crate) fn new(name: String, label_names: &'static [&'static str]) -> Self {
        Self {
            name,
            label_names,
            metrics: HashMap::new(),
        }
    }

    /// Keeps `extras` for the series with `labels`, unless there are none.
    pub(crate) fn insert(&mut self, labels: &[proto::LabelPair], extras: MetricExtras) {
        if extras != MetricExtras::default() {
            let key = labels.iter().map(|l| l.value().to_owned()).collect();
            self.metrics.insert(key, extras);
        }
    }

    /// The extras of a gathered series.
    pub(crate) fn get(&self, metric: &proto::Metric) -> Option<&MetricExtras> {
        if self.metrics.is_empty() {
            return None;
        }
        // A label a series leaves out (OpenTelemetry's `error_type` below
        // 500) is left out of its key too.
        let key: Vec<String> = self
            .label_names
            .iter()
            .filter_map(|name| {
                metric
                    .get_label()
                    .iter()
                    .find(|label| label.name() == *name)
                    .map(|label| label.value().to_owned())
            })
            .collect();
        self.metrics.get(&key)
    }
}

/// Everything deposited during one capture.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    families: Vec<FamilyExtras>,
}

impl Extras {
    /// The extras of a gathered family: the one collected under the same
    /// name, or under the name the registry's prefix was put before.
    pub(crate) fn family(&self, gathered: &str) -> Option<&FamilyExtras> {
        self.families
            .iter()
            .find(|family| family.name == gathered)
            .or_else(|| {
                self.families.iter().find(|family| {
                    gathered
                        .strip_suffix(family.name.as_str())
                        .is_some_and(|prefix| prefix.ends_with('_'))
                })
            })
    }
}

thread_local! {
    static CAPTURE: RefCell<Option<Extras>> = const { RefCell::new(None) };
}

/// Runs `gather` with deposits captured, and returns what it gathered with
/// what was deposited.
pub(crate) fn capture<R>(gather: impl FnOnce() -> R) -> (R, Extras) {
    struct Reset(Option<Extras>);
    impl Drop for Reset {
        fn drop(&mut self) {
            // Restores an enclosing capture, should captures ever nest, and
            // ends this one even if `gather` panics.
            let outer = self.0.take();
            CAPTURE.with(|capture| *capture.borrow_mut() = outer);
        }
    }
    let outer = CAPTURE.with(|capture| capture.borrow_mut().replace(Extras::default()));
    let reset = Reset(outer);
    let gathered = gather();
    let extras = CAPTURE
        .with(|capture| capture.borrow_mut().take())
        .unwrap_or_default();
    drop(reset);
    (gathered, extras)
}

/// Whether a capture is running on this thread: collectors build extras
/// only then.
pub(crate) fn capturing() -> bool {
    CAPTURE.with(|capture| capture.borrow().is_some())
}

/// Hands a family's extras to the running capture, if any.
pub(crate) fn deposit(family: FamilyExtras) {
    CAPTURE.with(|capture| {
        if let Some(extras) = capture.borrow_mut().as_mut() {
            extras.families.push(family);
        }
    });
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    fn label(name: &str, value: &str) -> proto::LabelPair {
        let mut label = proto::LabelPair::default();
        label.set_name(name.to_owned());
        label.set_value(value.to_owned());
        label
    }

    fn with_counter_exemplar() -> MetricExtras {
        MetricExtras {
            counter: Some(Exemplar {
                trace_id: TraceId::from_bytes([1; 16]).unwrap(),
                value: 1.0,
                timestamp: 1.5,
            }),
            ..MetricExtras::default()
        }
    }

    #[test]
    fn deposits_are_kept_only_during_a_capture() {
        deposit(FamilyExtras::new("lost".into(), &["a"]));
        assert!(!capturing());
        let ((), extras) = capture(|| {
            assert!(capturing());
            deposit(FamilyExtras::new("kept".into(), &["a"]));
        });
        assert!(!capturing());
        assert!(extras.family("kept").is_some());
        assert!(extras.family("lost").is_none());
    }

    #[test]
    fn a_series_is_found_by_its_own_labels_whatever_the_registry_added() {
        let mut family = FamilyExtras::new("ctms_requests_total".into(), &["method", "path"]);
        family.insert(
            &[label("method", "GET"), label("path", "/a")],
            with_counter_exemplar(),
        );
        let mut extras = Extras::default();
        extras.families.push(family);
        // The registry's prefix before the name, a constant label among ours.
        let family = extras.family("myapp_ctms_requests_total").unwrap();
        let mut metric = proto::Metric::default();
        metric.set_label(vec![
            label("method", "GET"),
            label("env", "prod"),
            label("path", "/a"),
        ]);
        assert_eq!(family.get(&metric), Some(&with_counter_exemplar()));
        metric.set_label(vec![label("method", "POST"), label("path", "/a")]);
        assert_eq!(family.get(&metric), None);
        // A name that merely ends the same way is another family.
        assert!(extras.family("xctms_requests_total").is_none());
    }

    #[test]
    fn empty_extras_are_not_kept() {
        let mut family = FamilyExtras::new("f".into(), &["a"]);
        family.insert(&[label("a", "1")], MetricExtras::default());
        assert!(family.metrics.is_empty());
    }

    #[test]
    fn a_panicking_gather_ends_the_capture() {
        let result = std::panic::catch_unwind(|| capture(|| panic!("collector panicked")));
        assert!(result.is_err());
        assert!(!capturing());
    }
}
