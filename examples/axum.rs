//! An axum app instrumented with tower-prometheus, templates taken from
//! axum itself: `GET /api/v1/users/{id}` from a router nested under
//! `/api/v1`, behind a bearer-token check, and `/metrics` on a listener of
//! its own.
//!
//! ```text
//! cargo run --example axum --features axum
//! curl -H 'Authorization: Bearer t-alice' http://127.0.0.1:3000/api/v1/users/42
//! curl http://127.0.0.1:9464/metrics
//! ```
//!
//! * `ADDR`: the app (default `127.0.0.1:3000`);
//! * `METRICS_ADDR`: `/metrics` (default `127.0.0.1:9464`);
//! * `METRICS_PROFILE`: `ctms` (default) or `otel`, for the OpenTelemetry
//!   HTTP server names (`http_server_request_duration_seconds`, …).
//!
//! Both listeners are announced on standard output as
//! `listening on http://ADDR`, the app first; port `0` picks a free port.
//!
//! The metrics layer is added last, so it is outermost: it sees the 401s of
//! the token check and the `ClientId` the check puts in the response, and,
//! added with `Router::layer`, it reads each request's template from
//! axum's `MatchedPath`, prefix included. No route is listed twice.

use std::process::ExitCode;

use axum::{
    extract::{Path, Request},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use prometheus::Registry;
use tokio::net::TcpListener;
use tower_prometheus::{ClientId, MetricsExporter, Profile, RequestMetricsLayer};

/// The one token this example knows, and its client.
const TOKENS: &[(&str, &str)] = &[("t-alice", "alice")];

/// Accepts `Authorization: Bearer <token>` for a known token, as its
/// client; answers 401 otherwise.
async fn bearer(mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(&(_, client)) = TOKENS.iter().find(|(known, _)| Some(*known) == token) else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
        )
            .into_response();
    };
    let client = ClientId::from_static(client);
    request.extensions_mut().insert(client.clone());
    let mut response = next.run(request).await;
    // In the response, where the metrics layer reads it.
    response.extensions_mut().insert(client);
    response
}

async fn user(Path(id): Path<String>) -> String {
    format!("{{\"id\":{id:?}}}\n")
}

async fn run() -> Result<(), String> {
    let addr = env("ADDR", "127.0.0.1:3000")?;
    let metrics_addr = env("METRICS_ADDR", "127.0.0.1:9464")?;
    let profile = match env("METRICS_PROFILE", "ctms")?.as_str() {
        "ctms" => Profile::Ctms,
        "otel" => Profile::OpenTelemetry,
        other => {
            return Err(format!(
                "METRICS_PROFILE must be ctms or otel, not {other:?}"
            ))
        }
    };

    // The metrics wiring: templates from axum, nothing registered.
    let registry = Registry::new();
    let metrics = RequestMetricsLayer::builder()
        .profile(profile)
        .templates_from_matched_path(true)
        .build(&registry)
        .map_err(|err| format!("cannot build the metrics layer: {err}"))?;

    let users = Router::new().route("/users/{id}", get(user));
    let app = Router::new()
        .nest("/api/v1", users)
        .layer(middleware::from_fn(bearer))
        .layer(metrics);
    let exporter = Router::new().route_service("/metrics", MetricsExporter::new(registry));

    let app_listener = bind("ADDR", &addr).await?;
    let metrics_listener = bind("METRICS_ADDR", &metrics_addr).await?;
    for listener in [&app_listener, &metrics_listener] {
        let bound = listener
            .local_addr()
            .map_err(|err| format!("cannot read a bound address: {err}"))?;
        println!("listening on http://{bound}");
    }
    let app = async {
        axum::serve(app_listener, app)
            .await
            .map_err(|err| format!("server error: {err}"))
    };
    let exporter = async {
        axum::serve(metrics_listener, exporter)
            .await
            .map_err(|err| format!("metrics server error: {err}"))
    };
    tokio::try_join!(app, exporter).map(|_| ())
}

fn env(name: &str, default: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(value) => Ok(value),
        Err(std::env::VarError::NotPresent) => Ok(default.to_owned()),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

async fn bind(name: &str, addr: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|err| format!("cannot listen on {name}={addr:?}: {err}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("axum: {message}");
            ExitCode::FAILURE
        }
    }
}
