//! CUBIC window growth (RFC 9438), in bytes.
//!
//! The RFC states its formulas in segments; here windows are bytes and the
//! cubic term is scaled by the maximum datagram size, which is the same
//! curve.

use std::time::{Duration, Instant};

/// C, the cubic scaling constant (RFC 9438 §4.2).
pub(crate) const C: f64 = 0.4;
/// β_cubic, the multiplicative decrease factor (RFC 9438 §4.6).
pub(crate) const BETA: f64 = 0.7;

#[derive(Debug, Default)]
pub(crate) struct Cubic {
    /// W_max in bytes: the window before the last reduction, lowered by
    /// fast convergence (RFC 9438 §4.7).
    pub(crate) w_max: f64,
    /// cwnd before the last reduction, for the Reno-friendly α switch
    /// (RFC 9438 §4.3).
    cwnd_prior: f64,
    /// K in seconds (RFC 9438 §4.2).
    pub(crate) k: f64,
    /// Start of the current congestion avoidance stage.
    pub(crate) epoch_start: Option<Instant>,
    /// W_est in bytes (RFC 9438 §4.3).
    pub(crate) w_est: f64,
    /// Growth below one byte carried to the next ACK.
    frac: f64,
}

impl Cubic {
    /// W_cubic(t) in bytes (RFC 9438 §4.2, eq. 1).
    pub(crate) fn w_cubic(&self, t: f64, mss: usize) -> f64 {
        let d = t - self.k;
        C * d * d * d * mss as f64 + self.w_max
    }

    /// A congestion event: remembers W_max and returns the new ssthresh
    /// (RFC 9438 §4.6, §4.7), not below `min_window`.
    pub(crate) fn on_congestion_event(&mut self, cwnd: usize, min_window: usize) -> usize {
        let cwnd_f = cwnd as f64;
        // RFC 9438 §4.7 fast convergence: a flow whose W_max shrinks
        // releases bandwidth to newer flows.
        self.w_max = if cwnd_f < self.w_max {
            cwnd_f * (1.0 + BETA) / 2.0
        } else {
            cwnd_f
        };
        self.cwnd_prior = cwnd_f;
        self.epoch_start = None;
        self.frac = 0.0;
        // β = 0.7 in integers so that whole windows stay exact.
        (cwnd * 7 / 10).max(min_window)
    }

    /// Persistent congestion acts like a timeout: the next congestion
    /// avoidance stage starts with K = 0 and W_max = its starting cwnd
    /// (RFC 9438 §4.8).
    pub(crate) fn on_persistent_congestion(&mut self) {
        self.w_max = 0.0;
        self.epoch_start = None;
        self.frac = 0.0;
    }

    /// Moves the epoch forward by a period in which the sender was
    /// application-limited, so that the curve does not count it (RFC 9438
    /// §5.8).
    pub(crate) fn shift_epoch(&mut self, d: Duration) {
        if let Some(e) = self.epoch_start.as_mut() {
            *e += d;
        }
    }

    fn start_epoch(&mut self, cwnd: usize, mss: usize, now: Instant) {
        let cwnd_f = cwnd as f64;
        self.epoch_start = Some(now);
        self.w_est = cwnd_f;
        self.frac = 0.0;
        if self.w_max <= cwnd_f {
            // Congestion avoidance without a reduction before it (HyStart++
            // exit, persistent congestion): start at the plateau.
            self.w_max = cwnd_f;
            self.k = 0.0;
        } else {
            self.k = ((self.w_max - cwnd_f) / mss as f64 / C).cbrt();
        }
    }

    /// `acked` bytes were acknowledged in congestion avoidance; returns the
    /// new cwnd (RFC 9438 §4.2 - §4.5).
    pub(crate) fn on_ack(
        &mut self,
        cwnd: usize,
        acked: usize,
        mss: usize,
        srtt: Duration,
        now: Instant,
    ) -> usize {
        if self.epoch_start.is_none() {
            self.start_epoch(cwnd, mss, now);
        }
        let epoch = self.epoch_start.unwrap_or(now);
        let cwnd_f = cwnd as f64;
        let t = now.saturating_duration_since(epoch).as_secs_f64();
        // RFC 9438 §4.2: target = W_cubic(t + RTT), kept in [cwnd, 1.5 cwnd].
        let target = self
            .w_cubic(t + srtt.as_secs_f64(), mss)
            .clamp(cwnd_f, 1.5 * cwnd_f);
        // RFC 9438 §4.3: W_est grows like Reno with α_cubic, and with α = 1
        // once it reached the window before the last reduction.
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            3.0 * (1.0 - BETA) / (1.0 + BETA)
        };
        self.w_est += alpha * mss as f64 * acked as f64 / cwnd_f;
        if self.w_cubic(t, mss) < self.w_est {
            // Reno-friendly region: cwnd = W_est.
            self.frac = 0.0;
            return cwnd.max(self.w_est as usize);
        }
        // Concave / convex regions (RFC 9438 §4.4, §4.5):
        // cwnd += (target - cwnd) / cwnd per segment acknowledged.
        self.frac += (target - cwnd_f) * acked as f64 / cwnd_f;
        let whole = self.frac.floor();
        self.frac -= whole;
        cwnd + whole as usize
    }
}
