//! When and how a request is recorded, seen from outside the layer: once,
//! with its status, as 500 when the inner service fails or panics, as 499
//! when it is dropped; which paths and methods are recorded; client ids
//! from the request and the response, their caps and their readers; and
//! readiness, which is the inner service's.

use std::{
    convert::Infallible,
    future::{pending, poll_fn, Future},
    panic::{catch_unwind, AssertUnwindSafe},
    task::{Context, Poll},
};

use http::{Method, Request, Response, StatusCode};
use prometheus::Registry;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_prometheus::{ClientId, ClientIds, RequestBody, RequestMetricsLayer, Route};

use crate::support::{count_series, noop_waker, render, sample, total};

const TOTAL_404: &str = r#"ctms_requests_total{method="GET",path_template="/items/{id}",status_code="404",status_code_family="4xx"}"#;

fn duration_count(method: &str, template: &str, family: &str) -> String {
    format!(
        r#"ctms_requests_duration_seconds_count{{method="{method}",path_template="{template}",status_code_family="{family}"}}"#
    )
}

fn api(client: &str, method: &str, template: &str, family: &str) -> String {
    format!(
        r#"ctms_api_requests_total{{client_id="{client}",method="{method}",path_template="{template}",status_code_family="{family}"}}"#
    )
}

/// A layer with the templates `/items/{id}` and `/`.
fn items_and_root_layer(registry: &Registry) -> RequestMetricsLayer {
    RequestMetricsLayer::builder()
        .route(Route::new("/items/{id}"))
        .route(Route::new("/"))
        .build(registry)
        .unwrap()
}

/// A request with an empty body.
fn empty_request(method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .unwrap()
}

fn respond_with(
    status: u16,
) -> impl Fn(Request<()>) -> std::future::Ready<Result<Response<String>, Infallible>> + Clone {
    move |_| {
        let mut response = Response::new(String::new());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        std::future::ready(Ok(response))
    }
}

