//! The middleware service: starts the clock and resolves the route.

use std::{
    marker::PhantomData,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower_service::Service;

use http_body::Body;

use crate::{
    body::ResponseBody,
    future::Guard,
    grpc::is_grpc_request,
    recorder::{Pending, Recorder, Tally},
    request_body::{sealed::Counter, PassRequestBody, RequestBodyMode},
    ResponseFuture,
};

/// Middleware that records Prometheus metrics for every request whose path
/// matches a registered route template.
///
/// Built by [`RequestMetricsLayer`](crate::RequestMetricsLayer); see the
/// [crate docs](crate) for an example. `M` says how request bodies reach
/// the inner service; see [`RequestBodyMode`](crate::RequestBodyMode).
#[derive(Clone, Debug)]
pub struct RequestMetrics<S, M = PassRequestBody> {
    inner: S,
    recorder: Arc<Recorder>,
    mode: PhantomData<M>,
}

impl<S, M> RequestMetrics<S, M> {
    pub(crate) fn new(inner: S, recorder: Arc<Recorder>) -> Self {
        Self {
            inner,
            recorder,
            mode: PhantomData,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Starts the record of a request: under the template it names (axum's
    /// `MatchedPath`, when the layer takes it), else under the one its path
    /// matches.
    #[inline]
    fn start<B>(&self, request: &Request<B>) -> Option<(Pending, Option<Tally>)> {
        let recorder = &self.recorder;
        #[cfg(feature = "axum")]
        if recorder.options().matched_templates {
            if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
                return recorder.start_template(
                    matched.as_str(),
                    request.uri().path(),
                    request.method(),
                );
            }
        }
        recorder.start(request.uri().path(), request.method())
    }

    /// Reads what the request itself says about its record into its
    /// guard: whether it is a gRPC call, its client id and its trace; for
    /// an unrecorded request, nothing (no user code runs for it).
    ///
    /// Fills the guard where it lies rather than building one and
    /// returning it: the guard is moved whole on every return, and that
    /// move cost about 50 instructions per request.
    #[inline]
    fn read_request<B>(&self, guard: &mut Guard, request: &Request<B>) {
        let options = self.recorder.options();
        let Some(pending) = guard.pending_mut() else {
            return;
        };
        if is_grpc_request(request.method(), request.headers()) {
            pending.set_grpc(true);
        }
        if let Some(read) = options.client_ids.reader() {
            // A panic in the user's reader is recorded as 500, like one in
            // the inner service.
            guard.run_user_code(|pending| {
                if let (Some(pending), Some(id)) = (pending, (read.0)(request.headers())) {
                    pending.set_request_client(id);
                }
            });
        }
        if let Some(read) = &options.exemplars {
            guard.run_user_code(|pending| {
                let trace = (read.0)(request.headers());
                if let Some(pending) = pending {
                    pending.set_trace(trace);
                }
            });
        }
    }
}

/// The response of a wrapped axum service as axum's own.
#[cfg(feature = "axum")]
type ToAxumResponse = fn(Response<ResponseBody<axum::body::Body>>) -> axum::response::Response;

/// What [`RequestMetrics::into_make_service`] returns.
#[cfg(feature = "axum")]
pub type IntoAxumMakeService<S> =
    axum::routing::IntoMakeService<tower::util::MapResponse<RequestMetrics<S>, ToAxumResponse>>;

#[cfg(feature = "axum")]
impl<S> RequestMetrics<S>
where
    S: Service<axum::extract::Request, Response = axum::response::Response>,
{
    /// The wrapped service (typically a whole axum `Router`) as a make
    /// service for `axum::serve`, its responses turned back into axum's
    /// `Response`:
    ///
    /// ```no_run
    /// use axum::{routing::get, Router};
    /// use tower::Layer;
    /// use tower_prometheus::{RequestMetricsLayer, Route};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = prometheus::Registry::new();
    /// let metrics = RequestMetricsLayer::builder()
    ///     .route(Route::new("/users/{id}"))
    ///     .build(&registry)?;
    /// let app = Router::new().route("/users/{id}", get(|| async { "user" }));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// axum::serve(listener, metrics.layer(app).into_make_service()).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// `axum::serve(listener, metrics.layer(app))` itself cannot compile:
    /// `axum::serve` takes a `Router` or a make service, and a wrapped
    /// router answers with this crate's [`ResponseBody`], not axum's body.
    /// Around the whole router the layer sees requests before axum routes
    /// them, so it resolves them against its registered routes; for
    /// templates from axum, add it with `Router::layer` instead (see
    /// [`Builder::templates_from_matched_path`](crate::Builder::templates_from_matched_path)).
    pub fn into_make_service(self) -> IntoAxumMakeService<S> {
        let to_axum: ToAxumResponse = |response| response.map(axum::body::Body::new);
        axum::ServiceExt::<axum::extract::Request>::into_make_service(tower::ServiceExt::<
            axum::extract::Request,
        >::map_response(
            self, to_axum
        ))
    }
}

/// One impl for both body modes: `M` decides what the inner service
/// receives ([`RequestBodyMode`]).
impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for RequestMetrics<S, M>
where
    M: RequestBodyMode,
    S: Service<Request<M::Body<ReqBody>>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let Some((pending, tally)) = self.start(&request) else {
            // Not recorded: nothing to guard, and no body bytes to count.
            let request = M::wrap(request, Counter(None));
            return ResponseFuture::new(self.inner.call(request), Guard::new(None, None, false));
        };
        let at_body_end = self.recorder.options().at_body_end();
        let mut guard = Guard::new(Some(pending), tally, at_body_end);
        self.read_request(&mut guard, &request);
        let counter = Counter(if M::COUNTS {
            guard.request_bytes()
        } else {
            None
        });
        let request = M::wrap(request, counter);
        let inner = guard.run_user_code(|_| self.inner.call(request));
        ResponseFuture::new(inner, guard)
    }
}
