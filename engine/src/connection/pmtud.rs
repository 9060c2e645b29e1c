//! Datagram packetization-layer path MTU discovery (DPLPMTUD, RFC 8899, as
//! RFC 9000 §14.3 applies it to QUIC): the connection starts at the size
//! every QUIC path carries (1200 bytes, RFC 9000 §14) and probes larger
//! sizes with PING + PADDING packets; an acknowledged probe raises the
//! size, a size whose probes are all lost bounds the search from above.
//!
//! The search tries the largest allowed size first (most paths carry it:
//! one round trip and done), then halves the interval between the largest
//! size known to pass and the largest still possible until it is narrower
//! than [`GRANULARITY`]. One probe is in flight at a time. A lost probe
//! says nothing about congestion (RFC 9000 §14.4): the connection records
//! probes outside congestion control's loss response.

/// The size every QUIC path supports (RFC 9000 §14: 1200 bytes of UDP
/// payload).
pub(crate) const BASE_PLPMTU: usize = 1200;

/// Probes of one size before it counts as too large (RFC 8899 §5.1.2:
/// MAX_PROBES, default 3).
pub(crate) const MAX_PROBES: u8 = 3;

/// The search stops when the sizes left to try span fewer bytes than this.
pub(crate) const GRANULARITY: usize = 16;

/// How long a finished search that stopped below the allowed maximum
/// waits before probing for more (RFC 8899 §5.1.1: PMTU_RAISE_TIMER, 600
/// s by default): routes change.
pub(crate) const PMTU_RAISE_TIMER: std::time::Duration = std::time::Duration::from_secs(600);

/// Consecutive PTOs after which a path whose size was raised counts as a
/// black hole for that size (RFC 8899 §4.3: the path's MTU may have
/// shrunk): the search starts again from [`BASE_PLPMTU`].
pub(crate) const BLACK_HOLE_PTOS: u32 = 3;

/// The search state of one path.
#[derive(Debug, Clone)]
pub(crate) struct Pmtud {
    /// Largest UDP payload known to get through.
    confirmed: usize,
    /// Largest size still possible: the allowed maximum, lowered below
    /// each size that failed.
    high: usize,
    /// Whether a size failed: then the search halves intervals.
    failed_any: bool,
    /// The size being probed, how many of its probes were lost, and
    /// whether one is in flight.
    probe: Option<Probe>,
}

#[derive(Debug, Clone, Copy)]
struct Probe {
    size: usize,
    lost: u8,
    in_flight: bool,
}

impl Pmtud {
    /// A search from [`BASE_PLPMTU`] up to `max` (the smaller of our
    /// configured maximum and the peer's max_udp_payload_size).
    pub(crate) fn new(max: usize) -> Pmtud {
        Pmtud {
            confirmed: BASE_PLPMTU,
            high: max.max(BASE_PLPMTU),
            failed_any: false,
            probe: None,
        }
    }

    /// A search for more than `confirmed`, which the path carries, up to
    /// `max` (after [`PMTU_RAISE_TIMER`]).
    pub(crate) fn resume(confirmed: usize, max: usize) -> Pmtud {
        Pmtud {
            confirmed: confirmed.max(BASE_PLPMTU),
            ..Pmtud::new(max)
        }
    }

    /// The largest size known to pass: what packets use.
    pub(crate) fn current(&self) -> usize {
        self.confirmed
    }

    /// Whether the search is over.
    pub(crate) fn done(&self) -> bool {
        self.probe.is_none() && self.high < self.confirmed + GRANULARITY
    }

    /// The size of the probe to send now: `None` while one is in flight or
    /// once the search is over.
    pub(crate) fn due(&self) -> Option<usize> {
        match self.probe {
            Some(p) if p.in_flight => None,
            Some(p) => Some(p.size),
            None if self.done() => None,
            // The allowed maximum first; after a failure, halfway.
            None if !self.failed_any => Some(self.high),
            None => Some(self.confirmed + (self.high - self.confirmed).div_ceil(2)),
        }
    }

