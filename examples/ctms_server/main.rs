//! A whole CTMS-like service on axum, the main example: a small in-memory
//! contact API behind HTTP Basic, every route registered with the metrics
//! layer, `/metrics` on the public listener or a private one; run it with
//! `cargo run --example ctms_server`.
//!
//! ```text
//! cargo run --example ctms_server
//! curl -i http://127.0.0.1:8000/ctms/00000000-0000-4000-8000-000000000000 -u test_client:test_secret
//! curl http://127.0.0.1:8000/metrics
//! ```
//!
//! Environment variables:
//!
//! * `CTMS_ADDR`: address to listen on (default `127.0.0.1:8000`; port `0` picks a
//!   free port). Once the server accepts connections it logs
//!   `listening on http://ADDR` with the bound address.
//! * `CTMS_METRICS_ADDR`: when set, `/metrics` is served on this address only
//!   (typically `127.0.0.1:9090` or a private interface) and the public listener
//!   answers 404 for it; the bound address is logged as
//!   `metrics listening on http://ADDR`. Scrapes there never wait behind the
//!   public listener's in-flight requests.
//!
//!   After them, it logs `series_bound=N`: the most series the metrics
//!   layer can expose with this configuration, whatever the traffic (see
//!   `RequestMetricsLayer::series_bound`), the figure to set Prometheus's
//!   `sample_limit` from.
//! * `CTMS_MAX_IN_FLIGHT`: requests the public listener serves at once (default
//!   512); more wait for a slot.
//! * `CTMS_HEADER_READ_TIMEOUT`: seconds a client has to send a request's head,
//!   from its first byte (default 10); a slower client is disconnected, so that
//!   slow clients cannot hold connections open forever.
//! * `CTMS_USE_MOZLOG`: `true` (default) logs one MozLog JSON line per request on
//!   stdout; `false` logs plain lines.
//! * `CTMS_LOG_REQUESTS` and `CTMS_RECORD_METRICS`: `false` turns off the request
//!   log or the metrics layer (both on by default), so that a benchmark can
//!   measure what the layer costs (`scripts/wrk_compare.sh`).
//! * `CTMS_NATIVE_HISTOGRAMS`: `true` keeps a native histogram of the request
//!   durations next to the classic buckets (default `false`, so the CTMS
//!   exposition is unchanged); Prometheus gets it over protobuf when started
//!   with `--enable-feature=native-histograms`.
//! * `CTMS_CLIENTS`: comma-separated `client_id:secret` pairs allowed to use the API
//!   routes through HTTP Basic authentication (default `test_client:test_secret`).
//!   A client id may contain any character except `:` and `,`.
//!
//! Every route is pre-registered with the metrics layer, so `/metrics` exposes all
//! series at zero before the first request. `/metrics` answers in the format the
//! scraper's `Accept` asks for: text 0.0.4 (the default), OpenMetrics 1.0.0 or
//! protobuf. A request with a W3C `traceparent` header leaves its trace id as an
//! exemplar (label `trace_id`) on its duration bucket and its `ctms_requests_total`
//! series, shown in OpenMetrics and protobuf. Contacts live in memory only and are lost
//! when the process stops (Ctrl-C or SIGTERM).
//!
//! # Dependencies
//!
//! An app needs these to build this directory's files (`serve.rs`'s hyper
//! server with its header-read timeout included):
//!
//! ```toml
//! [dependencies]
//! axum = "0.8"
//! base64 = "0.22"
//! hyper = "1"
//! hyper-util = { version = "0.1", features = ["server-auto", "server-graceful", "service", "tokio"] }
//! prometheus = { version = "0.14", default-features = false }
//! serde = { version = "1", features = ["derive"] }
//! serde_json = "1"
//! tokio = { version = "1", features = ["macros", "net", "rt-multi-thread", "signal", "sync", "time"] }
//! tower = { version = "0.5", features = ["limit"] }
//! tower-http = { version = "0.6", features = ["catch-panic"] }
//! tower-prometheus = "0.1"
//! uuid = { version = "1", features = ["v4"] }
//! ```

mod config;
mod contacts;
mod log;
mod serve;

