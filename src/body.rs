//! The middleware's response body: the inner body, frame for frame, and
//! whatever must happen when it ends, fails or is dropped.
//!
//! With nothing to track (the request was recorded at its response head and
//! neither the in-flight gauge nor the byte count is kept), it only
//! delegates. Otherwise it watches each frame: data frames are counted, a
//! trailers frame or the end of the stream finishes the record (with the
//! gRPC status of the trailers, for a gRPC call), an error records 500
//! (`UNKNOWN`), and a drop before the end records 499 (`CANCELLED`).

use std::{
    fmt,
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::Buf;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::{
    grpc::{is_grpc_response, GrpcCode},
    labels::Status,
    recorder::{Pending, Tally},
};

pin_project! {
    /// Response body of [`RequestMetrics`](crate::RequestMetrics): the inner
    /// body unchanged, data frame for data frame.
    ///
    /// It sees where the response ends, for the requests recorded then (see
    /// [`RecordingPoint::BodyEnd`](crate::RecordingPoint::BodyEnd) and the
    /// crate docs on gRPC), for the in-flight gauge and for the byte count.
    /// When none of these applies, it only delegates.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        // Boxed: a response that tracks nothing stays as small as its body,
        // so moving it costs what moving the inner response does.
        // Dropped with a record left, it records the request as abandoned
        // (see `Drop for Tracker`).
        tracker: Option<Box<Tracker>>,
    }
}

impl<B> ResponseBody<B> {
    #[inline]
    pub(crate) fn new(inner: B, tracker: Option<Box<Tracker>>) -> Self {
        Self { inner, tracker }
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(tracker) = this.tracker else {
            return this.inner.poll_frame(cx);
        };
        // If the inner body panics, the flag stays set and the tracker,
        // dropped during or after the unwind, records 500 rather than an
        // abandon.
        tracker.in_inner = true;
        let poll = this.inner.as_mut().poll_frame(cx);
        tracker.in_inner = false;
        let frame = ready!(poll);
        let over = match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    tracker.sent(data.remaining());
                    false
                } else if let Some(trailers) = frame.trailers_ref() {
                    tracker.trailers(trailers);
                    true
                } else {
                    false
                }
            }
            Some(Err(_)) => {
                tracker.failed();
                true
            }
            None => {
                tracker.ended();
                true
            }
        };
        // A body that says it has ended may never be polled again.
        if over || this.inner.is_end_stream() {
            if let Some(mut tracker) = this.tracker.take() {
                tracker.ended();
            }
        }
        Poll::Ready(frame)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("tracking", &self.tracker.is_some())
            .finish()
    }
}

/// A request still to be recorded at the end of its body.
enum EndRecord {
    /// Recorded with the status of its response head.
    Http(Pending, Status),
    /// A gRPC call: recorded with the status of its trailers, else of its
    /// response headers.
    Grpc {
        pending: Pending,
        /// `grpc-status` of the response headers (a trailers-only answer).
        head: Option<GrpcCode>,
        http: StatusCode,
    },
}

impl EndRecord {
    fn into_pending(self) -> Pending {
        match self {
            Self::Http(pending, _) | Self::Grpc { pending, .. } => pending,
        }
    }
}

/// What the body watches for.
pub(crate) struct Tracker {
    record: Option<EndRecord>,
    tally: Option<Tally>,
    /// Set while the inner body is polled, so a drop with it set means the
    /// body panicked.
    in_inner: bool,
}

