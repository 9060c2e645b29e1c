//! Receiving: datagrams → packets → frames (`handle_*`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::handshake::MAX_EARLY_PACKETS;
use super::{
    same_address, CloseState, Connection, ConnectionError, EarlyData, RecvInfo, SentFrame,
};
use crate::cid::ConnectionId;
use crate::crypto::TAG_LEN;
use crate::error::{Error, Result};
use crate::frame::{self, Frame};
use crate::octets::Octets;
use crate::packet::{self, Header, Type};
use crate::recovery::{Epoch, TimeoutOutcome};
use smallvec::SmallVec;

/// What an acknowledged packet carried that needs work (`handle_ack`).
enum AckedItem {
    /// `[start, end)` of stream `id` (and its FIN if set).
    Run(u64, u64, u64, bool),
    /// Another frame for `on_frame_acked`.
    Frame(SentFrame),
}

/// Whether a frame of `frame_type` in a packet of type `ty` goes straight
/// to its stream (`handle_stream_frame`), without a `Frame` built: STREAM
/// frames (most frames) in the packets that may carry them (RFC 9000
/// §12.4: 0-RTT and 1-RTT), unless a qlog is on (`logged`: it logs every
/// frame, which takes the general way).
#[inline(always)]
fn stream_fast_path(frame_type: u64, ty: Type, logged: bool) -> bool {
    (0x08..=0x0f).contains(&frame_type) && matches!(ty, Type::Short | Type::ZeroRTT) && !logged
}

/// Smallest datagram a server accepts with an Initial (RFC 9000 §14.1).
const MIN_INITIAL_DATAGRAM: usize = 1200;

impl Connection {
    /// [`Connection::recv`] at an explicit time.
    pub fn recv_at(&mut self, buf: &mut [u8], info: RecvInfo, now: Instant) -> Result<usize> {
        if buf.is_empty() {
            return Err(Error::BufferTooShort);
        }
        if matches!(self.close, CloseState::Closed | CloseState::Draining { .. }) {
            return Err(Error::Done);
        }
        let len = buf.len();
        if self.hello_pending {
            self.send_client_hello(now)?;
        }
        // RFC 9000 §9: "If a client receives packets from an unknown server
        // address, the client MUST discard these packets."
        if !self.is_server && !same_address(info.from, self.peer_addr) {
            self.stats.dropped += 1;
            return Ok(len);
        }
        if self.is_server && !self.address_validated {
            self.bytes_recv_unvalidated = self
                .bytes_recv_unvalidated
                .saturating_add(crate::saturating_u32(len));
        }
        self.stats.recv_bytes += len as u64;
        let mut off = 0;
        let mut processed_any = false;
        while off < len {
            match self.handle_packet(&mut buf[off..], info, len, now) {
                Ok(n) => {
                    off += n;
                    processed_any = true;
                }
                Err(Error::Done) => {
                    // Dropped the rest of the datagram.
                    break;
                }
                Err(e) => {
                    // A fatal protocol error: close with it.
                    self.close_with_error(e, 0, "protocol error", now);
                    return Err(e);
                }
            }
            if matches!(self.close, CloseState::Draining { .. } | CloseState::Closed) {
                break;
            }
        }
        if !processed_any {
            // Stateless reset detection (RFC 9000 §10.3.1): the last 16
            // bytes of an undecryptable datagram.
            if len >= 21 && self.cids.is_stateless_reset(&buf[len - 16..]) {
                tracing::debug!(trace_id = %self.trace_id, "stateless reset received");
                self.qlog_closed(now, "remote", false, 0, b"", "stateless_reset");
                self.peer_error = Some(ConnectionError {
                    is_app: false,
                    error_code: 0,
                    reason: b"stateless reset".to_vec(),
                });
                self.enter_draining(now);
            }
        }
        if self.handshake_confirmed && self.tls.is_some() {
            self.release_lingering_tls(now);
        }
        if self.early_packets.is_some() {
            self.recv_early_packets(now)?;
        }
        Ok(len)
    }

