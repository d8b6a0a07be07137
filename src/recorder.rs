//! The three metric families: sharded cells written on the hot path and
//! summed into `MetricFamily` values at scrape time.
//!
//! Each thread writes to one shard (picked once per thread), and each shard
//! keeps its own cells, so two cores recording the same route never write
//! the same cache line. A scrape sums the shards: it reports exactly what
//! the cells hold when it runs, with no flush and no lag.
//!
//! Cells are grouped per (route, method, status family): everything one
//! request touches — its status code counter, its histogram bucket and sum,
//! its client's counter — lives in one [`FamilyCells`], created on first use
//! (or at build time for pre-initialised series) and never freed before the
//! layer is.

use std::{
    cell::Cell,
    fmt,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::Instant,
};

use prometheus::{
    core::{Collector, Desc},
    proto::{self, MetricFamily, MetricType},
    Registry,
};

use crate::{
    client_id::{ClientSlot, ClientTable},
    labels::{
        family_label, method_label, status_code_label, Status, CODES_PER_FAMILY, FAMILY_COUNT,
        METHOD_COUNT,
    },
    routes::{RouteId, Routes},
    BuildError,
};

const DURATION_HELP: &str = "Histogram of requests processing time by path (in seconds)";
const TOTAL_HELP: &str =
    "Total count of requests by method, path, status code, and status code family.";
const API_HELP: &str =
    "Total count of API requests by method, path, client ID, and status code family";

/// Label names, fixed by the CTMS format.
pub(crate) const METHOD: &str = "method";
pub(crate) const PATH_TEMPLATE: &str = "path_template";
pub(crate) const STATUS_CODE: &str = "status_code";
pub(crate) const STATUS_CODE_FAMILY: &str = "status_code_family";
pub(crate) const CLIENT_ID: &str = "client_id";

/// Series to create at build time, per (route, method, family) group.
#[derive(Clone, Debug, Default)]
pub(crate) struct Preinit {
    /// Last two digits of the status codes whose counter starts at zero.
    pub(crate) codes: Vec<usize>,
    /// Client slots whose API counter starts at zero.
    pub(crate) clients: Vec<ClientSlot>,
}

/// Everything the recorder needs from the builder.
pub(crate) struct RecorderConfig {
    pub(crate) namespace: String,
    pub(crate) routes: Routes,
    pub(crate) bounds: Vec<f64>,
    pub(crate) clients: ClientTable,
    /// Indexed like the cells: see [`group_index`].
    pub(crate) preinit: Vec<Preinit>,
    pub(crate) shards: usize,
}

/// State shared by every shard, read-only after build except the client
/// table's write-once entries.
#[derive(Debug)]
pub(crate) struct Common {
    pub(crate) routes: Routes,
    pub(crate) clients: ClientTable,
    /// Finite bucket upper bounds in nanoseconds, for the hot path.
    bounds_ns: Box<[u64]>,
    /// The same bounds in seconds, as configured, for the scrape.
    bounds: Box<[f64]>,
}

/// The cells of one (route, method, status family) group in one shard.
///
/// Aligned to two cache lines so that the groups of different shards never
/// share one (adjacent-line prefetching pulls pairs of lines).
#[repr(align(128))]
struct FamilyCells {
    /// One counter per status code of the family.
    codes: [AtomicU64; CODES_PER_FAMILY],
    /// Non-cumulative bucket counts; the last one is `+Inf`. Their sum is the
    /// histogram's count, so `_count` always equals the `+Inf` bucket.
    buckets: Box<[AtomicU64]>,
    /// Sum of the durations in nanoseconds: an integer `fetch_add`, no CAS
    /// loop on a float.
    sum_ns: AtomicU64,
    /// One counter per client slot, allocated on the first API request.
    clients: OnceLock<Box<[AtomicU64]>>,
}

impl FamilyCells {
    fn new(buckets: usize) -> Self {
        Self {
            codes: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: (0..=buckets).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            clients: OnceLock::new(),
        }
    }

    fn clients(&self, slots: usize) -> &[AtomicU64] {
        self.clients
            .get_or_init(|| (0..slots).map(|_| AtomicU64::new(0)).collect())
    }
}

/// One shard's cells.
///
/// Aligned so that the reference counts of different shards, bumped on
/// every request by the futures holding them, never share a cache line.
#[repr(align(128))]
pub(crate) struct Shard {
    pub(crate) common: Arc<Common>,
    groups: Box<[OnceLock<Box<FamilyCells>>]>,
}

