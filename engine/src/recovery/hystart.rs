//! HyStart++ (RFC 9406): leaves slow start early on a delay increase and
//! grows cautiously (Conservative Slow Start, CSS) before committing to
//! congestion avoidance.
//!
//! Rounds are counted in Application-space packet numbers: a round starts
//! with the first packet sent after the previous round ended (windowEnd),
//! and ends when a packet at or above windowEnd is acknowledged (RFC 9406
//! §4.2).

use std::time::Duration;

const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
/// cwnd growth in CSS is divided by this (RFC 9406 §4.3).
pub(crate) const CSS_GROWTH_DIVISOR: usize = 4;
const CSS_ROUNDS: u32 = 5;
/// Per-ACK slow-start growth limit L in full-size datagrams for a
/// non-paced sender (RFC 9406 §4.3; infinite when paced).
pub(crate) const L_NON_PACED: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Standard slow start with delay-increase detection.
    SlowStart,
    /// Conservative Slow Start.
    Css,
    /// HyStart++ no longer applies (it ran once; RFC 9406 §4.3 uses it for
    /// the initial slow start only).
    Done,
}

/// What the congestion controller must do after an ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    None,
    /// CSS lasted CSS_ROUNDS rounds: set ssthresh = cwnd, enter congestion
    /// avoidance (RFC 9406 §4.3).
    EnterCongestionAvoidance,
}

/// An optional RTT in 8 bytes (nanoseconds, `u64::MAX` for none): this
/// state lives in every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OptRtt(u64);

impl OptRtt {
    const NONE: OptRtt = OptRtt(u64::MAX);

    fn some(d: Duration) -> Self {
        OptRtt(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1))
    }

    fn get(self) -> Option<Duration> {
        (self != Self::NONE).then(|| Duration::from_nanos(self.0))
    }
}

/// `window_end` when no round runs (packet numbers stay below 2^62).
const NO_ROUND: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct HyStart {
    phase: Phase,
    window_end: u64,
    last_round_min_rtt: OptRtt,
    current_round_min_rtt: OptRtt,
    rtt_sample_count: u32,
    css_baseline_min_rtt: OptRtt,
    css_rounds: u32,
}

impl HyStart {
    pub(crate) fn new(enabled: bool) -> Self {
        HyStart {
            phase: if enabled {
                Phase::SlowStart
            } else {
                Phase::Done
            },
            window_end: NO_ROUND,
            last_round_min_rtt: OptRtt::NONE,
            current_round_min_rtt: OptRtt::NONE,
            rtt_sample_count: 0,
            css_baseline_min_rtt: OptRtt::NONE,
            css_rounds: 0,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn in_css(&self) -> bool {
        self.phase == Phase::Css
    }

    /// An Application-space packet was sent: start a round if none runs.
    pub(crate) fn on_packet_sent(&mut self, pkt_num: u64) {
        if self.phase == Phase::Done || self.window_end != NO_ROUND {
            return;
        }
        // RFC 9406 §4.2: at the start of each round.
        self.window_end = pkt_num;
        self.last_round_min_rtt = self.current_round_min_rtt;
        self.current_round_min_rtt = OptRtt::NONE;
        self.rtt_sample_count = 0;
    }

    /// One RTT sample from an ACK (once per ACK frame).
    pub(crate) fn on_rtt_sample(&mut self, rtt: Duration) {
        if self.phase == Phase::Done {
            return;
        }
        let cur = self.current_round_min_rtt.get().map_or(rtt, |m| m.min(rtt));
        self.current_round_min_rtt = OptRtt::some(cur);
        self.rtt_sample_count += 1;
        if self.rtt_sample_count < N_RTT_SAMPLE {
            return;
        }
        match self.phase {
            Phase::SlowStart => {
                let Some(last) = self.last_round_min_rtt.get() else {
                    return;
                };
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if cur >= last + thresh {
                    // RFC 9406 §4.3: delay increase, enter CSS.
                    self.css_baseline_min_rtt = OptRtt::some(cur);
                    self.css_rounds = 0;
                    self.phase = Phase::Css;
                }
            }
            Phase::Css => {
                if self.css_baseline_min_rtt.get().is_some_and(|b| cur < b) {
                    // RFC 9406 §4.3: the increase was spurious, back to
                    // slow start.
                    self.css_baseline_min_rtt = OptRtt::NONE;
                    self.phase = Phase::SlowStart;
                }
            }
            Phase::Done => {}
        }
    }

    /// An Application-space packet was acknowledged.
    pub(crate) fn on_packet_acked(&mut self, pkt_num: u64) -> Action {
        if self.phase == Phase::Done || self.window_end == NO_ROUND || pkt_num < self.window_end {
            return Action::None;
        }
        self.window_end = NO_ROUND;
        if self.phase == Phase::Css {
            self.css_rounds += 1;
            if self.css_rounds >= CSS_ROUNDS {
                self.phase = Phase::Done;
                return Action::EnterCongestionAvoidance;
            }
        }
        Action::None
    }

    /// Loss or persistent congestion ends HyStart++ (RFC 9406 §4.3).
    pub(crate) fn on_congestion(&mut self) {
        self.phase = Phase::Done;
        self.window_end = NO_ROUND;
    }
}
