//! Sent packets of one packet number space (RFC 9002 A.1, A.2).
//!
//! A `VecDeque` ordered by packet number. Acknowledged and lost packets
//! leave a tombstone (their number, no payload) that is popped as soon as it
//! reaches the front, so a range is found by binary search and acknowledging
//! costs O(log n + packets in the range). Tombstones cannot pile up in the
//! middle: a live packet more than kPacketThreshold below the largest
//! acknowledged is declared lost on the same ACK, so everything before the
//! first live packet is popped.

use std::collections::VecDeque;
use std::time::Instant;

use super::SentPacket;

/// How many recently lost packet numbers are kept to spot spurious losses.
const RECENTLY_LOST_CAP: usize = 64;

/// A packet declared lost: its number and how it was declared.
#[derive(Clone, Copy, Debug)]
pub(super) struct LostMark {
    pub(super) pn: u64,
    /// How many packet numbers above it had been acknowledged when it was
    /// declared lost by the packet threshold; 0 when the time threshold
    /// declared it.
    pub(super) distance: u64,
}

/// Spurious losses found in one acknowledged range.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Spurious {
    /// How many.
    pub(super) count: usize,
    /// The largest reordering distance among those the packet threshold
    /// declared (0 if none).
    pub(super) max_distance: u64,
    /// Whether the time threshold declared any of them.
    pub(super) by_time: bool,
}

#[derive(Debug)]
pub(super) struct Entry<T> {
    pub(super) pn: u64,
    pub(super) pkt: Option<SentPacket<T>>,
}

#[derive(Debug)]
pub(super) struct Space<T> {
    pub(super) sent: VecDeque<Entry<T>>,
    /// Entries with a packet.
    pub(super) live: usize,
    pub(super) largest_sent: Option<u64>,
    pub(super) largest_acked: Option<u64>,
    /// loss_time (RFC 9002 A.2).
    pub(super) loss_time: Option<Instant>,
    /// time_of_last_ack_eliciting_packet (RFC 9002 A.2).
    pub(super) last_ack_eliciting: Option<Instant>,
    /// In-flight ack-eliciting packets.
    pub(super) ack_eliciting_in_flight: usize,
    /// Bytes in flight of this space.
    pub(super) bytes_in_flight: usize,
    /// Packets declared lost lately, ascending by number, to spot
    /// spurious losses when they are acknowledged after all.
    pub(super) recently_lost: VecDeque<LostMark>,
    pub(super) discarded: bool,
}

impl<T> Space<T> {
    pub(super) fn new() -> Self {
        Space {
            sent: VecDeque::new(),
            live: 0,
            largest_sent: None,
            largest_acked: None,
            loss_time: None,
            last_ack_eliciting: None,
            ack_eliciting_in_flight: 0,
            bytes_in_flight: 0,
            recently_lost: VecDeque::new(),
            discarded: false,
        }
    }

    pub(super) fn push(&mut self, pkt: SentPacket<T>) {
        if pkt.in_flight {
            self.bytes_in_flight += pkt.size;
            if pkt.ack_eliciting {
                self.ack_eliciting_in_flight += 1;
                self.last_ack_eliciting = Some(pkt.time_sent);
            }
        }
        self.largest_sent = Some(pkt.pkt_num);
        self.live += 1;
        self.sent.push_back(Entry {
            pn: pkt.pkt_num,
            pkt: Some(pkt),
        });
    }

    /// Takes the packet at `idx` out, updating the space's counters.
    pub(super) fn take(&mut self, idx: usize) -> Option<SentPacket<T>> {
        let pkt = self.sent.get_mut(idx)?.pkt.take()?;
        self.live -= 1;
        if pkt.in_flight {
            self.bytes_in_flight -= pkt.size;
            if pkt.ack_eliciting {
                self.ack_eliciting_in_flight -= 1;
            }
        }
        Some(pkt)
    }

    /// Drops the first `n` entries where they lie, the space's counters
    /// updated.
    pub(super) fn drop_front(&mut self, n: usize) {
        let n = n.min(self.sent.len());
        for p in self.sent.range(..n).filter_map(|e| e.pkt.as_ref()) {
            self.live -= 1;
            if p.in_flight {
                self.bytes_in_flight -= p.size;
                if p.ack_eliciting {
                    self.ack_eliciting_in_flight -= 1;
                }
            }
        }
        self.sent.drain(..n);
    }

