//! The builder: setters that never fail, and `build`, which checks them all.

use std::marker::PhantomData;

use http::HeaderMap;
use prometheus::Registry;

use crate::{
    bound::SeriesBound,
    client_ids::Reader,
    options::Options,
    recorder::Recorder,
    request_body::{CountRequestBody, PassRequestBody, RequestBodyMode},
    validate, BuildError, ClientIds, Profile, RecordingPoint, RequestMetricsLayer, Route, TraceId,
};

/// Configures a [`RequestMetricsLayer`].
///
/// Setters never fail; [`build`](Self::build) checks everything at once and
/// says what to fix. Every option has a default, and every switch an off:
/// flags take a `bool`; an option that takes a function or a value besides
/// being on (exemplars, unmatched paths, request bytes) is turned off by
/// `no_…`.
///
/// The setters below are grouped by what they configure: the routes, the
/// names, the client ids, the request's life, the exposition's extras, and
/// tuning. Client ids are one [`ClientIds`] value because their four
/// settings (where ids come from, the ids known in advance and two caps)
/// are checked together and mean nothing apart; the other options are
/// independent of each other, so each is a plain setter rather than a
/// field of a group to build first.
///
/// ```
/// use http::Method;
/// use prometheus::Registry;
/// use tower_prometheus::{BuildError, ClientIds, RequestMetricsLayer, Route};
///
/// let registry = Registry::new();
/// let layer = RequestMetricsLayer::builder()
///     .route(Route::new("/__version__").methods([Method::GET]).statuses([200]))
///     .route(Route::new("/ctms/{email_id}").methods([Method::GET]).statuses([200, 404]).with_client_series())
///     .client_ids(ClientIds::new().known(["test_client"]))
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
#[derive(Debug)]
#[must_use]
pub struct Builder<M = PassRequestBody> {
    options: Options,
    mode: PhantomData<M>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            options: Options::default(),
            mode: PhantomData,
        }
    }
}

impl Builder {
    /// Counts `<namespace>_request_body_bytes_total{method, path_template}`:
    /// the bytes of the request body's data frames as the inner service
    /// reads them, added when the body is dropped.
    ///
    /// Counting them takes wrapping the body, so the inner service then
    /// receives `Request<`[`RequestBody`](crate::RequestBody)`<B>>` rather
    /// than the request as it came: routers (axum, tonic) take any body, a
    /// hand-written service must accept that type. That is why this
    /// changes the builder's type rather than taking a `bool`;
    /// [`no_request_bytes`](Builder::no_request_bytes) turns it off.
    pub fn request_bytes(self) -> Builder<CountRequestBody> {
        Builder {
            options: self.options,
            mode: PhantomData,
        }
    }
}

impl Builder<CountRequestBody> {
    /// Stops counting request body bytes (the default): the inner service
    /// receives each request as it came.
    pub fn no_request_bytes(self) -> Builder {
        Builder {
            options: self.options,
            mode: PhantomData,
        }
    }
}

/// What requests are recorded under.
impl<M: RequestBodyMode> Builder<M> {
    /// Registers a route template, with the series to create for it at
    /// build time.
    ///
    /// Templates are matched in the usual matchit way (static segments win
    /// over parameters, whatever the order of registration); two templates
    /// that could match the same paths ambiguously make the build fail with
    /// [`BuildError::TemplateConflict`].
    pub fn route(mut self, route: Route) -> Self {
        self.options.routes.push(route);
        self
    }

    /// Registers several routes; see [`route`](Self::route).
    pub fn routes(mut self, routes: impl IntoIterator<Item = Route>) -> Self {
        self.options.routes.extend(routes);
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
    pub fn record_unmatched_as(mut self, path_template: impl Into<String>) -> Self {
        self.options.unmatched = Some(path_template.into());
        self
    }

    /// Leaves requests whose path matches no template out of the request
    /// families (the default); `<namespace>_requests_unmatched_total`
    /// still counts them.
    pub fn no_record_unmatched(mut self) -> Self {
        self.options.unmatched = None;
        self
    }

    /// Takes each request's `path_template` from axum's
    /// [`MatchedPath`](axum::extract::MatchedPath) when the request carries
    /// one (default off): the layer added with `Router::layer` or
    /// `Router::route_layer`, where axum has already routed the request,
    /// nested routers included (with their full template, prefix and all).
    /// Nothing needs to be registered twice: a template that is also a
    /// registered [`Route`] is the same series (and keeps its
    /// pre-initialisation); any other is learned on its first request, up
    /// to [`max_matched_templates`](Self::max_matched_templates) (then such
    /// requests are recorded as their path would be, usually as unmatched).
    ///
    /// A request without `MatchedPath` (the layer around the whole
    /// `Router`, the router's fallback, or a request below a
    /// `Router::nest_service` mount) is resolved against the registered
    /// routes, as without this option: declare each nested service with
    /// [`Route::nested_service`], or its requests count as unmatched. With
    /// this option, the layer may have no registered route at all;
    /// [`RequestMetricsLayer::pair`] is the one-line start.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_prometheus::RequestMetricsLayer;
    ///
    /// let registry = prometheus::Registry::new();
    /// let metrics = RequestMetricsLayer::builder()
    ///     .templates_from_matched_path(true)
    ///     .build(&registry)?;
    /// let users = Router::new().route("/users/{id}", get(|| async { "user" }));
    /// // Recorded as `/api/v1/users/{id}`.
    /// let app: Router = Router::new().nest("/api/v1", users).layer(metrics);
    /// # Ok::<(), tower_prometheus::BuildError>(())
    /// ```
    #[cfg(feature = "axum")]
    pub fn templates_from_matched_path(mut self, enabled: bool) -> Self {
        self.options.matched_templates = enabled;
        self
    }

    /// Sets how many templates beyond the registered ones
    /// [`templates_from_matched_path`](Self::templates_from_matched_path)
    /// may learn (default 1,000, at most 10,000). axum's routes are finite,
    /// so this is a safety net that keeps the series bounded should a
    /// router be built from data.
    #[cfg(feature = "axum")]
    pub fn max_matched_templates(mut self, max: usize) -> Self {
        self.options.max_matched_templates = Some(max);
        self
    }
}

/// How the metrics are named.
impl<M: RequestBodyMode> Builder<M> {
    /// Sets the prefix of the metric names (default `ctms`, giving
    /// `ctms_requests_total` and so on).
    ///
    /// It must be a valid metric name without colons: ASCII letters, digits
    /// and underscores, not starting with a digit, at most 128 bytes;
    /// anything else is a [`BuildError::InvalidNamespace`].
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.options.namespace = Some(namespace.into());
        self
    }

