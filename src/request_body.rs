//! Request bodies: passed to the inner service as they came (the default),
//! or wrapped to count the bytes their data frames carry.

use std::{
    fmt,
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::Buf;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::recorder::RequestBytes;

/// How a [`RequestMetrics`](crate::RequestMetrics) hands request bodies to
/// the inner service: [`PassRequestBody`] (the default) or
/// [`CountRequestBody`]. Sealed: these two are the only ones.
pub trait RequestBodyMode: sealed::Sealed + Clone + fmt::Debug + Send + Sync + 'static {
    /// Whether request body bytes are counted.
    #[doc(hidden)]
    const COUNTS: bool;
}

pub(crate) mod sealed {
    use http::Request;

    use crate::recorder::RequestBytes;

    /// What each mode does to a request, for the one `Service` impl.
    pub trait Sealed {
        /// The request body as the inner service receives it.
        type Body<B>;

        /// Hands `request` on, counting its body's bytes into `counter`
        /// when the mode counts them.
        fn wrap<B>(request: Request<B>, counter: Counter) -> Request<Self::Body<B>>;
    }

    /// Where a request's body bytes are counted, if anywhere. A type of
    /// its own, with a private field, so that `Sealed` names no private
    /// type.
    #[derive(Debug)]
    pub struct Counter(pub(crate) Option<RequestBytes>);
}

/// The inner service receives each request as it came.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassRequestBody;

/// The inner service receives each request with its body wrapped in a
/// [`RequestBody`], which counts the bytes of its data frames into
/// `<namespace>_request_body_bytes_total`; see
/// [`Builder::request_bytes`](crate::Builder::request_bytes).
#[derive(Clone, Copy, Debug, Default)]
pub struct CountRequestBody;

impl sealed::Sealed for PassRequestBody {
    type Body<B> = B;

    #[inline]
    fn wrap<B>(request: Request<B>, _: sealed::Counter) -> Request<B> {
        request
    }
}

impl sealed::Sealed for CountRequestBody {
    type Body<B> = RequestBody<B>;

    #[inline]
    fn wrap<B>(request: Request<B>, counter: sealed::Counter) -> Request<RequestBody<B>> {
        request.map(|body| RequestBody::new(body, counter.0))
    }
}

impl RequestBodyMode for PassRequestBody {
    const COUNTS: bool = false;
}

impl RequestBodyMode for CountRequestBody {
    const COUNTS: bool = true;
}

pin_project! {
    /// A request body as the inner service sees it when request bytes are
    /// counted: the body unchanged, data frame for data frame. The bytes
    /// read are added when it is dropped, however much of it was read.
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        counter: Option<RequestBytes>,
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, counter: Option<RequestBytes>) -> Self {
        Self { inner, counter }
    }

    /// The body as it came.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let (Some(counter), Some(Ok(frame))) = (this.counter.as_mut(), &frame) {
            if let Some(data) = frame.data_ref() {
                counter.read(data.remaining());
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: fmt::Debug> fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;
    use crate::test_helpers::FramesBody;

    #[test]
    fn the_body_reports_what_the_inner_body_does() {
        let body = RequestBody::new(FramesBody::data(&["ab"], None), None);
        assert!(!body.is_end_stream());
        assert!(RequestBody::new(FramesBody::default(), None).is_end_stream());
        let body = RequestBody::new("sized".to_owned(), None);
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(body.get_ref(), "sized");
    }
}