    /// A probe of `size` went out.
    pub(crate) fn on_sent(&mut self, size: usize) {
        match self.probe.as_mut() {
            Some(p) if p.size == size => p.in_flight = true,
            _ => {
                self.probe = Some(Probe {
                    size,
                    lost: 0,
                    in_flight: true,
                })
            }
        }
    }

    /// A probe of `size` was acknowledged: the path carries it. Only the
    /// probe of this search counts (one sent on a path the connection
    /// has left says nothing about this one).
    pub(crate) fn on_acked(&mut self, size: usize) {
        if self.probe.is_some_and(|p| p.size == size) {
            self.probe = None;
            self.confirmed = self.confirmed.max(size);
        }
    }

    /// A probe of `size` was declared lost. After [`MAX_PROBES`] losses
    /// the size counts as too large.
    pub(crate) fn on_lost(&mut self, size: usize) {
        let Some(p) = self.probe.as_mut().filter(|p| p.size == size) else {
            return;
        };
        p.in_flight = false;
        p.lost += 1;
        if p.lost >= MAX_PROBES {
            self.probe = None;
            self.failed_any = true;
            self.high = (size - 1).max(self.confirmed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a path that carries `mtu` bytes; returns the
    /// result and the sizes probed, in order.
    fn search(max: usize, mtu: usize) -> (usize, Vec<usize>) {
        let mut s = Pmtud::new(max);
        let mut probed = Vec::new();
        while let Some(size) = s.due() {
            assert!(probed.len() < 64, "the search must end: {probed:?}");
            probed.push(size);
            s.on_sent(size);
            assert_eq!(s.due(), None, "one probe in flight at a time");
            if size <= mtu {
                s.on_acked(size);
            } else {
                s.on_lost(size);
            }
        }
        assert!(s.done());
        (s.current(), probed)
    }

    #[test]
    fn a_path_that_carries_the_maximum_takes_one_probe() {
        assert_eq!(search(1472, 1500), (1472, vec![1472]));
        assert_eq!(search(1472, 1472), (1472, vec![1472]));
    }

    #[test]
    fn a_smaller_path_is_found_within_the_granularity() {
        for mtu in [1200, 1201, 1280, 1350, 1400, 1450, 1471] {
            let (got, probed) = search(1472, mtu);
            assert!(
                got <= mtu && got + GRANULARITY > mtu,
                "mtu {mtu}: {got} {probed:?}"
            );
            // Each failed size is probed MAX_PROBES times.
            assert_eq!(probed.iter().filter(|&&s| s == 1472).count(), 3);
            assert!(probed.len() <= 3 * 6 + 6, "{probed:?}");
        }
    }

    #[test]
    fn a_resumed_search_starts_from_what_passed() {
        let mut s = Pmtud::resume(1300, 1472);
        assert_eq!((s.current(), s.due()), (1300, Some(1472)));
        s.on_sent(1472);
        s.on_acked(1472);
        assert_eq!((s.current(), s.due()), (1472, None));
        // Nothing more to find: over at once.
        assert!(Pmtud::resume(1472, 1472).done());
    }

    #[test]
    fn nothing_to_search_at_or_below_the_base() {
        for max in [0, 1000, 1200, 1210] {
            let s = Pmtud::new(max);
            assert_eq!(s.due(), None, "{max}");
            assert_eq!(s.current(), BASE_PLPMTU);
        }
    }

    #[test]
    fn stale_reports_change_nothing() {
        let mut s = Pmtud::new(1472);
        s.on_sent(1472);
        // Reports of sizes not being probed (a search restarted on a new
        // path hears of the old one's probes).
        s.on_lost(1300);
        s.on_acked(1250);
        assert_eq!(s.current(), BASE_PLPMTU);
        assert_eq!(s.due(), None);
        s.on_lost(1472);
        assert_eq!(s.due(), Some(1472), "probed again after a loss");
        s.on_sent(1472);
        s.on_acked(1472);
        assert_eq!((s.current(), s.due()), (1472, None));
        // Late news of the earlier probe of that size.
        s.on_lost(1472);
        s.on_acked(1472);
        assert_eq!((s.current(), s.due()), (1472, None));
    }
}
