//! Connection-level flow control (RFC 9000 §4.1) and the receive-window
//! auto-tuning shared with per-stream receive buffers (§4.2).

use std::time::{Duration, Instant};

use crate::{Error, Result};

/// A receive window that grows when the application drains it quickly.
///
/// Auto-tuning (RFC 9000 §4.2 leaves it to implementations): when a window
/// update is due less than two RTTs after the previous one, the peer is
/// sending faster than one window per two round trips, so the window
/// doubles, up to `max`.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    /// Current window size.
    pub(crate) size: u64,
    /// Upper bound for auto-tuning.
    pub(crate) max: u64,
    /// When the limit was last raised.
    last_update: Option<Instant>,
}

impl Window {
    pub(crate) fn new(size: u64, max: u64) -> Self {
        Window {
            size,
            max: max.max(size),
            last_update: None,
        }
    }

    /// Records an update at `now`, doubling the window if the previous one
    /// was less than `2 * rtt` ago.
    pub(crate) fn autotune(&mut self, now: Instant, rtt: Duration) {
        if let Some(last) = self.last_update {
            if now.saturating_duration_since(last) < rtt.saturating_mul(2) {
                self.size = self.size.saturating_mul(2).min(self.max);
            }
        }
        self.last_update = Some(now);
    }
}

/// Connection-level flow control, both directions.
///
/// Receive side: the connection calls [`FlowControl::on_recv`] with
/// the growth of each stream's highest received offset (that is what the
/// peer's MAX_DATA budget counts, §4.1) and [`FlowControl::add_consumed`]
/// with bytes the application read or that were discarded (reset, stopped
/// streams), then sends MAX_DATA when [`FlowControl::should_update`].
///
/// Send side: [`FlowControl::add_sent`] with the bytes accepted into
/// stream send buffers (new offsets only, never retransmissions), bounded
/// by [`FlowControl::send_capacity`].
#[derive(Clone, Debug)]
pub(crate) struct FlowControl {
    max_data: u64,
    window: Window,
    received: u64,
    consumed: u64,

    peer_max_data: u64,
    sent: u64,
    blocked_reported: Option<u64>,
}

impl FlowControl {
    /// `max_data` is our initial_max_data; `max_window` bounds auto-tuning.
    /// The peer's limit is 0 until [`FlowControl::update_peer_max`] applies
    /// its initial_max_data.
    pub(crate) fn new(max_data: u64, max_window: u64) -> Self {
        FlowControl {
            max_data,
            window: Window::new(max_data, max_window),
            received: 0,
            consumed: 0,
            peer_max_data: 0,
            sent: 0,
            blocked_reported: None,
        }
    }

    /// The limit we advertised (initial_max_data or last MAX_DATA).
    pub(crate) fn max_data(&self) -> u64 {
        self.max_data
    }

    /// Current receive window.
    pub(crate) fn window(&self) -> u64 {
        self.window.size
    }

    /// Total received (sum of the streams' highest offsets).
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Total consumed by the application or discarded.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Accounts `n` newly received bytes (growth of highest offsets).
    pub(crate) fn on_recv(&mut self, n: u64) -> Result<()> {
        let total = self.received.saturating_add(n);
        // RFC 9000 §4.1: "A receiver MUST close the connection with an error
        // of type FLOW_CONTROL_ERROR if the sender violates the advertised
        // connection or stream data limits".
        if total > self.max_data {
            return Err(Error::FlowControl);
        }
        self.received = total;
        Ok(())
    }

    /// Accounts `n` bytes consumed (read or discarded).
    pub(crate) fn add_consumed(&mut self, n: u64) {
        self.consumed = self.consumed.saturating_add(n).min(self.received);
    }

    /// Whether a MAX_DATA is due: more than half the window consumed.
    pub(crate) fn should_update(&self) -> bool {
        self.max_data.saturating_sub(self.consumed) < self.window.size / 2
    }

    /// Raises the limit to `consumed + window` (auto-tuning the window
    /// first) and returns the value to send in MAX_DATA.
    pub(crate) fn update_max_data(&mut self, now: Instant, rtt: Duration) -> u64 {
        self.window.autotune(now, rtt);
        self.max_data = self
            .max_data
            .max(self.consumed.saturating_add(self.window.size));
        self.max_data
    }

    /// Makes sure the window is at least `min` (e.g. 1.5x a stream window
    /// that grew), bounded by the configured maximum.
    pub(crate) fn ensure_window_lower_bound(&mut self, min: u64) {
        if min > self.window.size {
            self.window.size = min.min(self.window.max);
        }
    }

    /// The peer's limit for us.
    pub(crate) fn peer_max_data(&self) -> u64 {
        self.peer_max_data
    }

    /// Applies a MAX_DATA from the peer. RFC 9000 §4.1: "A sender MUST
    /// ignore any MAX_STREAM_DATA or MAX_DATA frames that do not increase
    /// flow control limits."
    pub(crate) fn update_peer_max(&mut self, max: u64) {
        if max > self.peer_max_data {
            self.peer_max_data = max;
        }
    }

    /// Bytes we may still send.
    pub(crate) fn send_capacity(&self) -> usize {
        usize::try_from(self.peer_max_data.saturating_sub(self.sent)).unwrap_or(usize::MAX)
    }

    /// Total new bytes sent (accepted into stream buffers).
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Accounts `n` new bytes sent; callers stay within
    /// [`FlowControl::send_capacity`].
    pub(crate) fn add_sent(&mut self, n: u64) {
        self.sent = self.sent.saturating_add(n);
    }

    /// Whether all credit is used.
    pub(crate) fn blocked(&self) -> bool {
        self.sent >= self.peer_max_data
    }

    /// The limit to report in DATA_BLOCKED, once per limit, when all credit
    /// is used.
    pub(crate) fn blocked_at(&self) -> Option<u64> {
        (self.sent >= self.peer_max_data && self.blocked_reported != Some(self.peer_max_data))
            .then_some(self.peer_max_data)
    }

    /// Records that DATA_BLOCKED was sent for the current limit.
    pub(crate) fn blocked_sent(&mut self) {
        self.blocked_reported = Some(self.peer_max_data);
    }
}
