//! A sorted set of disjoint, non-adjacent `u64` ranges.
//!
//! Used for received packet numbers (to build ACK frames, RFC 9000 §19.3),
//! for acknowledged and lost stream data, and for collected stream IDs.
//! Backed by a `BTreeMap<start, end>` (end exclusive) so every operation is
//! `O(log n)` plus the number of ranges merged; the common case (appending
//! at or after the end) touches only the last entry.
//!
//! A set is bounded ([`RangeSet::new`]): past `limit` ranges the
//! oldest (smallest) ones are dropped, so a peer that acknowledges or sends
//! in a pathological pattern cannot make us store unbounded state.

// The connection state machine that calls this is being written alongside.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::{Range, RangeInclusive};

/// A set of `u64` values stored as merged half-open ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RangeSet {
    /// start -> end (exclusive); disjoint and never adjacent.
    map: BTreeMap<u64, u64>,
    /// Maximum number of ranges kept; `usize::MAX` when unbounded.
    limit: usize,
    /// Every value below was dropped by the limit (0: nothing dropped).
    forgotten_below: u64,
}

impl Default for RangeSet {
    /// An unbounded set (a derived default would have a limit of 0).
    fn default() -> Self {
        RangeSet::unbounded()
    }
}

impl RangeSet {
    /// An unbounded set: only for sets whose size our own actions bound
    /// (sent data, opened streams).
    pub(crate) fn unbounded() -> Self {
        RangeSet {
            map: BTreeMap::new(),
            limit: usize::MAX,
            forgotten_below: 0,
        }
    }

    /// A set that keeps at most `limit` ranges (at least 1), dropping the
    /// smallest ones beyond that.
    pub(crate) fn new(limit: usize) -> Self {
        RangeSet {
            map: BTreeMap::new(),
            limit: limit.max(1),
            forgotten_below: 0,
        }
    }

    /// Adds `r` to the set, merging with overlapping or adjacent ranges.
    pub(crate) fn insert(&mut self, r: Range<u64>) {
        let (mut start, mut end) = (r.start, r.end);
        if start >= end {
            return;
        }
        // Fast path: at or after the last range (in-order packet numbers,
        // in-order acks).
        if let Some(mut last) = self.map.last_entry() {
            let (ls, le) = (*last.key(), *last.get());
            if start > le {
                self.map.insert(start, end);
                self.enforce_limit();
                return;
            }
            if start >= ls {
                if end > le {
                    *last.get_mut() = end;
                }
                return;
            }
        }
        // Merge with a predecessor that overlaps or touches `start`.
        if let Some((&ps, &pe)) = self.map.range(..=start).next_back() {
            if pe >= start {
                if pe >= end {
                    return;
                }
                start = ps;
                end = end.max(pe);
                self.map.remove(&ps);
            }
        }
        // Swallow every following range that starts at or before `end`.
        while let Some((&ns, &ne)) = self.map.range(start..).next() {
            if ns > end {
                break;
            }
            end = end.max(ne);
            self.map.remove(&ns);
        }
        self.map.insert(start, end);
        self.enforce_limit();
    }

    /// Removes every value in `r` from the set.
    pub(crate) fn remove(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        // A range that starts before `r` and reaches into it is split.
        if let Some((&ps, &pe)) = self.map.range(..r.start).next_back() {
            if pe > r.start {
                self.map.insert(ps, r.start);
                if pe > r.end {
                    self.map.insert(r.end, pe);
                    return;
                }
            }
        }
        while let Some((&ns, &ne)) = self.map.range(r.start..).next() {
            if ns >= r.end {
                break;
            }
            self.map.remove(&ns);
            if ne > r.end {
                self.map.insert(r.end, ne);
                break;
            }
        }
    }

    /// Removes every value below `v`.
    pub(crate) fn remove_until(&mut self, v: u64) {
        while let Some((&s, &e)) = self.map.iter().next() {
            if s >= v {
                break;
            }
            self.map.remove(&s);
            if e > v {
                self.map.insert(v, e);
                break;
            }
        }
    }

