//! A gRPC server instrumented with tower-prometheus: tonic-health's
//! `grpc.health.v1.Health`, with the service `ctms.Contacts` serving.
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

use std::process::ExitCode;

use http::Method;
use prometheus::Registry;
use tokio::net::TcpListener;
use tonic::transport::{server::TcpIncoming, Server};
use tonic_health::ServingStatus;
use tower_prometheus::{MetricsExporter, RecordingPoint, RequestMetricsLayer, Route};

async fn run() -> Result<(), String> {
    let grpc_addr = env("GRPC_ADDR", "127.0.0.1:50051")?;
    let metrics_addr = env("METRICS_ADDR", "127.0.0.1:9464")?;

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

    let grpc = bind("GRPC_ADDR", &grpc_addr).await?;
    let metrics = bind("METRICS_ADDR", &metrics_addr).await?;
    for listener in [&grpc, &metrics] {
        let addr = listener
            .local_addr()
            .map_err(|err| format!("cannot read a bound address: {err}"))?;
        println!("listening on http://{addr}");
    }

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
            eprintln!("grpc_health: {message}");
            ExitCode::FAILURE
        }
    }
}
