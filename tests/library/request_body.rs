//! Request bodies with their bytes counted: what the inner service reads
//! is what is counted, and the inner service's readiness is the layer's.

use std::{
    convert::Infallible,
    future::Future,
    pin::{pin, Pin},
    task::{Context, Poll},
};

use http::{Method, Request, Response};
use http_body::Body;
use prometheus::Registry;
use tower::{service_fn, Layer, Service};
use tower_prometheus::{RequestBody, RequestMetricsLayer, Route};

use crate::support::{drain, noop_waker, render, sample, FramesBody};

fn bytes(text: &str, method: &str) -> Option<f64> {
    sample(
        text,
        &format!(r#"ctms_request_body_bytes_total{{method="{method}",path_template="/upload"}}"#),
    )
}

#[test]
fn the_bytes_the_inner_service_reads_are_counted() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(
            Route::new("/upload")
                .methods([Method::POST])
                .statuses([200]),
        )
        .request_bytes()
        .build(&registry)
        .unwrap();
    assert_eq!(
        bytes(&render(&registry), "POST"),
        Some(0.0),
        "listed methods start at zero"
    );
    let mut service = layer.layer(service_fn(
        |mut request: Request<RequestBody<FramesBody>>| {
            // Reads the whole body, as a handler that parses it would.
            drain(request.body_mut());
            let shown = format!("{:?}", request.body());
            assert!(shown.starts_with("RequestBody { inner: "), "{shown}");
            std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
        },
    ));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for data in [&["abc", "defg"][..], &["hij"]] {
        let request = Request::post("/upload")
            .body(FramesBody::data(data, None))
            .unwrap();
        let mut future = pin!(service.call(request));
        assert!(future.as_mut().poll(&mut cx).is_ready());
    }
    // An unmatched path: read, not counted.
    let request = Request::post("/elsewhere")
        .body(FramesBody::data(&["zzz"], None))
        .unwrap();
    assert!(pin!(service.call(request))
        .as_mut()
        .poll(&mut cx)
        .is_ready());
    assert_eq!(bytes(&render(&registry), "POST"), Some(10.0));
}

#[test]
fn a_body_left_unread_counts_what_was_read() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/upload"))
        .request_bytes()
        .build(&registry)
        .unwrap();
    let mut service = layer.layer(service_fn(
        |mut request: Request<RequestBody<FramesBody>>| {
            let waker = noop_waker();
            let mut cx = Context::from_waker(&waker);
            // One frame read, the rest left.
            let _ = Pin::new(request.body_mut()).poll_frame(&mut cx);
            std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
        },
    ));
    let request = Request::put("/upload")
        .body(FramesBody::data(&["12345", "678"], None))
        .unwrap();
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(pin!(service.call(request))
        .as_mut()
        .poll(&mut cx)
        .is_ready());
    assert_eq!(bytes(&render(&registry), "PUT"), Some(5.0));
}

/// Not ready at its first `poll_ready`.
struct NotReadyOnce(bool);

impl Service<Request<RequestBody<FramesBody>>> for NotReadyOnce {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if std::mem::replace(&mut self.0, true) {
            Poll::Ready(Ok(()))
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn call(&mut self, _: Request<RequestBody<FramesBody>>) -> Self::Future {
        std::future::ready(Ok(Response::new(String::new())))
    }
}

#[test]
fn readiness_is_the_inner_services() {
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/upload"))
        .request_bytes()
        .build(&Registry::new())
        .unwrap();
    let mut service = layer.layer(NotReadyOnce(false));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(service.poll_ready(&mut cx).is_pending());
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
}
