//! 0-RTT anti-replay for servers (RFC 8446 §8, RFC 9001 §9.2): a record
//! of the ClientHellos that offered 0-RTT, so that one seen again gets no
//! 0-RTT (its handshake goes on in 1-RTT).
//!
//! The record holds the first PSK binder of each ClientHello (RFC 8446
//! §4.2.11: an HMAC over the ClientHello, so a replayed copy carries the
//! same one and a forged one cannot match a genuine one). BoringSSL accepts
//! 0-RTT only while the ticket age the client claims is within 60 seconds
//! of the age the server computes (RFC 8446 §8.3's freshness check), so a
//! captured ClientHello can get 0-RTT during at most 120 seconds of real
//! time: binders are kept [`DEFAULT_WINDOW`] by default, a little more.
//! The record is bounded: once full, ClientHellos get no 0-RTT until
//! entries expire (refusing is always safe; remembering too little is
//! not).
//!
//! Servers share one record by sharing the guard (`Config::set_replay_guard`
//! on every worker's config). Servers in other processes or on other
//! machines that accept the same tickets need a record they share; this
//! one does not reach them.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a ClientHello is remembered by default: BoringSSL's ±60 s
/// ticket-age tolerance, plus a margin.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(130);

/// How many ClientHellos are remembered at most by default (some 6 MB).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The bytes of a binder kept (binders are HMAC outputs, 32 or 48 bytes;
/// their first 32 bytes identify them).
const KEY_LEN: usize = 32;

/// A shared record of the ClientHellos that offered 0-RTT; clones share
/// it. See the module documentation.
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    inner: Arc<Guard>,
}

#[derive(Debug)]
pub(crate) struct Guard {
    window: Duration,
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    seen: HashSet<[u8; KEY_LEN]>,
    /// The same keys in the order they came, with when, for expiry.
    order: VecDeque<(Instant, [u8; KEY_LEN])>,
    /// ClientHellos refused 0-RTT as replays, or for a full record.
    refused: u64,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new(DEFAULT_WINDOW, DEFAULT_CAPACITY)
    }
}

impl ReplayGuard {
    /// A record remembering each ClientHello for `window`, at most
    /// `capacity` of them (at least 1).
    pub fn new(window: Duration, capacity: usize) -> Self {
        ReplayGuard {
            inner: Arc::new(Guard {
                window,
                capacity: capacity.max(1),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// How many ClientHellos are remembered now.
    pub fn len(&self) -> usize {
        self.inner.lock().seen.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many ClientHellos were refused 0-RTT: replays, and any that came
    /// while the record was full.
    pub fn refused(&self) -> u64 {
        self.inner.lock().refused
    }

    /// The shared record itself (for the TLS context that consults it).
    pub(crate) fn shared(&self) -> Arc<Guard> {
        Arc::clone(&self.inner)
    }
}

impl Guard {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the record
        // inconsistent in a way that matters (at worst an entry is
        // missing from `order`): go on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the ClientHello with PSK binder `binder` at `now`; whether
    /// it may have 0-RTT: false if it was seen within the window, or if the
    /// record is full.
    pub(crate) fn first_use(&self, binder: &[u8], now: Instant) -> bool {
        let mut key = [0u8; KEY_LEN];
        let n = binder.len().min(KEY_LEN);
        key[..n].copy_from_slice(&binder[..n]);
        let mut s = self.lock();
        while let Some(&(at, old)) = s.order.front() {
            if now.saturating_duration_since(at) < self.window {
                break;
            }
            s.order.pop_front();
            s.seen.remove(&old);
        }
        if s.seen.contains(&key) || s.seen.len() >= self.capacity {
            s.refused += 1;
            return false;
        }
        s.seen.insert(key);
        s.order.push_back((now, key));
        true
    }
}

/// The first binder of a `pre_shared_key` extension's body as a client
/// sends it (RFC 8446 §4.2.11: `OfferedPsks`, the identities then the
/// binders, each list with a two-byte length, each binder with a one-byte
/// length); None if it is malformed (the handshake then fails anyway).
pub(crate) fn first_binder(ext: &[u8]) -> Option<&[u8]> {
    let mut b = crate::octets::Octets::with_slice(ext);
    let identities = b.get_u16().ok()?;
    b.skip(usize::from(identities)).ok()?;
    let binders = b.get_u16().ok()?;
    let mut list = crate::octets::Octets::with_slice(b.get_bytes(usize::from(binders)).ok()?);
    list.get_bytes_with_u8_length()
        .ok()
        .filter(|x| !x.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_gets_0rtt_once_within_the_window() {
        let g = ReplayGuard::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        let a = [1u8; 32];
        let b = [2u8; 32];
        assert!(g.inner.first_use(&a, t0));
        assert!(!g.inner.first_use(&a, t0 + Duration::from_secs(9)));
        assert!(g.inner.first_use(&b, t0 + Duration::from_secs(9)));
        assert_eq!((g.len(), g.refused()), (2, 1));
        // Past the window the entry is gone (the freshness check refuses
        // such a ClientHello by then).
        assert!(g.inner.first_use(&a, t0 + Duration::from_secs(10)));
        assert_eq!(g.len(), 2);
        // 48-byte binders (SHA-384) are told apart by their first 32.
        let long = [3u8; 48];
        assert!(g.inner.first_use(&long, t0 + Duration::from_secs(11)));
        assert!(!g.inner.first_use(&long, t0 + Duration::from_secs(11)));
    }

    #[test]
    fn a_full_record_refuses_until_entries_expire() {
        let g = ReplayGuard::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        assert!(g.inner.first_use(&[1; 32], t0));
        assert!(g.inner.first_use(&[2; 32], t0 + Duration::from_secs(1)));
        assert!(!g.inner.first_use(&[3; 32], t0 + Duration::from_secs(2)));
        assert_eq!(g.refused(), 1);
        // The first expires: room for one.
        assert!(g.inner.first_use(&[3; 32], t0 + Duration::from_secs(10)));
        assert!(!g.inner.first_use(&[4; 32], t0 + Duration::from_secs(10)));
    }

    #[test]
    fn binders_are_found_in_offered_psks() {
        // One identity (3 bytes + age), two binders (32 bytes and 1).
        let mut ext = vec![0x00, 0x09, 0x00, 0x03, 0xaa, 0xbb, 0xcc, 0, 0, 0, 1];
        ext.extend_from_slice(&[0x00, 0x23, 0x20]);
        ext.extend_from_slice(&[0x5a; 32]);
        ext.extend_from_slice(&[0x01, 0x77]);
        assert_eq!(first_binder(&ext), Some(&[0x5a; 32][..]));
        // Truncated anywhere: none.
        for n in 0..ext.len() - 3 {
            assert_eq!(first_binder(&ext[..n]), None, "{n}");
        }
        // An empty binder: none.
        assert_eq!(first_binder(&[0, 0, 0, 1, 0]), None);
    }
}
