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
//!   free port). Once the server accepts connections it prints
//!   `listening on http://ADDR` with the bound address.
//! * `CTMS_CLIENTS`: comma-separated `client_id:secret` pairs allowed to use the API
//!   routes through HTTP Basic authentication (default `test_client:test_secret`).
//!   A client id may contain any character except `:` and `,`.
//!
//! Every route is pre-registered with the metrics layer, so `/metrics` exposes all
//! series at zero before the first request. Contacts live in memory only and are lost
//! when the process stops (Ctrl-C or SIGTERM).

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, PoisonError, RwLock};

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
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::catch_panic::CatchPanicLayer;
use tower_prometheus::{
    BuildError, ClientId, MetricsExporter, RequestMetricsLayer, Route, DEFAULT_MAX_CLIENT_IDS,
    DEFAULT_MAX_CLIENT_ID_LEN,
};
use uuid::Uuid;

const DEFAULT_ADDR: &str = "127.0.0.1:8000";
const DEFAULT_CLIENTS: &str = "test_client:test_secret";
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
    primary_email: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

impl Contact {
    fn to_json(&self) -> Value {
        let email_id = self.email_id.to_string();
        json!({
            "email_id": email_id,
            "email": {
                "email_id": email_id,
                "primary_email": self.primary_email,
                "first_name": self.first_name,
                "last_name": self.last_name,
            },
        })
    }
}

/// Request body of POST, PUT and PATCH; unknown fields are ignored.
#[derive(Deserialize)]
struct ContactBody {
    email: Option<EmailFields>,
}

#[derive(Default, Deserialize)]
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
struct ApiError {
    status: StatusCode,
    detail: String,
}

impl ApiError {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Unknown contact")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "detail": self.detail }))).into_response()
    }
}

fn parse_clients(spec: &str) -> Result<Vec<(String, String)>, String> {
    let mut clients: Vec<(String, String)> = Vec::new();
    for (index, entry) in spec.split(',').enumerate() {
        let position = index + 1;
        let Some((id, secret)) = entry.split_once(':') else {
            return Err(format!(
                "CTMS_CLIENTS entry #{position} is not of the form client_id:secret"
            ));
        };
        if id.is_empty() {
            return Err(format!(
                "CTMS_CLIENTS entry #{position} has an empty client id"
            ));
        }
        if secret.is_empty() {
            return Err(format!("CTMS_CLIENTS client {id:?} has an empty secret"));
        }
        if clients.iter().any(|(known, _)| known == id) {
            return Err(format!("CTMS_CLIENTS lists client {id:?} twice"));
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

fn app(state: AppState, registry: Registry, layer: RequestMetricsLayer) -> Router {
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
    Router::new()
        .route("/", get(|| async { Redirect::temporary("./docs") }))
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
        .route("/__version__", get(version))
        .route("/__heartbeat__", get(heartbeat))
        .route("/__lbheartbeat__", get(|| async { StatusCode::OK }))
        .route("/metrics", get_service(MetricsExporter::new(registry)))
        .merge(api)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not Found") })
        .with_state(state)
        .layer(layer)
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
        let error = ApiError::new(StatusCode::UNAUTHORIZED, "Invalid or missing credentials");
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
    Uuid::parse_str(raw).map_err(|_| ApiError::unprocessable("email_id is not a valid UUID"))
}

fn path_email_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(raw) = path.map_err(|_| ApiError::unprocessable("email_id is not a valid UUID"))?;
    parse_email_id(&raw)
}

/// Decodes a JSON object body; every kind of bad body is answered 422 (413 if too large).
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(rejection.status(), "Body too large"),
        _ => ApiError::unprocessable("Unreadable body"),
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|err| ApiError::unprocessable(format!("Invalid JSON: {err}")))?;
    if !value.is_object() {
        return Err(ApiError::unprocessable("Expected a JSON object"));
    }
    serde_json::from_value(value).map_err(|err| ApiError::unprocessable(err.to_string()))
}