use std::process::ExitCode;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::middleware;
use axum::response::{Html, Redirect};
use axum::routing::{get, get_service};
use axum::Router;
use prometheus::Registry;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::Layer as _;
use tower_http::catch_panic::CatchPanicLayer;
use tower_prometheus::{
    limits::{DEFAULT_MAX_CLIENT_IDS, DEFAULT_MAX_CLIENT_ID_LEN},
    BuildError, ClientIds, MetricsExporter, RequestMetricsLayer, Route, TraceId,
};

use crate::config::{bind, Settings};
use crate::contacts::{
    api_error, crash, create_contact, get_contact, heartbeat, replace_contact, require_client,
    search_contacts, update_contact, version, AppState,
};

const DOCS_PAGE: &str = "<!doctype html>\n<html><head><title>CTMS</title></head><body>\
<h1>CTMS example</h1><p>Contact API: <code>/ctms</code>, <code>/ctms/{email_id}</code> \
(HTTP Basic). Metrics: <a href=\"./metrics\">/metrics</a>.</p></body></html>\n";

fn metrics_layer(
    registry: &Registry,
    clients: &[(String, String)],
    native_histograms: bool,
) -> Result<RequestMetricsLayer, BuildError> {
    let get_route = |template: &str, statuses: &[u16]| {
        Route::new(template)
            .methods([Method::GET])
            .statuses(statuses.iter().copied())
    };
    let plain = [
        "/docs",
        "/__version__",
        "/__heartbeat__",
        "/__lbheartbeat__",
        "/metrics",
    ];
    let api_statuses = [200, 201, 400, 401, 404, 413, 422];
    let longest_id = clients.iter().map(|(id, _)| id.len()).max().unwrap_or(0);
    let builder = RequestMetricsLayer::builder()
        .namespace("ctms")
        .route(get_route("/", &[307]))
        .routes(plain.map(|template| get_route(template, &[200])))
        .route(get_route("/__crash__", &[401, 500]).with_client_series())
        .route(
            Route::new("/ctms")
                .methods([Method::GET, Method::POST])
                .statuses(api_statuses)
                .with_client_series(),
        )
        .route(
            Route::new("/ctms/{email_id}")
                .methods([Method::GET, Method::PATCH, Method::PUT])
                .statuses(api_statuses)
                .with_client_series(),
        )
        .client_ids(
            ClientIds::new()
                .known(clients.iter().map(|(id, _)| id.clone()))
                .max(clients.len().max(DEFAULT_MAX_CLIENT_IDS))
                .max_len(longest_id.max(DEFAULT_MAX_CLIENT_ID_LEN)),
        )
        .exemplars_from_request(TraceId::from_traceparent);
    builder.native_histograms(native_histograms).build(registry)
}

/// How the two listeners are served.
struct Config {
    logger: log::Logger,
    /// `None` when `CTMS_RECORD_METRICS=false`.
    layer: Option<RequestMetricsLayer>,
    log_requests: bool,
    /// `Some` when `/metrics` is served on the public listener too.
    public_metrics: Option<Registry>,
    max_in_flight: usize,
    header_read_timeout: std::time::Duration,
}

/// The public routes. Authentication wraps the panic catcher, so the 500 of a
/// caught panic still carries the `ClientId`; it also runs before axum's 405 for
/// the API paths. Around each route, the in-flight limit, then the request log
/// (which sees the time spent waiting for a slot). The metrics layer goes around
/// the whole router ([`Config::serve`]).
fn app(state: AppState, config: &Config) -> Router {
    let api = Router::new()
        .route("/ctms", get(search_contacts).post(create_contact))
        .route(
            "/ctms/{email_id}",
            get(get_contact).patch(update_contact).put(replace_contact),
        )
        .route("/__crash__", get(crash))
        .route_layer(CatchPanicLayer::new())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_client,
        ));
    let public = Router::new()
        .route("/", get(|| async { Redirect::temporary("./docs") }))
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
        .route("/__version__", get(version))
        .route("/__heartbeat__", get(heartbeat))
        .route("/__lbheartbeat__", get(|| async { StatusCode::OK }));
    let public = match &config.public_metrics {
        Some(registry) => public.route(
            "/metrics",
            get_service(MetricsExporter::new(registry.clone())),
        ),
        None => public,
    };
    let public: Router = public
        .merge(api)
        .fallback(|| async { api_error(StatusCode::NOT_FOUND, "Not Found") })
        .with_state(state);
    // One semaphore shared by every route (axum applies layers per route).
    let public = public.layer(GlobalConcurrencyLimitLayer::new(config.max_in_flight));
    config.with_log(public)
}

