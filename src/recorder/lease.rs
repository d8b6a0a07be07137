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

use std::{
    cell::Cell,
    sync::atomic::{AtomicU64, Ordering},
};

/// Leases in the pool: as many as a layer can have shards.
pub(crate) const POOL: usize = crate::MAX_SHARDS;
const _: () = assert!(POOL % 64 == 0, "the pool is kept in whole words");

/// What a thread holds when it holds no lease.
pub(crate) const NONE: usize = usize::MAX;

/// A thread that has not recorded yet has not asked.
const UNASKED: usize = usize::MAX - 1;
const _: () = assert!(UNASKED >= POOL, "no lease index reads as unasked");

/// The process's leases.
static LEASES: Pool = Pool::new();

/// One bit per lease, set while a thread holds it.
pub(crate) struct Pool {
    taken: [AtomicU64; POOL / 64],
}

impl Pool {
    const fn new() -> Self {
        Self {
            taken: [const { AtomicU64::new(0) }; POOL / 64],
        }
    }

    /// Takes the lowest free lease, if any.
    fn take(&self) -> Option<usize> {
        for (word_index, word) in self.taken.iter().enumerate() {
            let mut bits = word.load(Ordering::Relaxed);
            while bits != u64::MAX {
                let bit = (!bits).trailing_zeros() as usize;
                // Acquire: pairs with the previous holder's release.
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

thread_local! {
    /// The thread's lease, [`UNASKED`] or [`NONE`]. Read on every
    /// request, so a plain cell with no destructor to check for.
    static INDEX: Cell<usize> = const { Cell::new(UNASKED) };
    /// Gives the lease back when the thread exits.
    static HOLDER: Holder = const { Holder };
}

/// Gives the thread's lease back when the thread exits.
struct Holder;

impl Drop for Holder {
    fn drop(&mut self) {
        // NONE from now on, not UNASKED: a thread tearing down takes no
        // lease it could not give back.
        let index = INDEX.try_with(|index| index.replace(NONE)).unwrap_or(NONE);
        if index < POOL {
            LEASES.give_back(index);
        }
    }
}

/// The current thread's lease index, taken on first use: below [`POOL`],
/// or [`NONE`] when the pool was empty or the thread is exiting.
#[inline]
pub(crate) fn current() -> usize {
    match held() {
        UNASKED => ask(),
        index => index,
    }
}

/// The current thread's lease index as held: [`UNASKED`] (which is no
/// index below [`POOL`]) until [`current`] has been called once. For a
/// fast path that needs only to know whether the thread holds an index
/// below some bound, and calls [`current`] when it does not.
#[inline]
pub(crate) fn held() -> usize {
    // `try_with`: where thread-locals are kept by the OS rather than
    // natively, even one without a destructor can be gone at exit.
    INDEX.try_with(Cell::get).unwrap_or(NONE)
}

/// A number that differs from thread to thread, for spreading threads
/// without a lease: a hash of where this thread keeps its lease.
pub(crate) fn spread() -> usize {
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
    let index = match HOLDER.try_with(|_| ()) {
        Ok(()) => LEASES.take().unwrap_or(NONE),
        Err(_) => NONE,
    };
    if INDEX.try_with(|cell| cell.set(index)).is_err() {
        // Nowhere to keep it, so the holder could not give it back.
        if index < POOL {
            LEASES.give_back(index);
        }
        return NONE;
    }
    index
}

/// Adds `by` to a counter the current thread owns (`owned`), or shares.
///
/// The plain load and store are exact only because no other thread writes
/// the counter while this one holds the lease of its shard.
#[inline(always)]
pub(crate) fn add(counter: &AtomicU64, by: u64, owned: bool) {
    if owned {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(by),
            Ordering::Relaxed,
        );
    } else {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
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
                    let lease = current();
                    assert!(lease < POOL, "the pool has room for {THREADS} threads");
                    assert!(
                        seen.lock().unwrap().insert(lease),
                        "lease {lease} handed to two live threads"
                    );
                    assert_eq!(current(), lease, "a thread keeps its lease");
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
            let lease = thread::spawn(current).join().unwrap();
            assert!(lease < POOL, "the pool ran dry: leases are not given back");
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

    #[test]
    fn a_thread_without_a_lease_adds_with_a_locked_instruction() {
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                thread::spawn(move || {
                    for _ in 0..10_000 {
                        add(&counter, 1, false);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 40_000);
    }
}
