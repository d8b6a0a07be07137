//! Bodies and wakers for polling by hand, shared by the integration tests
//! (through `support`) and the crate's unit tests (`src/lib.rs` includes
//! this file as `test_helpers`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// A waker that does nothing, for futures polled by hand.
pub(crate) fn noop_waker() -> Waker {
    Waker::from(Arc::new(NoWake))
}

/// A body of frames given in advance, yielded one per poll; an `Err` frame
/// fails the body. Ends when the frames run out.
#[derive(Debug, Default)]
pub(crate) struct FramesBody {
    frames: VecDeque<Result<Frame<Bytes>, &'static str>>,
}

impl FramesBody {
    pub(crate) fn new(
        frames: impl IntoIterator<Item = Result<Frame<Bytes>, &'static str>>,
    ) -> Self {
        Self {
            frames: frames.into_iter().collect(),
        }
    }

    /// A body of `data` frames, then `trailers` if any.
    pub(crate) fn data(data: &[&'static str], trailers: Option<HeaderMap>) -> Self {
        let frames = data
            .iter()
            .map(|d| Ok(Frame::data(Bytes::from_static(d.as_bytes()))));
        let trailers = trailers.map(|t| Ok(Frame::trailers(t)));
        Self::new(frames.chain(trailers))
    }
}

impl Body for FramesBody {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(self.frames.pop_front())
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }
}
