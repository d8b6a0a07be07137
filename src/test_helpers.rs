//! Helpers for the unit tests: a registry rendered to text and read back,
//! and a waker for polling by hand.

use std::{
    sync::Arc,
    task::{Wake, Waker},
};

use prometheus::{Encoder, Registry, TextEncoder};

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// A waker that does nothing, for futures polled by hand.
pub(crate) fn noop_waker() -> Waker {
    Waker::from(Arc::new(NoWake))
}

/// The registry in the text format, as a scrape would see it.
pub(crate) fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .unwrap();
    String::from_utf8(buffer).unwrap()
}

/// The value of the sample written exactly as `series` (name and labels in
/// the encoder's order), or `None` if the scrape lacks it.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
}

/// Number of samples whose name (before any `{`) is `name`.
pub(crate) fn count_series(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .count()
}

/// A response body of frames given in advance, yielded one per poll; an
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

/// Polls `body` to its end (or its error), returning the frames it gave.
pub(crate) fn drain<B: http_body::Body + Unpin>(body: &mut B) -> usize {
    let waker = noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut frames = 0;
    loop {
        match std::pin::Pin::new(&mut *body).poll_frame(&mut cx) {
            std::task::Poll::Ready(Some(Ok(_))) => frames += 1,
            std::task::Poll::Ready(Some(Err(_)) | None) => return frames,
            std::task::Poll::Pending => panic!("test bodies are always ready"),
        }
    }
}