impl Tracker {
    /// What to watch in the body of a response with this head: `pending`
    /// is recorded now unless `at_body_end` or it is a gRPC call; `None` when
    /// nothing is left to watch.
    pub(crate) fn for_response<B: Body>(
        pending: Option<Pending>,
        tally: Option<Tally>,
        at_body_end: bool,
        response: &http::Response<B>,
    ) -> Option<Box<Self>> {
        let record = pending.and_then(|mut pending| {
            let client = response.extensions().get();
            if pending.is_grpc() && !is_grpc_response(response.headers()) {
                pending.set_grpc(false);
            }
            if pending.is_grpc() {
                pending.set_response_client(client);
                Some(EndRecord::Grpc {
                    pending,
                    head: GrpcCode::from_headers(response.headers()),
                    http: response.status(),
                })
            } else if at_body_end {
                pending.set_response_client(client);
                Some(EndRecord::Http(pending, Status::of(response.status())))
            } else {
                pending.finish(Status::of(response.status()), client);
                None
            }
        });
        let mut tracker = Self {
            record,
            tally,
            in_inner: false,
        };
        if response.body().is_end_stream() {
            // An empty body may never be polled: it has ended already.
            tracker.ended();
        }
        (tracker.record.is_some() || tracker.tally.is_some()).then(|| Box::new(tracker))
    }

    fn sent(&mut self, bytes: usize) {
        if let Some(tally) = &mut self.tally {
            tally.sent(bytes);
        }
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        if let Some(EndRecord::Grpc { pending, head, .. }) = self.record.take_if_grpc() {
            let code = GrpcCode::from_headers(trailers)
                .or(head)
                .unwrap_or(GrpcCode::UNKNOWN);
            pending.finish_grpc(code);
        }
        self.ended();
    }

    fn ended(&mut self) {
        match self.record.take() {
            Some(EndRecord::Http(pending, status)) => pending.finish(status, None),
            Some(EndRecord::Grpc {
                pending,
                head,
                http,
            }) => {
                let code = head.unwrap_or_else(|| {
                    if http.is_success() {
                        // The stream ended without a status.
                        GrpcCode::UNKNOWN
                    } else {
                        GrpcCode::from_http(http)
                    }
                });
                pending.finish_grpc(code);
            }
            None => {}
        }
        // Lowers the in-flight gauge and adds the bytes.
        self.tally = None;
    }

    fn failed(&mut self) {
        if let Some(record) = self.record.take() {
            record.into_pending().finish_unanswered(false);
        }
        self.tally = None;
    }
}

/// `Option::take` for the gRPC variant only.
trait TakeIfGrpc {
    fn take_if_grpc(&mut self) -> Option<EndRecord>;
}

