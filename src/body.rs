//! The middleware's response body: the inner body, frame for frame, and
//! whatever must happen when it ends, fails or is dropped.
//!
//! With nothing to track (the request was recorded at its response head and
//! neither the in-flight gauge nor the byte count is kept), it only
//! delegates. Otherwise it watches each frame: data frames are counted, a
//! trailers frame or the end of the stream finishes the record (with the
//! gRPC status of the trailers, for a gRPC call), an error records 500
//! (`UNKNOWN`), and a drop before the end records 499 (`CANCELLED`).

use std::{
    fmt,
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::Buf;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::{
    grpc::{is_grpc_response, GrpcCode},
    labels::Status,
    recorder::{Pending, Tally},
};

pin_project! {
    /// Response body of [`RequestMetrics`](crate::RequestMetrics): the inner
    /// body unchanged, data frame for data frame.
    ///
    /// It sees where the response ends, for the requests recorded then (see
    /// [`RecordingPoint::BodyEnd`](crate::RecordingPoint::BodyEnd) and the
    /// crate docs on gRPC), for the in-flight gauge and for the byte count.
    /// When none of these applies, it only delegates.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        // Boxed: a response that tracks nothing stays as small as its body,
        // so moving it costs what moving the inner response does.
        // Dropped with a record left, it records the request as abandoned
        // (see `Drop for Tracker`).
        tracker: Option<Box<Tracker>>,
    }
}

impl<B> ResponseBody<B> {
    #[inline]
    pub(crate) fn new(inner: B, tracker: Option<Box<Tracker>>) -> Self {
        Self { inner, tracker }
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

/// The inner body's default, tracking nothing: what a layer outside this
/// one answers with when it makes a response of its own (tower-http's
/// `TimeoutLayer` answers 408 with a default body).
impl<B: Default> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(tracker) = this.tracker else {
            return this.inner.poll_frame(cx);
        };
        // If the inner body panics, the flag stays set and the tracker,
        // dropped during or after the unwind, records 500 rather than an
        // abandon.
        tracker.in_inner = true;
        let poll = this.inner.as_mut().poll_frame(cx);
        tracker.in_inner = false;
        let frame = ready!(poll);
        let over = match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    tracker.sent(data.remaining());
                    false
                } else if let Some(trailers) = frame.trailers_ref() {
                    tracker.trailers(trailers);
                    true
                } else {
                    false
                }
            }
            Some(Err(_)) => {
                tracker.failed();
                true
            }
            None => {
                tracker.ended();
                true
            }
        };
        // A body that says it has ended may never be polled again.
        if over || this.inner.is_end_stream() {
            if let Some(mut tracker) = this.tracker.take() {
                tracker.ended();
            }
        }
        Poll::Ready(frame)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("tracking", &self.tracker.is_some())
            .finish()
    }
}

/// A request still to be recorded at the end of its body.
enum EndRecord {
    /// Recorded with the status of its response head.
    Http(Pending, Status),
    /// A gRPC call: recorded with the status of its trailers, else of its
    /// response headers.
    Grpc {
        pending: Pending,
        /// `grpc-status` of the response headers (a trailers-only answer).
        head: Option<GrpcCode>,
        http: StatusCode,
    },
}

impl EndRecord {
    fn into_pending(self) -> Pending {
        match self {
            Self::Http(pending, _) | Self::Grpc { pending, .. } => pending,
        }
    }
}

/// What the body watches for.
pub(crate) struct Tracker {
    record: Option<EndRecord>,
    tally: Option<Tally>,
    /// Set while the inner body is polled, so a drop with it set means the
    /// body panicked.
    in_inner: bool,
}

impl Tracker {
    /// What to watch in the body of a response with this head: `pending`
    /// is recorded now unless `at_body_end` or it is a gRPC call; `None` when
    /// nothing is left to watch.
    pub(crate) fn for_response<B: Body>(
        pending: Option<Pending>,
        tally: Option<Tally>,
        at_body_end: bool,
        response: &http::Response<B>,
    ) -> Option<Box<Self>> {
        let record = pending.and_then(|mut pending| {
            let client = response.extensions().get();
            if pending.is_grpc() && !is_grpc_response(response.headers()) {
                pending.set_grpc(false);
            }
            if pending.is_grpc() {
                pending.set_response_client(client);
                Some(EndRecord::Grpc {
                    pending,
                    head: GrpcCode::from_headers(response.headers()),
                    http: response.status(),
                })
            } else if at_body_end {
                pending.set_response_client(client);
                Some(EndRecord::Http(pending, Status::of(response.status())))
            } else {
                pending.finish(Status::of(response.status()), client);
                None
            }
        });
        let mut tracker = Self {
            record,
            tally,
            in_inner: false,
        };
        if response.body().is_end_stream() {
            // An empty body may never be polled: it has ended already.
            tracker.ended();
        }
        (tracker.record.is_some() || tracker.tally.is_some()).then(|| Box::new(tracker))
    }

    fn sent(&mut self, bytes: usize) {
        if let Some(tally) = &mut self.tally {
            tally.sent(bytes);
        }
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        if let Some(EndRecord::Grpc { pending, head, .. }) = self.record.take_if_grpc() {
            let code = GrpcCode::from_headers(trailers)
                .or(head)
                .unwrap_or(GrpcCode::UNKNOWN);
            pending.finish_grpc(code);
        }
        self.ended();
    }

    fn ended(&mut self) {
        match self.record.take() {
            Some(EndRecord::Http(pending, status)) => pending.finish(status, None),
            Some(EndRecord::Grpc {
                pending,
                head,
                http,
            }) => {
                let code = head.unwrap_or_else(|| {
                    if http.is_success() {
                        // The stream ended without a status.
                        GrpcCode::UNKNOWN
                    } else {
                        GrpcCode::from_http(http)
                    }
                });
                pending.finish_grpc(code);
            }
            None => {}
        }
        // Lowers the in-flight gauge and adds the bytes.
        self.tally = None;
    }

    fn failed(&mut self) {
        if let Some(record) = self.record.take() {
            record.into_pending().finish_unanswered(false);
        }
        self.tally = None;
    }
}

/// `Option::take` for the gRPC variant only.
trait TakeIfGrpc {
    fn take_if_grpc(&mut self) -> Option<EndRecord>;
}

impl TakeIfGrpc for Option<EndRecord> {
    fn take_if_grpc(&mut self) -> Option<EndRecord> {
        if matches!(self, Some(EndRecord::Grpc { .. })) {
            self.take()
        } else {
            None
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        // Dropped before the body's end: the client went away, or the server
        // gave up on it (an abandon), or the body panicked (500). The tally
        // ends with it.
        if let Some(record) = self.record.take() {
            let panicked = self.in_inner || std::thread::panicking();
            record.into_pending().finish_unanswered(!panicked);
        }
    }
}
