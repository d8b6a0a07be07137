//! A tonic gRPC server, tonic-health's `grpc.health.v1.Health` with the
//! service `ctms.Contacts` serving, behind the metrics layer; run it with
//! `cargo run --example grpc_health`.
//!
//! ```text
//! cargo run --example grpc_health
//! grpcurl -plaintext -d '{"service":"ctms.Contacts"}' 127.0.0.1:50051 grpc.health.v1.Health/Check
//! curl http://127.0.0.1:9464/metrics
//! ```
//!
//! * `GRPC_ADDR`: where gRPC is served (default `127.0.0.1:50051`);
//! * `METRICS_ADDR`: where `/metrics` is served (default `127.0.0.1:9464`).
//!
//! Both are announced on standard output as `listening on http://ADDR`,
//! gRPC first; port `0` picks a free port.
//!
//! gRPC calls are recorded at the end of their response body with their
//! gRPC status: in `ctms_grpc_requests_total` with the code's name, and in
//! the CTMS families with its HTTP equivalent (`NOT_FOUND` is 404), so
//! that dashboards and 5xx alerts built for HTTP work unchanged. A `Watch`
//! stream is in flight while it is open and counted once, when it ends.
//!
//! # Dependencies
//!
//! An app needs these to build this file (`common::` is the examples'
//! shared fixture, `examples/common/mod.rs`: settings from the environment,
//! listeners, exit code); axum only serves `/metrics`:
//!
//! ```toml
//! [dependencies]
//! axum = "0.8"
//! http = "1"
//! prometheus = { version = "0.14", default-features = false }
//! tokio = { version = "1", features = ["macros", "net", "rt-multi-thread"] }
//! tonic = "0.14"
//! tonic-health = "0.14"
//! tower-prometheus = "0.1"
//! ```

#[path = "common/mod.rs"]
mod common;

use std::process::ExitCode;

use http::Method;
use prometheus::Registry;
use tonic::transport::{server::TcpIncoming, Server};
use tonic_health::ServingStatus;
use tower_prometheus::{MetricsExporter, RecordingPoint, RequestMetricsLayer, Route};

async fn run() -> Result<(), String> {
    // The metrics wiring: one route per gRPC method, the in-flight gauge,
    // requests timed to the end of their body.
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .routes(
            [
                "/grpc.health.v1.Health/Check",
                "/grpc.health.v1.Health/Watch",
            ]
            .map(|method| Route::new(method).methods([Method::POST]).statuses([200])),
        )
        .in_flight(true)
        .recording_point(RecordingPoint::BodyEnd)
        .build(&registry)
        .map_err(|err| format!("cannot build the metrics layer: {err}"))?;

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("ctms.Contacts", ServingStatus::Serving)
        .await;

    let [grpc, metrics] = common::listen([
        ("GRPC_ADDR", "127.0.0.1:50051"),
        ("METRICS_ADDR", "127.0.0.1:9464"),
    ])
    .await?;

    let exporter = axum::Router::new().route_service("/metrics", MetricsExporter::new(registry));
    let metrics = async {
        axum::serve(metrics, exporter)
            .await
            .map_err(|err| format!("metrics server error: {err}"))
    };
    let grpc = async {
        Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(grpc))
            .await
            .map_err(|err| format!("gRPC server error: {err}"))
    };
    tokio::try_join!(grpc, metrics).map(|_| ())
}

#[tokio::main]
async fn main() -> ExitCode {
    common::exit_code("grpc_health", run().await)
}
