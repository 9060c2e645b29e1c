//! Loss detection and congestion control (RFC 9002), self-contained.
//!
//! [`Recovery`] keeps, per packet number space, the packets sent and not yet
//! acknowledged or lost, estimates the RTT, detects loss by packet and time
//! threshold, runs the probe timeout (PTO), and drives a congestion
//! controller (NewReno or CUBIC, either with HyStart++) and a pacer.
//!
//! It knows nothing of frames: the connection attaches a payload `T` to each
//! [`SentPacket`] (the frames to retransmit) and gets it back when the packet
//! is acknowledged or lost. There is no clock inside: every input carries
//! `now`.
//!
//! Calling contract:
//! - [`Recovery::on_packet_sent`] for every packet sent, packet numbers
//!   strictly increasing per space, `time_sent` non-decreasing.
//! - [`Recovery::on_ack_received_into`] for every ACK frame: it reuses
//!   the caller's outcome buffers and shows each acknowledged packet's
//!   payload where it lies.
//! - Arm a timer at [`Recovery::loss_detection_timer`] (recomputed by every
//!   call) and call [`Recovery::on_loss_detection_timeout`] when it fires.
//! - State the connection knows and recovery needs for the timer
//!   (RFC 9002 A.8): [`Recovery::set_handshake_confirmed`],
//!   [`Recovery::set_peer_completed_address_validation`] (a server calls it
//!   at creation: a client's address counts as validated for the client's
//!   own PTO purposes only when the server says so, RFC 9002 §6.2.2.1),
//!   [`Recovery::set_amplification_blocked`] (servers) and
//!   [`Recovery::set_handshake_keys_available`]. The `handshake_confirmed`
//!   and `peer_completed_address_validation` arguments of the ACK and
//!   timeout methods set the same flags (they only ever become true).
//! - [`Recovery::on_app_limited`] when the sender had window to use but
//!   nothing to send: the window then stops growing until a send fills it.

// The connection state machine that calls this is being written; until
// it is wired, parts of the API have no caller outside the tests.
#![allow(dead_code)]

mod cc;
mod cubic;
mod hystart;
mod loss;
mod pacer;
mod rtt;
mod sent;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::{Duration, Instant};

use cc::Congestion;
use pacer::Pacer;
pub(crate) use rtt::RttStats;
use sent::Space;

use crate::Error;

/// kPacketThreshold (RFC 9002 §6.1.1): where the packet threshold starts,
/// and its floor ("SHOULD NOT use a packet threshold less than 3").
const PACKET_THRESHOLD: u64 = 3;

/// The packet threshold grows no further than this on spurious losses;
/// beyond it the time threshold alone declares reordered packets lost.
const MAX_PACKET_THRESHOLD: u64 = 256;

/// kTimeThreshold (RFC 9002 §6.1.2) in eighths of an RTT: 9/8 to start,
/// growing by a quarter RTT per spurious loss the time threshold caused,
/// up to twice the RTT.
const TIME_THRESHOLD_EIGHTHS: u32 = 9;
const TIME_THRESHOLD_STEP_EIGHTHS: u32 = 2;
const MAX_TIME_THRESHOLD_EIGHTHS: u32 = 16;

/// The PTO backoff exponent stops growing here so that timers stay finite.
const MAX_PTO_BACKOFF_SHIFT: u32 = 20;

/// A packet number space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Epoch {
    /// Initial packets.
    Initial = 0,
    /// Handshake packets.
    Handshake = 1,
    /// 0-RTT and 1-RTT packets.
    Application = 2,
}

impl Epoch {
    /// The three spaces in order.
    pub(crate) const ALL: [Epoch; 3] = [Epoch::Initial, Epoch::Handshake, Epoch::Application];

    fn idx(self) -> usize {
        self as usize
    }
}

/// A packet handed to recovery when sent (RFC 9002 A.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SentPacket<T> {
    /// Packet number.
    pub(crate) pkt_num: u64,
    /// When it was sent.
    pub(crate) time_sent: Instant,
    /// Bytes sent, counted in bytes in flight (UDP payload size).
    pub(crate) size: usize,
    /// Whether it elicits an acknowledgment.
    pub(crate) ack_eliciting: bool,
    /// Whether it counts towards bytes in flight (ack-eliciting or padding).
    pub(crate) in_flight: bool,
    /// Sent on a path the connection has since left: its acknowledgement
    /// or loss says nothing about the new path (RFC 9000 §9.4).
    pub(crate) old_path: bool,
    /// What the connection needs back on ack or loss (frames).
    pub(crate) payload: T,
}