    /// Processes one packet at the start of `buf`. Returns how many bytes
    /// it took; `Err(Done)` drops the rest of the datagram; other errors
    /// close the connection.
    pub(super) fn handle_packet(
        &mut self,
        buf: &mut [u8],
        info: RecvInfo,
        datagram_len: usize,
        now: Instant,
    ) -> Result<usize> {
        if buf[0] & 0x80 == 0 {
            return self.handle_short_packet(buf, info, datagram_len, now);
        }
        let dcid_len = self.cids.scid().len();
        let total = buf.len();
        let parsed = {
            let mut b = Octets::with_slice(buf);
            Header::from_bytes(&mut b, dcid_len).map(|h| (h.into_owned(), b.off()))
        };
        let Ok((hdr, hdr_len)) = parsed else {
            self.stats.dropped += 1;
            return Err(Error::Done);
        };

        // A long header of another version is not for this connection
        // (RFC 9000 §5.2: after the handshake starts, drop it).
        if hdr.ty != Type::Short
            && hdr.ty != Type::VersionNegotiation
            && hdr.version != self.version
        {
            self.stats.dropped += 1;
            return Err(Error::Done);
        }

        match hdr.ty {
            Type::VersionNegotiation => {
                self.handle_version_negotiation(&hdr)?;
                return Err(Error::Done);
            }
            Type::Retry => {
                self.handle_retry(&hdr, &buf[..total], now)?;
                return Err(Error::Done);
            }
            _ => (),
        }

        // Packets for another connection ID are not ours (RFC 9000 §5.2).
        // (A server's first Initial carries the DCID the client chose.)
        let first_initial = self.is_server && hdr.ty == Type::Initial;
        if !first_initial && !self.dcid_is_ours(&hdr.dcid) {
            self.stats.dropped += 1;
            return Err(Error::Done);
        }

        let epoch = match hdr.ty {
            Type::Initial => Epoch::Initial,
            Type::Handshake => Epoch::Handshake,
            Type::ZeroRTT if !self.is_server || self.zero_rtt_keys.is_none() => {
                let pkt_len = long_packet_len(buf, hdr_len)?;
                // Before the ClientHello is whole its 0-RTT keys cannot be
                // known: keep a few such packets until they can (RFC 9001
                // §4.1.4 lets a server buffer them; §4.6.1: reordering
                // brings them early).
                if self.is_server
                    && self.early == EarlyData::Enabled
                    && self.spaces[Epoch::Handshake as usize].open.is_none()
                    && !self.spaces[Epoch::Handshake as usize].discarded
                {
                    let q = self.early_packets.get_or_insert_with(Default::default);
                    if q.len() < MAX_EARLY_PACKETS {
                        q.push((buf[..pkt_len].to_vec(), info, datagram_len));
                        return Ok(pkt_len);
                    }
                }
                // Not (or no longer) accepting 0-RTT: skip the packet (RFC
                // 9000 §12.2 lets us drop it and go on with the datagram;
                // RFC 9001 §4.6.2: "When rejecting 0-RTT, a server MUST
                // NOT process any 0-RTT packets, even if it could").
                self.stats.dropped += 1;
                return Ok(pkt_len);
            }
            _ => Epoch::Application,
        };

        // The packet's extent: long headers carry a Length.
        let (pn_off, pkt_end) = {
            let mut b = Octets::with_slice(&buf[hdr_len..]);
            let plen = b.get_varint().map_err(|_| Error::Done)? as usize;
            let pn_off = hdr_len + b.off();
            if plen > total - pn_off || plen < 1 + TAG_LEN {
                self.stats.dropped += 1;
                return Err(Error::Done);
            }
            (pn_off, pn_off + plen)
        };

        if hdr.ty == Type::Initial {
            if self.is_server {
                // RFC 9000 §14.1: "A server MUST discard an Initial packet
                // that is carried in a UDP datagram with a payload that is
                // smaller than the smallest allowed maximum datagram size
                // of 1200 bytes."
                if datagram_len < MIN_INITIAL_DATAGRAM {
                    self.stats.dropped += 1;
                    return Err(Error::Done);
                }
                if self.spaces[Epoch::Initial as usize].open.is_none()
                    && !self.spaces[Epoch::Initial as usize].discarded
                {
                    self.server_first_initial(&hdr, now)?;
                }
            } else if !hdr.token.as_deref().unwrap_or_default().is_empty() {
                // RFC 9000 §17.2.2: a client that receives an Initial with
                // a non-empty token MUST either discard the packet or
                // generate a PROTOCOL_VIOLATION.
                self.stats.dropped += 1;
                return Err(Error::Done);
            }
        }

        let zero_rtt = hdr.ty == Type::ZeroRTT;
        let sp = &self.spaces[epoch as usize];
        if sp.discarded || sp.open.is_none() && !zero_rtt {
            // Keys not (yet, or any more) available: drop this packet but
            // keep going with the datagram (RFC 9001 §4.1.4 allows
            // buffering; we rely on retransmission).
            self.stats.dropped += 1;
            return Ok(pkt_end);
        }

        let pkt = &mut buf[..pkt_end];
        let largest = sp.largest_rx.map(|(pn, _)| pn);
        let keys = if zero_rtt {
            self.zero_rtt_keys.as_ref()
        } else {
            sp.open.as_ref()
        };
        let decrypted = keys
            .ok_or(Error::Done)
            .and_then(|keys| packet::unprotect(pkt, pn_off, largest, keys));
        let Ok(u) = decrypted else {
            // Undecryptable: drop; a long-header packet has a known end.
            self.stats.dropped += 1;
            return Ok(pkt_end);
        };
        let hdr = (hdr.ty, &hdr.dcid[..], &hdr.scid[..]);
        self.handle_payload(buf, hdr, epoch, u, false, info, datagram_len, now)?;
        Ok(pkt_end)
    }

    /// [`Connection::handle_packet`] for a short header (RFC 9000 §17.3):
    /// nearly every packet, parsed without building a [`Header`].
    #[inline(always)]
    fn handle_short_packet(
        &mut self,
        buf: &mut [u8],
        info: RecvInfo,
        datagram_len: usize,
        now: Instant,
    ) -> Result<usize> {
        let dcid_len = self.cids.scid().len();
        let total = buf.len();
        // The DCID is copied out: `buf` is decrypted in place.
        let mut dcid = [0u8; crate::MAX_CONN_ID_LEN];
        let Some(d) = buf.get(1..1 + dcid_len).filter(|_| dcid_len <= dcid.len()) else {
            self.stats.dropped += 1;
            return Err(Error::Done);
        };
        dcid[..dcid_len].copy_from_slice(d);
        let dcid = &dcid[..dcid_len];
        // Packets for another connection ID are not ours (RFC 9000 §5.2).
        if !self.dcid_is_ours(dcid) {
            self.stats.dropped += 1;
            return Err(Error::Done);
        }
        let sp = &self.spaces[Epoch::Application as usize];
        if sp.discarded || sp.open.is_none() {
            // Keys not (yet) available: see `handle_packet`.
            self.stats.dropped += 1;
            return Ok(total);
        }
        let largest = sp.largest_rx.map(|(pn, _)| pn);
        let Ok((u, is_new_phase)) = self.open_short(buf, 1 + dcid_len, largest, now) else {
            // Undecryptable: a short header runs to the end of the
            // datagram, so the rest goes with it.
            self.stats.dropped += 1;
            return Err(Error::Done);
        };
        let hdr = (Type::Short, dcid, &[][..]);
        self.handle_payload(
            buf,
            hdr,
            Epoch::Application,
            u,
            is_new_phase,
            info,
            datagram_len,
            now,
        )?;
        Ok(total)
    }