impl Shard {
    fn group(&self, index: usize) -> Option<&FamilyCells> {
        let cell = self.groups.get(index)?;
        Some(cell.get_or_init(|| Box::new(FamilyCells::new(self.common.bounds_ns.len()))))
    }

    /// Records one finished request.
    #[inline]
    pub(crate) fn record(
        &self,
        route: RouteId,
        method: usize,
        status: Status,
        client: Option<ClientSlot>,
        elapsed_ns: u64,
    ) {
        let Some(cells) = self.group(group_index(route, method, status.family)) else {
            // Indexes come from the route table and the label tables, so
            // this cannot happen; never fail a request over it.
            debug_assert!(false, "group index out of range");
            return;
        };
        if let Some(code) = cells.codes.get(status.code_in_family) {
            code.fetch_add(1, Ordering::Relaxed);
        }
        let bounds = &self.common.bounds_ns;
        let bucket = bounds
            .iter()
            .position(|&b| elapsed_ns <= b)
            .unwrap_or(bounds.len());
        if let Some(count) = cells.buckets.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        cells.sum_ns.fetch_add(elapsed_ns, Ordering::Relaxed);
        if let Some(slot) = client {
            let slots = self.common.clients.slots();
            if let Some(count) = cells.clients(slots).get(slot) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used = self.groups.iter().filter(|g| g.get().is_some()).count();
        f.debug_struct("Shard")
            .field("groups_in_use", &used)
            .finish()
    }
}

/// Index of a (route, method, family) group in a shard.
pub(crate) fn group_index(route: RouteId, method: usize, family: usize) -> usize {
    (route * METHOD_COUNT + method) * FAMILY_COUNT + family
}

/// Number of groups for `routes` route ids.
pub(crate) fn group_count(routes: usize) -> usize {
    routes * METHOD_COUNT * FAMILY_COUNT
}

/// The three families of one layer.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) common: Arc<Common>,
    shards: Box<[Arc<Shard>]>,
    preinit: Vec<Preinit>,
    namespace: String,
    names: Names,
}

#[derive(Debug)]
struct Names {
    duration: String,
    total: String,
    api: String,
}

impl Recorder {
    pub(crate) fn new(config: RecorderConfig) -> Arc<Self> {
        let RecorderConfig {
            namespace,
            routes,
            bounds,
            clients,
            preinit,
            shards,
        } = config;
        let groups = group_count(routes.len());
        let common = Arc::new(Common {
            routes,
            clients,
            bounds_ns: bounds.iter().map(|&b| seconds_to_ns(b)).collect(),
            bounds: bounds.into(),
        });
        let shards: Box<[Arc<Shard>]> = (0..shards.max(1).next_power_of_two())
            .map(|_| {
                Arc::new(Shard {
                    common: common.clone(),
                    groups: (0..groups).map(|_| OnceLock::new()).collect(),
                })
            })
            .collect();
        Arc::new(Self {
            common,
            shards,
            preinit,
            names: Names {
                duration: format!("{namespace}_requests_duration_seconds"),
                total: format!("{namespace}_requests_total"),
                api: format!("{namespace}_api_requests_total"),
            },
            namespace,
        })
    }

    /// The shard the current thread writes to.
    #[inline]
    pub(crate) fn shard(&self) -> &Arc<Shard> {
        let index = thread_shard_seed() & (self.shards.len() - 1);
        &self.shards[index]
    }

    /// Registers the three families in `registry`, one collector each so
    /// that a clash names the metric; on failure, nothing stays registered.
    pub(crate) fn register(self: &Arc<Self>, registry: &Registry) -> Result<(), BuildError> {
        let kinds = [Kind::Duration, Kind::Total, Kind::Api];
        let mut collectors = Vec::with_capacity(kinds.len());
        for kind in kinds {
            collectors.push(FamilyCollector::new(self.clone(), kind).map_err(|_| {
                BuildError::InvalidNamespace {
                    namespace: self.namespace.clone(),
                }
            })?);
        }
        let mut registered = Vec::new();
        for collector in collectors {
            let kind = collector.kind;
            let desc = collector.desc.clone();
            if let Err(source) = registry.register(Box::new(collector)) {
                for desc in registered {
                    // Unregistering matches collectors by their descriptors.
                    let _ = registry.unregister(Box::new(DescOnly(desc)));
                }
                return Err(BuildError::AlreadyRegistered {
                    metric: self.name(kind).to_owned(),
                    source,
                });
            }
            registered.push(desc);
        }
        Ok(())
    }

