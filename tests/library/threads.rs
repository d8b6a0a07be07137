//! Counts stay exact whatever the threads do: more threads than owned
//! shards, threads that come and go (handing their shard on), and requests
//! that start on one thread and end on another. A thread that owns a shard
//! adds to it without locked instructions, so any mistake in who owns what
//! shows up here as lost counts.

use std::{
    convert::Infallible,
    future::{ready, Future, Ready},
    pin::pin,
    sync::{mpsc, Arc, Barrier},
    task::{Context, Poll},
    thread,
};

use http::{Request, Response};
use prometheus::Registry;
use tower::{Layer, Service};
use tower_prometheus::{
    Builder, ClientId, MetricsExporter, Profile, RequestMetrics, RequestMetricsLayer, Route,
};

use crate::support::{noop_waker, parse};

/// Answers at once with an empty body, its head set by `head`.
#[derive(Clone)]
struct Answer {
    head: fn(&mut Response<String>),
}

/// Names the client `alice`.
const ALICE: Answer = Answer {
    head: |response| {
        response.extensions_mut().insert(ClientId::new("alice"));
    },
};

/// Ends a gRPC call with `OK` in its head (trailers-only), so that it is
/// recorded as soon as it is answered.
const GRPC_OK: Answer = Answer {
    head: |response| {
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("0"));
    },
};

impl Service<Request<()>> for Answer {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let mut response = Response::new(String::new());
        (self.head)(&mut response);
        ready(Ok(response))
    }
}

fn poll_now<F: Future>(future: F) -> F::Output {
    let waker = noop_waker();
    match pin!(future).poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the service answers at once"),
    }
}

/// A service answering as `ALICE` through a layer with `shards` shards, and
/// the exporter of its registry.
fn sharded_service(shards: usize) -> (RequestMetrics<Answer>, MetricsExporter) {
    service_from(RequestMetricsLayer::builder().shards(shards))
}

/// A service answering as `ALICE` through the layer `builder` builds with
/// the template `/items/{id}`, and the exporter of its registry.
fn service_from(builder: Builder) -> (RequestMetrics<Answer>, MetricsExporter) {
    let registry = Registry::new();
    let layer = builder
        .route(Route::new("/items/{id}").with_client_series())
        .build(&registry)
        .unwrap();
    (layer.layer(ALICE), MetricsExporter::new(registry))
}

/// Serves `requests` requests on each of `threads` threads at once.
fn serve_at_once(service: &RequestMetrics<Answer>, threads: usize, requests: usize) {
    serve_these_at_once(service, threads, requests, item);
}

