//! The layer's response body: when a response's end records its request
//! (at the body's end, on an error, a panic or a drop, and gRPC calls by
//! their trailers), the in-flight gauge and the response byte count, and
//! that the body is the inner body frame for frame.

use std::{
    convert::Infallible,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::{pin, Pin},
    sync::Mutex,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use prometheus::Registry;
use tower::{service_fn, Layer, Service};
use tower_prometheus::{
    Builder, ClientId, RecordingPoint, RequestMetricsLayer, ResponseBody, Route,
};

use crate::support::{count_series, drain, noop_waker, render, sample, total, FramesBody};

const GRPC: &str = "/pkg.Svc/Call";

fn builder() -> Builder {
    RequestMetricsLayer::builder()
        .route(Route::new("/stream").methods([Method::GET]).statuses([200]))
        .route(Route::new(GRPC).methods([Method::POST]).statuses([200]))
}

/// Serves one request whose response is `response`; returns it with
/// the layer's body.
fn serve_one(
    layer: &RequestMetricsLayer,
    request: Request<()>,
    response: Response<FramesBody>,
) -> Response<ResponseBody<FramesBody>> {
    let response = Mutex::new(Some(response));
    let mut service = layer.layer(service_fn(move |_: Request<()>| {
        let response = response.lock().unwrap().take().unwrap();
        std::future::ready(Ok::<_, Infallible>(response))
    }));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        _ => panic!("the inner service answers at once"),
    }
}

fn get_stream() -> Request<()> {
    Request::get("/stream").body(()).unwrap()
}

fn grpc_call() -> Request<()> {
    Request::post(GRPC)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap()
}

fn grpc_status(code: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("grpc-status", HeaderValue::from_static(code));
    headers
}

fn grpc_count(text: &str, code: &str) -> Option<f64> {
    sample(
        text,
        &format!(
            r#"ctms_grpc_requests_total{{grpc_code="{code}",grpc_method="Call",grpc_service="pkg.Svc"}}"#
        ),
    )
}

fn in_flight(text: &str, template: &str, method: &str) -> Option<f64> {
    sample(
        text,
        &format!(r#"ctms_requests_in_flight{{method="{method}",path_template="{template}"}}"#),
    )
}

#[test]
fn at_the_body_end_a_request_is_recorded_when_its_last_frame_is_read() {
    let registry = Registry::new();
    let layer = builder()
        .recording_point(RecordingPoint::BodyEnd)
        .build(&registry)
        .unwrap();
    let mut response = serve_one(
        &layer,
        get_stream(),
        Response::new(FramesBody::data(&["a", "b"], None)),
    );
    assert_eq!(
        total(&render(&registry), "GET", "/stream", 200),
        Some(0.0),
        "not yet"
    );
    assert_eq!(drain(response.body_mut()), 2);
    assert_eq!(total(&render(&registry), "GET", "/stream", 200), Some(1.0));
    drop(response);
    assert_eq!(
        total(&render(&registry), "GET", "/stream", 200),
        Some(1.0),
        "once"
    );
    assert_eq!(count_series(&render(&registry), "ctms_requests_total"), 2);
}

#[test]
fn at_the_response_head_a_streamed_body_is_not_waited_for() {
    let registry = Registry::new();
    let layer = builder().build(&registry).unwrap();
    let response = serve_one(
        &layer,
        get_stream(),
        Response::new(FramesBody::data(&["a"], None)),
    );
    assert_eq!(total(&render(&registry), "GET", "/stream", 200), Some(1.0));
    drop(response);
    assert_eq!(total(&render(&registry), "GET", "/stream", 499), None);
}

#[test]
fn a_body_dropped_before_its_end_is_recorded_as_499() {
    let registry = Registry::new();
    let layer = builder()
        .recording_point(RecordingPoint::BodyEnd)
        .build(&registry)
        .unwrap();
    let response = serve_one(
        &layer,
        get_stream(),
        Response::new(FramesBody::data(&["a", "b"], None)),
    );
    drop(response);
    let text = render(&registry);
    assert_eq!(total(&text, "GET", "/stream", 499), Some(1.0));
    assert_eq!(total(&text, "GET", "/stream", 200), Some(0.0));
}

#[test]
fn a_body_that_says_it_has_ended_is_not_polled_again() {
    let registry = Registry::new();
    let layer = builder()
        .recording_point(RecordingPoint::BodyEnd)
        .build(&registry)
        .unwrap();
    let mut response = serve_one(
        &layer,
        get_stream(),
        Response::new(FramesBody::data(&["a", "b"], None)),
    );
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    // As hyper does: data frames until `is_end_stream`, then the body is
    // dropped without being polled for its end.
    while !response.body().is_end_stream() {
        let _ = Pin::new(response.body_mut()).poll_frame(&mut cx);
    }
    drop(response);
    let text = render(&registry);
    assert_eq!(total(&text, "GET", "/stream", 200), Some(1.0));
    assert_eq!(total(&text, "GET", "/stream", 499), None);
}

#[test]
fn the_body_reports_what_the_inner_body_does() {
    let layer = builder().build(&Registry::new()).unwrap();
    let response = serve_one(
        &layer,
        get_stream(),
        Response::new(FramesBody::data(&["abc"], None)),
    );
    assert!(!response.body().is_end_stream());
    assert_eq!(response.body().size_hint().lower(), 0);
    let response = serve_one(&layer, get_stream(), Response::new(FramesBody::default()));
    assert!(response.body().is_end_stream());
    let layer = builder().build(&Registry::new()).unwrap();
    let mut service = layer.layer(service_fn(|_: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new("sized".to_owned())))
    }));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let Poll::Ready(Ok(response)) = pin!(service.call(get_stream())).as_mut().poll(&mut cx) else {
        panic!("ready at once");
    };
    assert_eq!(response.body().size_hint().exact(), Some(5));
    assert_eq!(response.body().get_ref(), "sized");
}

