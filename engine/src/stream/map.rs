//! The set of a connection's streams: ID rules and stream limits
//! (RFC 9000 §2.1, §3.2, §4.6), per-stream initial flow-control limits from
//! the transport parameters (§18.2), and the sets the connection polls
//! (readable, writable, flushable in priority order, almost full, blocked).
//!
//! The sets are maintained incrementally: after changing a stream, the
//! connection calls [`StreamMap::update`] with its ID.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::{is_bidi, is_local, RecvBuf, SendBuf, Stream};
use crate::ranges::RangeSet;
use crate::transport_params::TransportParams;
use crate::{Error, Result};

/// Stream-related transport parameters of one endpoint (RFC 9000 §18.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StreamLimits {
    /// initial_max_stream_data_bidi_local: for bidirectional streams opened
    /// by the endpoint that sent the parameters.
    pub(crate) max_stream_data_bidi_local: u64,
    /// initial_max_stream_data_bidi_remote: for bidirectional streams opened
    /// by the endpoint that received the parameters.
    pub(crate) max_stream_data_bidi_remote: u64,
    /// initial_max_stream_data_uni: for unidirectional streams opened by the
    /// endpoint that received the parameters.
    pub(crate) max_stream_data_uni: u64,
    /// initial_max_streams_bidi.
    pub(crate) max_streams_bidi: u64,
    /// initial_max_streams_uni.
    pub(crate) max_streams_uni: u64,
}

impl From<&TransportParams> for StreamLimits {
    fn from(tp: &TransportParams) -> Self {
        StreamLimits {
            max_stream_data_bidi_local: tp.initial_max_stream_data_bidi_local,
            max_stream_data_bidi_remote: tp.initial_max_stream_data_bidi_remote,
            max_stream_data_uni: tp.initial_max_stream_data_uni,
            max_streams_bidi: tp.initial_max_streams_bidi,
            max_streams_uni: tp.initial_max_streams_uni,
        }
    }
}

/// RFC 9000 §4.6: a stream count above 2^60 cannot be expressed as a stream
/// ID; the frame/transport-parameter parsers reject it, we clamp too.
const MAX_STREAMS_LIMIT: u64 = 1 << 60;

/// The bits of `Stream::sets`: membership of each set the map keeps.
const READABLE: u8 = 1;
const WRITABLE: u8 = 2;
const ALMOST_FULL: u8 = 4;
const BLOCKED: u8 = 8;
/// Membership of the flushable queues (kept in sync by `update` and
/// `remove_flushable`).
const FLUSHABLE_BIT: u8 = 16;

/// The memberships that depend on the receive half of a stream, and those
/// that depend on its send half (`Stream::is_readable` and so on each look
/// at one half only).
pub(crate) const RECV_BITS: u8 = READABLE | ALMOST_FULL;
pub(crate) const SEND_BITS: u8 = WRITABLE | BLOCKED | FLUSHABLE_BIT;

/// A stream's set memberships after a change, and before.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Membership {
    bits: u8,
    old: u8,
    urgency: u8,
    incremental: bool,
}

impl Membership {
    /// A collected stream: it leaves every set.
    const GONE: Membership = Membership {
        bits: 0,
        old: 0xff,
        urgency: 0,
        incremental: false,
    };

    /// `s`'s memberships among those of `halves` ([`RECV_BITS`],
    /// [`SEND_BITS`] or both).
    #[inline]
    fn compute(s: &Stream, halves: u8) -> u8 {
        let mut bits = 0;
        if halves & RECV_BITS != 0 {
            bits |= (u8::from(s.is_readable()) * READABLE)
                | (u8::from(s.is_almost_full()) * ALMOST_FULL);
        }
        if halves & SEND_BITS != 0 {
            bits |= (u8::from(s.is_writable()) * WRITABLE)
                | (u8::from(s.blocked_at().is_some()) * BLOCKED)
                | (u8::from(s.is_flushable()) * FLUSHABLE_BIT);
        }
        bits
    }

    /// Recomputes `s`'s memberships and records them in it.
    pub(crate) fn refresh(s: &mut Stream) -> Membership {
        Membership::refresh_half(s, RECV_BITS | SEND_BITS)
    }

