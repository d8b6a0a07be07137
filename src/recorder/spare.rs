//! Spare references to a shard, kept per thread, so that a request takes
//! and returns the reference its future holds without touching the shared
//! reference count.
//!
//! A response future must own a reference to the layer's tables: it can
//! outlive the service that made it. Cloning an `Arc` and dropping it are
//! two locked instructions per request, about 16 ns in a `perf` profile of
//! the benchmark of BENCHMARKS.md, where the layer adds about 60 ns in
//! all. So each thread keeps a few
//! clones of the last shard it recorded for: a request takes one when it
//! starts and, when it ends on the same thread (the common case), puts it
//! back. A request that ends on another thread, or after the thread moved
//! on to another layer's shard, drops its reference as before.
//!
//! The cost is that a thread keeps up to [`KEPT`] references to the last
//! shard it recorded for until it records for another shard or exits, so
//! the tables of a layer that was dropped are freed only then.

use std::{cell::RefCell, sync::Arc};

use super::Shard;

/// The most spare references a thread keeps.
const KEPT: usize = 32;

thread_local! {
    static SPARES: RefCell<Vec<Arc<Shard>>> = const { RefCell::new(Vec::new()) };
}

/// A reference to `shard`: one of this thread's spares, or a new clone.
#[inline]
pub(super) fn take(shard: &Arc<Shard>) -> Arc<Shard> {
    let spare = SPARES.try_with(|spares| {
        let mut spares = spares.try_borrow_mut().ok()?;
        match spares.last() {
            Some(last) if Arc::ptr_eq(last, shard) => spares.pop(),
            _ => None,
        }
    });
    match spare {
        Ok(Some(spare)) => spare,
        _ => shard.clone(),
    }
}

/// Keeps `shard` as a spare when it is the shard the current thread
/// records in (`here`), else drops it.
#[inline]
pub(super) fn put(shard: Arc<Shard>, here: bool) {
    if !here {
        return;
    }
    // Dropping references here, even a layer's last, is safe inside the
    // borrow: a drop that recorded again would find the spares borrowed
    // and drop its reference instead.
    let _ = SPARES.try_with(|spares| {
        let Ok(mut spares) = spares.try_borrow_mut() else {
            return;
        };
        if spares.last().is_some_and(|last| !Arc::ptr_eq(last, &shard)) {
            // The thread moved on to another shard: its old spares go.
            spares.clear();
        }
        if spares.len() < KEPT {
            if spares.capacity() == 0 {
                // All the room at once: one allocation in the thread's life.
                spares.reserve_exact(KEPT);
            }
            spares.push(shard);
        }
    });
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::{sync::Arc, thread};

    use http::Method;
    use prometheus::Registry;

    use super::*;
    use crate::{labels::Status, RequestMetricsLayer, Route};

    fn layer() -> RequestMetricsLayer {
        RequestMetricsLayer::builder()
            .route(Route::new("/a"))
            .shards(crate::MAX_SHARDS)
            .build(&Registry::new())
            .unwrap()
    }

    fn serve(layer: &RequestMetricsLayer) {
        let (pending, _) = layer.recorder().start("/a", &Method::GET).unwrap();
        pending.finish(Status::new(200).unwrap(), None);
    }

    /// The references to the current thread's shard of `layer`.
    fn shard_references(layer: &RequestMetricsLayer) -> usize {
        let (shard, _) = layer.recorder().shard();
        Arc::strong_count(shard)
    }

    #[test]
    fn a_request_on_one_thread_takes_a_spare_and_puts_it_back() {
        // A fresh thread: spares are per thread.
        thread::spawn(|| {
            let layer = layer();
            let before = shard_references(&layer);
            // The first request clones the shard's reference and keeps it.
            serve(&layer);
            assert_eq!(shard_references(&layer), before + 1, "one spare kept");
            for _ in 0..100 {
                serve(&layer);
            }
            assert_eq!(shard_references(&layer), before + 1, "the spare reused");
            // Two requests in flight at once: a second spare.
            let (first, _) = layer.recorder().start("/a", &Method::GET).unwrap();
            let (second, _) = layer.recorder().start("/a", &Method::GET).unwrap();
            first.finish(Status::new(200).unwrap(), None);
            second.finish(Status::new(200).unwrap(), None);
            assert_eq!(shard_references(&layer), before + 2);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_request_ended_on_another_thread_is_not_kept_there() {
        let layer = Arc::new(layer());
        let (to_ender, from_starter) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let starter = {
            let layer = layer.clone();
            thread::spawn(move || {
                let (index, _) = layer.recorder().tables.place();
                let (pending, _) = layer.recorder().start("/a", &Method::GET).unwrap();
                let shard = &layer.recorder().shards[index];
                to_ender
                    .send((pending, index, Arc::strong_count(shard)))
                    .unwrap();
                // Alive until the other thread is done, so that it cannot
                // take this thread's lease, and with it this shard.
                done_rx.recv().unwrap();
            })
        };
        let (pending, index, with_request) = from_starter.recv().unwrap();
        let shard = &layer.recorder().shards[index];
        pending.finish(Status::new(200).unwrap(), None);
        assert_eq!(
            Arc::strong_count(shard),
            with_request - 1,
            "the request's reference was kept by the thread that ended it"
        );
        done_tx.send(()).unwrap();
        starter.join().unwrap();
    }

    #[test]
    fn an_exiting_thread_frees_its_spares() {
        let first = layer();
        let tables = Arc::downgrade(&first.recorder().tables);
        thread::spawn(move || {
            serve(&first);
            drop(first);
        })
        .join()
        .unwrap();
        assert!(
            tables.upgrade().is_none(),
            "the exited thread's spares live on"
        );
    }

    #[test]
    fn a_thread_keeps_at_most_its_spares() {
        thread::spawn(|| {
            let layer = layer();
            let before = shard_references(&layer);
            let pending: Vec<_> = (0..3 * KEPT)
                .map(|_| layer.recorder().start("/a", &Method::GET).unwrap().0)
                .collect();
            for pending in pending {
                pending.finish(Status::new(200).unwrap(), None);
            }
            assert_eq!(shard_references(&layer), before + KEPT);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_dropped_layer_is_freed_once_its_threads_record_elsewhere() {
        thread::spawn(|| {
            let first = layer();
            serve(&first);
            let tables = Arc::downgrade(&first.recorder().tables);
            drop(first);
            // The documented cost: this thread's spares keep it.
            assert!(tables.upgrade().is_some());
            let second = layer();
            serve(&second);
            assert!(tables.upgrade().is_none(), "the old spares were kept");
        })
        .join()
        .unwrap();
    }
}