#[test]
fn a_body_that_fails_is_recorded_as_500() {
    let registry = Registry::new();
    let layer = builder()
        .recording_point(RecordingPoint::BodyEnd)
        .build(&registry)
        .unwrap();
    let body = FramesBody::new([
        Ok(Frame::data(bytes::Bytes::from_static(b"a"))),
        Err("broken"),
    ]);
    let mut response = serve_one(&layer, get_stream(), Response::new(body));
    assert_eq!(drain(response.body_mut()), 1);
    drop(response);
    let text = render(&registry);
    assert_eq!(total(&text, "GET", "/stream", 500), Some(1.0));
    assert_eq!(count_series(&text, "ctms_requests_total"), 3, "{text}");
}

/// A body whose first poll panics.
struct PanicsWhenPolled;

impl Body for PanicsWhenPolled {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, Infallible>>> {
        panic!("the body exploded");
    }
}

#[test]
fn a_body_that_panics_is_recorded_as_500_not_as_abandoned() {
    for (request, template, method, status) in [
        (get_stream(), "/stream", "GET", 500),
        (grpc_call(), GRPC, "POST", 500),
    ] {
        let registry = Registry::new();
        let layer = builder()
            .recording_point(RecordingPoint::BodyEnd)
            .build(&registry)
            .unwrap();
        let mut service = layer.layer(service_fn(|_: Request<()>| {
            std::future::ready(Ok::<_, Infallible>(Response::new(PanicsWhenPolled)))
        }));
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let Poll::Ready(Ok(mut response)) = pin!(service.call(request)).as_mut().poll(&mut cx)
        else {
            panic!("ready at once");
        };
        let polled = catch_unwind(AssertUnwindSafe(|| {
            let _ = Pin::new(response.body_mut()).poll_frame(&mut cx);
        }));
        assert!(polled.is_err());
        // Dropped after the unwind was caught, as a runtime drops a
        // panicked task.
        drop(response);
        let text = render(&registry);
        assert_eq!(total(&text, method, template, status), Some(1.0), "{text}");
        assert_eq!(total(&text, method, template, 499), None, "{text}");
    }
}

#[test]
fn an_empty_body_is_recorded_with_its_head() {
    let registry = Registry::new();
    let layer = builder()
        .recording_point(RecordingPoint::BodyEnd)
        .build(&registry)
        .unwrap();
    // Never polled, as servers do with a body that says it is empty.
    let response = serve_one(&layer, get_stream(), Response::new(FramesBody::default()));
    assert_eq!(total(&render(&registry), "GET", "/stream", 200), Some(1.0));
    drop(response);
    assert_eq!(total(&render(&registry), "GET", "/stream", 499), None);
}

