//! Shard leases: which shard a thread may write without locked
//! instructions.
//!
//! Each thread that records takes, on its first request, the lowest free
//! index of a process-wide pool, and gives it back when it exits. No two
//! live threads hold the same index, so the owned shard of that index, in
//! every layer, has one writer at a time: its counters are added to with a
//! plain load and store instead of a locked read-modify-write, which is
//! most of what an uncontended atomic add costs.
//!
//! Handing an index over is exact: the exiting thread returns it with a
//! release and the next holder takes it with an acquire, so the new writer
//! starts from every count the old one stored. A thread that finds the
//! pool empty, or records after its lease was given back (from another
//! thread-local's destructor, as it exits), holds no lease and writes the
//! shared shards with locked adds, as every thread did before.
//!
//! A thread keeps the index it got for its whole life: one that got an
//! index at or past a layer's owned shards stays a sharer there even after
//! lower indexes are given back.
//!
//! Ownership is a value, not a flag: a [`Lease`] is made only here, from
//! the index the current thread holds, cannot leave the thread, and is what
//! the plain-store path [`add_owned`] takes. The handover's orderings are
//! model-checked (`loom_models` below): with either the release or the
//! acquire weakened to relaxed, the model loses a count.

use std::{cell::Cell, marker::PhantomData};

use crate::sync::{AtomicU64, Ordering};

/// Leases in the pool: as many as a layer can have shards.
const POOL: usize = crate::limits::MAX_SHARDS;
const _: () = assert!(POOL % 64 == 0, "the pool is kept in whole words");

/// What a thread holds when it holds no lease.
const NONE: usize = usize::MAX;

/// A thread that has not recorded yet has not asked.
const UNASKED: usize = usize::MAX - 1;
const _: () = assert!(UNASKED >= POOL, "no lease index reads as unasked");

/// The proof that the current thread holds the lease of a shard index, and
/// so is the one writer of the owned shards of that index: what the plain
/// load-and-store path ([`add_owned`]) takes. Only this module makes one,
/// from the lease the thread holds, and it cannot leave that thread
/// (neither `Send` nor `Sync`), which outlives it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lease {
    index: usize,
    _this_thread: PhantomData<*const ()>,
}

impl Lease {
    /// The lease of `index`, for a thread that holds it.
    #[inline]
    fn held_as(index: usize) -> Option<Self> {
        (index < POOL).then_some(Self {
            index,
            _this_thread: PhantomData,
        })
    }

    /// The shard index it is the lease of.
    #[inline]
    pub(crate) fn index(self) -> usize {
        self.index
    }
}

/// One bit per lease, set while a thread holds it.
pub(crate) struct Pool {
    taken: [AtomicU64; POOL / 64],
}

impl Pool {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Self {
            taken: [const { AtomicU64::new(0) }; POOL / 64],
        }
    }

    #[cfg(loom)]
    fn new() -> Self {
        Self {
            taken: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Takes the lowest free lease, if any.
    fn take(&self) -> Option<usize> {
        for (word_index, word) in self.taken.iter().enumerate() {
            let mut bits = word.load(Ordering::Relaxed);
            while bits != u64::MAX {
                let bit = (!bits).trailing_zeros() as usize;
                // Acquire: pairs with the previous holder's release, so the
                // new holder's plain loads see every count the old one
                // stored.
                match word.compare_exchange_weak(
                    bits,
                    bits | (1 << bit),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(word_index * 64 + bit),
                    Err(now) => bits = now,
                }
            }
        }
        None
    }

    /// Returns a lease taken from this pool.
    fn give_back(&self, index: usize) {
        // Release: the next holder's acquire sees every count stored under
        // the lease.
        self.taken[index / 64].fetch_and(!(1 << (index % 64)), Ordering::Release);
    }
}

#[cfg(not(loom))]
/// The process's leases.
static LEASES: Pool = Pool::new();

// The models build pools of their own; this one only has to compile.
#[cfg(loom)]
loom::lazy_static! {
    static ref LEASES: Pool = Pool::new();
}

thread_local! {
    /// The thread's lease, [`UNASKED`] or [`NONE`]. Read on every
    /// request, so a plain cell with no destructor to check for.
    static INDEX: Cell<usize> = const { Cell::new(UNASKED) };
    /// Gives the lease back when the thread exits.
    static HOLDER: Holder = const { Holder { index: Cell::new(NONE) } };
}

/// Gives the thread's lease back when the thread exits. It keeps the index
/// itself rather than read [`INDEX`] then, which may be destroyed first
/// where thread-locals are kept by the OS.
struct Holder {
    index: Cell<usize>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        // NONE from now on: a request recorded from another thread-local's
        // destructor must not write the shard the next holder will own.
        // Where `INDEX` is already gone, no one can read it.
        let _ = INDEX.try_with(|index| index.set(NONE));
        let index = self.index.replace(NONE);
        if index < POOL {
            LEASES.give_back(index);
        }
    }
}

/// The current thread's lease, taken on first use; `Err` with a number
/// that differs from thread to thread when the pool had none left or the
/// thread is exiting.
#[inline]
pub(crate) fn current() -> Result<Lease, usize> {
    let index = match INDEX.try_with(Cell::get).unwrap_or(NONE) {
        UNASKED => ask(),
        index => index,
    };
    Lease::held_as(index).ok_or_else(spread)
}