    /// Sets the naming profile (default [`Profile::Ctms`]). With
    /// [`Profile::OpenTelemetry`], the metrics follow the OpenTelemetry HTTP
    /// server conventions, the duration histogram is split by status code
    /// with `error_type` on 5xx, its default buckets are
    /// [`OTEL_BUCKETS`](crate::limits::OTEL_BUCKETS), and the namespace is
    /// not used; the crate docs' table lists every name of both.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.options.profile = profile;
        self
    }

    /// Sets the finite histogram bucket upper bounds, in seconds
    /// (default 0.01 0.05 0.1 0.5 1 5 10). `+Inf` is always added, and may
    /// be given as the last bound. Bounds must be positive, finite, strictly
    /// increasing and at least a nanosecond apart, 1 to 64 of them;
    /// anything else is a [`BuildError::InvalidBuckets`].
    ///
    /// Each bucket adds one series per duration histogram series to every
    /// scrape; recording finds the bucket with a linear scan, which stays
    /// cheap for a few dozen bounds.
    pub fn buckets(mut self, bounds: impl IntoIterator<Item = f64>) -> Self {
        self.options.buckets = Some(bounds.into_iter().collect());
        self
    }
}

/// Who made a request.
impl<M: RequestBodyMode> Builder<M> {
    /// Sets where client ids come from, the ids known in advance, and the
    /// caps on them (default [`ClientIds::new`]: from
    /// [`ClientId`](crate::ClientId) response extensions, at most 100 ids
    /// of at most 128 bytes).
    pub fn client_ids(mut self, client_ids: ClientIds) -> Self {
        self.options.client_ids = client_ids;
        self
    }
}

/// The request's life: when it ends, and what is counted meanwhile.
impl<M: RequestBodyMode> Builder<M> {
    /// Sets where a request ends (default: when its response head is ready,
    /// as in CTMS). gRPC calls end at the end of their body whatever this
    /// says, since their status comes in the trailers.
    pub fn recording_point(mut self, point: RecordingPoint) -> Self {
        self.options.recording_point = point;
        self
    }

    /// Keeps `<namespace>_requests_in_flight{method, path_template}`
    /// (default off): raised when a request arrives, lowered when its
    /// response body ends or is dropped, or the request fails, panics or is
    /// abandoned, whatever the recording point. The registered routes'
    /// listed methods start at zero.
    pub fn in_flight(mut self, enabled: bool) -> Self {
        self.options.in_flight = enabled;
        self
    }

    /// Counts `<namespace>_response_body_bytes_total{method, path_template}`
    /// (default off): the bytes of the response body's data frames as they
    /// are sent (not `Content-Length`, not the size hint), added when the
    /// body ends or is dropped.
    ///
    /// A counter rather than a histogram: one series per route and method
    /// gives the throughput (`rate()`) and the mean size (divided by
    /// `requests_total`) for one atomic add per request, where a size
    /// histogram would multiply the series by its buckets.
    pub fn response_bytes(mut self, enabled: bool) -> Self {
        self.options.response_bytes = enabled;
        self
    }
}