    fn name(&self, kind: Kind) -> &str {
        match kind {
            Kind::Duration => &self.names.duration,
            Kind::Total => &self.names.total,
            Kind::Api => &self.names.api,
        }
    }

    /// Creates the cells of every pre-initialised group in one shard, so a
    /// scrape finds them at zero.
    pub(crate) fn create_preinitialised(&self) {
        let shard = &self.shards[0];
        for (index, preinit) in self.preinit.iter().enumerate() {
            if preinit.codes.is_empty() && preinit.clients.is_empty() {
                continue;
            }
            if let Some(cells) = shard.group(index) {
                if !preinit.clients.is_empty() {
                    cells.clients(self.common.clients.slots());
                }
            }
        }
    }

    /// Sums one group across shards; `None` if no shard has its cells.
    fn group_snapshot(&self, index: usize) -> Option<GroupSnapshot> {
        let mut snapshot: Option<GroupSnapshot> = None;
        for shard in self.shards.iter() {
            let Some(cells) = shard.groups.get(index).and_then(OnceLock::get) else {
                continue;
            };
            let snap = snapshot.get_or_insert_with(|| GroupSnapshot {
                codes: [0; CODES_PER_FAMILY],
                buckets: vec![0; cells.buckets.len()],
                sum_ns: 0,
                clients: Vec::new(),
            });
            for (total, cell) in snap.codes.iter_mut().zip(cells.codes.iter()) {
                *total += cell.load(Ordering::Relaxed);
            }
            for (total, cell) in snap.buckets.iter_mut().zip(cells.buckets.iter()) {
                *total += cell.load(Ordering::Relaxed);
            }
            snap.sum_ns += cells.sum_ns.load(Ordering::Relaxed);
            if let Some(clients) = cells.clients.get() {
                if snap.clients.len() < clients.len() {
                    snap.clients.resize(clients.len(), 0);
                }
                for (total, cell) in snap.clients.iter_mut().zip(clients.iter()) {
                    *total += cell.load(Ordering::Relaxed);
                }
            }
        }
        snapshot
    }

