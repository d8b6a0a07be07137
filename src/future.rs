//! The response future: finishes the record when the inner future is
//! ready, fails, panics or is dropped.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;
use pin_project_lite::pin_project;

use crate::{labels::Status, recorder::Pending, ClientId};

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
        if !this.guard.is_pending() {
            // Not recorded (an unmatched path), or recorded already.
            return this.inner.poll(cx);
        }
        let inner = this.inner;
        let poll = this.guard.run_user_code(|_| inner.poll(cx));
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

/// Records on drop what was not recorded on completion.
///
/// A plain field rather than a pinned drop: it needs no pinning, and it is
/// also dropped when the inner service's `call` unwinds, before any future
/// exists.
pub(crate) struct Guard {
    /// `Some` until the request is recorded; `None` for paths that are not
    /// recorded at all.
    pending: Option<Pending>,
    /// Set while user code (the inner service's `call` or `poll`, the client
    /// id reader) runs, so a drop with it set means that code panicked.
    in_user_code: bool,
}

impl Guard {
    pub(crate) fn new(pending: Option<Pending>) -> Self {
        Self {
            pending,
            in_user_code: false,
        }
    }

    /// Whether the request is still to be recorded.
    #[inline]
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Runs user code that may panic: if it does, the guard is dropped in
    /// the unwind (or after it) with the flag still set, and records 500.
    #[inline]
    pub(crate) fn run_user_code<T>(&mut self, f: impl FnOnce(Option<&mut Pending>) -> T) -> T {
        self.in_user_code = true;
        let result = f(self.pending.as_mut());
        self.in_user_code = false;
        result
    }

    fn finish(&mut self, status: Status, client: Option<&ClientId>) {
        if let Some(pending) = self.pending.take() {
            pending.finish(status, client);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Nothing in here may panic: this can run during an unwind, where a
        // second panic aborts the process. Recording only does atomic adds
        // and, at worst, claims a client slot.
        if let Some(pending) = self.pending.take() {
            let status = if self.in_user_code || std::thread::panicking() {
                Status::INTERNAL_SERVER_ERROR
            } else {
                Status::CLIENT_CLOSED_REQUEST
            };
            pending.finish(status, None);
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