    /// [`Membership::refresh`] after a change to one half of the stream
    /// only (`half`: [`RECV_BITS`] or [`SEND_BITS`]): the memberships of
    /// the other half cannot have changed and are kept. (Every packet
    /// changes one half: this halves the work.)
    #[inline]
    pub(crate) fn refresh_half(s: &mut Stream, half: u8) -> Membership {
        let bits = (s.sets & !half) | Membership::compute(s, half);
        debug_assert_eq!(
            bits,
            Membership::compute(s, RECV_BITS | SEND_BITS),
            "a membership of the other half changed"
        );
        let old = std::mem::replace(&mut s.sets, bits);
        Membership {
            bits,
            old,
            urgency: s.urgency,
            incremental: s.incremental,
        }
    }
}

/// A keyed multiply-rotate hash for stream IDs: SipHash costs more than
/// the lookup it guards. The key is random per map, and the peer can open
/// at most MAX_STREAMS streams, which bounds any collision games.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdHash(u64);

impl IdHash {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x7461_7274_6500_0001);
        IdHash(h.finish() | 1)
    }
}

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { key: self.0, h: 0 }
    }
}

/// Hasher state of [`IdHash`].
#[derive(Debug)]
pub(crate) struct IdHasher {
    key: u64,
    h: u64,
}

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.h
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.h = (self.h ^ v ^ self.key)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

/// Counts for one stream direction type (bidi or uni).
#[derive(Clone, Debug, Default)]
struct Counts {
    /// Local streams opened (highest local index + 1).
    local_opened: u64,
    /// The peer's limit on our streams (MAX_STREAMS / initial_max_streams).
    peer_max: u64,
    /// Limit to report in STREAMS_BLOCKED, if due.
    blocked: Option<u64>,
    blocked_reported: Option<u64>,
    /// Peer streams opened (highest peer index + 1).
    peer_opened: u64,
    /// Limit we advertised.
    local_max: u64,
    /// Limit we will advertise: raised as peer streams are collected.
    local_max_next: u64,
    /// Our initial limit, sets the MAX_STREAMS update threshold.
    local_initial: u64,
}

impl Counts {
    fn should_update(&self) -> bool {
        let threshold = (self.local_initial / 2).max(1);
        self.local_max_next >= self.local_max.saturating_add(threshold)
    }
}

/// Streams of one urgency waiting to send.
#[derive(Clone, Debug, Default)]
struct Bucket {
    /// Non-incremental streams, served one at a time in stream ID order.
    fifo: BTreeSet<u64>,
    /// Incremental streams, served round-robin.
    rr: VecDeque<u64>,
}

/// A connection's streams.
#[derive(Debug)]
pub(crate) struct StreamMap {
    streams: HashMap<u64, Stream, IdHash>,
    is_server: bool,
    /// Our transport parameters (what we advertised).
    local: StreamLimits,
    /// The peer's transport parameters.
    peer: StreamLimits,
    /// Bound for stream receive-window auto-tuning.
    max_stream_window: u64,
    /// Cap on bytes buffered per send half.
    send_cap: u64,
    bidi: Counts,
    uni: Counts,
    /// Collected stream indexes (ID >> 2), one set per ID type (ID & 3).
    collected: [RangeSet; 4],
    readable: BTreeSet<u64>,
    writable: BTreeSet<u64>,
    almost_full: BTreeSet<u64>,
    blocked: BTreeSet<u64>,
    flushable: BTreeMap<u8, Bucket>,
    /// Where each flushable stream is queued: (urgency, incremental).
    flushable_at: HashMap<u64, (u8, bool), IdHash>,
    /// Consumed-credit from dropped data not yet taken by the connection.
    pub(super) discarded: u64,
}

impl StreamMap {
    /// A map for an endpoint whose transport parameters are `local` (the
    /// stream counts come separately so a caller can override them); the
    /// peer's limits are 0 until [`StreamMap::apply_peer_params`]. Send
    /// buffers are capped at `max_stream_window` bytes each.
    pub(crate) fn new(
        max_streams_bidi: u64,
        max_streams_uni: u64,
        local: &TransportParams,
        is_server: bool,
        max_stream_window: u64,
    ) -> Self {
        let mut limits = StreamLimits::from(local);
        limits.max_streams_bidi = max_streams_bidi;
        limits.max_streams_uni = max_streams_uni;
        StreamMap::with_limits(is_server, limits, max_stream_window, max_stream_window)
    }