    /// The part of packet processing after a successful decryption, for
    /// both header forms: `hdr` is the packet's (type, DCID, SCID),
    /// `is_new_phase` whether it opened with the next key phase.
    // Inlined into both callers: the call, with its many arguments, cost
    // as much as a good part of the work for a short packet.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn handle_payload(
        &mut self,
        buf: &mut [u8],
        hdr: (Type, &[u8], &[u8]),
        epoch: Epoch,
        u: packet::Unprotected,
        is_new_phase: bool,
        info: RecvInfo,
        datagram_len: usize,
        now: Instant,
    ) -> Result<()> {
        let (ty, dcid, scid) = hdr;
        let first = buf[0];

        // RFC 9000 §17.2/§17.3.1: "An endpoint MUST treat receipt of a
        // packet that has a non-zero value for these bits after removing
        // both packet and header protection as a connection error of type
        // PROTOCOL_VIOLATION."
        if packet::reserved_bits(first) != 0 {
            return Err(Error::InvalidPacket);
        }

        let sp = &mut self.spaces[epoch as usize];
        // A number above the largest received is new: no lookup (nearly
        // every packet).
        if sp.largest_rx.is_some_and(|(l, _)| u.pn <= l)
            && sp.recv_pkt_num.contains_or_forgotten(u.pn)
        {
            self.stats.dropped += 1;
            return Ok(());
        }
        if is_new_phase {
            self.commit_peer_key_update(u.pn, now)?;
        } else if ty == Type::Short
            && first & 0x04 == u8::from(self.key_update.phase) << 2
            && self.key_update.first_recv_pn.is_none_or(|f| u.pn < f)
        {
            self.key_update.first_recv_pn = Some(u.pn);
        }

        // RFC 9001 §4.9.3: a server may drop 0-RTT keys once a 1-RTT
        // packet arrives (later 0-RTT packets are lost; the client sends
        // their data again in 1-RTT).
        if self.is_server && ty == Type::Short && self.zero_rtt_keys.is_some() {
            self.zero_rtt_keys = None;
        }

        // The peer's address is validated once it sends a Handshake packet
        // (RFC 9000 §8.1); then the server drops Initial keys (RFC 9001
        // §4.9.1).
        if self.is_server && epoch == Epoch::Handshake {
            self.address_validated = true;
            self.discard_space(Epoch::Initial);
        }
        if !self.is_server && !self.got_peer_packet {
            // RFC 9000 §7.2: the client switches to the server's SCID.
            self.got_peer_packet = true;
            self.cids
                .set_initial_dcid(ConnectionId::from_vec(scid.to_vec()), None);
        }
        if self.is_server && !self.got_peer_packet {
            self.got_peer_packet = true;
            self.peer_addr = info.from;
            self.local_addr = info.to;
        }

        let payload_range = u.payload_off..u.payload_off + u.payload_len;
        let logged = self.qlog.is_some().then(|| {
            let pkt_end = u.payload_off + u.payload_len + TAG_LEN;
            (
                super::qlog::packet_type(epoch, ty == Type::ZeroRTT),
                u.pn,
                pkt_end,
            )
        });
        let payload = &mut buf[payload_range];
        let first_frame = payload.first().copied().unwrap_or(0);
        // A packet that starts with a STREAM frame (nearly every packet of
        // a transfer, often its only frame) has it handled here; only what
        // follows goes through the frame loop (same checks: see
        // `handle_frames`).
        let (ack_eliciting, non_probing) =
            if stream_fast_path(first_frame.into(), ty, logged.is_some()) {
                let mut b = Octets::with_slice(payload);
                self.handle_stream_frame(&mut b, now)?;
                let rest = b.off();
                if rest < payload.len() {
                    self.handle_frames(epoch, ty, dcid, &mut payload[rest..], logged, now)?;
                }
                (true, true)
            } else {
                self.handle_frames(epoch, ty, dcid, payload, logged, now)?
            };
        // Challenges of this packet are answered on the path it came on.
        if let Some(q) = self.pending.q_existing() {
            for r in q.path_responses.iter_mut().rev() {
                if r.datagram_len != 0 {
                    break;
                }
                (r.peer, r.local) = (info.from, info.to);
                r.datagram_len = crate::saturating_u32(datagram_len);
            }
        }

        let sp = &mut self.spaces[epoch as usize];
        let newest = sp.largest_rx.is_none_or(|(l, _)| u.pn > l);
        sp.recv_pkt_num.insert(u.pn..u.pn + 1);
        sp.recv_pkt_need_ack.insert(u.pn..u.pn + 1);
        // RFC 9000 §13.2.1: an ack-eliciting packet below the largest
        // received, or above it with packets missing in between, SHOULD be
        // acknowledged without delay (the sender learns of loss or
        // reordering a max_ack_delay sooner).
        let out_of_order = sp.largest_rx.is_some_and(|(l, _)| u.pn < l || u.pn > l + 1);
        if sp.largest_rx.is_none_or(|(l, _)| u.pn > l) {
            sp.largest_rx = Some((u.pn, now));
        }
        if ack_eliciting {
            self.stall_probes = 0;
            let sp = &mut self.spaces[epoch as usize];
            sp.ack_now |= out_of_order;
            sp.ack_elicited = true;
            sp.ack_eliciting_unacked += 1;
            if sp.first_unacked_at.is_none() {
                sp.first_unacked_at = Some(now);
            }
        }
        self.stats.recv += 1;

        // RFC 9000 §10.1: restart the idle timer on every packet processed.
        self.ack_eliciting_sent_since_recv = false;
        self.restart_idle_timer(now);

        // RFC 9000 §9.3: a non-probing packet from a new address, the
        // highest-numbered so far, means the peer moved there (a NAT
        // rebinding, typically): follow it, and validate it.
        if self.is_server
            && epoch == Epoch::Application
            && info.from != self.peer_addr
            && non_probing
            && newest
            && self.handshake_confirmed
        {
            self.on_peer_address_change(info.from, datagram_len, now)?;
        }
        Ok(())
    }

    /// Decodes the STREAM frame at `b` (its type byte first) and hands its
    /// data to its stream, without building a `Frame`; an error closes the
    /// connection as `handle_frames` does.
    #[inline(always)]
    fn handle_stream_frame(&mut self, b: &mut Octets<'_>, now: Instant) -> Result<()> {
        let frame_type = b.get_u8().map_err(|_| Error::InvalidFrame)?;
        let (id, offset, data, fin) = match frame::stream_body(frame_type, b) {
            Ok(f) => f,
            Err(e) => {
                let e = if e == Error::BufferTooShort {
                    Error::InvalidFrame
                } else {
                    e
                };
                self.close_with_error(e, frame_type.into(), "malformed frame", now);
                return Err(e);
            }
        };
        match self.on_stream_frame(id, offset, data, fin) {
            Ok(()) | Err(Error::Done) => Ok(()),
            Err(e) => {
                self.close_with_error(e, frame_type.into(), "frame processing failed", now);
                Err(e)
            }
        }
    }

    /// A STREAM frame's data for its stream.
    #[inline(always)]
    fn on_stream_frame(&mut self, id: u64, offset: u64, data: &[u8], fin: bool) -> Result<()> {
        let newly = self.streams.on_stream_frame(id, offset, data, fin)?;
        // RFC 9000 §4.1: connection-level flow control.
        self.flow.on_recv(newly)?;
        self.credit_discarded();
        Ok(())
    }

    /// The peer now sends from `to` (RFC 9000 §9.3): "it MUST send
    /// subsequent packets to the new peer address and MUST initiate path
    /// validation (Section 8.2)"; until the PATH_RESPONSE comes back it
    /// sends at most three times what it received there (§9.3.1, §8).
    /// Congestion control and RTT restart unless only the port changed
    /// (§9.4).
    fn on_peer_address_change(
        &mut self,
        to: SocketAddr,
        datagram_len: usize,
        now: Instant,
    ) -> Result<()> {
        let from = std::mem::replace(&mut self.peer_addr, to);
        tracing::debug!(trace_id = %self.trace_id, %from, %to, "peer address changed; validating");
        self.switch_dcid_for_new_path();
        if from.ip() != to.ip() {
            self.recovery.reset_for_new_path(now);
            // RFC 9000 §14.3: the new path's MTU is found anew.
            if self.handshake_confirmed {
                self.start_pmtud();
            }
        }
        // Back to the last validated address if this one fails, not to
        // one that was itself still being validated.
        let fallback = self
            .path_validation
            .as_ref()
            .and_then(|v| v.fallback)
            .unwrap_or(from);
        if to == fallback {
            // The peer is back on its validated address (say, after a
            // spoofed packet moved us away): nothing to validate (§9.3,
            // "MAY skip validation of a peer address if that address has
            // been seen recently"; §9.3.2 abandons the spurious one).
            self.path_validation = None;
            self.address_validated = true;
            self.push_path_event(super::PathEvent::PeerMigrated(self.local_addr, to));
            return Ok(());
        }
        self.push_path_event(super::PathEvent::New(self.local_addr, to));
        // RFC 9000 §8.2.4: give up after three times the larger of the
        // current PTO and that of a new path (kInitialRtt 333 ms: ~1 s).
        let pto = self.recovery.pto().max(Duration::from_secs(1));
        self.path_validation = Some(Box::new(super::PathValidation {
            challenges: Vec::new(),
            send: true,
            fallback: Some(fallback),
            deadline: now + 3 * pto,
        }));
        self.address_validated = false;
        self.bytes_recv_unvalidated = crate::saturating_u32(datagram_len);
        self.bytes_sent_unvalidated = 0;
        Ok(())
    }

    /// Whether `dcid` is one of our connection IDs (or, for a server
    /// before the handshake, the client-chosen ODCID).
    fn dcid_is_ours(&self, dcid: &[u8]) -> bool {
        self.cids.scids.iter().any(|e| &e.cid[..] == dcid)
            || (self.is_server && !self.initial_dcid.is_empty() && &self.initial_dcid[..] == dcid)
    }

    /// Opens a 1-RTT packet, trying the next key phase when the bit flips
    /// (RFC 9001 §6.2) and the previous one for reordered packets.
    fn open_short(
        &mut self,
        pkt: &mut [u8],
        pn_off: usize,
        largest: Option<u64>,
        now: Instant,
    ) -> Result<(packet::Unprotected, bool)> {
        let sp = &self.spaces[Epoch::Application as usize];
        let keys = sp.open.as_ref().ok_or(Error::CryptoFail)?;
        // A batch receive computed the mask already (`batch.rs`).
        let (pn, pn_len, phase) = match self
            .batch
            .as_deref_mut()
            .and_then(|b| b.take_recv_mask(pn_off))
        {
            Some(mask) => packet::unprotect_header_masked(pkt, pn_off, largest, &mask)?,
            None => packet::unprotect_header(pkt, pn_off, largest, &keys.hp)?,
        };
        if phase == self.key_update.phase {
            let u = packet::unprotect_payload(pkt, pn_off, pn, pn_len, phase, &keys.packet)?;
            return Ok((u, false));
        }
        // A different phase. Packets from before the current phase (the
        // peer has not switched yet, or they were reordered) open with the
        // previous key while we keep it (RFC 9001 §6.5).
        let before_phase = self.key_update.first_recv_pn.is_none_or(|first| pn < first);
        if before_phase {
            if let Some((prev, expiry)) = &self.key_update.prev_open {
                if now < *expiry {
                    let u = packet::unprotect_payload(pkt, pn_off, pn, pn_len, phase, prev)?;
                    return Ok((u, false));
                }
            }
        }
        // Otherwise the peer initiated a key update (RFC 9001 §6.2): try
        // the next generation, derived once and cached so that a failed
        // attempt costs no extra HKDF work next time.
        if self.key_update.next_open.is_none() {
            let (_, next) = keys.next_packet_key()?;
            self.key_update.next_open = Some(next);
        }
        let next = self
            .key_update
            .next_open
            .as_ref()
            .ok_or(Error::CryptoFail)?;
        let u = packet::unprotect_payload(pkt, pn_off, pn, pn_len, phase, next)?;
        Ok((u, true))
    }

    /// Switches both directions to the next key phase after the peer
    /// initiated an update (RFC 9001 §6.2). `pn` is the first packet of the
    /// new phase.
    fn commit_peer_key_update(&mut self, pn: u64, now: Instant) -> Result<()> {
        self.switch_key_phase(now)?;
        self.key_update.first_recv_pn = Some(pn);
        Ok(())
    }

    /// Moves both directions to the next key generation, keeping the old
    /// opening key for three PTOs for reordered packets (RFC 9001 §6.5).
    pub(crate) fn switch_key_phase(&mut self, now: Instant) -> Result<()> {
        let pto = self.recovery.pto();
        let sp = &mut self.spaces[Epoch::Application as usize];
        let (Some(open), Some(seal)) = (sp.open.as_mut(), sp.seal.as_mut()) else {
            return Err(Error::KeyUpdate);
        };
        let old = open.update_returning_old()?;
        seal.update()?;
        self.key_update.next_open = None;
        self.key_update.prev_open = Some((old, now + 3 * pto));
        self.key_update.phase = !self.key_update.phase;
        self.key_update.first_recv_pn = None;
        self.key_update.first_sent_pn = None;
        self.stats.key_updates += 1;
        Ok(())
    }

    /// Starts a key update (RFC 9001 §6.1). Allowed once the handshake is
    /// confirmed and a packet of the current phase was acknowledged.
    pub fn initiate_key_update(&mut self) -> Result<()> {
        if !self.handshake_confirmed
            || self.key_update.pending_ack
            || !matches!(self.close, CloseState::Open)
        {
            return Err(Error::KeyUpdate);
        }
        // "An endpoint MUST NOT initiate a subsequent key update unless it
        // has received an acknowledgment for a packet that was sent
        // protected with keys from the current key phase."
        let now = self.now_hint();
        self.switch_key_phase(now)?;
        self.key_update.pending_ack = true;
        Ok(())
    }

    pub(super) fn restart_idle_timer(&mut self, now: Instant) {
        // RFC 9000 §10.1: the deadline (at least three PTOs away) is
        // computed from this when asked.
        self.idle_since = Some(now);
    }

    /// Server: the first Initial fixes the ODCID, the client's SCID and
    /// the Initial keys.
    fn server_first_initial(&mut self, hdr: &Header<'_>, now: Instant) -> Result<()> {
        // Without Retry the ODCID is this DCID; with Retry, `accept` gave
        // it and this DCID is the Retry's SCID.
        self.initial_dcid = ConnectionId::from_vec(hdr.dcid.to_vec());
        if self.qlog.is_some() {
            self.qlog_begin(now);
        }
        if self.odcid.is_empty() {
            self.odcid = self.initial_dcid.clone();
        }
        self.cids
            .set_initial_dcid(hdr.scid.clone().into_owned(), None);
        if self
            .local_params
            .original_destination_connection_id
            .is_none()
        {
            self.local_params.original_destination_connection_id = Some(self.odcid.clone());
            self.reset_local_transport_params()?;
        }
        let dcid = self.initial_dcid.clone();
        self.install_initial_keys(&dcid)
    }

    /// Client: a Version Negotiation packet (RFC 9000 §6.2).
    fn handle_version_negotiation(&mut self, hdr: &Header<'_>) -> Result<()> {
        if self.is_server || self.got_peer_packet || self.did_version_negotiation {
            return Ok(());
        }
        // Must echo our IDs.
        if hdr.dcid[..] != self.cids.scid()[..] || hdr.scid[..] != self.odcid[..] {
            return Ok(());
        }
        let versions = hdr.versions.as_deref().unwrap_or_default();
        // RFC 9000 §6.2: "A client MUST discard a Version Negotiation
        // packet that lists the QUIC version selected by the client."
        if versions.contains(&self.version) {
            return Ok(());
        }
        self.did_version_negotiation = true;
        // No version in common: abandon the attempt.
        self.local_error = Some(ConnectionError {
            is_app: false,
            error_code: 0,
            reason: b"version negotiation failed".to_vec(),
        });
        self.close = CloseState::Closed;
        Err(Error::UnknownVersion)
    }

    /// Client: a Retry packet (RFC 9000 §17.2.5).
    fn handle_retry(&mut self, hdr: &Header<'_>, pkt: &[u8], now: Instant) -> Result<()> {
        // "A client MUST accept and process at most one Retry packet for
        // each connection attempt. After the client has received and
        // processed an Initial or Retry packet from the server, it MUST
        // discard any subsequent Retry packets that it receives."
        if self.is_server || self.did_retry || self.got_peer_packet {
            return Ok(());
        }
        if hdr.dcid[..] != self.cids.scid()[..] {
            return Ok(());
        }
        // "Clients MUST discard Retry packets that have a Retry Integrity
        // Tag that cannot be validated."
        if !packet::verify_retry(&self.odcid, pkt) {
            return Ok(());
        }
        let token = hdr.token.clone().unwrap_or_default();
        // "A client MUST discard a Retry packet with a zero-length Retry
        // Token field."
        if token.is_empty() {
            return Ok(());
        }
        self.did_retry = true;
        self.token = token;
        let new_dcid = hdr.scid.clone().into_owned();
        self.rscid = Some(new_dcid.clone());
        // Initial keys now come from the Retry's SCID (RFC 9001 §5.2); the
        // ODCID stays for transport parameter validation.
        self.install_initial_keys(&new_dcid)?;
        self.cids.set_initial_dcid(new_dcid, None);

        // Everything sent in Initial packets is sent again (RFC 9000
        // §17.2.5.2), with new packet numbers continuing the space.
        let lost = self.recovery.drain_unacked(Epoch::Initial);
        for p in lost {
            self.requeue_frames(Epoch::Initial, &p.payload);
        }
        // So is what went in 0-RTT packets: the server discarded them with
        // the first attempt. The same ClientHello goes again, so the same
        // 0-RTT keys carry it (RFC 9001 §4.6.2: a client "MAY reattempt
        // 0-RTT if it receives a Retry").
        if self.zero_rtt_keys.is_some() {
            let lost = self.recovery.drain_unacked(Epoch::Application);
            for p in lost {
                self.requeue_frames(Epoch::Application, &p.payload);
            }
        }
        let _ = now;
        Ok(())
    }

    /// Re-encodes our transport parameters into TLS after they changed
    /// (server: ODCID known).
    fn reset_local_transport_params(&mut self) -> Result<()> {
        let mut buf = [0u8; 512];
        let n = self
            .local_params
            .encode(self.is_server, self.grease, &mut buf)?;
        self.tls
            .as_mut()
            .ok_or(Error::InvalidState)?
            .set_transport_params(&buf[..n])
    }

    /// Processes every frame of a decrypted payload. Returns whether the
    /// packet was ack-eliciting.
    ///
    /// With `logged` (packet type, number and length: a qlog is on) the
    /// packet and its frames go to the qlog.
    fn handle_frames(
        &mut self,
        epoch: Epoch,
        ty: Type,
        recv_dcid: &[u8],
        payload: &mut [u8],
        logged: Option<(&'static str, u64, usize)>,
        now: Instant,
    ) -> Result<(bool, bool)> {
        let mut qlog_frames = logged.map(|_| Vec::new());
        // RFC 9000 §12.4: "An endpoint MUST treat receipt of a packet
        // containing no frames as a connection error of type
        // PROTOCOL_VIOLATION."
        if payload.is_empty() {
            return Err(Error::InvalidPacket);
        }
        let mut b = Octets::with_slice(payload);
        let mut ack_eliciting = false;
        // RFC 9000 §9.1: all but PATH_CHALLENGE, PATH_RESPONSE,
        // NEW_CONNECTION_ID and PADDING are non-probing frames.
        let mut non_probing = false;
        while b.cap() > 0 {
            let frame_type = b.peek_u8().map(u64::from).unwrap_or(0);
            if stream_fast_path(frame_type, ty, qlog_frames.is_some()) {
                ack_eliciting = true;
                non_probing = true;
                self.handle_stream_frame(&mut b, now)?;
                continue;
            }
            let f = match Frame::from_bytes(&mut b, ty) {
                Ok(f) => f,
                Err(e) => {
                    self.close_with_error(e, frame_type, "malformed frame", now);
                    return Err(e);
                }
            };
            if let Some(v) = qlog_frames.as_mut() {
                v.push(super::qlog::frame(&f));
            }
            ack_eliciting |= f.ack_eliciting();
            non_probing |= !matches!(
                f,
                Frame::PathChallenge { .. }
                    | Frame::PathResponse { .. }
                    | Frame::NewConnectionId { .. }
                    | Frame::Padding { .. }
            );
            if let Err(e) = self.handle_frame(f, epoch, recv_dcid, now) {
                if e == Error::Done {
                    continue;
                }
                self.close_with_error(e, frame_type, "frame processing failed", now);
                return Err(e);
            }
            if !matches!(self.close, CloseState::Open) && self.peer_error.is_some() {
                break;
            }
        }
        if let (Some((ty, pn, len)), Some(frames), Some(q)) =
            (logged, qlog_frames, self.qlog.as_deref_mut())
        {
            q.packet_received(now, ty, pn, len, frames);
        }
        Ok((ack_eliciting, non_probing))
    }

    fn handle_frame(
        &mut self,
        f: Frame<'_>,
        epoch: Epoch,
        recv_dcid: &[u8],
        now: Instant,
    ) -> Result<()> {
        match f {
            Frame::Padding { .. } | Frame::Ping => (),
            Frame::Ack {
                ack_delay, ranges, ..
            } => self.handle_ack(epoch, ack_delay, ranges, now)?,
            Frame::Crypto { offset, data } => self.handle_crypto(epoch, offset, data, now)?,
            Frame::Stream {
                stream_id,
                offset,
                data,
                fin,
            } => self.on_stream_frame(stream_id, offset, data, fin)?,
            Frame::ResetStream {
                stream_id,
                error_code,
                final_size,
            } => {
                let newly = self
                    .streams
                    .on_reset_stream(stream_id, error_code, final_size)?;
                self.flow.on_recv(newly)?;
                self.flow.add_consumed(newly);
                self.credit_discarded();
                self.collect_stream_if_done(stream_id);
            }
            Frame::StopSending {
                stream_id,
                error_code,
            } => {
                // RFC 9000 §3.5: answer with RESET_STREAM.
                if let Some(final_size) = self.streams.on_stop_sending(stream_id, error_code)? {
                    self.pending
                        .q_mut()
                        .reset_stream
                        .push_back((stream_id, error_code, final_size));
                }
            }
            Frame::NewToken { .. } => {
                // RFC 9000 §19.7: "Servers MUST treat receipt of a NEW_TOKEN
                // frame as a connection error of type PROTOCOL_VIOLATION."
                if self.is_server {
                    return Err(Error::InvalidPacket);
                }
            }
            Frame::MaxData { max } => self.flow.update_peer_max(max),
            Frame::MaxStreamData { stream_id, max } => {
                self.streams.on_max_stream_data(stream_id, max)?
            }
            Frame::MaxStreams { bidi, max } => self.streams.on_max_streams(bidi, max),
            Frame::DataBlocked { .. } => {
                self.pending.max_data |= self.flow.should_update();
            }
            Frame::StreamDataBlocked { stream_id, .. } => {
                self.streams.on_stream_data_blocked(stream_id)?;
            }
            Frame::StreamsBlocked { .. } => (),
            Frame::NewConnectionId {
                seq_num,
                retire_prior_to,
                conn_id,
                reset_token,
            } => {
                self.cids.on_new_dcid(
                    conn_id,
                    seq_num,
                    retire_prior_to,
                    u128::from_be_bytes(reset_token),
                )?;
                // A probe's reserved ID below retire_prior_to goes too.
                if self
                    .probe
                    .as_ref()
                    .is_some_and(|p| p.cid.seq < self.cids.peer_retire_prior_to())
                {
                    self.abandon_probe();
                }
                self.queue_dcid_retirements();
            }
            Frame::RetireConnectionId { seq_num } => self.cids.on_retire(seq_num, recv_dcid)?,
            Frame::PathChallenge { data } => {
                if self.pending.q().path_responses.len() < 4 {
                    // The path is filled in once the packet is processed
                    // (`handle_packet`); a zero length marks it unset.
                    self.pending
                        .q_mut()
                        .path_responses
                        .push_back(super::PathResponse {
                            data,
                            peer: self.peer_addr,
                            local: self.local_addr,
                            datagram_len: 0,
                        });
                }
            }
            Frame::PathResponse { data } => {
                // RFC 9000 §8.2.3: a PATH_RESPONSE echoing our challenge
                // validates the path; other data is ignored.
                if self
                    .path_validation
                    .as_ref()
                    .is_some_and(|v| v.challenges.contains(&data))
                {
                    self.path_validation = None;
                    self.address_validated = true;
                    tracing::debug!(trace_id = %self.trace_id, peer = %self.peer_addr, "new peer address validated");
                    let path = (self.local_addr, self.peer_addr);
                    self.push_path_event(super::PathEvent::Validated(path.0, path.1));
                    if self.is_server {
                        self.push_path_event(super::PathEvent::PeerMigrated(path.0, path.1));
                    }
                }
                if let Some(p) = self.probe.as_mut() {
                    if p.challenges.contains(&data) && !p.validated {
                        p.validated = true;
                        tracing::debug!(trace_id = %self.trace_id, local = %p.local, "probed path validated");
                        let ev = super::PathEvent::Validated(p.local, self.peer_addr);
                        self.push_path_event(ev);
                    }
                }
            }
            Frame::ConnectionClose {
                error_code, reason, ..
            } => self.handle_close(false, error_code, reason, now),
            Frame::ApplicationClose { error_code, reason } => {
                self.handle_close(true, error_code, reason, now)
            }
            Frame::HandshakeDone => {
                // RFC 9000 §19.20: "A server MUST treat receipt of a
                // HANDSHAKE_DONE frame as a connection error of type
                // PROTOCOL_VIOLATION."
                if self.is_server {
                    return Err(Error::InvalidPacket);
                }
                self.confirm_handshake(now);
            }
            Frame::Datagram { data, .. } => {
                // RFC 9221 §3: DATAGRAM without having advertised support,
                // or larger than advertised, is a PROTOCOL_VIOLATION.
                let Some(max) = self.local_params.max_datagram_frame_size else {
                    return Err(Error::InvalidPacket);
                };
                if data.len() as u64 > max {
                    return Err(Error::InvalidPacket);
                }
                let q = self.dgrams.get_or_insert_with(Box::default);
                if q.recv.len() >= self.dgram_recv_max {
                    q.recv.pop_front();
                }
                q.recv.push_back(data.to_vec());
            }
        }
        Ok(())
    }

    fn handle_close(&mut self, is_app: bool, error_code: u64, reason: &[u8], now: Instant) {
        let trigger = if is_app { "application" } else { "error" };
        self.qlog_closed(now, "remote", is_app, error_code, reason, trigger);
        self.peer_error = Some(ConnectionError {
            is_app,
            error_code,
            reason: reason.to_vec(),
        });
        self.enter_draining(now);
    }

    fn handle_ack(
        &mut self,
        epoch: Epoch,
        ack_delay: u64,
        ranges: frame::AckRanges<'_>,
        now: Instant,
    ) -> Result<()> {
        if !self.is_server && epoch == Epoch::Handshake && !self.peer_validated_address {
            // RFC 9002 A.8 PeerCompletedAddressValidation(): the server
            // has validated our address once it acknowledges a Handshake
            // packet (a Handshake packet from it proves nothing: its first
            // flight comes before). Until then the client keeps a PTO
            // armed (§6.2.2.1).
            self.peer_validated_address = true;
            self.recovery.set_peer_completed_address_validation();
        }
        let exp = if epoch == Epoch::Application {
            self.peer_params.ack_delay_exponent
        } else {
            3
        };
        let delay = Duration::from_micros(
            ack_delay
                .checked_shl(exp as u32)
                .unwrap_or(u64::MAX)
                .min(1 << 40),
        );
        // The outcome's buffers are reused from ACK to ACK.
        let mut outcome = self.ack_outcome.take().unwrap_or_default();
        // What the acknowledged packets carried, seen where they lie in
        // recovery (they are never moved), in order: consecutive packets
        // usually carry adjacent ranges of one stream, merged into one run
        // (a bulk sender pays one stream update per ACK frame instead of
        // one per packet); of the ACK frames only the largest matters.
        let mut acked: SmallVec<[AckedItem; 4]> = SmallVec::new();
        let mut acked_ack: Option<u64> = None;
        let mut max_pn: Option<u64> = None;
        let r = self.recovery.on_ack_received_into(
            (epoch, delay, self.handshake_confirmed, now),
            ranges.iter(),
            &mut outcome,
            |p| {
                max_pn = max_pn.max(Some(p.pkt_num));
                for f in &p.payload {
                    match *f {
                        SentFrame::Stream {
                            id,
                            offset,
                            len,
                            fin,
                        } => {
                            let end = offset + len as u64;
                            match acked.last_mut() {
                                Some(AckedItem::Run(rid, _, rend, rfin))
                                    if *rid == id && *rend == offset =>
                                {
                                    *rend = end;
                                    *rfin |= fin;
                                }
                                _ => acked.push(AckedItem::Run(id, offset, end, fin)),
                            }
                        }
                        SentFrame::Ack { largest } => acked_ack = acked_ack.max(Some(largest)),
                        SentFrame::Crypto { .. }
                        | SentFrame::ResetStream { .. }
                        | SentFrame::HandshakeDone
                        | SentFrame::PathChallenge
                        | SentFrame::PmtuProbe { .. } => acked.push(AckedItem::Frame(f.clone())),
                        // Nothing to do when the others are acknowledged.
                        _ => (),
                    }
                }
            },
        );
        if let Err(e) = r {
            self.ack_outcome = Some(outcome);
            return Err(e);
        }
        for item in acked {
            match item {
                AckedItem::Run(id, start, end, fin) => {
                    self.on_stream_range_acked((id, start, end, fin))
                }
                AckedItem::Frame(f) => self.on_frame_acked(epoch, &f),
            }
        }
        if let Some(largest) = acked_ack {
            self.on_frame_acked(epoch, &SentFrame::Ack { largest });
        }
        // RFC 9001 §6.1: an ACK for a packet of the new phase lets us
        // update again.
        if epoch == Epoch::Application
            && self.key_update.pending_ack
            && self
                .key_update
                .first_sent_pn
                .is_some_and(|first| max_pn.is_some_and(|m| m >= first))
        {
            self.key_update.pending_ack = false;
        }
        let lost = std::mem::take(&mut outcome.lost);
        self.on_packets_lost(epoch, lost, now);
        outcome.clear();
        self.qlog_metrics(now);
        // The buffers are kept for the next ACK (an ACK that leaves nothing
        // in flight is followed by more data more often than not); an idle
        // sender gives them back (`send_datagram`).
        self.ack_outcome = Some(outcome);
        Ok(())
    }

    pub(crate) fn on_packets_lost(
        &mut self,
        epoch: Epoch,
        lost: Vec<crate::recovery::SentPacket<super::SentFrames>>,
        now: Instant,
    ) {
        for p in lost {
            self.stats.lost += 1;
            self.stats.lost_bytes += p.size as u64;
            if let Some(q) = self.qlog.as_deref_mut() {
                // (0-RTT packets share the application space: logged as
                // 1-RTT.)
                let ty = super::qlog::packet_type(epoch, false);
                q.packet_lost(now, ty, p.pkt_num, &p.payload);
            }
            self.requeue_frames(epoch, &p.payload);
        }
    }

    /// `[start, end)` of stream `id` (and its FIN if `fin`) was
    /// acknowledged.
    fn on_stream_range_acked(&mut self, (id, start, end, fin): (u64, u64, u64, bool)) {
        // The range is the union of frames this endpoint sent, each at most
        // one packet long, so it fits a usize.
        let len = usize::try_from(end - start).unwrap_or(usize::MAX);
        self.streams.on_stream_acked(id, start, len, fin);
        self.collect_stream_if_done(id);
    }

    fn on_frame_acked(&mut self, epoch: Epoch, f: &SentFrame) {
        match *f {
            SentFrame::Ack { largest } => {
                // RFC 9000 §13.2.4: stop reporting what the peer knows we
                // received.
                self.spaces[epoch as usize]
                    .recv_pkt_need_ack
                    .remove_until(largest + 1);
            }
            SentFrame::Crypto { offset, len } => self.spaces[epoch as usize]
                .crypto
                .send
                .on_ack(offset, len, false),
            // STREAM frames are acknowledged in runs by `handle_ack`.
            SentFrame::ResetStream { id, .. } => {
                self.streams.on_reset_acked(id);
                self.collect_stream_if_done(id);
            }
            SentFrame::HandshakeDone => self.pending.handshake_done = false,
            // The peer got our challenge; if no response came with the
            // acknowledgement (responses are not retransmitted), ask again.
            SentFrame::PathChallenge => self.challenge_again(),
            SentFrame::PmtuProbe { size } => self.on_pmtu_probe(size, true),
            _ => (),
        }
    }

    /// Credits unread data that a reset or STOP_SENDING discarded back to
    /// connection flow control, so the window does not shrink.
    pub(crate) fn credit_discarded(&mut self) {
        let n = self.streams.take_discarded();
        if n > 0 {
            self.flow.add_consumed(n);
            if self.flow.should_update() {
                self.pending.max_data = true;
            }
        }
    }

    /// Queues what a lost (or Retry-dropped) packet carried again
    /// (RFC 9000 §13.3).
    pub(crate) fn requeue_frames(&mut self, epoch: Epoch, frames: &[SentFrame]) {
        for f in frames {
            match *f {
                SentFrame::Crypto { offset, len } => {
                    self.spaces[epoch as usize]
                        .crypto
                        .send
                        .on_lost(offset, len, false);
                }
                SentFrame::Stream {
                    id,
                    offset,
                    len,
                    fin,
                } => self.streams.on_stream_lost(id, offset, len, fin),
                SentFrame::ResetStream {
                    id,
                    error_code,
                    final_size,
                } => self
                    .pending
                    .q_mut()
                    .reset_stream
                    .push_back((id, error_code, final_size)),
                SentFrame::StopSending { id, error_code } => {
                    if self.streams.wants_stop_sending(id) {
                        self.pending
                            .q_mut()
                            .stop_sending
                            .push_back((id, error_code));
                    }
                }
                SentFrame::MaxData => self.pending.max_data = true,
                SentFrame::MaxStreamData { id } => self.pending.max_stream_data.push(id),
                SentFrame::MaxStreams { bidi: true } => self.pending.max_streams_bidi = true,
                SentFrame::MaxStreams { bidi: false } => self.pending.max_streams_uni = true,
                SentFrame::NewConnectionId { seq } => {
                    if self.cids.scid_entry(seq).is_some() {
                        self.pending.q_mut().new_cids.push_back(seq);
                    }
                }
                SentFrame::RetireConnectionId { seq } => {
                    self.pending.q_mut().retire_cids.push_back(seq)
                }
                SentFrame::HandshakeDone => self.pending.handshake_done = true,
                // Lost: ask again while the path is still being validated.
                SentFrame::PathChallenge => self.challenge_again(),
                // Not sent again: the search decides what to probe next.
                SentFrame::PmtuProbe { size } => self.on_pmtu_probe(size, false),
                SentFrame::DataBlocked
                | SentFrame::StreamDataBlocked
                | SentFrame::StreamsBlocked
                | SentFrame::Ack { .. }
                | SentFrame::Ping
                | SentFrame::Datagram
                | SentFrame::Close => (),
            }
        }
    }

    /// Handles an expired loss-detection timer (RFC 9002 §6).
    pub(crate) fn handle_loss_timeout(&mut self, now: Instant) {
        match self.recovery.on_loss_detection_timeout(
            self.handshake_confirmed,
            self.peer_validated_address,
            now,
        ) {
            TimeoutOutcome::Lost { epoch, lost } => self.on_packets_lost(epoch, lost, now),
            TimeoutOutcome::Probe { epoch, count } => {
                // RFC 8899 §4.3, black hole detection: nothing acknowledged
                // through several PTOs after the size was raised may mean
                // the path no longer carries it: back to 1200 bytes (the
                // PTO probes go at that size) and search again.
                if epoch == Epoch::Application
                    && self.recovery.pto_count() >= super::pmtud::BLACK_HOLE_PTOS
                    && self.discover_pmtu
                    && self.pmtu > super::pmtud::BASE_PLPMTU
                {
                    tracing::debug!(trace_id = %self.trace_id, "path MTU black hole suspected: searching again from 1200 bytes");
                    self.start_pmtud();
                }
                let sp = &mut self.spaces[epoch as usize];
                sp.probes = count;
                // A probe carries data when there is some (RFC 9002 §6.2.4):
                // resend the oldest unacknowledged CRYPTO data.
                if epoch != Epoch::Application {
                    sp.crypto.send.retransmit_unacked();
                } else {
                    // The probe asks the new path again: a lost challenge
                    // must not leave the path unvalidated for good (the
                    // peer may have nothing else to say).
                    self.challenge_again();
                }
            }
            TimeoutOutcome::None => (),
        }
    }

    /// Another PATH_CHALLENGE goes out if a path is being validated.
    fn challenge_again(&mut self) {
        if let Some(v) = self.path_validation.as_mut() {
            v.send = true;
        }
    }

    /// Path validation failed. A server: "an endpoint MUST revert to using
    /// the last validated peer address when validation of a new peer
    /// address fails" (RFC 9000 §9.3.2); that address needs no
    /// amplification limit. A client that migrated has no old path to go
    /// back to (its application moved it): the new path stays, unvalidated
    /// (§9.2: failure means the path may be unusable, and the idle timeout
    /// ends a connection whose every path is).
    pub(crate) fn abandon_path_validation(&mut self) {
        let Some(v) = self.path_validation.take() else {
            return;
        };
        let failed = super::PathEvent::FailedValidation(self.local_addr, self.peer_addr);
        match v.fallback {
            Some(back_to) => {
                tracing::debug!(trace_id = %self.trace_id, failed = %self.peer_addr, %back_to, "path validation failed");
                self.peer_addr = back_to;
                self.address_validated = true;
                self.switch_dcid_for_new_path();
            }
            None => {
                tracing::debug!(trace_id = %self.trace_id, local = %self.local_addr, "validation of our new path failed");
            }
        }
        self.push_path_event(failed);
    }

    /// The peer address we send to changed: move to a connection ID of the
    /// peer's not used yet, retiring the current one (RFC 9000 §9.5: "an
    /// endpoint MUST NOT reuse a connection ID when sending to more than
    /// one destination address"). Without a spare the current one stays:
    /// the peer gave us no other (§9.5 lets a rebinding keep it).
    fn switch_dcid_for_new_path(&mut self) {
        if let Some(seq) = self.switch_dcid() {
            tracing::debug!(trace_id = %self.trace_id, seq, "new path: switched to the peer's next connection ID");
        }
    }

    /// Moves to the peer's next unused connection ID and queues the
    /// retirement of the current one. None when the peer gave no spare.
    pub(crate) fn switch_dcid(&mut self) -> Option<u64> {
        let seq = self.cids.switch_dcid()?;
        self.queue_dcid_retirements();
        Some(seq)
    }

    /// Drops a packet number space (RFC 9001 §4.9, RFC 9002 §6.4).
    pub(crate) fn discard_space(&mut self, epoch: Epoch) {
        let sp = &mut self.spaces[epoch as usize];
        if sp.discarded {
            return;
        }
        sp.discard();
        self.recovery.on_pkt_num_space_discarded(epoch);
    }
}

/// The length of a long-header packet from its Length field.
fn long_packet_len(buf: &[u8], hdr_len: usize) -> Result<usize> {
    let mut b = Octets::with_slice(buf.get(hdr_len..).ok_or(Error::Done)?);
    let plen = b.get_varint().map_err(|_| Error::Done)? as usize;
    let end = hdr_len + b.off() + plen;
    if end > buf.len() {
        return Err(Error::Done);
    }
    Ok(end)
}