/// What the exposition shows besides the counts.
impl<M: RequestBodyMode> Builder<M> {
    /// Keeps exemplars: for each request `read` finds a trace id for, the
    /// latest such request of each duration bucket and of each
    /// `<namespace>_requests_total` series is shown with its trace id
    /// (label `trace_id`), its value and when it was recorded, so that a
    /// slow bucket on a dashboard is one click from a trace that landed in
    /// it.
    ///
    /// Exemplars appear in the OpenMetrics and protobuf formats only (text
    /// 0.0.4 has no place for them); Prometheus stores them with
    /// `--enable-feature=exemplar-storage`. A scrape shows the latest one
    /// recorded; recording one allocates nothing after the series' first.
    /// Off (the default, or [`no_exemplars`](Self::no_exemplars)), a
    /// request pays nothing for the feature. `read` runs on every recorded
    /// request; like the client id reader, a panic in it is recorded as
    /// 500.
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
    /// id's bytes through [`TraceId::from_bytes`].
    pub fn exemplars_from_request<F>(mut self, read: F) -> Self
    where
        F: Fn(&HeaderMap) -> Option<TraceId> + Send + Sync + 'static,
    {
        self.options.exemplars = Some(Reader(Box::new(read)));
        self
    }

    /// Keeps no exemplars (the default).
    pub fn no_exemplars(mut self) -> Self {
        self.options.exemplars = None;
        self
    }

    /// Keeps a native histogram of the request durations next to the
    /// classic buckets (default off), in the same
    /// `<namespace>_requests_duration_seconds` series: exponential buckets
    /// growing by `2^(2^-schema)`, exact like the classic ones; see
    /// [`native_histogram_schema`](Self::native_histogram_schema).
    ///
    /// Native histograms travel in the protobuf format only, which
    /// Prometheus asks for when started with
    /// `--enable-feature=native-histograms` (from 2.40; stable in 3.8); the
    /// classic buckets go in the same message, and in every other format,
    /// so existing dashboards keep working.
    ///
    /// Each series keeps a fixed range of buckets from 2^-20 s (about 1 µs;
    /// faster requests count in the zero bucket) to 2^16 s (about 18 hours;
    /// slower ones count in the top bucket): `36 × 2^schema` counters, 2.3
    /// KB at schema 3, allocated where the series is first recorded.
    /// Without the `protobuf` feature they are kept but never shown.
    pub fn native_histograms(mut self, enabled: bool) -> Self {
        self.options.native_histograms = enabled;
        self
    }

    /// Sets the native histograms' resolution, `0..=5` (default 3: 8
    /// buckets per doubling, a quantile known to within about 4.5 %; each
    /// step up doubles the buckets and halves the error). Anything else is
    /// a [`BuildError::OutOfRange`].
    pub fn native_histogram_schema(mut self, schema: i8) -> Self {
        self.options.native_schema = Some(schema);
        self
    }
}

/// Tuning.
impl<M: RequestBodyMode> Builder<M> {
    /// Sets the number of shards the counts are spread over (1 to 1,024,
    /// rounded up to a power of two; default: twice the available
    /// parallelism, at most 64). Anything else makes [`build`](Self::build)
    /// fail with [`BuildError::OutOfRange`].
    ///
    /// Give at least as many as the threads that record requests (a
    /// runtime's workers and any other thread that serves requests, for
    /// this layer or another): up to that, cores recording at once do not
    /// slow each other down. More threads than shards still count exactly,
    /// only a little slower. More shards cost memory only where requests
    /// reach them, and a slightly slower scrape.
    pub fn shards(mut self, shards: usize) -> Self {
        self.options.shards = Some(shards);
        self
    }

    /// Refuses a configuration that could expose more than `budget` series
    /// (default: no budget): [`build`](Self::build) fails with
    /// [`BuildError::OutOfRange`] naming the bound and the budget when the
    /// worst case, [`RequestMetricsLayer::series_bound`], exceeds it. Set
    /// it from Prometheus's `sample_limit` for the scrape job, less the
    /// series of anything else in the registry, so that a configuration
    /// change that could make scrapes fail is caught before it ships.
    ///
    /// ```
    /// use tower_prometheus::{BuildError, ClientIds, RequestMetricsLayer, Route};
    ///
    /// let error = RequestMetricsLayer::builder()
    ///     .route(Route::new("/ctms/{email_id}"))
    ///     .client_ids(ClientIds::new().max(1_000))
    ///     .max_series(20_000)
    ///     .build(&prometheus::Registry::new())
    ///     .unwrap_err();
    /// assert!(matches!(error, BuildError::OutOfRange { setting: "series bound", .. }));
    /// # Ok::<(), BuildError>(())
    /// ```
    pub fn max_series(mut self, budget: u64) -> Self {
        self.options.max_series = Some(budget);
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
    /// status code, bucket list or client id, a number out of range (a
    /// series bound over [`max_series`](Self::max_series) among them), no
    /// route at all, or a clash with what `registry` already holds. On
    /// error nothing is registered.
    pub fn build(self, registry: &Registry) -> Result<RequestMetricsLayer<M>, BuildError> {
        let mut options = self.options;
        options.request_bytes = M::COUNTS;
        let prepared = validate::check(&options)?;
        let recorder = Recorder::new(options, prepared);
        if let Some(budget) = recorder.options().max_series {
            let bound = SeriesBound::of(&recorder).series();
            if bound > budget {
                return Err(BuildError::out_of_range("series bound", bound, 0, budget));
            }
        }
        recorder.register(registry)?;
        Ok(RequestMetricsLayer::new(recorder))
    }
}
