//! The directory of cells: per route, per (route, method, family) group,
//! per group and shard, each level allocated when a request first reaches
//! it. A child of `cells`, so that it alone makes a [`ShardWriter`]: the
//! cells of a shard with the lease of that very shard, or none.

use std::sync::{atomic::AtomicI64, OnceLock};

use super::{Cells, Place, ShardWriter};
use crate::{
    labels::{MethodLabel, StatusFamily},
    routes::RouteId,
    sync::AtomicU64,
};

/// Groups per route: one per method and status family.
const GROUPS_PER_ROUTE: usize = MethodLabel::COUNT * StatusFamily::COUNT;

/// A pointer per shard, to cells created on the shard's first request.
type ShardCells = Box<[OnceLock<Box<Cells>>]>;

/// One (route, method, family) group: a pointer per owned shard, and the
/// shared shards' pointers, created when a thread without an owned shard
/// first records in the group (never, while no more threads record than
/// there are owned shards).
pub(in crate::recorder) struct Group {
    owned: ShardCells,
    shared: OnceLock<ShardCells>,
}

impl Group {
    /// The cells of the shards that have recorded in this group.
    pub(in crate::recorder) fn cells(&self) -> impl Iterator<Item = &Cells> + '_ {
        let shared = self.shared.get().map_or(&[][..], |shared| &shared[..]);
        self.owned
            .iter()
            .chain(shared)
            .filter_map(|cells| cells.get())
            .map(|c| &**c)
    }
}

fn shard_cells(shards: usize) -> ShardCells {
    (0..shards).map(|_| OnceLock::new()).collect()
}

/// What is kept per (route, method) rather than per group and shard:
/// counts that change while a request runs, before its status is known.
/// Not sharded: these are opt-in, and cost a shared cache line.
#[derive(Debug, Default)]
pub(in crate::recorder) struct MethodExtras {
    /// Requests received and not yet finished.
    pub(in crate::recorder) in_flight: AtomicI64,
    /// Response body bytes sent.
    pub(in crate::recorder) response_bytes: AtomicU64,
    /// Request body bytes read.
    pub(in crate::recorder) request_bytes: AtomicU64,
}

/// The groups of one route.
struct RouteGroups {
    groups: [OnceLock<Box<Group>>; GROUPS_PER_ROUTE],
    extras: [MethodExtras; MethodLabel::COUNT],
}

impl RouteGroups {
    fn new() -> Self {
        Self {
            groups: std::array::from_fn(|_| OnceLock::new()),
            extras: std::array::from_fn(|_| MethodExtras::default()),
        }
    }
}

/// Every route's groups.
pub(in crate::recorder) struct Directory {
    routes: Box<[OnceLock<Box<RouteGroups>>]>,
    /// Owned shards, `0..owned`; as many shared ones follow.
    owned: usize,
    buckets: usize,
}

impl Directory {
    /// A directory for `routes` route ids, `owned` owned shards (and as
    /// many shared) and `buckets` finite bucket bounds; nothing but the
    /// route pointers is allocated.
    pub(in crate::recorder) fn new(routes: usize, owned: usize, buckets: usize) -> Self {
        Self {
            routes: (0..routes).map(|_| OnceLock::new()).collect(),
            owned,
            buckets,
        }
    }

    /// The group of (route, method, family), if any shard has recorded in it.
    #[inline]
    pub(in crate::recorder) fn group(
        &self,
        route: RouteId,
        method: MethodLabel,
        family: StatusFamily,
    ) -> Option<&Group> {
        let groups = self.routes.get(route.index())?.get()?;
        groups
            .groups
            .get(group_offset(method, family))?
            .get()
            .map(|g| &**g)
    }

    /// The extras of (route, method), created with the route's groups on
    /// first use.
    #[inline]
    pub(in crate::recorder) fn extras(
        &self,
        route: RouteId,
        method: MethodLabel,
    ) -> Option<&MethodExtras> {
        let groups = self
            .routes
            .get(route.index())?
            .get_or_init(|| Box::new(RouteGroups::new()));
        groups.extras.get(method.index())
    }

    /// The extras of (route, method), if the route has been used.
    pub(in crate::recorder) fn extras_in_use(
        &self,
        route: RouteId,
        method: MethodLabel,
    ) -> Option<&MethodExtras> {
        self.routes
            .get(route.index())?
            .get()?
            .extras
            .get(method.index())
    }