#[test]
fn a_grpc_status_in_the_trailers_is_the_one_recorded() {
    let registry = Registry::new();
    let layer = builder().build(&registry).unwrap();
    let body = FramesBody::data(&["message"], Some(grpc_status("5")));
    let mut response = serve_one(&layer, grpc_call(), grpc_response(body));
    assert_eq!(
        grpc_count(&render(&registry), "NOT_FOUND"),
        Some(0.0),
        "at the end only"
    );
    drain(response.body_mut());
    let text = render(&registry);
    assert_eq!(grpc_count(&text, "NOT_FOUND"), Some(1.0));
    assert_eq!(total(&text, "POST", GRPC, 404), Some(1.0));
    assert_eq!(
        total(&text, "POST", GRPC, 200),
        Some(0.0),
        "not the HTTP 200"
    );
}

#[test]
fn a_trailers_only_grpc_error_is_recorded_from_the_headers() {
    let registry = Registry::new();
    let layer = builder().build(&registry).unwrap();
    let mut response = Response::new(FramesBody::default());
    *response.headers_mut() = grpc_status("14");
    drop(serve_one(&layer, grpc_call(), response));
    let text = render(&registry);
    assert_eq!(grpc_count(&text, "UNAVAILABLE"), Some(1.0));
    assert_eq!(total(&text, "POST", GRPC, 503), Some(1.0));
}

#[test]
fn a_grpc_call_dropped_before_its_trailers_is_cancelled() {
    let registry = Registry::new();
    let layer = builder().build(&registry).unwrap();
    let body = FramesBody::data(&["one", "two"], Some(grpc_status("0")));
    let mut response = serve_one(&layer, grpc_call(), grpc_response(body));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let _ = Pin::new(response.body_mut()).poll_frame(&mut cx);
    drop(response);
    let text = render(&registry);
    assert_eq!(grpc_count(&text, "CANCELLED"), Some(1.0));
    assert_eq!(grpc_count(&text, "OK"), Some(0.0));
    assert_eq!(total(&text, "POST", GRPC, 499), Some(1.0));
}

/// A gRPC server's response head: the gRPC content type.
fn grpc_response(body: FramesBody) -> Response<FramesBody> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

#[test]
fn a_grpc_stream_without_a_status_is_unknown() {
    let registry = Registry::new();
    let layer = builder().build(&registry).unwrap();
    let mut response = serve_one(
        &layer,
        grpc_call(),
        grpc_response(FramesBody::data(&["x"], None)),
    );
    drain(response.body_mut());
    let text = render(&registry);
    assert_eq!(grpc_count(&text, "UNKNOWN"), Some(1.0));
    assert_eq!(total(&text, "POST", GRPC, 500), Some(1.0));
}

#[test]
fn a_plain_http_request_on_a_grpc_route_is_recorded_as_http() {
    let registry = Registry::new();
    let layer = builder().build(&registry).unwrap();
    let request = Request::post(GRPC).body(()).unwrap();
    drop(serve_one(
        &layer,
        request,
        Response::new(FramesBody::data(&["x"], None)),
    ));
    let text = render(&registry);
    assert_eq!(total(&text, "POST", GRPC, 200), Some(1.0));
    assert_eq!(grpc_count(&text, "OK"), Some(0.0));
}

#[test]
fn a_grpc_content_type_answered_by_plain_http_is_recorded_by_its_http_status() {
    // A client that claims gRPC on a REST route: the handler's 201 and
    // 404 are what is recorded, not UNKNOWN (500) and UNIMPLEMENTED
    // (501), and the route gains no gRPC series.
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/contacts/{id}"))
        .build(&registry)
        .unwrap();
    for code in [201, 404] {
        let request = Request::post("/contacts/7")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let mut answer = Response::new(FramesBody::data(&["{}"], None));
        *answer.status_mut() = StatusCode::from_u16(code).unwrap();
        answer.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let mut response = serve_one(&layer, request, answer);
        drain(response.body_mut());
    }
    let text = render(&registry);
    assert_eq!(total(&text, "POST", "/contacts/{id}", 201), Some(1.0));
    assert_eq!(total(&text, "POST", "/contacts/{id}", 404), Some(1.0));
    assert!(!text.contains("status_code=\"50"), "{text}");
    assert!(!text.contains("grpc_requests_total{"), "{text}");
}

#[test]
fn a_grpc_route_lists_every_code_at_zero() {
    let registry = Registry::new();
    builder().build(&registry).unwrap();
    let text = render(&registry);
    assert_eq!(
        count_series(&text, "ctms_grpc_requests_total"),
        17,
        "{text}"
    );
    for code in ["OK", "CANCELLED", "NOT_FOUND", "UNAUTHENTICATED"] {
        assert_eq!(grpc_count(&text, code), Some(0.0), "{code}");
    }
}

