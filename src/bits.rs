//! A fixed-size bit set: the status codes of a family in use, the bytes a
//! path may start with.

/// A set of small integers below `64 × WORDS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BitSet<const WORDS: usize>([u64; WORDS]);

impl<const WORDS: usize> Default for BitSet<WORDS> {
    fn default() -> Self {
        Self([0; WORDS])
    }
}

impl<const WORDS: usize> BitSet<WORDS> {
    /// The word and the bit within it of `member`.
    #[inline]
    pub(crate) const fn position(member: usize) -> (usize, u64) {
        (member / 64, 1 << (member % 64))
    }

    pub(crate) const fn from_words(words: [u64; WORDS]) -> Self {
        Self(words)
    }

    /// Adds `member`; one past the capacity is ignored.
    pub(crate) fn insert(&mut self, member: usize) {
        let (word, bit) = Self::position(member);
        if let Some(word) = self.0.get_mut(word) {
            *word |= bit;
        }
    }

    #[inline]
    pub(crate) fn contains(&self, member: usize) -> bool {
        let (word, bit) = Self::position(member);
        self.0.get(word).is_some_and(|word| word & bit != 0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|&word| word == 0)
    }

    #[must_use]
    pub(crate) fn union(mut self, other: Self) -> Self {
        for (word, other) in self.0.iter_mut().zip(other.0) {
            *word |= other;
        }
        self
    }

    /// The members, in ascending order.
    pub(crate) fn iter(self) -> impl Iterator<Item = usize> {
        self.0
            .into_iter()
            .enumerate()
            .flat_map(|(index, mut word)| {
                std::iter::from_fn(move || {
                    if word == 0 {
                        return None;
                    }
                    let bit = word.trailing_zeros() as usize;
                    word &= word - 1;
                    Some(index * 64 + bit)
                })
            })
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    #[test]
    fn a_set_lists_its_members_in_order() {
        let mut set = BitSet::<2>::default();
        assert!(set.is_empty());
        for member in [99, 0, 63, 64, 5, 63, 127] {
            set.insert(member);
        }
        assert!(!set.is_empty());
        assert!(set.contains(64) && !set.contains(65));
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 5, 63, 64, 99, 127]);
        let mut other = BitSet::default();
        other.insert(1);
        assert_eq!(
            set.union(other).iter().collect::<Vec<_>>(),
            [0, 1, 5, 63, 64, 99, 127]
        );
        // Past the capacity: ignored, never a panic.
        set.insert(128);
        assert!(!set.contains(128));
    }
}