/// The private listener's routes: `/metrics` only, recorded and logged like the
/// public routes but with no in-flight limit, so a saturated public listener
/// cannot delay a scrape.
fn metrics_app(registry: Registry, config: &Config) -> Router {
    let private = Router::new()
        .route("/metrics", get_service(MetricsExporter::new(registry)))
        .fallback(|| async { api_error(StatusCode::NOT_FOUND, "Not Found") });
    config.with_log(private)
}

impl Config {
    /// Serves `router` with the metrics layer wrapped around it as one tower
    /// service (unless metrics are switched off), which is cheaper than
    /// `Router::layer` (that boxes and clones each route's service on every
    /// request) and sees every answer, 404s and 405s included.
    async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        router: Router,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        match &self.layer {
            Some(layer) => {
                serve::serve(
                    listener,
                    layer.layer(router),
                    self.header_read_timeout,
                    shutdown,
                )
                .await
            }
            None => serve::serve(listener, router, self.header_read_timeout, shutdown).await,
        }
    }

    fn with_log(&self, router: Router) -> Router {
        if self.log_requests {
            router.layer(middleware::from_fn_with_state(
                self.logger.clone(),
                log::log_request,
            ))
        } else {
            router
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed right away, so a
/// signal sent as soon as the address is printed is not missed.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}

async fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let logger = log::Logger::new(settings.use_mozlog);
    let registry = Registry::new();
    let layer = metrics_layer(&registry, &settings.clients, settings.native_histograms)
        .map_err(|err| format!("cannot build the metrics layer: {err}"))?;
    let series_bound = layer.series_bound().series();
    let metrics_addr = settings.metrics_addr;
    let addr = settings.addr;
    let state = AppState {
        clients: Arc::new(settings.clients.into_iter().collect()),
        contacts: Arc::default(),
    };
    let config = Config {
        logger: logger.clone(),
        layer: settings.record_metrics.then_some(layer),
        log_requests: settings.log_requests,
        public_metrics: metrics_addr.is_none().then(|| registry.clone()),
        max_in_flight: settings.max_in_flight,
        header_read_timeout: settings.header_read_timeout,
    };
    let shutdown =
        shutdown_signal().map_err(|err| format!("cannot install signal handlers: {err}"))?;
    // Both listeners are bound before either is announced, so a script that waits
    // for the announcements can use both at once.
    let (listener, bound) = bind("CTMS_ADDR", &addr).await?;
    let private = match &metrics_addr {
        Some(metrics_addr) => Some(bind("CTMS_METRICS_ADDR", metrics_addr).await?),
        None => None,
    };
    let announce = |which, addr| {
        logger
            .listening(which, addr)
            .map_err(|err| format!("cannot write to stdout: {err}"))
    };
    announce("public", bound)?;
    if let Some((_, metrics_bound)) = &private {
        announce("metrics", *metrics_bound)?;
    }
    logger
        .series_bound(series_bound)
        .map_err(|err| format!("cannot write to stdout: {err}"))?;

    // Either listener stopping (by a signal or an error) stops the other.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        }
    });
    let public = config.serve(listener, app(state, &config), stopped(stop_rx.clone()));
    let public = async {
        public.await;
        let _ = stop_tx.send(true);
        Ok::<(), String>(())
    };
    match private {
        None => public.await,
        Some((metrics_listener, _)) => {
            let private = config.serve(
                metrics_listener,
                metrics_app(registry, &config),
                stopped(stop_rx),
            );
            let private = async {
                private.await;
                let _ = stop_tx.send(true);
                Ok::<(), String>(())
            };
            let (public, private) = tokio::join!(public, private);
            public.and(private)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ctms_server: {message}");
            ExitCode::FAILURE
        }
    }
}