#[test]
fn response_bytes_are_the_bytes_of_the_data_frames() {
    let registry = Registry::new();
    let layer = builder().response_bytes(true).build(&registry).unwrap();
    let mut response = serve_one(
        &layer,
        get_stream(),
        Response::new(FramesBody::data(&["abc", "de"], None)),
    );
    drain(response.body_mut());
    let mut response = serve_one(
        &layer,
        get_stream(),
        Response::new(FramesBody::data(&["fghij"], None)),
    );
    drain(response.body_mut());
    let text = render(&registry);
    let bytes = sample(
        &text,
        r#"ctms_response_body_bytes_total{method="GET",path_template="/stream"}"#,
    );
    assert_eq!(bytes, Some(10.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"ctms_response_body_bytes_total{method="POST",path_template="/pkg.Svc/Call"}"#
        ),
        Some(0.0),
        "listed methods start at zero"
    );
}

#[test]
fn bytes_of_a_method_the_route_does_not_list_are_listed_once_counted() {
    let registry = Registry::new();
    let layer = builder().response_bytes(true).build(&registry).unwrap();
    let request = Request::delete("/stream").body(()).unwrap();
    let mut response = serve_one(
        &layer,
        request,
        Response::new(FramesBody::data(&["1234"], None)),
    );
    drain(response.body_mut());
    let text = render(&registry);
    let bytes = |method: &str| {
        sample(
            &text,
            &format!(
                r#"ctms_response_body_bytes_total{{method="{method}",path_template="/stream"}}"#
            ),
        )
    };
    assert_eq!(bytes("DELETE"), Some(4.0), "{text}");
    assert_eq!(bytes("GET"), Some(0.0), "listed");
    assert_eq!(bytes("PUT"), None, "neither listed nor used");
}

/// How a request ends, for the in-flight gauge.
#[derive(Clone, Copy, Debug)]
enum Ending {
    BodyRead,
    BodyDropped,
    BodyFailed,
    InnerError,
    PanicInCall,
    FutureDropped,
}

/// Runs one request that ends as `ending`.
fn run(layer: &RequestMetricsLayer, ending: Ending) {
    let mut service = layer.layer(service_fn(move |_: Request<()>| {
        if let Ending::PanicInCall = ending {
            panic!("handler exploded");
        }
        let body = match ending {
            Ending::BodyFailed => FramesBody::new([Err("broken")]),
            _ => FramesBody::data(&["a", "b"], None),
        };
        std::future::ready(match ending {
            Ending::InnerError => Err("failed"),
            _ => Ok(Response::new(body)),
        })
    }));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let Ok(future) = catch_unwind(AssertUnwindSafe(|| service.call(get_stream()))) else {
        return;
    };
    let mut future = Box::pin(future);
    if let Ending::FutureDropped = ending {
        return;
    }
    let Poll::Ready(result) = future.as_mut().poll(&mut cx) else {
        panic!("ready at once");
    };
    if let Ok(mut response) = result {
        if !matches!(ending, Ending::BodyDropped) {
            drain(response.body_mut());
        }
    }
}

#[test]
fn the_in_flight_gauge_lists_only_the_methods_a_route_lists() {
    let registry = Registry::new();
    builder().in_flight(true).build(&registry).unwrap();
    let text = render(&registry);
    assert_eq!(in_flight(&text, "/stream", "GET"), Some(0.0));
    assert_eq!(in_flight(&text, GRPC, "POST"), Some(0.0));
    assert_eq!(in_flight(&text, "/stream", "POST"), None, "{text}");
    assert_eq!(in_flight(&text, GRPC, "GET"), None);
    // A method the route does not list shows while it is in flight
    // (recorded at its end, so nothing else lists it yet), and stays.
    let registry = Registry::new();
    let layer = builder()
        .in_flight(true)
        .recording_point(RecordingPoint::BodyEnd)
        .build(&registry)
        .unwrap();
    let request = Request::delete("/stream").body(()).unwrap();
    let response = serve_one(
        &layer,
        request,
        Response::new(FramesBody::data(&["a"], None)),
    );
    assert_eq!(
        in_flight(&render(&registry), "/stream", "DELETE"),
        Some(1.0)
    );
    drop(response);
    assert_eq!(
        in_flight(&render(&registry), "/stream", "DELETE"),
        Some(0.0)
    );
}

