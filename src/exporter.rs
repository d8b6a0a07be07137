//! The scrape endpoint.

use std::{
    convert::Infallible,
    future::{ready, Ready},
    task::{Context, Poll},
};

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use prometheus::{Encoder, Registry, TextEncoder};
use tower::Service;

use crate::MetricsBody;

/// The `Content-Type` of the exposition. Prometheus 3 refuses a scrape
/// whose type has no version.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A [`Service`] that renders a [`Registry`] in the Prometheus text format.
///
/// It answers `GET` and `HEAD` (whatever the path: mount it where the
/// scraper looks) and `405 Method Not Allowed` otherwise. With the `gzip`
/// feature (on by default), the exposition is gzip-encoded when the
/// request's `Accept-Encoding` allows it, as Prometheus's always does. It
/// never fails; should encoding fail, it answers 500 with the reason.
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

    /// The answer to a request with `method` and `headers`.
    fn respond(&self, method: &Method, headers: &HeaderMap) -> Response<MetricsBody> {
        let head = method == Method::HEAD;
        if method != Method::GET && !head {
            let mut response = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed; use GET or HEAD\n".to_owned(),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let text = match self.render() {
            Ok(text) => text,
            Err(error) => {
                let reason = format!("cannot encode metrics: {error}\n");
                return plain(StatusCode::INTERNAL_SERVER_ERROR, reason);
            }
        };
        let mut response_headers = HeaderMap::new();
        response_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(TEXT_CONTENT_TYPE),
        );
        let body = self.encode(text, headers, &mut response_headers);
        if head {
            // The headers a GET would get, the length included, and no body.
            response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let mut response = Response::new(MetricsBody::new(if head { Vec::new() } else { body }));
        *response.headers_mut() = response_headers;
        response
    }

    /// The exposition as sent: gzip-encoded when the request accepts it.
    #[cfg(feature = "gzip")]
    fn encode(&self, text: String, request: &HeaderMap, response: &mut HeaderMap) -> Vec<u8> {
        // The body depends on `Accept-Encoding`: caches must know.
        response.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if !crate::compression::accepts_gzip(request) {
            return text.into_bytes();
        }
        match crate::compression::gzip(text.as_bytes()) {
            Ok(encoded) => {
                response.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                encoded
            }
            // Writing to a `Vec` does not fail; were it to, plain text is
            // still a valid answer.
            Err(_) => text.into_bytes(),
        }
    }

    /// The exposition as sent.
    #[cfg(not(feature = "gzip"))]
    fn encode(&self, text: String, _request: &HeaderMap, _response: &mut HeaderMap) -> Vec<u8> {
        text.into_bytes()
    }
}

/// A plain-text response with `status`.
fn plain(status: StatusCode, text: String) -> Response<MetricsBody> {
    let mut response = Response::new(MetricsBody::new(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl<B> Service<Request<B>> for MetricsExporter {
    type Response = Response<MetricsBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<MetricsBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.respond(request.method(), request.headers())))
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

    fn gzip_request(method: Method) -> Request<()> {
        let mut request = request(method);
        request.headers_mut().insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate"),
        );
        request
    }

    #[cfg(feature = "gzip")]
    fn gunzip(bytes: &[u8]) -> String {
        use std::io::Read;
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[cfg(feature = "gzip")]
    #[tokio::test]
    async fn get_is_gzip_encoded_when_the_scraper_accepts_it() {
        let exporter = exporter();
        let text = exporter.render().unwrap();
        let response = exporter.oneshot(gzip_request(Method::GET)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(response.headers()[header::VARY], "accept-encoding");
        assert_eq!(response.headers()[header::CONTENT_TYPE], TEXT_CONTENT_TYPE);
        assert_eq!(gunzip(response.body().as_bytes()), text);
    }

    #[cfg(feature = "gzip")]
    #[tokio::test]
    async fn head_with_gzip_gives_the_encoded_length() {
        let exporter = exporter();
        let get = exporter
            .clone()
            .oneshot(gzip_request(Method::GET))
            .await
            .unwrap();
        let head = exporter.oneshot(gzip_request(Method::HEAD)).await.unwrap();
        assert!(head.body().as_bytes().is_empty());
        assert_eq!(head.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(
            head.headers()[header::CONTENT_LENGTH],
            get.body().as_bytes().len().to_string().as_str()
        );
    }

    #[cfg(not(feature = "gzip"))]
    #[tokio::test]
    async fn without_the_gzip_feature_the_text_is_sent_as_is() {
        let response = exporter().oneshot(gzip_request(Method::GET)).await.unwrap();
        assert_eq!(response.headers().get(header::CONTENT_ENCODING), None);
        let text = std::str::from_utf8(response.body().as_bytes()).unwrap();
        assert!(text.contains("\nthings_total 3\n"), "{text}");
    }

    #[tokio::test]
    async fn get_renders_the_registry_with_a_versioned_content_type() {
        let response = exporter().oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = std::str::from_utf8(response.body().as_bytes()).unwrap();
        assert!(text.contains("\nthings_total 3\n"), "{text}");
        assert_eq!(response.headers().get(header::CONTENT_ENCODING), None);
    }

    #[tokio::test]
    async fn head_sends_the_headers_without_the_body() {
        let exporter = exporter();
        let length = exporter.render().unwrap().len();
        let response = exporter.oneshot(request(Method::HEAD)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.body().as_bytes().is_empty());
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
