//! Packet number spaces (RFC 9000 §12.3): keys, received packet numbers,
//! ACK state and the crypto stream of each.

use std::time::Instant;

use crate::crypto::{DirectionalKeys, PacketKey};
use crate::ranges::RangeSet;
use crate::recovery::Epoch;
use crate::stream::{RecvBuf, SendBuf};

/// How many ACK ranges we remember and report; older ones are dropped
/// (the peer has most likely seen them acknowledged already).
pub(crate) const MAX_ACK_RANGES: usize = 32;

/// Largest amount of out-of-order CRYPTO data buffered per level.
pub(crate) const MAX_CRYPTO_BUFFER: u64 = 256 * 1024;

/// The CRYPTO streams of one encryption level.
pub(crate) struct CryptoStreams {
    /// Outgoing CRYPTO data.
    pub(crate) send: SendBuf,
    /// Incoming CRYPTO data.
    pub(crate) recv: RecvBuf,
}

impl Default for CryptoStreams {
    fn default() -> Self {
        CryptoStreams {
            send: SendBuf::new_crypto(),
            recv: RecvBuf::new_crypto(MAX_CRYPTO_BUFFER),
        }
    }
}

/// The CRYPTO streams of a space, or nothing once the space is discarded
/// (a discarded space holds no memory). Reading a discarded slot sees
/// empty streams; writing one re-creates them, which the connection never
/// does after discarding.
pub(crate) struct CryptoSlot(Option<Box<CryptoStreams>>);

impl std::ops::Deref for CryptoSlot {
    type Target = CryptoStreams;

    fn deref(&self) -> &CryptoStreams {
        static EMPTY: std::sync::LazyLock<CryptoStreams> =
            std::sync::LazyLock::new(CryptoStreams::default);
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

impl std::ops::DerefMut for CryptoSlot {
    fn deref_mut(&mut self) -> &mut CryptoStreams {
        self.0.get_or_insert_with(Box::default)
    }
}

/// One packet number space.
pub(crate) struct PacketSpace {
    /// Keys to open the peer's packets (boxed: most spaces spend most of
    /// their life without keys).
    pub(crate) open: Option<Box<DirectionalKeys>>,
    /// Keys to seal ours.
    pub(crate) seal: Option<Box<DirectionalKeys>>,
    /// Next packet number to send.
    pub(crate) next_pkt_num: u64,
    /// Largest packet number received, and when.
    pub(crate) largest_rx: Option<(u64, Instant)>,
    /// Received packet numbers still worth acknowledging.
    pub(crate) recv_pkt_need_ack: RangeSet,
    /// Every packet number received (duplicate detection).
    pub(crate) recv_pkt_num: RangeSet,
    /// Whether an ack-eliciting packet arrived since our last ACK.
    pub(crate) ack_elicited: bool,
    /// Ack-eliciting packets received since our last ACK.
    pub(crate) ack_eliciting_unacked: u32,
    /// An ack-eliciting packet arrived out of order or after a gap: ACK
    /// without delay (RFC 9000 §13.2.1).
    pub(crate) ack_now: bool,
    /// When the first unacknowledged ack-eliciting packet arrived.
    pub(crate) first_unacked_at: Option<Instant>,
    /// CRYPTO data of this level, both ways; freed with the space.
    pub(crate) crypto: CryptoSlot,
    /// Whether the space's keys were discarded (RFC 9001 §4.9).
    pub(crate) discarded: bool,
    /// PTO probes still to send in this space.
    pub(crate) probes: usize,
}

impl PacketSpace {
    pub(crate) fn new(epoch: Epoch) -> Self {
        let _ = epoch;
        PacketSpace {
            open: None,
            seal: None,
            next_pkt_num: 0,
            largest_rx: None,
            recv_pkt_need_ack: RangeSet::new(MAX_ACK_RANGES),
            recv_pkt_num: RangeSet::new(MAX_ACK_RANGES * 4),
            ack_elicited: false,
            ack_eliciting_unacked: 0,
            ack_now: false,
            first_unacked_at: None,
            crypto: CryptoSlot(Some(Box::default())),
            discarded: false,
            probes: 0,
        }
    }

    /// Discards keys and state when the space is done (RFC 9001 §4.9).
    pub(crate) fn discard(&mut self) {
        self.open = None;
        self.seal = None;
        self.discarded = true;
        self.ack_elicited = false;
        self.ack_now = false;
        self.probes = 0;
        // Free every buffer the space held.
        self.crypto = CryptoSlot(None);
        self.recv_pkt_need_ack = RangeSet::new(0);
        self.recv_pkt_num = RangeSet::new(0);
    }
}

/// 1-RTT key update state (RFC 9001 §6).
pub(crate) struct KeyUpdate {
    /// The current key phase bit.
    pub(crate) phase: bool,
    /// Opening key of the next phase, derived ahead so that a peer's
    /// update is detected without timing side channels.
    pub(crate) next_open: Option<PacketKey>,
    /// Opening key of the previous phase, kept for reordered packets until
    /// `prev_expiry`.
    pub(crate) prev_open: Option<(PacketKey, Instant)>,
    /// Whether we updated and wait for an acknowledgement in the new phase
    /// before updating again (RFC 9001 §6.1).
    pub(crate) pending_ack: bool,
    /// First packet number we sent in the current phase.
    pub(crate) first_sent_pn: Option<u64>,
    /// First packet number received in the current phase.
    pub(crate) first_recv_pn: Option<u64>,
}

impl KeyUpdate {
    pub(crate) fn new() -> Self {
        KeyUpdate {
            phase: false,
            next_open: None,
            prev_open: None,
            pending_ack: false,
            first_sent_pn: None,
            first_recv_pn: None,
        }
    }
}