    /// Applies the peer's transport parameters.
    pub(crate) fn apply_peer_params(&mut self, peer: &TransportParams) {
        self.set_peer_limits(StreamLimits::from(peer));
    }

    /// A map for an endpoint advertising `local`; the peer's limits are 0
    /// until [`StreamMap::set_peer_limits`].
    pub(crate) fn with_limits(
        is_server: bool,
        local: StreamLimits,
        max_stream_window: u64,
        send_cap: u64,
    ) -> Self {
        let counts = |initial: u64| Counts {
            local_max: initial.min(MAX_STREAMS_LIMIT),
            local_max_next: initial.min(MAX_STREAMS_LIMIT),
            local_initial: initial.min(MAX_STREAMS_LIMIT),
            ..Counts::default()
        };
        StreamMap {
            streams: HashMap::with_hasher(IdHash::new()),
            is_server,
            local,
            peer: StreamLimits::default(),
            max_stream_window,
            send_cap,
            bidi: counts(local.max_streams_bidi),
            uni: counts(local.max_streams_uni),
            collected: Default::default(),
            readable: BTreeSet::new(),
            writable: BTreeSet::new(),
            almost_full: BTreeSet::new(),
            blocked: BTreeSet::new(),
            flushable: BTreeMap::new(),
            flushable_at: HashMap::with_hasher(IdHash::new()),
            discarded: 0,
        }
    }

    /// Applies the peer's transport parameters (or remembered 0-RTT ones);
    /// limits only ever grow, also on existing streams.
    pub(crate) fn set_peer_limits(&mut self, peer: StreamLimits) {
        self.peer = peer;
        self.update_peer_max_streams_bidi(peer.max_streams_bidi);
        self.update_peer_max_streams_uni(peer.max_streams_uni);
        let is_server = self.is_server;
        for s in self.streams.values_mut() {
            let max = Self::send_limit(&peer, is_local(s.id, is_server), s.is_bidi);
            if let Some(send) = s.send.as_mut() {
                send.update_max_data(max);
            }
        }
        let ids: Vec<u64> = self.streams.keys().copied().collect();
        for id in ids {
            self.update(id);
        }
    }

    /// Our send limit for a new stream, from the peer's parameters
    /// (RFC 9000 §18.2: the peer's bidi_local covers streams it opened, its
    /// bidi_remote the ones we opened, its uni the ones we opened).
    fn send_limit(peer: &StreamLimits, local: bool, bidi: bool) -> u64 {
        match (local, bidi) {
            (true, true) => peer.max_stream_data_bidi_remote,
            (false, true) => peer.max_stream_data_bidi_local,
            (true, false) => peer.max_stream_data_uni,
            (false, false) => 0,
        }
    }

    /// Builds stream `id` with its initial limits.
    fn new_stream(&self, id: u64) -> Stream {
        let local = is_local(id, self.is_server);
        let bidi = is_bidi(id);
        // Our receive limit, from our parameters (RFC 9000 §18.2).
        let recv_max = match (local, bidi) {
            (true, true) => Some(self.local.max_stream_data_bidi_local),
            (false, true) => Some(self.local.max_stream_data_bidi_remote),
            (true, false) => None,
            (false, false) => Some(self.local.max_stream_data_uni),
        };
        let recv = recv_max.map(|m| RecvBuf::new(m, self.max_stream_window.max(m)));
        let send = (local || bidi)
            .then(|| SendBuf::new(Self::send_limit(&self.peer, local, bidi), self.send_cap));
        Stream::new(id, self.is_server, recv, send)
    }

    fn counts_mut(&mut self, id: u64) -> &mut Counts {
        if is_bidi(id) {
            &mut self.bidi
        } else {
            &mut self.uni
        }
    }

    /// Whether a stream this endpoint opened in both directions is still
    /// open (a request whose response has not all arrived, say).
    pub(crate) fn has_open_local_bidi(&self) -> bool {
        self.streams
            .keys()
            .any(|&id| is_bidi(id) && is_local(id, self.is_server))
    }

