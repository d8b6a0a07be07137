//! The response future: finishes the record when the inner future is
//! ready, fails, panics or is dropped, or hands it on to the response body.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use crate::{
    body::{ResponseBody, Tracker},
    labels::Status,
    recorder::{Pending, RequestBytes, Tally},
};

pin_project! {
    /// Response future of [`RequestMetrics`](crate::RequestMetrics).
    ///
    /// Records the request exactly once: when the inner future is ready
    /// (with the response's status, or 500 for an error), or when this
    /// future is dropped first (499, or 500 if the inner service panicked).
    /// A request recorded at the end of its body (see
    /// [`RecordingPoint`](crate::RecordingPoint), and gRPC calls) is handed
    /// on to the [`ResponseBody`].
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
    B: Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if !this.guard.is_active() {
            // Not recorded (an unmatched path): only the body type changes.
            let result = ready!(this.inner.poll(cx));
            return Poll::Ready(
                result.map(|response| response.map(|body| ResponseBody::new(body, None))),
            );
        }
        let inner = this.inner;
        let result = ready!(this.guard.run_user_code(|_| inner.poll(cx)));
        Poll::Ready(match result {
            Ok(response) => Ok(this.guard.respond(response)),
            Err(error) => {
                this.guard.fail();
                Err(error)
            }
        })
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

/// Records on drop what was not recorded on completion, and ends the tally
/// of a request that never got a body.
///
/// A plain field rather than a pinned drop: it needs no pinning, and it is
/// also dropped when the inner service's `call` unwinds, before any future
/// exists.
pub(crate) struct Guard {
    /// `Some` until the request is recorded or handed on to the body; `None`
    /// for paths that are not recorded at all.
    pending: Option<Pending>,
    /// The in-flight gauge and byte count, handed on to the body.
    tally: Option<Tally>,
    /// Whether requests are recorded at the end of their body.
    at_body_end: bool,
    /// Set while user code (the inner service's `call` or `poll`, the client
    /// id reader) runs, so a drop with it set means that code panicked.
    in_user_code: bool,
}

impl Guard {
    pub(crate) fn new(pending: Option<Pending>, tally: Option<Tally>, at_body_end: bool) -> Self {
        Self {
            pending,
            tally,
            at_body_end,
            in_user_code: false,
        }
    }

    /// The record of a request that has not been recorded yet.
    #[inline]
    pub(crate) fn pending_mut(&mut self) -> Option<&mut Pending> {
        self.pending.as_mut()
    }

    /// A counter of the request's body bytes, for a recorded request.
    pub(crate) fn request_bytes(&self) -> Option<RequestBytes> {
        self.pending.as_ref().map(Pending::request_bytes)
    }

    /// Whether anything is left to record or count.
    #[inline]
    fn is_active(&self) -> bool {
        self.pending.is_some() || self.tally.is_some()
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

    /// Records the request with its response head, or hands the record on
    /// to the body.
    #[inline]
    fn respond<B: Body>(&mut self, response: Response<B>) -> Response<ResponseBody<B>> {
        if let (Some(pending), None, false) = (&self.pending, &self.tally, self.at_body_end) {
            if !pending.is_grpc() {
                // The common case: recorded now, nothing left for the body.
                if let Some(pending) = self.pending.take() {
                    pending.finish(Status::of(response.status()), response.extensions().get());
                }
                return response.map(|body| ResponseBody::new(body, None));
            }
        }
        let tracker = Tracker::for_response(
            self.pending.take(),
            self.tally.take(),
            self.at_body_end,
            &response,
        );
        response.map(|body| ResponseBody::new(body, tracker))
    }

    /// Records an inner error: 500 (`UNKNOWN` for a gRPC call).
    fn fail(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish_unanswered(false);
        }
        self.tally = None;
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        // Nothing in here may panic: this can run during an unwind, where a
        // second panic aborts the process. Recording only adds to counters
        // (no indexing that can fail) and, at worst, claims a client slot.
        if let Some(pending) = self.pending.take() {
            let panicked = self.in_user_code || std::thread::panicking();
            pending.finish_unanswered(!panicked);
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