impl TakeIfGrpc for Option<EndRecord> {
    fn take_if_grpc(&mut self) -> Option<EndRecord> {
        if matches!(self, Some(EndRecord::Grpc { .. })) {
            self.take()
        } else {
            None
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        // Dropped before the body's end: the client went away, or the server
        // gave up on it (an abandon), or the body panicked (500). The tally
        // ends with it.
        if let Some(record) = self.record.take() {
            let panicked = self.in_inner || std::thread::panicking();
            record.into_pending().finish_unanswered(!panicked);
        }
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use std::{
        convert::Infallible,
        future::Future,
        panic::{catch_unwind, AssertUnwindSafe},
        pin::pin,
        sync::Mutex,
    };

    use http::{HeaderMap, HeaderValue, Method, Request, Response};
    use http_body::Frame;
    use prometheus::Registry;
    use tower::{service_fn, Layer, Service};

    use super::*;
    use crate::{
        test_helpers::{count_series, drain, noop_waker, render, sample, FramesBody},
        Builder, RecordingPoint, RequestMetricsLayer, Route,
    };

    const GRPC: &str = "/pkg.Svc/Call";

    fn builder() -> Builder {
        RequestMetricsLayer::builder()
            .route(Route::new("/stream").methods([Method::GET]).statuses([200]))
            .route(Route::new(GRPC).methods([Method::POST]).statuses([200]))
    }

    /// Serves one request whose response is `response`; returns it with
    /// the layer's body.
    fn serve(
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

    fn total(text: &str, template: &str, method: &str, code: u16) -> Option<f64> {
        sample(
            text,
            &format!(
                r#"ctms_requests_total{{method="{method}",path_template="{template}",status_code="{code}",status_code_family="{}xx"}}"#,
                code / 100
            ),
        )
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
        let mut response = serve(
            &layer,
            get_stream(),
            Response::new(FramesBody::data(&["a", "b"], None)),
        );
        assert_eq!(
            total(&render(&registry), "/stream", "GET", 200),
            Some(0.0),
            "not yet"
        );
        assert_eq!(drain(response.body_mut()), 2);
        assert_eq!(total(&render(&registry), "/stream", "GET", 200), Some(1.0));
        drop(response);
        assert_eq!(
            total(&render(&registry), "/stream", "GET", 200),
            Some(1.0),
            "once"
        );
        assert_eq!(count_series(&render(&registry), "ctms_requests_total"), 2);
    }

    #[test]
    fn at_the_response_head_a_streamed_body_is_not_waited_for() {
        let registry = Registry::new();
        let layer = builder().build(&registry).unwrap();
        let response = serve(
            &layer,
            get_stream(),
            Response::new(FramesBody::data(&["a"], None)),
        );
        assert_eq!(total(&render(&registry), "/stream", "GET", 200), Some(1.0));
        drop(response);
        assert_eq!(total(&render(&registry), "/stream", "GET", 499), None);
    }

    #[test]
    fn a_body_dropped_before_its_end_is_recorded_as_499() {
        let registry = Registry::new();
        let layer = builder()
            .recording_point(RecordingPoint::BodyEnd)
            .build(&registry)
            .unwrap();
        let response = serve(
            &layer,
            get_stream(),
            Response::new(FramesBody::data(&["a", "b"], None)),
        );
        drop(response);
        let text = render(&registry);
        assert_eq!(total(&text, "/stream", "GET", 499), Some(1.0));
        assert_eq!(total(&text, "/stream", "GET", 200), Some(0.0));
    }

    #[test]
    fn a_body_that_says_it_has_ended_is_not_polled_again() {
        let registry = Registry::new();
        let layer = builder()
            .recording_point(RecordingPoint::BodyEnd)
            .build(&registry)
            .unwrap();
        let mut response = serve(
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
        assert_eq!(total(&text, "/stream", "GET", 200), Some(1.0));
        assert_eq!(total(&text, "/stream", "GET", 499), None);
    }

    #[test]
    fn the_body_reports_what_the_inner_body_does() {
        let layer = builder().build(&Registry::new()).unwrap();
        let response = serve(
            &layer,
            get_stream(),
            Response::new(FramesBody::data(&["abc"], None)),
        );
        assert!(!response.body().is_end_stream());
        assert_eq!(response.body().size_hint().lower(), 0);
        let response = serve(&layer, get_stream(), Response::new(FramesBody::default()));
        assert!(response.body().is_end_stream());
        let layer = builder().build(&Registry::new()).unwrap();
        let mut service = layer.layer(service_fn(|_: Request<()>| {
            std::future::ready(Ok::<_, Infallible>(Response::new("sized".to_owned())))
        }));
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let Poll::Ready(Ok(response)) = pin!(service.call(get_stream())).as_mut().poll(&mut cx)
        else {
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
        let mut response = serve(&layer, get_stream(), Response::new(body));
        assert_eq!(drain(response.body_mut()), 1);
        drop(response);
        let text = render(&registry);
        assert_eq!(total(&text, "/stream", "GET", 500), Some(1.0));
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
            assert_eq!(total(&text, template, method, status), Some(1.0), "{text}");
            assert_eq!(total(&text, template, method, 499), None, "{text}");
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
        let response = serve(&layer, get_stream(), Response::new(FramesBody::default()));
        assert_eq!(total(&render(&registry), "/stream", "GET", 200), Some(1.0));
        drop(response);
        assert_eq!(total(&render(&registry), "/stream", "GET", 499), None);
    }

    #[test]
    fn a_grpc_status_in_the_trailers_is_the_one_recorded() {
        let registry = Registry::new();
        let layer = builder().build(&registry).unwrap();
        let body = FramesBody::data(&["message"], Some(grpc_status("5")));
        let mut response = serve(&layer, grpc_call(), grpc_response(body));
        assert_eq!(
            grpc_count(&render(&registry), "NOT_FOUND"),
            Some(0.0),
            "at the end only"
        );
        drain(response.body_mut());
        let text = render(&registry);
        assert_eq!(grpc_count(&text, "NOT_FOUND"), Some(1.0));
        assert_eq!(total(&text, GRPC, "POST", 404), Some(1.0));
        assert_eq!(
            total(&text, GRPC, "POST", 200),
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
        drop(serve(&layer, grpc_call(), response));
        let text = render(&registry);
        assert_eq!(grpc_count(&text, "UNAVAILABLE"), Some(1.0));
        assert_eq!(total(&text, GRPC, "POST", 503), Some(1.0));
    }

    #[test]
    fn a_grpc_call_dropped_before_its_trailers_is_cancelled() {
        let registry = Registry::new();
        let layer = builder().build(&registry).unwrap();
        let body = FramesBody::data(&["one", "two"], Some(grpc_status("0")));
        let mut response = serve(&layer, grpc_call(), grpc_response(body));
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let _ = Pin::new(response.body_mut()).poll_frame(&mut cx);
        drop(response);
        let text = render(&registry);
        assert_eq!(grpc_count(&text, "CANCELLED"), Some(1.0));
        assert_eq!(grpc_count(&text, "OK"), Some(0.0));
        assert_eq!(total(&text, GRPC, "POST", 499), Some(1.0));
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
        let mut response = serve(
            &layer,
            grpc_call(),
            grpc_response(FramesBody::data(&["x"], None)),
        );
        drain(response.body_mut());
        let text = render(&registry);
        assert_eq!(grpc_count(&text, "UNKNOWN"), Some(1.0));
        assert_eq!(total(&text, GRPC, "POST", 500), Some(1.0));
    }

    #[test]
    fn a_plain_http_request_on_a_grpc_route_is_recorded_as_http() {
        let registry = Registry::new();
        let layer = builder().build(&registry).unwrap();
        let request = Request::post(GRPC).body(()).unwrap();
        drop(serve(
            &layer,
            request,
            Response::new(FramesBody::data(&["x"], None)),
        ));
        let text = render(&registry);
        assert_eq!(total(&text, GRPC, "POST", 200), Some(1.0));
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
            let mut response = serve(&layer, request, answer);
            drain(response.body_mut());
        }
        let text = render(&registry);
        assert_eq!(total(&text, "/contacts/{id}", "POST", 201), Some(1.0));
        assert_eq!(total(&text, "/contacts/{id}", "POST", 404), Some(1.0));
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
        let mut response = serve(
            &layer,
            get_stream(),
            Response::new(FramesBody::data(&["abc", "de"], None)),
        );
        drain(response.body_mut());
        let mut response = serve(
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
        let mut response = serve(
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
        let response = serve(
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
        let response = serve(
            &layer,
            request,
            Response::new(FramesBody::data(&["x"], None)),
        );
        // Recorded at the head, as HTTP: gRPC calls are POSTs.
        assert_eq!(total(&render(&registry), "/stream", "GET", 200), Some(1.0));
        drop(response);
        assert_eq!(total(&render(&registry), "/stream", "GET", 500), None);
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
        let mut response = serve(&layer, request, grpc_response(body));
        assert_eq!(
            total(&render(&registry), "/stream", "POST", 200),
            None,
            "recorded at the end of the body"
        );
        drain(response.body_mut());
        let text = render(&registry);
        assert_eq!(total(&text, "/stream", "POST", 400), Some(1.0), "{text}");
        assert_eq!(total(&text, "/stream", "POST", 200), None);
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
            .insert(crate::ClientId::from_static("streamer"));
        let mut response = serve(&layer, get_stream(), response);
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
            let response = serve(
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
}
