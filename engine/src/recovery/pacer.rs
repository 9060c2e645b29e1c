//! A token-bucket pacer (RFC 9002 §7.7).
//!
//! Tokens are bytes. They refill at the pacing rate, 1.25 * cwnd /
//! smoothed_rtt (N = 1.25 so that the window is not underused because of
//! timer slack), up to a burst of `BURST_PACKETS` full-size datagrams, and
//! every in-flight packet sent spends its size. A packet is released when a
//! full-size datagram's worth of tokens is there, so the bucket may go into
//! debt by less than one datagram.

use std::time::{Duration, Instant};

/// How many full-size datagrams may leave back to back (RFC 9002 §7.7
/// allows a small burst; 10 matches the initial window).
pub(crate) const BURST_PACKETS: usize = 10;

/// Pacing gain N as a fraction (RFC 9002 §7.7: N = 1.25).
const GAIN_NUM: u128 = 5;
const GAIN_DEN: u128 = 4;

#[derive(Debug)]
pub(crate) struct Pacer {
    enabled: bool,
    /// Bytes available at `updated`; negative is debt.
    tokens: f64,
    updated: Option<Instant>,
    mss: usize,
}

impl Pacer {
    pub(crate) fn new(enabled: bool, mss: usize) -> Self {
        Pacer {
            enabled,
            tokens: (BURST_PACKETS * mss) as f64,
            updated: None,
            mss,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn set_mss(&mut self, mss: usize) {
        self.mss = mss;
        self.tokens = self.tokens.min(self.capacity());
    }

    fn capacity(&self) -> f64 {
        (BURST_PACKETS * self.mss) as f64
    }

    /// The pacing rate in bytes per second for a window and RTT.
    pub(crate) fn rate(cwnd: usize, srtt: Duration) -> u64 {
        let nanos = srtt.as_nanos().max(1);
        let r = cwnd as u128 * GAIN_NUM * 1_000_000_000 / (GAIN_DEN * nanos);
        r.min(u64::MAX as u128) as u64
    }

    fn tokens_at(&self, now: Instant, rate: u64) -> f64 {
        match self.updated {
            None => self.tokens,
            Some(t) => {
                let dt = now.saturating_duration_since(t).as_secs_f64();
                (self.tokens + dt * rate as f64).min(self.capacity())
            }
        }
    }

    /// Spends `size` bytes sent at `now`.
    pub(crate) fn on_sent(&mut self, size: usize, now: Instant, rate: u64) {
        if !self.enabled {
            return;
        }
        self.tokens = self.tokens_at(now, rate) - size as f64;
        self.updated = Some(now);
    }

    /// Bytes the pacer lets leave back to back at `now` (0 in debt).
    pub(crate) fn burst_at(&self, now: Instant, rate: u64) -> usize {
        self.tokens_at(now, rate).max(0.0) as usize
    }

    /// When the next full-size datagram may leave: `now` when pacing is
    /// disabled or tokens are there.
    pub(crate) fn next_send_time(&self, now: Instant, rate: u64) -> Instant {
        if !self.enabled {
            return now;
        }
        let tokens = self.tokens_at(now, rate);
        let need = self.mss as f64 - tokens;
        if need <= 0.0 || rate == 0 {
            return now;
        }
        // Round up to the next nanosecond so the caller never wakes early.
        let nanos = (need * 1e9 / rate as f64).ceil();
        now + Duration::from_nanos(nanos.min(u64::MAX as f64) as u64)
    }
}
