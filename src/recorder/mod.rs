//! Where the counts live: written per request ([`cells`]), read per scrape
//! ([`collect`]), registered in a [`Registry`] ([`collector`]).
//!
//! Each thread writes to one shard, and each shard keeps its own cells, so
//! two cores recording the same route never write the same cache line. A
//! layer has twice the shards it is configured with (rounded up to a power
//! of two): the first half are owned, each by the one live thread holding
//! the [`lease`] of its index, which adds to them without locked
//! instructions; the second half are shared, with locked adds, by the
//! threads that hold no lease below that count. Which kind a write takes
//! is decided by a [`cells::ShardWriter`], made only from the thread's
//! lease. A scrape sums the shards, with no flush and no lag: each series
//! exact as read, each histogram consistent in itself, two series read at
//! two moments.
//!
//! A request is recorded through a [`Pending`], which [`Recorder::start`]
//! hands out when the request arrives and [`Pending::finish`] consumes.

mod cells;
mod collect;
mod collector;
mod exemplars;
mod lease;
mod native;
mod pending;

use std::{fmt, sync::Arc};

use http::Method;
use prometheus::Registry;

pub(crate) use self::pending::{Pending, RequestBytes, Tally};
use self::{
    cells::{Directory, Place},
    native::NativeLayout,
    pending::RequestClient,
};
use crate::{
    client_id::ClientTable,
    client_ids::KnownClients,
    clock::Clock,
    labels::{CodeSet, MethodLabel, Status, StatusFamily},
    options::Options,
    routes::{RouteId, Routes},
    schema::{Family, Profile},
    sync::AtomicU64,
    BuildError,
};

/// The series of one route that exist at zero from the start.
#[derive(Clone, Debug, Default)]
pub(crate) struct RoutePreinit {
    /// Bit `m` set for the method label of index `m`.
    methods: u16,
    /// The listed codes of each status family.
    families: [CodeSet; StatusFamily::COUNT],
    /// Whether the API counters of the known clients start at zero too.
    client_series: bool,
}

impl RoutePreinit {
    pub(crate) fn new(methods: &[Method], statuses: &[Status], client_series: bool) -> Self {
        let mut preinit = Self {
            client_series,
            ..Self::default()
        };
        for method in methods {
            preinit.methods |= 1 << MethodLabel::of(method).index();
        }
        for status in statuses {
            preinit.families[status.family().index()].insert(status.index_in_family());
        }
        preinit
    }

    /// Whether the route lists no series at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.methods == 0 || self.families.iter().all(CodeSet::is_empty)
    }

    /// Whether the route lists `method`.
    fn lists_method(&self, method: MethodLabel) -> bool {
        self.methods & (1 << method.index()) != 0
    }

    /// The listed codes of (method, family).
    fn codes(&self, method: MethodLabel, family: StatusFamily) -> CodeSet {
        if self.methods & (1 << method.index()) == 0 {
            return CodeSet::default();
        }
        self.families[family.index()]
    }
}

/// What the recorder is built from besides the options themselves: the
/// tables `build` derives from them once they passed its checks.
pub(crate) struct Prepared {
    pub(crate) routes: Routes,
    /// Finite bucket bounds in seconds.
    pub(crate) bounds: Vec<f64>,
    pub(crate) clients: KnownClients,
    /// By route index; `None` for routes that list no series.
    pub(crate) preinit: Vec<Option<Box<RoutePreinit>>>,
    /// By route index: whether the route is a gRPC route, whose gRPC
    /// series start at zero.
    pub(crate) grpc_routes: Vec<bool>,
    pub(crate) shards: usize,
}

/// What the shards read and the scrape walks: the tables decided at build
/// time and the directory of cells.
pub(crate) struct Tables {
    routes: Routes,
    clients: ClientTable,
    /// Finite bucket upper bounds in nanoseconds, for the hot path.
    bounds_ns: Box<[u64]>,
    /// The same bounds in seconds, as configured, for the scrape.
    bounds: Box<[f64]>,
    /// By route index; `None` for routes that list no series.
    preinit: Box<[Option<Box<RoutePreinit>>]>,
    /// The known clients hold slots `0..known_clients`.
    known_clients: usize,
    /// Whether the overflow value was listed as a known client.
    overflow_listed: bool,
    /// By route index: whether the route is a gRPC route, whose gRPC
    /// series start at zero.
    grpc_routes: Box<[bool]>,
    directory: Directory,
    clock: Clock,
    /// The native histogram layout, when they are kept.
    native: Option<NativeLayout>,
    /// Whether exemplars or native histograms are kept, or durations per
    /// status code: one test on the hot path.
    extras: bool,
    /// Whether durations are kept per status code (OpenTelemetry).
    per_code: bool,
    /// The owned shards, `0..owned_shards`; as many shared ones follow.
    /// A power of two.
    owned_shards: usize,
    options: Options,
}

