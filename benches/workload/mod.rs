//! What the benchmarks of this crate share: the CTMS route table, the
//! paths, and the inner service the layer wraps. Each benchmark includes
//! it with `#[path]`; not every one uses every item.
#![allow(dead_code)]

use std::{
    convert::Infallible,
    future::{ready, Ready},
    sync::Arc,
    task::{Context, Poll, Wake},
};

use http::{HeaderName, Method, Request, Response};
use tower::Service;
use tower_prometheus::{ClientId, ClientIds, RequestMetricsLayer, Route};

/// The example server's templates.
pub(crate) const TEMPLATES: &[&str] = &[
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
pub(crate) static CLIENT_HEADER: HeaderName = HeaderName::from_static("x-client-id");
/// A path the parameter template matches.
pub(crate) const MATCHED: &str = "/ctms/6f1c2a7e-3b4d-4c5e-9f60-718293a4b5c6";
/// A path of the same template with a four-byte parameter: matchit scans
/// a parameter byte by byte, so its lookup costs less than `MATCHED`'s.
pub(crate) const SHORT_PARAMETER: &str = "/ctms/abcd";
/// A path no template matches.
pub(crate) const UNMATCHED: &str = "/nothing/here";

/// The service under the layer: answers at once, with the client id in the
/// response extensions when set.
#[derive(Clone)]
pub(crate) struct Bare {
    pub(crate) client: Option<ClientId>,
}

impl Service<Request<()>> for Bare {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, _: Request<()>) -> Self::Future {
        let mut response = Response::new(String::new());
        if let Some(client) = &self.client {
            response.extensions_mut().insert(client.clone());
        }
        ready(Ok(response))
    }
}

/// The inner service is always ready, so nothing ever needs waking.
pub(crate) struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// The layer's configuration in every benchmark: the templates with two
/// methods and two codes each, one known client, ids read from
/// `x-client-id`.
pub(crate) fn builder() -> tower_prometheus::Builder {
    RequestMetricsLayer::builder()
        .routes(TEMPLATES.iter().map(|t| {
            Route::new(*t)
                .methods([Method::GET, Method::POST])
                .statuses([200, 404])
                .with_client_series()
        }))
        .client_ids(
            ClientIds::from_request(|headers| headers.get(&CLIENT_HEADER)?.to_str().ok())
                .known(["test_client"]),
        )
}