    /// The stream, if it exists (not collected, not only implicitly open).
    pub(crate) fn get(&self, id: u64) -> Option<&Stream> {
        self.streams.get(&id)
    }

    /// The stream, if it exists.
    /// Whether this is the server's map.
    pub(crate) fn is_server(&self) -> bool {
        self.is_server
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Stream> {
        self.streams.get_mut(&id)
    }

    /// Returns stream `id`, creating it if allowed. `is_local_request`:
    /// the application asked (writing/opening); otherwise a peer's frame
    /// names the stream. Errors: `Done` for a collected stream (late frames
    /// are ignored), `StreamLimit` beyond a limit (for a local request the
    /// STREAMS_BLOCKED flag is set), `InvalidStreamState(id)` for a local
    /// stream never opened named by the peer, or a peer stream not yet
    /// opened named by the application.
    pub(crate) fn get_or_create(&mut self, id: u64, is_local_request: bool) -> Result<&mut Stream> {
        if self.streams.contains_key(&id) {
            return self.streams.get_mut(&id).ok_or(Error::InvalidState);
        }
        if self.is_collected(id) {
            return Err(Error::Done);
        }
        let idx = id >> 2;
        let local = is_local(id, self.is_server);
        let c = self.counts_mut(id);
        if local {
            if is_local_request {
                if idx >= c.peer_max {
                    // RFC 9000 §4.6: "Endpoints MUST NOT exceed the limit
                    // set by their peer."
                    c.blocked = Some(c.peer_max);
                    return Err(Error::StreamLimit);
                }
                c.local_opened = c.local_opened.max(idx + 1);
            } else if idx >= c.local_opened {
                // RFC 9000 §19.8, §19.5, §19.10: a frame for "a locally
                // initiated stream that has not yet been created" is a
                // STREAM_STATE_ERROR.
                return Err(Error::InvalidStreamState(id));
            }
        } else if idx >= c.peer_opened {
            if is_local_request {
                return Err(Error::InvalidStreamState(id));
            }
            // RFC 9000 §4.6: "An endpoint that receives a frame with a
            // stream ID exceeding the limit it has sent MUST treat this as a
            // connection error of type STREAM_LIMIT_ERROR".
            if idx >= c.local_max {
                return Err(Error::StreamLimit);
            }
            // RFC 9000 §3.2: opening a stream implicitly opens all lower
            // streams of the same type; they are materialized on first use.
            c.peer_opened = idx + 1;
        }
        let stream = self.new_stream(id);
        self.streams.insert(id, stream);
        self.update(id);
        self.streams.get_mut(&id).ok_or(Error::InvalidState)
    }

    /// For a peer frame that needs our receive half (STREAM, RESET_STREAM,
    /// STREAM_DATA_BLOCKED): `Ok(None)` for a collected stream (ignore the
    /// frame), InvalidStreamState for our unidirectional stream (RFC 9000
    /// §19.8, §19.4, §19.13: "send-only stream" is a STREAM_STATE_ERROR).
    pub(crate) fn get_or_create_recv(&mut self, id: u64) -> Result<Option<&mut Stream>> {
        if !is_bidi(id) && is_local(id, self.is_server) {
            return Err(Error::InvalidStreamState(id));
        }
        match self.get_or_create(id, false) {
            Ok(s) => Ok(Some(s)),
            Err(Error::Done) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// For a peer frame that needs our send half (STOP_SENDING,
    /// MAX_STREAM_DATA): `Ok(None)` for a collected stream, and
    /// InvalidStreamState for the peer's unidirectional stream (RFC 9000
    /// §19.5, §19.10: "receive-only stream").
    pub(crate) fn get_or_create_send(&mut self, id: u64) -> Result<Option<&mut Stream>> {
        if !is_bidi(id) && !is_local(id, self.is_server) {
            return Err(Error::InvalidStreamState(id));
        }
        match self.get_or_create(id, false) {
            Ok(s) => Ok(Some(s)),
            Err(Error::Done) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The ID of the next local stream of a type not yet opened.
    pub(crate) fn next_local_id(&self, bidi: bool) -> u64 {
        let c = if bidi { &self.bidi } else { &self.uni };
        (c.local_opened << 2) | if bidi { 0 } else { 2 } | u64::from(self.is_server)
    }

    /// Local bidirectional streams we may still open.
    pub(crate) fn peer_streams_left_bidi(&self) -> u64 {
        self.bidi.peer_max.saturating_sub(self.bidi.local_opened)
    }

    /// Local unidirectional streams we may still open.
    pub(crate) fn peer_streams_left_uni(&self) -> u64 {
        self.uni.peer_max.saturating_sub(self.uni.local_opened)
    }

    /// Applies MAX_STREAMS (bidi). RFC 9000 §4.6: "MAX_STREAMS frames that
    /// do not increase the stream limit MUST be ignored."
    pub(crate) fn update_peer_max_streams_bidi(&mut self, v: u64) {
        Self::raise_peer_max(&mut self.bidi, v);
    }

    /// Applies MAX_STREAMS (uni); decreases are ignored.
    pub(crate) fn update_peer_max_streams_uni(&mut self, v: u64) {
        Self::raise_peer_max(&mut self.uni, v);
    }

    fn raise_peer_max(c: &mut Counts, v: u64) {
        let v = v.min(MAX_STREAMS_LIMIT);
        if v > c.peer_max {
            c.peer_max = v;
            c.blocked = None;
        }
    }

    /// The bidi limit we advertised.
    pub(crate) fn max_streams_bidi(&self) -> u64 {
        self.bidi.local_max
    }

    /// The uni limit we advertised.
    pub(crate) fn max_streams_uni(&self) -> u64 {
        self.uni.local_max
    }

    /// Whether a MAX_STREAMS (bidi) is due: collected peer streams freed at
    /// least half the initial limit.
    pub(crate) fn should_update_max_streams_bidi(&self) -> bool {
        self.bidi.should_update()
    }

    /// Whether a MAX_STREAMS (uni) is due.
    pub(crate) fn should_update_max_streams_uni(&self) -> bool {
        self.uni.should_update()
    }

    /// Commits the raised bidi limit; returns the value for MAX_STREAMS.
    pub(crate) fn update_max_streams_bidi(&mut self) -> u64 {
        self.bidi.local_max = self.bidi.local_max_next;
        self.bidi.local_max
    }

    /// Commits the raised uni limit; returns the value for MAX_STREAMS.
    pub(crate) fn update_max_streams_uni(&mut self) -> u64 {
        self.uni.local_max = self.uni.local_max_next;
        self.uni.local_max
    }

    /// The limit for STREAMS_BLOCKED (bidi), once per limit, when opening a
    /// stream failed on it.
    pub(crate) fn streams_blocked_bidi(&self) -> Option<u64> {
        self.bidi
            .blocked
            .filter(|&b| self.bidi.blocked_reported != Some(b))
    }

    /// The limit for STREAMS_BLOCKED (uni), once per limit.
    pub(crate) fn streams_blocked_uni(&self) -> Option<u64> {
        self.uni
            .blocked
            .filter(|&b| self.uni.blocked_reported != Some(b))
    }

    /// Records that STREAMS_BLOCKED (bidi) was sent.
    pub(crate) fn streams_blocked_bidi_sent(&mut self) {
        self.bidi.blocked_reported = self.bidi.blocked;
    }

    /// Records that STREAMS_BLOCKED (uni) was sent.
    pub(crate) fn streams_blocked_uni_sent(&mut self) {
        self.uni.blocked_reported = self.uni.blocked;
    }

    /// Slots the stream tables have room for (tests check they shrink).
    #[cfg(test)]
    pub(crate) fn table_capacity(&self) -> usize {
        self.streams.capacity() + self.flushable_at.capacity()
    }

    /// Whether `id` was collected (late frames for it are ignored).
    pub(crate) fn is_collected(&self, id: u64) -> bool {
        self.collected[(id & 3) as usize].contains(id >> 2)
    }

    /// Forgets stream `id` (both directions done); a peer stream gives the
    /// peer one more stream of credit. Returns whether it existed.
    pub(crate) fn collect(&mut self, id: u64) -> bool {
        if self.streams.remove(&id).is_none() {
            return false;
        }
        self.update(id);
        // A burst of streams grew the tables (a slot holds a whole stream,
        // some 400 bytes): once most are gone, give the room back, so a
        // connection idle after the burst holds what its live streams
        // need (none when no stream is left). Shrinking to twice what is
        // left keeps this amortised.
        let live = self.streams.len();
        if live == 0 || self.streams.capacity() > 4 * live + 8 {
            self.streams.shrink_to(2 * live);
        }
        let queued = self.flushable_at.len();
        if queued == 0 || self.flushable_at.capacity() > 4 * queued + 8 {
            self.flushable_at.shrink_to(2 * queued);
        }
        let idx = id >> 2;
        self.collected[(id & 3) as usize].insert(idx..idx + 1);
        if !is_local(id, self.is_server) {
            let c = self.counts_mut(id);
            c.local_max_next = (c.local_max_next + 1).min(MAX_STREAMS_LIMIT);
        }
        true
    }

    /// Sets the RFC 9218 priority of `id`, opening it if it is a local
    /// stream not yet open (as quiche's `stream_priority`).
    pub(crate) fn set_priority(&mut self, id: u64, urgency: u8, incremental: bool) -> Result<()> {
        let s = self.get_or_create(id, true)?;
        s.urgency = urgency;
        s.incremental = incremental;
        self.remove_flushable(id);
        self.update(id);
        Ok(())
    }

    /// Recomputes `id`'s membership in every set; call after changing it.
    pub(crate) fn update(&mut self, id: u64) {
        self.update_sets(id);
    }

    /// [`StreamMap::update`], returning whether the stream is flushable
    /// and its (urgency, incremental).
    fn update_sets(&mut self, id: u64) -> (bool, (u8, bool)) {
        // One lookup: the new bits are stored as they are computed.
        let m = self
            .streams
            .get_mut(&id)
            .map_or(Membership::GONE, Membership::refresh);
        self.apply(id, m)
    }

    /// Moves `id` between the sets as `m` (from [`Membership::refresh`] on
    /// it) says; returns whether it is flushable and its (urgency,
    /// incremental). Callers holding the stream already refresh it
    /// themselves and call this, saving a lookup.
    #[inline]
    pub(super) fn apply(&mut self, id: u64, m: Membership) -> (bool, (u8, bool)) {
        let flushable = m.bits & FLUSHABLE_BIT != 0;
        let prio = (m.urgency, m.incremental);
        // Nearly always nothing changed (a packet's worth of data sent or
        // received): no call into the set updates.
        if m.bits == m.old {
            return (flushable, prio);
        }
        self.apply_changes(id, m)
    }

    /// [`StreamMap::apply`] when some membership changed.
    fn apply_changes(&mut self, id: u64, m: Membership) -> (bool, (u8, bool)) {
        let Membership {
            bits,
            old,
            urgency,
            incremental,
        } = m;
        let flushable = bits & FLUSHABLE_BIT != 0;
        let prio = (urgency, incremental);
        let changed = bits ^ old;
        if changed != 0 {
            if changed & READABLE != 0 {
                set_member(&mut self.readable, id, bits & READABLE != 0);
            }
            if changed & WRITABLE != 0 {
                set_member(&mut self.writable, id, bits & WRITABLE != 0);
            }
            if changed & ALMOST_FULL != 0 {
                set_member(&mut self.almost_full, id, bits & ALMOST_FULL != 0);
            }
            if changed & BLOCKED != 0 {
                set_member(&mut self.blocked, id, bits & BLOCKED != 0);
            }
        }
        if changed & FLUSHABLE_BIT == 0 {
            return (flushable, prio);
        }
        match (flushable, self.flushable_at.contains_key(&id)) {
            (true, false) => {
                self.flushable_at.insert(id, prio);
                let b = self.flushable.entry(prio.0).or_default();
                if prio.1 {
                    b.rr.push_back(id);
                } else {
                    b.fifo.insert(id);
                }
            }
            (false, true) => self.remove_flushable(id),
            _ => {}
        }
        (flushable, prio)
    }

    fn remove_flushable(&mut self, id: u64) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.sets &= !FLUSHABLE_BIT;
        }
        let Some((urgency, incremental)) = self.flushable_at.remove(&id) else {
            return;
        };
        if let Some(b) = self.flushable.get_mut(&urgency) {
            if incremental {
                b.rr.retain(|&x| x != id);
            } else {
                b.fifo.remove(&id);
            }
            if b.rr.is_empty() && b.fifo.is_empty() {
                self.flushable.remove(&urgency);
                if self.flushable.is_empty() {
                    // As in `set_member`: no root node kept for nothing.
                    self.flushable = BTreeMap::new();
                }
            }
        }
    }

    /// Records that `id` sent a frame: an incremental stream goes to the
    /// back of its urgency's round-robin; then memberships are refreshed.
    pub(crate) fn on_flushed(&mut self, id: u64) {
        let m = self
            .streams
            .get_mut(&id)
            .map_or(Membership::GONE, Membership::refresh);
        self.on_flushed_with(id, m);
    }

    /// [`StreamMap::on_flushed`] for a caller that refreshed the stream
    /// itself.
    #[inline]
    pub(crate) fn on_flushed_with(&mut self, id: u64, m: Membership) {
        let (flushable, (urgency, incremental)) = self.apply(id, m);
        if !(flushable && incremental) {
            return;
        }
        if let Some(b) = self.flushable.get_mut(&urgency) {
            // Fast path: the stream just served is at the front.
            if b.rr.front() == Some(&id) {
                b.rr.rotate_left(1);
            } else if let Some(pos) = b.rr.iter().position(|&x| x == id) {
                b.rr.remove(pos);
                b.rr.push_back(id);
            }
        }
    }

    /// Streams with data to send, in send order: lower urgency first;
    /// within one urgency, non-incremental streams by ID, then incremental
    /// ones round-robin (RFC 9218 §4).
    pub(crate) fn flushable(&self) -> impl Iterator<Item = u64> + '_ {
        self.flushable
            .values()
            .flat_map(|b| b.fifo.iter().copied().chain(b.rr.iter().copied()))
    }

    /// The next stream to send from.
    pub(crate) fn peek_flushable(&self) -> Option<u64> {
        // (`flushable().next()` without the iterator chain: called for
        // every packet.)
        self.flushable
            .values()
            .find_map(|b| b.fifo.first().or(b.rr.front()).copied())
    }

    /// Streams the application can read, by ID (a snapshot, so the
    /// application can read while iterating).
    pub(crate) fn readable(&self) -> Vec<u64> {
        self.readable.iter().copied().collect()
    }

    /// Streams the application can write (stream-level capacity only: the
    /// caller checks connection credit), by ID.
    pub(crate) fn writable(&self) -> Vec<u64> {
        self.writable.iter().copied().collect()
    }

    /// Streams needing MAX_STREAM_DATA.
    pub(crate) fn almost_full(&self) -> impl Iterator<Item = u64> + '_ {
        self.almost_full.iter().copied()
    }

    /// Streams needing STREAM_DATA_BLOCKED, with the limit to report.
    pub(crate) fn blocked(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.blocked
            .iter()
            .filter_map(|id| Some((*id, self.streams.get(id)?.blocked_at()?)))
    }

    /// Whether the application can read from some stream.
    pub(crate) fn has_readable(&self) -> bool {
        !self.readable.is_empty()
    }

    /// Whether a stream needs STREAM_DATA_BLOCKED.
    pub(crate) fn has_blocked(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Whether any stream has something to send.
    pub(crate) fn has_flushable(&self) -> bool {
        !self.flushable_at.is_empty()
    }

    /// Number of live streams.
    pub(crate) fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether there are no live streams.
    pub(crate) fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Live stream IDs (unordered).
    pub(crate) fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.streams.keys().copied()
    }
}

fn set_member(set: &mut BTreeSet<u64>, id: u64, member: bool) {
    if member {
        set.insert(id);
    } else {
        set.remove(&id);
        // An emptied B-tree keeps its root node: free it, an idle
        // connection holds no set memory.
        if set.is_empty() {
            *set = BTreeSet::new();
        }
    }
}
