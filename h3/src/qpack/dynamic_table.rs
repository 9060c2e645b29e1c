//! The QPACK dynamic table (RFC 9204 §3.2): a FIFO of entries addressed by
//! absolute index, with size accounting and eviction. Encoder and decoder
//! keep one each; the rules about *which* entries may be evicted are the
//! encoder's and live there.

use std::collections::VecDeque;

/// Per-entry overhead added to name and value lengths (RFC 9204 §3.2.1).
pub const ENTRY_OVERHEAD: u64 = 32;

/// The size of an entry (RFC 9204 §3.2.1: "the sum of its name's length in
/// bytes, its value's length in bytes, and 32").
pub fn entry_size(name: &[u8], value: &[u8]) -> u64 {
    name.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD
}

/// One entry; name and value share one allocation.
#[derive(Debug)]
struct Entry {
    data: Box<[u8]>,
    name_len: usize,
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.data[..self.name_len]
    }

    fn value(&self) -> &[u8] {
        &self.data[self.name_len..]
    }

    fn size(&self) -> u64 {
        self.data.len() as u64 + ENTRY_OVERHEAD
    }
}

/// The dynamic table. The oldest entry is at the front.
#[derive(Debug, Default)]
pub struct DynamicTable {
    entries: VecDeque<Entry>,
    size: u64,
    capacity: u64,
    /// Total number of insertions ever (the Insert Count).
    inserted: u64,
}

impl DynamicTable {
    /// An empty table of capacity 0 (RFC 9204 §3.2.2: "The initial capacity
    /// of the dynamic table is zero").
    pub fn new() -> Self {
        Self::default()
    }

    /// The Insert Count: entries inserted since the start.
    pub fn insert_count(&self) -> u64 {
        self.inserted
    }

    /// Absolute index of the oldest entry still present (equal to
    /// [`Self::insert_count`] when empty).
    pub fn first_index(&self) -> u64 {
        self.inserted - self.entries.len() as u64
    }

    /// Number of entries present.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of the entry sizes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The current capacity.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The entry with absolute index `abs`, or `None` if it was evicted or
    /// not inserted yet.
    pub fn get(&self, abs: u64) -> Option<(&[u8], &[u8])> {
        let i = abs.checked_sub(self.first_index())?;
        let e = self.entries.get(usize::try_from(i).ok()?)?;
        Some((e.name(), e.value()))
    }

    /// Size of the entry with absolute index `abs`.
    pub fn size_of(&self, abs: u64) -> Option<u64> {
        let i = abs.checked_sub(self.first_index())?;
        Some(self.entries.get(usize::try_from(i).ok()?)?.size())
    }

    /// Sets the capacity, evicting from the oldest end until the size fits.
    pub fn set_capacity(&mut self, capacity: u64) {
        self.capacity = capacity;
        self.evict_to(capacity);
    }

    /// Evicts oldest entries until the size is at most `target`.
    fn evict_to(&mut self, target: u64) {
        while self.size > target {
            // The size is positive so there is an entry.
            let Some(e) = self.entries.pop_front() else {
                break;
            };
            self.size -= e.size();
        }
    }

    /// Absolute index of the oldest entry that must survive if an entry of
    /// `size` bytes were inserted now: everything below it gets evicted.
    /// `None` if the entry is larger than the capacity.
    pub fn evictions_for(&self, size: u64) -> Option<u64> {
        if size > self.capacity {
            return None;
        }
        let mut free = self.capacity - self.size;
        let mut abs = self.first_index();
        for e in &self.entries {
            if free >= size {
                break;
            }
            free += e.size();
            abs += 1;
        }
        Some(abs)
    }

    /// Inserts an entry, evicting as many old entries as needed (RFC 9204
    /// §3.2.2), and returns its absolute index. An entry larger than the
    /// capacity is refused with `None` and the table is unchanged.
    pub fn insert(&mut self, name: &[u8], value: &[u8]) -> Option<u64> {
        let size = entry_size(name, value);
        if size > self.capacity {
            return None;
        }
        // Copy before evicting: `name` may borrow from an entry about to be
        // evicted in the caller's representation (RFC 9204 §3.2.2 caution).
        let mut data = Vec::with_capacity(name.len() + value.len());
        data.extend_from_slice(name);
        data.extend_from_slice(value);
        self.evict_to(self.capacity - size);
        self.entries.push_back(Entry {
            data: data.into_boxed_slice(),
            name_len: name.len(),
        });
        self.size += size;
        self.inserted += 1;
        Some(self.inserted - 1)
    }

    /// Finds the newest entry matching `name` and `value` exactly, and the
    /// newest matching only `name`, among entries with absolute index at
    /// least `min_abs`.
    pub fn find(&self, name: &[u8], value: &[u8], min_abs: u64) -> (Option<u64>, Option<u64>) {
        let first = self.first_index();
        let mut name_match = None;
        for (i, e) in self.entries.iter().enumerate().rev() {
            let abs = first + i as u64;
            if abs < min_abs {
                break;
            }
            if e.name() == name {
                if e.value() == value {
                    return (Some(abs), name_match.or(Some(abs)));
                }
                name_match.get_or_insert(abs);
            }
        }
        (None, name_match)
    }

    /// Iterates `(absolute index, size)` from the oldest entry.
    pub fn sizes(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let first = self.first_index();
        self.entries
            .iter()
            .enumerate()
            .map(move |(i, e)| (first + i as u64, e.size()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_evict_and_index() {
        let mut t = DynamicTable::new();
        assert_eq!(t.insert(b"a", b"b"), None, "capacity 0 holds nothing");
        t.set_capacity(100);
        assert_eq!(t.insert(b"name", b"value"), Some(0)); // 41
        assert_eq!(t.insert(b"name2", b"value2"), Some(1)); // 43
        assert_eq!(t.size(), 84);
        assert_eq!(t.get(0), Some((&b"name"[..], &b"value"[..])));
        assert_eq!(t.get(2), None);
        // 84 + 41 > 100: the oldest goes.
        assert_eq!(t.evictions_for(41), Some(1));
        assert_eq!(t.insert(b"name", b"value"), Some(2));
        assert_eq!(t.get(0), None);
        assert_eq!(t.first_index(), 1);
        assert_eq!(t.size(), 84);
        assert_eq!(t.find(b"name", b"value", 0), (Some(2), Some(2)));
        assert_eq!(t.find(b"name2", b"x", 0), (None, Some(1)));
        assert_eq!(t.find(b"name2", b"x", 2), (None, None));
        // Too big for the capacity: refused, table unchanged.
        assert_eq!(t.evictions_for(101), None);
        assert_eq!(t.insert(&[b'x'; 60], &[b'y'; 9]), None);
        assert_eq!(t.len(), 2);
        // Exactly the capacity: evicts everything.
        assert_eq!(t.insert(&[b'x'; 60], &[b'y'; 8]), Some(3));
        assert_eq!(t.len(), 1);
        assert_eq!(t.size(), 100);
        // Shrinking evicts, zero clears.
        t.set_capacity(0);
        assert!(t.is_empty());
        assert_eq!(t.insert_count(), 4);
        assert_eq!(t.first_index(), 4);
    }
}
