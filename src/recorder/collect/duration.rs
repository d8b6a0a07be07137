//! The duration histograms: per status family (CTMS) or per status code
//! (OpenTelemetry), with their exemplars and native buckets.

use prometheus::proto;

use super::label;
use crate::{
    extras::{Exemplar, FamilyExtras, MetricExtras},
    labels::Status,
    recorder::{
        cells::{Cells, CodeHistogram},
        exemplars, Recorder, Tables,
    },
    schema::{
        family_value, method_value, status_code_value, METHOD, PATH_TEMPLATE, STATUS_CODE_FAMILY,
    },
};

impl Recorder {
    pub(super) fn collect_duration(
        &self,
        mut extras: Option<&mut FamilyExtras>,
    ) -> Vec<proto::Metric> {
        let mut metrics = Vec::new();
        let mut counts: Vec<u64> = Vec::new();
        let mut native: Vec<u64> = Vec::new();
        self.for_each_group(&self.order(), |tables, group| {
            counts.clear();
            counts.resize(tables.bounds.len() + 1, 0);
            let mut sum_ns = 0_u64;
            for cells in group.cells {
                for (total, count) in counts.iter_mut().zip(cells.buckets()) {
                    *total += count;
                }
                sum_ns = sum_ns.wrapping_add(cells.sum_ns());
            }
            let observed: u64 = counts.iter().sum();
            if observed == 0 && group.listed.is_empty() {
                return;
            }
            let labels = vec![
                label(METHOD, method_value(group.method)),
                label(PATH_TEMPLATE, tables.routes.template(group.route)),
                label(STATUS_CODE_FAMILY, family_value(group.family)),
            ];
            // (This is the CTMS profile: the OpenTelemetry one is per code.)
            if let Some(extras) = extras.as_deref_mut() {
                let metric = duration_extras(tables, group.cells, counts.len(), &mut native);
                extras.insert(&labels, metric);
            }
            metrics.push(histogram(labels, &counts, sum_ns, &tables.bounds));
        });
        metrics
    }

    /// The duration histogram per status code (the OpenTelemetry profile),
    /// with `error_type` on 5xx.
    pub(super) fn collect_duration_per_code(
        &self,
        mut extras: Option<&mut FamilyExtras>,
    ) -> Vec<proto::Metric> {
        let profile = self.tables.options.profile;
        let names = profile.names();
        let mut metrics = Vec::new();
        let mut counts: Vec<u64> = Vec::new();
        let mut native: Vec<u64> = Vec::new();
        self.for_each_group(&self.order(), |tables, group| {
            let used = group.used_codes();
            for code in used.iter() {
                let histograms: Vec<&CodeHistogram> = group
                    .cells
                    .iter()
                    .filter_map(|cells| cells.code_histogram(code))
                    .collect();
                counts.clear();
                counts.resize(tables.bounds.len() + 1, 0);
                let mut sum_ns = 0_u64;
                for histogram in &histograms {
                    for (total, count) in counts.iter_mut().zip(histogram.buckets()) {
                        *total += count;
                    }
                    sum_ns = sum_ns.wrapping_add(histogram.sum_ns());
                }
                let status = Status::in_family(group.family, code);
                let code_value = status_code_value(status);
                let mut labels = Vec::with_capacity(4);
                if group.family == Status::INTERNAL_SERVER_ERROR.family() {
                    labels.push(label(names.error_type, &code_value));
                }
                labels.push(label(names.method, profile.method_value(group.method)));
                labels.push(label(names.status_code, &code_value));
                labels.push(label(names.route, tables.routes.template(group.route)));
                if let Some(extras) = extras.as_deref_mut() {
                    let metric = duration_extras(tables, &histograms, counts.len(), &mut native);
                    extras.insert(&labels, metric);
                }
                metrics.push(histogram(labels, &counts, sum_ns, &tables.bounds));
            }
        });
        metrics
    }
}

/// What a duration series is summed from: a group's cells in each shard
/// (CTMS), or one status code's histograms in each shard (OpenTelemetry).
trait DurationPart {
    fn bucket_exemplars(&self) -> impl Iterator<Item = Option<Exemplar>> + '_;
    fn native(&self) -> Option<impl Iterator<Item = u64> + '_>;
}

impl DurationPart for Cells {
    fn bucket_exemplars(&self) -> impl Iterator<Item = Option<Exemplar>> + '_ {
        Self::bucket_exemplars(self)
    }

    fn native(&self) -> Option<impl Iterator<Item = u64> + '_> {
        Self::native(self)
    }
}

impl DurationPart for CodeHistogram {
    fn bucket_exemplars(&self) -> impl Iterator<Item = Option<Exemplar>> + '_ {
        Self::bucket_exemplars(self)
    }

    fn native(&self) -> Option<impl Iterator<Item = u64> + '_> {
        Self::native(self)
    }
}

/// The exemplars (the latest per bucket across the shards) and the native
/// histogram (summed over them) of one duration series; `native` is
/// scratch space, reused across series.
fn duration_extras<P: DurationPart>(
    tables: &Tables,
    parts: &[&P],
    buckets: usize,
    native: &mut Vec<u64>,
) -> MetricExtras {
    let mut metric = MetricExtras::default();
    if tables.options.exemplars.is_some() {
        metric.buckets = vec![None; buckets];
        for part in parts {
            for (kept, exemplar) in metric.buckets.iter_mut().zip(part.bucket_exemplars()) {
                *kept = exemplars::latest(*kept, exemplar);
            }
        }
        if metric.buckets.iter().all(Option::is_none) {
            metric.buckets.clear();
        }
    }
    if let Some(layout) = &tables.native {
        native.clear();
        native.resize(layout.counters(), 0);
        for counters in parts.iter().filter_map(|part| part.native()) {
            for (total, count) in native.iter_mut().zip(counters) {
                *total += count;
            }
        }
        metric.native = Some(layout.histogram(native));
    }
    metric
}

/// `counts` are the non-cumulative bucket counts, `+Inf` last.
fn histogram(
    labels: Vec<proto::LabelPair>,
    counts: &[u64],
    sum_ns: u64,
    bounds: &[f64],
) -> proto::Metric {
    let mut metric = proto::Metric::from_label(labels);
    let mut cumulative = 0;
    let mut buckets = Vec::with_capacity(bounds.len());
    for (&bound, &count) in bounds.iter().zip(counts) {
        cumulative += count;
        let mut bucket = proto::Bucket::default();
        bucket.set_upper_bound(bound);
        bucket.set_cumulative_count(cumulative);
        buckets.push(bucket);
    }
    let mut histogram = proto::Histogram::default();
    // The encoder writes the `+Inf` bucket from the count, which includes
    // the requests slower than the last bound.
    histogram.set_sample_count(counts.iter().sum());
    histogram.set_sample_sum(sum_ns as f64 / 1e9);
    histogram.set_bucket(buckets);
    metric.set_histogram(histogram);
    metric
}
