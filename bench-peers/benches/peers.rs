//! What recording CTMS request metrics costs per request with
//! tower-prometheus and with its peers, each group against its own bare
//! baseline measured in the same run.
//!
//! - `tower`: layers over a tower service that answers at once;
//! - `threads`: one and two threads sending requests to their own clones of
//!   the same layered service;
//! - `axum`: an axum router with and without tower-prometheus or
//!   axum-prometheus, and with a layer that does nothing.
//!
//! Before a group is measured, every implementation in it serves a request
//! and must show the expected series with a count of 1, or the bench panics.
//!
//! `cargo bench`, then `python3 ../scripts/bench_chart.py`.

use std::{
    convert::Infallible,
    future::{poll_fn, Future},
    hint::black_box,
    pin::{pin, Pin},
    sync::Arc,
    task::{Context, Poll, Waker},
    thread,
    time::{Duration, Instant},
};

use axum::{
    body::{Body, HttpBody},
    http::StatusCode,
    routing::get,
    Router,
};
use axum_prometheus::{metrics_exporter_prometheus::PrometheusHandle, PrometheusMetricLayer};
use bench_peers::workload::{Bare, NoWake, MATCHED, TEMPLATES, UNMATCHED};
use bench_peers::{CachedHandlesLayer, FlatTableLayer, NaiveLayer};
use criterion::{
    criterion_group, criterion_main, measurement::WallTime, BatchSize, BenchmarkGroup, BenchmarkId,
    Criterion,
};
use http::{HeaderName, Method, Request, Response};
use prometheus::{Registry, TextEncoder};
use tower::{layer::util::Identity, Layer, Service};
use tower_prometheus::{ClientIds, RequestMetricsLayer, Route};

const CLIENT_HEADER: &str = "x-client-id";
/// Parsed once, as the crate's docs advise and as the hand-written layers do.
static CLIENT_HEADER_NAME: HeaderName = HeaderName::from_static(CLIENT_HEADER);
const CLIENT: &str = "test_client";

/// The series every CTMS implementation shows after one matched GET from
/// the client (and any number of unmatched requests).
const CTMS_SERIES: [&str; 3] = [
    r#"ctms_requests_total{method="GET",path_template="/ctms/{email_id}",status_code="200",status_code_family="2xx"} 1"#,
    r#"ctms_requests_duration_seconds_count{method="GET",path_template="/ctms/{email_id}",status_code_family="2xx"} 1"#,
    r#"ctms_api_requests_total{client_id="test_client",method="GET",path_template="/ctms/{email_id}",status_code_family="2xx"} 1"#,
];

/// The cases each layer is measured in, after the bare service's
/// `matched` and `unmatched`: name, path, whether the client header is set.
const CASES: [(&str, &str, bool); 3] = [
    ("matched_client", MATCHED, true),
    ("matched_no_client", MATCHED, false),
    ("unmatched", UNMATCHED, false),
];

fn tower_prometheus(registry: &Registry) -> RequestMetricsLayer {
    RequestMetricsLayer::builder()
        .routes(TEMPLATES.iter().map(|template| {
            Route::new(*template)
                .methods([Method::GET, Method::POST])
                .statuses([200, 404])
                .with_client_series()
        }))
        .client_ids(ClientIds::from_request(|headers| headers.get(&CLIENT_HEADER_NAME)?.to_str().ok()).known([CLIENT]))
        .build(registry)
        .expect("valid tower-prometheus configuration")
}

fn cached_handles(registry: &Registry) -> CachedHandlesLayer {
    CachedHandlesLayer::new(registry, TEMPLATES, HeaderName::from_static(CLIENT_HEADER))
        .expect("valid cached_handles configuration")
}

fn flat_table(registry: &Registry) -> FlatTableLayer {
    FlatTableLayer::new(registry, TEMPLATES, HeaderName::from_static(CLIENT_HEADER))
        .expect("valid templates")
}

fn naive(registry: &Registry) -> NaiveLayer {
    NaiveLayer::new(registry, TEMPLATES, HeaderName::from_static(CLIENT_HEADER))
        .expect("valid naive configuration")
}

fn request(path: &str, client: bool) -> Request<()> {
    let mut builder = Request::get(path);
    if client {
        builder = builder.header(CLIENT_HEADER, CLIENT);
    }
    builder.body(()).expect("valid request")
}

/// A copy of `template` with the body `body`.
fn copy<B>(template: &Request<()>, body: B) -> Request<B> {
    let mut request = Request::new(body);
    *request.method_mut() = template.method().clone();
    *request.uri_mut() = template.uri().clone();
    *request.headers_mut() = template.headers().clone();
    request
}

thread_local! {
    static NO_WAKE: Waker = Waker::from(Arc::new(NoWake));
}

/// Polls `future` on this thread until it is ready.
fn poll_to_end<F: Future>(future: F) -> F::Output {
    NO_WAKE.with(|waker| {
        let mut cx = Context::from_waker(waker);
        let mut future = pin!(future);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
    })
}

