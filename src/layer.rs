//! The layer and its builder.

use std::{fmt, marker::PhantomData, sync::Arc};

use http::HeaderMap;
use prometheus::Registry;
use tower_layer::Layer;

use crate::{
    client_id::{ClientTable, MAX_CLIENT_IDS_LIMIT, MAX_CLIENT_ID_LEN_LIMIT},
    grpc::is_grpc_route,
    labels::Status,
    recorder::MAX_NATIVE_SCHEMA,
    recorder::{seconds_to_ns, Recorder, RecorderConfig, RoutePreinit},
    request_body::{CountRequestBody, PassRequestBody, RequestBodyMode},
    routes::{Route, Routes, MAX_ROUTES},
    schema::{Profile, OTHER_CLIENT_ID},
    service::{ClientIdFromRequest, ExemplarsFromRequest, LayerState},
    BuildError, RequestMetrics, TraceId,
};

/// The default cap on templates learned from axum's `MatchedPath`; see
/// `Builder::max_matched_templates` (feature `axum`).
pub const DEFAULT_MAX_MATCHED_TEMPLATES: usize = 1_000;

/// The default namespace, the prefix of every metric name.
pub const DEFAULT_NAMESPACE: &str = "ctms";

/// The default histogram bucket upper bounds, in seconds (`+Inf` is always
/// added).
pub const DEFAULT_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// The default maximum number of distinct client ids per layer.
pub const DEFAULT_MAX_CLIENT_IDS: usize = 100;

/// The default maximum length of a client id, in bytes.
pub const DEFAULT_MAX_CLIENT_ID_LEN: usize = 128;

/// The longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 128;

/// The most finite histogram bucket bounds.
pub const MAX_BUCKETS: usize = 64;

/// The most shards a layer can have.
pub const MAX_SHARDS: usize = 1024;

/// Where a request ends, for the duration histogram and the moment it is
/// counted; see [`Builder::recording_point`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordingPoint {
    /// When the response head is ready (the default, as CTMS does): the
    /// duration is the time to the first byte of the answer, and a streamed
    /// body is not waited for.
    #[default]
    ResponseHead,
    /// When the response body ends: its last frame or its trailers, or the
    /// body dropped early (the client went away: 499) or failing (500). The
    /// duration covers the whole stream.
    BodyEnd,
}

/// A [`Layer`] that wraps services in [`RequestMetrics`].
///
/// Build it once with [`RequestMetricsLayer::builder`] and clone it freely:
/// clones share the same metrics. See the [crate docs](crate) for an example.
///
/// `M` says how request bodies reach the inner service: as they came
/// ([`PassRequestBody`], the default), or wrapped to count their bytes
/// ([`CountRequestBody`], from [`Builder::request_bytes`]).
#[derive(Clone, Debug)]
pub struct RequestMetricsLayer<M = PassRequestBody> {
    state: Arc<LayerState>,
    mode: PhantomData<M>,
}

impl RequestMetricsLayer {
    /// A builder with the CTMS defaults: namespace `ctms`, the default
    /// buckets, no routes, unmatched paths not recorded.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl<M> RequestMetricsLayer<M> {
    #[cfg(test)]
    #[cfg(not(loom))]
    pub(crate) fn recorder(&self) -> &Arc<crate::recorder::Recorder> {
        &self.state.recorder
    }
}

impl<S, M> Layer<S> for RequestMetricsLayer<M> {
    type Service = RequestMetrics<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics::new(inner, self.state.clone())
    }
}

/// Configures a [`RequestMetricsLayer`].
///
/// Setters never fail; [`build`](Self::build) checks everything at once and
/// says what to fix.
///
/// ```
/// use http::Method;
/// use prometheus::Registry;
/// use tower_prometheus::{BuildError, RequestMetricsLayer, Route};
///
/// let registry = Registry::new();
/// let layer = RequestMetricsLayer::builder()
///     .route(Route::new("/__version__").methods([Method::GET]).statuses([200]))
///     .route(Route::new("/ctms/{email_id}").methods([Method::GET]).statuses([200, 404]).with_client_series())
///     .clients(["test_client"])
///     .build(&registry)?;
///
/// // Old-style parameters are refused with the spelling to use instead.
/// let error = RequestMetricsLayer::builder()
///     .route(Route::new("/ctms/:email_id"))
///     .build(&Registry::new())
///     .unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "route template \"/ctms/:email_id\" uses the old `:param`/`*rest` syntax; \
///      write \"/ctms/{email_id}\" instead",
/// );
/// # Ok::<(), BuildError>(())
/// ```
pub struct Builder<M = PassRequestBody> {
    mode: PhantomData<M>,
    namespace: String,
    routes: Vec<Route>,
    /// `None` for the profile's default.
    buckets: Option<Vec<f64>>,
    profile: Profile,
    clients: Vec<String>,
    max_client_ids: usize,
    max_client_id_len: usize,
    client_id_from_request: Option<ClientIdFromRequest>,
    unmatched: Option<String>,
    shards: Option<usize>,
    recording_point: RecordingPoint,
    in_flight: bool,
    response_bytes: bool,
    exemplars_from_request: Option<ExemplarsFromRequest>,
    native_schema: Option<i8>,
    /// Whether templates are taken from axum's `MatchedPath`.
    matched_templates: bool,
    max_matched_templates: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            mode: PhantomData,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            routes: Vec::new(),
            buckets: None,
            profile: Profile::Ctms,
            clients: Vec::new(),
            max_client_ids: DEFAULT_MAX_CLIENT_IDS,
            max_client_id_len: DEFAULT_MAX_CLIENT_ID_LEN,
            client_id_from_request: None,
            unmatched: None,
            shards: None,
            recording_point: RecordingPoint::ResponseHead,
            in_flight: false,
            response_bytes: false,
            exemplars_from_request: None,
            native_schema: None,
            matched_templates: false,
            max_matched_templates: DEFAULT_MAX_MATCHED_TEMPLATES,
        }
    }
}

