//! Congestion control: NewReno (RFC 9002 §7, B) and CUBIC (RFC 9438), both
//! with optional HyStart++ (RFC 9406) in the initial slow start.

use std::time::{Duration, Instant};

use super::cubic::Cubic;
use super::hystart::{self, HyStart};
use super::{CongestionControlAlgorithm, Epoch};

/// kLossReductionFactor as a divisor (RFC 9002 §7.3.2: 0.5).
const LOSS_REDUCTION_DIVISOR: usize = 2;

/// The initial window of `packets` datagrams (RFC 9002 §7.2, 10 by
/// default: min(10 * mss, max(14720, 2 * mss))): min(packets * mss,
/// max(packets * 1472, 2 * mss)).
pub(crate) fn initial_window(mss: usize, packets: usize) -> usize {
    (packets * mss).min((packets * 1472).max(2 * mss))
}

/// kMinimumWindow: 2 * mss (RFC 9002 §7.2).
pub(crate) fn minimum_window(mss: usize) -> usize {
    2 * mss
}

#[derive(Debug)]
pub(crate) struct Congestion {
    algo: CongestionControlAlgorithm,
    pub(crate) mss: usize,
    pub(crate) cwnd: usize,
    pub(crate) ssthresh: usize,
    /// congestion_recovery_start_time (RFC 9002 B.2).
    recovery_start: Option<Instant>,
    /// The sender is not using its window (RFC 9002 §7.8).
    app_limited: bool,
    app_limited_since: Option<Instant>,
    /// Reno congestion avoidance: bytes acknowledged towards the next mss.
    ca_acked: usize,
    /// CSS growth below one byte carried over.
    css_acked: usize,
    /// Slow-start growth in the ACK being processed (HyStart++ L limit).
    ss_this_ack: usize,
    /// Highest bytes in flight in this round trip and in the previous one:
    /// whether the sender used its window (RFC 9002 §7.8), whatever held
    /// it back (the application, a pacer, a batching caller). A round ends
    /// when a packet sent after it began is acknowledged. (u32: bytes in
    /// flight stay far below 4 GiB, and this struct is paid per
    /// connection.)
    max_in_flight: u32,
    prev_max_in_flight: u32,
    /// The initial window in datagrams (10 unless configured).
    initial_packets: u32,
    /// The round is over once an ACK covers this packet number, the first
    /// one sent after the round began (`u64::MAX` before any).
    round_end_pn: u64,
    /// The window when this round began.
    round_cwnd: usize,
    /// 0, or the window when the ACK being processed ended the round.
    round_over: usize,
    pacing: bool,
    /// HyStart++ configured (its phase says only whether it still runs).
    hystart_enabled: bool,
    pub(crate) cubic: Cubic,
    pub(crate) hystart: HyStart,
    pub(crate) congestion_events: u64,
    pub(crate) persistent_congestion_events: u64,
}

impl Congestion {
    /// The same controller at its initial state (a new path: RFC 9000
    /// §9.4).
    pub(crate) fn fresh(&self) -> Self {
        Congestion::new(
            self.algo,
            self.mss,
            self.hystart_enabled,
            self.pacing,
            self.initial_packets as usize,
        )
    }

    pub(crate) fn new(
        algo: CongestionControlAlgorithm,
        mss: usize,
        hystart: bool,
        pacing: bool,
        initial_packets: usize,
    ) -> Self {
        let initial_packets = initial_packets.clamp(2, u32::MAX as usize);
        Congestion {
            algo,
            mss,
            cwnd: initial_window(mss, initial_packets),
            ssthresh: usize::MAX,
            recovery_start: None,
            app_limited: false,
            app_limited_since: None,
            ca_acked: 0,
            css_acked: 0,
            ss_this_ack: 0,
            max_in_flight: 0,
            prev_max_in_flight: 0,
            initial_packets: initial_packets as u32,
            round_end_pn: u64::MAX,
            round_cwnd: initial_window(mss, initial_packets),
            round_over: 0,
            pacing,
            hystart_enabled: hystart,
            cubic: Cubic::default(),
            hystart: HyStart::new(hystart),
            congestion_events: 0,
            persistent_congestion_events: 0,
        }
    }

