//! The builder: setters that never fail, and `build`, which checks them all.

use std::marker::PhantomData;

use http::HeaderMap;
use prometheus::Registry;

use crate::{
    client_ids::Reader,
    options::Options,
    recorder::Recorder,
    request_body::{CountRequestBody, PassRequestBody, RequestBodyMode},
    validate, BuildError, ClientIds, Profile, RecordingPoint, RequestMetricsLayer, Route, TraceId,
};

impl RequestMetricsLayer {
    /// A builder with the CTMS defaults: namespace `ctms`, the default
    /// buckets, no routes, unmatched paths not recorded.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The one-line start for an axum app: a layer that takes every
    /// template from axum's `MatchedPath`, with every other option at its
    /// default, registered in a registry of its own, and the exporter that
    /// serves that registry.
    ///
    /// Add the layer with `Router::layer` (so that axum has routed each
    /// request before the layer sees it) and mount the exporter where
    /// Prometheus scrapes:
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_prometheus::RequestMetricsLayer;
    ///
    /// let (metrics, exporter) = RequestMetricsLayer::pair();
    /// let app: Router = Router::new()
    ///     .route("/users/{id}", get(|| async { "user" }))
    ///     .layer(metrics)
    ///     .route_service("/metrics", exporter);
    /// ```
    ///
    /// For routes, client ids or anything else, use the
    /// [`builder`](Self::builder) with
    /// [`templates_from_matched_path(true)`](Builder::templates_from_matched_path).
    #[cfg(feature = "axum")]
    pub fn pair() -> (Self, crate::MetricsExporter) {
        let registry = prometheus::Registry::new();
        // The defaults on an empty registry: nothing can clash or be out
        // of range, so this build cannot fail.
        let layer = Self::builder()
            .templates_from_matched_path(true)
            .build(&registry)
            .expect("a bug in tower-prometheus: the defaults failed to build");
        (layer, crate::MetricsExporter::new(registry))
    }
}

/// Configures a [`RequestMetricsLayer`].
///
/// Setters never fail; [`build`](Self::build) checks everything at once and
/// says what to fix. Every option has a default, and every switch an off:
/// flags take a `bool`; a function (a reader of exemplars) is turned off by
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

    /// Checks the configuration, registers the metric families in
    /// `registry` and returns the layer.
    ///
    /// Pass [`prometheus::default_registry()`] to use the global registry.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the culprit: an invalid namespace, template,
    /// status code, bucket list or client id, a number out of range, no
    /// route at all, or a clash with what `registry` already holds. On
    /// error nothing is registered.
    pub fn build(self, registry: &Registry) -> Result<RequestMetricsLayer<M>, BuildError> {
        let mut options = self.options;
        options.request_bytes = M::COUNTS;
        let prepared = validate::check(&options)?;
        let recorder = Recorder::new(options, prepared);
        recorder.register(registry)?;
        Ok(RequestMetricsLayer::new(recorder))
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use http::Method;
    use prometheus::{IntCounter, Registry};

    use super::*;
    use crate::{
        limits::{
            MAX_BUCKETS, MAX_CLIENT_IDS, MAX_CLIENT_ID_LEN, MAX_NAMESPACE_LEN, MAX_ROUTES,
            MAX_SHARDS,
        },
        test_helpers::{count_series, render, sample},
        TemplateError,
    };

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
            .client_ids(ClientIds::new().known(["c1", "c2", "c1"]))
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
        let error =
            build(one_route().client_ids(ClientIds::new().max_len(3).known(["abcd"]))).unwrap_err();
        assert!(
            matches!(error, BuildError::ClientIdTooLong { ref client_id, max_len: 3 } if client_id == "abcd")
        );

        let error = build(one_route().client_ids(ClientIds::new().max(2).known(["a", "b", "c"])))
            .unwrap_err();
        assert!(matches!(
            error,
            BuildError::OutOfRange {
                setting: "known client ids",
                value: 3,
                min: 0,
                max: 2
            }
        ));

        // Duplicates count once.
        build(one_route().client_ids(ClientIds::new().max(2).known(["a", "b", "a"]))).unwrap();
        // The overflow value takes no slot.
        build(one_route().client_ids(ClientIds::new().max(2).known(["a", "__other__", "b"])))
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
            matches!(error, BuildError::OutOfRange { setting: "routes", value, max, .. } if value == MAX_ROUTES as i64 + 1 && max == MAX_ROUTES as i64),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("routes is 1048577, out of range: give 1 to 1048576"),
            "{error}"
        );
    }

    #[test]
    fn caps_past_their_limits_are_refused_before_any_allocation() {
        // usize::MAX used to panic with "capacity overflow", 1 << 40 to
        // abort allocating terabytes, 100 million to take gigabytes.
        for max in [usize::MAX, 1 << 40, 100_000_000, MAX_CLIENT_IDS + 1] {
            let error = build(one_route().client_ids(ClientIds::new().max(max))).unwrap_err();
            assert!(
                matches!(error, BuildError::OutOfRange { setting: "client ids' max", value, max: limit, .. } if value == i64::try_from(max).unwrap_or(i64::MAX) && limit == MAX_CLIENT_IDS as i64),
                "{max}: {error:?}"
            );
            assert!(error.to_string().contains("10000"), "{error}");
        }
        build(one_route().client_ids(ClientIds::new().max(MAX_CLIENT_IDS))).unwrap();
        for max in [usize::MAX, MAX_CLIENT_ID_LEN + 1] {
            let error = build(one_route().client_ids(ClientIds::new().max_len(max))).unwrap_err();
            assert!(
                matches!(error, BuildError::OutOfRange { setting: "client ids' max_len", value, .. } if value == i64::try_from(max).unwrap_or(i64::MAX)),
                "{max}: {error:?}"
            );
        }
        build(one_route().client_ids(ClientIds::new().max_len(MAX_CLIENT_ID_LEN))).unwrap();
    }

    #[test]
    fn shard_counts_out_of_range_are_refused() {
        for shards in [0, MAX_SHARDS + 1, usize::MAX] {
            let error = build(one_route().shards(shards)).unwrap_err();
            assert!(
                matches!(error, BuildError::OutOfRange { setting: "shards", value, min: 1, max } if value == i64::try_from(shards).unwrap_or(i64::MAX) && max == MAX_SHARDS as i64),
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
            let error = build(one_route().client_ids(ClientIds::new().known([id]))).unwrap_err();
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
            .client_ids(ClientIds::new().known(["a", "__other__"]).max(1))
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
            .client_ids(ClientIds::new().known(["known"]))
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
        build(one_route().client_ids(ClientIds::new().max_len(4).known(["abcd"]))).unwrap();
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
                matches!(&error, BuildError::InvalidTemplate { template: t, reason: TemplateError::NotGrpc } if t == template),
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
