//! A route template, with the series to create for it at build time.

use http::Method;

/// A route template the layer records requests under, with the series to
/// create for it before the first request.
///
/// The template uses [`matchit`]'s syntax (`{param}`, `{*rest}`, `{{` and
/// `}}` for literal braces); see the [crate docs](crate#route-templates).
///
/// The methods and status codes listed here only decide which series exist
/// at zero from the start: a request with any other method or status on this
/// route is still recorded, its series created on first use. A gRPC call is
/// recorded with its gRPC status whatever the template; see
/// [`grpc`](Self::grpc).
///
/// ```
/// use http::Method;
/// use tower_prometheus::Route;
///
/// let route = Route::new("/ctms/{email_id}")
///     .methods([Method::GET, Method::PATCH, Method::PUT])
///     .statuses([200, 401, 404, 422])
///     .with_client_series();
/// ```
#[derive(Clone, Debug)]
pub struct Route {
    pub(crate) template: String,
    pub(crate) methods: Vec<Method>,
    pub(crate) statuses: Vec<u16>,
    pub(crate) client_series: bool,
    pub(crate) grpc: bool,
    /// Paths recorded under this route besides those its template matches:
    /// the mount point of a [`nested_service`](Self::nested_service).
    pub(crate) aliases: Vec<String>,
}

impl Route {
    /// A route for `template`, with no series pre-initialised yet.
    pub fn new(template: impl Into<String>) -> Self {
        Self {
            template: template.into(),
            methods: Vec::new(),
            statuses: Vec::new(),
            client_series: false,
            grpc: false,
            aliases: Vec::new(),
        }
    }

    /// A route for a service mounted with axum's
    /// `Router::nest_service(prefix, service)` (a `ServeDir`, another
    /// app): every path axum sends to the service, recorded under one
    /// template, `{prefix}/{*path}`.
    ///
    /// axum sets no `MatchedPath` for the requests below such a mount, so
    /// that [`templates_from_matched_path`](crate::Builder::templates_from_matched_path)
    /// has no template for them, and they would count as unmatched beside
    /// the fallback's 404s. This route gives them one, wherever the layer
    /// is: a request without `MatchedPath` is resolved against the
    /// registered routes. Like axum, it also takes the mount point itself,
    /// `prefix` and `prefix/` (only `prefix/` when `prefix` ends with `/`),
    /// which are recorded under the same template.
    ///
    /// ```
    /// use tower_prometheus::Route;
    ///
    /// let route = Route::nested_service("/static");
    /// assert_eq!(route.template(), "/static/{*path}");
    /// ```
    ///
    /// With axum (feature `axum`):
    ///
    /// ```
    /// # #[cfg(feature = "axum")]
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// use axum::{routing::get, Router};
    /// use tower_prometheus::{RequestMetricsLayer, Route};
    ///
    /// # let files = tower::service_fn(|_: axum::extract::Request| async {
    /// #     Ok::<_, std::convert::Infallible>(axum::response::Response::new(axum::body::Body::empty()))
    /// # });
    /// let registry = prometheus::Registry::new();
    /// let metrics = RequestMetricsLayer::builder()
    ///     .templates_from_matched_path(true)
    ///     .route(Route::nested_service("/static"))
    ///     .build(&registry)?;
    /// let app: Router = Router::new()
    ///     .route("/users/{id}", get(|| async { "user" }))
    ///     .nest_service("/static", files)
    ///     .layer(metrics);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "axum"))]
    /// # fn main() {}
    /// ```
    pub fn nested_service(prefix: impl AsRef<str>) -> Self {
        let prefix = prefix.as_ref();
        // `/static/` is mounted as `/static/{*rest}` and `/static/` only;
        // `/static` as those and `/static` too (axum's `nest_service`).
        let base = prefix.strip_suffix('/').unwrap_or(prefix);
        let mut aliases = Vec::with_capacity(2);
        if !base.is_empty() && base.len() == prefix.len() {
            aliases.push(base.to_owned());
        }
        aliases.push(format!("{base}/"));
        Self {
            aliases,
            ..Self::new(format!("{base}/{{*path}}"))
        }
    }

    /// Adds methods this route answers; their series start at zero.
    #[must_use]
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods.extend(methods);
        self
    }

    /// Adds status codes this route answers; for every listed method, their
    /// series start at zero.
    ///
    /// A code outside `100..=999` makes [`build`](crate::Builder::build)
    /// fail with [`BuildError::InvalidStatusCode`](crate::BuildError::InvalidStatusCode).
    #[must_use]
    pub fn statuses(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.statuses.extend(codes);
        self
    }

    /// Pre-creates this route's `api_requests_total` series: at zero from
    /// the start for every [known client](crate::ClientIds::known), listed
    /// method and status family of the route.
    ///
    /// Only the pre-creation depends on it: a request with a client id is
    /// counted in `api_requests_total` on any route, called this or not.
    #[must_use]
    pub fn with_client_series(mut self) -> Self {
        self.client_series = true;
        self
    }

    /// Marks this route as a gRPC route, `/Service/Method`: its
    /// `grpc_requests_total` series start at zero for every code. For a
    /// service without a package (`/Greeter/SayHello`), or a template whose
    /// method is a parameter (`/demo.v1.Catalog/{method}`, which counts all
    /// of the service's methods under `grpc_method="{method}"`); templates
    /// of the shape `/package.Service/Method` are gRPC routes without it.
    ///
    /// Only the pre-creation depends on it: a gRPC call is recorded with
    /// its gRPC status on any route, marked or not, with labels taken from
    /// the template (see the [crate docs](crate#grpc)).
    ///
    /// A template that is not two non-empty segments is a
    /// [`BuildError::InvalidTemplate`](crate::BuildError::InvalidTemplate)
    /// ([`TemplateError::NotGrpc`](crate::TemplateError::NotGrpc)).
    ///
    /// ```
    /// use tower_prometheus::{RequestMetricsLayer, Route};
    ///
    /// let registry = prometheus::Registry::new();
    /// RequestMetricsLayer::builder()
    ///     .route(Route::new("/demo.v1.Catalog/{method}").grpc())
    ///     .build(&registry)?;
    /// # Ok::<(), tower_prometheus::BuildError>(())
    /// ```
    #[must_use]
    pub fn grpc(mut self) -> Self {
        self.grpc = true;
        self
    }

    /// The template as given.
    pub fn template(&self) -> &str {
        &self.template
    }
}