/// The congestion controller.
// `CUBIC` is quiche's spelling, kept so that quiche programs port as is.
#[allow(unreachable_pub, clippy::upper_case_acronyms)] // re-exported as tarte::CongestionControlAlgorithm
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CongestionControlAlgorithm {
    /// NewReno (RFC 9002 §7.3).
    Reno = 0,
    /// CUBIC (RFC 9438).
    CUBIC = 1,
}

impl FromStr for CongestionControlAlgorithm {
    type Err = Error;

    /// "reno" or "cubic", any case; anything else is
    /// `Error::CongestionControl`.
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.eq_ignore_ascii_case("reno") {
            Ok(CongestionControlAlgorithm::Reno)
        } else if s.eq_ignore_ascii_case("cubic") {
            Ok(CongestionControlAlgorithm::CUBIC)
        } else {
            Err(Error::CongestionControl)
        }
    }
}

/// Recovery settings.
#[derive(Clone, Debug)]
pub(crate) struct RecoveryConfig {
    /// The maximum UDP payload size (mss for the window arithmetic).
    pub(crate) max_datagram_size: usize,
    /// The congestion controller.
    pub(crate) cc: CongestionControlAlgorithm,
    /// HyStart++ in the initial slow start.
    pub(crate) hystart: bool,
    /// Pacing (RFC 9002 §7.7).
    pub(crate) pacing: bool,
    /// kInitialRtt (RFC 9002 §6.2.2), 333 ms by default.
    pub(crate) initial_rtt: Duration,
    /// The initial window in datagrams (RFC 9002 §7.2: 10).
    pub(crate) initial_window_packets: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            max_datagram_size: 1200,
            cc: CongestionControlAlgorithm::CUBIC,
            hystart: true,
            pacing: true,
            initial_rtt: Duration::from_millis(333),
            initial_window_packets: 10,
        }
    }
}

/// A newly acknowledged packet as recovery still needs it after the ACK
/// took it out of the space (its payload went to the caller's visitor).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Acked {
    pub(crate) pkt_num: u64,
    pub(crate) time_sent: Instant,
    pub(crate) size: usize,
    pub(crate) ack_eliciting: bool,
    pub(crate) in_flight: bool,
    pub(crate) old_path: bool,
}

impl Acked {
    fn of<T>(p: &SentPacket<T>) -> Self {
        Acked {
            pkt_num: p.pkt_num,
            time_sent: p.time_sent,
            size: p.size,
            ack_eliciting: p.ack_eliciting,
            in_flight: p.in_flight,
            old_path: p.old_path,
        }
    }
}

/// What one ACK frame did.
#[derive(Debug)]
pub(crate) struct AckOutcome<T> {
    /// Newly acknowledged packets: ranges largest first, ascending inside a
    /// range.
    pub(crate) acked: Vec<Acked>,
    /// Packets this ACK made lost, in packet number order (in flight or
    /// not: the caller decides what to retransmit).
    pub(crate) lost: Vec<SentPacket<T>>,
    /// The largest newly acknowledged packet was ack-eliciting.
    pub(crate) largest_newly_acked_ack_eliciting: bool,
    /// An RTT sample was taken (RFC 9002 §5.1).
    pub(crate) rtt_updated: bool,
}

impl<T> AckOutcome<T> {
    /// Empty, with no allocation.
    pub(crate) fn new() -> Self {
        AckOutcome {
            acked: Vec::new(),
            lost: Vec::new(),
            largest_newly_acked_ack_eliciting: false,
            rtt_updated: false,
        }
    }

    /// Empties it, keeping the buffers.
    pub(crate) fn clear(&mut self) {
        self.acked.clear();
        self.lost.clear();
        self.largest_newly_acked_ack_eliciting = false;
        self.rtt_updated = false;
    }
}

impl<T> Default for AckOutcome<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// What the loss detection timer did.
#[derive(Debug)]
pub(crate) enum TimeoutOutcome<T> {
    /// Time-threshold loss in `epoch` (RFC 9002 §6.1.2).
    Lost {
        /// The space.
        epoch: Epoch,
        /// The lost packets, in packet number order.
        lost: Vec<SentPacket<T>>,
    },
    /// The PTO fired: send `count` ack-eliciting probe packets in `epoch`
    /// (RFC 9002 §6.2.4; padded Initial when `epoch` is Initial and the
    /// client has nothing in flight).
    Probe {
        /// The space to probe.
        epoch: Epoch,
        /// 1 or 2.
        count: usize,
    },
    /// The timer was not due (or nothing to do).
    None,
}

