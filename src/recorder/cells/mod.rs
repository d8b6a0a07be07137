//! The write side: the cells a request adds to, found by index, created on
//! first use.
//!
//! Storage is a directory of three levels, each allocated only when a
//! request first reaches it, so memory follows the traffic rather than the
//! configuration:
//!
//! 1. per route: a [`RouteGroups`] (one pointer per method and status family);
//! 2. per (route, method, family) group: a [`Group`] (one pointer per shard);
//! 3. per group and shard: the [`Cells`] that shard's threads add to.
//!
//! An idle layer holds one empty pointer per route. Everything one request
//! touches — its status code counter, its histogram bucket and sum, its
//! client's counter — lives in one `Cells`, on cache lines no other shard
//! writes.

mod directory;

pub(super) use self::directory::{Directory, MethodExtras};

use std::{ops::Deref, sync::OnceLock};

use super::{
    exemplars::{ExemplarSlot, Exemplars},
    lease::{self, Lease},
    native::NativeLayout,
};
use crate::{
    client_id::ClientSlot,
    extras::Exemplar,
    grpc::GrpcCode,
    labels::{CodeSet, Status, CODES_PER_FAMILY},
    segmented::Segmented,
    sync::{AtomicU64, Ordering},
};

/// Words of a [`CodeSet`].
const CODE_WORDS: usize = CODES_PER_FAMILY.div_ceil(64);

/// The cells of one (route, method, status family) group in one shard.
///
/// Aligned to two cache lines so that the cells of different shards never
/// share one (adjacent-line prefetching pulls pairs of lines).
#[repr(align(128))]
pub(super) struct Cells {
    /// The status codes of the family counted so far (or pre-initialised).
    used: [AtomicU64; CODE_WORDS],
    /// One counter per status code of the family.
    codes: [AtomicU64; CODES_PER_FAMILY],
    /// Sum of the durations in nanoseconds: an integer add, no CAS loop on
    /// a float.
    sum_ns: AtomicU64,
    /// Non-cumulative bucket counts; the last one is `+Inf`. Their sum is the
    /// histogram's count, so `_count` always equals the `+Inf` bucket.
    buckets: Box<[AtomicU64]>,
    /// One counter per client slot in use, created on the first API request
    /// and grown with the slots used.
    clients: OnceLock<Box<Segmented<AtomicU64>>>,
    /// One counter per gRPC status code, created on the first gRPC call of
    /// a gRPC route.
    grpc: OnceLock<Box<[AtomicU64; GrpcCode::COUNT]>>,
    /// Exemplars and native histogram counters, for a layer that keeps
    /// either: one pointer here, so that the cells of a layer that keeps
    /// neither stay as small as they were.
    extras: OnceLock<Box<CellExtras>>,
}

/// What a cell keeps for the opt-in exposition features.
#[derive(Default)]
struct CellExtras {
    /// The latest exemplar per bucket and per status code, created on the
    /// first request that brings one.
    exemplars: OnceLock<Exemplars>,
    /// Native histogram counters (the zero bucket first), created on the
    /// first request when native histograms are on.
    native: OnceLock<Box<[AtomicU64]>>,
    /// Per status code, a duration histogram of its own (the
    /// OpenTelemetry profile), created on the code's first request.
    codes: OnceLock<Box<[OnceLock<Box<CodeHistogram>>]>>,
}

/// The duration histogram of one status code, with its exemplars and
/// native buckets when those are kept.
#[derive(Default)]
pub(super) struct CodeHistogram {
    /// Non-cumulative bucket counts, `+Inf` last.
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
    exemplars: OnceLock<Box<[ExemplarSlot]>>,
    native: OnceLock<Box<[AtomicU64]>>,
}

impl CodeHistogram {
    pub(super) fn buckets(&self) -> impl Iterator<Item = u64> + '_ {
        self.buckets
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
    }

    pub(super) fn sum_ns(&self) -> u64 {
        self.sum_ns.load(Ordering::Relaxed)
    }

    pub(super) fn bucket_exemplars(&self) -> impl Iterator<Item = Option<Exemplar>> + '_ {
        let slots = self.exemplars.get().map_or(&[][..], |slots| &slots[..]);
        slots.iter().map(ExemplarSlot::load)
    }

    pub(super) fn native(&self) -> Option<impl Iterator<Item = u64> + '_> {
        let counters = self.native.get()?;
        Some(
            counters
                .iter()
                .map(|counter| counter.load(Ordering::Relaxed)),
        )
    }
}

