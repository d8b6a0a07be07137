//! Client ids: who made an API request, and the bounded table of the ids
//! seen so far.

use std::{borrow::Cow, fmt};
#[cfg(not(loom))]
use std::{collections::hash_map::RandomState, hash::BuildHasher};

use crate::{
    limits::MAX_CLIENT_IDS,
    schema::OTHER_CLIENT_ID,
    segmented::Segmented,
    sync::{AtomicUsize, OnceLock, Ordering},
};

/// The id of the API client that made a request, recorded as the
/// `client_id` label of `api_requests_total`.
///
/// Put it in the **response** extensions once the client is authenticated
/// (an auth layer or the handler does this); the layer reads it when the
/// response is ready. Only put verified ids there: whatever is inserted
/// becomes a label value.
///
/// ```
/// use http::Response;
/// use tower_prometheus::ClientId;
///
/// let mut response = Response::new(());
/// response.extensions_mut().insert(ClientId::new("test_client"));
/// ```
///
/// Ids are capped in length and in number; see the
/// [crate docs](crate#hostile-traffic-and-cardinality).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientId(Cow<'static, str>);

impl ClientId {
    /// A client id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(Cow::Owned(id.into()))
    }

    /// A client id from a static string, without allocating.
    pub const fn from_static(id: &'static str) -> Self {
        Self(Cow::Borrowed(id))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Dense index of a client id; [`ClientTable::overflow`] for ids past the
/// caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ClientSlot(usize);

impl ClientSlot {
    /// Its dense index, below [`ClientTable::slots`].
    #[inline]
    pub(crate) fn index(self) -> usize {
        self.0
    }
}

/// Entries probed in one level before moving on to the next.
const WINDOW: usize = 8;

/// Entries in the first level; level `k` has `FIRST_LEVEL << k`.
const FIRST_LEVEL: usize = 16;

/// Levels the table can ever have, for the largest cap.
const MAX_LEVELS: usize = 16;

/// Maps client ids to dense slots without a lock, growing with the ids
/// seen rather than with the cap.
///
/// Open addressing over levels of doubling size: an id is looked for in a
/// short window of each level in turn, and a new id claims the first empty
/// entry on that path. Entries are write-once, so two threads claiming the
/// same id walk the same path and agree on one entry, and a lookup may stop
/// at the first empty entry it meets. A level is allocated only when a
/// claim finds every window before it full; the levels together have room
/// for several times the cap, so in practice the cap, not the table, sends
/// ids to the overflow slot. The hash is seeded per table, so crafted ids
/// cannot pile up in one window.
pub(crate) struct ClientTable {
    levels: [OnceLock<Box<[OnceLock<Entry>]>>; MAX_LEVELS],
    level_count: usize,
    /// The id of each slot, for the scrape.
    names: Segmented<OnceLock<Box<str>>>,
    next: AtomicUsize,
    max_ids: usize,
    max_len: usize,
    seed: u64,
}

struct Entry {
    id: Box<str>,
    slot: ClientSlot,
}

impl ClientTable {
    /// A table for at most `max_ids` ids (at most [`MAX_CLIENT_IDS`])
    /// of at most `max_len` bytes; nothing proportional to either is
    /// allocated yet.
    pub(crate) fn new(max_ids: usize, max_len: usize) -> Self {
        let max_ids = max_ids.min(MAX_CLIENT_IDS);
        // Room for four times the cap over all levels.
        let mut level_count = 1;
        while FIRST_LEVEL * ((1 << level_count) - 1) < 4 * max_ids && level_count < MAX_LEVELS {
            level_count += 1;
        }
        Self {
            levels: std::array::from_fn(|_| OnceLock::new()),
            level_count,
            names: Segmented::new(max_ids),
            next: AtomicUsize::new(0),
            max_ids,
            max_len,
            seed: seed(),
        }
    }

    /// Number of slots, the overflow slot included.
    pub(crate) fn slots(&self) -> usize {
        self.max_ids + 1
    }

    /// Number of slots claimed so far, the overflow slot not included.
    pub(crate) fn claimed(&self) -> usize {
        self.next.load(Ordering::Acquire).min(self.max_ids)
    }

    /// The slot of ids past the caps.
    pub(crate) fn overflow(&self) -> ClientSlot {
        ClientSlot(self.max_ids)
    }

    /// Whether `id` may have a slot of its own: not empty, within the
    /// length cap, free of control characters, and not the overflow value
    /// itself (which would make two series with one label set).
    pub(crate) fn is_recordable(&self, id: &str) -> bool {
        !id.is_empty()
            && id.len() <= self.max_len
            && id != OTHER_CLIENT_ID
            && !id.chars().any(char::is_control)
    }

    /// The `client_id` label value of a slot, if the slot is in use.
    pub(crate) fn name(&self, slot: ClientSlot) -> Option<&str> {
        if slot == self.overflow() {
            return Some(OTHER_CLIENT_ID);
        }
        self.names.get(slot.index())?.get().map(|name| &**name)
    }

    /// The slot whose dense index is `index`, if there is one.
    pub(crate) fn slot_at(&self, index: usize) -> Option<ClientSlot> {
        (index <= self.max_ids).then_some(ClientSlot(index))
    }

    /// The slots claimed so far, in slot order, then the overflow slot.
    pub(crate) fn slots_in_use(&self) -> impl Iterator<Item = ClientSlot> {
        (0..self.claimed()).map(ClientSlot).chain([self.overflow()])
    }

    /// The slot `id` already has, without claiming one: `Some(overflow)`
    /// for an id that can never have its own, `None` for a new id that
    /// could still claim one.
    #[inline]
    pub(crate) fn find(&self, id: &str) -> Option<ClientSlot> {
        if let Some(slot) = self.walk(id, false) {
            return Some(slot);
        }
        if !self.is_recordable(id) {
            return Some(self.overflow());
        }
        if self.is_full() {
            // Another thread may be claiming this very id's slot right now
            // (the last one): settle it as `slot` does, which waits for
            // that claim. Past the cap this claims nothing.
            return Some(self.slot(id));
        }
        None
    }

    /// The slot of `id`, claiming a new one if the id is new and the caps
    /// allow.
    pub(crate) fn slot(&self, id: &str) -> ClientSlot {
        // A known id is found without checking it again: an id that is not
        // recordable never gets into the table.
        if let Some(slot) = self.walk(id, false) {
            return slot;
        }
        if !self.is_recordable(id) {
            return self.overflow();
        }
        self.walk(id, true).unwrap_or(self.overflow())
    }

    /// Whether the cap is reached.
    ///
    /// Acquire, pairing with the claim's `AcqRel` add: a thread that sees
    /// the cap reached by a claim also sees the level that claim allocated,
    /// so its own claiming walk reaches that claim's cell (and waits for it)
    /// instead of taking a missing level for a sign of overflow. With a
    /// relaxed load, one id could get its slot on one thread and the
    /// overflow slot on another (the `loom` models show it).
    fn is_full(&self) -> bool {
        self.next.load(Ordering::Acquire) >= self.max_ids
    }

    /// Walks the probe path of `id`: its slot if it has one; otherwise, when
    /// `claim` is set, the slot it claims on the way (the overflow slot
    /// past the cap).
    ///
    /// An id must never get its own slot on one thread and the overflow
    /// slot on another. A claim happens inside the initialisation of the
    /// first empty cell on the id's path, so a claiming walk initialises
    /// that cell too, which waits for a claim under way; past the cap it
    /// fills the cell with a marker that names no id. A marker comes after
    /// every real slot on any path (markers appear only once the cap is
    /// reached, and a cell is filled once), so meeting one ends the walk.
    #[inline]
    fn walk(&self, id: &str, claim: bool) -> Option<ClientSlot> {
        let hash = hash(self.seed, id.as_bytes());
        for level in 0..self.level_count {
            let entries = match self.levels[level].get() {
                Some(entries) => entries,
                None if claim && !self.is_full() => self.levels[level]
                    .get_or_init(|| (0..FIRST_LEVEL << level).map(|_| OnceLock::new()).collect()),
                // The level was seen missing before the cap was seen
                // reached: look again, now that the acquire in `is_full`
                // makes every level allocated below the cap visible (the
                // `loom` models fail without this second look). A level
                // allocated later serves only claims past the cap, which
                // get the overflow slot too.
                None if claim => self.levels[level].get()?,
                None => return None,
            };
            let mask = entries.len() - 1;
            // Other bits of the hash for each level, so that ids sharing a
            // window in one level are spread in the next.
            let start = hash.rotate_right(7 * level as u32) as usize;
            for probe in 0..WINDOW {
                let cell = &entries[start.wrapping_add(probe) & mask];
                let entry = match cell.get() {
                    Some(entry) => entry,
                    None if claim => cell.get_or_init(|| self.claim(id)),
                    None => return None,
                };
                if &*entry.id == id {
                    return Some(entry.slot);
                }
                if entry.id.is_empty() {
                    // A marker: no real slot lies further on.
                    return Some(self.overflow());
                }
            }
        }
        None
    }

    fn claim(&self, id: &str) -> Entry {
        if self.is_full() {
            // Past the cap: a marker, which allocates nothing.
            return Entry {
                id: Box::default(),
                slot: self.overflow(),
            };
        }
        let index = self.next.fetch_add(1, Ordering::AcqRel);
        // Threads racing past the cap check may overshoot it; such an id
        // keeps the overflow slot for good, so it is recorded consistently.
        let slot = match self.names.get_or_alloc(index) {
            Some(name) => {
                let _ = name.set(id.into());
                ClientSlot(index)
            }
            None => self.overflow(),
        };
        Entry {
            id: id.into(),
            slot,
        }
    }
}

/// A seed per table, so that crafted ids cannot pile up in one window.
#[cfg(not(loom))]
fn seed() -> u64 {
    RandomState::new().hash_one(0x0074_6162_6c65_u64)
}

/// A fixed seed: a model must take the same paths in every execution.
#[cfg(loom)]
fn seed() -> u64 {
    0x0074_6162_6c65
}

impl fmt::Debug for ClientTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTable")
            .field("ids", &self.claimed())
            .field("max_ids", &self.max_ids)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

/// A seeded multiply-xor hash over eight bytes at a time: client ids are
/// short, so this is a couple of multiplications where a byte-wise hash
/// takes one per byte. Collisions only cost probes, which the windows
/// bound.
///
/// A partial last word is read as a whole overlapping word and shifted,
/// rather than copied into a zeroed one: a copy of a length known only at
/// run time is a call to `memcpy`, which costs more than the rest of the
/// hash. Either way the word holds the tail's bytes, zero-padded.
fn hash(seed: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |hash: u64, word: u64| (hash ^ word).wrapping_mul(K).rotate_left(29);
    let len = bytes.len();
    let mut hash = (seed ^ len as u64).wrapping_mul(K);
    let tail = len % 8;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        hash = mix(hash, word_at(chunk));
    }
    let word = if tail == 0 {
        None
    } else if len >= 8 {
        // The last eight bytes, less those of the previous word.
        Some(word_at(&bytes[len - 8..]) >> (8 * (8 - tail)))
    } else if len >= 4 {
        // Two four-byte halves, overlapping when `len` < 8.
        let high = u64::from(half_word_at(&bytes[len - 4..])) >> (8 * (8 - len));
        Some(u64::from(half_word_at(bytes)) | high << 32)
    } else {
        Some(
            bytes
                .iter()
                .rev()
                .fold(0, |word, &byte| word << 8 | u64::from(byte)),
        )
    };
    if let Some(word) = word {
        hash = mix(hash, word);
    }
    // Fold the high bits, which the multiplications mix best, into the low
    // bits the table index uses.
    hash ^ (hash >> 32)
}