    /// Whether `v` is in the set.
    pub(crate) fn contains(&self, v: u64) -> bool {
        self.map
            .range(..=v)
            .next_back()
            .is_some_and(|(_, &e)| v < e)
    }

    /// Whether `v` is in the set or lies below ranges the limit dropped:
    /// for duplicate detection, where a forgotten old value must still
    /// count as seen.
    pub(crate) fn contains_or_forgotten(&self, v: u64) -> bool {
        v < self.forgotten_below || self.contains(v)
    }

    /// The range containing `v`, if any.
    pub(crate) fn range_of(&self, v: u64) -> Option<Range<u64>> {
        self.map
            .range(..=v)
            .next_back()
            .filter(|(_, &e)| v < e)
            .map(|(&s, &e)| s..e)
    }

    /// The ranges in ascending order, end exclusive.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = Range<u64>> + '_ {
        self.map.iter().map(|(&s, &e)| s..e)
    }

    /// The ranges overlapping `r`, ascending, clipped to `r`.
    pub(crate) fn overlapping(&self, r: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let first = self
            .map
            .range(..r.start)
            .next_back()
            .filter(|(_, &e)| e > r.start)
            .map(|(&s, &e)| s..e);
        let rest = self
            .map
            .range(r.start..r.end.max(r.start))
            .map(|(&s, &e)| s..e);
        first
            .into_iter()
            .chain(rest)
            .map(move |x| x.start.max(r.start)..x.end.min(r.end))
            .filter(|x| x.start < x.end)
    }

    /// The ranges largest first, as inclusive ranges (the ACK frame order).
    pub(crate) fn rev_iter(&self) -> impl Iterator<Item = RangeInclusive<u64>> + '_ {
        self.map.iter().rev().map(|(&s, &e)| s..=e - 1)
    }

    /// Fills `out` (cleared first) with at most `max` of the largest ranges,
    /// largest first, for `frame::AckRanges::Slice`.
    pub(crate) fn to_inclusive_desc(&self, out: &mut Vec<RangeInclusive<u64>>, max: usize) {
        out.clear();
        out.extend(self.rev_iter().take(max));
    }

    /// The smallest range.
    pub(crate) fn first(&self) -> Option<Range<u64>> {
        self.map.iter().next().map(|(&s, &e)| s..e)
    }

    /// The largest range.
    pub(crate) fn last(&self) -> Option<Range<u64>> {
        self.map.iter().next_back().map(|(&s, &e)| s..e)
    }

    /// The smallest value in the set.
    pub(crate) fn min(&self) -> Option<u64> {
        self.map.keys().next().copied()
    }

    /// The largest value in the set.
    pub(crate) fn max(&self) -> Option<u64> {
        self.map.values().next_back().map(|&e| e - 1)
    }

    /// Number of ranges (not values).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Removes everything, and frees what the set allocated.
    pub(crate) fn clear(&mut self) {
        self.map = BTreeMap::new();
    }

    /// Drops the smallest ranges beyond the limit: a peer must not be able
    /// to make us hold unbounded state.
    fn enforce_limit(&mut self) {
        while self.map.len() > self.limit {
            if let Some((_, e)) = self.map.pop_first() {
                self.forgotten_below = self.forgotten_below.max(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference model: a plain bit vector over a small domain.
    fn model_ranges(bits: &[bool]) -> Vec<Range<u64>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for (i, &b) in bits.iter().enumerate() {
            let i = i as u64;
            if !b {
                continue;
            }
            match out.last_mut() {
                Some(r) if r.end == i => r.end = i + 1,
                _ => out.push(i..i + 1),
            }
        }
        out
    }

    #[test]
    fn insert_merges_adjacent_and_overlapping() {
        let mut s = RangeSet::unbounded();
        s.insert(10..20);
        s.insert(30..40);
        s.insert(20..25); // adjacent to the first
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![10..25, 30..40]);
        s.insert(5..35); // bridges both
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![5..40]);
        s.insert(7..9); // inside
        assert_eq!(s.len(), 1);
        s.insert(40..41); // append fast path, adjacent
        assert_eq!(s.last(), Some(5..41));
        s.insert(50..50); // empty: ignored
        assert_eq!(s.len(), 1);
        assert!(s.contains(5) && s.contains(40) && !s.contains(41) && !s.contains(4));
    }

    #[test]
    fn rev_iter_and_inclusive_desc() {
        let mut s = RangeSet::unbounded();
        for pn in [0u64, 1, 2, 5, 6, 9] {
            s.insert(pn..pn + 1);
        }
        let all: Vec<_> = s.rev_iter().collect();
        assert_eq!(all, vec![9..=9, 5..=6, 0..=2]);
        let mut out = vec![100..=100];
        s.to_inclusive_desc(&mut out, 2);
        assert_eq!(out, vec![9..=9, 5..=6]);
        assert_eq!(s.min(), Some(0));
        assert_eq!(s.max(), Some(9));
    }

    #[test]
    fn remove_until_and_remove() {
        let mut s = RangeSet::unbounded();
        s.insert(0..10);
        s.insert(20..30);
        s.remove_until(5);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![5..10, 20..30]);
        s.remove_until(20);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![20..30]);
        s.remove(22..25);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![20..22, 25..30]);
        s.remove(0..21);
        s.remove(29..100);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![21..22, 25..29]);
        s.remove(0..100);
        assert!(s.is_empty());
    }

    #[test]
    fn default_is_unbounded() {
        let mut s = RangeSet::default();
        for i in 0..100u64 {
            s.insert(i * 2..i * 2 + 1);
        }
        assert_eq!(s.len(), 100);
    }

    #[test]
    fn limit_drops_oldest() {
        let mut s = RangeSet::new(3);
        for i in 0..10u64 {
            s.insert(i * 10..i * 10 + 1);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![70..71, 80..81, 90..91]);
        // An out-of-order insert below the kept window is dropped again.
        s.insert(0..1);
        assert_eq!(s.first(), Some(70..71));
        assert_eq!(s.len(), 3);
        // Dropped values still count as seen for duplicate detection.
        assert!(!s.contains(5) && !s.contains(60));
        assert!(s.contains_or_forgotten(5) && s.contains_or_forgotten(60));
        assert!(!s.contains_or_forgotten(65) && s.contains_or_forgotten(70));
        // Shrinking by remove_until does not count as forgetting.
        let mut u = RangeSet::new(3);
        u.insert(0..10);
        u.remove_until(5);
        assert!(!u.contains_or_forgotten(2));
    }

    #[test]
    fn overlapping_clips() {
        let mut s = RangeSet::unbounded();
        s.insert(0..10);
        s.insert(20..30);
        s.insert(40..50);
        let v: Vec<_> = s.overlapping(5..45).collect();
        assert_eq!(v, vec![5..10, 20..30, 40..45]);
        assert_eq!(s.overlapping(10..20).count(), 0);
        assert_eq!(s.range_of(25), Some(20..30));
        assert_eq!(s.range_of(30), None);
    }

    #[test]
    fn randomized_against_bitmap() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut s = RangeSet::unbounded();
            let mut bits = vec![false; 256];
            for _ in 0..60 {
                let a = rnd(256);
                let b = (a + rnd(20)).min(256);
                match rnd(4) {
                    0 => {
                        s.remove(a..b);
                        bits[a as usize..b as usize].fill(false);
                    }
                    1 if rnd(8) == 0 => {
                        s.remove_until(a);
                        bits[..a as usize].fill(false);
                    }
                    _ => {
                        s.insert(a..b);
                        bits[a as usize..b as usize].fill(true);
                    }
                }
                assert_eq!(s.iter().collect::<Vec<_>>(), model_ranges(&bits));
                let v = rnd(256);
                assert_eq!(s.contains(v), bits[v as usize]);
            }
        }
    }
}
