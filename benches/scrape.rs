//! What a scrape costs: rendering this crate's families, against
//! `gather()` and `TextEncoder` on an equivalent registry of the prometheus
//! crate's own vectors, at about 1,000 and 10,000 series, in one run.
//!
//! `cargo bench --bench scrape`. A series here is one labelled child: a
//! counter, or a histogram (whose buckets, sum and count are its lines).

use std::{
    future::Future,
    hint::black_box,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Wake, Waker},
};

use criterion::{criterion_group, criterion_main, Criterion};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};
use tower::Service;
use tower_prometheus::{ClientIds, MetricsBody, MetricsExporter, RequestMetricsLayer, Route};

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];
const STATUSES: [u16; 5] = [200, 201, 400, 404, 500];
const CLIENTS: [&str; 2] = ["client_a", "client_b"];
const BUCKETS: [f64; 7] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// Per route: 5 methods × (5 status counters + 3 family histograms + 3
/// families × 2 clients) = 70 series.
const SERIES_PER_ROUTE: usize = METHODS.len() * (STATUSES.len() + 3 + 3 * CLIENTS.len());

fn template(route: usize) -> String {
    format!("/api/v1/resource{route}/{{id}}")
}

fn family(status: u16) -> &'static str {
    match status / 100 {
        2 => "2xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// This crate's families, every series pre-initialised.
fn ours(routes: usize) -> Registry {
    let registry = Registry::new();
    RequestMetricsLayer::builder()
        .routes((0..routes).map(|route| {
            Route::new(template(route))
                .methods(METHODS)
                .statuses(STATUSES)
                .with_client_series()
        }))
        .client_ids(ClientIds::new().known(CLIENTS))
        .build(&registry)
        .expect("valid configuration");
    registry
}

/// The same series in the prometheus crate's vectors.
fn theirs(routes: usize) -> Registry {
    let registry = Registry::new();
    let duration = HistogramVec::new(
        HistogramOpts::new("ctms_requests_duration_seconds", "Duration.").buckets(BUCKETS.into()),
        &["method", "path_template", "status_code_family"],
    )
    .expect("valid histogram");
    let total = IntCounterVec::new(
        Opts::new("ctms_requests_total", "Requests."),
        &[
            "method",
            "path_template",
            "status_code",
            "status_code_family",
        ],
    )
    .expect("valid counter");
    let api = IntCounterVec::new(
        Opts::new("ctms_api_requests_total", "API requests."),
        &["client_id", "method", "path_template", "status_code_family"],
    )
    .expect("valid counter");
    for route in 0..routes {
        let template = template(route);
        for method in METHODS {
            for status in STATUSES {
                let code = status.to_string();
                total.with_label_values(&[method.as_str(), &template, &code, family(status)]);
            }
            for family in ["2xx", "4xx", "5xx"] {
                duration.with_label_values(&[method.as_str(), &template, family]);
                for client in CLIENTS {
                    api.with_label_values(&[client, method.as_str(), &template, family]);
                }
            }
        }
    }
    let unmatched =
        IntCounter::new("ctms_requests_unmatched_total", "Unmatched.").expect("valid counter");
    registry.register(Box::new(duration)).expect("registered");
    registry.register(Box::new(total)).expect("registered");
    registry.register(Box::new(api)).expect("registered");
    registry.register(Box::new(unmatched)).expect("registered");
    registry
}

fn encode(registry: &Registry) -> Vec<u8> {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("encodes");
    buffer
}

/// Serves one scrape request; the exporter answers at once.
fn scrape(exporter: &mut MetricsExporter, accept_gzip: bool) -> Response<MetricsBody> {
    let mut request = Request::get("/metrics").body(()).expect("valid request");
    if accept_gzip {
        request
            .headers_mut()
            .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    }
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    let future = exporter.call(request);
    match pin!(future).poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        // A lone scrape renders at once.
        Poll::Pending => unreachable!("the exporter answers at once"),
    }
}

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

fn scrapes(c: &mut Criterion) {
    let mut group = c.benchmark_group("scrape");
    group.sample_size(20);
    for (label, routes) in [
        ("1k", 1_000 / SERIES_PER_ROUTE + 1),
        ("10k", 10_000 / SERIES_PER_ROUTE + 1),
    ] {
        let ours = ours(routes);
        let theirs = theirs(routes);
        let mut exporter = MetricsExporter::new(ours.clone());
        let text = exporter.render().expect("renders");
        let their_text = encode(&theirs);
        // Same series, same lines: only the help texts differ.
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            their_text
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
                .count(),
            "the two registries hold the same series"
        );
        let gzipped = scrape(&mut exporter, true);
        assert_eq!(gzipped.status(), StatusCode::OK);
        eprintln!(
            "scrape/{label}: {} series in {} routes, {} lines, {} bytes as text, {} gzipped",
            routes * SERIES_PER_ROUTE,
            routes,
            text.lines().filter(|l| !l.starts_with('#')).count(),
            text.len(),
            gzipped.body().as_bytes().len()
        );
        group.bench_function(format!("tower_prometheus_render/{label}"), |b| {
            b.iter(|| black_box(exporter.render().expect("renders")))
        });
        group.bench_function(format!("prometheus_gather_encode/{label}"), |b| {
            b.iter(|| black_box(encode(&theirs)))
        });
        group.bench_function(format!("tower_prometheus_gzip_response/{label}"), |b| {
            b.iter(|| black_box(scrape(&mut exporter, true)))
        });
    }
    // A layer that has served nothing, with many routes and shards: the
    // scrape walks one pointer per route.
    let idle = Registry::new();
    RequestMetricsLayer::builder()
        .routes((0..10_000).map(|route| Route::new(template(route))))
        .shards(64)
        .build(&idle)
        .expect("valid configuration");
    let idle = MetricsExporter::new(idle);
    group.bench_function("tower_prometheus_render/idle_10k_routes_64_shards", |b| {
        b.iter(|| black_box(idle.render().expect("renders")))
    });
    group.finish();
}

// criterion's macro generates a function without a doc comment.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, scrapes);
}
criterion_main!(group::benches);