impl Builder {
    /// Counts `<namespace>_request_body_bytes_total{method, path_template}`:
    /// the bytes of the request body's data frames as the inner service
    /// reads them, added when the body is dropped.
    ///
    /// Counting them takes wrapping the body, so the inner service then
    /// receives `Request<`[`RequestBody`](crate::RequestBody)`<B>>` rather than the request as it
    /// came: routers (axum, tonic) take any body, a hand-written service
    /// must accept that type. That is why this is a step of its own, which
    /// changes the layer's type, rather than a flag.
    #[must_use]
    pub fn request_bytes(self) -> Builder<CountRequestBody> {
        Builder {
            mode: PhantomData,
            namespace: self.namespace,
            routes: self.routes,
            buckets: self.buckets,
            profile: self.profile,
            clients: self.clients,
            max_client_ids: self.max_client_ids,
            max_client_id_len: self.max_client_id_len,
            client_id_from_request: self.client_id_from_request,
            unmatched: self.unmatched,
            shards: self.shards,
            recording_point: self.recording_point,
            in_flight: self.in_flight,
            response_bytes: self.response_bytes,
            exemplars_from_request: self.exemplars_from_request,
            native_schema: self.native_schema,
            matched_templates: self.matched_templates,
            max_matched_templates: self.max_matched_templates,
        }
    }
}

impl<M: RequestBodyMode> Builder<M> {
    /// Sets the prefix of the metric names (default `ctms`, giving
    /// `ctms_requests_total` and so on).
    ///
    /// It must be a valid metric name without colons: ASCII letters, digits
    /// and underscores, not starting with a digit, at most
    /// [`MAX_NAMESPACE_LEN`] bytes.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Registers a route template, with the series to create for it at
    /// build time.
    ///
    /// Templates are matched in the usual matchit way (static segments win
    /// over parameters, whatever the order of registration); two templates
    /// that could match the same paths ambiguously make the build fail with
    /// [`BuildError::TemplateConflict`].
    #[must_use]
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Registers several routes; see [`route`](Self::route).
    #[must_use]
    pub fn routes(mut self, routes: impl IntoIterator<Item = Route>) -> Self {
        self.routes.extend(routes);
        self
    }

    /// Sets the finite histogram bucket upper bounds, in seconds
    /// (default 0.01 0.05 0.1 0.5 1 5 10). `+Inf` is always added, and may
    /// be given as the last bound. Bounds must be positive, finite, strictly
    /// increasing and at least a nanosecond apart, 1 to [`MAX_BUCKETS`] of
    /// them; anything else is a [`BuildError::InvalidBuckets`].
    ///
    /// Each bucket costs 8 bytes per series and shard and one line per
    /// series in every scrape; the hot path finds the bucket with a linear
    /// scan, which stays cheap for a few dozen bounds.
    #[must_use]
    pub fn buckets(mut self, bounds: impl IntoIterator<Item = f64>) -> Self {
        self.buckets = Some(bounds.into_iter().collect());
        self
    }

