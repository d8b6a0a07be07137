//! The scrape endpoint.

use std::{
    convert::Infallible,
    future::{ready, Ready},
    task::{Context, Poll},
};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use prometheus::{Encoder, Registry, TextEncoder};
use tower::Service;

/// The `Content-Type` of the exposition. Prometheus 3 refuses a scrape
/// whose type has no version.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A [`Service`] that renders a [`Registry`] in the Prometheus text format.
///
/// It answers `GET` and `HEAD` (whatever the path: mount it where the
/// scraper looks) and `405 Method Not Allowed` otherwise. It never fails;
/// should encoding fail, it answers 500 with the reason.
///
/// It mounts directly as an axum route service
/// (`Router::new().route_service("/metrics", exporter)`) and in a plain
/// hyper server; see the [crate docs](crate) for an example.
#[derive(Clone, Debug)]
pub struct MetricsExporter {
    registry: Registry,
}

impl MetricsExporter {
    /// An exporter of `registry`: everything registered in it, the layer's
    /// metrics and any other.
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }

    /// The registry it renders.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders the registry in the text format.
    ///
    /// # Errors
    ///
    /// What the encoder reports, for example a metric family with no
    /// metrics, which the registries of the `prometheus` crate never return.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let families = self.registry.gather();
        let mut buffer = Vec::with_capacity(4096);
        TextEncoder::new().encode(&families, &mut buffer)?;
        // The text encoder writes UTF-8 only; lossy conversion keeps this
        // path free of panics all the same.
        Ok(match String::from_utf8(buffer) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        })
    }

    fn respond(&self, method: &Method) -> Response<String> {
        let head = method == Method::HEAD;
        if method != Method::GET && !head {
            let mut response = Response::new("method not allowed; use GET or HEAD\n".to_owned());
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match self.render() {
            Ok(text) => {
                let length = text.len();
                let mut response = Response::new(if head { String::new() } else { text });
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(TEXT_CONTENT_TYPE),
                );
                if head {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
                }
                response
            }
            Err(error) => {
                let mut response = Response::new(format!("cannot encode metrics: {error}\n"));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response
            }
        }
    }
}

impl<B> Service<Request<B>> for MetricsExporter {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.respond(request.method())))
    }
}

#[cfg(test)]
mod tests {
    use prometheus::IntCounter;
    use tower::ServiceExt;

    use super::*;

    fn exporter() -> MetricsExporter {
        let registry = Registry::new();
        let counter = IntCounter::new("things_total", "Things.").unwrap();
        counter.inc_by(3);
        registry.register(Box::new(counter)).unwrap();
        MetricsExporter::new(registry)
    }

    fn request(method: Method) -> Request<()> {
        Request::builder()
            .method(method)
            .uri("/metrics")
            .body(())
            .unwrap()
    }

    #[tokio::test]
    async fn get_renders_the_registry_with_a_versioned_content_type() {
        let response = exporter().oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert!(
            response.body().contains("\nthings_total 3\n"),
            "{}",
            response.body()
        );
    }

    #[tokio::test]
    async fn head_sends_the_headers_without_the_body() {
        let exporter = exporter();
        let length = exporter.render().unwrap().len();
        let response = exporter.oneshot(request(Method::HEAD)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.body().is_empty());
        assert_eq!(
            response.headers()[header::CONTENT_LENGTH],
            length.to_string().as_str()
        );
    }

    #[tokio::test]
    async fn other_methods_get_405_with_allow() {
        for method in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::from_bytes(b"FOO").unwrap(),
        ] {
            let response = exporter().oneshot(request(method.clone())).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method}"
            );
            assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
        }
    }
}
