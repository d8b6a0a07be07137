//! Tower middleware that records exact, cheap Prometheus request metrics
//! for any tower, axum, hyper or tonic service.
//!
//! # Quick start
//!
//! With axum (feature `axum`), the layer takes each request's template from
//! the router, and [`RequestMetricsLayer::pair`] gives it with the exporter
//! Prometheus scrapes:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{routing::get, Router};
//! use tower_prometheus::RequestMetricsLayer;
//!
//! let (metrics, exporter) = RequestMetricsLayer::pair();
//! let app: Router = Router::new()
//!     .route("/ctms/{email_id}", get(|| async { "contact" }))
//!     .layer(metrics)
//!     .route_service("/metrics", exporter);
//! # }
//! ```
//!
//! Around any other tower service, list the route templates: no framework
//! knows them for the layer.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_prometheus::{MetricsExporter, RequestMetricsLayer, Route};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = prometheus::Registry::new();
//! let metrics = RequestMetricsLayer::builder()
//!     .route(Route::new("/ctms/{email_id}"))
//!     .build(&registry)?;
//! let app = metrics.layer(service_fn(|_: Request<String>| async {
//!     Ok::<_, Infallible>(Response::new("contact".to_owned()))
//! }));
//!
//! app.oneshot(Request::get("/ctms/8a3b1c2d").body(String::new())?).await?;
//! // Serve `MetricsExporter::new(registry)` at /metrics for Prometheus.
//! let text = MetricsExporter::new(registry).render()?;
//! assert!(text.contains(r#"path_template="/ctms/{email_id}",status_code="200""#));
//! # Ok(())
//! # }
//! ```
//!
//! # What is recorded
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `ctms_requests_duration_seconds` | histogram, buckets 0.01 0.05 0.1 0.5 1 5 10 +Inf | `method`, `path_template`, `status_code_family` |
//! | `ctms_requests_total` | counter | `method`, `path_template`, `status_code`, `status_code_family` |
//! | `ctms_api_requests_total` | counter | `client_id`, `method`, `path_template`, `status_code_family` |
//! | `ctms_requests_unmatched_total` | counter | none |
//!
//! and `ctms_grpc_requests_total` for gRPC calls (see [gRPC](#grpc)), and,
//! when asked for (see [When a request is recorded](#when-a-request-is-recorded)):
//! `ctms_requests_in_flight`, `ctms_response_body_bytes_total` and
//! `ctms_request_body_bytes_total`.
//!
//! These are the families of the CTMS format, named after Mozilla's Contact
//! Management System, whose Python service defined them.
//!
//! - `ctms` is the default [namespace](Builder::namespace); the buckets can
//!   be [changed](Builder::buckets).
//! - `path_template` is the registered template the path matched, such as
//!   `/ctms/{email_id}`, never the raw path: raw paths carry identifiers
//!   (often personal data) and unbounded cardinality.
//! - `method` is one of `GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE
//!   PATCH`, or `OTHER` for any other method.
//! - `status_code` is the three-digit code (`"404"`), `status_code_family`
//!   its first digit and `xx` (`"4xx"`).
//! - `client_id` is the id of the API client that made the request (see
//!   [`ClientId`]); only requests with a client id are counted in
//!   `ctms_api_requests_total`.
//! - `ctms_requests_unmatched_total` counts the requests whose path matched
//!   no template, when they arrive: one series, at zero from the start, so
//!   that a gap in the templates (a forgotten route, a layer on a nested
//!   axum router, which sees paths without their prefix, a service nested
//!   with axum's `nest_service` without its [`Route::nested_service`])
//!   shows in a scrape instead of as silence.
//!
//! The metrics live in the [`Registry`](prometheus::Registry) given to
//! [`Builder::build`], next to anything else registered there, and
//! [`MetricsExporter`] serves that registry to Prometheus. Each layer keeps
//! its own counts; across instances, sum them in Prometheus.
//!
//! Every series a registered [`Route`] can produce with the methods and
//! status codes listed on it exists at zero from the start (for API routes,
//! for every [known client](ClientIds::known) too), so that `rate()` and
//! alerts see the first request.
//!
//! ## Naming profiles
//!
//! [`Builder::profile`] switches every name to the OpenTelemetry HTTP
//! server semantic conventions ([`Profile::OpenTelemetry`]), for
//! dashboards built on them; the CTMS names stay the default.
//! Pre-initialisation, bounds and exactness are the same in both.
//!
//! | CTMS | OpenTelemetry profile | notes |
//! |---|---|---|
//! | `ctms_requests_duration_seconds{method, path_template, status_code_family}` | `http_server_request_duration_seconds{http_request_method, http_route, http_response_status_code, error_type}` | per status code rather than per family; `error_type` is the code on 5xx (an inner error or a panic is 500) and absent otherwise; buckets [`OTEL_BUCKETS`](limits::OTEL_BUCKETS) (0.005 to 10 s) unless set |
//! | `ctms_requests_total{method, path_template, status_code, status_code_family}` | none | the histogram's `_count`, per status code |
//! | `ctms_api_requests_total{client_id, method, path_template, status_code_family}` | `http_server_client_requests_total{client_id, http_request_method, http_route, http_response_status_class}` | no equivalent in the convention: kept, in its style |
//! | `ctms_requests_unmatched_total` | `http_server_unmatched_requests_total` | no equivalent: kept |
//! | `ctms_requests_in_flight{method, path_template}` | `http_server_active_requests{http_request_method, http_route}` | |
//! | `ctms_response_body_bytes_total`, `ctms_request_body_bytes_total` | `http_server_response_body_bytes_total`, `http_server_request_body_bytes_total` | counters, as in CTMS (the convention's size histograms would multiply the series) |
//! | `ctms_grpc_requests_total{grpc_code, grpc_method, grpc_service}` | `rpc_server_requests_total{rpc_grpc_status_code, rpc_method, rpc_service}` | the code as a number, as the RPC conventions give it |
//! | `method` value `OTHER` | `_OTHER` | |
//!
//! The namespace is not used in the OpenTelemetry profile; a prefix and
//! constant labels come from the registry (see [Registries](#registries)).
//!
//! # When a request is recorded
//!
//! Exactly once per request whose path matches a template, with the
//! duration measured from [`call`](tower_service::Service::call) to that
//! moment. Where that moment is depends on the
//! [recording point](Builder::recording_point):
//!
//! | how the request ends | [`ResponseHead`](RecordingPoint::ResponseHead) (default, CTMS) | [`BodyEnd`](RecordingPoint::BodyEnd) |
//! |---|---|---|
//! | the inner future is ready with a response | recorded then, with the response's status | — |
//! | the response body yields its last frame or its trailers (or is empty) | — | recorded then, with the response's status |
//! | the response body is dropped before its end (the client went away) | — | 499 |
//! | the response body yields an error, or panics while polled | — | 500 |
//! | the inner service returns `Err` | 500 | 500 |
//! | the inner service panics in `call` or while its future is polled | 500 | 500 |
//! | the response future is dropped before it is ready (the client went away, an outer timeout) | 499 | 499 |
//!
//! The label set is the same whichever way the request ended. Polling
//! readiness records nothing. A request is recorded before the response
//! head (at the response head) or the frame that ends its body (at the
//! body end, and for gRPC) is handed on, so a client that has its answer
//! finds it counted in the next scrape. (A body that never says it has
//! ended is recorded when it is polled past its end, or dropped.) At the response head, a streamed body (server-
//! sent events, a download, a gRPC stream) is not waited for: the duration
//! is the time to the first byte, and the request counts as finished then;
//! at the body end, the duration covers the whole stream.
//!
//! gRPC calls are always recorded at the end of their body; see
//! [gRPC](#grpc).
//!
//! Two opt-in counts follow every request to the end of its response body,
//! whatever the recording point:
//!
//! - [`in_flight`](Builder::in_flight): `ctms_requests_in_flight{method,
//!   path_template}`, a gauge raised when a request arrives and lowered
//!   when its body ends or is dropped, or the request fails, panics or is
//!   abandoned, so it is exact however requests end;
//! - [`response_bytes`](Builder::response_bytes):
//!   `ctms_response_body_bytes_total{method, path_template}`, the bytes of
//!   the body's data frames as they are sent;
//! - [`request_bytes`](Builder::request_bytes):
//!   `ctms_request_body_bytes_total{method, path_template}`, the bytes of
//!   the request body's data frames as the inner service reads them. The
//!   inner service then receives a [`RequestBody`] around the request's
//!   body, so this is a builder step that changes the layer's type
//!   ([`CountRequestBody`]) rather than a flag.
//!
//! The responses carry a [`ResponseBody`] that wraps the inner body; when
//! nothing is tracked (the default), it only delegates.
//!
//! # gRPC
//!
//! A gRPC server answers HTTP 200 and carries the call's status in
//! `grpc-status`: in the response headers of an immediate error, otherwise
//! in the trailers after the last message. So that a failing gRPC service
//! does not look healthy, every gRPC call (a `POST` whose `content-type` is
//! `application/grpc`, with or without a `+proto` or `;…` suffix) is
//! recorded at the end of its body, with its gRPC status, whatever template
//! it matched (a method's path, a parameterised or catch-all template, a
//! plain one, or the [unmatched value](Builder::record_unmatched_as)):
//!
//! - in the CTMS families with the status's HTTP equivalent (the mapping of
//!   Google's API design guide and grpc-gateway: `OK` 200, `CANCELLED` 499,
//!   `INVALID_ARGUMENT`, `FAILED_PRECONDITION` and `OUT_OF_RANGE` 400,
//!   `UNAUTHENTICATED` 401, `PERMISSION_DENIED` 403, `NOT_FOUND` 404,
//!   `ALREADY_EXISTS` and `ABORTED` 409, `RESOURCE_EXHAUSTED` 429,
//!   `UNKNOWN`, `INTERNAL` and `DATA_LOSS` 500, `UNIMPLEMENTED` 501,
//!   `UNAVAILABLE` 503, `DEADLINE_EXCEEDED` 504), so that dashboards and 5xx
//!   alerts built for HTTP work unchanged;
//! - in `ctms_grpc_requests_total{grpc_code, grpc_method, grpc_service}`
//!   with the code's canonical name (`OK`, `NOT_FOUND`, `CANCELLED`, …).
//!
//! A call whose body is dropped before its trailers is `CANCELLED`; a
//! missing or unparsable status is `UNKNOWN` (or, when the HTTP status is
//! an error, the code gRPC maps it to).
//!
//! `grpc_service` and `grpc_method` are taken from the template the call
//! was recorded under, never from the request path, so they are as bounded
//! as the templates: one series per code and template.
//!
//! | template | `grpc_service` | `grpc_method` |
//! |---|---|---|
//! | `/grpc.health.v1.Health/Check` | `grpc.health.v1.Health` | `Check` |
//! | `/demo.v1.Catalog/{method}` | `demo.v1.Catalog` | `{method}` |
//! | any other: `/{*path}`, `/api`, `/a/b/c`, the unmatched value | the template itself | empty |
//!
//! So `/demo.v1.Catalog/{method}` counts all of a service's methods
//! together, under `grpc_method="{method}"`; register one route per method
//! to tell them apart. No two templates give the same pair of values.
//!
//! A **gRPC route** is a template of the shape `/package.Service/Method`,
//! or any `/Service/Method` marked [`Route::grpc`], whose method may be a
//! parameter (`/demo.v1.Catalog/{method}`): its `grpc_requests_total`
//! series exist at zero for every code from the start. Any other template
//! lists its 17 series once a gRPC call has been recorded on it. The family
//! is always registered, and a scrape leaves it out while it has no series,
//! so a layer that never sees gRPC exposes nothing more. With tonic, add
//! the layer with `Server::builder().layer(..)`; `examples/grpc_health.rs`
//! does so for tonic-health.
//!
//! **grpc-web** (`application/grpc-web`, `application/grpc-web+proto`,
//! `application/grpc-web-text`) carries its status in a trailer frame
//! inside the response body, which the layer does not read: a grpc-web call
//! is recorded as any HTTP request, with its HTTP status (usually 200,
//! whatever its gRPC status; 4xx or 5xx only when the HTTP status itself is
//! an error) at the [recording point](Builder::recording_point), and it is
//! not counted in `ctms_grpc_requests_total`. To record grpc-web calls with
//! their gRPC status, put the metrics layer **inside** the layer that
//! translates grpc-web into gRPC: tonic-web's `GrpcWebLayer` hands its
//! inner service `application/grpc` requests and reads the trailers of its
//! answers, so there they are gRPC calls like any other. (`GrpcWebLayer`
//! wants its inner service to answer with tonic's body: turn the layer's
//! [`ResponseBody`] back into one with
//! `map_response(|response| response.map(tonic::body::Body::new))`.)
//!
//! # Client ids
//!
//! A client id reaches the layer in one of two ways:
//!
//! 1. the inner service (an auth layer, the handler) inserts a [`ClientId`]
//!    into the **response** extensions once the client is authenticated;
//!    this wins;
//! 2. a function given to [`ClientIds::from_request`] reads it from the
//!    request headers, for apps whose front proxy has already
//!    authenticated the caller.
//!
//! Both, and the caps, are configured by one [`ClientIds`] value given to
//! [`Builder::client_ids`].
//!
//! Whatever arrives this way becomes a label value, so only pass verified
//! ids. Ids are capped (see below). An id claims its place under the cap
//! only when it is the one recorded: an id read from the request that the
//! response's `ClientId` overrides takes none. An empty id, an id with
//! control characters (CR, LF, NUL, …) and the literal `__other__` are
//! recorded as `__other__`, so that no tool that rewrites line endings can
//! corrupt the exposition and no id can pose as the overflow series.
//!
//! # Route templates
//!
//! Templates use the syntax of [`matchit`] 0.9, which this crate pins:
//!
//! - `/ctms/{email_id}` matches one segment (`/ctms/abc`, not `/ctms/a/b`
//!   nor `/ctms/`);
//! - `/files/{*path}` matches the rest of the path, at the end only;
//! - `{{` and `}}` stand for literal braces;
//! - static segments win over parameters (`/ctms/search` before
//!   `/ctms/{email_id}`), whatever the order of registration;
//! - two templates that would match the same paths ambiguously, or the same
//!   template twice, are a [`BuildError::TemplateConflict`] naming both;
//! - the `:id` and `*rest` syntax of older routers is refused with the
//!   spelling to use instead, and so is a constraint such as
//!   `{id:[0-9]+}` (a parameter matches any segment);
//! - a parameter name used twice, more than 25 parameters, a template
//!   longer than 1,024 bytes (see [`limits`]), and a
//!   character no request path can hold (control characters, spaces, `?`,
//!   `#`) are each a [`BuildError`] that says what to write instead.
//!
//! Paths that match no template are not recorded in the three CTMS families,
//! as in CTMS; `ctms_requests_unmatched_total` counts them. To record them
//! anyway, [`Builder::record_unmatched_as`] records them all under one fixed
//! `path_template` value, which no template may have, each with its status
//! code: requests something served without a template (`status_code` not
//! `404` under that value) stand apart from the 404s of paths nothing
//! serves.
//!
//! # Where to put the layer
//!
//! - **axum** (feature `axum`): add it with `Router::layer` and
//!   [`Builder::templates_from_matched_path`], and it takes each request's
//!   template from axum's `MatchedPath`, nested routers' prefixes included:
//!   no route is listed twice (`examples/axum.rs` does this). The one
//!   exception is a service mounted with `Router::nest_service` (a
//!   `ServeDir`, another app): axum sets no `MatchedPath` below the mount,
//!   so declare each mount with [`Route::nested_service`]
//!   (`Route::nested_service("/static")` for
//!   `.nest_service("/static", ServeDir::new("assets"))`). Or wrap the
//!   whole router as one service, which is cheaper per request but sees
//!   requests before axum routes them, so it resolves them against the
//!   registered [`Route`]s; serve it with
//!   [`into_make_service`](RequestMetrics::into_make_service):
//!
//!   ```no_run
//!   # #[cfg(feature = "axum")]
//!   # #[tokio::main]
//!   # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!   use tower::Layer;
//!   # let registry = prometheus::Registry::new();
//!   # let metrics_layer = tower_prometheus::RequestMetricsLayer::builder()
//!   #     .route(tower_prometheus::Route::new("/"))
//!   #     .build(&registry)?;
//!   # let router = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
//!   # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!   axum::serve(listener, metrics_layer.layer(router).into_make_service()).await?;
//!   # Ok(())
//!   # }
//!   # #[cfg(not(feature = "axum"))]
//!   # fn main() {}
//!   ```
//!
//!   (`axum::serve(listener, metrics_layer.layer(router))` cannot compile:
//!   `axum::serve` takes a `Router` or a make service, and the wrapped
//!   router answers with this crate's body.) A hyper-util server takes the
//!   layer's response as it is (the `ctms_server` example serves it so).
//!   Either way 405s and 404s are seen too.
//! - **hyper**: wrap the service given to the connection builder (through
//!   `hyper_util::service::TowerToHyperService`); `examples/hyper_server.rs`
//!   does so with a `ServiceBuilder` stack in the recommended order.
//! - **tonic**: add it with `Server::builder().layer(..)`; gRPC paths are
//!   `/package.Service/Method`, so register those as templates, one per
//!   method or `/package.Service/{method}` per service (see [gRPC](#grpc)).
//!
//! Among other layers, the order decides what is recorded. In a
//! `ServiceBuilder`, the first layer is the outermost; the order the table
//! below recommends for a plain tower or hyper stack is:
//!
//! ```
//! use std::{convert::Infallible, time::Duration};
//!
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder};
//! use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer};
//! use tower_prometheus::{RequestMetricsLayer, Route};
//!
//! let registry = prometheus::Registry::new();
//! let metrics = RequestMetricsLayer::builder()
//!     .route(Route::new("/ctms/{email_id}"))
//!     .build(&registry)?;
//! # #[allow(deprecated)]
//! let app = ServiceBuilder::new()
//!     .layer(metrics) // outermost: sees the timeout's 408 and the catcher's 500
//!     .layer(TimeoutLayer::new(Duration::from_secs(10)))
//!     .layer(CatchPanicLayer::new())
//!     .service(service_fn(|_: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//! # let _ = app;
//! # Ok::<(), tower_prometheus::BuildError>(())
//! ```
//!
//!
//! | layer | put the metrics layer | you get |
//! |---|---|---|
//! | a timeout (tower-http's `TimeoutLayer`, `tower::timeout`) | **outside** it | tower-http's 408 recorded as such, `tower::timeout`'s error as 500; with the metrics layer inside the timeout, the timed-out request is dropped and recorded as 499, so server timeouts never reach the 5xx alerts |
//! | authentication that answers 401 and inserts [`ClientId`] | **outside** it | the 401s counted, and every client's id; inside it, the 401s are never seen |
//! | a panic catcher (tower-http's `CatchPanicLayer`) | **outside** it, with the auth layer between the two | the 500 it answers, with the client id the auth layer put on it; with the metrics layer inside the catcher, the panic is still recorded as 500, but only with a client id read from the request |
//! | a concurrency limit or any layer whose `poll_ready` waits | either side | the time spent waiting for readiness is **not** in the histogram: the clock starts at `call`. To see queueing, put a timeout outside the limit (its 408s are counted) or watch the in-flight gauge against the limit |
//! | axum's `Router::nest` | anywhere, with [`Builder::templates_from_matched_path`]; else on the **outer** router | the full templates from `MatchedPath`, on the inner router too; without it, a layer added to a router before it is nested sees paths without the prefix, matches nothing, and only `requests_unmatched_total` grows |
//! | axum's `Router::nest_service` (a `ServeDir`, another app) | `Router::layer` or around the whole router, with a [`Route::nested_service`] per mount | every request axum sends to the mount under one template, `/static/{*path}`, the service's own 404s included; without the route, axum gives these requests no `MatchedPath` and they count as unmatched beside the fallback's 404s (with [`Builder::record_unmatched_as`], under its value, where their status codes tell them apart) |
//!
//! # Registries
//!
//! The families are registered in the registry given to [`Builder::build`],
//! next to anything else in it. A registry made with
//! `Registry::new_custom(prefix, labels)` is supported: the prefix is put
//! before every name (`app_ctms_requests_total`) and the constant labels
//! are added to every series, unless a constant label has the name of one
//! of the layer's labels, which is a [`BuildError::ConstantLabelClash`]
//! (Prometheus would refuse every scrape). Registering another metric under
//! a name the layer's samples use (`ctms_requests_duration_seconds_count`)
//! is refused, before or after the build.
//!
//! # Hostile traffic and cardinality
//!
//! The number of series is bounded by the configuration, whatever the
//! traffic, and [`RequestMetricsLayer::series_bound`] computes the bound
//! for a built layer, family by family, so that it is known before the
//! first scrape; [`Builder::max_series`] refuses a configuration whose
//! bound is over a budget (Prometheus's `sample_limit`, say). With `R`
//! route ids (the templates, plus one if unmatched paths are recorded,
//! plus the templates that may be learned from axum's `MatchedPath`,
//! 1,000 by default), `B` finite buckets and `C` the [client id cap](ClientIds::max):
//!
//! - `ctms_requests_total`: at most `R × 10 methods × 900 status codes`;
//! - `ctms_requests_duration_seconds`: at most `R × 10 × 9 families`
//!   histograms of `B + 3` lines each;
//! - `ctms_api_requests_total`: at most `R × 10 × 9 × (C + 1)`;
//! - `ctms_requests_unmatched_total`: one;
//! - `ctms_grpc_requests_total`: at most `17 × R` (17 codes per template,
//!   listed for gRPC routes and for templates that have recorded a gRPC
//!   call);
//! - `ctms_requests_in_flight`, `ctms_response_body_bytes_total`,
//!   `ctms_request_body_bytes_total` (when asked for): at most `R × 10`
//!   each.
//!
//! With the OpenTelemetry profile, the duration histograms are per status
//! code: at most `R × 10 × 900` histograms of `B + 3` lines, and there is
//! no `requests_total`.
//!
//! The bound is reached only by a service that answers every status code
//! to every method on every route id, with at least `C` client ids (a
//! test floods a layer so and finds every family at its bound exactly); in
//! practice only the codes a service answers appear. The bound holds
//! because:
//!
//! - raw paths are never recorded; unmatched ones are counted apart, or
//!   share one value; gRPC service and method names come from the
//!   templates too;
//! - methods outside the standard nine are recorded as `OTHER`;
//! - status codes are 100–999 by construction of [`http::StatusCode`];
//! - client ids are capped at 100 distinct ids and 128 bytes by default
//!   (at most 10,000 and 1,024; see [`ClientIds`]); past either
//!   cap an id is recorded as `__other__` (never truncated, so a long id
//!   cannot pass for another client).
//!
//! No two series of an exposition share a label set: an id that is
//! literally `__other__` shares the overflow series, and a value for
//! unmatched paths that is also a template is refused at build. Label
//! values are escaped by the text encoder, so quotes and backslashes in a
//! client id cannot break the exposition.
//!
//! ## Memory
//!
//! Memory follows the traffic, not the configuration: nothing proportional
//! to a cap is allocated before a request needs it.
//!
//! | what | bytes |
//! |---|---|
//! | each registered route, idle | matchit's tree for the template, plus at most 128 |
//! | each route that has served a request | about 1,700 |
//! | each (route, method, status family) that has served a request | 16 per [shard](Builder::shards) (32 once more threads than shards record it), and about 900 plus 8 per bucket for each shard it was recorded in |
//! | each client id | about twice its length, plus 64 |
//! | each client counted on a (route, method, status family) | 8 per shard it was recorded in |
//!
//! So an idle layer costs about one matchit entry per route, and a scrape
//! of it walks one pointer per route. A dropped layer's memory is freed
//! when its last service and its last request in flight are dropped. A
//! scrape holds one rendered copy of the exposition however many scrapers
//! ask at once (see [`MetricsExporter`]).
//!
//! Building never panics: every mistake is a [`BuildError`], including
//! caps and templates past what can be honoured. Once built, the layer
//! never fails or panics a request: the response and error types pass
//! through unchanged, and a panic in a client id reader is recorded as 500
//! like a panic in the inner service.
//!
//! # Formats, exemplars and native histograms
//!
//! [`MetricsExporter`] answers in the [`Format`] the scraper's `Accept`
//! header ranks highest, q-values included, and gzip-encodes any of them:
//!
//! | format | asked for by | carries |
//! |---|---|---|
//! | text 0.0.4 | no or unknown `Accept`, `curl`, most tools | values |
//! | OpenMetrics 1.0.0 | Prometheus, by default | values, exemplars |
//! | protobuf (feature `protobuf`) | Prometheus with `--enable-feature=native-histograms` | values, exemplars, native histograms |
//!
//! Everything in the registry appears in every format; the layer's own
//! families carry their extras where the format has room for them.
//!
//! **Exemplars** ([`Builder::exemplars_from_request`]): a request's trace id,
//! typically from the W3C `traceparent` header ([`TraceId::from_traceparent`]),
//! kept as the exemplar of the duration bucket it fell in and of its
//! `ctms_requests_total` series, with its value and time, so that a slow
//! bucket on a Grafana panel is one click from a trace that landed in it.
//! Prometheus stores them with `--enable-feature=exemplar-storage`.
//!
//! ```
//! use tower_prometheus::{Format, MetricsExporter, RequestMetricsLayer, Route, TraceId};
//!
//! let registry = prometheus::Registry::new();
//! let layer = RequestMetricsLayer::builder()
//!     .route(Route::new("/items/{id}"))
//!     .exemplars_from_request(TraceId::from_traceparent)
//!     .build(&registry)?;
//! // ...requests go through `layer`; Prometheus scrapes OpenMetrics:
//! let text = MetricsExporter::new(registry).render_as(Format::OpenMetrics)?;
//! assert!(text.ends_with(b"# EOF\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Native histograms** ([`Builder::native_histograms`]): exponential
//! buckets kept next to the classic CTMS buckets in
//! `ctms_requests_duration_seconds`, both in the same protobuf message, so
//! dashboards of either kind keep working; `histogram_quantile()` then
//! answers to within a few percent without choosing buckets.
//!
//! Why the crate encodes these itself: the prometheus crate's data model
//! has no field for an exemplar or a native histogram. So the exporter
//! gathers the registry as usual, takes the layer's extras from the same
//! collection, and writes OpenMetrics by hand (a text format) and protobuf
//! through `prost`, from message declarations of Prometheus's
//! `client_model`; nothing needs `protoc`.
//!
//! # Performance
//!
//! Everything that can be decided once is decided at build time. Per
//! request, the layer does one matchit lookup, a method index, two clock
//! reads and three or four adds on cells found by index: no hashing of
//! label values, no allocation once a series exists, no lock.
//! (A client id read from the request that has no slot yet is copied until
//! it is recorded: once per new id.) A request whose body is watched (the
//! body-end recording point, a gRPC call, the in-flight gauge or the byte
//! count) allocates one small tracker for its body; with none of these, the
//! body wrapper holds nothing and only delegates.
//! Cores recording at once do not slow each other down, up to as many
//! threads as there are [`shards`](Builder::shards) (twice the cores by
//! default); past that every request is still counted exactly, a little
//! slower. Paths that are not recorded cost only a bit test on their
//! first byte (or, when that byte starts some template, the lookup).
//!
//! A scrape sums the shards, with no flush and no lag. What it is exact
//! about: every series as it is read, and every histogram in itself, even
//! while requests are recorded: a histogram's `_count` equals its `+Inf`
//! bucket, and a native histogram's count (protobuf) equals its zero
//! bucket plus its buckets, so Prometheus accepts every scrape whole. What
//! it is not: one instant. Series and families are read one after the
//! other, so under load `sum(requests_total)` and the histogram's `_count`
//! can differ by the requests recorded while the scrape ran; at rest they
//! agree exactly.
//!
//! With axum, wrapping the whole router (`layer.layer(router)`) is cheaper
//! than `Router::layer`, which boxes and clones every route's service on
//! each request; both record the same.
//!
//! `benches/` measures the hot path and the scrape against their
//! baselines; `bench-peers/` compares the crate with axum-prometheus and
//! with layers written directly on the prometheus crate. BENCHMARKS.md in
//! the repository has the figures and how to reproduce them.
//!
//! # Feature flags
//!
//! - `gzip` (default): [`MetricsExporter`] gzip-encodes the exposition when
//!   the scraper accepts it (Prometheus always does). Adds `flate2` with its
//!   pure-Rust backend.
//! - `quanta` (default): requests are timed with `quanta`'s TSC-based clock,
//!   cheaper to read than `std::time::Instant` on x86-64 with an invariant
//!   TSC, and the OS clock elsewhere. Without the feature,
//!   `std::time::Instant`.
//! - `protobuf` (default): [`MetricsExporter`] also speaks the Prometheus
//!   protobuf format, the only one that carries native histograms. Adds
//!   `prost`.
//! - `axum`: route templates from axum's `MatchedPath`
//!   ([`Builder::templates_from_matched_path`], [`RequestMetricsLayer::pair`]) and
//!   [`RequestMetrics::into_make_service`] for `axum::serve`. Adds `axum`
//!   (only its `matched-path` feature) and `tower`'s `util`, both already in
//!   an axum app's tree.
//!
//! # Minimum supported Rust version
//!
//! 1.81.
#![cfg_attr(docsrs, feature(doc_cfg))]
// The one exception: the loom model of `OnceLock` (`sync.rs`), which is
// not compiled outside the models.
#![cfg_attr(not(loom), forbid(unsafe_code))]