impl Tables {
    /// Where the current thread records.
    #[inline]
    fn place(&self) -> Place {
        match lease::held() {
            Some(lease) if lease.index() < self.owned_shards => Place::Owned(lease),
            _ => self.place_unowned(),
        }
    }

    /// [`place`](Self::place) for a thread that has not asked for a lease
    /// yet, or holds none below the owned shards here: those write a
    /// shared shard, spread by lease, or by thread when the pool had none
    /// left. Out of line, to keep the owners' path short.
    #[inline(never)]
    fn place_unowned(&self) -> Place {
        let spread = match lease::current() {
            Ok(lease) if lease.index() < self.owned_shards => return Place::Owned(lease),
            Ok(lease) => lease.index(),
            Err(spread) => spread,
        };
        Place::Shared(spread & (self.owned_shards - 1))
    }

    /// The index of the shard at `place` among all the shards.
    #[inline]
    fn shard_index(&self, place: Place) -> usize {
        match place {
            Place::Owned(lease) => lease.index(),
            Place::Shared(shared) => self.owned_shards + shared,
        }
    }
}

impl fmt::Debug for Tables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tables")
            .field("routes", &self.routes)
            .field("clients", &self.clients)
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

/// One shard: the reference the futures of its threads' requests hold
/// to the tables, and its own count of unmatched requests.
///
/// Aligned so that the reference counts of different shards, bumped on
/// every request by the futures holding them, never share a cache line.
#[repr(align(128))]
pub(crate) struct Shard {
    tables: Arc<Tables>,
    index: usize,
    unmatched: AtomicU64,
}

