//! A nested axum router behind a bearer-token check, its templates taken
//! from axum's `MatchedPath` (feature `axum`), `/metrics` on a listener of
//! its own, `METRICS_PROFILE=otel` for the OpenTelemetry names; run it with
//! `cargo run --example axum --features axum`.
//!
//! ```text
//! cargo run --example axum --features axum
//! curl -H 'Authorization: Bearer t-alice' http://127.0.0.1:3000/api/v1/users/42
//! curl http://127.0.0.1:9464/metrics
//! ```
//!
//! * `ADDR`: the app (default `127.0.0.1:3000`), `GET /api/v1/users/{id}`
//!   from a router nested under `/api/v1`;
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
//!
//! # Dependencies
//!
//! An app needs these to build this file (`common::` is the examples'
//! shared fixture, `examples/common/mod.rs`: settings from the environment,
//! listeners, exit code):
//!
//! ```toml
//! [dependencies]
//! axum = "0.8"
//! prometheus = { version = "0.14", default-features = false }
//! tokio = { version = "1", features = ["macros", "net", "rt-multi-thread"] }
//! tower-prometheus = { version = "0.1", features = ["axum"] }
//! ```

#[path = "common/mod.rs"]
mod common;

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
    let profile = match common::env("METRICS_PROFILE", "ctms")?.as_str() {
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

    let [app_listener, metrics_listener] = common::listen([
        ("ADDR", "127.0.0.1:3000"),
        ("METRICS_ADDR", "127.0.0.1:9464"),
    ])
    .await?;
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

#[tokio::main]
async fn main() -> ExitCode {
    common::exit_code("axum", run().await)
}