    /// Adds known client ids: they get their slots at build time, and on
    /// every [API route](Route::api) their `api_requests_total` series start
    /// at zero. Listing `__other__` pre-initialises the overflow series
    /// instead; an empty id or one with control characters is a
    /// [`BuildError::InvalidClientId`].
    #[must_use]
    pub fn clients<I>(mut self, ids: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.clients.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Caps the number of distinct client ids (default 100, at most
    /// [`MAX_CLIENT_IDS_LIMIT`](crate::MAX_CLIENT_IDS_LIMIT)), known ones
    /// included. Ids seen after the cap is reached are recorded as
    /// `__other__`. Nothing proportional to the cap is allocated: the
    /// table grows with the ids seen.
    #[must_use]
    pub fn max_client_ids(mut self, max: usize) -> Self {
        self.max_client_ids = max;
        self
    }

    /// Caps the length of a client id in bytes (default 128, at most
    /// [`MAX_CLIENT_ID_LEN_LIMIT`](crate::MAX_CLIENT_ID_LEN_LIMIT)). Longer
    /// ids are recorded as `__other__`, never truncated (a truncated id
    /// could pass for another client).
    #[must_use]
    pub fn max_client_id_len(mut self, max: usize) -> Self {
        self.max_client_id_len = max;
        self
    }

    /// Reads the client id from the request headers, for apps whose front
    /// proxy has already authenticated the caller and says who it is in a
    /// header.
    ///
    /// A [`ClientId`](crate::ClientId) in the response extensions takes
    /// precedence. Only read headers that the proxy sets itself: whatever
    /// this returns becomes a label value (within the caps).
    ///
    /// Look the header up by a [`HeaderName`](http::HeaderName) constant
    /// rather than a `&str`: a `&str` name is parsed again on every request,
    /// which costs a sizeable share of what recording does (BENCHMARKS.md
    /// has the figure).
    ///
    /// ```
    /// use http::HeaderName;
    /// use tower_prometheus::RequestMetricsLayer;
    ///
    /// static CLIENT_ID: HeaderName = HeaderName::from_static("x-client-id");
    ///
    /// let builder = RequestMetricsLayer::builder()
    ///     .client_id_from_request(|headers| headers.get(&CLIENT_ID)?.to_str().ok());
    /// ```
    #[must_use]
    pub fn client_id_from_request<F>(mut self, read: F) -> Self
    where
        F: for<'a> Fn(&'a HeaderMap) -> Option<&'a str> + Send + Sync + 'static,
    {
        self.client_id_from_request = Some(Box::new(read));
        self
    }

    /// Records requests whose path matches no template under this
    /// `path_template` value instead of leaving them out (the default).
    ///
    /// All unmatched paths share this one value, so hostile paths cannot
    /// create series. The value must not be a registered template (the two
    /// would share series): [`BuildError::UnmatchedValueIsATemplate`].
    /// Either way, `<namespace>_requests_unmatched_total` counts these
    /// requests.
    #[must_use]
    pub fn record_unmatched_as(mut self, path_template: impl Into<String>) -> Self {
        self.unmatched = Some(path_template.into());
        self
    }

    /// Sets the number of shards the cells are spread over (1 to
    /// [`MAX_SHARDS`], rounded up to a power of two; default: twice the
    /// available parallelism, at most 64). Anything else makes
    /// [`build`](Self::build) fail with [`BuildError::InvalidShards`].
    ///
    /// Each thread that records writes a shard of its own while there are
    /// enough for every such thread, so cores never write the same cache
    /// line. Count every thread of the process that records requests, for
    /// this layer or any other (a runtime's workers, and any other thread
    /// that records, such as the main thread): which shard a thread writes
    /// is decided once per thread, for all layers. More threads than
    /// shards still count exactly, sharing shards at some cost in speed.
    /// More shards cost memory only where requests reach them, and a
    /// slightly slower scrape.
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Sets where a request ends (default: when its response head is ready,
    /// as in CTMS). gRPC calls end at the end of their body whatever this
    /// says, since their status comes in the trailers.
    #[must_use]
    pub fn recording_point(mut self, point: RecordingPoint) -> Self {
        self.recording_point = point;
        self
    }

    /// Keeps `<namespace>_requests_in_flight{method, path_template}`: raised
    /// when a request arrives, lowered when its response body ends or is
    /// dropped, or the request fails, panics or is abandoned, whatever the
    /// recording point. The registered routes' listed methods start at zero.
    #[must_use]
    pub fn in_flight(mut self, enabled: bool) -> Self {
        self.in_flight = enabled;
        self
    }

    /// Sets the naming profile (default [`Profile::Ctms`]). With
    /// [`Profile::OpenTelemetry`], the metrics follow the OpenTelemetry HTTP
    /// server conventions, the duration histogram is split by status code
    /// with `error_type` on 5xx, its default buckets are
    /// [`OTEL_BUCKETS`](crate::OTEL_BUCKETS), and the namespace is not used;
    /// the crate docs' table lists every name of both.
    #[must_use]
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Keeps exemplars: for each request `read` finds a trace id for, the
    /// latest such request of each duration bucket and of each
    /// `<namespace>_requests_total` series is shown with its trace id
    /// (label `trace_id`), its value and when it was recorded, so that a
    /// slow bucket on a dashboard is one click from a trace that landed in
    /// it.
    ///
    /// Exemplars appear in the OpenMetrics and protobuf formats only (text
    /// 0.0.4 has no place for them); Prometheus stores them with
    /// `--enable-feature=exemplar-storage`. Each shard keeps the latest per
    /// bucket and per status code; a scrape shows the latest across shards.
    /// The trace id is kept inline: recording one allocates nothing after
    /// the series' first exemplar. Off (the default), a request pays
    /// nothing for the feature. `read` runs on every recorded request;
    /// like the client id reader, a panic in it is recorded as 500.
    ///
    /// For the W3C `traceparent` header:
    ///
    /// ```
    /// use tower_prometheus::{RequestMetricsLayer, Route, TraceId};
    ///
    /// let registry = prometheus::Registry::new();
    /// let layer = RequestMetricsLayer::builder()
    ///     .route(Route::new("/items/{id}"))
    ///     .exemplars_from_request(TraceId::from_traceparent)
    ///     .build(&registry)?;
    /// # Ok::<(), tower_prometheus::BuildError>(())
    /// ```
    ///
    /// For the current `tracing` span with OpenTelemetry, return its trace
    /// id's bytes through [`TraceId::from_bytes`](crate::TraceId::from_bytes).
    #[must_use]
    pub fn exemplars_from_request<F>(mut self, read: F) -> Self
    where
        F: Fn(&HeaderMap) -> Option<TraceId> + Send + Sync + 'static,
    {
        self.exemplars_from_request = Some(Box::new(read));
        self
    }

    /// Keeps a native histogram of the request durations next to the
    /// classic CTMS buckets, in the same `<namespace>_requests_duration_seconds`
    /// series: exponential buckets growing by `2^(2^-schema)`, sharded and
    /// exact like the classic ones. Schema 3
    /// ([`DEFAULT_NATIVE_SCHEMA`](crate::DEFAULT_NATIVE_SCHEMA)) is
    /// a good default: 8 buckets per doubling, a quantile known to within
    /// about 4.5 %.
    ///
    /// Native histograms travel in the protobuf format only, which
    /// Prometheus asks for when started with
    /// `--enable-feature=native-histograms` (from 2.40; stable in 3.8); the
    /// classic buckets go in the same message, and in every other format,
    /// so existing dashboards keep working.
    ///
    /// Each series keeps, per shard that records it, a fixed range of
    /// buckets from 2^-20 s (about 1 µs; faster requests count in the zero
    /// bucket) to 2^16 s (about 18 hours; slower ones count in the top
    /// bucket): `36 × 2^schema` counters, 2.3 KB at schema 3, allocated on
    /// the series' first request in that shard. Without the `protobuf`
    /// feature they are kept but never shown.
    ///
    /// The schema must be in `0..=`[`MAX_NATIVE_SCHEMA`]; anything else is a
    /// [`BuildError::InvalidNativeSchema`].
    #[must_use]
    pub fn native_histograms(mut self, schema: i8) -> Self {
        self.native_schema = Some(schema);
        self
    }

    /// Takes each request's `path_template` from axum's
    /// [`MatchedPath`](axum::extract::MatchedPath) when the request carries
    /// one: the layer added with `Router::layer` or `Router::route_layer`,
    /// where axum has already routed the request, nested routers included
    /// (with their full template, prefix and all). Nothing needs to be
    /// registered twice: a template that is also a registered [`Route`] is
    /// the same series (and keeps its pre-initialisation); any other is
    /// learned on its first request, up to
    /// [`max_matched_templates`](Self::max_matched_templates) (then such
    /// requests are recorded as their path would be, usually as unmatched).
    /// A request without `MatchedPath` (the layer around the whole `Router`,
    /// the router's fallback, or a request below a `Router::nest_service`
    /// mount) is resolved against the registered routes, as without this
    /// option: declare each nested service with
    /// [`Route::nested_service`](crate::Route::nested_service), or its
    /// requests count as unmatched. With this option, the layer may have no
    /// registered route at all.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_prometheus::RequestMetricsLayer;
    ///
    /// let registry = prometheus::Registry::new();
    /// let metrics = RequestMetricsLayer::builder()
    ///     .templates_from_matched_path()
    ///     .build(&registry)?;
    /// let users = Router::new().route("/users/{id}", get(|| async { "user" }));
    /// // Recorded as `/api/v1/users/{id}`.
    /// let app: Router = Router::new().nest("/api/v1", users).layer(metrics);
    /// # Ok::<(), tower_prometheus::BuildError>(())
    /// ```
    #[cfg(feature = "axum")]
    #[must_use]
    pub fn templates_from_matched_path(mut self) -> Self {
        self.matched_templates = true;
        self
    }

    /// Sets how many templates beyond the registered ones
    /// [`templates_from_matched_path`](Self::templates_from_matched_path)
    /// may learn (default [`DEFAULT_MAX_MATCHED_TEMPLATES`], at most
    /// [`MAX_CLIENT_IDS_LIMIT`](crate::MAX_CLIENT_IDS_LIMIT)). axum's routes
    /// are finite, so this is a safety net that keeps the series bounded
    /// should a router be built from data.
    #[cfg(feature = "axum")]
    #[must_use]
    pub fn max_matched_templates(mut self, max: usize) -> Self {
        self.max_matched_templates = max;
        self
    }

    /// Counts `<namespace>_response_body_bytes_total{method, path_template}`:
    /// the bytes of the response body's data frames as they are sent (not
    /// `Content-Length`, not the size hint), added when the body ends or is
    /// dropped.
    ///
    /// A counter rather than a histogram: one series per route and method
    /// gives the throughput (`rate()`) and the mean size (divided by
    /// `requests_total`) for one atomic add per request, where a size
    /// histogram would multiply the series by its buckets.
    #[must_use]
    pub fn response_bytes(mut self, enabled: bool) -> Self {
        self.response_bytes = enabled;
        self
    }

    /// Checks the configuration, registers the metric families in
    /// `registry` and returns the layer.
    ///
    /// Pass [`prometheus::default_registry()`] to use the global registry.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the culprit: an invalid namespace, template,
    /// status code, bucket list, cap or shard count, invalid, too many or too
    /// long known client ids, no route at all, or a clash with what
    /// `registry` already holds. On error nothing is registered.
    pub fn build(self, registry: &Registry) -> Result<RequestMetricsLayer<M>, BuildError> {
        check_namespace(&self.namespace)?;
        let bounds = match &self.buckets {
            Some(buckets) => check_buckets(buckets)?,
            None => self.profile.default_buckets().to_vec(),
        };
        let shards = self.shard_count()?;
        let routes = self.route_table()?;
        let known = self.known_clients()?;
        let preinit = self.preinit(&routes)?;
        let grpc_routes = self.grpc_routes(&routes)?;
        if let Some(schema) = self.native_schema {
            if !(0..=MAX_NATIVE_SCHEMA).contains(&schema) {
                return Err(BuildError::InvalidNativeSchema {
                    schema,
                    max: MAX_NATIVE_SCHEMA,
                });
            }
        }
        let recorder = Recorder::new(RecorderConfig {
            namespace: self.namespace,
            routes,
            bounds,
            clients: known.table,
            preinit,
            known_clients: known.count,
            overflow_listed: known.overflow_listed,
            shards,
            grpc_routes,
            in_flight: self.in_flight,
            response_bytes: self.response_bytes,
            request_bytes: M::COUNTS,
            exemplars: self.exemplars_from_request.is_some(),
            native_schema: self.native_schema,
            profile: self.profile,
        });
        recorder.register(registry)?;
        Ok(RequestMetricsLayer {
            mode: PhantomData,
            state: Arc::new(LayerState {
                recorder,
                at_body_end: self.recording_point == RecordingPoint::BodyEnd,
                client_id_from_request: self.client_id_from_request,
                exemplars_from_request: self.exemplars_from_request,
                matched_templates: self.matched_templates,
            }),
        })
    }

    /// The shard count as configured, or the default.
    fn shard_count(&self) -> Result<usize, BuildError> {
        match self.shards {
            None => Ok(default_shards()),
            Some(shards) if (1..=MAX_SHARDS).contains(&shards) => Ok(shards),
            Some(shards) => Err(BuildError::InvalidShards {
                shards,
                max: MAX_SHARDS,
            }),
        }
    }

    fn route_table(&self) -> Result<Routes, BuildError> {
        if self.routes.is_empty() && !self.matched_templates {
            return Err(BuildError::NoRoutes);
        }
        if self.max_matched_templates > MAX_CLIENT_IDS_LIMIT {
            return Err(BuildError::MaxMatchedTemplatesTooLarge {
                max: self.max_matched_templates,
                limit: MAX_CLIENT_IDS_LIMIT,
            });
        }
        if self.routes.len() > MAX_ROUTES {
            return Err(BuildError::TooManyRoutes {
                count: self.routes.len(),
                max: MAX_ROUTES,
            });
        }
        let mut routes = Routes::new(
            self.routes.iter().map(|route| route.template.as_str()),
            self.unmatched.as_deref(),
        )?;
        for (id, route) in routes.ids().zip(&self.routes).collect::<Vec<_>>() {
            for alias in &route.aliases {
                routes.add_alias(alias, id)?;
            }
        }
        #[cfg(feature = "axum")]
        if self.matched_templates {
            routes.take_matched_templates(self.max_matched_templates);
        }
        Ok(routes)
    }

    /// The client table, with the known ids holding the first slots.
    fn known_clients(&self) -> Result<KnownClients, BuildError> {
        if self.max_client_ids > MAX_CLIENT_IDS_LIMIT {
            return Err(BuildError::MaxClientIdsTooLarge {
                max: self.max_client_ids,
                limit: MAX_CLIENT_IDS_LIMIT,
            });
        }
        if self.max_client_id_len > MAX_CLIENT_ID_LEN_LIMIT {
            return Err(BuildError::MaxClientIdLenTooLarge {
                max: self.max_client_id_len,
                limit: MAX_CLIENT_ID_LEN_LIMIT,
            });
        }
        let table = ClientTable::new(self.max_client_ids, self.max_client_id_len);
        let mut ids: Vec<&str> = Vec::new();
        let mut overflow_listed = false;
        for id in &self.clients {
            if id == OTHER_CLIENT_ID {
                // The overflow series itself: pre-initialised, no slot.
                overflow_listed = true;
            } else if id.len() > self.max_client_id_len {
                return Err(BuildError::ClientIdTooLong {
                    client_id: id.clone(),
                    max_len: self.max_client_id_len,
                });
            } else if !table.is_recordable(id) {
                return Err(BuildError::InvalidClientId {
                    client_id: id.clone(),
                });
            } else if !ids.contains(&id.as_str()) {
                ids.push(id);
            }
        }
        if ids.len() > self.max_client_ids {
            return Err(BuildError::TooManyClientIds {
                count: ids.len(),
                max: self.max_client_ids,
            });
        }
        for id in &ids {
            table.slot(id);
        }
        Ok(KnownClients {
            table,
            count: ids.len(),
            overflow_listed,
        })
    }

    /// Which routes are gRPC routes, whose gRPC series start at zero, by
    /// route id: templates of the shape `/package.Service/Method`, or any
    /// `/Service/Method` marked [`grpc`](Route::grpc).
    fn grpc_routes(&self, routes: &Routes) -> Result<Vec<bool>, BuildError> {
        let mut grpc = vec![false; routes.len()];
        for (id, route) in routes.ids().zip(&self.routes) {
            let is_grpc = is_grpc_route(&route.template, route.grpc);
            if route.grpc && !is_grpc {
                return Err(BuildError::NotAGrpcTemplate {
                    template: route.template.clone(),
                });
            }
            grpc[id.index()] = is_grpc;
        }
        Ok(grpc)
    }

    /// The series each route lists, by route id.
    fn preinit(&self, routes: &Routes) -> Result<Vec<Option<Box<RoutePreinit>>>, BuildError> {
        let mut preinit = vec![None; routes.len()];
        for (id, route) in routes.ids().zip(&self.routes) {
            let statuses = route
                .statuses
                .iter()
                .map(|&code| {
                    Status::new(code).ok_or_else(|| BuildError::InvalidStatusCode {
                        template: route.template.clone(),
                        code,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let listed = RoutePreinit::new(&route.methods, &statuses, route.api);
            if !listed.is_empty() {
                preinit[id.index()] = Some(Box::new(listed));
            }
        }
        Ok(preinit)
    }
}

/// The client table as the builder leaves it.
struct KnownClients {
    table: ClientTable,
    /// Known ids hold slots `0..count`.
    count: usize,
    overflow_listed: bool,
}

impl<M: RequestBodyMode> fmt::Debug for Builder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("namespace", &self.namespace)
            .field("routes", &self.routes)
            .field("buckets", &self.buckets)
            .field("profile", &self.profile)
            .field("clients", &self.clients)
            .field("max_client_ids", &self.max_client_ids)
            .field("max_client_id_len", &self.max_client_id_len)
            .field(
                "client_id_from_request",
                &self.client_id_from_request.as_ref().map(|_| ".."),
            )
            .field("unmatched", &self.unmatched)
            .field("shards", &self.shards)
            .field("recording_point", &self.recording_point)
            .field("in_flight", &self.in_flight)
            .field("response_bytes", &self.response_bytes)
            .field("request_bytes", &M::COUNTS)
            .field(
                "exemplars_from_request",
                &self.exemplars_from_request.as_ref().map(|_| ".."),
            )
            .field("native_schema", &self.native_schema)
            .field("matched_templates", &self.matched_templates)
            .field("max_matched_templates", &self.max_matched_templates)
            .finish()
    }
}

/// A metric name prefix: `[a-zA-Z_][a-zA-Z0-9_]*` (colons are reserved for
/// recording rules), at most [`MAX_NAMESPACE_LEN`] bytes.
pub(crate) fn check_namespace(namespace: &str) -> Result<(), BuildError> {
    let mut chars = namespace.chars();
    let valid = namespace.len() <= MAX_NAMESPACE_LEN
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(BuildError::InvalidNamespace {
            namespace: namespace.to_owned(),
        })
    }
}

/// Positive, finite, strictly increasing, at least a nanosecond apart (the
/// hot path compares whole nanoseconds), 1 to [`MAX_BUCKETS`] of them; a
/// trailing `+Inf` is dropped.
fn check_buckets(buckets: &[f64]) -> Result<Vec<f64>, BuildError> {
    let mut bounds = buckets.to_vec();
    if bounds.last() == Some(&f64::INFINITY) {
        bounds.pop();
    }
    let reason = if bounds.is_empty() {
        Some("no finite bound")
    } else if bounds.len() > MAX_BUCKETS {
        Some("too many bounds")
    } else if bounds.iter().any(|b| b.is_nan()) {
        Some("NaN is not a bound")
    } else if bounds.iter().any(|b| b.is_infinite()) {
        Some("only the last bound may be +Inf")
    } else if bounds.iter().any(|&b| b <= 0.0) {
        Some("durations are positive, so bounds must be too")
    } else if bounds.windows(2).any(|pair| pair[0] >= pair[1]) {
        Some("bounds must be strictly increasing")
    } else if bounds
        .windows(2)
        .any(|pair| seconds_to_ns(pair[0]) >= seconds_to_ns(pair[1]))
        || seconds_to_ns(bounds[0]) == 0
    {
        Some("bounds must be at least a nanosecond apart")
    } else {
        None
    };
    match reason {
        None => Ok(bounds),
        Some(reason) => Err(BuildError::InvalidBuckets {
            buckets: buckets.to_vec(),
            reason,
        }),
    }
}

fn default_shards() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).min(64)
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use http::Method;
    use prometheus::{IntCounter, Registry};

    use super::*;
    use crate::test_helpers::{count_series, render, sample};

    fn build(builder: Builder) -> Result<RequestMetricsLayer, BuildError> {
        builder.build(&Registry::new())
    }

    /// A builder with one route, which every valid configuration needs.
    fn one_route() -> Builder {
        RequestMetricsLayer::builder().route(Route::new("/"))
    }

    #[test]
    fn registered_routes_start_at_zero() {
        let registry = Registry::new();
        RequestMetricsLayer::builder()
            .route(
                Route::new("/ctms/{email_id}")
                    .methods([Method::GET, Method::PATCH])
                    .statuses([200, 404])
                    .with_client_series(),
            )
            .route(Route::new("/").methods([Method::GET]).statuses([307]))
            .clients(["c1", "c2", "c1"])
            .build(&registry)
            .unwrap();
        let text = render(&registry);

        assert_eq!(count_series(&text, "ctms_requests_total"), 2 * 2 + 1);
        for method in ["GET", "PATCH"] {
            for code in ["200", "404"] {
                let family = &code[..1];
                let series = format!(
                    r#"ctms_requests_total{{method="{method}",path_template="/ctms/{{email_id}}",status_code="{code}",status_code_family="{family}xx"}}"#
                );
                assert_eq!(sample(&text, &series), Some(0.0), "{series}");
                for client in ["c1", "c2"] {
                    let series = format!(
                        r#"ctms_api_requests_total{{client_id="{client}",method="{method}",path_template="/ctms/{{email_id}}",status_code_family="{family}xx"}}"#
                    );
                    assert_eq!(sample(&text, &series), Some(0.0), "{series}");
                }
            }
        }
        // Two methods × two families × two clients; "/" is not an API route.
        assert_eq!(count_series(&text, "ctms_api_requests_total"), 8);
        // Histograms: one per method × family.
        assert_eq!(
            count_series(&text, "ctms_requests_duration_seconds_count"),
            2 * 2 + 1
        );
        assert_eq!(
            sample(
                &text,
                r#"ctms_requests_duration_seconds_bucket{method="GET",path_template="/",status_code_family="3xx",le="+Inf"}"#
            ),
            Some(0.0)
        );
        assert!(text.contains("# HELP ctms_requests_duration_seconds Histogram of requests processing time by path (in seconds)\n"));
        assert!(text.contains("# HELP ctms_requests_total Total count of requests by method, path, status code, and status code family.\n"));
        assert!(text.contains("# HELP ctms_api_requests_total Total count of API requests by method, path, client ID, and status code family\n"));
        assert!(text.contains("# TYPE ctms_requests_duration_seconds histogram\n"));
    }

    #[test]
    fn the_default_buckets_are_the_ctms_ones() {
        let registry = Registry::new();
        RequestMetricsLayer::builder()
            .route(Route::new("/").methods([Method::GET]).statuses([200]))
            .build(&registry)
            .unwrap();
        let text = render(&registry);
        let les: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ctms_requests_duration_seconds_bucket"))
            .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(les, ["0.01", "0.05", "0.1", "0.5", "1", "5", "10", "+Inf"]);
    }

    #[test]
    fn another_namespace_prefixes_every_name() {
        let registry = Registry::new();
        RequestMetricsLayer::builder()
            .namespace("shop")
            .route(Route::new("/").methods([Method::GET]).statuses([200]))
            .build(&registry)
            .unwrap();
        let text = render(&registry);
        assert_eq!(count_series(&text, "shop_requests_total"), 1);
        assert_eq!(
            count_series(&text, "shop_requests_duration_seconds_count"),
            1
        );
        assert!(!text.contains("ctms_"));
    }

    #[test]
    fn invalid_namespaces_are_refused() {
        for namespace in ["", "1ctms", "my-app", "a:b", "ctms ", "é"] {
            let error = build(one_route().namespace(namespace)).unwrap_err();
            assert!(
                matches!(&error, BuildError::InvalidNamespace { namespace: n } if n == namespace),
                "{namespace:?}: {error:?}"
            );
        }
        for namespace in ["ctms", "_x", "a1_b2"] {
            build(one_route().namespace(namespace)).unwrap();
        }
        let longest = "n".repeat(MAX_NAMESPACE_LEN);
        build(one_route().namespace(longest.as_str())).unwrap();
        for namespace in ["n".repeat(MAX_NAMESPACE_LEN + 1), "n".repeat(1 << 20)] {
            let error = build(one_route().namespace(namespace.as_str())).unwrap_err();
            assert!(matches!(error, BuildError::InvalidNamespace { .. }));
            let message = error.to_string();
            assert!(message.len() < 400, "{} bytes of message", message.len());
            assert!(message.contains("at most 128"), "{message}");
        }
    }

    #[test]
    fn invalid_buckets_are_refused() {
        let many: Vec<f64> = (1..=MAX_BUCKETS + 1).map(|i| i as f64).collect();
        let bad: &[(&[f64], &str)] = &[
            (&[], "no finite bound"),
            (&[f64::INFINITY], "no finite bound"),
            (&[0.1, 0.1], "strictly increasing"),
            (&[1.0, 0.5], "strictly increasing"),
            (&[f64::NAN], "NaN"),
            (&[0.1, f64::NAN, 1.0], "NaN"),
            (&[0.1, f64::NEG_INFINITY], "+Inf"),
            (&[f64::NEG_INFINITY, 0.1], "+Inf"),
            (&[0.1, f64::INFINITY, 1.0], "+Inf"),
            (&[0.1, f64::INFINITY, f64::INFINITY], "+Inf"),
            (&[-1.0, 0.5], "positive"),
            (&[0.0, 0.5], "positive"),
            (&[-0.0, 0.5], "positive"),
            (&[1e-12], "a nanosecond apart"),
            (&[1.0e-9, 1.2e-9], "a nanosecond apart"),
            (&many, "too many"),
        ];
        for &(buckets, reason) in bad {
            let error = build(one_route().buckets(buckets.iter().copied())).unwrap_err();
            assert!(
                matches!(&error, BuildError::InvalidBuckets { reason: r, .. } if r.contains(reason)),
                "{buckets:?}: {error:?}"
            );
        }
        build(one_route().buckets([0.5, 1.0, f64::INFINITY])).unwrap();
        build(one_route().buckets([1e-9, 2e-9, 1e9])).unwrap();
        build(one_route().buckets(many[..MAX_BUCKETS].iter().copied())).unwrap();
    }

    #[test]
    fn status_codes_outside_100_to_999_are_refused() {
        let error = build(
            RequestMetricsLayer::builder()
                .route(Route::new("/").methods([Method::GET]).statuses([200, 1000])),
        )
        .unwrap_err();
        assert!(
            matches!(error, BuildError::InvalidStatusCode { code: 1000, ref template } if template == "/")
        );
    }

    #[test]
    fn known_client_ids_must_fit_the_caps() {
        let error = build(one_route().max_client_id_len(3).clients(["abcd"])).unwrap_err();
        assert!(
            matches!(error, BuildError::ClientIdTooLong { ref client_id, max_len: 3 } if client_id == "abcd")
        );

        let error = build(one_route().max_client_ids(2).clients(["a", "b", "c"])).unwrap_err();
        assert!(matches!(
            error,
            BuildError::TooManyClientIds { count: 3, max: 2 }
        ));

        // Duplicates count once.
        build(one_route().max_client_ids(2).clients(["a", "b", "a"])).unwrap();
        // The overflow value takes no slot.
        build(
            one_route()
                .max_client_ids(2)
                .clients(["a", "__other__", "b"]),
        )
        .unwrap();
    }

    #[test]
    fn template_errors_surface_from_build() {
        let error = build(
            RequestMetricsLayer::builder()
                .route(Route::new("/a/{x}"))
                .route(Route::new("/a/{y}")),
        )
        .unwrap_err();
        assert!(
            matches!(error, BuildError::TemplateConflict { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn a_clash_with_a_registered_metric_names_it_and_registers_nothing() {
        let registry = Registry::new();
        let mine = IntCounter::new("ctms_api_requests_total", "someone else's").unwrap();
        registry.register(Box::new(mine.clone())).unwrap();

        let error = RequestMetricsLayer::builder()
            .route(Route::new("/").methods([Method::GET]).statuses([200]))
            .build(&registry)
            .unwrap_err();
        assert!(
            matches!(&error, BuildError::AlreadyRegistered { metric, .. } if metric == "ctms_api_requests_total"),
            "{error:?}"
        );
        // The two families registered before the clash were rolled back.
        let text = render(&registry);
        assert_eq!(count_series(&text, "ctms_requests_total"), 0);
        assert_eq!(
            count_series(&text, "ctms_requests_duration_seconds_count"),
            0
        );

        // The user's metric is untouched.
        mine.inc();
        assert_eq!(
            sample(&render(&registry), "ctms_api_requests_total"),
            Some(1.0)
        );
    }

    #[test]
    fn building_twice_on_one_registry_is_refused() {
        let registry = Registry::new();
        one_route().build(&registry).unwrap();
        let error = one_route().build(&registry).unwrap_err();
        assert!(
            matches!(&error, BuildError::AlreadyRegistered { metric, .. } if metric == "ctms_requests_duration_seconds"),
            "{error:?}"
        );
    }

    #[test]
    fn a_builder_with_no_route_is_refused() {
        let error = build(RequestMetricsLayer::builder()).unwrap_err();
        assert!(matches!(error, BuildError::NoRoutes), "{error:?}");
        assert!(error.to_string().contains(".route("), "{error}");
        let error = build(RequestMetricsLayer::builder().record_unmatched_as("other")).unwrap_err();
        assert!(matches!(error, BuildError::NoRoutes), "{error:?}");
    }

    #[test]
    fn more_routes_than_the_limit_are_refused() {
        let routes = vec![Route::new("/"); MAX_ROUTES + 1];
        let error = build(RequestMetricsLayer::builder().routes(routes)).unwrap_err();
        assert!(
            matches!(error, BuildError::TooManyRoutes { count, max } if count == MAX_ROUTES + 1 && max == MAX_ROUTES),
            "{error:?}"
        );
        assert!(error.to_string().contains("1048577 routes"), "{error}");
    }

    #[test]
    fn caps_past_their_limits_are_refused_before_any_allocation() {
        // usize::MAX used to panic with "capacity overflow", 1 << 40 to
        // abort allocating terabytes, 100 million to take gigabytes.
        for max in [usize::MAX, 1 << 40, 100_000_000, MAX_CLIENT_IDS_LIMIT + 1] {
            let error = build(one_route().max_client_ids(max)).unwrap_err();
            assert!(
                matches!(error, BuildError::MaxClientIdsTooLarge { max: m, limit: MAX_CLIENT_IDS_LIMIT } if m == max),
                "{max}: {error:?}"
            );
            assert!(error.to_string().contains("10000"), "{error}");
        }
        build(one_route().max_client_ids(MAX_CLIENT_IDS_LIMIT)).unwrap();
        for max in [usize::MAX, MAX_CLIENT_ID_LEN_LIMIT + 1] {
            let error = build(one_route().max_client_id_len(max)).unwrap_err();
            assert!(
                matches!(error, BuildError::MaxClientIdLenTooLarge { max: m, .. } if m == max),
                "{max}: {error:?}"
            );
        }
        build(one_route().max_client_id_len(MAX_CLIENT_ID_LEN_LIMIT)).unwrap();
    }

    #[test]
    fn shard_counts_out_of_range_are_refused() {
        for shards in [0, MAX_SHARDS + 1, usize::MAX] {
            let error = build(one_route().shards(shards)).unwrap_err();
            assert!(
                matches!(error, BuildError::InvalidShards { shards: s, max: MAX_SHARDS } if s == shards),
                "{shards}: {error:?}"
            );
        }
        for shards in [1, 3, MAX_SHARDS] {
            build(one_route().shards(shards)).unwrap();
        }
    }

    #[test]
    fn known_client_ids_that_cannot_be_label_values_are_refused() {
        for id in ["", "a\nb", "nul\0", "cr\r"] {
            let error = build(one_route().clients([id])).unwrap_err();
            assert!(
                matches!(&error, BuildError::InvalidClientId { client_id } if client_id == id),
                "{id:?}: {error:?}"
            );
        }
    }

    #[test]
    fn listing_the_overflow_value_pre_initialises_its_series_once() {
        let registry = Registry::new();
        RequestMetricsLayer::builder()
            .route(
                Route::new("/")
                    .methods([Method::GET])
                    .statuses([200])
                    .with_client_series(),
            )
            .clients(["a", "__other__"])
            .max_client_ids(1)
            .build(&registry)
            .unwrap();
        let text = render(&registry);
        let other = r#"ctms_api_requests_total{client_id="__other__",method="GET",path_template="/",status_code_family="2xx"}"#;
        assert_eq!(sample(&text, other), Some(0.0));
        assert_eq!(count_series(&text, "ctms_api_requests_total"), 2, "{text}");
    }

    #[test]
    fn an_unmatched_value_that_is_also_a_template_is_refused() {
        let error = build(
            RequestMetricsLayer::builder()
                .route(Route::new("/x"))
                .record_unmatched_as("/x"),
        )
        .unwrap_err();
        assert!(
            matches!(&error, BuildError::UnmatchedValueIsATemplate { value } if value == "/x"),
            "{error:?}"
        );
        for value in ["", "a\nb", "\0"] {
            let error = build(one_route().record_unmatched_as(value)).unwrap_err();
            assert!(
                matches!(&error, BuildError::InvalidUnmatchedValue { value: v } if v == value),
                "{value:?}: {error:?}"
            );
        }
    }

    fn registry_with_constant_labels(labels: &[(&str, &str)]) -> Registry {
        let labels = labels
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Registry::new_custom(Some("app".to_owned()), Some(labels)).unwrap()
    }

    #[test]
    fn a_registry_constant_label_named_like_ours_is_refused() {
        for name in [
            "method",
            "path_template",
            "status_code",
            "status_code_family",
            "client_id",
            "le",
        ] {
            let registry = registry_with_constant_labels(&[("env", "prod"), (name, "x")]);
            let error = one_route().build(&registry).unwrap_err();
            assert!(
                matches!(&error, BuildError::ConstantLabelClash { label } if label == name),
                "{name}: {error:?}"
            );
            // Nothing was left behind: not even the probe.
            assert_eq!(render(&registry), "", "{name}");
        }
    }

    #[test]
    fn a_prefix_and_other_constant_labels_are_carried_on_every_series() {
        let registry = registry_with_constant_labels(&[("env", "prod")]);
        RequestMetricsLayer::builder()
            .route(Route::new("/").methods([Method::GET]).statuses([200]))
            .build(&registry)
            .unwrap();
        let text = render(&registry);
        let series = r#"app_ctms_requests_total{method="GET",path_template="/",status_code="200",status_code_family="2xx",env="prod"}"#;
        assert_eq!(sample(&text, series), Some(0.0), "{text}");
        assert_eq!(
            sample(&text, r#"app_ctms_requests_unmatched_total{env="prod"}"#),
            Some(0.0)
        );
        assert!(!text.contains("probe"), "{text}");
    }

    #[test]
    fn a_metric_under_a_name_our_samples_use_is_refused() {
        for (name, ours) in [
            (
                "ctms_requests_duration_seconds_count",
                "ctms_requests_duration_seconds",
            ),
            (
                "ctms_requests_duration_seconds_sum",
                "ctms_requests_duration_seconds",
            ),
            (
                "ctms_requests_duration_seconds_bucket",
                "ctms_requests_duration_seconds",
            ),
            ("ctms_requests", "ctms_requests_total"),
            ("ctms_api_requests", "ctms_api_requests_total"),
            ("ctms_requests_unmatched", "ctms_requests_unmatched_total"),
        ] {
            let registry = Registry::new();
            let theirs = IntCounter::new(name, "someone else's").unwrap();
            registry.register(Box::new(theirs)).unwrap();
            let error = one_route().build(&registry).unwrap_err();
            assert!(
                matches!(&error, BuildError::NameClash { metric, with } if metric == ours && with == name),
                "{name}: {error:?}"
            );
            // Rolled back: only their metric is left, and another namespace builds.
            assert_eq!(render(&registry).matches("# TYPE").count(), 1, "{name}");
            one_route().namespace("other").build(&registry).unwrap();
        }
    }

    #[test]
    fn the_names_our_samples_use_stay_reserved_after_build() {
        let registry = Registry::new();
        one_route().build(&registry).unwrap();
        for name in ["ctms_requests_duration_seconds_count", "ctms_requests"] {
            let theirs = IntCounter::new(name, "someone else's").unwrap();
            assert!(registry.register(Box::new(theirs)).is_err(), "{name}");
        }
    }

    #[test]
    fn only_known_clients_start_at_zero_on_api_routes() {
        use tower::{service_fn, Layer, ServiceExt};
        let registry = Registry::new();
        let layer = RequestMetricsLayer::builder()
            .route(
                Route::new("/")
                    .methods([Method::GET])
                    .statuses([200, 404])
                    .with_client_series(),
            )
            .clients(["known"])
            .build(&registry)
            .unwrap();
        // `?client,status`: answers `status` with `client` as its id.
        let service = layer.layer(service_fn(|request: http::Request<()>| async move {
            let (client, status) = request.uri().query().unwrap().split_once(',').unwrap();
            let mut response = http::Response::new(String::new());
            *response.status_mut() = http::StatusCode::from_u16(status.parse().unwrap()).unwrap();
            response
                .extensions_mut()
                .insert(crate::ClientId::new(client));
            Ok::<_, std::convert::Infallible>(response)
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for query in ["seen,200", "other,404", "known,200"] {
            let request = http::Request::get(format!("/?{query}")).body(()).unwrap();
            runtime.block_on(service.clone().oneshot(request)).unwrap();
        }
        let text = render(&registry);
        let api = |client: &str, family: &str| {
            sample(
                &text,
                &format!(
                    r#"ctms_api_requests_total{{client_id="{client}",method="GET",path_template="/",status_code_family="{family}"}}"#
                ),
            )
        };
        assert_eq!(api("known", "2xx"), Some(1.0));
        assert_eq!(api("known", "4xx"), Some(0.0));
        assert_eq!(api("seen", "2xx"), Some(1.0));
        assert_eq!(api("other", "4xx"), Some(1.0));
        assert_eq!(
            api("seen", "4xx"),
            None,
            "a client seen at runtime is not pre-initialised"
        );
        assert_eq!(api("other", "2xx"), None);
        assert_eq!(count_series(&text, "ctms_api_requests_total"), 4, "{text}");
    }

    #[test]
    fn a_known_client_id_of_exactly_the_length_cap_is_accepted() {
        build(one_route().max_client_id_len(4).clients(["abcd"])).unwrap();
    }

    #[test]
    fn a_route_marked_grpc_must_be_a_method_path() {
        let registry = Registry::new();
        RequestMetricsLayer::builder()
            .route(Route::new("/Greeter/SayHello").grpc())
            .route(Route::new("/demo.v1.Catalog/{method}").grpc())
            .route(Route::new("/other.v1.Service/{method}"))
            .route(Route::new("/not/grpc"))
            .build(&registry)
            .unwrap();
        let text = render(&registry);
        assert_eq!(
            count_series(&text, "ctms_grpc_requests_total"),
            2 * 17,
            "{text}"
        );
        assert!(text.contains(r#"grpc_method="SayHello",grpc_service="Greeter""#));
        assert!(text.contains(r#"grpc_method="{method}",grpc_service="demo.v1.Catalog""#));
        for template in ["/Greeter", "/a/b/c", "/{*rest}", "/a.b/"] {
            let error = build(RequestMetricsLayer::builder().route(Route::new(template).grpc()))
                .unwrap_err();
            assert!(
                matches!(&error, BuildError::NotAGrpcTemplate { template: t } if t == template),
                "{template}: {error:?}"
            );
        }
    }

    #[test]
    fn a_layer_without_grpc_routes_shows_no_grpc_family() {
        let registry = Registry::new();
        one_route().build(&registry).unwrap();
        assert!(!render(&registry).contains("grpc"));
    }

    #[test]
    fn the_unmatched_counter_starts_at_zero() {
        let registry = Registry::new();
        one_route().build(&registry).unwrap();
        let text = render(&registry);
        assert_eq!(sample(&text, "ctms_requests_unmatched_total"), Some(0.0));
        assert!(text.contains("# TYPE ctms_requests_unmatched_total counter\n"));
    }
}
