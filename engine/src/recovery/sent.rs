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
    /// Packet numbers declared lost lately, ascending, to count spurious
    /// losses when they are acknowledged after all.
    pub(super) recently_lost: VecDeque<u64>,
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

    /// Pops tombstones off the front.
    pub(super) fn compact(&mut self) {
        while self.sent.front().is_some_and(|e| e.pkt.is_none()) {
            self.sent.pop_front();
        }
    }

    /// The index of the first entry with a number >= `pn`.
    pub(super) fn lower_bound(&self, pn: u64) -> usize {
        self.sent.partition_point(|e| e.pn < pn)
    }

    pub(super) fn note_lost(&mut self, pn: u64) {
        if self.recently_lost.len() == RECENTLY_LOST_CAP {
            self.recently_lost.pop_front();
        }
        self.recently_lost.push_back(pn);
    }

    /// How many recently lost packets fall in `lo..=hi` (and forgets them).
    pub(super) fn take_spurious(&mut self, lo: u64, hi: u64) -> usize {
        if self.recently_lost.is_empty() {
            return 0;
        }
        let a = self.recently_lost.partition_point(|&p| p < lo);
        let b = self.recently_lost.partition_point(|&p| p <= hi);
        if a < b {
            self.recently_lost.drain(a..b);
        }
        b - a
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
