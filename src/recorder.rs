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
};

use prometheus::{
    core::{Collector, Desc},
    proto::{self, MetricFamily, MetricType},
    Registry,
};

use crate::{
    client_id::{ClientSlot, ClientTable},
    labels::{
        family_label, method_label, methods_in_label_order, status_code_label, Status,
        CODES_PER_FAMILY, FAMILY_COUNT, METHOD_COUNT,
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
    /// Route ids by template and method indexes by label: the order the
    /// registry sorts series in, so that its sort finds them sorted.
    routes_in_label_order: Box<[RouteId]>,
    methods_in_label_order: [usize; METHOD_COUNT],
}

/// The cells of one (route, method, status family) group in one shard.
///
/// Aligned to two cache lines so that the groups of different shards never
/// share one (adjacent-line prefetching pulls pairs of lines).
#[repr(align(128))]
struct FamilyCells {
    /// Bit `n` is set once status code `n` of the family has been counted
    /// (or pre-initialised), so a scrape reads only the codes in use rather
    /// than all hundred.
    used_codes: [AtomicU64; USED_WORDS],
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
            used_codes: std::array::from_fn(|_| AtomicU64::new(0)),
            codes: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: (0..=buckets).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            clients: OnceLock::new(),
        }
    }

    /// Marks status code `code` of the family as in use.
    #[inline]
    fn mark_used(&self, code: usize) {
        let (word, bit) = (code / 64, 1 << (code % 64));
        if let Some(word) = self.used_codes.get(word) {
            // A plain load first: after a code's first request the bit is
            // set, and the read-modify-write is skipped.
            if word.load(Ordering::Relaxed) & bit == 0 {
                word.fetch_or(bit, Ordering::Relaxed);
            }
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
            cells.mark_used(status.code_in_family);
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
        let mut routes_in_label_order: Box<[RouteId]> = (0..routes.len()).collect();
        routes_in_label_order.sort_by(|&a, &b| routes.template(a).cmp(routes.template(b)));
        let common = Arc::new(Common {
            routes,
            clients,
            bounds_ns: bounds.iter().map(|&b| seconds_to_ns(b)).collect(),
            bounds: bounds.into(),
            routes_in_label_order,
            methods_in_label_order: methods_in_label_order(),
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
                for &code in &preinit.codes {
                    cells.mark_used(code);
                }
                if !preinit.clients.is_empty() {
                    cells.clients(self.common.clients.slots());
                }
            }
        }
    }

    /// Sums the shards into one family, listing every series that has
    /// counts or was pre-initialised, in the order the registry sorts them
    /// (by label values), so that its sort has nothing to do.
    fn collect_family(&self, kind: Kind) -> MetricFamily {
        let common = &self.common;
        let mut metrics = Vec::new();
        // Scratch space reused across groups: no allocation per group.
        let mut cells: Vec<&FamilyCells> = Vec::with_capacity(self.shards.len());
        let mut sums: Vec<u64> = Vec::new();
        let mut api: Vec<ApiSeries> = Vec::new();
        for (method_rank, &method) in common.methods_in_label_order.iter().enumerate() {
            for (route_rank, &route) in common.routes_in_label_order.iter().enumerate() {
                for family in 0..FAMILY_COUNT {
                    let index = group_index(route, method, family);
                    cells.clear();
                    cells.extend(
                        self.shards
                            .iter()
                            .filter_map(|shard| shard.groups.get(index)?.get())
                            .map(|cells| &**cells),
                    );
                    if cells.is_empty() {
                        continue;
                    }
                    let labels = GroupLabels {
                        method: method_label(method),
                        template: common.routes.template(route),
                        family: family_label(family),
                    };
                    let preinit = self.preinit.get(index);
                    match kind {
                        Kind::Total => {
                            for code in used_codes(&cells) {
                                let count = cells
                                    .iter()
                                    .map(|c| c.codes[code].load(Ordering::Relaxed))
                                    .sum();
                                metrics.push(labels.total(family, code, count));
                            }
                        }
                        Kind::Duration => {
                            sums.clear();
                            sums.resize(common.bounds.len() + 1, 0);
                            let mut sum_ns = 0_u64;
                            for cell in &cells {
                                for (total, bucket) in sums.iter_mut().zip(cell.buckets.iter()) {
                                    *total += bucket.load(Ordering::Relaxed);
                                }
                                sum_ns = sum_ns.wrapping_add(cell.sum_ns.load(Ordering::Relaxed));
                            }
                            let observed: u64 = sums.iter().sum();
                            let listed = preinit.is_some_and(|p| !p.codes.is_empty());
                            if observed > 0 || listed {
                                metrics.push(labels.histogram(&sums, sum_ns, &common.bounds));
                            }
                        }
                        Kind::Api => {
                            sums.clear();
                            for cell in &cells {
                                let Some(clients) = cell.clients.get() else {
                                    continue;
                                };
                                if sums.len() < clients.len() {
                                    sums.resize(clients.len(), 0);
                                }
                                for (total, count) in sums.iter_mut().zip(clients.iter()) {
                                    *total += count.load(Ordering::Relaxed);
                                }
                            }
                            for (slot, &count) in sums.iter().enumerate() {
                                let listed = preinit.is_some_and(|p| p.clients.contains(&slot));
                                if count > 0 || listed {
                                    api.push(ApiSeries {
                                        slot,
                                        method_rank,
                                        route_rank,
                                        family,
                                        count,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        if kind == Kind::Api {
            metrics = self.api_metrics(api);
        }
        let mut family = MetricFamily::default();
        family.set_name(self.name(kind).to_owned());
        family.set_help(kind.help().to_owned());
        family.set_field_type(kind.metric_type());
        family.set_metric(metrics);
        family
    }

    /// The API counters, sorted by client id first as the registry sorts
    /// them; the sort is on small integers, not on label strings.
    fn api_metrics(&self, mut api: Vec<ApiSeries>) -> Vec<proto::Metric> {
        let clients = &self.common.clients;
        let mut slots: Vec<(ClientSlot, &str)> = (0..clients.slots())
            .filter_map(|slot| Some((slot, clients.name(slot)?)))
            .collect();
        slots.sort_unstable_by_key(|&(_, name)| name);
        let mut client_rank = vec![usize::MAX; clients.slots()];
        for (rank, &(slot, _)) in slots.iter().enumerate() {
            client_rank[slot] = rank;
        }
        api.retain(|series| {
            client_rank
                .get(series.slot)
                .is_some_and(|&r| r != usize::MAX)
        });
        api.sort_unstable_by_key(|s| (client_rank[s.slot], s.method_rank, s.route_rank, s.family));
        let common = &self.common;
        api.into_iter()
            .filter_map(|series| {
                let client = clients.name(series.slot)?;
                let method = common.methods_in_label_order[series.method_rank];
                let route = common.routes_in_label_order[series.route_rank];
                let labels = GroupLabels {
                    method: method_label(method),
                    template: common.routes.template(route),
                    family: family_label(series.family),
                };
                Some(labels.api(client, series.count))
            })
            .collect()
    }
}

/// Words of the used-codes bit set.
const USED_WORDS: usize = CODES_PER_FAMILY.div_ceil(64);

/// The status codes (within the family) any of `cells` has in use, in
/// ascending order.
fn used_codes(cells: &[&FamilyCells]) -> impl Iterator<Item = usize> {
    let mut used = [0_u64; USED_WORDS];
    for cell in cells {
        for (word, cell_word) in used.iter_mut().zip(cell.used_codes.iter()) {
            *word |= cell_word.load(Ordering::Relaxed);
        }
    }
    (0..CODES_PER_FAMILY).filter(move |&code| used[code / 64] & (1 << (code % 64)) != 0)
}

/// One API counter series found by a scrape, before sorting.
struct ApiSeries {
    slot: ClientSlot,
    method_rank: usize,
    route_rank: usize,
    family: usize,
    count: u64,
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

    /// `buckets` are the non-cumulative counts, `+Inf` last.
    fn histogram(&self, counts: &[u64], sum_ns: u64, bounds: &[f64]) -> proto::Metric {
        let mut metric = proto::Metric::from_label(vec![
            label(METHOD, self.method),
            label(PATH_TEMPLATE, self.template),
            label(STATUS_CODE_FAMILY, self.family),
        ]);
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(bounds.len());
        for (&bound, &count) in bounds.iter().zip(counts.iter()) {
            cumulative += count;
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(bound);
            bucket.set_cumulative_count(cumulative);
            buckets.push(bucket);
        }
        let mut histogram = proto::Histogram::default();
        // The encoder writes the `+Inf` bucket from the count.
        histogram.set_sample_count(counts.iter().sum());
        histogram.set_sample_sum(sum_ns as f64 / 1e9);
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

#[cfg(test)]
mod tests {
    use http::{Method, StatusCode};

    use super::*;
    use crate::{labels::method_index, RequestMetricsLayer, Route};

    fn label_values(family: &MetricFamily) -> Vec<Vec<String>> {
        family
            .get_metric()
            .iter()
            .map(|metric| {
                metric
                    .get_label()
                    .iter()
                    .map(|pair| pair.value().to_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_scrape_lists_series_in_the_order_the_registry_sorts_them() {
        // Templates, methods and clients registered out of label order.
        let layer = RequestMetricsLayer::builder()
            .routes(["/zebra", "/alpha/{id}", "/middle"].map(|template| {
                Route::new(template)
                    .methods([Method::PUT, Method::GET, Method::DELETE])
                    .statuses([404, 200, 503, 201])
                    .api()
            }))
            .clients(["zoe", "adam", "mia"])
            .build(&Registry::new())
            .unwrap();
        let recorder = layer.recorder();
        // Counts in other shards too, for a client only a request knows.
        for (index, shard) in recorder.shards.iter().enumerate() {
            let client = recorder
                .common
                .clients
                .slot(if index % 2 == 0 { "bob" } else { "adam" });
            let status = Status::of(StatusCode::from_u16(418).unwrap());
            shard.record(0, method_index(&Method::POST), status, Some(client), 5);
        }
        for kind in [Kind::Total, Kind::Duration, Kind::Api] {
            let family = recorder.collect_family(kind);
            let listed = label_values(&family);
            let mut sorted = listed.clone();
            sorted.sort();
            assert_eq!(listed, sorted, "{kind:?} is listed out of order");
            assert!(listed.len() > 10, "{kind:?}: {listed:?}");
        }
        let api = label_values(&recorder.collect_family(Kind::Api));
        let clients: Vec<&str> = api.iter().map(|labels| labels[0].as_str()).collect();
        assert!(
            clients.contains(&"bob") && clients.contains(&"zoe"),
            "{clients:?}"
        );
    }

    #[test]
    fn a_scrape_reads_every_code_in_use_and_only_those() {
        let layer = RequestMetricsLayer::builder()
            .route(Route::new("/a").methods([Method::GET]).statuses([200]))
            .build(&Registry::new())
            .unwrap();
        let recorder = layer.recorder();
        let get = method_index(&Method::GET);
        for code in [200_u16, 299, 263, 200] {
            let status = Status::of(StatusCode::from_u16(code).unwrap());
            recorder.shards[recorder.shards.len() - 1].record(0, get, status, None, 1);
        }
        let total = recorder.collect_family(Kind::Total);
        let codes: Vec<(String, f64)> = total
            .get_metric()
            .iter()
            .map(|metric| {
                (
                    metric.get_label()[2].value().to_owned(),
                    metric.get_counter().get_value(),
                )
            })
            .collect();
        let expected = [("200", 2.0), ("263", 1.0), ("299", 1.0)]
            .map(|(code, count)| (code.to_owned(), count));
        assert_eq!(codes, expected);
    }
}
