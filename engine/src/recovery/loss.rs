//! ACK processing, loss detection and the loss detection timer
//! (RFC 9002 §6, A.7 - A.10).

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use super::{
    AckOutcome, Epoch, Recovery, SentPacket, TimeoutOutcome, MAX_PACKET_THRESHOLD,
    MAX_PTO_BACKOFF_SHIFT, MAX_TIME_THRESHOLD_EIGHTHS, TIME_THRESHOLD_STEP_EIGHTHS,
};
use crate::Error;

impl<T> Recovery<T> {
    /// [`Recovery::on_ack_received_into`] with a fresh outcome and no
    /// visitor (tests).
    #[cfg(test)]
    pub(crate) fn on_ack_received(
        &mut self,
        epoch: Epoch,
        ranges: impl Iterator<Item = RangeInclusive<u64>>,
        ack_delay: Duration,
        handshake_confirmed: bool,
        now: Instant,
    ) -> Result<AckOutcome<T>, Error> {
        let mut out = AckOutcome::new();
        let r = (epoch, ack_delay, handshake_confirmed, now);
        self.on_ack_received_into(r, ranges, &mut out, |_| ())?;
        Ok(out)
    }

    /// OnAckReceived (RFC 9002 A.7) for one ACK frame of `epoch`, into a
    /// caller-owned outcome, cleared first, so that its buffers are reused
    /// from ACK to ACK.
    ///
    /// `ranges` come largest first; `ack_delay` is decoded. Fails with
    /// `Error::InvalidAckRange` when a range acknowledges a packet number
    /// never sent in that space or the ranges are not descending and
    /// disjoint (RFC 9000 §13.1: PROTOCOL_VIOLATION). Ranges before the bad
    /// one have been applied by then; the connection closes anyway.
    ///
    /// `visit` sees every newly acknowledged packet (ranges largest first,
    /// ascending inside a range) where it lies, before it is dropped: the
    /// packets themselves are never moved (bulk transfers acknowledge one
    /// per packet sent).
    pub(crate) fn on_ack_received_into(
        &mut self,
        (epoch, ack_delay, handshake_confirmed, now): (Epoch, Duration, bool, Instant),
        ranges: impl Iterator<Item = RangeInclusive<u64>>,
        out: &mut AckOutcome<T>,
        visit: impl FnMut(&SentPacket<T>),
    ) -> Result<(), Error> {
        out.clear();
        self.settle_timer();
        self.now_hint = Some(now);
        self.handshake_confirmed |= handshake_confirmed;
        let Some(largest) = self.collect_acked(epoch, ranges, out, visit)? else {
            return Ok(());
        };
        // RFC 9002 A.7: nothing newly acknowledged, nothing to do.
        if out.acked.is_empty() {
            return Ok(());
        }
        self.cc.on_ack_begin();
        // RFC 9002 §5.1: an RTT sample needs the largest acknowledged newly
        // acknowledged and at least one newly acknowledged ack-eliciting
        // packet.
        let mut newest: Option<&super::Acked> = None;
        let mut any_ack_eliciting = false;
        for p in &out.acked {
            any_ack_eliciting |= p.ack_eliciting && !p.old_path;
            if newest.is_none_or(|n| p.pkt_num > n.pkt_num) {
                newest = Some(p);
            }
        }
        if let Some(n) = newest {
            out.largest_newly_acked_ack_eliciting = n.ack_eliciting;
            if n.pkt_num == largest && any_ack_eliciting && !n.old_path {
                let latest = now.saturating_duration_since(n.time_sent);
                // RFC 9002 §5.3: Initial ACKs are not delayed on purpose, so
                // their ack delay is ignored.
                let delay = if epoch == Epoch::Initial {
                    Duration::ZERO
                } else {
                    ack_delay
                };
                self.rtt
                    .update(latest, delay, self.handshake_confirmed, now);
                self.cc.on_rtt_sample(epoch, latest);
                out.rtt_updated = true;
            }
        }
        let pc = self.detect_lost(epoch, now, &mut out.lost);
        self.on_packets_lost(&out.lost, pc, now);
        let srtt = self.rtt.smoothed_rtt;
        for p in &out.acked {
            self.stats.acked_count += 1;
            self.stats.acked_bytes += p.size as u64;
            if p.in_flight && !p.old_path {
                self.cc
                    .on_packet_acked(epoch, p.pkt_num, p.size, p.time_sent, srtt, now);
            }
        }
        let next_pn = self.spaces[Epoch::Application.idx()]
            .largest_sent
            .map_or(0, |l| l + 1);
        self.cc.on_ack_end(self.bytes_in_flight(), next_pn);
        self.stats.max_cwnd = self.stats.max_cwnd.max(self.cc.cwnd);
        // RFC 9002 A.7: a client unsure whether the server validated its
        // address keeps the PTO backoff.
        if self.peer_validated {
            self.pto_count = 0;
        }
        self.set_loss_detection_timer(now);
        Ok(())
    }

