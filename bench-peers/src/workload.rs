//! What the two benchmarks share: the example server's templates, the
//! paths they send, and the service under the layers.

use std::{
    convert::Infallible,
    future::{ready, Ready},
    sync::Arc,
    task::{Context, Poll, Wake},
};

use http::{Request, Response};
use tower::Service;

/// The example server's templates.
pub const TEMPLATES: [&str; 12] = [
    "/",
    "/docs",
    "/__version__",
    "/__heartbeat__",
    "/__lbheartbeat__",
    "/__crash__",
    "/metrics",
    "/ctms",
    "/ctms/{email_id}",
    "/stripe/customer",
    "/stripe/subscription",
    "/updates/{kind}",
];
/// A path the parameter template matches.
pub const MATCHED: &str = "/ctms/6f1c2a7e-3b4d-4c5e-9f60-718293a4b5c6";
/// A path no template matches.
pub const UNMATCHED: &str = "/nothing/here";

/// The service under the layers: answers 200 at once.
#[derive(Clone, Copy, Debug)]
pub struct Bare;

impl Service<Request<()>> for Bare {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    // Inlined as it was when each benchmark defined it: the bare service's
    // cost is the floor every case is measured over.
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(String::new())))
    }
}

/// A waker for services that are always ready: nothing ever needs waking.
#[derive(Debug)]
pub struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}