    /// Marks every packet tracked as sent on a path since left. They stop
    /// counting as in flight: the new path's window starts empty (else a
    /// window's worth sent into a dead path would hold the new one shut
    /// until declared lost). Loss detection still covers them, by packet
    /// number once packets of the new path are acknowledged.
    pub(super) fn mark_old_path(&mut self) {
        for p in self.sent.iter_mut().filter_map(|e| e.pkt.as_mut()) {
            p.old_path = true;
            p.in_flight = false;
        }
        self.bytes_in_flight = 0;
        self.ack_eliciting_in_flight = 0;
    }

    /// Pops tombstones off the front.
    pub(super) fn compact(&mut self) {
        while self.sent.front().is_some_and(|e| e.pkt.is_none()) {
            self.sent.pop_front();
        }
    }

    /// Called when the sender is idle (nothing in flight, nothing to
    /// send): gives back what a burst grew (a window of 2,000 packets holds
    /// some 240 KB here), so that a connection idle after a transfer costs
    /// what an idle connection costs. Packets still tracked then are ACK-
    /// only ones the peer has no reason to acknowledge soon; they keep an
    /// exact allocation. With none, the recently-lost marks go too: late
    /// acknowledgements of them are not worth keeping memory for.
    pub(super) fn release_idle(&mut self) {
        // Idle, what is left may be packets that elicit no acknowledgement
        // (ACK-only ones): a peer need never acknowledge them, and their
        // record would stay for the connection's life. Forgetting them
        // costs only that the ACK ranges they carried keep being reported
        // until newer ones cover them.
        if self.ack_eliciting_in_flight == 0
            && self.bytes_in_flight == 0
            && self.sent.iter().all(|e| {
                e.pkt
                    .as_ref()
                    .is_none_or(|p| !p.ack_eliciting && !p.in_flight)
            })
        {
            self.sent.clear();
            self.live = 0;
        }
        if self.sent.is_empty() {
            if self.sent.capacity() > 0 {
                self.sent = VecDeque::new();
            }
            if self.recently_lost.capacity() > 0 {
                self.recently_lost = VecDeque::new();
            }
        } else if self.sent.capacity() > 2 * self.sent.len() {
            self.sent.shrink_to_fit();
        }
    }

    /// The index of the first entry with a number >= `pn`.
    pub(super) fn lower_bound(&self, pn: u64) -> usize {
        self.sent.partition_point(|e| e.pn < pn)
    }

    /// Records that `pn` was declared lost (`distance`: see [`LostMark`]).
    pub(super) fn note_lost(&mut self, pn: u64, distance: u64) {
        if self.recently_lost.len() == RECENTLY_LOST_CAP {
            self.recently_lost.pop_front();
        }
        self.recently_lost.push_back(LostMark { pn, distance });
    }

    /// The recently lost packets that fall in `lo..=hi` (forgotten here):
    /// they were not lost after all.
    pub(super) fn take_spurious(&mut self, lo: u64, hi: u64) -> Spurious {
        let mut out = Spurious::default();
        if self.recently_lost.is_empty() {
            return out;
        }
        let a = self.recently_lost.partition_point(|m| m.pn < lo);
        let b = self.recently_lost.partition_point(|m| m.pn <= hi);
        for m in self.recently_lost.drain(a..b) {
            out.count += 1;
            if m.distance == 0 {
                out.by_time = true;
            }
            out.max_distance = out.max_distance.max(m.distance);
        }
        out
    }

    /// Removes every packet, returning them in packet number order.
    pub(super) fn drain_all(&mut self, out: &mut Vec<SentPacket<T>>) {
        out.extend(self.sent.drain(..).filter_map(|e| e.pkt));
        self.reset_counters();
    }

    /// Drops every packet.
    pub(super) fn clear(&mut self) {
        // Release the memory too: a discarded space never sends again.
        self.sent = Default::default();
        self.recently_lost = Default::default();
        self.reset_counters();
    }

    fn reset_counters(&mut self) {
        self.live = 0;
        self.bytes_in_flight = 0;
        self.ack_eliciting_in_flight = 0;
        self.loss_time = None;
        self.last_ack_eliciting = None;
    }
}