impl Cells {
    fn new(buckets: usize) -> Self {
        Self {
            used: std::array::from_fn(|_| AtomicU64::new(0)),
            codes: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
            buckets: (0..=buckets).map(|_| AtomicU64::new(0)).collect(),
            clients: OnceLock::new(),
            grpc: OnceLock::new(),
            extras: OnceLock::new(),
        }
    }

    fn extras(&self) -> &CellExtras {
        self.extras.get_or_init(Box::default)
    }

    /// The histogram of a status code, if it has counted.
    pub(super) fn code_histogram(&self, code: usize) -> Option<&CodeHistogram> {
        self.extras
            .get()?
            .codes
            .get()?
            .get(code)?
            .get()
            .map(|h| &**h)
    }

    /// The exemplars of the buckets, `+Inf` last.
    pub(super) fn bucket_exemplars(&self) -> impl Iterator<Item = Option<Exemplar>> + '_ {
        let exemplars = self.extras.get().and_then(|extras| extras.exemplars.get());
        let slots = exemplars.map_or(&[][..], |e| &e.buckets[..]);
        slots.iter().map(ExemplarSlot::load)
    }

    /// The exemplar of a status code.
    pub(super) fn code_exemplar(&self, code: usize) -> Option<Exemplar> {
        self.extras.get()?.exemplars.get()?.codes.get(code)?.load()
    }

    /// The native histogram counters, if any request has counted.
    pub(super) fn native(&self) -> Option<impl Iterator<Item = u64> + '_> {
        let counters = self.extras.get()?.native.get()?;
        Some(
            counters
                .iter()
                .map(|counter| counter.load(Ordering::Relaxed)),
        )
    }

    /// Whether a gRPC call has been counted in these cells.
    pub(super) fn has_grpc(&self) -> bool {
        self.grpc.get().is_some()
    }

    /// The count of a gRPC status code.
    pub(super) fn grpc(&self, code: GrpcCode) -> u64 {
        self.grpc
            .get()
            .map_or(0, |codes| codes[code.index()].load(Ordering::Relaxed))
    }

    /// The codes counted so far.
    pub(super) fn used(&self) -> CodeSet {
        CodeSet::from_words(std::array::from_fn(|word| {
            self.used[word].load(Ordering::Relaxed)
        }))
    }

    pub(super) fn code(&self, code: usize) -> u64 {
        self.codes
            .get(code)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    pub(super) fn sum_ns(&self) -> u64 {
        self.sum_ns.load(Ordering::Relaxed)
    }

    pub(super) fn buckets(&self) -> impl Iterator<Item = u64> + '_ {
        self.buckets
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
    }

    /// The dense indexes of the client slots with a counter, nonzero or
    /// not, with their counts.
    pub(super) fn clients(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.clients.get().into_iter().flat_map(|counters| {
            counters
                .iter()
                .map(|(slot, count)| (slot, count.load(Ordering::Relaxed)))
        })
    }
}

/// Where the current thread records: the owned shard of the lease it
/// holds, or a shared shard (an index among the shared ones).
#[derive(Clone, Copy, Debug)]
pub(super) enum Place {
    Owned(Lease),
    Shared(usize),
}

/// The cells of one shard together with the right to add to them:
/// plainly, for the thread that holds the shard's lease, or with atomic
/// adds. Only [`Directory::cells`] makes one, from the thread's [`Place`],
/// so the plain path is taken only with the lease of the very shard the
/// cells belong to.
pub(super) struct ShardWriter<'a> {
    cells: &'a Cells,
    lease: Option<Lease>,
}

impl Deref for ShardWriter<'_> {
    type Target = Cells;

    fn deref(&self) -> &Cells {
        self.cells
    }
}