/// One request through `service`, polled to completion on this thread.
fn serve<S, B>(service: &mut S, request: Request<B>) -> S::Response
where
    S: Service<Request<B>, Error = Infallible>,
{
    let Ok(()) = poll_to_end(poll_fn(|cx| service.poll_ready(cx)));
    let Ok(response) = poll_to_end(service.call(request));
    response
}

/// One request through an axum `service`, then its body, as a server
/// would: read to the end unless it says it is empty, then dropped.
fn serve_axum<S, B>(service: &mut S, request: Request<Body>) -> StatusCode
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
    B: HttpBody + Unpin,
{
    let response = serve(service, request);
    let status = response.status();
    let mut body = response.into_body();
    if !body.is_end_stream() {
        while poll_to_end(poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))).is_some() {}
    }
    status
}

fn render(registry: &Registry) -> String {
    TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("text encoding")
}

/// Panics unless every line of `expected` is a line of `text`.
fn assert_series(name: &str, text: &str, expected: &[&str]) {
    for line in expected {
        assert!(
            text.lines().any(|l| l == *line),
            "{name} did not record `{line}`:\n{text}"
        );
    }
}

/// A CTMS implementation must record one matched request from the client
/// exactly once and no unmatched path.
fn assert_ctms(name: &str, text: &str) {
    assert_series(name, text, &CTMS_SERIES);
    assert!(
        !text.contains(UNMATCHED),
        "{name} recorded the unmatched path:\n{text}"
    );
}

/// Builds a layer with `make` on a fresh registry and checks it records:
/// one matched request from the client, one unmatched request.
fn checked<L>(name: &str, make: fn(&Registry) -> L) -> L
where
    L: Layer<Bare>,
    L::Service: Service<Request<()>, Error = Infallible>,
{
    let registry = Registry::new();
    let layer = make(&registry);
    let mut service = layer.layer(Bare);
    serve(&mut service, request(MATCHED, true));
    serve(&mut service, request(UNMATCHED, true));
    assert_ctms(name, &render(&registry));
    layer
}

/// Times one request through `service`; copying the request is not timed.
fn bench<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    mut service: S,
    template: &Request<()>,
) where
    S: Service<Request<()>, Error = Infallible>,
{
    group.bench_function(id, |b| {
        b.iter_batched(
            || copy(template, ()),
            |request| black_box(serve(&mut service, request)),
            BatchSize::SmallInput,
        )
    });
}

fn bench_cases<L>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, layer: &L)
where
    L: Layer<Bare>,
    L::Service: Service<Request<()>, Error = Infallible>,
{
    for (case, path, client) in CASES {
        let template = request(path, client);
        bench(
            group,
            BenchmarkId::new(name, case),
            layer.layer(Bare),
            &template,
        );
    }
}

fn tower_group(c: &mut Criterion) {
    let ours = checked("tower_prometheus", tower_prometheus);
    let cached = checked("cached_handles", cached_handles);
    let flat = checked("flat_table", flat_table);
    let naive = checked("naive", naive);

    let mut group = c.benchmark_group("tower");
    for (case, path) in [("matched", MATCHED), ("unmatched", UNMATCHED)] {
        let template = request(path, false);
        bench(&mut group, BenchmarkId::new("bare", case), Bare, &template);
    }
    bench_cases(&mut group, "tower_prometheus", &ours);
    bench_cases(&mut group, "flat_table", &flat);
    bench_cases(&mut group, "cached_handles", &cached);
    bench_cases(&mut group, "naive", &naive);
    group.finish();
}

/// Wall time for `threads` threads to serve `iters` matched requests each,
/// each to its own service from `make`, divided by the thread count.
fn run_threads<S, F>(threads: usize, iters: u64, make: F) -> Duration
where
    F: Fn() -> S,
    S: Service<Request<()>, Error = Infallible> + Send,
{
    let services: Vec<S> = (0..threads).map(|_| make()).collect();
    let start = Instant::now();
    thread::scope(|scope| {
        for mut service in services {
            scope.spawn(move || {
                let template = request(MATCHED, false);
                for _ in 0..iters {
                    black_box(serve(&mut service, copy(&template, ())));
                }
            });
        }
    });
    start.elapsed() / threads as u32
}

fn threads_group(c: &mut Criterion) {
    let ours = checked("tower_prometheus", tower_prometheus);
    let cached = checked("cached_handles", cached_handles);
    let flat = checked("flat_table", flat_table);

    let mut group = c.benchmark_group("threads");
    for threads in [1usize, 2] {
        group.bench_function(BenchmarkId::new("bare", threads), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, || Bare))
        });
    }
    for threads in [1usize, 2] {
        group.bench_function(BenchmarkId::new("tower_prometheus", threads), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, || ours.layer(Bare)))
        });
    }
    for threads in [1usize, 2] {
        group.bench_function(BenchmarkId::new("flat_table", threads), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, || flat.layer(Bare)))
        });
    }
    for threads in [1usize, 2] {
        group.bench_function(BenchmarkId::new("cached_handles", threads), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, || cached.layer(Bare)))
        });
    }
    group.finish();
}

