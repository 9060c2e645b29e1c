//! RTT estimation (RFC 9002 §5).

use std::time::{Duration, Instant};

/// Timer granularity, kGranularity (RFC 9002 §6.1.2).
pub(crate) const GRANULARITY: Duration = Duration::from_millis(1);

/// The default max_ack_delay transport parameter (RFC 9000 §18.2).
pub(crate) const DEFAULT_MAX_ACK_DELAY: Duration = Duration::from_millis(25);

/// RTT estimator state (RFC 9002 §5 and A.3).
#[derive(Clone, Debug)]
pub(crate) struct RttStats {
    /// The most recent RTT sample.
    pub(crate) latest_rtt: Duration,
    /// Exponentially weighted moving average of the adjusted samples.
    pub(crate) smoothed_rtt: Duration,
    /// Mean deviation of the samples.
    pub(crate) rttvar: Duration,
    /// Minimum RTT seen over the connection, ignoring ACK delay.
    pub(crate) min_rtt: Duration,
    /// The peer's max_ack_delay transport parameter.
    pub(crate) max_ack_delay: Duration,
    /// When the first RTT sample was taken (used by persistent congestion,
    /// RFC 9002 §7.6.2).
    pub(crate) first_sample_time: Option<Instant>,
}

impl RttStats {
    /// The estimator before any sample, seeded with `initial_rtt`
    /// (kInitialRtt, RFC 9002 §6.2.2).
    pub(crate) fn new(initial_rtt: Duration) -> Self {
        RttStats {
            latest_rtt: Duration::ZERO,
            smoothed_rtt: initial_rtt,
            rttvar: initial_rtt / 2,
            min_rtt: Duration::ZERO,
            max_ack_delay: DEFAULT_MAX_ACK_DELAY,
            first_sample_time: None,
        }
    }

    /// Whether at least one RTT sample was taken.
    pub(crate) fn has_sample(&self) -> bool {
        self.first_sample_time.is_some()
    }

    /// Feeds one RTT sample (RFC 9002 §5.3, A.7 UpdateRtt).
    ///
    /// `ack_delay` is the decoded delay from the ACK frame; the caller says
    /// whether the handshake is confirmed so that it is limited properly.
    pub(crate) fn update(
        &mut self,
        latest_rtt: Duration,
        ack_delay: Duration,
        handshake_confirmed: bool,
        now: Instant,
    ) {
        self.latest_rtt = latest_rtt;
        if self.first_sample_time.is_none() {
            // RFC 9002 §5.3: the first sample initialises the estimator.
            self.first_sample_time = Some(now);
            self.min_rtt = latest_rtt;
            self.smoothed_rtt = latest_rtt;
            self.rttvar = latest_rtt / 2;
            return;
        }
        // RFC 9002 §5.2: min_rtt ignores ACK delay.
        self.min_rtt = self.min_rtt.min(latest_rtt);
        // RFC 9002 §5.3: "MUST use the lesser of the acknowledgment delay and
        // the peer's max_ack_delay after the handshake is confirmed".
        let ack_delay = if handshake_confirmed {
            ack_delay.min(self.max_ack_delay)
        } else {
            ack_delay
        };
        // RFC 9002 §5.3: "MUST NOT subtract the acknowledgment delay from
        // the RTT sample if the resulting value is smaller than the min_rtt".
        let adjusted = if latest_rtt >= self.min_rtt + ack_delay {
            latest_rtt - ack_delay
        } else {
            latest_rtt
        };
        let diff = self.smoothed_rtt.abs_diff(adjusted);
        self.rttvar = (self.rttvar * 3 + diff) / 4;
        self.smoothed_rtt = (self.smoothed_rtt * 7 + adjusted) / 8;
    }

    /// The PTO period without backoff (RFC 9002 §6.2.1), including
    /// max_ack_delay when `with_ack_delay` (the Application space).
    pub(crate) fn pto_base(&self, with_ack_delay: bool) -> Duration {
        let mut d = self.smoothed_rtt + (self.rttvar * 4).max(GRANULARITY);
        if with_ack_delay {
            d += self.max_ack_delay;
        }
        d
    }

    /// The loss delay for time-threshold loss detection (RFC 9002 §6.1.2):
    /// `eighths`/8 (kTimeThreshold = 9/8, raised after spurious losses) of
    /// max(smoothed_rtt, latest_rtt), at least kGranularity.
    pub(crate) fn loss_delay(&self, eighths: u32) -> Duration {
        (self.latest_rtt.max(self.smoothed_rtt) * eighths / 8).max(GRANULARITY)
    }

    /// The persistent congestion duration (RFC 9002 §7.6.1) with
    /// kPersistentCongestionThreshold 3.
    pub(crate) fn persistent_congestion_duration(&self) -> Duration {
        self.pto_base(true) * 3
    }
}