/// The lease the current thread holds, without asking for one: for a
/// fast path that calls [`current`] when there is none.
#[inline]
pub(crate) fn held() -> Option<Lease> {
    // `try_with`: where thread-locals are kept by the OS rather than
    // natively, even one without a destructor can be gone at exit.
    Lease::held_as(INDEX.try_with(Cell::get).unwrap_or(NONE))
}

/// A number that differs from thread to thread, for spreading threads
/// without a lease: a hash of where this thread keeps its lease.
fn spread() -> usize {
    let address = INDEX.try_with(|cell| std::ptr::from_ref(cell) as usize);
    // Thread-locals of different threads sit at the same offset in their
    // pages, so the low bits alone would not differ; the multiplication
    // carries the high ones down.
    (address.unwrap_or(0) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) as usize >> 16
}

#[cold]
#[inline(never)]
fn ask() -> usize {
    // The holder first: a lease is taken only when it will be given back.
    let index = HOLDER
        .try_with(|holder| {
            let index = LEASES.take().unwrap_or(NONE);
            holder.index.set(index);
            index
        })
        .unwrap_or(NONE);
    match INDEX.try_with(|cell| cell.set(index)) {
        Ok(()) => index,
        // Nowhere to keep it: unused until the holder gives it back.
        Err(_) => NONE,
    }
}

/// Adds `by` to a counter of a shard that `lease` owns.
///
/// A plain load and store, no locked instruction: exact because no other
/// thread writes the counter while this one holds the lease, and because
/// the lease passes from holder to holder through the pool's release and
/// acquire.
#[inline(always)]
pub(crate) fn add_owned(counter: &AtomicU64, by: u64, lease: Lease) {
    let _ = lease;
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

/// Adds `by` to a counter that other threads may add to at the same time.
#[inline(always)]
pub(crate) fn add_shared(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use std::{
        collections::HashSet,
        sync::{Arc, Barrier, Mutex},
        thread,
    };

    use super::*;

    #[test]
    fn live_threads_never_share_a_lease() {
        const THREADS: usize = 16;
        let barrier = Arc::new(Barrier::new(THREADS));
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (barrier, seen) = (barrier.clone(), seen.clone());
                thread::spawn(move || {
                    let lease = current()
                        .expect("the pool has room for every thread")
                        .index();
                    assert!(
                        seen.lock().unwrap().insert(lease),
                        "lease {lease} handed to two live threads"
                    );
                    assert_eq!(
                        current().unwrap().index(),
                        lease,
                        "a thread keeps its lease"
                    );
                    // Every thread holds its lease until all have taken one.
                    barrier.wait();
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(seen.lock().unwrap().len(), THREADS);
    }

    #[test]
    fn an_exiting_thread_gives_its_lease_back() {
        // Twice as many threads, one after another, as the pool has
        // leases: the later ones get one only if the earlier gave theirs
        // back.
        for _ in 0..2 * POOL {
            let lease = thread::spawn(|| current().map(Lease::index))
                .join()
                .unwrap();
            assert!(lease.is_ok(), "the pool ran dry: leases are not given back");
        }
    }

    #[test]
    fn threads_without_a_lease_spread_over_the_shared_shards() {
        // 16 threads alive at once into 4 shards: a spread that ignored
        // the thread would put them all in one.
        let barrier = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    spread() & 3
                })
            })
            .collect();
        let shards: HashSet<usize> = threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        assert!(shards.len() > 1, "every thread in shard {shards:?}");
    }

    #[test]
    fn the_pool_hands_out_the_lowest_free_lease_and_none_when_empty() {
        let pool = Pool::new();
        assert_eq!(pool.take(), Some(0));
        assert_eq!(pool.take(), Some(1));
        assert_eq!(pool.take(), Some(2));
        pool.give_back(1);
        assert_eq!(pool.take(), Some(1), "a lease given back is given again");
        for expected in 3..POOL {
            assert_eq!(pool.take(), Some(expected));
        }
        assert_eq!(pool.take(), None);
        pool.give_back(700);
        assert_eq!(pool.take(), Some(700));
    }

    #[test]
    fn concurrent_takers_never_get_the_same_lease() {
        let pool = Arc::new(Pool::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || (0..100).map(|_| pool.take().unwrap()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<usize> = threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..800).collect::<Vec<_>>());
    }
}

#[cfg(test)]
#[cfg(loom)]
mod loom_models {
    use loom::{sync::Arc, thread};

    use super::*;

    /// What a recording thread does with its lease: takes the lowest free
    /// one, adds to its shard's counter without a locked instruction, and
    /// gives it back as it exits (the holder's part).
    fn record_once(pool: &Pool, counters: &[AtomicU64; 2]) {
        let index = pool.take().expect("the pool has room");
        let lease = Lease::held_as(index).expect("an index of the pool");
        add_owned(&counters[lease.index()], 1, lease);
        pool.give_back(index);
    }

    #[test]
    fn loom_a_lease_handed_from_an_exiting_thread_carries_every_count() {
        loom::model(|| {
            let pool = Arc::new(Pool::new());
            // The counters of two shard indexes, as in every layer's owned
            // shards.
            let counters = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
            let other = {
                let (pool, counters) = (pool.clone(), counters.clone());
                thread::spawn(move || record_once(&pool, &counters))
            };
            record_once(&pool, &counters);
            record_once(&pool, &counters);
            other.join().unwrap();
            let total: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
            assert_eq!(total, 3, "a count lost in a handover");
        });
    }
}