/// The twelve routes, each answering 200 at once.
fn app() -> Router {
    TEMPLATES.iter().fold(Router::new(), |router, template| {
        router.route(template, get(|| async { StatusCode::OK }))
    })
}

/// Times one request and its response body through `router`; copying the
/// request is not timed. With a `handle`, runs axum-prometheus's upkeep
/// every 1024 requests, also untimed.
fn bench_axum<S, B>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    mut router: S,
    template: &Request<()>,
    handle: Option<&PrometheusHandle>,
) where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
    B: HttpBody + Unpin,
{
    let mut copies = 0u32;
    group.bench_function(id, |b| {
        b.iter_batched(
            || {
                copies = copies.wrapping_add(1);
                if let (Some(handle), 0) = (handle, copies % 1024) {
                    handle.run_upkeep();
                }
                copy(template, Body::empty())
            },
            |request| black_box(serve_axum(&mut router, request)),
            BatchSize::SmallInput,
        )
    });
}

fn axum_group(c: &mut Criterion) {
    let bare = app();
    {
        let mut router = bare.clone();
        assert_eq!(
            serve_axum(&mut router, copy(&request(MATCHED, true), Body::empty())),
            StatusCode::OK
        );
        assert_eq!(
            serve_axum(&mut router, copy(&request(UNMATCHED, true), Body::empty())),
            StatusCode::NOT_FOUND
        );
    }

    let registry = Registry::new();
    let ours = app().layer(tower_prometheus(&registry));
    {
        let mut router = ours.clone();
        serve_axum(&mut router, copy(&request(MATCHED, true), Body::empty()));
        serve_axum(&mut router, copy(&request(UNMATCHED, true), Body::empty()));
        assert_ctms("tower_prometheus in axum", &render(&registry));
    }

    // The same layer around the whole router, as one tower service: no
    // per-route boxing by `Router::layer`.
    let outer_registry = Registry::new();
    let around = tower_prometheus(&outer_registry).layer(app());
    {
        let mut service = around.clone();
        serve_axum(&mut service, copy(&request(MATCHED, true), Body::empty()));
        serve_axum(&mut service, copy(&request(UNMATCHED, true), Body::empty()));
        assert_ctms("tower_prometheus around axum", &render(&outer_registry));
    }

    // axum-prometheus spawns its upkeep task on the current tokio runtime
    // when the recorder is built. This runtime is entered, never driven: the
    // requests below need no runtime, and `bench_axum` runs the upkeep.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let _guard = runtime.enter();
    let (layer, handle) = PrometheusMetricLayer::pair();
    let theirs = app().layer(layer);
    {
        let mut router = theirs.clone();
        serve_axum(&mut router, copy(&request(MATCHED, false), Body::empty()));
        serve_axum(&mut router, copy(&request(UNMATCHED, false), Body::empty()));
        assert_series(
            "axum_prometheus",
            &handle.render(),
            &[
                r#"axum_http_requests_total{method="GET",status="200",endpoint="/ctms/{email_id}"} 1"#,
                r#"axum_http_requests_duration_seconds_count{method="GET",status="200",endpoint="/ctms/{email_id}"} 1"#,
                r#"axum_http_requests_total{method="GET",status="404",endpoint="/nothing/here"} 1"#,
            ],
        );
    }

    let mut group = c.benchmark_group("axum");
    for (case, path) in [("matched", MATCHED), ("unmatched", UNMATCHED)] {
        let template = request(path, false);
        let id = BenchmarkId::new("bare", case);
        bench_axum(&mut group, id, bare.clone(), &template, None);
    }
    // What axum itself adds per request for any `Router::layer`.
    let noop = app().layer(Identity::new());
    for (case, path, client) in &CASES[1..] {
        let template = request(path, *client);
        let id = BenchmarkId::new("noop_layer", case);
        bench_axum(&mut group, id, noop.clone(), &template, None);
    }
    for (case, path, client) in CASES {
        let template = request(path, client);
        let id = BenchmarkId::new("tower_prometheus", case);
        bench_axum(&mut group, id, ours.clone(), &template, None);
    }
    for (case, path, client) in CASES {
        let template = request(path, client);
        let id = BenchmarkId::new("tower_prometheus_around_router", case);
        bench_axum(&mut group, id, around.clone(), &template, None);
    }
    for (case, path, client) in &CASES[1..] {
        let template = request(path, *client);
        let id = BenchmarkId::new("axum_prometheus", case);
        bench_axum(&mut group, id, theirs.clone(), &template, Some(&handle));
    }
    group.finish();
}

criterion_group!(benches, tower_group, threads_group, axum_group);
criterion_main!(benches);
