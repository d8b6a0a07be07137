//! The latest exemplar of a bucket or a status code, kept without
//! allocating.
//!
//! A slot is a `Mutex` that writers only ever `try_lock`: one that finds
//! the slot taken (two requests of the same shard and series finishing at
//! the same instant) drops its exemplar rather than wait, which an
//! exemplar, a sample by nature, can afford. An uncontended `try_lock` and
//! unlock cost what a hand-made sequence lock costs (one compare-exchange
//! and one store), and need no ordering argument: a scrape locks the slot
//! and reads a whole exemplar.

use crate::{extras::Exemplar, sync::Mutex};

/// One exemplar's storage.
#[derive(Debug, Default)]
pub(super) struct ExemplarSlot(Mutex<Option<Exemplar>>);

impl ExemplarSlot {
    /// Keeps `exemplar` unless another writer holds the slot.
    pub(super) fn store(&self, exemplar: &Exemplar) {
        // A poisoned slot cannot happen (nothing panics while holding it),
        // and would hold a whole exemplar anyway.
        let slot = match self.0.try_lock() {
            Ok(slot) => Some(slot),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some(mut slot) = slot {
            *slot = Some(*exemplar);
        }
    }

    /// The exemplar last stored, if any.
    pub(super) fn load(&self) -> Option<Exemplar> {
        match self.0.lock() {
            Ok(slot) => *slot,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

/// The exemplars of one cell: per bucket, and per status code.
#[derive(Debug)]
pub(super) struct Exemplars {
    pub(super) buckets: Box<[ExemplarSlot]>,
    pub(super) codes: Box<[ExemplarSlot]>,
}

impl Exemplars {
    pub(super) fn new(buckets: usize, codes: usize) -> Self {
        Self {
            buckets: (0..buckets).map(|_| ExemplarSlot::default()).collect(),
            codes: (0..codes).map(|_| ExemplarSlot::default()).collect(),
        }
    }
}

/// The later of two exemplars: a scrape shows the latest across shards.
pub(super) fn latest(a: Option<Exemplar>, b: Option<Exemplar>) -> Option<Exemplar> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.timestamp > a.timestamp { b } else { a }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };

    use super::*;
    use crate::TraceId;

    fn exemplar(byte: u8, value: f64) -> Exemplar {
        Exemplar {
            trace_id: TraceId::from_bytes([byte; 16]).unwrap(),
            value,
            timestamp: f64::from(byte),
        }
    }

    #[test]
    fn an_empty_slot_has_no_exemplar() {
        assert_eq!(ExemplarSlot::default().load(), None);
    }

    #[test]
    fn the_latest_store_is_loaded() {
        let slot = ExemplarSlot::default();
        slot.store(&exemplar(1, 0.5));
        slot.store(&exemplar(2, 0.25));
        assert_eq!(slot.load(), Some(exemplar(2, 0.25)));
    }

    #[test]
    fn a_reader_never_sees_a_torn_exemplar() {
        // Each writer stores exemplars whose every field derives from one
        // byte; a torn read would mix two.
        let slot = Arc::new(ExemplarSlot::default());
        slot.store(&exemplar(1, 10.0));
        let done = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (1..=2_u8)
            .map(|byte| {
                let (slot, done) = (slot.clone(), done.clone());
                std::thread::spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        slot.store(&exemplar(byte, f64::from(byte) * 10.0));
                    }
                })
            })
            .collect();
        for _ in 0..20_000 {
            let read = slot.load().expect("stored before the writers started");
            let byte = read.trace_id.to_bytes()[0];
            assert_eq!(read, exemplar(byte, f64::from(byte) * 10.0));
        }
        done.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.join().unwrap();
        }
    }

    #[test]
    fn the_later_of_two_wins() {
        assert_eq!(
            latest(Some(exemplar(1, 1.0)), Some(exemplar(2, 1.0))),
            Some(exemplar(2, 1.0))
        );
        assert_eq!(latest(None, Some(exemplar(2, 1.0))), Some(exemplar(2, 1.0)));
        assert_eq!(latest(None, None), None);
    }
}

#[cfg(test)]
#[cfg(loom)]
mod loom_models {
    use loom::{sync::Arc, thread};

    use super::*;
    use crate::TraceId;

    fn exemplar(byte: u8) -> Exemplar {
        Exemplar {
            trace_id: TraceId::from_bytes([byte; 16]).unwrap(),
            value: f64::from(byte),
            timestamp: f64::from(byte) * 10.0,
        }
    }

    #[test]
    fn loom_a_scrape_reads_one_whole_exemplar_while_two_requests_store() {
        loom::model(|| {
            let slot = Arc::new(ExemplarSlot::default());
            let writers: Vec<_> = [1, 2]
                .map(|byte| {
                    let slot = slot.clone();
                    thread::spawn(move || slot.store(&exemplar(byte)))
                })
                .into();
            if let Some(read) = slot.load() {
                let byte = read.trace_id.to_bytes()[0];
                assert_eq!(read, exemplar(byte), "an exemplar of two requests");
            }
            for writer in writers {
                writer.join().unwrap();
            }
            // Both stores may have found the scrape holding the slot.
            if let Some(kept) = slot.load() {
                assert!([exemplar(1), exemplar(2)].contains(&kept), "{kept:?}");
            }
        });
    }
}
