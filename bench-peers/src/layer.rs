//! The tower layer both peers share; they differ only in their [`Record`].

use std::{
    error::Error,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::{Duration, Instant},
};

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use prometheus::Registry;
use tower::{Layer, Service};

use crate::ctms::{self, Families};

/// How a finished request is written to the metric families.
pub trait Record: Send + Sync + 'static {
    /// A recorder writing to `families`.
    fn new(families: Families) -> Self;

    /// Records one finished request.
    fn record(&self, sample: &Sample<'_>);
}

/// One finished request whose path matched a template.
#[derive(Debug)]
pub struct Sample<'a> {
    /// The index of the matched template.
    pub route: usize,
    /// The matched template.
    pub template: &'a str,
    /// The method's index in the label table; see [`Sample::method_label`].
    pub method: u8,
    /// The response status, or 500 if the inner service failed.
    pub status: StatusCode,
    /// The client id header's value, if present and visible ASCII.
    pub client_id: Option<&'a str>,
    /// From `call` to the response.
    pub elapsed: Duration,
}

impl Sample<'_> {
    /// The `method` label value.
    pub fn method_label(&self) -> &'static str {
        ctms::METHODS[usize::from(self.method)]
    }

    /// The `status_code_family` label value.
    pub fn family_label(&self) -> &'static str {
        ctms::family_label(self.status)
    }

    /// The first digit of the status code.
    pub fn family(&self) -> u8 {
        ctms::family_index(self.status)
    }
}

struct Shared<R> {
    routes: matchit::Router<usize>,
    templates: Vec<String>,
    client_header: HeaderName,
    recorder: R,
}

/// Records CTMS request metrics for the templates it was built with.
pub struct MetricsLayer<R> {
    shared: Arc<Shared<R>>,
}

impl<R: Record> MetricsLayer<R> {
    /// Registers the CTMS families in `registry` and routes `templates`
    /// (matchit syntax); the client id is read from `client_header`.
    pub fn new<'t>(
        registry: &Registry,
        templates: impl IntoIterator<Item = &'t str>,
        client_header: HeaderName,
    ) -> Result<Self, Box<dyn Error + Send + Sync>> {
        let mut routes = matchit::Router::new();
        let mut names = Vec::new();
        for (index, template) in templates.into_iter().enumerate() {
            routes.insert(template, index)?;
            names.push(template.to_owned());
        }
        let recorder = R::new(Families::register(registry)?);
        Ok(Self {
            shared: Arc::new(Shared {
                routes,
                templates: names,
                client_header,
                recorder,
            }),
        })
    }
}

impl<R> Clone for MetricsLayer<R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<R> fmt::Debug for MetricsLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("templates", &self.shared.templates)
            .finish_non_exhaustive()
    }
}

impl<S, R> Layer<S> for MetricsLayer<R> {
    type Service = MetricsService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`MetricsLayer`] wraps around an inner service.
pub struct MetricsService<S, R> {
    inner: S,
    shared: Arc<Shared<R>>,
}

impl<S: Clone, R> Clone for MetricsService<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for MetricsService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for MetricsService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: Record,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let pending = match self.shared.routes.at(request.uri().path()) {
            Ok(matched) => Some(Pending {
                route: *matched.value,
                method: ctms::method_index(request.method()),
                client: request.headers().get(&self.shared.client_header).cloned(),
                shared: Arc::clone(&self.shared),
                start: Instant::now(),
            }),
            Err(_) => None,
        };
        ResponseFuture {
            inner: self.inner.call(request),
            pending,
        }
    }
}

struct Pending<R> {
    shared: Arc<Shared<R>>,
    route: usize,
    method: u8,
    client: Option<HeaderValue>,
    start: Instant,
}

impl<R: Record> Pending<R> {
    fn finish(self, status: StatusCode) {
        let elapsed = self.start.elapsed();
        self.shared.recorder.record(&Sample {
            route: self.route,
            template: &self.shared.templates[self.route],
            method: self.method,
            status,
            client_id: self.client.as_ref().and_then(|v| v.to_str().ok()),
            elapsed,
        });
    }
}

pin_project! {
    /// Records the request once the inner future is ready.
    pub struct ResponseFuture<F, R> {
        #[pin]
        inner: F,
        pending: Option<Pending<R>>,
    }
}

impl<F, R> fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("recording", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, R, B, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<Response<B>, E>>,
    R: Record,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(pending) = this.pending.take() {
            let status = match &result {
                Ok(response) => response.status(),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            pending.finish(status);
        }
        Poll::Ready(result)
    }
}