mod bits;
mod body;
mod bound;
mod builder;
mod client_id;
mod client_ids;
mod clock;
mod error;
mod exporter;
mod extras;
mod future;
mod grpc;
mod labels;
mod layer;
pub mod limits;
mod options;
// Its items stay `pub`: the tests decode scrapes with the same file.
#[cfg(feature = "protobuf")]
#[allow(unreachable_pub)]
mod proto;
mod recorder;
mod request_body;
mod route;
mod routes;
mod schema;
mod segmented;
mod service;
mod start;
mod sync;
mod template;
mod trace_id;
mod validate;

#[cfg(test)]
#[cfg(not(loom))]
#[path = "../tests/support/frames.rs"]
mod test_helpers;

pub use body::ResponseBody;
pub use bound::SeriesBound;
pub use builder::Builder;
pub use client_id::ClientId;
pub use client_ids::ClientIds;
pub use error::{BuildError, TemplateError};
pub use exporter::{ExporterError, Format, MetricsBody, MetricsExporter, ScrapeFuture};
pub use future::ResponseFuture;
pub use layer::RequestMetricsLayer;
pub use options::RecordingPoint;
pub use request_body::{CountRequestBody, PassRequestBody, RequestBody, RequestBodyMode};
pub use route::Route;
pub use schema::Profile;
#[cfg(feature = "axum")]
pub use service::IntoAxumMakeService;
pub use service::RequestMetrics;
pub use trace_id::TraceId;

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
