//! A fixed-capacity array whose storage is allocated in doubling segments
//! as indexes are first used, so that memory follows the highest index in
//! use rather than the capacity.
//!
//! Elements never move once allocated, so `&T` handed out stays valid, and
//! no lock is taken: each segment is a write-once cell.

use std::fmt;

use crate::sync::OnceLock;

/// Size of the first segment; segment `k` holds `FIRST << k` elements.
const FIRST: usize = 8;

/// Enough segments for any capacity the crate allows (`8 × (2^20 − 1)`,
/// about 8.4 million elements).
const SEGMENTS: usize = 20;

/// The largest capacity a [`Segmented`] can have.
pub(crate) const MAX_CAPACITY: usize = FIRST * ((1 << SEGMENTS) - 1);

pub(crate) struct Segmented<T: 'static> {
    segments: [OnceLock<Box<[T]>>; SEGMENTS],
    capacity: usize,
}

impl<T: Default + 'static> Segmented<T> {
    /// An array of `capacity` elements (at most [`MAX_CAPACITY`]), none of
    /// them allocated yet.
    pub(crate) fn new(capacity: usize) -> Self {
        debug_assert!(capacity <= MAX_CAPACITY, "capacity {capacity}");
        Self {
            segments: std::array::from_fn(|_| OnceLock::new()),
            capacity: capacity.min(MAX_CAPACITY),
        }
    }

    /// Element `index`, if its segment has been allocated.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        if index >= self.capacity {
            return None;
        }
        let (segment, offset) = locate(index);
        self.segments[segment].get()?.get(offset)
    }

    /// Element `index`, allocating its segment (and only it) if needed;
    /// `None` past the capacity.
    #[inline]
    pub(crate) fn get_or_alloc(&self, index: usize) -> Option<&T> {
        if index >= self.capacity {
            return None;
        }
        let (segment, offset) = locate(index);
        let start = FIRST * ((1 << segment) - 1);
        let len = (FIRST << segment).min(self.capacity - start);
        self.segments[segment]
            .get_or_init(|| (0..len).map(|_| T::default()).collect())
            .get(offset)
    }

    /// The allocated elements with their indexes, in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &T)> + '_ {
        self.segments
            .iter()
            .enumerate()
            .filter_map(|(segment, cells)| Some((FIRST * ((1 << segment) - 1), cells.get()?)))
            .flat_map(|(start, cells)| {
                cells
                    .iter()
                    .enumerate()
                    .map(move |(offset, cell)| (start + offset, cell))
            })
    }

    /// Bytes allocated for elements so far.
    #[cfg(test)]
    #[cfg(not(loom))]
    pub(crate) fn allocated_len(&self) -> usize {
        self.segments
            .iter()
            .filter_map(OnceLock::get)
            .map(|segment| segment.len())
            .sum()
    }
}

/// The segment of `index` and its offset in that segment.
#[inline]
fn locate(index: usize) -> (usize, usize) {
    let scaled = index / FIRST + 1;
    let segment = scaled.ilog2() as usize;
    (segment, index - FIRST * ((1 << segment) - 1))
}

impl<T: 'static> fmt::Debug for Segmented<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segmented")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn every_index_has_its_own_element() {
        let array: Segmented<AtomicU64> = Segmented::new(1000);
        for index in 0..1000 {
            array
                .get_or_alloc(index)
                .unwrap()
                .store(index as u64, Ordering::Relaxed);
        }
        for index in 0..1000 {
            assert_eq!(
                array.get(index).unwrap().load(Ordering::Relaxed),
                index as u64
            );
        }
        assert!(array.get(1000).is_none());
        assert!(array.get_or_alloc(1000).is_none());
        let listed: Vec<usize> = array.iter().map(|(index, _)| index).collect();
        assert_eq!(listed, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn memory_follows_the_highest_index_used() {
        let array: Segmented<AtomicU64> = Segmented::new(MAX_CAPACITY);
        assert_eq!(array.allocated_len(), 0);
        array.get_or_alloc(0).unwrap();
        assert_eq!(array.allocated_len(), 8);
        array.get_or_alloc(100).unwrap();
        // 100 is in the fourth segment (56..120): segments 0 and 3 only.
        assert_eq!(array.allocated_len(), 8 + 64);
        assert!(array.get(8).is_none(), "segment 1 was never allocated");
        // The last element of the capacity is reachable.
        array.get_or_alloc(MAX_CAPACITY - 1).unwrap();
    }

    #[test]
    fn a_small_capacity_allocates_no_more_than_it_holds() {
        let array: Segmented<AtomicU64> = Segmented::new(11);
        array.get_or_alloc(10).unwrap();
        assert_eq!(array.allocated_len(), 3, "the second segment is cut at 11");
    }
}