/// Counters for `Connection::stats()` and `path_stats()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecoveryStats {
    /// Packets sent.
    pub(crate) sent_count: u64,
    /// Bytes sent.
    pub(crate) sent_bytes: u64,
    /// Packets acknowledged.
    pub(crate) acked_count: u64,
    /// Bytes acknowledged.
    pub(crate) acked_bytes: u64,
    /// Packets declared lost.
    pub(crate) lost_count: u64,
    /// Bytes declared lost.
    pub(crate) lost_bytes: u64,
    /// Packets declared lost and acknowledged later.
    pub(crate) spurious_lost_count: u64,
    /// Bytes the connection reported as retransmitted
    /// ([`Recovery::record_retransmission`]).
    pub(crate) retransmitted_bytes: u64,
    /// Congestion events (window reductions).
    pub(crate) congestion_events: u64,
    /// Persistent congestion events.
    pub(crate) persistent_congestion_events: u64,
    /// PTO expirations.
    pub(crate) pto_count: u64,
    /// Largest congestion window reached.
    pub(crate) max_cwnd: usize,
}

/// Loss detection and congestion control for one path.
#[derive(Debug)]
pub(crate) struct Recovery<T> {
    spaces: [Space<T>; 3],
    rtt: RttStats,
    cc: Congestion,
    pacer: Pacer,
    /// The application's cap on the pacing rate, bytes per second.
    max_pacing_rate: Option<u64>,
    pto_count: u32,
    /// The packet reordering threshold: kPacketThreshold, raised past the
    /// reordering distance of packets found to be lost spuriously (RFC 9002
    /// §6.1.1 allows it).
    packet_threshold: u16,
    /// The time threshold in eighths of an RTT (kTimeThreshold = 9/8),
    /// raised likewise (§6.1.2).
    time_threshold_eighths: u8,
    /// kInitialRtt as configured, in microseconds (for a new path).
    initial_rtt_us: u32,
    timer: Option<Instant>,
    /// `timer` is stale: it is what SetLossDetectionTimer would arm at
    /// `now_hint` (the last send), computed on demand.
    timer_stale: bool,
    handshake_confirmed: bool,
    peer_validated: bool,
    amplification_blocked: bool,
    handshake_keys: bool,
    /// The latest `now` seen, for setters without one.
    now_hint: Option<Instant>,
    stats: RecoveryStats,
}

impl<T> Recovery<T> {
    /// A fresh recovery state.
    pub(crate) fn new(cfg: &RecoveryConfig) -> Self {
        let mss = cfg.max_datagram_size.max(1);
        let cc = Congestion::new(
            cfg.cc,
            mss,
            cfg.hystart,
            cfg.pacing,
            cfg.initial_window_packets,
        );
        let stats = RecoveryStats {
            max_cwnd: cc.cwnd,
            ..RecoveryStats::default()
        };
        Recovery {
            spaces: [Space::new(), Space::new(), Space::new()],
            rtt: RttStats::new(cfg.initial_rtt),
            cc,
            pacer: Pacer::new(cfg.pacing, mss),
            max_pacing_rate: None,
            pto_count: 0,
            packet_threshold: PACKET_THRESHOLD as u16,
            time_threshold_eighths: TIME_THRESHOLD_EIGHTHS as u8,
            initial_rtt_us: u32::try_from(cfg.initial_rtt.as_micros()).unwrap_or(u32::MAX),
            timer: None,
            timer_stale: false,
            handshake_confirmed: false,
            peer_validated: false,
            amplification_blocked: false,
            handshake_keys: false,
            now_hint: None,
            stats,
        }
    }

    /// Entries the sent-packet and recently-lost queues have room for,
    /// summed over the spaces (memory held; tests check idle release).
    #[cfg(test)]
    pub(crate) fn retained_capacity(&self) -> (usize, usize) {
        self.spaces.iter().fold((0, 0), |(a, b), s| {
            (a + s.sent.capacity(), b + s.recently_lost.capacity())
        })
    }