#[tokio::test]
async fn ready_response_is_recorded_once_with_its_status() {
    let registry = Registry::new();
    let service = items_and_root_layer(&registry).layer(service_fn(respond_with(404)));
    let response = service
        .oneshot(empty_request(Method::GET, "/items/42"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let text = render(&registry);
    assert_eq!(sample(&text, TOTAL_404), Some(1.0));
    assert_eq!(
        sample(&text, &duration_count("GET", "/items/{id}", "4xx")),
        Some(1.0)
    );
    assert_eq!(count_series(&text, "ctms_requests_total"), 1);
    assert!(!text.contains("/items/42"), "raw path leaked:\n{text}");
}

#[tokio::test]
async fn inner_error_counts_as_500() {
    let registry = Registry::new();
    let service = items_and_root_layer(&registry).layer(service_fn(|_: Request<()>| async {
        Err::<Response<String>, _>("boom")
    }));
    let error = service
        .oneshot(empty_request(Method::POST, "/"))
        .await
        .unwrap_err();
    assert_eq!(error, "boom");

    let text = render(&registry);
    assert_eq!(total(&text, "POST", "/", 500), Some(1.0));
    assert_eq!(count_series(&text, "ctms_requests_total"), 1);
}

#[test]
fn panic_in_inner_call_counts_as_500() {
    let registry = Registry::new();
    let mut service = items_and_root_layer(&registry).layer(service_fn(|_: Request<()>| {
        panic!("handler exploded");
        #[allow(unreachable_code)]
        std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
    }));
    let result = catch_unwind(AssertUnwindSafe(|| {
        service.call(empty_request(Method::GET, "/"))
    }));
    assert!(result.is_err());

    let text = render(&registry);
    assert_eq!(total(&text, "GET", "/", 500), Some(1.0));
    assert_eq!(count_series(&text, "ctms_requests_total"), 1);
}

#[tokio::test]
async fn panic_while_polling_counts_as_500_even_when_dropped_after_the_unwind() {
    let registry = Registry::new();
    let mut service = items_and_root_layer(&registry).layer(service_fn(|_: Request<()>| async {
        panic!("handler exploded");
        #[allow(unreachable_code)]
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let mut future = Box::pin(service.call(empty_request(Method::GET, "/items/1")));
    let polled = catch_unwind(AssertUnwindSafe(|| {
        let waker = noop_waker();
        let _ = future
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker));
    }));
    assert!(polled.is_err());
    // Runtimes drop a panicked task after catching the unwind, when
    // `std::thread::panicking()` is false again.
    assert_eq!(count_series(&render(&registry), "ctms_requests_total"), 0);
    drop(future);

    let text = render(&registry);
    assert_eq!(total(&text, "GET", "/items/{id}", 500), Some(1.0));
    assert_eq!(count_series(&text, "ctms_requests_total"), 1);
}

#[tokio::test]
async fn future_dropped_before_ready_counts_as_499() {
    let registry = Registry::new();
    let mut service = items_and_root_layer(&registry).layer(service_fn(|_: Request<()>| async {
        pending::<()>().await;
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let mut future = Box::pin(service.call(empty_request(Method::DELETE, "/items/7")));
    let first = poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_pending())).await;
    assert!(first);
    assert_eq!(count_series(&render(&registry), "ctms_requests_total"), 0);
    drop(future);

    let text = render(&registry);
    assert_eq!(total(&text, "DELETE", "/items/{id}", 499), Some(1.0));
    assert_eq!(count_series(&text, "ctms_requests_total"), 1);
}

#[tokio::test]
async fn a_future_never_polled_and_dropped_counts_as_499() {
    let registry = Registry::new();
    let mut service = items_and_root_layer(&registry).layer(service_fn(respond_with(200)));
    drop(service.call(empty_request(Method::GET, "/")));
    assert_eq!(total(&render(&registry), "GET", "/", 499), Some(1.0));
}

#[tokio::test]
async fn polling_readiness_records_nothing() {
    let registry = Registry::new();
    let mut service = items_and_root_layer(&registry).layer(service_fn(respond_with(200)));
    for _ in 0..3 {
        poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    }
    let text = render(&registry);
    assert_eq!(count_series(&text, "ctms_requests_total"), 0);
    assert_eq!(
        count_series(&text, "ctms_requests_duration_seconds_count"),
        0
    );
}

#[tokio::test]
async fn unmatched_path_is_not_recorded_by_default() {
    let registry = Registry::new();
    let service = items_and_root_layer(&registry).layer(service_fn(respond_with(404)));
    for path in ["/nope", "/items", "/items/1/2", "/%2e%2e/etc/passwd"] {
        service
            .clone()
            .oneshot(empty_request(Method::GET, path))
            .await
            .unwrap();
    }
    let text = render(&registry);
    assert_eq!(count_series(&text, "ctms_requests_total"), 0, "{text}");
}

#[tokio::test]
async fn unmatched_paths_share_one_value_when_recorded() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/"))
        .record_unmatched_as("__unmatched__")
        .build(&registry)
        .unwrap();
    let service = layer.layer(service_fn(respond_with(404)));
    for path in ["/nope", "/a/b/c", "/secret-user@example.com"] {
        service
            .clone()
            .oneshot(empty_request(Method::GET, path))
            .await
            .unwrap();
    }
    let text = render(&registry);
    assert_eq!(total(&text, "GET", "__unmatched__", 404), Some(3.0));
    assert_eq!(count_series(&text, "ctms_requests_total"), 1);
    assert!(!text.contains("example.com"));
}

#[tokio::test]
async fn unknown_methods_are_recorded_as_other() {
    let registry = Registry::new();
    let service = items_and_root_layer(&registry).layer(service_fn(respond_with(405)));
    for raw in ["FOO", "BAR", "get", "PROPFIND"] {
        let method = Method::from_bytes(raw.as_bytes()).unwrap();
        service
            .clone()
            .oneshot(empty_request(method, "/"))
            .await
            .unwrap();
    }
    let text = render(&registry);
    assert_eq!(total(&text, "OTHER", "/", 405), Some(4.0));
    assert_eq!(count_series(&text, "ctms_requests_total"), 1);
}

#[tokio::test]
async fn client_id_in_the_response_wins_over_the_request_header() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/"))
        .client_ids(ClientIds::from_request(|headers| {
            headers.get("x-client")?.to_str().ok()
        }))
        .build(&registry)
        .unwrap();
    let service = layer.layer(service_fn(|request: Request<()>| async move {
        let mut response = Response::new(String::new());
        if request.headers().contains_key("x-auth") {
            response
                .extensions_mut()
                .insert(ClientId::from_static("verified"));
        }
        Ok::<_, Infallible>(response)
    }));
    let with_header = Request::builder().uri("/").header("x-client", "proxy");
    service
        .clone()
        .oneshot(with_header.body(()).unwrap())
        .await
        .unwrap();
    let both = Request::builder()
        .uri("/")
        .header("x-client", "proxy")
        .header("x-auth", "1");
    service
        .clone()
        .oneshot(both.body(()).unwrap())
        .await
        .unwrap();
    service
        .oneshot(empty_request(Method::GET, "/"))
        .await
        .unwrap();

    let text = render(&registry);
    assert_eq!(sample(&text, &api("proxy", "GET", "/", "2xx")), Some(1.0));
    assert_eq!(
        sample(&text, &api("verified", "GET", "/", "2xx")),
        Some(1.0)
    );
    assert_eq!(count_series(&text, "ctms_api_requests_total"), 2);
    assert_eq!(total(&text, "GET", "/", 200), Some(3.0));
}

#[tokio::test]
async fn the_request_client_id_is_kept_when_the_future_is_dropped() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/"))
        .client_ids(ClientIds::from_request(|headers| {
            headers.get("x-client")?.to_str().ok()
        }))
        .build(&registry)
        .unwrap();
    let mut service = layer.layer(service_fn(|_: Request<()>| async {
        pending::<()>().await;
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let request = Request::builder().uri("/").header("x-client", "c1");
    drop(service.call(request.body(()).unwrap()));
    let text = render(&registry);
    assert_eq!(sample(&text, &api("c1", "GET", "/", "4xx")), Some(1.0));
    assert_eq!(total(&text, "GET", "/", 499), Some(1.0));
}

#[tokio::test]
async fn client_ids_past_the_cap_are_recorded_as_other() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/"))
        .client_ids(ClientIds::new().max(2).max_len(8))
        .build(&registry)
        .unwrap();
    let service = layer.layer(service_fn(|request: Request<()>| async move {
        let mut response = Response::new(String::new());
        let id = request.uri().query().unwrap_or_default().to_owned();
        response.extensions_mut().insert(ClientId::new(id));
        Ok::<_, Infallible>(response)
    }));
    for id in ["a", "b", "c", "d", "a", "waytoolongid"] {
        let path = format!("/?{id}");
        service
            .clone()
            .oneshot(empty_request(Method::GET, &path))
            .await
            .unwrap();
    }
    let text = render(&registry);
    assert_eq!(sample(&text, &api("a", "GET", "/", "2xx")), Some(2.0));
    assert_eq!(sample(&text, &api("b", "GET", "/", "2xx")), Some(1.0));
    assert_eq!(
        sample(&text, &api("__other__", "GET", "/", "2xx")),
        Some(3.0)
    );
    assert_eq!(count_series(&text, "ctms_api_requests_total"), 3);
}

#[tokio::test]
async fn durations_land_in_the_right_buckets() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/slow"))
        .buckets([0.001, 0.02, 1000.0])
        .build(&registry)
        .unwrap();
    let service = layer.layer(service_fn(|_: Request<()>| async {
        // The duration under test, not a synchronisation.
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    service
        .oneshot(empty_request(Method::GET, "/slow"))
        .await
        .unwrap();

    let text = render(&registry);
    let bucket = |le: &str| {
        sample(
            &text,
            &format!(
                r#"ctms_requests_duration_seconds_bucket{{method="GET",path_template="/slow",status_code_family="2xx",le="{le}"}}"#
            ),
        )
    };
    assert_eq!(bucket("0.001"), Some(0.0));
    assert_eq!(bucket("0.02"), Some(0.0));
    assert_eq!(bucket("1000"), Some(1.0));
    assert_eq!(bucket("+Inf"), Some(1.0));
    let sum = sample(
        &text,
        r#"ctms_requests_duration_seconds_sum{method="GET",path_template="/slow",status_code_family="2xx"}"#,
    )
    .unwrap();
    assert!((0.025..1000.0).contains(&sum), "sum {sum}");
}

/// Answers with the response client id given in the `x-auth` header, if
/// any.
#[allow(clippy::needless_pass_by_value)] // the signature of a service_fn
fn respond_with_auth(
    request: Request<()>,
) -> std::future::Ready<Result<Response<String>, Infallible>> {
    let mut response = Response::new(String::new());
    if let Some(id) = request.headers().get("x-auth") {
        let id = id.to_str().unwrap().to_owned();
        response.extensions_mut().insert(ClientId::new(id));
    }
    std::future::ready(Ok(response))
}

fn with_headers(headers: &[(&str, &str)]) -> Request<()> {
    let mut request = Request::builder().uri("/");
    for &(name, value) in headers {
        request = request.header(name, value);
    }
    request.body(()).unwrap()
}

#[tokio::test]
async fn only_the_client_id_recorded_claims_a_slot() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/"))
        .client_ids(
            ClientIds::from_request(|headers| headers.get("x-client")?.to_str().ok()).max(2),
        )
        .build(&registry)
        .unwrap();
    let service = layer.layer(service_fn(respond_with_auth));
    for (header, auth) in [("h1", "A"), ("h2", "B"), ("h1", "B")] {
        let request = with_headers(&[("x-client", header), ("x-auth", auth)]);
        service.clone().oneshot(request).await.unwrap();
    }
    let text = render(&registry);
    assert_eq!(sample(&text, &api("A", "GET", "/", "2xx")), Some(1.0));
    assert_eq!(sample(&text, &api("B", "GET", "/", "2xx")), Some(2.0));
    assert_eq!(count_series(&text, "ctms_api_requests_total"), 2, "{text}");

    // The header's id is recorded, and claims its slot, when it is the
    // one recorded; a third id then overflows.
    for header in ["h1", "h9"] {
        service
            .clone()
            .oneshot(with_headers(&[("x-client", header)]))
            .await
            .unwrap();
    }
    let text = render(&registry);
    assert_eq!(
        sample(&text, &api("__other__", "GET", "/", "2xx")),
        Some(2.0),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_id_reader_that_panics_records_500() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/"))
        .client_ids(ClientIds::from_request(|headers| {
            if headers.contains_key("x-explode") {
                panic!("reader exploded");
            }
            None
        }))
        .build(&registry)
        .unwrap();
    let mut service = layer.layer(service_fn(respond_with(200)));
    let request = with_headers(&[("x-explode", "1")]);
    let result = catch_unwind(AssertUnwindSafe(|| service.call(request)));
    assert!(result.is_err());
    let text = render(&registry);
    assert_eq!(total(&text, "GET", "/", 500), Some(1.0), "{text}");
    assert_eq!(count_series(&text, "ctms_requests_total"), 1);
}

#[tokio::test]
async fn the_request_readers_run_only_for_requests_that_are_recorded() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tower_prometheus::TraceId;

    static CLIENT_READS: AtomicUsize = AtomicUsize::new(0);
    static TRACE_READS: AtomicUsize = AtomicUsize::new(0);
    let builder = || {
        RequestMetricsLayer::builder()
            .route(Route::new("/"))
            .client_ids(ClientIds::from_request(|_| {
                CLIENT_READS.fetch_add(1, Ordering::Relaxed);
                None
            }))
            .exemplars_from_request(|_| {
                TRACE_READS.fetch_add(1, Ordering::Relaxed);
                None::<TraceId>
            })
    };
    let reads = || {
        (
            CLIENT_READS.load(Ordering::Relaxed),
            TRACE_READS.load(Ordering::Relaxed),
        )
    };
    let passing = builder().build(&Registry::new()).unwrap();
    let counting = builder().request_bytes().build(&Registry::new()).unwrap();
    let passing = passing.layer(service_fn(respond_with(200)));
    let counting = counting.layer(service_fn(|_: Request<RequestBody<()>>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
    }));

    passing
        .clone()
        .oneshot(empty_request(Method::GET, "/nothing"))
        .await
        .unwrap();
    counting
        .clone()
        .oneshot(empty_request(Method::GET, "/nothing"))
        .await
        .unwrap();
    assert_eq!(reads(), (0, 0), "an unmatched path is not recorded");

    passing
        .oneshot(empty_request(Method::GET, "/"))
        .await
        .unwrap();
    counting
        .oneshot(empty_request(Method::GET, "/"))
        .await
        .unwrap();
    assert_eq!(reads(), (2, 2));
}

#[tokio::test]
async fn ids_that_cannot_be_label_values_are_recorded_as_the_overflow() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/"))
        .client_ids(
            ClientIds::from_request(|headers| headers.get("x-client")?.to_str().ok()).max(1),
        )
        .build(&registry)
        .unwrap();
    let service = layer.layer(service_fn(|request: Request<()>| async move {
        let mut response = Response::new(String::new());
        if let Some(id) = request.uri().query() {
            let id = id
                .replace("CR", "\r")
                .replace("NUL", "\0")
                .replace("EMPTY", "");
            response.extensions_mut().insert(ClientId::new(id));
        }
        Ok::<_, Infallible>(response)
    }));
    for path in ["/?a", "/?b", "/?__other__", "/?aCRb", "/?NUL", "/?EMPTY"] {
        service
            .clone()
            .oneshot(empty_request(Method::GET, path))
            .await
            .unwrap();
    }
    // A literal `__other__` from the request headers, too.
    service
        .clone()
        .oneshot(with_headers(&[("x-client", "__other__")]))
        .await
        .unwrap();
    let text = render(&registry);
    assert_eq!(sample(&text, &api("a", "GET", "/", "2xx")), Some(1.0));
    assert_eq!(
        sample(&text, &api("__other__", "GET", "/", "2xx")),
        Some(6.0),
        "{text}"
    );
    assert_eq!(count_series(&text, "ctms_api_requests_total"), 2, "{text}");
    assert!(!text.contains('\r') && !text.contains("\\r"), "{text}");
}

#[tokio::test]
async fn requests_that_match_no_template_are_counted_once_each() {
    for unmatched in [None, Some("__unmatched__")] {
        let registry = Registry::new();
        let mut builder = RequestMetricsLayer::builder().route(Route::new("/items/{id}"));
        if let Some(value) = unmatched {
            builder = builder.record_unmatched_as(value);
        }
        let service = builder
            .build(&registry)
            .unwrap()
            .layer(service_fn(respond_with(404)));
        for path in ["/items/1", "/nope", "/items", "/items/1/2", "/i"] {
            service
                .clone()
                .oneshot(empty_request(Method::GET, path))
                .await
                .unwrap();
        }
        let text = render(&registry);
        assert_eq!(
            sample(&text, "ctms_requests_unmatched_total"),
            Some(4.0),
            "{text}"
        );
        let recorded = total(&text, "GET", "__unmatched__", 404);
        assert_eq!(recorded, unmatched.map(|_| 4.0));
    }
}

/// Ready only after `pending_polls` polls of `poll_ready`.
#[derive(Clone)]
struct SlowToBeReady {
    pending_polls: usize,
}

impl Service<Request<()>> for SlowToBeReady {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.pending_polls == 0 {
            return Poll::Ready(Ok(()));
        }
        self.pending_polls -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        assert_eq!(self.pending_polls, 0, "called before it was ready");
        std::future::ready(Ok(Response::new(String::new())))
    }
}

#[tokio::test]
async fn readiness_is_the_inner_services() {
    let registry = Registry::new();
    let mut service = items_and_root_layer(&registry).layer(SlowToBeReady { pending_polls: 2 });
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(service.poll_ready(&mut cx).is_pending());
    assert!(service.poll_ready(&mut cx).is_pending());
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    service.call(empty_request(Method::GET, "/")).await.unwrap();
    assert_eq!(total(&render(&registry), "GET", "/", 200), Some(1.0));

    // Through a concurrency limit: not ready while its one slot is taken.
    let mut limited = items_and_root_layer(&Registry::new()).layer(
        tower::limit::ConcurrencyLimit::new(service_fn(respond_with(200)), 1),
    );
    poll_fn(|cx| limited.poll_ready(cx)).await.unwrap();
    let held = limited.call(empty_request(Method::GET, "/"));
    assert!(limited.poll_ready(&mut cx).is_pending());
    held.await.unwrap();
    assert!(matches!(limited.poll_ready(&mut cx), Poll::Ready(Ok(()))));
}

/// tower-http's `TimeoutLayer` on either side of the layer, as the crate
/// docs' table of orders says: outside, its 408 is recorded; inside, the
/// abandoned request is 499. Inside needs nothing more than the stack, its
/// 408 answered with a default `ResponseBody`.
#[tokio::test]
async fn a_tower_http_timeout_is_recorded_as_408_outside_and_499_inside() {
    use std::time::Duration;

    use tower::ServiceBuilder;
    use tower_http::timeout::TimeoutLayer;

    // The inner service never answers, so the timeout always fires.
    let never = || service_fn(|_: Request<()>| pending::<Result<Response<String>, Infallible>>());
    #[allow(deprecated)]
    let timeout = || TimeoutLayer::new(Duration::from_millis(10));

    let registry = Registry::new();
    let outside = ServiceBuilder::new()
        .layer(items_and_root_layer(&registry))
        .layer(timeout())
        .service(never());
    let response = outside
        .oneshot(empty_request(Method::GET, "/"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let text = render(&registry);
    assert_eq!(total(&text, "GET", "/", 408), Some(1.0), "{text}");

    let registry = Registry::new();
    let inside = ServiceBuilder::new()
        .layer(timeout())
        .layer(items_and_root_layer(&registry))
        .service(never());
    let response = inside
        .oneshot(empty_request(Method::GET, "/"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let text = render(&registry);
    assert_eq!(total(&text, "GET", "/", 499), Some(1.0), "{text}");
    assert_eq!(count_series(&text, "ctms_requests_total"), 1);
}
