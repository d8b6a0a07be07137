//! The steady-state hot path allocates nothing: counted through a global
//! allocator, per thread, so that other tests' threads do not interfere.

#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    convert::Infallible,
    future::{ready, Future, Ready},
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Wake, Waker},
};

use http::{Method, Request, Response};
use prometheus::Registry;
use tower::{Layer, Service};
use tower_prometheus::{ClientId, ClientIds, Profile, RequestMetricsLayer, Route, TraceId};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a const-initialised thread local, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Answers at once, with the client id in the response when `client` is set.
#[derive(Clone)]
struct Inner {
    client: Option<ClientId>,
}

impl Service<Request<()>> for Inner {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let mut response = Response::new(String::new());
        if let Some(client) = &self.client {
            response.extensions_mut().insert(client.clone());
        }
        ready(Ok(response))
    }
}

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// Allocations made by `requests` requests through `service`, not counting
/// the building of the requests themselves.
fn allocations_for<S>(service: &mut S, requests: Vec<Request<()>>) -> u64
where
    S: Service<Request<()>, Error = Infallible>,
{
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    let mut responses = Vec::with_capacity(requests.len());
    let before = allocations();
    for request in requests {
        let _ = service.poll_ready(&mut cx);
        let mut future = pin!(service.call(request));
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => responses.push(response),
            _ => panic!("the inner service answers at once"),
        }
    }
    let after = allocations();
    drop(responses);
    after - before
}

fn requests(n: usize, path: &str, client_header: bool) -> Vec<Request<()>> {
    (0..n)
        .map(|_| {
            let mut builder = Request::builder().method(Method::GET).uri(path);
            if client_header {
                builder = builder.header("x-client-id", "test_client");
            }
            builder.body(()).unwrap()
        })
        .collect()
}

#[test]
fn steady_state_requests_allocate_nothing_beyond_the_inner_service() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(
            Route::new("/ctms/{email_id}")
                .methods([Method::GET])
                .statuses([200])
                .with_client_series(),
        )
        .client_ids(
            ClientIds::from_request(|headers| headers.get("x-client-id")?.to_str().ok())
                .known(["test_client"]),
        )
        .build(&registry)
        .unwrap();
    let path = "/ctms/6f1c2a7e-3b4d-4c5e-9f60-718293a4b5c6";
    let cases = [
        (
            "client id in the response",
            Some(ClientId::from_static("test_client")),
            false,
        ),
        ("client id from a header", None, true),
        ("no client id", None, false),
    ];
    for (case, client, header) in cases {
        let inner = Inner { client };
        let mut bare = inner.clone();
        let mut layered = layer.layer(inner);
        // The first request of a series creates its cells.
        allocations_for(&mut layered, requests(1, path, header));

        let bare_allocations = allocations_for(&mut bare, requests(100, path, header));
        let layered_allocations = allocations_for(&mut layered, requests(100, path, header));
        assert_eq!(layered_allocations, bare_allocations, "{case}");
    }
    let text = tower_prometheus::MetricsExporter::new(registry)
        .render()
        .unwrap();
    assert!(text.contains(
        r#"ctms_api_requests_total{client_id="test_client",method="GET",path_template="/ctms/{email_id}",status_code_family="2xx"} 202"#
    ), "{text}");
}

#[test]
fn unmatched_paths_allocate_nothing() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/ctms/{email_id}"))
        .build(&registry)
        .unwrap();
    let inner = Inner { client: None };
    let mut bare = inner.clone();
    let mut layered = layer.layer(inner);
    let bare_allocations = allocations_for(&mut bare, requests(100, "/nope", false));
    let layered_allocations = allocations_for(&mut layered, requests(100, "/nope", false));
    assert_eq!(layered_allocations, bare_allocations);
}

/// Requests like [`requests`], each with a W3C `traceparent`.
fn traced_requests(n: usize, path: &str) -> Vec<Request<()>> {
    (0..n)
        .map(|_| {
            Request::builder()
                .method(Method::GET)
                .uri(path)
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .body(())
                .unwrap()
        })
        .collect()
}

#[test]
fn exemplars_native_histograms_and_the_otel_profile_allocate_nothing_once_warm() {
    let path = "/ctms/6f1c2a7e-3b4d-4c5e-9f60-718293a4b5c6";
    for profile in [Profile::Ctms, Profile::OpenTelemetry] {
        let registry = Registry::new();
        let layer = RequestMetricsLayer::builder()
            .profile(profile)
            .route(Route::new("/ctms/{email_id}"))
            .exemplars_from_request(TraceId::from_traceparent)
            .native_histograms(true)
            .build(&registry)
            .unwrap();
        let inner = Inner { client: None };
        let mut bare = inner.clone();
        let mut layered = layer.layer(inner);
        // The first request of a series creates its cells, exemplar slots
        // and native buckets.
        allocations_for(&mut layered, traced_requests(1, path));
        let bare_allocations = allocations_for(&mut bare, traced_requests(100, path));
        let layered_allocations = allocations_for(&mut layered, traced_requests(100, path));
        assert_eq!(layered_allocations, bare_allocations, "{profile:?}");
    }
}