    /// Whether any request with `method` has been recorded on `route`.
    pub(in crate::recorder) fn method_in_use(&self, route: RouteId, method: MethodLabel) -> bool {
        StatusFamily::all().any(|family| self.group(route, method, family).is_some())
    }

    /// Whether any request has been recorded on `route`.
    pub(in crate::recorder) fn route_in_use(&self, route: RouteId) -> bool {
        self.routes
            .get(route.index())
            .is_some_and(|r| r.get().is_some())
    }

    /// The cells `place` adds to for (route, method, family), created (with
    /// whatever levels above them are missing) on first use. `None` only
    /// for a route or shard of another layer, which cannot reach here.
    #[inline]
    pub(in crate::recorder) fn cells(
        &self,
        route: RouteId,
        method: MethodLabel,
        family: StatusFamily,
        place: Place,
    ) -> Option<ShardWriter<'_>> {
        let (shard, lease) = match place {
            // The plain path only on the owned shard of the lease's own
            // index, whoever made the place.
            Place::Owned(lease) if lease.index() < self.owned => (lease.index(), Some(lease)),
            Place::Owned(lease) => (self.owned + (lease.index() & (self.owned - 1)), None),
            Place::Shared(shared) => (self.owned + shared, None),
        };
        Some(ShardWriter {
            cells: self.shard_cells(route, method, family, shard)?,
            lease,
        })
    }

    /// The cells of shard `shard` (owned ones first, then shared ones),
    /// created on first use.
    #[inline]
    fn shard_cells(
        &self,
        route: RouteId,
        method: MethodLabel,
        family: StatusFamily,
        shard: usize,
    ) -> Option<&Cells> {
        let groups = self
            .routes
            .get(route.index())?
            .get_or_init(|| Box::new(RouteGroups::new()));
        let group = groups
            .groups
            .get(group_offset(method, family))?
            .get_or_init(|| {
                Box::new(Group {
                    owned: shard_cells(self.owned),
                    shared: OnceLock::new(),
                })
            });
        let cells = match shard.checked_sub(self.owned) {
            None => group.owned.get(shard)?,
            Some(shared) => group
                .shared
                .get_or_init(|| shard_cells(self.owned))
                .get(shared)?,
        };
        Some(cells.get_or_init(|| Box::new(Cells::new(self.buckets))))
    }

    /// The cells of any shard, owned or shared, with atomic adds: for a
    /// test that writes them from one thread.
    #[cfg(test)]
    #[cfg(not(loom))]
    pub(in crate::recorder) fn cells_of_shard(
        &self,
        route: RouteId,
        method: MethodLabel,
        family: StatusFamily,
        shard: usize,
    ) -> Option<ShardWriter<'_>> {
        Some(ShardWriter {
            cells: self.shard_cells(route, method, family, shard)?,
            lease: None,
        })
    }

    /// How many groups have their shared shards' pointers allocated.
    #[cfg(test)]
    #[cfg(not(loom))]
    pub(in crate::recorder) fn groups_with_shared_shards(&self) -> usize {
        self.routes
            .iter()
            .filter_map(OnceLock::get)
            .flat_map(|groups| groups.groups.iter().filter_map(OnceLock::get))
            .filter(|group| group.shared.get().is_some())
            .count()
    }

    /// Bytes allocated for the directory and the cells so far, not
    /// counting client counters.
    #[cfg(test)]
    #[cfg(not(loom))]
    pub(in crate::recorder) fn allocated_bytes(&self) -> usize {
        use std::mem::size_of;
        let mut bytes = self.routes.len() * size_of::<OnceLock<Box<RouteGroups>>>();
        for groups in self.routes.iter().filter_map(OnceLock::get) {
            bytes += size_of::<RouteGroups>();
            for group in groups.groups.iter().filter_map(OnceLock::get) {
                let pointers = if group.shared.get().is_some() { 2 } else { 1 } * self.owned;
                bytes += pointers * size_of::<OnceLock<Box<Cells>>>();
                bytes += group.cells().count()
                    * (size_of::<Cells>() + (self.buckets + 1) * size_of::<AtomicU64>());
            }
        }
        bytes
    }
}

#[inline]
fn group_offset(method: MethodLabel, family: StatusFamily) -> usize {
    method.index() * StatusFamily::COUNT + family.index()
}
