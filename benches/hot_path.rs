//! What the layer costs per request, against the bare service, in one run.
//!
//! `cargo bench --bench hot_path`. The inner service answers at once, so
//! the difference between `bare` and the other cases is the layer's cost.

use std::{
    convert::Infallible,
    future::Future,
    hint::black_box,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    thread,
    time::{Duration, Instant},
};

use criterion::{
    criterion_group, criterion_main, measurement::WallTime, BatchSize, BenchmarkGroup, Criterion,
};
use http::Request;
use prometheus::Registry;
use tower::{Layer, Service};
use tower_prometheus::{ClientId, RequestMetricsLayer};

#[path = "workload/mod.rs"]
mod workload;

use workload::{builder, Bare, NoWake, MATCHED, TEMPLATES, UNMATCHED};

fn layer(registry: &Registry) -> RequestMetricsLayer {
    builder().build(registry).expect("valid configuration")
}

fn request(path: &str, client_header: bool) -> Request<()> {
    let mut builder = Request::get(path);
    if client_header {
        builder = builder.header("x-client-id", "test_client");
    }
    builder.body(()).expect("valid request")
}

/// One request through `service`, polled to completion on this thread.
fn serve<S>(service: &mut S, request: Request<()>) -> S::Response
where
    S: Service<Request<()>, Error = Infallible>,
{
    thread_local! {
        // One waker per thread: no allocation per request in any case.
        static WAKER: Waker = Waker::from(Arc::new(NoWake));
    }
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        let _ = service.poll_ready(&mut cx);
        let mut future = pin!(service.call(request));
        loop {
            if let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) {
                return response;
            }
        }
    })
}

fn per_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("per_request");
    let registry = Registry::new();
    let layer = layer(&registry);
    let cases: [(&str, &str, bool, Option<ClientId>, bool); 6] = [
        ("bare", MATCHED, false, None, false),
        (
            "bare_with_client_extension",
            MATCHED,
            false,
            Some(ClientId::from_static("test_client")),
            false,
        ),
        ("matched_no_client", MATCHED, false, None, true),
        (
            "matched_client_in_response",
            MATCHED,
            false,
            Some(ClientId::from_static("test_client")),
            true,
        ),
        ("matched_client_from_header", MATCHED, true, None, true),
        ("unmatched", UNMATCHED, false, None, true),
    ];
    for (name, path, header, client, layered) in cases {
        let template = request(path, header);
        let bare = Bare { client };
        if layered {
            bench_service(&mut group, name, layer.layer(bare), &template);
        } else {
            bench_service(&mut group, name, bare, &template);
        }
    }
    group.finish();
}

/// Times one request through `service`; building the request is not timed.
fn bench_service<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut service: S,
    template: &Request<()>,
) where
    S: Service<Request<()>, Error = Infallible>,
{
    group.bench_function(name, |b| {
        b.iter_batched(
            || clone(template),
            |req| black_box(serve(&mut service, req)),
            BatchSize::SmallInput,
        )
    });
}

fn clone(request: &Request<()>) -> Request<()> {
    let mut copy = Request::new(());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

fn route_resolution(c: &mut Criterion) {
    let mut router = matchit::Router::new();
    for (id, template) in TEMPLATES.iter().enumerate() {
        router.insert(*template, id).expect("valid template");
    }
    c.bench_function("matchit_lookup", |b| {
        b.iter(|| black_box(router.at(black_box(MATCHED)).map(|m| *m.value).ok()))
    });
    c.bench_function("two_instant_reads", |b| {
        b.iter(|| black_box(Instant::now().elapsed()))
    });
    #[cfg(feature = "quanta")]
    c.bench_function("two_quanta_reads", |b| {
        b.iter(|| black_box(quanta::Instant::now().elapsed()))
    });
}

/// Requests per thread per second with one and two threads on one route:
/// per-thread shards should let two threads scale.
fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("threads_same_route");
    let registry = Registry::new();
    let layer = layer(&registry);
    for threads in [1usize, 2] {
        group.bench_function(format!("layer_{threads}"), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, || layer.layer(Bare { client: None }))
            })
        });
        group.bench_function(format!("bare_{threads}"), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, || Bare { client: None }))
        });
    }
    group.finish();
}

/// Wall time for `threads` threads to serve `iters` requests each, divided
/// by the thread count: the time per request the machine achieves.
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
                    black_box(serve(&mut service, clone(&template)));
                }
            });
        }
    });
    start.elapsed() / threads as u32
}

// criterion's macro generates a function without a doc comment.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, per_request, route_resolution, two_threads);
}
criterion_main!(group::benches);