/// The first eight bytes of `bytes` (which has at least eight).
#[inline]
fn word_at(bytes: &[u8]) -> u64 {
    let mut word = [0_u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// The first four bytes of `bytes` (which has at least four).
#[inline]
fn half_word_at(bytes: &[u8]) -> u32 {
    let mut word = [0_u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;
    use std::{collections::HashSet, sync::Arc, thread};

    #[test]
    fn similar_ids_spread_over_the_table() {
        // 100 ids into 256 entries: a uniform hash fills about 82 distinct
        // entries; a hash that ignored a byte position would fill far fewer.
        for prefix in ["client-", "a-much-longer-client-name-", ""] {
            let entries: HashSet<u64> = (0..100)
                .map(|i| hash(7, format!("{prefix}{i}").as_bytes()) & 255)
                .collect();
            assert!(entries.len() >= 70, "{prefix:?}: {} entries", entries.len());
        }
        assert_ne!(hash(7, b"ab"), hash(7, b"ab\0"), "the length is hashed");
    }

    #[test]
    fn a_partial_last_word_is_read_as_its_bytes_zero_padded() {
        // What the overlapping reads must amount to, for every tail length.
        fn padded(seed: u64, bytes: &[u8]) -> u64 {
            const K: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut hash = (seed ^ bytes.len() as u64).wrapping_mul(K);
            for chunk in bytes.chunks(8) {
                let mut word = [0_u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                hash = (hash ^ u64::from_le_bytes(word))
                    .wrapping_mul(K)
                    .rotate_left(29);
            }
            hash ^ (hash >> 32)
        }
        for len in 0..=24 {
            let id: Vec<u8> = (0..len).map(|i| 0xa0 + i as u8).collect();
            assert_eq!(hash(7, &id), padded(7, &id), "length {len}");
        }
    }

    #[test]
    fn every_byte_of_an_id_of_any_length_moves_its_hash() {
        // Every length up to three words, so that each way of reading a
        // partial word is covered; a byte the overlapping reads skipped
        // would leave two ids one hash.
        for len in 1..=24 {
            let id: Vec<u8> = (0..len).map(|i| b'a' + i as u8).collect();
            for position in 0..len {
                let mut other = id.clone();
                other[position] ^= 0x20;
                assert_ne!(
                    hash(7, &id),
                    hash(7, &other),
                    "length {len}: byte {position} is not hashed"
                );
            }
        }
    }

    #[test]
    fn every_byte_of_a_full_chunk_changes_the_hash() {
        // Sixteen bytes: two full 8-byte chunks and no tail.
        let base = *b"0123456789abcdef";
        let original = hash(7, &base);
        for position in 0..base.len() {
            for bit in 0..8 {
                let mut changed = base;
                changed[position] ^= 1 << bit;
                assert_ne!(hash(7, &changed), original, "byte {position}, bit {bit}");
            }
        }
    }

    #[test]
    fn the_seed_changes_every_hash() {
        let ids = ["a", "client-1", "a-much-longer-client-name"];
        for id in ids {
            assert_ne!(hash(1, id.as_bytes()), hash(2, id.as_bytes()), "{id}");
        }
    }

    #[test]
    fn ids_that_cannot_be_label_values_share_the_overflow_slot() {
        let table = ClientTable::new(10, 64);
        for id in ["", OTHER_CLIENT_ID, "a\rb", "nul\0", "tab\t", "c1\u{85}"] {
            assert_eq!(table.slot(id), table.overflow(), "{id:?}");
            assert_eq!(table.find(id), Some(table.overflow()), "{id:?}");
        }
        assert_eq!(table.claimed(), 0, "none of them took a slot");
        // Printable Unicode is kept.
        assert_eq!(table.slot("caf\u{e9}").index(), 0);
    }

    #[test]
    fn finding_an_id_never_claims_a_slot() {
        let table = ClientTable::new(2, 64);
        assert_eq!(table.find("a"), None);
        assert_eq!(table.find("b"), None);
        assert_eq!(table.claimed(), 0);
        assert!(
            table.levels.iter().all(|level| level.get().is_none()),
            "a lookup allocates nothing"
        );
        assert_eq!(table.slot("b").index(), 0);
        assert_eq!(table.find("b").map(ClientSlot::index), Some(0));
        assert_eq!(table.slot("c").index(), 1);
        // Full: a new id can only be the overflow.
        assert_eq!(table.find("a"), Some(table.overflow()));
    }

    #[test]
    fn a_large_cap_allocates_nothing_until_ids_arrive() {
        let table = ClientTable::new(MAX_CLIENT_IDS, 64);
        assert!(table.levels.iter().all(|level| level.get().is_none()));
        assert_eq!(table.names.allocated_len(), 0);
        for i in 0..20 {
            table.slot(&format!("client-{i}"));
        }
        let entries: usize = table
            .levels
            .iter()
            .filter_map(OnceLock::get)
            .map(|level| level.len())
            .sum();
        assert!(entries <= 16 + 32 + 64, "{entries} entries for 20 ids");
        assert!(table.names.allocated_len() <= 24);
    }

    #[test]
    fn the_table_holds_its_whole_cap() {
        let table = ClientTable::new(MAX_CLIENT_IDS, 64);
        for i in 0..MAX_CLIENT_IDS {
            assert_eq!(table.slot(&format!("client-{i}")).index(), i);
        }
        assert_eq!(table.slot("one-more"), table.overflow());
        for i in (0..MAX_CLIENT_IDS).step_by(97) {
            assert_eq!(table.find(&format!("client-{i}")), Some(ClientSlot(i)));
        }
    }

    #[test]
    fn the_same_id_always_gets_the_same_slot() {
        let table = ClientTable::new(10, 64);
        let a = table.slot("alpha");
        let b = table.slot("beta");
        assert_ne!(a, b);
        assert_eq!(table.slot("alpha"), a);
        assert_eq!(table.slot("beta"), b);
        assert_eq!(table.name(a), Some("alpha"));
        assert_eq!(table.name(b), Some("beta"));
    }

    #[test]
    fn ids_past_the_count_cap_share_the_overflow_slot() {
        let table = ClientTable::new(3, 64);
        let slots: Vec<_> = (0..10)
            .map(|i| table.slot(&format!("client-{i}")))
            .collect();
        assert_eq!(slots[..3], [0, 1, 2].map(ClientSlot));
        assert_eq!(table.claimed(), 3);
        assert!(slots[3..].iter().all(|&s| s == table.overflow()));
        assert_eq!(table.name(table.overflow()), Some(OTHER_CLIENT_ID));
        // The first three keep their slots.
        assert_eq!(table.slot("client-1").index(), 1);
    }

    #[test]
    fn ids_past_the_length_cap_share_the_overflow_slot() {
        let table = ClientTable::new(3, 5);
        assert_eq!(table.slot("abcdef"), table.overflow());
        assert_eq!(table.slot("abcde").index(), 0);
    }

    #[test]
    fn a_zero_cap_sends_everything_to_overflow() {
        let table = ClientTable::new(0, 5);
        assert_eq!(table.slot("a"), table.overflow());
        assert_eq!(table.slots(), 1);
    }

    #[test]
    fn a_table_shows_its_counts_in_debug_output() {
        let table = ClientTable::new(3, 8);
        table.slot("a");
        table.slot("b");
        let shown = format!("{table:?}");
        assert!(
            shown.contains("ids: 2") && shown.contains("max_ids: 3"),
            "{shown}"
        );
    }

    #[test]
    fn a_client_id_displays_as_itself() {
        let owned = ClientId::new("test_client");
        let borrowed = ClientId::from_static("test_client");
        assert_eq!(owned.to_string(), "test_client");
        assert_eq!(format!("<{borrowed}>"), "<test_client>");
        assert_eq!(owned.as_str(), "test_client");
        assert_eq!(owned, borrowed);
    }

    #[test]
    fn odd_characters_are_kept_verbatim() {
        let table = ClientTable::new(4, 64);
        let id = "we\"ird\\client x";
        let slot = table.slot(id);
        assert_eq!(table.name(slot), Some(id));
    }

    #[test]
    fn concurrent_claims_give_each_id_one_slot_within_the_cap() {
        // Many rounds: the race at the cap (the last slot claimed on one
        // thread while another finds the table full) is a narrow window.
        for _ in 0..50 {
            concurrent_claims_round();
        }
    }

    fn concurrent_claims_round() {
        let table = Arc::new(ClientTable::new(50, 64));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let table = table.clone();
                thread::spawn(move || {
                    (0..100)
                        .map(|i| (i, table.slot(&format!("id{i}"))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<Vec<(usize, ClientSlot)>> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        for i in 0..100 {
            let slots: HashSet<_> = results.iter().map(|r| r[i].1).collect();
            assert_eq!(slots.len(), 1, "id{i} got several slots: {slots:?}");
        }
        let named: HashSet<_> = results[0]
            .iter()
            .filter(|(_, s)| *s != table.overflow())
            .map(|(_, s)| *s)
            .collect();
        assert!(named.len() <= 50);
        for slot in named {
            let name = table.name(slot).unwrap();
            assert_eq!(table.slot(name), slot);
        }
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod seed_tests {
    use super::*;

    #[test]
    fn each_table_hashes_with_a_seed_of_its_own() {
        // A fixed seed would let crafted ids pile up in one window of
        // every table.
        let seeds: std::collections::HashSet<u64> =
            (0..4).map(|_| ClientTable::new(10, 64).seed).collect();
        assert_eq!(seeds.len(), 4);
    }
}

#[cfg(test)]
#[cfg(loom)]
mod loom_models {
    use loom::{sync::Arc, thread};

    use super::*;

    /// The slot `id` is recorded under, as a request with it records:
    /// `find` at the request's start, `slot` at its end for a new id.
    fn recorded_slot(table: &ClientTable, id: &str) -> ClientSlot {
        table.find(id).unwrap_or_else(|| table.slot(id))
    }

    #[test]
    fn loom_one_id_racing_for_the_last_slot_gets_it_on_every_thread() {
        loom::model(|| {
            let table = Arc::new(ClientTable::new(1, 64));
            let other = {
                let table = table.clone();
                thread::spawn(move || recorded_slot(&table, "acme"))
            };
            let here = recorded_slot(&table, "acme");
            let there = other.join().unwrap();
            assert_eq!(here, there, "one id, two slots");
            assert_ne!(here, table.overflow(), "the cap had room for it");
        });
    }

    #[test]
    fn loom_two_ids_racing_for_the_last_slot_each_get_one_slot_everywhere() {
        loom::model(|| {
            let table = Arc::new(ClientTable::new(1, 64));
            let other = {
                let table = table.clone();
                thread::spawn(move || {
                    let first = recorded_slot(&table, "acme");
                    (first, recorded_slot(&table, "zeta"))
                })
            };
            let zeta = recorded_slot(&table, "zeta");
            let acme = recorded_slot(&table, "acme");
            let (acme_there, zeta_there) = other.join().unwrap();
            assert_eq!((acme, zeta), (acme_there, zeta_there));
            let own = [acme, zeta]
                .iter()
                .filter(|&&slot| slot != table.overflow())
                .count();
            assert_eq!(own, 1, "one slot under the cap, and it is used");
        });
    }
}