    pub(crate) fn algorithm(&self) -> CongestionControlAlgorithm {
        self.algo
    }

    pub(crate) fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    pub(crate) fn is_app_limited(&self) -> bool {
        self.app_limited
    }

    /// InCongestionRecovery (RFC 9002 B.4).
    pub(crate) fn in_recovery(&self, sent_time: Instant) -> bool {
        self.recovery_start.is_some_and(|s| sent_time <= s)
    }

    pub(crate) fn set_mss(&mut self, mss: usize) {
        // RFC 9002 §7.2: recalculate the initial window for the new size
        // when the window is still the initial one.
        let packets = self.initial_packets as usize;
        if self.cwnd == initial_window(self.mss, packets) {
            self.cwnd = initial_window(mss, packets);
        }
        self.mss = mss;
        self.cwnd = self.cwnd.max(minimum_window(mss));
    }

    pub(crate) fn on_app_limited(&mut self, now: Instant) {
        if !self.app_limited {
            self.app_limited = true;
            self.app_limited_since = Some(now);
        }
    }

    /// An in-flight packet was sent; `bytes_in_flight` includes it.
    pub(crate) fn on_packet_sent(
        &mut self,
        epoch: Epoch,
        pkt_num: u64,
        bytes_in_flight: usize,
        now: Instant,
    ) {
        if epoch == Epoch::Application {
            self.hystart.on_packet_sent(pkt_num);
            self.round_end_pn = self.round_end_pn.min(pkt_num);
        }
        self.max_in_flight = self
            .max_in_flight
            .max(crate::saturating_u32(bytes_in_flight));
        // Filling the window (no room left for another full packet) ends
        // an application-limited period.
        if self.app_limited && bytes_in_flight + self.mss > self.cwnd {
            self.app_limited = false;
            if let Some(since) = self.app_limited_since.take() {
                self.cubic.shift_epoch(now.saturating_duration_since(since));
            }
        }
    }

    /// Called once per ACK frame before its packets.
    pub(crate) fn on_ack_begin(&mut self) {
        self.ss_this_ack = 0;
    }

    /// Called once per ACK frame after its packets, with what is still in
    /// flight: when the ACK ended a round, the next one starts from there.
    /// `next_pn` is the next Application packet number to be sent.
    pub(crate) fn on_ack_end(&mut self, bytes_in_flight: usize, next_pn: u64) {
        if self.round_over != 0 {
            self.prev_max_in_flight = self.max_in_flight;
            self.max_in_flight = crate::saturating_u32(bytes_in_flight);
            self.round_end_pn = next_pn;
            self.round_cwnd = std::mem::take(&mut self.round_over);
        }
    }

    /// Whether the window was used in this round trip or the previous
    /// one: in slow start at least half of the window the round began with
    /// (it doubles per round, so half is what the last round filled), in
    /// congestion avoidance all but one packet. A window that is not used
    /// is not grown (RFC 9002 §7.8), so a sender held back by its
    /// application or a pacer keeps a window, and send buffers sized from
    /// it, that match what it really sends (a few times it at most).
    fn window_used(&self) -> bool {
        let used = self.max_in_flight.max(self.prev_max_in_flight) as usize;
        if self.in_slow_start() {
            2 * used >= self.round_cwnd.min(self.cwnd)
        } else {
            used + self.mss >= self.cwnd
        }
    }

    /// The RTT sample of an Application-space ACK (HyStart++ input).
    pub(crate) fn on_rtt_sample(&mut self, epoch: Epoch, latest_rtt: Duration) {
        if epoch == Epoch::Application && self.in_slow_start() {
            self.hystart.on_rtt_sample(latest_rtt);
        }
    }