impl Shard {
    /// Counts a request that matched no template, from the thread at
    /// `place`: plainly only when the place is this shard's own lease.
    #[inline]
    fn count_unmatched(&self, place: Place) {
        match place {
            Place::Owned(lease) if lease.index() == self.index => {
                lease::add_owned(&self.unmatched, 1, lease);
            }
            _ => lease::add_shared(&self.unmatched, 1),
        }
    }
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// The families of one layer.
pub(crate) struct Recorder {
    tables: Arc<Tables>,
    order: collect::Order,
    shards: Box<[Arc<Shard>]>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("tables", &self.tables)
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl Recorder {
    pub(crate) fn new(options: Options, prepared: Prepared) -> Arc<Self> {
        let Prepared {
            routes,
            bounds,
            clients,
            preinit,
            grpc_routes,
            shards,
        } = prepared;
        let owned_shards = shards.max(1).next_power_of_two();
        let shards = 2 * owned_shards;
        let profile = options.profile;
        let order = collect::Order::new(&routes, profile);
        let native = options.native_schema().map(NativeLayout::new);
        let tables = Arc::new(Tables {
            owned_shards,
            directory: Directory::new(routes.len(), owned_shards, bounds.len()),
            clock: Clock::new(),
            extras: options.exemplars.is_some() || native.is_some() || profile.durations_per_code(),
            native,
            per_code: profile.durations_per_code(),
            routes,
            clients: clients.table,
            bounds_ns: bounds.iter().map(|&b| seconds_to_ns(b)).collect(),
            bounds: bounds.into(),
            preinit: preinit.into(),
            known_clients: clients.count,
            overflow_listed: clients.overflow_listed,
            grpc_routes: grpc_routes.into(),
            options,
        });
        let shards = (0..shards)
            .map(|index| {
                Arc::new(Shard {
                    tables: tables.clone(),
                    index,
                    unmatched: AtomicU64::new(0),
                })
            })
            .collect();
        Arc::new(Self {
            tables,
            order,
            shards,
        })
    }

    /// Route ids there can be: the templates, the unmatched value, and
    /// the templates that may be learned.
    pub(crate) fn route_ids(&self) -> usize {
        self.tables.routes.len()
    }

    /// Finite bucket bounds.
    pub(crate) fn bucket_bounds(&self) -> usize {
        self.tables.bounds.len()
    }

    /// Values `client_id` can take: the cap, and the overflow value.
    pub(crate) fn client_values(&self) -> usize {
        self.tables.clients.slots()
    }

    /// The options the layer was built with.
    #[inline]
    pub(crate) fn options(&self) -> &Options {
        &self.tables.options
    }

    /// The full name of a family.
    pub(crate) fn name(&self, family: Family) -> String {
        self.tables
            .options
            .profile
            .family_name(family, self.tables.options.namespace())
    }

    /// The naming profile.
    pub(crate) fn profile(&self) -> Profile {
        self.tables.options.profile
    }

    /// The families this layer registers: the CTMS ones, the gRPC one, and
    /// the optional ones its configuration asks for.
    ///
    /// The gRPC family is registered whatever the routes, since a gRPC call
    /// can arrive on any of them; until one does (or while no route is a
    /// gRPC route) it has no series, and the registry leaves empty families
    /// out of a scrape.
    pub(crate) fn families(&self) -> Vec<Family> {
        let tables = &self.tables;
        let options = &tables.options;
        let mut families = options.profile.always().to_vec();
        families.push(Family::Grpc);
        if options.in_flight {
            families.push(Family::InFlight);
        }
        if options.response_bytes {
            families.push(Family::ResponseBytes);
        }
        if options.request_bytes {
            families.push(Family::RequestBytes);
        }
        families
    }

    /// Registers the families in `registry`; see [`collector`].
    pub(crate) fn register(self: &Arc<Self>, registry: &Registry) -> Result<(), BuildError> {
        collector::register(self, registry)
    }

    /// The shard the current thread writes to, and where it is.
    #[inline]
    fn shard(&self) -> (&Arc<Shard>, Place) {
        let place = self.tables.place();
        (&self.shards[self.tables.shard_index(place)], place)
    }

    /// Starts recording a request that has just arrived: `None` for a path
    /// that is not recorded (it is counted as unmatched), otherwise the
    /// record to finish when the request ends, and what to count until its
    /// body ends, if the configuration counts anything then.
    #[inline]
    pub(crate) fn start(&self, path: &str, method: &Method) -> Option<(Pending, Option<Tally>)> {
        let (shard, place) = self.shard();
        let tables = &*self.tables;
        let route = match tables.routes.lookup(path) {
            Some(route) => route,
            None => {
                shard.count_unmatched(place);
                tables.routes.unmatched()?
            }
        };
        Some(self.start_route(shard, route, method))
    }

    /// [`start`](Self::start) for a request that names its template
    /// (axum's `MatchedPath`): recorded under it, or, when no more
    /// templates may be learned, as its path would be.
    #[cfg(feature = "axum")]
    #[inline]
    pub(crate) fn start_template(
        &self,
        template: &str,
        path: &str,
        method: &Method,
    ) -> Option<(Pending, Option<Tally>)> {
        match self.tables.routes.resolve_template(template) {
            Some(route) => Some(self.start_route(self.shard().0, route, method)),
            None => self.start(path, method),
        }
    }

    #[inline]
    fn start_route(
        &self,
        shard: &Arc<Shard>,
        route: RouteId,
        method: &Method,
    ) -> (Pending, Option<Tally>) {
        let tables = &*self.tables;
        let method = MethodLabel::of(method);
        let tally = (tables.options.in_flight || tables.options.response_bytes)
            .then(|| Tally::new(shard, route, method));
        let pending = Pending {
            shard: shard.clone(),
            route,
            method,
            client: RequestClient::None,
            grpc: false,
            trace: None,
            start: tables.clock.now(),
        };
        (pending, tally)
    }

    #[cfg(test)]
    #[cfg(not(loom))]
    pub(crate) fn tables(&self) -> &Tables {
        &self.tables
    }
}

#[cfg(test)]
#[cfg(not(loom))]
impl Tables {
    /// Bytes the directory and cells hold.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.directory.allocated_bytes()
    }
}

/// Rounds a bucket bound to whole nanoseconds, saturating for huge bounds.
pub(crate) fn seconds_to_ns(seconds: f64) -> u64 {
    let ns = (seconds * 1e9).round();
    if ns <= 0.0 {
        0
    } else if ns >= u64::MAX as f64 {
        u64::MAX
    } else {
        ns as u64
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use http::{Method, StatusCode};
    use prometheus::proto::MetricFamily;

    use super::*;
    use crate::{extras::Exemplar, ClientIds, TraceId};
    use crate::{RequestMetricsLayer, Route};

    impl Recorder {
        /// Records a request of `elapsed_ns` in shard `shard`, as
        /// `Pending::finish` would, with locked adds whatever the shard:
        /// the tests that call it write from one thread, and no owner
        /// writes their layers at the same time.
        fn record(
            &self,
            shard: usize,
            route: usize,
            method: &Method,
            code: u16,
            client: Option<&str>,
            elapsed_ns: u64,
        ) {
            let tables = &*self.tables;
            let status = Status::of(StatusCode::from_u16(code).unwrap());
            let route = tables.routes.ids().nth(route).unwrap();
            let cells = tables
                .directory
                .cells_of_shard(route, MethodLabel::of(method), status.family(), shard)
                .unwrap();
            let bucket = tables
                .bounds_ns
                .iter()
                .position(|&bound| elapsed_ns <= bound)
                .unwrap_or(tables.bounds_ns.len());
            let client = client.map(|id| (tables.clients.slot(id), tables.clients.slots()));
            cells.add(status, bucket, elapsed_ns, client);
        }
    }

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
                    .with_client_series()
            }))
            .client_ids(ClientIds::new().known(["zoe", "adam", "mia"]))
            .build(&Registry::new())
            .unwrap();
        let recorder = layer.recorder();
        // Counts in other shards too, for a client only a request knows.
        for shard in 0..recorder.shards.len() {
            let client = if shard % 2 == 0 { "bob" } else { "adam" };
            recorder.record(shard, 0, &Method::POST, 418, Some(client), 5);
        }
        for family in [Family::Total, Family::Duration, Family::Clients] {
            let collected = recorder.collect(family);
            let listed = label_values(&collected);
            let mut sorted = listed.clone();
            sorted.sort();
            assert_eq!(listed, sorted, "{family:?} is listed out of order");
            assert!(listed.len() > 10, "{family:?}: {listed:?}");
        }
        let api = label_values(&recorder.collect(Family::Clients));
        let clients: Vec<&str> = api.iter().map(|labels| labels[0].as_str()).collect();
        assert!(
            clients.contains(&"bob") && clients.contains(&"zoe"),
            "{clients:?}"
        );
    }

    #[test]
    fn a_scrape_shows_the_latest_exemplar_across_shards() {
        let layer = RequestMetricsLayer::builder()
            .route(Route::new("/a").methods([Method::GET]).statuses([200]))
            .shards(4)
            .exemplars_from_request(|_| None)
            .build(&Registry::new())
            .unwrap();
        let recorder = layer.recorder();
        let tables = &*recorder.tables;
        let route = tables.routes.ids().next().unwrap();
        let status = Status::of(StatusCode::OK);
        // The latest exemplar sits in a middle shard, so that a scrape that
        // took the first or the last shard's would be wrong.
        for (shard, byte, timestamp) in [(0, 1, 10.0), (2, 2, 20.0), (3, 3, 15.0)] {
            let cells = tables
                .directory
                .cells_of_shard(route, MethodLabel::of(&Method::GET), status.family(), shard)
                .unwrap();
            cells.add(status, 0, 1_000, None);
            let exemplar = Exemplar {
                trace_id: TraceId::from_bytes([byte; 16]).unwrap(),
                value: 1e-6,
                timestamp,
            };
            cells.add_exemplar(status, 0, exemplar);
        }
        let ((total, duration), extras) = crate::extras::capture(|| {
            (
                recorder.collect(Family::Total),
                recorder.collect(Family::Duration),
            )
        });
        let kept = |name: &str, family: &MetricFamily| {
            extras
                .family(name)
                .unwrap()
                .get(&family.get_metric()[0])
                .cloned()
                .unwrap()
        };
        let counter = kept("ctms_requests_total", &total).counter.unwrap();
        let bucket = kept("ctms_requests_duration_seconds", &duration).buckets[0].unwrap();
        for latest in [counter, bucket] {
            assert_eq!(latest.trace_id.to_bytes(), [2; 16]);
            assert_eq!(latest.timestamp, 20.0);
        }
        assert_eq!(counter.value, 1.0);
        assert_eq!(bucket.value, 1e-6);
    }

    #[test]
    fn a_scrape_reads_every_code_in_use_and_only_those() {
        let layer = RequestMetricsLayer::builder()
            .route(Route::new("/a").methods([Method::GET]).statuses([200]))
            .build(&Registry::new())
            .unwrap();
        let recorder = layer.recorder();
        let last = recorder.shards.len() - 1;
        for code in [200_u16, 299, 263, 200] {
            recorder.record(last, 0, &Method::GET, code, None, 1);
        }
        let total = recorder.collect(Family::Total);
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

    #[test]
    fn a_request_slower_than_the_last_bound_counts_in_inf_and_the_count() {
        let layer = RequestMetricsLayer::builder()
            .route(Route::new("/a"))
            .buckets([0.001, 0.01])
            .shards(2)
            .build(&Registry::new())
            .unwrap();
        let recorder = layer.recorder();
        // 2 ms, 20 ms and 3 s: one in the second bucket, two past the last.
        recorder.record(0, 0, &Method::GET, 200, None, 2_000_000);
        recorder.record(1, 0, &Method::GET, 200, None, 20_000_000);
        recorder.record(1, 0, &Method::GET, 200, None, 3_000_000_000);
        let duration = recorder.collect(Family::Duration);
        let histogram = duration.get_metric()[0].get_histogram();
        let cumulative: Vec<u64> = histogram
            .get_bucket()
            .iter()
            .map(|bucket| bucket.cumulative_count())
            .collect();
        assert_eq!(cumulative, [0, 1]);
        assert_eq!(histogram.get_sample_count(), 3, "+Inf is the count");
        assert!((histogram.get_sample_sum() - 3.022).abs() < 1e-9);
    }

    #[test]
    fn an_idle_layer_holds_one_pointer_per_route_whatever_the_shards() {
        let templates: Vec<String> = (0..10_000).map(|i| format!("/r{i}")).collect();
        let layer = RequestMetricsLayer::builder()
            .routes(templates.iter().map(Route::new))
            .shards(64)
            .build(&Registry::new())
            .unwrap();
        let tables = layer.recorder().tables();
        let idle = tables.allocated_bytes();
        assert_eq!(idle, 10_000 * std::mem::size_of::<usize>() * 2);
        // One request: its route's groups, its group's shard pointers, one
        // shard's cells; nothing for the other 9,999 routes.
        layer.recorder().record(5, 1234, &Method::GET, 200, None, 1);
        let one = tables.allocated_bytes() - idle;
        assert!(one < 4 * 1024, "{one} bytes for one request");
        // Another request in the same group and shard costs nothing.
        layer.recorder().record(5, 1234, &Method::GET, 204, None, 1);
        assert_eq!(tables.allocated_bytes() - idle, one);
        // The scrape lists only that route.
        assert_eq!(
            layer.recorder().collect(Family::Total).get_metric().len(),
            2
        );
    }

    #[test]
    fn a_threads_first_request_goes_to_the_shard_it_owns() {
        // As many shards as leases: other tests' threads hold leases too,
        // and the new thread's must be below the shard count.
        let layer = RequestMetricsLayer::builder()
            .route(Route::new("/a"))
            .shards(crate::limits::MAX_SHARDS)
            .build(&Registry::new())
            .unwrap();
        let recorder = layer.recorder().clone();
        // A fresh thread, which has not asked for a lease yet.
        std::thread::spawn(move || {
            for _ in 0..3 {
                let (pending, _) = recorder.start("/a", &Method::GET).unwrap();
                pending.finish(Status::new(200).unwrap(), None);
            }
            assert_eq!(
                recorder.tables().directory.groups_with_shared_shards(),
                0,
                "the first request of a thread that owns a shard went to a shared one"
            );
            assert_eq!(
                recorder.collect(Family::Total).get_metric()[0]
                    .get_counter()
                    .get_value(),
                3.0
            );
        })
        .join()
        .unwrap();
    }
}