#[test]
fn a_request_that_is_not_a_post_is_never_a_grpc_call() {
    let registry = Registry::new();
    let layer = builder().build(&registry).unwrap();
    let request = Request::get("/stream")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let response = serve_one(
        &layer,
        request,
        Response::new(FramesBody::data(&["x"], None)),
    );
    // Recorded at the head, as HTTP: gRPC calls are POSTs.
    assert_eq!(total(&render(&registry), "GET", "/stream", 200), Some(1.0));
    drop(response);
    assert_eq!(total(&render(&registry), "GET", "/stream", 500), None);
}

#[test]
fn a_grpc_call_on_any_route_is_recorded_with_its_status() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/stream"))
        .build(&registry)
        .unwrap();
    assert!(
        !render(&registry).contains("grpc_requests_total"),
        "no gRPC family before a gRPC call"
    );
    let request = Request::post("/stream")
        .header("content-type", "application/grpc+proto")
        .body(())
        .unwrap();
    let body = FramesBody::data(&["message"], Some(grpc_status("3")));
    let mut response = serve_one(&layer, request, grpc_response(body));
    assert_eq!(
        total(&render(&registry), "POST", "/stream", 200),
        None,
        "recorded at the end of the body"
    );
    drain(response.body_mut());
    let text = render(&registry);
    assert_eq!(total(&text, "POST", "/stream", 400), Some(1.0), "{text}");
    assert_eq!(total(&text, "POST", "/stream", 200), None);
    let grpc = |code: &str| {
        sample(
            &text,
            &format!(
                r#"ctms_grpc_requests_total{{grpc_code="{code}",grpc_method="",grpc_service="/stream"}}"#
            ),
        )
    };
    assert_eq!(grpc("INVALID_ARGUMENT"), Some(1.0));
    assert_eq!(grpc("NOT_FOUND"), Some(0.0));
    assert_eq!(count_series(&text, "ctms_grpc_requests_total"), 17);
}

#[test]
fn at_the_body_end_the_response_client_id_is_the_one_recorded() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/stream"))
        .recording_point(RecordingPoint::BodyEnd)
        .build(&registry)
        .unwrap();
    let mut response = Response::new(FramesBody::data(&["a"], None));
    response
        .extensions_mut()
        .insert(ClientId::from_static("streamer"));
    let mut response = serve_one(&layer, get_stream(), response);
    drain(response.body_mut());
    let text = render(&registry);
    let api = r#"ctms_api_requests_total{client_id="streamer",method="GET",path_template="/stream",status_code_family="2xx"}"#;
    assert_eq!(sample(&text, api), Some(1.0), "{text}");
}

#[test]
fn the_in_flight_gauge_follows_a_request_to_its_end() {
    for point in [RecordingPoint::ResponseHead, RecordingPoint::BodyEnd] {
        let registry = Registry::new();
        let layer = builder()
            .in_flight(true)
            .recording_point(point)
            .build(&registry)
            .unwrap();
        assert_eq!(in_flight(&render(&registry), "/stream", "GET"), Some(0.0));
        let response = serve_one(
            &layer,
            get_stream(),
            Response::new(FramesBody::data(&["a"], None)),
        );
        assert_eq!(
            in_flight(&render(&registry), "/stream", "GET"),
            Some(1.0),
            "{point:?}"
        );
        drop(response);
        assert_eq!(
            in_flight(&render(&registry), "/stream", "GET"),
            Some(0.0),
            "{point:?}"
        );
    }
}

#[test]
fn the_in_flight_gauge_is_back_at_zero_however_requests_end() {
    use proptest::prelude::*;
    let endings = prop::collection::vec(
        prop_oneof![
            Just(Ending::BodyRead),
            Just(Ending::BodyDropped),
            Just(Ending::BodyFailed),
            Just(Ending::InnerError),
            Just(Ending::PanicInCall),
            Just(Ending::FutureDropped),
        ],
        1..30,
    );
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    proptest!(ProptestConfig::with_cases(64), |(endings in endings, at_end in any::<bool>())| {
        let registry = Registry::new();
        let point = if at_end { RecordingPoint::BodyEnd } else { RecordingPoint::ResponseHead };
        let layer = builder().in_flight(true).recording_point(point).build(&registry).unwrap();
        for &ending in &endings {
            run(&layer, ending);
        }
        let text = render(&registry);
        prop_assert_eq!(in_flight(&text, "/stream", "GET"), Some(0.0));
        let recorded: f64 = text
            .lines()
            .filter(|l| l.starts_with("ctms_requests_total{"))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
            .sum();
        prop_assert_eq!(recorded, endings.len() as f64, "each recorded once");
    });
    std::panic::set_hook(hook);
}