impl ShardWriter<'_> {
    #[inline(always)]
    fn add_to(&self, counter: &AtomicU64, by: u64) {
        match self.lease {
            Some(lease) => lease::add_owned(counter, by, lease),
            None => lease::add_shared(counter, by),
        }
    }

    /// Adds a request to its status code's own histogram (the
    /// OpenTelemetry profile), with its native buckets and exemplar when
    /// those are kept.
    pub(super) fn add_per_code(
        &self,
        status: Status,
        bucket: usize,
        elapsed_ns: u64,
        native: Option<&NativeLayout>,
        exemplar: Option<Exemplar>,
    ) {
        let codes = self
            .extras()
            .codes
            .get_or_init(|| (0..CODES_PER_FAMILY).map(|_| OnceLock::new()).collect());
        let Some(histogram) = codes.get(status.index_in_family()) else {
            return;
        };
        let buckets = self.buckets.len();
        let histogram = histogram.get_or_init(|| {
            Box::new(CodeHistogram {
                buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
                ..CodeHistogram::default()
            })
        });
        if let Some(count) = histogram.buckets.get(bucket) {
            self.add_to(count, 1);
        }
        self.add_to(&histogram.sum_ns, elapsed_ns);
        if let Some(layout) = native {
            let counters = histogram
                .native
                .get_or_init(|| (0..layout.counters()).map(|_| AtomicU64::new(0)).collect());
            if let Some(counter) = counters.get(layout.index(elapsed_ns)) {
                self.add_to(counter, 1);
            }
        }
        if let Some(exemplar) = exemplar {
            let slots = histogram
                .exemplars
                .get_or_init(|| (0..buckets).map(|_| ExemplarSlot::default()).collect());
            if let Some(slot) = slots.get(bucket) {
                slot.store(&exemplar);
            }
        }
    }

    /// Keeps a request's exemplar on its bucket (with its duration) and on
    /// its status code (with the count it added, 1).
    pub(super) fn add_exemplar(&self, status: Status, bucket: usize, exemplar: Exemplar) {
        let exemplars = self
            .extras()
            .exemplars
            .get_or_init(|| Exemplars::new(self.buckets.len(), CODES_PER_FAMILY));
        if let Some(slot) = exemplars.buckets.get(bucket) {
            slot.store(&exemplar);
        }
        if let Some(slot) = exemplars.codes.get(status.index_in_family()) {
            slot.store(&Exemplar {
                value: 1.0,
                ..exemplar
            });
        }
    }

    /// Counts a duration of `ns` nanoseconds in the native histogram.
    pub(super) fn add_native(&self, layout: &NativeLayout, ns: u64) {
        let counters = self
            .extras()
            .native
            .get_or_init(|| (0..layout.counters()).map(|_| AtomicU64::new(0)).collect());
        if let Some(counter) = counters.get(layout.index(ns)) {
            self.add_to(counter, 1);
        }
    }

    /// Counts a gRPC call's status code.
    pub(super) fn add_grpc(&self, code: GrpcCode) {
        let codes = self
            .grpc
            .get_or_init(|| Box::new(std::array::from_fn(|_| AtomicU64::new(0))));
        self.add_to(&codes[code.index()], 1);
    }

    /// Adds one request. `bucket` is the index of its bucket, `client` its
    /// slot among `slots`.
    #[inline]
    pub(super) fn add(
        &self,
        status: Status,
        bucket: usize,
        elapsed_ns: u64,
        client: Option<(ClientSlot, usize)>,
    ) {
        let code = status.index_in_family();
        if let Some(count) = self.codes.get(code) {
            let (word, bit) = CodeSet::position(code);
            let word = &self.used[word];
            // A plain load first: after a code's first request the bit is
            // set, and the read-modify-write is skipped.
            if word.load(Ordering::Relaxed) & bit == 0 {
                word.fetch_or(bit, Ordering::Relaxed);
            }
            self.add_to(count, 1);
        }
        if let Some(count) = self.buckets.get(bucket) {
            self.add_to(count, 1);
        }
        self.add_to(&self.sum_ns, elapsed_ns);
        if let Some((slot, slots)) = client {
            let counters = self.clients.get_or_init(|| Box::new(Segmented::new(slots)));
            if let Some(count) = counters.get_or_alloc(slot.index()) {
                self.add_to(count, 1);
            }
        }
    }
}