/// Serves `requests` requests made by `make` on each of `threads` threads
/// at once.
fn serve_these_at_once(
    service: &RequestMetrics<Answer>,
    threads: usize,
    requests: usize,
    make: fn() -> Request<()>,
) {
    let start = Arc::new(Barrier::new(threads));
    let threads: Vec<_> = (0..threads)
        .map(|_| {
            let (mut service, start) = (service.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for _ in 0..requests {
                    poll_now(service.call(make())).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

fn item() -> Request<()> {
    Request::get("/items/7").body(()).unwrap()
}

/// Serves one request for `/items/7`.
fn serve_item(service: &mut RequestMetrics<Answer>) {
    poll_now(service.call(item())).unwrap();
}

/// The request, histogram and client counts, which must agree.
fn counts(exporter: &MetricsExporter) -> (f64, f64, f64) {
    let exposition = parse(&exporter.render().unwrap());
    (
        exposition.sum("ctms_requests_total", &[("path_template", "/items/{id}")]),
        exposition.sum("ctms_requests_duration_seconds_count", &[]),
        exposition.sum("ctms_api_requests_total", &[("client_id", "alice")]),
    )
}

#[test]
fn threads_beyond_the_owned_shards_count_exactly() {
    // One owned shard: at most one thread writes it plainly (the first to
    // record, when no other test's thread holds lease 0), the others
    // share the rest.
    const THREADS: usize = 8;
    const REQUESTS: usize = 5_000;
    let (service, exporter) = sharded_service(1);
    serve_at_once(&service, THREADS, REQUESTS);
    let total = (THREADS * REQUESTS) as f64;
    assert_eq!(counts(&exporter), (total, total, total));
}

#[test]
fn per_code_and_native_histograms_count_exactly_beyond_the_owned_shards() {
    // The OpenTelemetry profile keeps a histogram per status code, with
    // its native buckets here: written the same way as the CTMS cells.
    const THREADS: usize = 8;
    const REQUESTS: usize = 5_000;
    let (service, exporter) = service_from(
        RequestMetricsLayer::builder()
            .profile(Profile::OpenTelemetry)
            .native_histograms(true)
            .shards(1),
    );
    serve_at_once(&service, THREADS, REQUESTS);
    let exposition = parse(&exporter.render().unwrap());
    let total = (THREADS * REQUESTS) as f64;
    assert_eq!(
        exposition.sum("http_server_request_duration_seconds_count", &[]),
        total
    );
    assert_eq!(
        exposition.sum(
            "http_server_request_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        total
    );
}

#[test]
fn grpc_calls_count_exactly_beyond_the_owned_shards() {
    const THREADS: usize = 8;
    const REQUESTS: usize = 5_000;
    let registry = Registry::new();
    let service = RequestMetricsLayer::builder()
        .route(Route::new("/pkg.Svc/Call").grpc())
        .shards(1)
        .build(&registry)
        .unwrap()
        .layer(GRPC_OK);
    serve_these_at_once(&service, THREADS, REQUESTS, || {
        Request::post("/pkg.Svc/Call")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap()
    });
    let exposition = parse(&MetricsExporter::new(registry).render().unwrap());
    let total = (THREADS * REQUESTS) as f64;
    assert_eq!(
        exposition.sum("ctms_grpc_requests_total", &[("grpc_code", "OK")]),
        total
    );
    assert_eq!(
        exposition.sum("ctms_requests_total", &[("status_code", "200")]),
        total
    );
}

#[test]
fn threads_that_come_and_go_hand_their_shards_on_exactly() {
    // Waves of threads, each exiting before the next starts, while one
    // thread stays throughout and a scraper watches the total only grow:
    // a new owner that did not start from its predecessor's counts would
    // lose them, or make the total go back.
    const WAVES: usize = 20;
    const THREADS: usize = 3;
    const REQUESTS: usize = 500;
    // Shards to spare: other tests' threads hold leases too, and these
    // threads' must be below the count for the plain stores and the
    // hand-over to be what is tested.
    let (service, exporter) = sharded_service(64);
    let exporter = Arc::new(exporter);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let scraper = {
        let exporter = exporter.clone();
        thread::spawn(move || {
            let mut last = 0.0;
            let mut scrapes = 0;
            while stop_rx.try_recv().is_err() || scrapes == 0 {
                let (total, _, _) = counts(&exporter);
                assert!(total >= last, "the total went from {last} to {total}");
                last = total;
                scrapes += 1;
            }
        })
    };
    let stayer = {
        let mut service = service.clone();
        thread::spawn(move || {
            for _ in 0..WAVES * REQUESTS {
                serve_item(&mut service);
            }
        })
    };
    for _ in 0..WAVES {
        let wave: Vec<_> = (0..THREADS)
            .map(|_| {
                let mut service = service.clone();
                thread::spawn(move || {
                    for _ in 0..REQUESTS {
                        serve_item(&mut service);
                    }
                })
            })
            .collect();
        for thread in wave {
            thread.join().unwrap();
        }
    }
    stayer.join().unwrap();
    stop_tx.send(()).unwrap();
    scraper.join().unwrap();
    let total = ((WAVES * THREADS + WAVES) * REQUESTS) as f64;
    assert_eq!(counts(&exporter), (total, total, total));
}

/// The future of one request through the layer over [`Answer`].
type Pending = <RequestMetrics<Answer> as Service<Request<()>>>::Future;

/// One side of the hand-over: starts `requests` requests, sends each to
/// the other side and finishes one of its own; finishes whatever the other
/// side sends. Returns how many it finished for the other side.
fn side(
    mut service: RequestMetrics<Answer>,
    requests: usize,
    to_other: mpsc::Sender<Pending>,
    from_other: mpsc::Receiver<Pending>,
    start: Arc<Barrier>,
) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        start.wait();
        let mut finished = 0;
        for _ in 0..requests {
            to_other.send(service.call(item())).unwrap();
            serve_item(&mut service);
            while let Ok(future) = from_other.try_recv() {
                poll_now(future).unwrap();
                finished += 1;
            }
        }
        drop(to_other);
        for future in from_other {
            poll_now(future).unwrap();
            finished += 1;
        }
        finished
    })
}

#[test]
fn a_request_is_counted_on_the_thread_that_ends_it() {
    // Two threads start requests and hand their futures to each other to
    // finish, as a work-stealing runtime would, while both also finish
    // requests of their own: counting a request on the shard of the thread
    // that started it would race with that shard's owner.
    const REQUESTS: usize = 50_000;
    // Shards to spare, so that both threads own one (see above).
    let (service, exporter) = sharded_service(64);
    let (to_b, from_a) = mpsc::channel();
    let (to_a, from_b) = mpsc::channel();
    let start = Arc::new(Barrier::new(2));
    let a = side(service.clone(), REQUESTS, to_b, from_b, start.clone());
    let b = side(service, REQUESTS, to_a, from_a, start);
    let handed_over = a.join().unwrap() + b.join().unwrap();
    assert_eq!(handed_over, 2 * REQUESTS);
    let total = (4 * REQUESTS) as f64;
    assert_eq!(counts(&exporter), (total, total, total));
}
