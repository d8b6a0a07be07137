//! A small, in-memory CTMS-like contact API instrumented with `tower-prometheus`.
//!
//! Run it with:
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
//! * `CTMS_CLIENTS`: comma-separated `client_id:secret` pairs allowed to use the API
//!   routes through HTTP Basic authentication (default `test_client:test_secret`).
//!   A client id may contain any character except `:` and `,`.
//!
//! Every route is pre-registered with the metrics layer, so `/metrics` exposes all
//! series at zero before the first request. Contacts live in memory only and are lost
//! when the process stops (Ctrl-C or SIGTERM).

use std::collections::HashMap;
use std::net::SocketAddr;
mod log;
mod serve;

use std::process::ExitCode;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, get_service};
use axum::{Json, Router};
use base64::Engine as _;
use prometheus::Registry;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::util::Either;
use tower::Layer as _;
use tower_http::catch_panic::CatchPanicLayer;
use tower_prometheus::{
    BuildError, ClientId, MetricsExporter, RequestMetrics, RequestMetricsLayer, Route,
    DEFAULT_MAX_CLIENT_IDS, DEFAULT_MAX_CLIENT_ID_LEN,
};
use uuid::Uuid;

const DEFAULT_ADDR: &str = "127.0.0.1:8000";
const DEFAULT_CLIENTS: &str = "test_client:test_secret";
const DEFAULT_MAX_IN_FLIGHT: &str = "512";
const DEFAULT_HEADER_READ_TIMEOUT: &str = "10";
const DOCS_PAGE: &str = "<!doctype html>\n<html><head><title>CTMS</title></head><body>\
<h1>CTMS example</h1><p>Contact API: <code>/ctms</code>, <code>/ctms/{email_id}</code> \
(HTTP Basic). Metrics: <a href=\"./metrics\">/metrics</a>.</p></body></html>\n";

/// Credentials of the API clients, keyed by client id.
type Clients = HashMap<String, String>;

#[derive(Clone)]
struct AppState {
    clients: Arc<Clients>,
    contacts: Arc<RwLock<HashMap<Uuid, Contact>>>,
}

#[derive(Clone)]
struct Contact {
    email_id: Uuid,
    email: EmailFields,
}

impl Contact {
    fn to_json(&self) -> Value {
        let email_id = self.email_id.to_string();
        let mut email = json!(self.email);
        email["email_id"] = json!(email_id);
        json!({ "email_id": email_id, "email": email })
    }
}

/// Request body of POST, PUT and PATCH; unknown fields are ignored.
#[derive(Deserialize)]
struct ContactBody {
    email: Option<EmailFields>,
}