    /// Takes the newly acknowledged packets out of the space, shown to
    /// `visit` and noted in `out.acked`; returns the largest acknowledged
    /// packet number of the frame (None for a frame without ranges).
    fn collect_acked(
        &mut self,
        epoch: Epoch,
        ranges: impl Iterator<Item = RangeInclusive<u64>>,
        out: &mut AckOutcome<T>,
        mut visit: impl FnMut(&SentPacket<T>),
    ) -> Result<Option<u64>, Error> {
        let space = &mut self.spaces[epoch.idx()];
        let largest_sent = space.largest_sent;
        let mut largest = None;
        let mut prev_start: Option<u64> = None;
        for r in ranges {
            let (lo, hi) = (*r.start(), *r.end());
            // RFC 9000 §13.1: "An endpoint SHOULD treat receipt of an
            // acknowledgment for a packet it did not send as a connection
            // error of type PROTOCOL_VIOLATION".
            if lo > hi || largest_sent.is_none_or(|l| hi > l) || prev_start.is_some_and(|p| hi >= p)
            {
                return Err(Error::InvalidAckRange);
            }
            prev_start = Some(lo);
            if largest.is_none() {
                largest = Some(hi);
                space.largest_acked = Some(space.largest_acked.map_or(hi, |l| l.max(hi)));
            }
            let spurious = space.take_spurious(lo, hi);
            if spurious.count > 0 {
                self.stats.spurious_lost_count += spurious.count as u64;
                // RFC 9002 §6.1.1, §6.1.2: "Implementations can detect
                // spurious retransmissions and increase the packet or time
                // reordering threshold to reduce future spurious
                // retransmissions and loss events."
                if spurious.max_distance > 0 {
                    let t = (spurious.max_distance + 1)
                        .clamp(u64::from(self.packet_threshold), MAX_PACKET_THRESHOLD);
                    // At most MAX_PACKET_THRESHOLD, which fits.
                    self.packet_threshold = t as u16;
                }
                if spurious.by_time {
                    self.time_threshold_eighths =
                        (u32::from(self.time_threshold_eighths) + TIME_THRESHOLD_STEP_EIGHTHS)
                            .min(MAX_TIME_THRESHOLD_EIGHTHS) as u8;
                }
            }
            let mut i = space.lower_bound(lo);
            if i == 0 {
                // The range reaches the oldest packet tracked (in-order
                // acknowledgements: nearly always): its packets leave the
                // front at once, dropped where they lie, no tombstones.
                let end = space.lower_bound(hi.saturating_add(1));
                for p in space.sent.range(..end).filter_map(|e| e.pkt.as_ref()) {
                    visit(p);
                    out.acked.push(super::Acked::of(p));
                }
                space.drop_front(end);
                continue;
            }
            while i < space.sent.len() && space.sent[i].pn <= hi {
                if let Some(p) = space.sent[i].pkt.as_ref() {
                    visit(p);
                    out.acked.push(super::Acked::of(p));
                    space.take(i);
                }
                i += 1;
            }
        }
        space.compact();
        Ok(largest)
    }

    /// DetectAndRemoveLostPackets (RFC 9002 A.10) for one space: lost
    /// packets go to `lost`. Returns whether they establish persistent
    /// congestion (RFC 9002 §7.6.2, judged within this space as §7.6.2
    /// allows).
    pub(super) fn detect_lost(
        &mut self,
        epoch: Epoch,
        now: Instant,
        lost: &mut Vec<SentPacket<T>>,
    ) -> bool {
        let loss_delay = self.rtt.loss_delay(u32::from(self.time_threshold_eighths));
        let lost_send_time = now.checked_sub(loss_delay);
        let threshold = u64::from(self.packet_threshold);
        let pc_duration = self.rtt.persistent_congestion_duration();
        let first_sample = self.rtt.first_sample_time;
        let space = &mut self.spaces[epoch.idx()];
        space.loss_time = None;
        let Some(largest_acked) = space.largest_acked else {
            return false;
        };
        // Send times of the first and last ack-eliciting packets of the
        // current run of lost packets with nothing acknowledged between.
        let mut run: Option<(Instant, Instant)> = None;
        let mut persistent = false;
        let mut i = 0;
        // Packets are in number and send-time order, so the first one that
        // is not lost ends the scan: every later one is newer on both
        // counts.
        while i < space.sent.len() && space.sent[i].pn <= largest_acked {
            let Some(p) = space.sent[i].pkt.as_ref() else {
                // Acknowledged (or lost earlier): breaks the run.
                run = None;
                i += 1;
                continue;
            };
            // RFC 9002 §6.1: lost by packet threshold or time threshold.
            let by_time = lost_send_time.is_some_and(|l| p.time_sent <= l);
            let distance = largest_acked - p.pkt_num;
            if !by_time && distance < threshold {
                space.loss_time = p.time_sent.checked_add(loss_delay);
                break;
            }
            let Some(p) = space.take(i) else { break };
            space.note_lost(p.pkt_num, if distance >= threshold { distance } else { 0 });
            // RFC 9002 §7.6.2: both ends ack-eliciting and sent after the
            // first RTT sample. (Packets of a path left behind, and path
            // MTU probes, say nothing about congestion here.)
            if p.ack_eliciting && !p.old_path && first_sample.is_some_and(|f| p.time_sent > f) {
                let (first, _) = *run.get_or_insert((p.time_sent, p.time_sent));
                run = Some((first, p.time_sent));
                // "exceeds the persistent congestion duration".
                if p.time_sent.saturating_duration_since(first) > pc_duration {
                    persistent = true;
                }
            }
            lost.push(p);
            i += 1;
        }
        space.compact();
        persistent
    }