    /// OnPacketSent (RFC 9002 A.5). Packet numbers must increase within a
    /// space; a packet that does not, or one sent in a discarded space, is
    /// ignored (and logged) since it is a caller bug.
    pub(crate) fn on_packet_sent(&mut self, epoch: Epoch, pkt: SentPacket<T>, now: Instant) {
        let space = &mut self.spaces[epoch.idx()];
        if space.discarded || space.largest_sent.is_some_and(|l| pkt.pkt_num <= l) {
            tracing::error!(
                ?epoch,
                pkt_num = pkt.pkt_num,
                discarded = space.discarded,
                "recovery: packet sent out of order or in a discarded space, not tracked"
            );
            return;
        }
        // (A stale timer is recomputed as of this send: what computing it
        // at every send would have left.)
        self.now_hint = Some(now);
        self.stats.sent_count += 1;
        self.stats.sent_bytes += pkt.size as u64;
        let (in_flight, pn, size) = (pkt.in_flight, pkt.pkt_num, pkt.size);
        space.push(pkt);
        if in_flight {
            let bif = self.bytes_in_flight();
            self.cc.on_packet_sent(epoch, pn, bif, now);
            // (The rate is a 128-bit division: not for a disabled pacer.)
            if self.pacer.enabled() {
                let rate = self.pacing_rate();
                self.pacer.on_sent(size, now, rate);
            }
        }
        // The timer is set as of this send, but computed when read: a
        // burst of packets costs one computation, not one each.
        self.timer_stale = true;
    }

    /// The loss detection timer's deadline, if armed (RFC 9002 A.8).
    pub(crate) fn loss_detection_timer(&self) -> Option<Instant> {
        match self.now_hint {
            Some(now) if self.timer_stale => self.compute_loss_detection_timer(now),
            _ => self.timer,
        }
    }

    /// The handshake is confirmed (RFC 9001 §4.1.2): PTO now covers the
    /// Application space and max_ack_delay caps ACK delays.
    pub(crate) fn set_handshake_confirmed(&mut self) {
        if !self.handshake_confirmed {
            self.handshake_confirmed = true;
            self.rearm();
        }
    }

    /// The peer validated our address (always true for a server; for a
    /// client once it got a Handshake ACK or the handshake is confirmed,
    /// RFC 9002 §6.2.2.1).
    pub(crate) fn set_peer_completed_address_validation(&mut self) {
        if !self.peer_validated {
            self.peer_validated = true;
            self.rearm();
        }
    }

    /// A server blocked by the anti-amplification limit must not arm its
    /// PTO (RFC 9002 §6.2.2.1).
    pub(crate) fn set_amplification_blocked(&mut self, blocked: bool) {
        if self.amplification_blocked != blocked {
            self.amplification_blocked = blocked;
            self.rearm();
        }
    }

    /// The client has Handshake keys: an anti-deadlock probe is then a
    /// Handshake packet (RFC 9002 §6.2.2.1). Discarding the Initial space
    /// implies it.
    pub(crate) fn set_handshake_keys_available(&mut self) {
        self.handshake_keys = true;
    }

    fn rearm(&mut self) {
        if let Some(now) = self.now_hint {
            self.set_loss_detection_timer(now);
        }
    }

    /// The peer's max_ack_delay transport parameter.
    pub(crate) fn set_max_ack_delay(&mut self, d: Duration) {
        self.rtt.max_ack_delay = d;
    }

    /// The RTT estimator.
    pub(crate) fn rtt(&self) -> &RttStats {
        &self.rtt
    }

    /// The current PTO period without backoff, max_ack_delay included
    /// (the value RFC 9000 §10.2 multiplies for closing and draining).
    pub(crate) fn pto(&self) -> Duration {
        self.rtt.pto_base(true)
    }

    /// The PTO period for a space: max_ack_delay only counts for the
    /// Application space (RFC 9002 §6.2.1).
    pub(crate) fn pto_for(&self, epoch: Epoch) -> Duration {
        self.rtt.pto_base(epoch == Epoch::Application)
    }

    /// PTOs in a row without an acknowledgment (the backoff exponent).
    pub(crate) fn pto_count(&self) -> u32 {
        self.pto_count
    }

    /// The congestion window in bytes.
    pub(crate) fn cwnd(&self) -> usize {
        self.cc.cwnd
    }

    /// The slow start threshold (usize::MAX before the first exit).
    pub(crate) fn ssthresh(&self) -> usize {
        self.cc.ssthresh
    }

    /// The congestion controller in use.
    pub(crate) fn cc_algorithm(&self) -> CongestionControlAlgorithm {
        self.cc.algorithm()
    }

    /// Whether the controller is in slow start (CSS included).
    pub(crate) fn in_slow_start(&self) -> bool {
        self.cc.in_slow_start()
    }

    /// Bytes in flight over all spaces.
    pub(crate) fn bytes_in_flight(&self) -> usize {
        self.spaces.iter().map(|s| s.bytes_in_flight).sum()
    }

    /// Window left: cwnd - bytes_in_flight, at least 0.
    pub(crate) fn cwnd_available(&self) -> usize {
        self.cwnd().saturating_sub(self.bytes_in_flight())
    }