#[derive(Clone, Default, Deserialize, Serialize)]
struct EmailFields {
    primary_email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct SearchParams {
    primary_email: Option<String>,
    email_id: Option<String>,
}

/// An error answered as `{"detail": "..."}`.
type ApiError = (StatusCode, Json<Value>);

fn api_error(status: StatusCode, detail: impl std::fmt::Display) -> ApiError {
    (status, Json(json!({ "detail": detail.to_string() })))
}

fn unprocessable(detail: impl std::fmt::Display) -> ApiError {
    api_error(StatusCode::UNPROCESSABLE_ENTITY, detail)
}

fn not_found() -> ApiError {
    api_error(StatusCode::NOT_FOUND, "Unknown contact")
}

fn parse_clients(spec: &str) -> Result<Vec<(String, String)>, String> {
    let mut clients: Vec<(String, String)> = Vec::new();
    for (index, entry) in spec.split(',').enumerate() {
        let bad = |why: &str| format!("CTMS_CLIENTS entry #{}: {why}", index + 1);
        let (id, secret) = entry
            .split_once(':')
            .ok_or_else(|| bad("expected client_id:secret"))?;
        if id.is_empty() {
            return Err(bad("the client id is empty"));
        }
        if secret.is_empty() {
            return Err(bad("the secret is empty"));
        }
        if clients.iter().any(|(known, _)| known == id) {
            return Err(bad(&format!("client {id:?} is listed twice")));
        }
        clients.push((id.to_owned(), secret.to_owned()));
    }
    Ok(clients)
}

fn env_or_default(name: &str, default: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(value) => Ok(value),
        Err(std::env::VarError::NotPresent) => Ok(default.to_owned()),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

fn metrics_layer(
    registry: &Registry,
    clients: &[(String, String)],
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
    RequestMetricsLayer::builder()
        .namespace("ctms")
        .route(get_route("/", &[307]))
        .routes(plain.map(|template| get_route(template, &[200])))
        .route(get_route("/__crash__", &[401, 500]).api())
        .route(
            Route::new("/ctms")
                .methods([Method::GET, Method::POST])
                .statuses(api_statuses)
                .api(),
        )
        .route(
            Route::new("/ctms/{email_id}")
                .methods([Method::GET, Method::PATCH, Method::PUT])
                .statuses(api_statuses)
                .api(),
        )
        .clients(clients.iter().map(|(id, _)| id.clone()))
        .max_client_ids(clients.len().max(DEFAULT_MAX_CLIENT_IDS))
        .max_client_id_len(longest_id.max(DEFAULT_MAX_CLIENT_ID_LEN))
        .build(registry)
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
}

/// The public routes. Authentication wraps the panic catcher, so the 500 of a
/// caught panic still carries the `ClientId`; it also runs before axum's 405 for
/// the API paths. Around each route, the in-flight limit, then the request log
/// (which sees the time spent waiting for a slot). The metrics layer goes around
/// the whole router ([`Config::with_metrics`]).
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

/// A router with the metrics layer around it (unless it is switched off).
type Instrumented = Either<RequestMetrics<Router>, Router>;

impl Config {
    /// Wraps the whole router in the metrics layer: one tower service, which
    /// is cheaper than `Router::layer` (that boxes and clones each route's
    /// service on every request) and sees every answer, 404s and 405s included.
    fn with_metrics(&self, router: Router) -> Instrumented {
        match &self.layer {
            Some(layer) => Either::Left(layer.layer(router)),
            None => Either::Right(router),
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

/// Returns the configured client id whose credentials match the `Authorization` header.
fn authenticate(clients: &Clients, request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let (known_id, expected) = clients.get_key_value(id)?;
    constant_time_eq(secret.as_bytes(), expected.as_bytes()).then(|| known_id.clone())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_client(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(client_id) = authenticate(&state.clients, &request) else {
        let error = api_error(StatusCode::UNAUTHORIZED, "Invalid or missing credentials");
        let challenge = [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"))];
        return (challenge, error).into_response();
    };
    let mut response = next.run(request).await;
    response.extensions_mut().insert(ClientId::new(client_id));
    response
}

async fn version() -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "source": env!("CARGO_PKG_REPOSITORY"),
        "commit": option_env!("GIT_COMMIT").unwrap_or("unknown"),
    }))
}

async fn heartbeat(State(state): State<AppState>) -> Json<Value> {
    let contacts = state.read().len();
    Json(json!({ "status": "ok", "storage": "memory", "contacts": contacts }))
}

async fn crash() -> StatusCode {
    panic!("crash requested through /__crash__");
}

impl AppState {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, Contact>> {
        self.contacts.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, Contact>> {
        self.contacts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn parse_email_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| unprocessable("email_id is not a valid UUID"))
}

fn path_email_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    path.map_err(|_| unprocessable("email_id is not a valid UUID"))
        .and_then(|Path(raw)| parse_email_id(&raw))
}

/// Decodes a JSON object body: a bad body is answered 422 (413 if too large).
fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<ContactBody, ApiError> {
    let bytes = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => api_error(rejection.status(), "Body too large"),
        _ => unprocessable("Unreadable body"),
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|err| unprocessable(format!("Invalid JSON: {err}")))?;
    if !value.is_object() {
        return Err(unprocessable("Expected a JSON object"));
    }
    serde_json::from_value(value).map_err(unprocessable)
}

/// The `email` of a POST or PUT body, which needs a non-empty `primary_email`.
fn full_email(body: Result<Bytes, BytesRejection>) -> Result<EmailFields, ApiError> {
    let email = parse_body(body)?.email.unwrap_or_default();
    match &email.primary_email {
        Some(primary) if !primary.trim().is_empty() => Ok(email),
        _ => Err(unprocessable("Missing field: email.primary_email")),
    }
}

async fn create_contact(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let contact = Contact {
        email_id: Uuid::new_v4(),
        email: full_email(body)?,
    };
    let response = contact.to_json();
    state.write().insert(contact.email_id, contact);
    Ok((StatusCode::CREATED, Json(response)))
}

async fn search_contacts(
    State(state): State<AppState>,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let Query(params) = query.map_err(|err| api_error(StatusCode::BAD_REQUEST, err.body_text()))?;
    let primary_email = params.primary_email.filter(|email| !email.is_empty());
    let email_id = params.email_id.filter(|id| !id.is_empty());
    if primary_email.is_none() && email_id.is_none() {
        let detail = "No identifiers provided: use primary_email or email_id";
        return Err(api_error(StatusCode::BAD_REQUEST, detail));
    }
    let email_id = email_id.as_deref().map(parse_email_id).transpose()?;
    let matches = |contact: &&Contact| {
        email_id.map_or(true, |id| id == contact.email_id)
            && primary_email.as_deref().map_or(true, |wanted| {
                let primary = contact.email.primary_email.as_deref().unwrap_or_default();
                wanted.eq_ignore_ascii_case(primary)
            })
    };
    let found = state
        .read()
        .values()
        .filter(matches)
        .map(Contact::to_json)
        .collect();
    Ok(Json(found))
}

async fn get_contact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let email_id = path_email_id(path)?;
    let contacts = state.read();
    let contact = contacts.get(&email_id).ok_or_else(not_found)?;
    Ok(Json(contact.to_json()))
}

/// PATCH merges the given fields into the contact.
async fn update_contact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let email_id = path_email_id(path)?;
    let patch = parse_body(body)?.email.unwrap_or_default();
    if patch
        .primary_email
        .as_deref()
        .is_some_and(|e| e.trim().is_empty())
    {
        return Err(unprocessable("email.primary_email must not be empty"));
    }
    let mut contacts = state.write();
    let contact = contacts.get_mut(&email_id).ok_or_else(not_found)?;
    for (field, value) in [
        (&mut contact.email.primary_email, patch.primary_email),
        (&mut contact.email.first_name, patch.first_name),
        (&mut contact.email.last_name, patch.last_name),
    ] {
        if value.is_some() {
            *field = value;
        }
    }
    Ok(Json(contact.to_json()))
}

