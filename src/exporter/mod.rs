//! The scrape endpoint: a tower service that renders a registry for
//! Prometheus.
//!
//! `mod.rs` holds the service and how it answers, `format.rs` the formats
//! and their negotiation, `render.rs` one gathered registry and its
//! encodings, `text.rs`, `openmetrics.rs` and `protobuf.rs` the three,
//! `stats.rs` the exporter's own metrics, `future.rs`
//! the response future, `share.rs` how concurrent scrapes share one render,
//! `body.rs` the response body, `gzip.rs` the compression.

mod body;
mod error;
mod format;
mod future;
#[cfg(feature = "gzip")]
mod gzip;
mod openmetrics;
#[cfg(feature = "protobuf")]
pub(crate) mod protobuf;
mod render;
mod share;
mod stats;
mod text;
mod walk;

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use prometheus::Registry;
use tower_service::Service;

pub use self::{body::MetricsBody, error::ExporterError, format::Format, future::ScrapeFuture};
use self::{render::Rendered, share::Share};
use crate::limits::DEFAULT_MAX_WAITING_SCRAPES;

/// A [`Service`] that renders a [`Registry`] for Prometheus.
///
/// It answers `GET` and `HEAD` (whatever the path: mount it where the
/// scraper looks) and `405 Method Not Allowed` otherwise, in the
/// [`Format`] the scraper's `Accept` header ranks highest: text 0.0.4 by
/// default, OpenMetrics 1.0.0 (which Prometheus asks for first, and which
/// carries exemplars), or protobuf (with the `protobuf` feature; Prometheus
/// asks for it first when native histograms are on). Every format carries
/// everything in the registry. With the `gzip`
/// feature (on by default), the exposition is gzip-encoded when the
/// request's `Accept-Encoding` allows it, as Prometheus's always does. It
/// never fails; should encoding fail, it answers 500 with the reason.
///
/// Scrapes that arrive while a render is running (on another thread) wait
/// for it and share its bytes, so memory does not grow with the number of
/// scrapers; clones of an exporter share this too. Past
/// [`max_waiting_scrapes`](Self::max_waiting_scrapes) waiting scrapes, a
/// scrape is answered `503 Service Unavailable` with `Retry-After: 1`
/// rather than queued.
///
/// It mounts directly as an axum route service
/// (`Router::new().route_service("/metrics", exporter)`) and in a plain
/// hyper server; see the [crate docs](crate) for an example.
#[derive(Clone, Debug)]
pub struct MetricsExporter {
    registry: Registry,
    share: Arc<Share>,
    max_waiting: usize,
    stats: Option<stats::Stats>,
}

impl MetricsExporter {
    /// An exporter of `registry`: everything registered in it, the layer's
    /// metrics and any other.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            share: Arc::default(),
            max_waiting: DEFAULT_MAX_WAITING_SCRAPES,
            stats: None,
        }
    }

    /// Counts the exporter's own work in the registry it exports:
    /// `<namespace>_exporter_scrapes_total{format, outcome}` (`format`
    /// `text`, `openmetrics` or `protobuf`; `outcome` `ok`, `busy` for a
    /// 503, `error` for a 500), every series at zero from the start, and
    /// `<namespace>_exporter_render_seconds`, the time each render takes to
    /// gather the registry and encode it (scrapes that share a render count
    /// once).
    ///
    /// # Errors
    ///
    /// [`ExporterError::InvalidNamespace`] for a namespace that is not a
    /// metric name, [`ExporterError::AlreadyRegistered`] when the registry
    /// holds these names already (self-metrics turned on twice); nothing is
    /// registered then.
    ///
    /// ```
    /// use tower_prometheus::MetricsExporter;
    ///
    /// let registry = prometheus::Registry::new();
    /// let exporter = MetricsExporter::new(registry).self_metrics("ctms")?;
    /// let text = exporter.render()?;
    /// assert!(text.contains(r#"ctms_exporter_scrapes_total{format="openmetrics",outcome="busy"} 0"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn self_metrics(mut self, namespace: &str) -> Result<Self, ExporterError> {
        self.stats = Some(stats::Stats::register(&self.registry, namespace)?);
        Ok(self)
    }

    /// Sets how many scrapes may wait for a running render (default
    /// 16); more are answered 503 with
    /// `Retry-After`. With 0, a scrape that finds a render running is
    /// turned away at once.
    #[must_use]
    pub fn max_waiting_scrapes(mut self, max: usize) -> Self {
        self.max_waiting = max;
        self
    }

    /// The registry it renders.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders the registry in the text format 0.0.4.
    ///
    /// Each call renders afresh; only the service shares renders between
    /// concurrent scrapes.
    ///
    /// # Errors
    ///
    /// What the encoder reports, for example a metric family with no
    /// metrics, which the registries of the `prometheus` crate never return.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let buffer = self.render_as(Format::Text)?;
        // The text encoder writes UTF-8 only; lossy conversion keeps this
        // path free of panics all the same.
        Ok(match String::from_utf8(buffer) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        })
    }

    /// Renders the registry in `format`, with the layer's exemplars and
    /// native histograms where the format carries them.
    ///
    /// # Errors
    ///
    /// What the text encoder reports (see [`render`](Self::render)); the
    /// other formats do not fail.
    pub fn render_as(&self, format: Format) -> Result<Vec<u8>, prometheus::Error> {
        let (families, extras) = crate::extras::capture(|| self.registry.gather());
        render::encode(&families, &extras, format).map_err(prometheus::Error::Msg)
    }

    /// A render to share, encoded at once in the format of the scrape that
    /// runs it (so that its time is the render's).
    fn render_shared(&self, format: Format) -> Rendered {
        let started = std::time::Instant::now();
        let rendered = Rendered::gather(&self.registry);
        let _ = rendered.encoded(format);
        if let Some(stats) = &self.stats {
            stats.rendered(started);
        }
        rendered
    }

    /// Counts a scrape's answer, when self-metrics are on.
    fn answered(&self, format: Format, outcome: stats::Outcome) {
        if let Some(stats) = &self.stats {
            stats.answered(format, outcome);
        }
    }
}

