//! The layer and its builder.

use std::{collections::HashSet, fmt, sync::Arc};

use http::HeaderMap;
use prometheus::Registry;
use tower_layer::Layer;

use crate::{
    client_id::ClientTable,
    labels::{method_index, Status},
    recorder::{group_count, group_index, Preinit, Recorder, RecorderConfig},
    routes::{Route, Routes},
    service::{ClientIdFromRequest, Shared},
    BuildError, RequestMetrics,
};

/// The default namespace, the prefix of every metric name.
pub const DEFAULT_NAMESPACE: &str = "ctms";

/// The default histogram bucket upper bounds, in seconds (`+Inf` is always
/// added).
pub const DEFAULT_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// The default maximum number of distinct client ids per layer.
pub const DEFAULT_MAX_CLIENT_IDS: usize = 100;

/// The default maximum length of a client id, in bytes.
pub const DEFAULT_MAX_CLIENT_ID_LEN: usize = 128;

/// A [`Layer`] that wraps services in [`RequestMetrics`].
///
/// Build it once with [`RequestMetricsLayer::builder`] and clone it freely:
/// clones share the same metrics. See the [crate docs](crate) for an example.
#[derive(Clone)]
pub struct RequestMetricsLayer {
    shared: Arc<Shared>,
}

impl RequestMetricsLayer {
    #[cfg(test)]
    pub(crate) fn recorder(&self) -> &Arc<crate::recorder::Recorder> {
        &self.shared.recorder
    }

    /// A builder with the CTMS defaults: namespace `ctms`, the default
    /// buckets, no routes, unmatched paths not recorded.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics::new(inner, self.shared.clone())
    }
}

impl fmt::Debug for RequestMetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestMetricsLayer")
            .field("shared", &self.shared)
            .finish()
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
///     .route(Route::new("/ctms/{email_id}").methods([Method::GET]).statuses([200, 404]).api())
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
pub struct Builder {
    namespace: String,
    routes: Vec<Route>,
    buckets: Vec<f64>,
    clients: Vec<String>,
    max_client_ids: usize,
    max_client_id_len: usize,
    client_id_from_request: Option<ClientIdFromRequest>,
    unmatched: Option<String>,
    shards: Option<usize>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            routes: Vec::new(),
            buckets: DEFAULT_BUCKETS.to_vec(),
            clients: Vec::new(),
            max_client_ids: DEFAULT_MAX_CLIENT_IDS,
            max_client_id_len: DEFAULT_MAX_CLIENT_ID_LEN,
            client_id_from_request: None,
            unmatched: None,
            shards: None,
        }
    }
}

impl Builder {
    /// Sets the prefix of the metric names (default `ctms`, giving
    /// `ctms_requests_total` and so on).
    ///
    /// It must be a valid metric name without colons: ASCII letters, digits
    /// and underscores, not starting with a digit.
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
    /// be given as the last bound.
    ///
    /// Each bucket costs 8 bytes per series and shard and one line per
    /// series in every scrape; the hot path finds the bucket with a linear
    /// scan, which stays cheap for a few dozen bounds.
    #[must_use]
    pub fn buckets(mut self, bounds: impl IntoIterator<Item = f64>) -> Self {
        self.buckets = bounds.into_iter().collect();
        self
    }

