//! The body of the scrape endpoint's responses.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The body of a [`MetricsExporter`](crate::MetricsExporter) response: the
/// whole exposition (or its gzip encoding) in one frame.
///
/// It is an [`http_body::Body`] of known length, so hyper, axum and tonic
/// send it with a `Content-Length` as they would a `String`.
#[derive(Clone, Debug, Default)]
pub struct MetricsBody {
    data: Bytes,
}

impl MetricsBody {
    pub(crate) fn new(data: impl Into<Bytes>) -> Self {
        Self { data: data.into() }
    }

    /// The bytes still to be sent: all of them until the body is polled.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The bytes still to be sent, as [`Bytes`].
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.data
    }
}

/// Any bytes can be a `MetricsBody`, so a hand-written service that serves
/// the exporter beside other routes can answer with one body type.
impl<T: Into<Bytes>> From<T> for MetricsBody {
    fn from(data: T) -> Self {
        Self::new(data)
    }
}

impl Body for MetricsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let data = std::mem::take(&mut self.get_mut().data);
        Poll::Ready((!data.is_empty()).then(|| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;
    use crate::test_helpers::noop_waker;

    #[test]
    fn yields_its_bytes_once_then_ends() {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut body = MetricsBody::new("abc");
        assert_eq!(body.size_hint().exact(), Some(3));
        assert!(!body.is_end_stream());
        let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) else {
            panic!("the first poll yields the data");
        };
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"abc")));
        assert!(body.is_end_stream());
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(None)
        ));
    }

    #[test]
    fn an_empty_body_is_over_before_it_starts() {
        let body = MetricsBody::default();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }

    #[test]
    fn any_bytes_become_a_body_and_come_back_out() {
        let body = MetricsBody::from("text");
        assert_eq!(body.as_bytes(), b"text");
        assert_eq!(body.into_bytes(), Bytes::from_static(b"text"));
        let body = MetricsBody::from(vec![1_u8, 2, 3]);
        assert_eq!(body.size_hint().exact(), Some(3));
    }
}