    /// OnPacketsLost (RFC 9002 B.8); bytes in flight were already removed.
    fn on_packets_lost(&mut self, lost: &[SentPacket<T>], persistent: bool, now: Instant) {
        let mut last_loss: Option<Instant> = None;
        for p in lost {
            self.stats.lost_count += 1;
            self.stats.lost_bytes += p.size as u64;
            if p.in_flight && !p.old_path {
                last_loss = Some(last_loss.map_or(p.time_sent, |t| t.max(p.time_sent)));
            }
        }
        if let Some(t) = last_loss {
            if self.cc.on_congestion_event(t, now) {
                tracing::debug!(cwnd = self.cc.cwnd, "recovery: congestion event");
            }
        }
        if persistent {
            // RFC 9002 §7.6.2: "the sender's congestion window MUST be
            // reduced to the minimum congestion window".
            self.cc.on_persistent_congestion();
            tracing::debug!(cwnd = self.cc.cwnd, "recovery: persistent congestion");
        }
    }

    /// OnLossDetectionTimeout (RFC 9002 A.9).
    pub(crate) fn on_loss_detection_timeout(
        &mut self,
        handshake_confirmed: bool,
        peer_completed_address_validation: bool,
        now: Instant,
    ) -> TimeoutOutcome<T> {
        self.settle_timer();
        self.now_hint = Some(now);
        if (handshake_confirmed && !self.handshake_confirmed)
            || (peer_completed_address_validation && !self.peer_validated)
        {
            self.handshake_confirmed |= handshake_confirmed;
            self.peer_validated |= peer_completed_address_validation;
            self.set_loss_detection_timer(now);
        }
        if self.loss_detection_timer().is_none_or(|t| now < t) {
            return TimeoutOutcome::None;
        }
        if let Some((_, epoch)) = self.earliest_loss_time() {
            let mut lost = Vec::new();
            let pc = self.detect_lost(epoch, now, &mut lost);
            self.on_packets_lost(&lost, pc, now);
            self.set_loss_detection_timer(now);
            if lost.is_empty() {
                return TimeoutOutcome::None;
            }
            return TimeoutOutcome::Lost { epoch, lost };
        }
        let outcome = if !self.any_ack_eliciting_in_flight() {
            if self.peer_validated {
                // Nothing to probe for: the timer should not have been armed.
                self.set_loss_detection_timer(now);
                return TimeoutOutcome::None;
            }
            // RFC 9002 §6.2.2.1: the client's anti-deadlock probe, a
            // Handshake packet if it has Handshake keys, else a padded
            // Initial.
            TimeoutOutcome::Probe {
                epoch: self.anti_deadlock_epoch(),
                count: 1,
            }
        } else {
            match self.pto_time_and_space(now) {
                // RFC 9002 §6.2.4: "MUST send at least one ack-eliciting
                // packet ... MAY send up to two".
                Some((_, epoch)) => TimeoutOutcome::Probe { epoch, count: 2 },
                None => {
                    self.set_loss_detection_timer(now);
                    return TimeoutOutcome::None;
                }
            }
        };
        self.pto_count = self.pto_count.saturating_add(1);
        self.stats.pto_count += 1;
        self.set_loss_detection_timer(now);
        outcome
    }

    fn anti_deadlock_epoch(&self) -> Epoch {
        if self.handshake_keys || self.spaces[Epoch::Initial.idx()].discarded {
            Epoch::Handshake
        } else {
            Epoch::Initial
        }
    }