    /// Adds known client ids: they get their slots at build time, and on
    /// every [API route](Route::api) their `api_requests_total` series start
    /// at zero.
    #[must_use]
    pub fn clients<I>(mut self, ids: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.clients.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Caps the number of distinct client ids (default 100), known ones
    /// included. Ids seen after the cap is reached are recorded as
    /// `__other__`.
    #[must_use]
    pub fn max_client_ids(mut self, max: usize) -> Self {
        self.max_client_ids = max;
        self
    }

    /// Caps the length of a client id in bytes (default 128). Longer ids are
    /// recorded as `__other__`, never truncated (a truncated id could pass
    /// for another client).
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
    /// rather than a `&str`: a `&str` name is parsed again on every request
    /// (about 40 ns on a 2-vCPU AMD EPYC, a third of what recording costs).
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
    /// create series.
    #[must_use]
    pub fn record_unmatched_as(mut self, path_template: impl Into<String>) -> Self {
        self.unmatched = Some(path_template.into());
        self
    }

    /// Sets the number of shards the cells are spread over (rounded up to a
    /// power of two; default: twice the available parallelism, at most 64).
    ///
    /// More shards make it less likely that two threads write the same
    /// cells, at the cost of memory and of a slower scrape.
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Checks the configuration, registers the three metric families in
    /// `registry` and returns the layer.
    ///
    /// Pass [`prometheus::default_registry()`] to use the global registry.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the culprit: an invalid namespace, template,
    /// status code or bucket list, too many or too long known client ids,
    /// or a metric already registered in `registry`. On error nothing is
    /// registered.
    pub fn build(self, registry: &Registry) -> Result<RequestMetricsLayer, BuildError> {
        if !valid_namespace(&self.namespace) {
            return Err(BuildError::InvalidNamespace {
                namespace: self.namespace,
            });
        }
        let bounds = check_buckets(&self.buckets)?;
        let routes = Routes::new(
            self.routes.iter().map(|route| route.template.as_str()),
            self.unmatched.as_deref(),
        )?;
        let clients = ClientTable::new(self.max_client_ids, self.max_client_id_len);
        let mut known = Vec::new();
        let mut seen = HashSet::new();
        for id in &self.clients {
            if !seen.insert(id.as_str()) {
                continue;
            }
            if id.len() > self.max_client_id_len {
                return Err(BuildError::ClientIdTooLong {
                    client_id: id.clone(),
                    max_len: self.max_client_id_len,
                });
            }
        }
        if seen.len() > self.max_client_ids {
            return Err(BuildError::TooManyClientIds {
                count: seen.len(),
                max: self.max_client_ids,
            });
        }
        for id in &self.clients {
            let slot = clients.slot(id);
            if !known.contains(&slot) {
                known.push(slot);
            }
        }

        let mut preinit = vec![Preinit::default(); group_count(routes.len())];
        for (route_id, route) in self.routes.iter().enumerate() {
            let mut statuses = Vec::with_capacity(route.statuses.len());
            for &code in &route.statuses {
                let status = Status::new(code).ok_or_else(|| BuildError::InvalidStatusCode {
                    template: route.template.clone(),
                    code,
                })?;
                statuses.push(status);
            }
            for method in &route.methods {
                let method = method_index(method);
                for status in &statuses {
                    let Some(group) = preinit.get_mut(group_index(route_id, method, status.family))
                    else {
                        continue;
                    };
                    if !group.codes.contains(&status.code_in_family) {
                        group.codes.push(status.code_in_family);
                    }
                    if route.api {
                        for slot in &known {
                            if !group.clients.contains(slot) {
                                group.clients.push(*slot);
                            }
                        }
                    }
                }
            }
        }

        let shards = self.shards.unwrap_or_else(default_shards).clamp(1, 1024);
        let recorder = Recorder::new(RecorderConfig {
            namespace: self.namespace,
            routes,
            bounds,
            clients,
            preinit,
            shards,
        });
        recorder.create_preinitialised();
        recorder.register(registry)?;
        crate::clock::warm_up();
        Ok(RequestMetricsLayer {
            shared: Arc::new(Shared {
                recorder,
                client_id_from_request: self.client_id_from_request,
            }),
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("namespace", &self.namespace)
            .field("routes", &self.routes)
            .field("buckets", &self.buckets)
            .field("clients", &self.clients)
            .field("max_client_ids", &self.max_client_ids)
            .field("max_client_id_len", &self.max_client_id_len)
            .field(
                "client_id_from_request",
                &self.client_id_from_request.as_ref().map(|_| ".."),
            )
            .field("unmatched", &self.unmatched)
            .field("shards", &self.shards)
            .finish()
    }
}

/// A metric name prefix: `[a-zA-Z_][a-zA-Z0-9_]*` (colons are reserved for
/// recording rules).
fn valid_namespace(namespace: &str) -> bool {
    let mut chars = namespace.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Finite, strictly increasing, at least one; a trailing `+Inf` is dropped.
fn check_buckets(buckets: &[f64]) -> Result<Vec<f64>, BuildError> {
    let mut bounds = buckets.to_vec();
    if bounds.last() == Some(&f64::INFINITY) {
        bounds.pop();
    }
    let ok = !bounds.is_empty()
        && bounds.iter().all(|b| b.is_finite())
        && bounds.windows(2).all(|pair| pair[0] < pair[1]);
    if ok {
        Ok(bounds)
    } else {
        Err(BuildError::InvalidBuckets {
            buckets: buckets.to_vec(),
        })
    }
}

fn default_shards() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).min(64)
}

#[cfg(test)]
mod tests {
    use http::Method;
    use prometheus::{IntCounter, Registry};

    use super::*;
    use crate::test_helpers::{count_series, render, sample};

    fn build(builder: Builder) -> Result<RequestMetricsLayer, BuildError> {
        builder.build(&Registry::new())
    }

    #[test]
    fn registered_routes_start_at_zero() {
        let registry = Registry::new();
        RequestMetricsLayer::builder()
            .route(
                Route::new("/ctms/{email_id}")
                    .methods([Method::GET, Method::PATCH])
                    .statuses([200, 404])
                    .api(),
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
            let error = build(RequestMetricsLayer::builder().namespace(namespace)).unwrap_err();
            assert!(
                matches!(&error, BuildError::InvalidNamespace { namespace: n } if n == namespace),
                "{namespace:?}: {error:?}"
            );
        }
        for namespace in ["ctms", "_x", "a1_b2"] {
            build(RequestMetricsLayer::builder().namespace(namespace)).unwrap();
        }
    }

    #[test]
    fn invalid_buckets_are_refused() {
        let bad: &[&[f64]] = &[
            &[],
            &[f64::INFINITY],
            &[0.1, 0.1],
            &[1.0, 0.5],
            &[f64::NAN],
            &[0.1, f64::NEG_INFINITY],
        ];
        for buckets in bad {
            let error =
                build(RequestMetricsLayer::builder().buckets(buckets.iter().copied())).unwrap_err();
            assert!(
                matches!(error, BuildError::InvalidBuckets { .. }),
                "{buckets:?}"
            );
        }
        build(RequestMetricsLayer::builder().buckets([0.5, 1.0, f64::INFINITY])).unwrap();
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
        let error = build(
            RequestMetricsLayer::builder()
                .max_client_id_len(3)
                .clients(["abcd"]),
        )
        .unwrap_err();
        assert!(
            matches!(error, BuildError::ClientIdTooLong { ref client_id, max_len: 3 } if client_id == "abcd")
        );

        let error = build(
            RequestMetricsLayer::builder()
                .max_client_ids(2)
                .clients(["a", "b", "c"]),
        )
        .unwrap_err();
        assert!(matches!(
            error,
            BuildError::TooManyClientIds { count: 3, max: 2 }
        ));

        // Duplicates count once.
        build(
            RequestMetricsLayer::builder()
                .max_client_ids(2)
                .clients(["a", "b", "a"]),
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
        RequestMetricsLayer::builder().build(&registry).unwrap();
        let error = RequestMetricsLayer::builder().build(&registry).unwrap_err();
        assert!(
            matches!(&error, BuildError::AlreadyRegistered { metric, .. } if metric == "ctms_requests_duration_seconds"),
            "{error:?}"
        );
    }
}