fn required_email(body: ContactBody) -> Result<EmailFields, ApiError> {
    let email = body
        .email
        .ok_or_else(|| ApiError::unprocessable("Missing field: email"))?;
    match &email.primary_email {
        Some(primary) if !primary.trim().is_empty() => Ok(email),
        _ => Err(ApiError::unprocessable(
            "Missing field: email.primary_email",
        )),
    }
}

async fn create_contact(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let email = required_email(parse_body(body)?)?;
    let contact = Contact {
        email_id: Uuid::new_v4(),
        primary_email: email.primary_email.unwrap_or_default(),
        first_name: email.first_name,
        last_name: email.last_name,
    };
    let response = contact.to_json();
    state.write().insert(contact.email_id, contact);
    Ok((StatusCode::CREATED, Json(response)))
}

async fn search_contacts(
    State(state): State<AppState>,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let Query(params) =
        query.map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, err.body_text()))?;
    let primary_email = params.primary_email.filter(|email| !email.is_empty());
    let email_id = params.email_id.filter(|id| !id.is_empty());
    if primary_email.is_none() && email_id.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "No identifiers provided, at least one is needed",
        ));
    }
    let email_id = email_id.as_deref().map(parse_email_id).transpose()?;
    let found = state
        .read()
        .values()
        .filter(|contact| email_id.map_or(true, |id| id == contact.email_id))
        .filter(|contact| {
            primary_email.as_deref().map_or(true, |email| {
                email.eq_ignore_ascii_case(&contact.primary_email)
            })
        })
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
    let contact = contacts.get(&email_id).ok_or_else(ApiError::not_found)?;
    Ok(Json(contact.to_json()))
}

async fn update_contact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let email_id = path_email_id(path)?;
    let patch: ContactBody = parse_body(body)?;
    let patch = patch.email.unwrap_or_default();
    if patch
        .primary_email
        .as_deref()
        .is_some_and(|e| e.trim().is_empty())
    {
        return Err(ApiError::unprocessable(
            "email.primary_email must not be empty",
        ));
    }
    let mut contacts = state.write();
    let contact = contacts
        .get_mut(&email_id)
        .ok_or_else(ApiError::not_found)?;
    if let Some(primary_email) = patch.primary_email {
        contact.primary_email = primary_email;
    }
    if let Some(first_name) = patch.first_name {
        contact.first_name = Some(first_name);
    }
    if let Some(last_name) = patch.last_name {
        contact.last_name = Some(last_name);
    }
    Ok(Json(contact.to_json()))
}

async fn replace_contact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let email_id = path_email_id(path)?;
    let email = required_email(parse_body(body)?)?;
    let mut contacts = state.write();
    let contact = contacts
        .get_mut(&email_id)
        .ok_or_else(ApiError::not_found)?;
    *contact = Contact {
        email_id,
        primary_email: email.primary_email.unwrap_or_default(),
        first_name: email.first_name,
        last_name: email.last_name,
    };
    Ok(Json(contact.to_json()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

async fn run() -> Result<(), String> {
    let addr = env_or_default("CTMS_ADDR", DEFAULT_ADDR)?;
    let clients = parse_clients(&env_or_default("CTMS_CLIENTS", DEFAULT_CLIENTS)?)?;
    let registry = Registry::new();
    let layer = metrics_layer(&registry, &clients)
        .map_err(|err| format!("cannot build the metrics layer: {err}"))?;
    let state = AppState {
        clients: Arc::new(clients.into_iter().collect()),
        contacts: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind(addr.as_str())
        .await
        .map_err(|err| format!("cannot listen on {addr:?}: {err}"))?;
    let bound = listener
        .local_addr()
        .map_err(|err| format!("cannot read the bound address: {err}"))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{bound}")
        .and_then(|()| stdout.flush())
        .map_err(|err| format!("cannot write to stdout: {err}"))?;
    drop(stdout);
    axum::serve(listener, app(state, registry, layer))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|err| format!("server error: {err}"))
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
