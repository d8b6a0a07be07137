//! The most series a layer can expose, from its configuration alone.

use std::fmt;

use crate::{
    grpc::GrpcCode,
    labels::{MethodLabel, StatusFamily, CODES_PER_FAMILY},
    recorder::Recorder,
    schema::Family,
};

/// The worst case of what a layer exposes: the most series (sample lines of
/// a text or OpenMetrics scrape, each a series Prometheus stores) each of
/// its families can reach, whatever the traffic; see
/// [`RequestMetricsLayer::series_bound`](crate::RequestMetricsLayer::series_bound).
///
/// It is reached only by a service that answers every status code from
/// 100 to 999 to every method on every route, and by as many client ids as
/// the cap allows: in practice a service answers a handful of codes, and
/// exposes a small fraction of it. It is the figure to set Prometheus's
/// `sample_limit` (which fails a whole scrape past it) or a store's series
/// limit against, since nothing a client sends can exceed it.
///
/// With [native histograms](crate::Builder::native_histograms) scraped
/// over protobuf, Prometheus stores each duration histogram as one native
/// series instead of its classic lines, or as both when
/// `scrape_classic_histograms` is on: at most one more series per
/// histogram than this bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesBound {
    families: Vec<(String, u64)>,
}

impl SeriesBound {
    /// The bound of the layer `recorder` records for.
    pub(crate) fn of(recorder: &Recorder) -> Self {
        let shape = Shape {
            routes: recorder.route_ids() as u64,
            buckets: recorder.bucket_bounds() as u64,
            clients: recorder.client_values() as u64,
            per_code: recorder.profile().durations_per_code(),
        };
        let families = recorder
            .families()
            .into_iter()
            .map(|family| (recorder.name(family), shape.series(family)))
            .collect();
        Self { families }
    }

    /// The most series the layer can expose, all families together.
    pub fn series(&self) -> u64 {
        self.families
            .iter()
            .fold(0, |sum, &(_, series)| sum.saturating_add(series))
    }

    /// The most series of each family, by full metric name (in the order
    /// the layer registers them).
    pub fn families(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.families
            .iter()
            .map(|(name, series)| (name.as_str(), *series))
    }
}

impl fmt::Display for SeriesBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {} series (", self.series())?;
        for (index, (name, series)) in self.families().enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(f, "{separator}{name}: {series}")?;
        }
        f.write_str(")")
    }
}

/// What the bound is computed from: the configuration's dimensions.
#[derive(Clone, Copy, Debug)]
struct Shape {
    /// Route ids: the templates, the unmatched value when unmatched paths
    /// are recorded, and the templates that may be learned from axum.
    routes: u64,
    /// Finite bucket bounds.
    buckets: u64,
    /// Client id values: the cap, and the overflow value.
    clients: u64,
    /// Whether durations are kept per status code rather than per family.
    per_code: bool,
}

impl Shape {
    /// The most series of `family`.
    fn series(self, family: Family) -> u64 {
        const METHODS: u64 = MethodLabel::COUNT as u64;
        const FAMILIES: u64 = StatusFamily::COUNT as u64;
        const CODES: u64 = FAMILIES * CODES_PER_FAMILY as u64;
        let routes_methods = self.routes.saturating_mul(METHODS);
        // Each histogram is its finite buckets, `+Inf`, `_sum` and `_count`.
        let histogram = self.buckets.saturating_add(3);
        let product = |factors: &[u64]| {
            factors.iter().fold(routes_methods, |product, &factor| {
                product.saturating_mul(factor)
            })
        };
        match family {
            Family::Duration if self.per_code => product(&[CODES, histogram]),
            Family::Duration => product(&[FAMILIES, histogram]),
            Family::Total => product(&[CODES]),
            Family::Clients => product(&[FAMILIES, self.clients]),
            Family::Unmatched => 1,
            // One (service, method) pair per template.
            Family::Grpc => self.routes.saturating_mul(GrpcCode::COUNT as u64),
            Family::InFlight | Family::ResponseBytes | Family::RequestBytes => routes_methods,
        }
    }
}
