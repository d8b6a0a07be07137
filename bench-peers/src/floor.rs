//! The physical floor of a timing layer: the least any correct layer that
//! records the CTMS duration and count per route must do per request.
//!
//! One matchit lookup, two raw clock reads (the same `quanta` clock as
//! tower-prometheus's default), the status family, a bucket search over
//! the CTMS bounds and three relaxed adds (bucket, sum, count) into a cell
//! per route and status family that lives for the whole process. No
//! labels, no client id, no reference count, no body wrapper, no scrape:
//! what is left of a layer once everything that can be decided before the
//! request is decided. tower-prometheus's overhead is reported as a
//! multiple of this one's.

use std::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use quanta::Clock;
use tower::{Layer, Service};

/// The CTMS bucket bounds, in nanoseconds.
const BOUNDS_NS: [u64; 7] = [
    10_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// One route and status family's counts.
#[derive(Default)]
struct Cell {
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

struct Floor {
    router: matchit::Router<usize>,
    /// Five status families per route.
    cells: Box<[Cell]>,
    clock: Clock,
}

/// The floor as a tower layer.
#[derive(Clone, Copy)]
pub struct FloorLayer {
    floor: &'static Floor,
}

impl FloorLayer {
    /// A floor over `templates`; its table lives for the whole process.
    pub fn new(templates: &[&str]) -> Result<Self, matchit::InsertError> {
        let mut router = matchit::Router::new();
        for (index, template) in templates.iter().enumerate() {
            router.insert(*template, index)?;
        }
        let floor = Box::leak(Box::new(Floor {
            router,
            cells: (0..templates.len() * 5).map(|_| Cell::default()).collect(),
            clock: Clock::new(),
        }));
        Ok(Self { floor })
    }

    /// The count recorded for `route` and status family `family` (1–5).
    pub fn count(&self, route: usize, family: usize) -> u64 {
        self.floor.cells[route * 5 + family - 1]
            .count
            .load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for FloorLayer {
    type Service = FloorService<S>;

    fn layer(&self, inner: S) -> FloorService<S> {
        FloorService {
            inner,
            floor: self.floor,
        }
    }
}

/// The floor around a service.
#[derive(Clone)]
pub struct FloorService<S> {
    inner: S,
    floor: &'static Floor,
}

impl<S, B, R> Service<Request<B>> for FloorService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = self
            .floor
            .router
            .at(request.uri().path())
            .ok()
            .map(|found| *found.value);
        let start = self.floor.clock.raw();
        FloorFuture {
            inner: self.inner.call(request),
            floor: self.floor,
            route,
            start,
        }
    }
}

pin_project! {
    /// Records the request when the inner future is ready.
    pub struct FloorFuture<F> {
        #[pin]
        inner: F,
        floor: &'static Floor,
        route: Option<usize>,
        start: u64,
    }
}

impl<F, R, E> Future for FloorFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let Some(route) = this.route.take() {
            let floor = *this.floor;
            let ns = floor.clock.delta_as_nanos(*this.start, floor.clock.raw());
            let family = match &output {
                Ok(response) => usize::from(response.status().as_u16() / 100),
                Err(_) => 5,
            };
            let cell = &floor.cells[route * 5 + family.clamp(1, 5) - 1];
            let bucket = BOUNDS_NS
                .iter()
                .position(|&bound| ns <= bound)
                .unwrap_or(BOUNDS_NS.len());
            cell.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            cell.sum_ns.fetch_add(ns, Ordering::Relaxed);
            cell.count.fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(output)
    }
}
