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
    /// ```
    /// use tower_prometheus::RequestMetricsLayer;
    ///
    /// let builder = RequestMetricsLayer::builder()
    ///     .client_id_from_request(|headers| headers.get("x-client-id")?.to_str().ok());
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
