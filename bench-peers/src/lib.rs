//! Hand-written peers of `tower-prometheus` for `benches/peers.rs`: two
//! tower layers that record the same CTMS metrics with the `prometheus`
//! crate directly.
//!
//! Both resolve the path template with `matchit`, read the client id from a
//! request header, time the request with [`Instant`](std::time::Instant)
//! and record once the inner future is ready (an inner error counts as
//! 500). Paths that match no template are not recorded. They differ only in
//! how a finished request reaches its series:
//!
//! - [`CachedHandlesLayer`] caches resolved counter and histogram handles
//!   in `RwLock<HashMap>`s: a read lock and a hash lookup per metric on a
//!   hit, the write lock only the first time a series is seen;
//! - [`NaiveLayer`] calls `with_label_values` for every metric of every
//!   request.
//!
//! [`FloorLayer`] is no peer but the physical floor: the least any correct
//! timing layer must do per request (see its module).
//!
//! [`FlatTableLayer`] is the strongest of them, with a layer of its own:
//! every (route, method, status) series' handles resolved once into a flat
//! table of write-once slots indexed densely, shared state that no
//! reference count is touched for per request, and a read lock only for
//! the per-client counter.

mod api_key;
mod cached_handles;
mod ctms;
mod flat_table;
mod floor;
mod layer;
mod naive;
pub mod workload;

pub use cached_handles::CachedHandles;
pub use ctms::Families;
pub use flat_table::{FlatTableFuture, FlatTableLayer, FlatTableService};
pub use floor::{FloorFuture, FloorLayer, FloorService};
pub use layer::{MetricsLayer, MetricsService, Record, ResponseFuture, Sample};
pub use naive::Naive;

/// The layer that records through cached handles.
pub type CachedHandlesLayer = MetricsLayer<CachedHandles>;

/// The layer that calls `with_label_values` per request.
pub type NaiveLayer = MetricsLayer<Naive>;
