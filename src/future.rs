//! The response future: finishes the record when the inner future is
//! ready, fails, panics or is dropped.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::Response;
use pin_project_lite::pin_project;

use crate::{
    client_id::ClientSlot,
    clock::{elapsed_ns, Instant},
    labels::Status,
    recorder::Shard,
    routes::RouteId,
    ClientId,
};

pin_project! {
    /// Response future of [`RequestMetrics`](crate::RequestMetrics).
    ///
    /// Records the request exactly once: when the inner future is ready
    /// (with the response's status, or 500 for an error), or when this
    /// future is dropped first (499, or 500 if the inner service panicked).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        guard: Guard,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, guard: Guard) -> Self {
        Self { inner, guard }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // If the inner future panics, `in_inner` stays set and the guard,
        // dropped during or after the unwind, records a 500.
        this.guard.in_inner = true;
        let poll = this.inner.poll(cx);
        this.guard.in_inner = false;
        let result = match poll {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        match &result {
            Ok(response) => this.guard.finish(
                Status::of(response.status()),
                response.extensions().get::<ClientId>(),
            ),
            Err(_) => this.guard.finish(Status::INTERNAL_SERVER_ERROR, None),
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &format_args!(".."))
            .field("guard", &self.guard)
            .finish()
    }
}

/// A request that has started and is not recorded yet.
pub(crate) struct Pending {
    pub(crate) shard: Arc<Shard>,
    pub(crate) route: RouteId,
    pub(crate) method: usize,
    /// The client id read from the request, if any; a `ClientId` in the
    /// response extensions takes precedence.
    pub(crate) client: Option<ClientSlot>,
    pub(crate) start: Instant,
}

impl Pending {
    fn record(self, status: Status, response_client: Option<&ClientId>) {
        let client = match response_client {
            Some(id) => Some(self.shard.common.clients.slot(id.as_str())),
            None => self.client,
        };
        let elapsed = elapsed_ns(self.start);
        self.shard
            .record(self.route, self.method, status, client, elapsed);
    }
}

/// Records on drop what was not recorded on completion.
///
/// A plain field rather than a pinned drop: it needs no pinning, and it is
/// also dropped when the inner service's `call` unwinds, before any future
/// exists.
pub(crate) struct Guard {
    /// `Some` until the request is recorded; `None` for paths that are not
    /// recorded at all.
    pending: Option<Pending>,
    /// Set while the inner service's `call` or `poll` runs, so a drop with
    /// it set means that code panicked.
    pub(crate) in_inner: bool,
}

impl Guard {
    pub(crate) fn new(pending: Option<Pending>) -> Self {
        Self {
            pending,
            in_inner: false,
        }
    }

    fn finish(&mut self, status: Status, client: Option<&ClientId>) {
        if let Some(pending) = self.pending.take() {
            pending.record(status, client);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Nothing in here may panic: this can run during an unwind, where a
        // second panic aborts the process. Recording only does atomic adds
        // and, at worst, claims a client slot.
        if let Some(pending) = self.pending.take() {
            let status = if self.in_inner || std::thread::panicking() {
                Status::INTERNAL_SERVER_ERROR
            } else {
                Status::CLIENT_CLOSED_REQUEST
            };
            pending.record(status, None);
        }
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("recorded", &self.pending.is_none())
            .finish()
    }
}