/// How a scrape asked to be answered.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wanted {
    head: bool,
    format: Format,
    #[cfg_attr(not(feature = "gzip"), allow(dead_code))]
    gzip: bool,
}

impl Wanted {
    fn of(method: &Method, headers: &HeaderMap) -> Self {
        #[cfg(feature = "gzip")]
        let gzip = gzip::accepts_gzip(headers);
        #[cfg(not(feature = "gzip"))]
        let gzip = {
            let _ = headers;
            false
        };
        Self {
            head: method == Method::HEAD,
            format: Format::negotiate(headers),
            gzip,
        }
    }
}

/// The answer to a scrape from a shared render.
fn respond(
    exporter: &MetricsExporter,
    rendered: &Rendered,
    wanted: Wanted,
) -> Response<MetricsBody> {
    let text = match rendered.encoded(wanted.format) {
        Ok(text) => text,
        Err(error) => {
            exporter.answered(wanted.format, stats::Outcome::Error);
            let reason = format!("cannot encode metrics: {error}\n");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, reason);
        }
    };
    exporter.answered(wanted.format, stats::Outcome::Ok);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(wanted.format.content_type()),
    );
    // The body depends on `Accept`: caches must know.
    headers.insert(header::VARY, HeaderValue::from_static(VARY));
    let body = encode(rendered, text, wanted, &mut headers);
    if wanted.head {
        // The headers a GET would get, the length included, and no body.
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let mut response = Response::new(MetricsBody::new(if wanted.head {
        Bytes::new()
    } else {
        body
    }));
    *response.headers_mut() = headers;
    response
}

/// The headers the answer depends on.
#[cfg(feature = "gzip")]
const VARY: &str = "accept, accept-encoding";
#[cfg(not(feature = "gzip"))]
const VARY: &str = "accept";

/// The exposition as sent: gzip-encoded when the request accepts it.
#[cfg(feature = "gzip")]
fn encode(rendered: &Rendered, text: &Bytes, wanted: Wanted, headers: &mut HeaderMap) -> Bytes {
    if !wanted.gzip {
        return text.clone();
    }
    match rendered.gzipped(wanted.format) {
        Some(encoded) => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            encoded
        }
        None => text.clone(),
    }
}

