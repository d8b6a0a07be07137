//! Helpers for the unit tests: a waker for polling by hand and a body of
//! frames given in advance.

use std::{
    sync::Arc,
    task::{Wake, Waker},
};

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// A waker that does nothing, for futures polled by hand.
pub(crate) fn noop_waker() -> Waker {
    Waker::from(Arc::new(NoWake))
}

/// A body of frames given in advance, yielded one per poll; an
/// `Err` frame fails the body. Ends when the frames run out.
#[derive(Debug, Default)]
pub(crate) struct FramesBody {
    frames: std::collections::VecDeque<Result<http_body::Frame<bytes::Bytes>, &'static str>>,
}

impl FramesBody {
    pub(crate) fn new(
        frames: impl IntoIterator<Item = Result<http_body::Frame<bytes::Bytes>, &'static str>>,
    ) -> Self {
        Self {
            frames: frames.into_iter().collect(),
        }
    }

    /// A body of `data` frames, then `trailers` if any.
    pub(crate) fn data(data: &[&'static str], trailers: Option<http::HeaderMap>) -> Self {
        let frames = data.iter().map(|d| {
            Ok(http_body::Frame::data(bytes::Bytes::from_static(
                d.as_bytes(),
            )))
        });
        let trailers = trailers.map(|t| Ok(http_body::Frame::trailers(t)));
        Self::new(frames.chain(trailers))
    }
}

impl http_body::Body for FramesBody {
    type Data = bytes::Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(self.frames.pop_front())
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }
}