    /// Whether ack-eliciting packets in flight can arm a PTO: those of
    /// the application space only once the handshake is confirmed (RFC
    /// 9002 §6.2.1). A client's 0-RTT packets therefore never stand in
    /// for the anti-deadlock timer, which §6.2.2.1 requires "even if there
    /// are no packets in flight" until the server acknowledged a Handshake
    /// packet: otherwise 0-RTT packets the server dropped would hold the
    /// window and no timer would ever send the client's Finished.
    fn any_ack_eliciting_in_flight(&self) -> bool {
        Epoch::ALL.iter().any(|&e| {
            self.spaces[e.idx()].ack_eliciting_in_flight > 0
                && (e != Epoch::Application || self.handshake_confirmed)
        })
    }

    /// GetLossTimeAndSpace (RFC 9002 A.8).
    fn earliest_loss_time(&self) -> Option<(Instant, Epoch)> {
        Epoch::ALL
            .iter()
            .filter_map(|&e| self.spaces[e.idx()].loss_time.map(|t| (t, e)))
            .min_by_key(|&(t, _)| t)
    }

    /// GetPtoTimeAndSpace (RFC 9002 A.8).
    fn pto_time_and_space(&self, now: Instant) -> Option<(Instant, Epoch)> {
        let backoff = 1u32 << self.pto_count.min(MAX_PTO_BACKOFF_SHIFT);
        let duration = self.rtt.pto_base(false).saturating_mul(backoff);
        if !self.any_ack_eliciting_in_flight() {
            // Anti-deadlock PTO, from now (RFC 9002 §6.2.2.1).
            return now
                .checked_add(duration)
                .map(|t| (t, self.anti_deadlock_epoch()));
        }
        let mut best: Option<(Instant, Epoch)> = None;
        for epoch in Epoch::ALL {
            let space = &self.spaces[epoch.idx()];
            if space.ack_eliciting_in_flight == 0 {
                continue;
            }
            let mut d = duration;
            if epoch == Epoch::Application {
                // RFC 9002 §6.2.1: "An endpoint MUST NOT set its PTO timer
                // for the Application Data packet number space until the
                // handshake is confirmed".
                if !self.handshake_confirmed {
                    break;
                }
                d = d.saturating_add(self.rtt.max_ack_delay.saturating_mul(backoff));
            }
            let Some(t) = space.last_ack_eliciting.and_then(|s| s.checked_add(d)) else {
                continue;
            };
            if best.is_none_or(|(b, _)| t < b) {
                best = Some((t, epoch));
            }
        }
        best
    }

    /// SetLossDetectionTimer (RFC 9002 A.8).
    pub(super) fn set_loss_detection_timer(&mut self, now: Instant) {
        self.timer_stale = false;
        self.timer = self.compute_loss_detection_timer(now);
    }

    /// Computes a timer left stale by the last send, as of that send,
    /// before `now_hint` moves on.
    pub(super) fn settle_timer(&mut self) {
        if let (true, Some(at)) = (self.timer_stale, self.now_hint) {
            self.set_loss_detection_timer(at);
        }
    }

    /// The deadline SetLossDetectionTimer (RFC 9002 A.8) arms at `now`.
    pub(super) fn compute_loss_detection_timer(&self, now: Instant) -> Option<Instant> {
        if let Some((t, _)) = self.earliest_loss_time() {
            // Time threshold loss detection.
            return Some(t);
        }
        // RFC 9002 §6.2.2.1: "If no additional data can be sent, the
        // server's PTO timer MUST NOT be armed".
        if self.amplification_blocked {
            return None;
        }
        if !self.any_ack_eliciting_in_flight() && self.peer_validated {
            return None;
        }
        self.pto_time_and_space(now).map(|(t, _)| t)
    }

    /// OnPacketNumberSpaceDiscarded (RFC 9002 A.10): its packets leave
    /// bytes in flight, its timers reset, and so does the PTO backoff.
    pub(crate) fn on_pkt_num_space_discarded(&mut self, epoch: Epoch) {
        let space = &mut self.spaces[epoch.idx()];
        space.clear();
        space.discarded = true;
        self.pto_count = 0;
        self.rearm_or_clear();
    }

    /// All unacknowledged packets of a space, in packet number order, out of
    /// flight (Retry, 0-RTT rejection). The space stays usable and keeps
    /// its packet numbers.
    pub(crate) fn drain_unacked(&mut self, epoch: Epoch) -> Vec<SentPacket<T>> {
        let mut out = Vec::with_capacity(self.spaces[epoch.idx()].live);
        self.spaces[epoch.idx()].drain_all(&mut out);
        self.rearm_or_clear();
        out
    }

    fn rearm_or_clear(&mut self) {
        match self.now_hint {
            Some(now) => self.set_loss_detection_timer(now),
            None => {
                self.timer_stale = false;
                self.timer = None;
            }
        }
    }
}