/// The exposition as sent.
#[cfg(not(feature = "gzip"))]
fn encode(_rendered: &Rendered, text: &Bytes, _wanted: Wanted, _headers: &mut HeaderMap) -> Bytes {
    text.clone()
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

fn method_not_allowed() -> Response<MetricsBody> {
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed; use GET or HEAD\n".to_owned(),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

fn busy() -> Response<MetricsBody> {
    let mut response = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many scrapes at once; retry in a second\n".to_owned(),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

impl<B> Service<Request<B>> for MetricsExporter {
    type Response = Response<MetricsBody>;
    type Error = Infallible;
    type Future = ScrapeFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.method();
        if method != Method::GET && method != Method::HEAD {
            return ScrapeFuture::answered(method_not_allowed());
        }
        ScrapeFuture::new(self.clone(), Wanted::of(method, request.headers()))
    }
}

#[cfg(test)]
#[cfg(not(loom))]
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
        assert_eq!(response.headers()[header::VARY], "accept, accept-encoding");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            Format::Text.content_type()
        );
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
    async fn self_metrics_count_scrapes_by_format_and_start_at_zero() {
        let exporter = exporter().self_metrics("app").unwrap();
        let mut openmetrics = request(Method::GET);
        openmetrics.headers_mut().insert(
            header::ACCEPT,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0"),
        );
        let response = exporter.clone().oneshot(openmetrics).await.unwrap();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            Format::OpenMetrics.content_type()
        );
        let text = exporter.render().unwrap();
        for (format, outcome, count) in [
            ("openmetrics", "ok", 1),
            ("openmetrics", "busy", 0),
            ("text", "ok", 0),
            ("text", "error", 0),
        ] {
            let line = format!(
                "app_exporter_scrapes_total{{format=\"{format}\",outcome=\"{outcome}\"}} {count}\n"
            );
            assert!(text.contains(&line), "{line}in\n{text}");
        }
        assert!(
            text.contains("app_exporter_render_seconds_count 1\n"),
            "{text}"
        );
    }

    #[test]
    fn self_metrics_twice_or_misnamed_is_a_build_error() {
        let exporter = exporter().self_metrics("app").unwrap();
        let again = exporter.clone().self_metrics("app").unwrap_err();
        assert!(
            matches!(&again, ExporterError::AlreadyRegistered { metric, .. } if metric == "app_exporter_scrapes_total"),
            "{again:?}"
        );
        let misnamed = exporter.self_metrics("not a name").unwrap_err();
        assert!(
            matches!(misnamed, ExporterError::InvalidNamespace { .. }),
            "{misnamed:?}"
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

    /// A collector whose first collect blocks until the test lets it go,
    /// telling the test when it has started.
    struct Gate {
        desc: prometheus::core::Desc,
        entered: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
        release: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
        collects: std::sync::atomic::AtomicUsize,
    }

    impl prometheus::core::Collector for Gate {
        fn desc(&self) -> Vec<&prometheus::core::Desc> {
            vec![&self.desc]
        }

        fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
            self.collects
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Some(entered) = self.entered.lock().unwrap().take() {
                entered.send(()).unwrap();
                let release = self.release.lock().unwrap().take().unwrap();
                release.recv().unwrap();
            }
            Vec::new()
        }
    }

    fn poll_once(future: &mut ScrapeFuture) -> Poll<Response<MetricsBody>> {
        let waker = crate::test_helpers::noop_waker();
        let mut cx = Context::from_waker(&waker);
        std::pin::Pin::new(future)
            .poll(&mut cx)
            .map(|result| result.unwrap())
    }

    use std::future::Future;

    #[test]
    fn scrapes_during_a_render_share_it_and_the_excess_is_turned_away() {
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel();
        let gate = Arc::new(Gate {
            desc: prometheus::core::Desc::new(
                "gate".into(),
                "gate".into(),
                Vec::new(),
                Default::default(),
            )
            .unwrap(),
            entered: std::sync::Mutex::new(Some(entered_tx)),
            release: std::sync::Mutex::new(Some(release_rx)),
            collects: Default::default(),
        });
        struct Shared(Arc<Gate>);
        impl prometheus::core::Collector for Shared {
            fn desc(&self) -> Vec<&prometheus::core::Desc> {
                self.0.desc()
            }
            fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
                self.0.collect()
            }
        }
        let exporter = exporter()
            .max_waiting_scrapes(3)
            .self_metrics("exporter")
            .unwrap();
        exporter
            .registry()
            .register(Box::new(Shared(gate.clone())))
            .unwrap();

        // The first scrape renders on another thread and is held in collect.
        let mut service = exporter.clone();
        let first = std::thread::spawn(move || {
            let mut future = Service::call(&mut service, request(Method::GET));
            match poll_once(&mut future) {
                Poll::Ready(response) => response,
                Poll::Pending => panic!("a lone scrape renders at once"),
            }
        });
        entered_rx.recv().unwrap();

        // Meanwhile: three wait, the fourth and fifth are turned away.
        let mut waiting: Vec<ScrapeFuture> = (0..3)
            .map(|_| Service::call(&mut exporter.clone(), request(Method::GET)))
            .collect();
        for future in &mut waiting {
            assert!(poll_once(future).is_pending());
        }
        for _ in 0..2 {
            let mut future = Service::call(&mut exporter.clone(), request(Method::GET));
            let Poll::Ready(response) = poll_once(&mut future) else {
                panic!("past the bound, a scrape is answered at once");
            };
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
        // A waiting scrape whose client went away frees its place.
        drop(waiting.pop());

        release_tx.send(()).unwrap();
        let first = first.join().unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        for future in &mut waiting {
            let Poll::Ready(response) = poll_once(future) else {
                panic!("the render it waited for has finished");
            };
            assert_eq!(response.status(), StatusCode::OK);
            // The very same bytes: one copy for every scrape.
            assert_eq!(
                response.body().as_bytes().as_ptr(),
                first.body().as_bytes().as_ptr()
            );
        }
        assert_eq!(gate.collects.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Once every waiting scrape is answered, the exporter keeps no copy.
        assert!(!exporter.share.holds_a_render());

        // The next scrape renders afresh, and a lone render is not kept.
        let mut exporter = exporter;
        let mut next = Service::call(&mut exporter, request(Method::GET));
        assert!(poll_once(&mut next).is_ready());
        assert_eq!(gate.collects.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(!exporter.share.holds_a_render());
        // Its own metrics saw two renders, four answers and two refusals.
        let text = exporter.render().unwrap();
        for line in [
            "exporter_exporter_scrapes_total{format=\"text\",outcome=\"ok\"} 4\n",
            "exporter_exporter_scrapes_total{format=\"text\",outcome=\"busy\"} 2\n",
            "exporter_exporter_render_seconds_count 2\n",
        ] {
            assert!(text.contains(line), "{line}in\n{text}");
        }
    }

    #[test]
    fn a_render_lost_in_a_panic_is_redone_by_a_waiting_scrape() {
        struct Panics(
            prometheus::core::Desc,
            std::sync::Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
        );
        impl prometheus::core::Collector for Panics {
            fn desc(&self) -> Vec<&prometheus::core::Desc> {
                vec![&self.0]
            }
            fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
                let taken = self.1.lock().unwrap().take();
                if let Some((entered, release)) = taken {
                    entered.send(()).unwrap();
                    release.recv().unwrap();
                    panic!("collector exploded");
                }
                Vec::new()
            }
        }
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel();
        let mut exporter = exporter();
        let desc =
            prometheus::core::Desc::new("p".into(), "p".into(), Vec::new(), Default::default())
                .unwrap();
        exporter
            .registry()
            .register(Box::new(Panics(
                desc,
                std::sync::Mutex::new(Some((entered_tx, release_rx))),
            )))
            .unwrap();
        let mut service = exporter.clone();
        let first = std::thread::spawn(move || {
            let mut future = Service::call(&mut service, request(Method::GET));
            let _ = poll_once(&mut future);
        });
        entered_rx.recv().unwrap();
        let mut waiting = Service::call(&mut exporter, request(Method::GET));
        assert!(poll_once(&mut waiting).is_pending());
        release_tx.send(()).unwrap();
        assert!(first.join().is_err(), "the first render panicked");
        let Poll::Ready(response) = poll_once(&mut waiting) else {
            panic!("the waiting scrape renders itself");
        };
        assert_eq!(response.status(), StatusCode::OK);
        assert!(std::str::from_utf8(response.body().as_bytes())
            .unwrap()
            .contains("things_total 3"));
    }

    /// A collector whose every collect waits for the test's go-ahead,
    /// telling the test when it starts.
    struct Stepped {
        desc: prometheus::core::Desc,
        entered: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
        release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl prometheus::core::Collector for Stepped {
        fn desc(&self) -> Vec<&prometheus::core::Desc> {
            vec![&self.desc]
        }

        fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
            self.entered.lock().unwrap().send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
            Vec::new()
        }
    }

    #[test]
    fn a_scrape_never_takes_a_render_that_started_before_it_arrived() {
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let mut exporter = exporter();
        let desc =
            prometheus::core::Desc::new("s".into(), "s".into(), Vec::new(), Default::default())
                .unwrap();
        exporter
            .registry()
            .register(Box::new(Stepped {
                desc,
                entered: std::sync::Mutex::new(entered_tx),
                release: std::sync::Mutex::new(release_rx),
            }))
            .unwrap();
        let render_on_a_thread = |exporter: &MetricsExporter| {
            let mut service = exporter.clone();
            std::thread::spawn(move || {
                let mut future = Service::call(&mut service, request(Method::GET));
                poll_once(&mut future).is_ready()
            })
        };

        // Render 1 runs; scrape A waits for it; it finishes, A not yet told.
        let first = render_on_a_thread(&exporter);
        entered.recv().unwrap();
        let mut a = Service::call(&mut exporter.clone(), request(Method::GET));
        assert!(poll_once(&mut a).is_pending());
        release.send(()).unwrap();
        assert!(first.join().unwrap());

        // Render 2 runs; scrape B arrives during it: render 1's bytes, still
        // kept for A, are older than B and must not be its answer.
        let second = render_on_a_thread(&exporter);
        entered.recv().unwrap();
        let mut b = Service::call(&mut exporter, request(Method::GET));
        assert!(poll_once(&mut b).is_pending());
        assert!(
            poll_once(&mut b).is_pending(),
            "B took a render from before it arrived"
        );
        assert!(
            poll_once(&mut a).is_ready(),
            "A takes the render it waited for"
        );
        release.send(()).unwrap();
        assert!(second.join().unwrap());
        assert!(poll_once(&mut b).is_ready());
    }
}
