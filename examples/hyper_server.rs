//! A plain hyper 1 server with a `tower::ServiceBuilder` stack in the
//! recommended order (the metrics layer outermost, then a timeout and a panic
//! catcher, so that it sees what they answer); run it with
//! `cargo run --example hyper_server`.
//!
//! ```text
//! cargo run --example hyper_server
//! curl http://127.0.0.1:3001/hello/world
//! curl http://127.0.0.1:9465/metrics
//! ```
//!
//! * `ADDR`: where the app listens (default `127.0.0.1:3001`);
//! * `METRICS_ADDR`: where `/metrics` is served (default `127.0.0.1:9465`).
//!
//! Both are announced as `listening on http://ADDR`, the app first; port `0`
//! picks a free port.
//!
//! Routes: `GET /hello/{name}`; `GET /slow`, which takes longer than the
//! one-second timeout and is answered 408 by it; `GET /panic`, whose panic
//! the catcher turns into a 500.
//!
//! # Dependencies
//!
//! An app needs these to build this file, the `serve` helper at its end
//! included (`common::` is the examples' shared fixture,
//! `examples/common/mod.rs`: settings from the environment, listeners, exit
//! code):
//!
//! ```toml
//! [dependencies]
//! http = "1"
//! hyper = "1"
//! hyper-util = { version = "0.1", features = ["server-auto", "service", "tokio"] }
//! prometheus = { version = "0.14", default-features = false }
//! tokio = { version = "1", features = ["macros", "net", "rt-multi-thread", "time"] }
//! tower = { version = "0.5", features = ["util"] }
//! tower-http = { version = "0.6", features = ["catch-panic", "timeout"] }
//! tower-prometheus = "0.1"
//! ```

#[path = "common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::process::ExitCode;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus::Registry;
use tokio::net::TcpListener;
use tower::{service_fn, Service, ServiceBuilder};
use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer};
use tower_prometheus::{MetricsExporter, RequestMetricsLayer, Route};

/// The application: answers by path.
async fn handle(request: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let path = request.uri().path();
    let mut response = Response::new(String::new());
    if let Some(name) = path.strip_prefix("/hello/") {
        *response.body_mut() = format!("hello, {name}\n");
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
    } else if path == "/panic" {
        panic!("the handler failed");
    } else {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    Ok(response)
}

async fn run() -> Result<(), String> {
    let registry = Registry::new();
    let metrics = RequestMetricsLayer::builder()
        .route(
            Route::new("/hello/{name}")
                .methods([Method::GET])
                .statuses([200]),
        )
        .route(Route::new("/slow").methods([Method::GET]).statuses([408]))
        .route(Route::new("/panic").methods([Method::GET]).statuses([500]))
        .build(&registry)
        .map_err(|err| format!("cannot build the metrics layer: {err}"))?;
    // Outermost first: the metrics layer sees the timeout's 408 and the
    // catcher's 500, each with its real status.
    let app = ServiceBuilder::new()
        .layer(metrics)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(1),
        ))
        .layer(CatchPanicLayer::new())
        .service(service_fn(handle));
    let exporter = MetricsExporter::new(registry);

    let [listener, metrics_listener] = common::listen([
        ("ADDR", "127.0.0.1:3001"),
        ("METRICS_ADDR", "127.0.0.1:9465"),
    ])
    .await?;
    tokio::spawn(serve(metrics_listener, exporter));
    serve(listener, app).await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    common::exit_code("hyper_server", run().await)
}

/// Serves `service` on every connection `listener` accepts.
async fn serve<S, B>(listener: TcpListener, service: S)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    while let Ok((stream, _)) = listener.accept().await {
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            // A client that goes away is not an error of the server's.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