/// PUT replaces the contact's fields.
async fn replace_contact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let email_id = path_email_id(path)?;
    let email = full_email(body)?;
    let mut contacts = state.write();
    let contact = contacts.get_mut(&email_id).ok_or_else(not_found)?;
    contact.email = email;
    Ok(Json(contact.to_json()))
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

/// A positive duration in seconds (`0.5`, `10`).
fn env_seconds(name: &str, default: &str) -> Result<Duration, String> {
    let value = env_or_default(name, default)?;
    match value.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 86_400.0 => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(format!(
            "{name} must be a number of seconds between 0 and 86400, not {value:?}"
        )),
    }
}

fn env_flag(name: &str, default: bool) -> Result<bool, String> {
    match env_or_default(name, if default { "true" } else { "false" })?
        .to_ascii_lowercase()
        .as_str()
    {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(format!("{name} must be true or false, not {other:?}")),
    }
}

async fn bind(name: &str, addr: &str) -> Result<(tokio::net::TcpListener, SocketAddr), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| format!("cannot listen on {name}={addr:?}: {err}"))?;
    let bound = listener
        .local_addr()
        .map_err(|err| format!("cannot read the address bound for {name}: {err}"))?;
    Ok((listener, bound))
}

async fn run() -> Result<(), String> {
    let addr = env_or_default("CTMS_ADDR", DEFAULT_ADDR)?;
    let metrics_addr = match std::env::var("CTMS_METRICS_ADDR") {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err("CTMS_METRICS_ADDR is not valid UTF-8".to_owned())
        }
    };
    let clients = parse_clients(&env_or_default("CTMS_CLIENTS", DEFAULT_CLIENTS)?)?;
    let max_in_flight = env_or_default("CTMS_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)?;
    let max_in_flight = match max_in_flight.parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => {
            return Err(format!(
                "CTMS_MAX_IN_FLIGHT must be a positive integer, not {max_in_flight:?}"
            ))
        }
    };
    let header_read_timeout = env_seconds("CTMS_HEADER_READ_TIMEOUT", DEFAULT_HEADER_READ_TIMEOUT)?;
    let logger = log::Logger::new(env_flag("CTMS_USE_MOZLOG", true)?);
    let registry = Registry::new();
    let layer = metrics_layer(&registry, &clients)
        .map_err(|err| format!("cannot build the metrics layer: {err}"))?;
    let state = AppState {
        clients: Arc::new(clients.into_iter().collect()),
        contacts: Arc::default(),
    };
    let config = Config {
        logger: logger.clone(),
        layer: env_flag("CTMS_RECORD_METRICS", true)?.then_some(layer),
        log_requests: env_flag("CTMS_LOG_REQUESTS", true)?,
        public_metrics: metrics_addr.is_none().then(|| registry.clone()),
        max_in_flight,
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
    let public = serve::serve(
        listener,
        config.with_metrics(app(state, &config)),
        header_read_timeout,
        stopped(stop_rx.clone()),
    );
    let public = async {
        public.await;
        let _ = stop_tx.send(true);
        Ok::<(), String>(())
    };
    match private {
        None => public.await,
        Some((metrics_listener, _)) => {
            let private = serve::serve(
                metrics_listener,
                config.with_metrics(metrics_app(registry, &config)),
                header_read_timeout,
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
