//! The latest exemplar of a bucket or a status code, kept without a lock
//! and without allocating.
//!
//! A slot is a sequence lock over a few atomics: a writer takes it by
//! moving the sequence from even to odd, writes, and releases it at the
//! next even number; a reader retries while the sequence is odd or has
//! moved. Writers never wait: one that finds the slot taken (two requests
//! of the same shard and series finishing at the same instant) drops its
//! exemplar, which an exemplar, a sample by nature, can afford.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use crate::{extras::Exemplar, TraceId};

/// One exemplar's storage.
#[derive(Debug, Default)]
pub(super) struct ExemplarSlot {
    /// Even when stable, odd while written; 0 until the first write.
    sequence: AtomicU64,
    trace_high: AtomicU64,
    trace_low: AtomicU64,
    value: AtomicU64,
    timestamp: AtomicU64,
}

impl ExemplarSlot {
    /// Keeps `exemplar` unless another writer holds the slot.
    pub(super) fn store(&self, exemplar: &Exemplar) {
        let sequence = self.sequence.load(Ordering::Relaxed);
        if sequence % 2 == 1
            || self
                .sequence
                .compare_exchange(sequence, sequence + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let bytes = exemplar.trace_id.to_bytes();
        let (high, low) = bytes.split_at(8);
        let word = |half: &[u8]| u64::from_be_bytes(half.try_into().unwrap_or_default());
        self.trace_high.store(word(high), Ordering::Relaxed);
        self.trace_low.store(word(low), Ordering::Relaxed);
        self.value
            .store(exemplar.value.to_bits(), Ordering::Relaxed);
        self.timestamp
            .store(exemplar.timestamp.to_bits(), Ordering::Relaxed);
        self.sequence.store(sequence + 2, Ordering::Release);
    }

    /// The exemplar last stored, if any; `None` also when writers kept the
    /// slot busy through every attempt.
    pub(super) fn load(&self) -> Option<Exemplar> {
        for _ in 0..64 {
            let before = self.sequence.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let high = self.trace_high.load(Ordering::Relaxed);
            let low = self.trace_low.load(Ordering::Relaxed);
            let value = f64::from_bits(self.value.load(Ordering::Relaxed));
            let timestamp = f64::from_bits(self.timestamp.load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if self.sequence.load(Ordering::Relaxed) != before {
                continue;
            }
            let mut bytes = [0; 16];
            bytes[..8].copy_from_slice(&high.to_be_bytes());
            bytes[8..].copy_from_slice(&low.to_be_bytes());
            return Some(Exemplar {
                trace_id: TraceId::from_bytes(bytes)?,
                value,
                timestamp,
            });
        }
        None
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
mod tests {
    use std::sync::Arc;

    use super::*;

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
        let writers: Vec<_> = (1..=2_u8)
            .map(|byte| {
                let slot = slot.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        slot.store(&exemplar(byte, f64::from(byte) * 10.0));
                    }
                })
            })
            .collect();
        let mut seen = 0;
        while seen < 20_000 {
            if let Some(read) = slot.load() {
                let byte = read.trace_id.to_bytes()[0];
                assert_eq!(read, exemplar(byte, f64::from(byte) * 10.0));
                seen += 1;
            }
        }
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
