//! The strongest plain use of the prometheus crate we could write: every
//! (route, method, status) series' handles resolved once into a flat table
//! of write-once slots indexed densely, the shared state leaked to a
//! `&'static` so that no reference count is touched per request, and a read
//! lock taken only for the per-client counter.

use std::{
    collections::HashMap,
    error::Error,
    fmt,
    future::Future,
    pin::Pin,
    sync::{OnceLock, PoisonError, RwLock},
    task::{ready, Context, Poll},
    time::Instant,
};

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use prometheus::{Histogram, IntCounter, Registry};
use tower::{Layer, Service};

use crate::{
    api_key::{ApiKey, ApiKeyParts, ApiKeyRef},
    ctms::{self, Families},
};

/// Status codes per (route, method): 100 to 999.
const CODES: usize = 900;
/// Method label values.
const METHODS: usize = 10;

/// The handles of one (route, method, status code) series.
#[derive(Debug)]
struct Series {
    requests: IntCounter,
    duration: Histogram,
}

#[derive(Debug)]
struct Shared {
    routes: matchit::Router<usize>,
    templates: Vec<String>,
    client_header: HeaderName,
    families: Families,
    /// Indexed by `(route × METHODS + method) × CODES + code − 100`.
    series: Box<[OnceLock<Series>]>,
    api: RwLock<HashMap<ApiKey, IntCounter>>,
}

impl Shared {
    fn series(&self, route: usize, method: u8, status: StatusCode) -> &Series {
        let code = usize::from(status.as_u16()) - 100;
        let index = (route * METHODS + usize::from(method)) * CODES + code;
        self.series[index].get_or_init(|| {
            let method = ctms::METHODS[usize::from(method)];
            let template = self.templates[route].as_str();
            let family = ctms::family_label(status);
            Series {
                requests: self.families.requests.with_label_values(&[
                    method,
                    template,
                    status.as_str(),
                    family,
                ]),
                duration: self
                    .families
                    .duration
                    .with_label_values(&[method, template, family]),
            }
        })
    }

    fn record_api(&self, route: usize, method: u8, status: StatusCode, client_id: &str) {
        let probe = ApiKeyRef {
            route,
            method,
            family: ctms::family_index(status),
            client_id,
        };
        {
            let api = self.api.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(counter) = api.get(&probe as &dyn ApiKeyParts) {
                counter.inc();
                return;
            }
        }
        let mut api = self.api.write().unwrap_or_else(PoisonError::into_inner);
        api.entry(ApiKey {
            route,
            method,
            family: probe.family,
            client_id: client_id.into(),
        })
        .or_insert_with(|| {
            self.families.api.with_label_values(&[
                client_id,
                ctms::METHODS[usize::from(method)],
                &self.templates[route],
                ctms::family_label(status),
            ])
        })
        .inc();
    }
}

/// Records CTMS request metrics through a flat table of resolved handles.
#[derive(Clone, Copy)]
pub struct FlatTableLayer {
    shared: &'static Shared,
}

impl FlatTableLayer {
    /// Registers the CTMS families in `registry` and routes `templates`; the
    /// client id is read from `client_header`. The shared state lives for
    /// the rest of the process, as a server's does.
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
        let series = (0..names.len() * METHODS * CODES)
            .map(|_| OnceLock::new())
            .collect();
        let shared = Box::leak(Box::new(Shared {
            routes,
            templates: names,
            client_header,
            families: Families::register(registry)?,
            series,
            api: RwLock::default(),
        }));
        Ok(Self { shared })
    }
}

impl fmt::Debug for FlatTableLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlatTableLayer")
            .field("templates", &self.shared.templates)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for FlatTableLayer {
    type Service = FlatTableService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FlatTableService {
            inner,
            shared: self.shared,
        }
    }
}

/// The service [`FlatTableLayer`] wraps around an inner service.
#[derive(Clone)]
pub struct FlatTableService<S> {
    inner: S,
    shared: &'static Shared,
}

impl<S: fmt::Debug> fmt::Debug for FlatTableService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlatTableService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FlatTableService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = FlatTableFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let shared = self.shared;
        let pending = match shared.routes.at(request.uri().path()) {
            Ok(matched) => Some(Pending {
                shared,
                route: *matched.value,
                method: ctms::method_index(request.method()),
                client: request.headers().get(&shared.client_header).cloned(),
                start: Instant::now(),
            }),
            Err(_) => None,
        };
        FlatTableFuture {
            inner: self.inner.call(request),
            pending,
        }
    }
}

struct Pending {
    shared: &'static Shared,
    route: usize,
    method: u8,
    client: Option<HeaderValue>,
    start: Instant,
}

impl Pending {
    fn finish(self, status: StatusCode) {
        let elapsed = self.start.elapsed();
        let series = self.shared.series(self.route, self.method, status);
        series.requests.inc();
        series.duration.observe(elapsed.as_secs_f64());
        if let Some(client_id) = self.client.as_ref().and_then(|v| v.to_str().ok()) {
            self.shared
                .record_api(self.route, self.method, status, client_id);
        }
    }
}

pin_project! {
    /// Records the request once the inner future is ready.
    pub struct FlatTableFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F> fmt::Debug for FlatTableFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlatTableFuture")
            .field("recording", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for FlatTableFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
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