    /// Sums the shards into one family, listing every series that has
    /// counts or was pre-initialised.
    fn collect_family(&self, kind: Kind) -> MetricFamily {
        let mut metrics = Vec::new();
        let routes = &self.common.routes;
        for route in 0..routes.len() {
            let template = routes.template(route);
            for method in 0..METHOD_COUNT {
                for family in 0..FAMILY_COUNT {
                    let index = group_index(route, method, family);
                    let Some(snap) = self.group_snapshot(index) else {
                        continue;
                    };
                    let preinit = self.preinit.get(index);
                    let labels = GroupLabels {
                        method: method_label(method),
                        template,
                        family: family_label(family),
                    };
                    match kind {
                        Kind::Total => {
                            for (code, &count) in snap.codes.iter().enumerate() {
                                let listed = preinit.is_some_and(|p| p.codes.contains(&code));
                                if count > 0 || listed {
                                    metrics.push(labels.total(family, code, count));
                                }
                            }
                        }
                        Kind::Duration => {
                            let observed: u64 = snap.buckets.iter().sum();
                            let listed = preinit.is_some_and(|p| !p.codes.is_empty());
                            if observed > 0 || listed {
                                metrics.push(labels.histogram(&snap, &self.common.bounds));
                            }
                        }
                        Kind::Api => {
                            for (slot, &count) in snap.clients.iter().enumerate() {
                                let listed = preinit.is_some_and(|p| p.clients.contains(&slot));
                                if count == 0 && !listed {
                                    continue;
                                }
                                if let Some(client) = self.common.clients.name(slot) {
                                    metrics.push(labels.api(client, count));
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut family = MetricFamily::default();
        family.set_name(self.name(kind).to_owned());
        family.set_help(kind.help().to_owned());
        family.set_field_type(kind.metric_type());
        family.set_metric(metrics);
        family
    }
}

struct GroupSnapshot {
    codes: [u64; CODES_PER_FAMILY],
    buckets: Vec<u64>,
    sum_ns: u64,
    clients: Vec<u64>,
}

struct GroupLabels<'a> {
    method: &'static str,
    template: &'a str,
    family: &'static str,
}

impl GroupLabels<'_> {
    // Label pairs are listed in name order, as the registry expects.
    fn total(&self, family: usize, code: usize, count: u64) -> proto::Metric {
        let mut metric = proto::Metric::from_label(vec![
            label(METHOD, self.method),
            label(PATH_TEMPLATE, self.template),
            label(STATUS_CODE, &status_code_label(family, code)),
            label(STATUS_CODE_FAMILY, self.family),
        ]);
        let mut counter = proto::Counter::default();
        counter.set_value(count as f64);
        metric.set_counter(counter);
        metric
    }

    fn api(&self, client: &str, count: u64) -> proto::Metric {
        let mut metric = proto::Metric::from_label(vec![
            label(CLIENT_ID, client),
            label(METHOD, self.method),
            label(PATH_TEMPLATE, self.template),
            label(STATUS_CODE_FAMILY, self.family),
        ]);
        let mut counter = proto::Counter::default();
        counter.set_value(count as f64);
        metric.set_counter(counter);
        metric
    }

    fn histogram(&self, snap: &GroupSnapshot, bounds: &[f64]) -> proto::Metric {
        let mut metric = proto::Metric::from_label(vec![
            label(METHOD, self.method),
            label(PATH_TEMPLATE, self.template),
            label(STATUS_CODE_FAMILY, self.family),
        ]);
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(bounds.len());
        for (&bound, &count) in bounds.iter().zip(snap.buckets.iter()) {
            cumulative += count;
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(bound);
            bucket.set_cumulative_count(cumulative);
            buckets.push(bucket);
        }
        let mut histogram = proto::Histogram::default();
        // The encoder writes the `+Inf` bucket from the count.
        histogram.set_sample_count(snap.buckets.iter().sum());
        histogram.set_sample_sum(snap.sum_ns as f64 / 1e9);
        histogram.set_bucket(buckets);
        metric.set_histogram(histogram);
        metric
    }
}

fn label(name: &str, value: &str) -> proto::LabelPair {
    let mut pair = proto::LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

/// Rounds a bucket bound to whole nanoseconds, saturating for huge bounds.
fn seconds_to_ns(seconds: f64) -> u64 {
    let ns = (seconds * 1e9).round();
    if ns <= 0.0 {
        0
    } else if ns >= u64::MAX as f64 {
        u64::MAX
    } else {
        ns as u64
    }
}

/// Nanoseconds since `start`, saturating.
#[inline]
pub(crate) fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A number fixed per thread, spreading threads over the shards.
#[inline]
fn thread_shard_seed() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SEED: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SEED.with(|seed| {
        let value = seed.get();
        if value != usize::MAX {
            return value;
        }
        let value = NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
        seed.set(value);
        value
    })
}

/// The three families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Duration,
    Total,
    Api,
}

impl Kind {
    fn help(self) -> &'static str {
        match self {
            Self::Duration => DURATION_HELP,
            Self::Total => TOTAL_HELP,
            Self::Api => API_HELP,
        }
    }

    fn metric_type(self) -> MetricType {
        match self {
            Self::Duration => MetricType::HISTOGRAM,
            Self::Total | Self::Api => MetricType::COUNTER,
        }
    }

    /// Label names, in name order.
    fn labels(self) -> &'static [&'static str] {
        match self {
            Self::Duration => &[METHOD, PATH_TEMPLATE, STATUS_CODE_FAMILY],
            Self::Total => &[METHOD, PATH_TEMPLATE, STATUS_CODE, STATUS_CODE_FAMILY],
            Self::Api => &[CLIENT_ID, METHOD, PATH_TEMPLATE, STATUS_CODE_FAMILY],
        }
    }
}

/// One family, registered as its own collector.
struct FamilyCollector {
    recorder: Arc<Recorder>,
    kind: Kind,
    desc: Desc,
}

impl FamilyCollector {
    fn new(recorder: Arc<Recorder>, kind: Kind) -> prometheus::Result<Self> {
        let desc = Desc::new(
            recorder.name(kind).to_owned(),
            kind.help().to_owned(),
            kind.labels().iter().map(|l| (*l).to_owned()).collect(),
            Default::default(),
        )?;
        Ok(Self {
            recorder,
            kind,
            desc,
        })
    }
}

/// Stands for a registered collector when unregistering it.
#[derive(Debug)]
struct DescOnly(Desc);

impl Collector for DescOnly {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        Vec::new()
    }
}

impl Collector for FamilyCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        vec![self.recorder.collect_family(self.kind)]
    }
}

impl fmt::Debug for FamilyCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FamilyCollector")
            .field("name", &self.recorder.name(self.kind))
            .finish()
    }
}