    /// OnPacketAcked for one in-flight packet (RFC 9002 B.5).
    pub(crate) fn on_packet_acked(
        &mut self,
        epoch: Epoch,
        pkt_num: u64,
        size: usize,
        time_sent: Instant,
        srtt: Duration,
        now: Instant,
    ) {
        if epoch == Epoch::Application && self.round_over == 0 && pkt_num >= self.round_end_pn {
            self.round_over = self.cwnd.max(1);
        }
        if epoch == Epoch::Application
            && self.hystart.on_packet_acked(pkt_num) == hystart::Action::EnterCongestionAvoidance
            && self.in_slow_start()
        {
            // RFC 9406 §4.3: after CSS_ROUNDS rounds, ssthresh = cwnd.
            self.ssthresh = self.cwnd;
        }
        // RFC 9002 §7.3.2: no growth for packets sent before recovery began.
        if self.in_recovery(time_sent) {
            return;
        }
        // RFC 9002 §7.8: "the congestion window SHOULD NOT be increased"
        // when it is not fully used.
        if self.app_limited || !self.window_used() {
            return;
        }
        if self.in_slow_start() {
            self.slow_start_grow(size);
            return;
        }
        match self.algo {
            CongestionControlAlgorithm::Reno => {
                // RFC 9002 §7.3.3: one mss per window acknowledged.
                self.ca_acked += size;
                if self.ca_acked >= self.cwnd {
                    self.ca_acked -= self.cwnd;
                    self.cwnd += self.mss;
                }
            }
            CongestionControlAlgorithm::CUBIC => {
                self.cwnd = self.cubic.on_ack(self.cwnd, size, self.mss, srtt, now);
            }
        }
    }

    fn slow_start_grow(&mut self, size: usize) {
        let mut inc = size;
        if self.hystart.phase() != hystart::Phase::Done {
            if !self.pacing {
                // RFC 9406 §4.3: at most L * mss per ACK when not paced.
                let cap = hystart::L_NON_PACED * self.mss;
                inc = inc.min(cap.saturating_sub(self.ss_this_ack));
                self.ss_this_ack += inc;
            }
            if self.hystart.in_css() {
                self.css_acked += inc;
                inc = self.css_acked / hystart::CSS_GROWTH_DIVISOR;
                self.css_acked %= hystart::CSS_GROWTH_DIVISOR;
            }
        }
        // RFC 9002 §7.3.1: slow start grows by the bytes acknowledged.
        self.cwnd += inc;
    }

    /// OnCongestionEvent (RFC 9002 B.6). Returns whether a new recovery
    /// period started.
    pub(crate) fn on_congestion_event(&mut self, sent_time: Instant, now: Instant) -> bool {
        // RFC 9002 §7.3.2: one reduction per recovery period.
        if self.in_recovery(sent_time) {
            return false;
        }
        self.recovery_start = Some(now);
        self.congestion_events += 1;
        self.hystart.on_congestion();
        self.ca_acked = 0;
        let min = minimum_window(self.mss);
        match self.algo {
            CongestionControlAlgorithm::Reno => {
                self.ssthresh = self.cwnd / LOSS_REDUCTION_DIVISOR;
            }
            CongestionControlAlgorithm::CUBIC => {
                self.ssthresh = self.cubic.on_congestion_event(self.cwnd, min);
            }
        }
        self.cwnd = self.ssthresh.max(min);
        true
    }

    /// RFC 9002 §7.6.2: collapse to the minimum window.
    pub(crate) fn on_persistent_congestion(&mut self) {
        self.persistent_congestion_events += 1;
        self.cwnd = minimum_window(self.mss);
        self.recovery_start = None;
        self.ca_acked = 0;
        self.hystart.on_congestion();
        self.cubic.on_persistent_congestion();
    }
}