    /// Whether ack-eliciting packets of `epoch` are in flight.
    pub(crate) fn has_ack_eliciting_in_flight(&self, epoch: Epoch) -> bool {
        self.spaces[epoch.idx()].ack_eliciting_in_flight > 0
    }

    /// The largest packet number acknowledged by the peer in `epoch`.
    pub(crate) fn largest_acked(&self, epoch: Epoch) -> Option<u64> {
        self.spaces[epoch.idx()].largest_acked
    }

    /// The pacing rate in bytes per second: 1.25 * cwnd / smoothed_rtt
    /// (RFC 9002 §7.7).
    pub(crate) fn pacing_rate(&self) -> u64 {
        let rate = Pacer::rate(self.cc.cwnd, self.rtt.smoothed_rtt);
        self.max_pacing_rate.map_or(rate, |max| rate.min(max))
    }

    /// Caps the pacing rate at `max` bytes per second (`None`: no cap);
    /// without pacing it has no effect.
    pub(crate) fn set_max_pacing_rate(&mut self, max: Option<u64>) {
        // A zero rate would hold every packet forever.
        self.max_pacing_rate = max.map(|m| m.max(1));
    }

    /// When the pacer releases the next full-size packet; `now` when pacing
    /// is disabled or a packet may go now. It does not look at the window.
    pub(crate) fn next_send_time(&self, now: Instant) -> Instant {
        if !self.pacer.enabled() {
            return now;
        }
        self.pacer.next_send_time(now, self.pacing_rate())
    }

    /// Bytes that may leave in one burst at `now`: the window's room,
    /// bounded by the pacer's tokens when pacing is on.
    pub(crate) fn send_quantum(&self, now: Instant) -> usize {
        let room = self.cwnd_available();
        if !self.pacer.enabled() {
            return room;
        }
        room.min(self.pacer.burst_at(now, self.pacing_rate()))
    }

    /// Whether an in-flight packet may be sent now: the window has room and
    /// the pacer releases it.
    pub(crate) fn can_send(&self, now: Instant) -> bool {
        self.cwnd_available() > 0 && self.next_send_time(now) <= now
    }

    /// The sender had window to use but nothing to send (RFC 9002 §7.8):
    /// the window does not grow until a send fills it again.
    pub(crate) fn on_app_limited(&mut self, now: Instant) {
        self.settle_timer();
        self.now_hint = Some(now);
        self.cc.on_app_limited(now);
    }

    /// The peer's address changed beyond its port (RFC 9000 §9.4): the
    /// congestion controller, the pacer and the RTT estimator restart
    /// from their initial values (the peer's max_ack_delay is kept);
    /// packets in flight stay tracked for loss detection.
    pub(crate) fn reset_for_new_path(&mut self, now: Instant) {
        // RFC 9000 §9.4: "Packets sent on the old path MUST NOT contribute
        // to congestion control or RTT estimation for the new path."
        for s in &mut self.spaces {
            s.mark_old_path();
        }
        self.cc = self.cc.fresh();
        self.pacer = Pacer::new(self.pacer.enabled(), self.cc.mss);
        let max_ack_delay = self.rtt.max_ack_delay;
        self.rtt = RttStats::new(Duration::from_micros(u64::from(self.initial_rtt_us)));
        self.rtt.max_ack_delay = max_ack_delay;
        self.pto_count = 0;
        self.now_hint = Some(now);
        self.set_loss_detection_timer(now);
    }

    /// The sender has nothing in flight and nothing to send: the spaces
    /// give back the queue memory a burst grew.
    pub(crate) fn release_idle_memory(&mut self) {
        for s in &mut self.spaces {
            s.release_idle();
        }
    }

    /// Whether the sender is currently application-limited.
    pub(crate) fn is_app_limited(&self) -> bool {
        self.cc.is_app_limited()
    }

    /// A new maximum datagram size (PMTUD or handshake): the initial window
    /// is recalculated if still in use, the minimum window follows
    /// (RFC 9002 §7.2).
    pub(crate) fn update_max_datagram_size(&mut self, size: usize) {
        if size == 0 {
            return;
        }
        self.cc.set_mss(size);
        self.pacer.set_mss(size);
    }

    /// The connection retransmitted `bytes` of lost data (for stats only).
    pub(crate) fn record_retransmission(&mut self, bytes: usize) {
        self.stats.retransmitted_bytes += bytes as u64;
    }

    /// The counters.
    pub(crate) fn stats(&self) -> RecoveryStats {
        RecoveryStats {
            congestion_events: self.cc.congestion_events,
            persistent_congestion_events: self.cc.persistent_congestion_events,
            ..self.stats.clone()
        }
    }
}
