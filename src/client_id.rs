//! Client ids: who made an API request, and the bounded table of the ids
//! seen so far.

use std::{
    borrow::Cow,
    fmt,
    sync::{
        atomic::{AtomicUsize, Ordering},
        OnceLock,
    },
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

/// The `client_id` label value that ids past the caps are recorded under.
pub(crate) const OTHER_CLIENT_ID: &str = "__other__";

/// Dense index of a client id; [`ClientTable::overflow`] for ids past the
/// caps.
pub(crate) type ClientSlot = usize;

/// Maps client ids to dense slots without a lock.
///
/// An open-addressing table of write-once entries: a lookup of a known id
/// is a hash and one or two loads, a new id claims an empty entry once.
/// The table has room for twice the cap, so probing always ends.
pub(crate) struct ClientTable {
    entries: Box<[OnceLock<Entry>]>,
    /// The id of each slot, for the scrape.
    names: Box<[OnceLock<Box<str>>]>,
    next: AtomicUsize,
    max_ids: usize,
    max_len: usize,
}

struct Entry {
    id: Box<str>,
    slot: ClientSlot,
}

impl ClientTable {
    pub(crate) fn new(max_ids: usize, max_len: usize) -> Self {
        let size = (max_ids.saturating_mul(2)).max(4).next_power_of_two();
        Self {
            entries: (0..size).map(|_| OnceLock::new()).collect(),
            names: (0..max_ids).map(|_| OnceLock::new()).collect(),
            next: AtomicUsize::new(0),
            max_ids,
            max_len,
        }
    }

    /// Number of slots, the overflow slot included.
    pub(crate) fn slots(&self) -> usize {
        self.max_ids + 1
    }

    /// The slot of ids past the caps.
    pub(crate) fn overflow(&self) -> ClientSlot {
        self.max_ids
    }

    /// The `client_id` label value of a slot, if the slot is in use.
    pub(crate) fn name(&self, slot: ClientSlot) -> Option<&str> {
        if slot == self.max_ids {
            return Some(OTHER_CLIENT_ID);
        }
        self.names.get(slot)?.get().map(|name| &**name)
    }

    /// The slot of `id`, claiming a new one if the id is new and the cap
    /// allows.
    pub(crate) fn slot(&self, id: &str) -> ClientSlot {
        if id.len() > self.max_len {
            return self.overflow();
        }
        let mask = self.entries.len() - 1;
        let start = hash(id.as_bytes());
        for probe in 0..self.entries.len() {
            let cell = &self.entries[(start.wrapping_add(probe)) & mask];
            let entry = match cell.get() {
                Some(entry) => entry,
                None => {
                    if self.next.load(Ordering::Relaxed) >= self.max_ids {
                        return self.overflow();
                    }
                    cell.get_or_init(|| self.claim(id))
                }
            };
            if &*entry.id == id {
                return entry.slot;
            }
        }
        self.overflow()
    }

    fn claim(&self, id: &str) -> Entry {
        let slot = self.next.fetch_add(1, Ordering::Relaxed);
        // Threads racing past the cap check may overshoot it; such an id
        // keeps the overflow slot for good, so it is recorded consistently.
        let slot = match self.names.get(slot) {
            Some(name) => {
                let _ = name.set(id.into());
                slot
            }
            None => self.overflow(),
        };
        Entry {
            id: id.into(),
            slot,
        }
    }
}

impl fmt::Debug for ClientTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTable")
            .field("ids", &self.next.load(Ordering::Relaxed).min(self.max_ids))
            .field("max_ids", &self.max_ids)
            .field("max_len", &self.max_len)
            .finish()
    }
}

/// A multiply-xor hash over eight bytes at a time: client ids are short, so
/// this is a couple of multiplications where a byte-wise hash takes one per
/// byte. Collisions only cost probes, and the table's size bounds those.
fn hash(bytes: &[u8]) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hash = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0_u8; 8];
        word.copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut word = [0_u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        hash = (hash ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    // Fold the high bits, which the multiplications mix best, into the low
    // bits the table index uses.
    (hash ^ (hash >> 32)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::HashSet, sync::Arc, thread};

    #[test]
    fn similar_ids_spread_over_the_table() {
        // 100 ids into 256 entries: a uniform hash fills about 84 distinct
        // entries; a hash that ignored a byte position would fill far fewer.
        for prefix in ["client-", "a-much-longer-client-name-", ""] {
            let entries: HashSet<usize> = (0..100)
                .map(|i| hash(format!("{prefix}{i}").as_bytes()) & 255)
                .collect();
            assert!(entries.len() >= 70, "{prefix:?}: {} entries", entries.len());
        }
        assert_ne!(hash(b"ab"), hash(b"ab\0"), "the length is hashed");
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
        assert_eq!(slots[..3], [0, 1, 2]);
        assert!(slots[3..].iter().all(|&s| s == table.overflow()));
        assert_eq!(table.name(table.overflow()), Some(OTHER_CLIENT_ID));
        // The first three keep their slots.
        assert_eq!(table.slot("client-1"), 1);
    }

    #[test]
    fn ids_past_the_length_cap_share_the_overflow_slot() {
        let table = ClientTable::new(3, 5);
        assert_eq!(table.slot("abcdef"), table.overflow());
        assert_eq!(table.slot("abcde"), 0);
    }

    #[test]
    fn a_zero_cap_sends_everything_to_overflow() {
        let table = ClientTable::new(0, 5);
        assert_eq!(table.slot("a"), table.overflow());
        assert_eq!(table.slots(), 1);
    }

    #[test]
    fn odd_characters_are_kept_verbatim() {
        let table = ClientTable::new(4, 64);
        let id = "we\"ird\\client\nx";
        let slot = table.slot(id);
        assert_eq!(table.name(slot), Some(id));
    }

    #[test]
    fn concurrent_claims_give_each_id_one_slot_within_the_cap() {
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
        let results: Vec<Vec<(usize, usize)>> =
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
