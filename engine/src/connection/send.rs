//! Sending: building coalesced datagrams of protected packets
//! (`poll_*`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{CloseState, Connection, EarlyData, SendInfo, SentFrame, SentFrames};
use crate::crypto::TAG_LEN;
use crate::error::{Error, Result};
use crate::frame::{self, AckRanges, Frame};
use crate::octets::{varint_len, OctetsMut};
use crate::packet::{self, MAX_PKT_NUM_LEN};
use crate::recovery::{Epoch, SentPacket};
use crate::stream::{Membership, SEND_BITS};

/// Smallest datagram carrying an Initial (RFC 9000 §14.1).
const MIN_INITIAL_DATAGRAM: usize = 1200;

/// Room a packet needs beyond its frames: a long header is at most
/// 1 + 4 + 21 + 21 + token + 2 (Length) + 4 (pn); plus the tag.
const MIN_PACKET_ROOM: usize = 64;

/// The frames a packet may carry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Whatever is due. `pad_to` asks for at least that many bytes
    /// (PADDING inside the packet); `must_pad` for a PING if nothing else
    /// is due (to pad an Initial's datagram); `closing` for
    /// CONNECTION_CLOSE only.
    All {
        pad_to: Option<usize>,
        must_pad: bool,
        closing: bool,
    },
    /// Stream data only (see `steady_stream_send`).
    StreamsOnly,
}

/// What one packet did.
struct Written {
    len: usize,
    ack_eliciting: bool,
}

impl Connection {
    /// [`Connection::send`] at an explicit time.
    pub fn send_at(&mut self, out: &mut [u8], now: Instant) -> Result<(usize, SendInfo)> {
        self.send_datagram(out, 0, false, now)
    }

    /// Writes one datagram into `out`, which starts `base` bytes into the
    /// caller's buffer (where deferred header protection finds the
    /// packets, see `batch.rs`). With `same_path` only a datagram of the
    /// current path is written: nothing for another path, which would end
    /// a batch.
    pub(super) fn send_datagram(
        &mut self,
        out: &mut [u8],
        base: usize,
        same_path: bool,
        now: Instant,
    ) -> Result<(usize, SendInfo)> {
        if out.is_empty() {
            return Err(Error::BufferTooShort);
        }
        if self.hello_pending {
            self.send_client_hello(now)?;
        }
        match self.close {
            CloseState::Closed | CloseState::Draining { .. } => return Err(Error::Done),
            CloseState::Closing { .. } if !self.send_close => return Err(Error::Done),
            _ => (),
        }
        // (The one place the raise timer is looked at: every send path
        // comes here; a probe it makes due goes at the next call.)
        if self.pmtu_raise_at.is_some() {
            self.maybe_raise_pmtu(now);
        }
        if self.steady_stream_send() {
            // Nearly every datagram of a transfer: one 1-RTT packet of
            // stream data, nothing else due (see `steady_stream_send`).
            if let Some(len) = self.send_stream_datagram(out, base, now)? {
                let info = SendInfo {
                    from: self.local_addr,
                    to: self.peer_addr,
                    at: self.recovery.next_send_time(now),
                };
                return Ok((len, info));
            }
        }
        if self.close == CloseState::Open && !same_path {
            if let Some(sent) = self.send_response_elsewhere(out, now)? {
                return Ok(sent);
            }
            if let Some(sent) = self.send_probe(out, now)? {
                return Ok(sent);
            }
            if let Some(sent) = self.send_pmtu_probe(out, now)? {
                return Ok(sent);
            }
        }
        let mut limit = out.len().min(self.max_send_udp_payload_size());
        // RFC 9000 §8.1: "Prior to validating the client address, servers
        // MUST NOT send more than three times as many bytes as the number
        // of bytes they have received."
        if self.is_server && !self.address_validated {
            let allowance = (3 * u64::from(self.bytes_recv_unvalidated))
                .saturating_sub(u64::from(self.bytes_sent_unvalidated));
            limit = limit.min(allowance as usize);
            if limit < MIN_PACKET_ROOM {
                return Err(Error::Done);
            }
        }

        let mut written = 0;
        let mut has_initial = false;
        let mut initial_ack_eliciting = false;
        let closing = self.send_close;
        for epoch in [Epoch::Initial, Epoch::Handshake, Epoch::Application] {
            if limit - written < MIN_PACKET_ROOM {
                break;
            }
            // Pad the last packet of a datagram that carries an Initial
            // (client always; server when ack-eliciting: RFC 9000 §14.1).
            let sp = &self.spaces[epoch as usize];
            if sp.seal.is_none() && !(epoch == Epoch::Application && self.sends_zero_rtt())
                || sp.discarded
            {
                continue;
            }
            let needs_pad = has_initial && (!self.is_server || initial_ack_eliciting);
            // Only datagrams with an Initial are padded: skip the check
            // otherwise (it is most 1-RTT datagrams).
            let later_has_data = (needs_pad || epoch == Epoch::Initial && !self.is_server)
                && self.later_space_has_data(epoch, closing);
            // RFC 9000 §8.2.2: "An endpoint MUST expand datagrams that
            // contain a PATH_RESPONSE frame to at least ... 1200 bytes,
            // unless the anti-amplification limit for the path does not
            // permit" (`limit` already holds that allowance).
            // §8.2.1 asks the same of PATH_CHALLENGE. When the allowance
            // is smaller the datagram is not padded at all: what is left
            // of it pays for a repeated challenge if this one is lost.
            let path_response = epoch == Epoch::Application
                && limit >= MIN_INITIAL_DATAGRAM
                && (!self.pending.q().path_responses.is_empty()
                    || self.path_validation.as_ref().is_some_and(|v| v.send));
            let pad_to = if (needs_pad || path_response) && !later_has_data {
                Some(MIN_INITIAL_DATAGRAM.min(limit).saturating_sub(written))
            } else if epoch == Epoch::Initial && !self.is_server && !later_has_data {
                Some(MIN_INITIAL_DATAGRAM.min(limit))
            } else {
                None
            };
            // A client's Initial followed by more leaves room for it: the
            // last packet pads the datagram to 1200 bytes (RFC 9000 §14.1),
            // so it must fit.
            let end = if epoch == Epoch::Initial && !self.is_server && later_has_data {
                limit - MIN_PACKET_ROOM
            } else {
                limit
            };
            let body = Body::All {
                pad_to,
                // Only while the datagram is short of 1200 bytes.
                must_pad: needs_pad && !later_has_data && written < MIN_INITIAL_DATAGRAM.min(limit),
                closing,
            };
            let w = match self.write_packet(
                epoch,
                &mut out[written..end],
                base + written,
                body,
                now,
            )? {
                Some(w) => w,
                None => continue,
            };
            if epoch == Epoch::Initial {
                has_initial = true;
                initial_ack_eliciting = w.ack_eliciting;
                if !self.is_server {
                    // RFC 9001 §4.9.1: a client discards Initial keys when it
                    // first sends a Handshake packet — handled below.
                }
            }
            if epoch == Epoch::Handshake && !self.is_server {
                self.discard_space(Epoch::Initial);
            }
            written += w.len;
        }
        if written == 0 {
            // Window to use and nothing to use it for: application-limited
            // (RFC 9002 §7.8), the window stops growing until filled.
            if self.handshake_complete
                && !closing
                && self.recovery.cwnd_available() >= self.max_send_udp_payload_size()
                && !self.app_has_data()
            {
                self.recovery.on_app_limited(now);
            }
            // Idle: what a finished burst grew goes back (memory per idle
            // connection matters at the edge).
            if self.recovery.bytes_in_flight() == 0 {
                self.recovery.release_idle_memory();
                self.pending.release_idle();
                self.release_batch_state();
                self.ack_outcome = None;
                let crypto = &mut self.spaces[Epoch::Application as usize].crypto;
                crypto.send.release_idle_memory();
                crypto.recv.release_idle_memory();
                if self
                    .dgrams
                    .as_ref()
                    .is_some_and(|q| q.recv.is_empty() && q.send.is_empty())
                {
                    self.dgrams = None;
                }
            }
            return Err(Error::Done);
        }
        if closing {
            self.send_close = false;
        }
        // A datagram with an Initial that ended unpadded (nothing after
        // the Initial was written) is padded inside the Initial already;
        // nothing may follow the packets themselves.
        if self.is_server && !self.address_validated {
            self.bytes_sent_unvalidated = self
                .bytes_sent_unvalidated
                .saturating_add(crate::saturating_u32(written));
        }
        self.stats.sent_bytes += written as u64;
        let at = self.recovery.next_send_time(now);
        Ok((
            written,
            SendInfo {
                from: self.local_addr,
                to: self.peer_addr,
                at,
            },
        ))
    }

    /// Writes one datagram of one 1-RTT packet of stream data, when
    /// `steady_stream_send` holds; None if no stream had data after all.
    pub(super) fn send_stream_datagram(
        &mut self,
        out: &mut [u8],
        base: usize,
        now: Instant,
    ) -> Result<Option<usize>> {
        let limit = out.len().min(self.max_send_udp_payload_size());
        let body = Body::StreamsOnly;
        let w = self.write_packet(Epoch::Application, &mut out[..limit], base, body, now)?;
        Ok(w.map(|w| {
            self.stats.sent_bytes += w.len as u64;
            w.len
        }))
    }

    /// Whether, right after a datagram written by `send_stream_datagram`
    /// in the same batch, the next one is such a datagram too: sending
    /// stream data changes none of the other conditions of
    /// `steady_stream_send` (only receiving, timers and the application
    /// do), but it uses window and may empty the streams.
    pub(super) fn steady_stream_send_continues(&self) -> bool {
        self.recovery.cwnd_available() >= MIN_PACKET_ROOM && self.streams.has_flushable()
    }

    /// Whether a space after `epoch` has something to send now.
    fn later_space_has_data(&self, epoch: Epoch, closing: bool) -> bool {
        let later: &[Epoch] = match epoch {
            Epoch::Initial => &[Epoch::Handshake, Epoch::Application],
            Epoch::Handshake => &[Epoch::Application],
            Epoch::Application => &[],
        };
        later.iter().any(|e| {
            let sp = &self.spaces[*e as usize];
            if *e == Epoch::Application && self.sends_zero_rtt() {
                return self.app_has_data();
            }
            sp.seal.is_some()
                && !sp.discarded
                && (closing
                    || sp.ack_elicited
                    || sp.crypto.send.is_flushable()
                    || sp.probes > 0
                    || (*e == Epoch::Application
                        && (self.handshake_complete || self.early == EarlyData::Accepted)
                        && self.app_has_data()))
        })
    }

    /// Client: application data goes in 0-RTT packets now (RFC 9001
    /// §4.6.1: keys installed, the handshake not complete), once all of
    /// the ClientHello has gone: a server cannot read 0-RTT packets before
    /// it has the whole ClientHello (and drops them), and a ClientHello
    /// with a post-quantum key share spans two datagrams.
    fn sends_zero_rtt(&self) -> bool {
        !self.is_server
            && !self.handshake_complete
            && self.zero_rtt_keys.is_some()
            && !self.spaces[Epoch::Initial as usize]
                .crypto
                .send
                .is_flushable()
    }

    /// Whether the next datagram is one 1-RTT packet of stream data and
    /// nothing else: the handshake is over, the connection open on one
    /// validated path, and nothing but stream data due (no ACK, control
    /// frame, CRYPTO data — a ticket, or one to send again —, probe, PING
    /// or DATAGRAM), with window to send.
    pub(super) fn steady_stream_send(&self) -> bool {
        let sp = &self.spaces[Epoch::Application as usize];
        self.handshake_confirmed
            && self.close == CloseState::Open
            && !self.send_close
            && !sp.ack_elicited
            && sp.probes == 0
            && !sp.crypto.send.is_flushable()
            && self.streams.has_flushable()
            && self.address_validated
            && self.path_validation.is_none()
            && self.probe.is_none()
            && self.dgrams.is_none()
            && !self.pending.ping
            && self.recovery.cwnd_available() >= MIN_PACKET_ROOM
            && !self.control_pending()
            && self.pmtud.as_ref().is_none_or(|p| p.due().is_none())
    }

    /// Whether the application space has anything besides ACKs to send.
    fn app_has_data(&self) -> bool {
        self.control_pending()
            || self.pending.ping
            || self.dgrams.as_ref().is_some_and(|q| !q.send.is_empty())
            || self.streams.has_flushable()
    }

    /// Whether a control frame (what `write_control_frames` writes) is due.
    fn control_pending(&self) -> bool {
        let p = &self.pending;
        p.max_data
            || !p.max_stream_data.is_empty()
            || p.max_streams_bidi
            || p.max_streams_uni
            || p.data_blocked.is_some()
            || p.any_queued()
            || p.handshake_done
            || self.path_validation.as_ref().is_some_and(|v| v.send)
            || self.streams.has_blocked()
            || self.streams.streams_blocked_bidi().is_some()
            || self.streams.streams_blocked_uni().is_some()
    }

    /// Writes one packet of `epoch` into `buf`, which starts `abs` bytes
    /// into the caller's buffer, with the frames `body` asks for.
    fn write_packet(
        &mut self,
        epoch: Epoch,
        buf: &mut [u8],
        abs: usize,
        body: Body,
        now: Instant,
    ) -> Result<Option<Written>> {
        let (pad_to, must_pad, closing) = match body {
            Body::All {
                pad_to,
                must_pad,
                closing,
            } => (pad_to, must_pad, closing),
            Body::StreamsOnly => (None, false, false),
        };
        let streams_only = body == Body::StreamsOnly;
        let ei = epoch as usize;
        let zero_rtt = epoch == Epoch::Application && !closing && self.sends_zero_rtt();
        {
            let sp = &self.spaces[ei];
            if sp.seal.is_none() && !zero_rtt || sp.discarded {
                return Ok(None);
            }
        }
        // Before the handshake completes, application data goes in 0-RTT
        // packets (client) or, once the server accepted 0-RTT, in 1-RTT
        // packets of the server (0.5-RTT, RFC 9001 §4.1.1: its answers and
        // the ACKs of the client's 0-RTT packets); otherwise it waits.
        let half_rtt = self.is_server && self.early == EarlyData::Accepted;
        if epoch == Epoch::Application
            && !(self.handshake_complete || closing || zero_rtt || half_rtt)
        {
            return Ok(None);
        }
        let pn = self.spaces[ei].next_pkt_num;
        let largest_acked = self.recovery.largest_acked(epoch);
        let pn_len = packet::pkt_num_len(pn, largest_acked).max(if epoch == Epoch::Application {
            1
        } else {
            2
        });

        // Header.
        let mut b = OctetsMut::with_slice(buf);
        let (pn_off, len_off) = self.write_header(&mut b, epoch, pn_len, zero_rtt)?;
        let hdr_end = pn_off + pn_len;
        b.skip(pn_len)?;
        // Frames go up to the tag.
        let cap_end = b.cap().checked_sub(TAG_LEN).ok_or(Error::BufferTooShort)? + b.off();
        let payload_start = b.off();
        let mut frames = SentFrames::new();
        let mut ack_eliciting = false;
        let mut in_flight = false;
        // Whether the packet carries stream or CRYPTO data sent before.
        let mut resent = false;

        let cwnd_ok =
            self.recovery.cwnd_available() >= MIN_PACKET_ROOM || self.spaces[ei].probes > 0;
        {
            let body = &mut b.buf_mut()[..cap_end];
            let mut w = OctetsMut::with_slice(body);
            w.skip(payload_start)?;

            // ACK first.
            let sp = &self.spaces[ei];
            // RFC 9000 §17.2.3: no ACK in 0-RTT packets.
            let want_ack = !streams_only
                && !zero_rtt
                && sp.ack_elicited
                && (epoch != Epoch::Application
                    || sp.ack_now
                    || sp.ack_eliciting_unacked >= 2
                    || self.ack_deadline().is_some_and(|t| now >= t)
                    || cwnd_ok && self.app_has_data()
                    || closing);
            if want_ack && !sp.recv_pkt_need_ack.is_empty() {
                if let Some(largest) = self.write_ack(epoch, &mut w, now)? {
                    frames.push(SentFrame::Ack { largest });
                }
            }

            if streams_only {
                let (any, re) = self.write_stream_frames(&mut w, &mut frames)?;
                ack_eliciting = any;
                in_flight = any;
                resent = re;
            } else if closing {
                self.write_close(epoch, &mut w)?;
                frames.push(SentFrame::Close);
            } else if cwnd_ok {
                let (ae, inf, re) = self.write_frames(epoch, zero_rtt, &mut w, &mut frames)?;
                ack_eliciting |= ae;
                in_flight |= inf;
                resent |= re;
                // A probe must be ack-eliciting (RFC 9002 §6.2.4).
                let sp = &mut self.spaces[ei];
                if sp.probes > 0 && !ack_eliciting && w.cap() > 0 {
                    w.put_u8(frame::types::PING as u8)?;
                    frames.push(SentFrame::Ping);
                    ack_eliciting = true;
                    in_flight = true;
                }
                if sp.probes > 0 && ack_eliciting {
                    sp.probes -= 1;
                }
                if self.pending.ping && epoch == Epoch::Application && !ack_eliciting && w.cap() > 0
                {
                    w.put_u8(frame::types::PING as u8)?;
                    frames.push(SentFrame::Ping);
                    ack_eliciting = true;
                    in_flight = true;
                    self.pending.ping = false;
                } else if ack_eliciting && epoch == Epoch::Application {
                    self.pending.ping = false;
                }
            }

            if frames.is_empty() {
                // The datagram's Initial left its padding to this packet
                // (RFC 9000 §14.1: the whole datagram must reach 1200
                // bytes), which found nothing to carry: a PING makes it one.
                if !must_pad || w.cap() == 0 {
                    return Ok(None);
                }
                w.put_u8(frame::types::PING as u8)?;
                frames.push(SentFrame::Ping);
                ack_eliciting = true;
                in_flight = true;
            }

            // Padding: enough for the header-protection sample (RFC 9001
            // §5.4.2), and up to `pad_to` for Initial datagrams.
            let mut payload_len = w.off() - payload_start;
            let min_payload = MAX_PKT_NUM_LEN.saturating_sub(pn_len) + 1;
            let mut target = payload_len.max(min_payload);
            if let Some(p) = pad_to {
                let want = p.saturating_sub(hdr_end + TAG_LEN);
                target = target.max(want.min(w.off() + w.cap() - payload_start));
            }
            if target > payload_len {
                let n = target - payload_len;
                let n = n.min(w.cap());
                w.rest_mut()[..n].fill(0);
                w.skip(n)?;
                payload_len += n;
                in_flight = true;
            }
            if payload_len < min_payload {
                return Err(Error::BufferTooShort);
            }
            let total_payload = payload_len;

            // Patch the Length field (long headers): pn + payload + tag.
            if let Some(len_off) = len_off {
                let plen = pn_len + total_payload + TAG_LEN;
                let mut lw = OctetsMut::with_slice(&mut w.buf_mut()[len_off..len_off + 2]);
                lw.put_varint_with_len(plen as u64, 2)?;
            }
            let mut pw = OctetsMut::with_slice(&mut w.buf_mut()[pn_off..hdr_end]);
            packet::encode_pkt_num(pn, pn_len, &mut pw)?;

            let keys = if zero_rtt {
                self.zero_rtt_keys.as_ref()
            } else {
                self.spaces[ei].seal.as_ref()
            };
            let keys = keys.ok_or(Error::InvalidState)?;
            // In a batch, 1-RTT packets get their header protection at the
            // end, all masks in one AES call (`batch.rs`).
            let deferred = match self.batch.as_deref_mut() {
                Some(b) if b.deferring && epoch == Epoch::Application && !zero_rtt => Some(b),
                _ => None,
            };
            let len = match deferred {
                Some(b) => {
                    let len = packet::seal(buf, pn_off, pn_len, pn, total_payload, &keys.packet)?;
                    b.defer(abs, pn_off, pn_len);
                    len
                }
                None => packet::protect(buf, pn_off, pn_len, pn, total_payload, keys)?,
            };

            let sp = &mut self.spaces[ei];
            sp.next_pkt_num += 1;
            if epoch == Epoch::Application && !zero_rtt && self.key_update.first_sent_pn.is_none() {
                self.key_update.first_sent_pn = Some(pn);
            }
            self.stats.sent += 1;
            if resent {
                self.stats.retrans += 1;
            }
            if ack_eliciting && !self.ack_eliciting_sent_since_recv {
                // RFC 9000 §10.1: also restart the idle timer when sending
                // the first ack-eliciting packet after receiving.
                self.ack_eliciting_sent_since_recv = true;
                self.idle_since = Some(now);
            }
            if let Some(q) = self.qlog.as_deref_mut() {
                let ty = super::qlog::packet_type(epoch, zero_rtt);
                q.packet_sent(now, ty, pn, len, &frames);
            }
            self.recovery.on_packet_sent(
                epoch,
                SentPacket {
                    pkt_num: pn,
                    time_sent: now,
                    size: if in_flight { len } else { 0 },
                    ack_eliciting,
                    in_flight,
                    old_path: false,
                    payload: frames,
                },
                now,
            );
            Ok(Some(Written { len, ack_eliciting }))
        }
    }

    /// Answers a PATH_CHALLENGE that came on another path than the current
    /// one (a peer probing a new path, or a packet from an old one), on
    /// that path, in a datagram of its own (RFC 9000 §8.2.2). It needs a
    /// connection ID of the peer's not used on any other path (§9.5),
    /// retired once used; without one the challenge goes unanswered (§9.5:
    /// an endpoint out of IDs "cannot ... respond to probes"). The
    /// datagram is padded to 1200 bytes within three times what came on
    /// that path (§8.2.2, §8.1); it counts for neither congestion control
    /// nor RTT of the current path and is never sent again (§13.3).
    fn send_response_elsewhere(
        &mut self,
        out: &mut [u8],
        now: Instant,
    ) -> Result<Option<(usize, SendInfo)>> {
        self.send_response_on(out, None, None, now)
    }

    /// [`Connection::send_response_elsewhere`] for the paths from our
    /// address `from` to the peer's `to` only (`None`: any).
    pub(super) fn send_response_on(
        &mut self,
        out: &mut [u8],
        from: Option<SocketAddr>,
        to: Option<SocketAddr>,
        now: Instant,
    ) -> Result<Option<(usize, SendInfo)>> {
        let (peer, local) = (self.peer_addr, self.local_addr);
        let Some(i) = self.pending.q().path_responses.iter().position(|r| {
            r.datagram_len != 0
                && !r.is_for(peer, local)
                && from.is_none_or(|f| super::same_address(f, r.local))
                && to.is_none_or(|t| super::same_address(t, r.peer))
        }) else {
            return Ok(None);
        };
        let Some(r) = self.pending.q_mut().path_responses.remove(i) else {
            return Ok(None);
        };
        let ei = Epoch::Application as usize;
        let limit = out
            .len()
            .min(self.max_send_udp_payload_size())
            .min(3 * r.datagram_len as usize);
        // Room for the longest header, a PATH_RESPONSE and the tag (any
        // real challenge datagram gives it).
        let room = 1 + crate::MAX_CONN_ID_LEN + MAX_PKT_NUM_LEN + 9 + TAG_LEN;
        if !self.handshake_complete || self.spaces[ei].seal.is_none() || limit < room {
            return Ok(None);
        }
        let Some(dcid) = self.cids.take_spare_dcid() else {
            tracing::debug!(trace_id = %self.trace_id, peer = %r.peer, "no spare connection ID: PATH_CHALLENGE from another path unanswered");
            return Ok(None);
        };
        self.queue_dcid_retirements();
        let frame = Frame::PathResponse { data: r.data };
        let len = self.seal_lone_frame(&mut out[..limit], &dcid, frame, now)?;
        tracing::debug!(trace_id = %self.trace_id, peer = %r.peer, len, "PATH_RESPONSE on the challenge's path");
        Ok(Some((
            len,
            SendInfo {
                from: r.local,
                to: r.peer,
                at: now,
            },
        )))
    }

    /// Client: the next PATH_CHALLENGE of a path being probed
    /// ([`Connection::probe_path`]), from its local address with its own
    /// connection ID, padded to 1200 bytes (RFC 9000 §8.2.1); outside the
    /// current path's congestion control, asked again after a PTO.
    pub(super) fn send_probe(
        &mut self,
        out: &mut [u8],
        now: Instant,
    ) -> Result<Option<(usize, SendInfo)>> {
        let pto = self.recovery.pto();
        let Some(probe) = self.probe.as_mut().filter(|p| p.send && !p.validated) else {
            return Ok(None);
        };
        let data = probe.next_challenge()?;
        probe.send = false;
        probe.retry_at = now + pto;
        let (dcid, local) = (probe.cid.cid.clone(), probe.local);
        let limit = out.len().min(self.max_send_udp_payload_size());
        let len =
            self.seal_lone_frame(&mut out[..limit], &dcid, Frame::PathChallenge { data }, now)?;
        Ok(Some((
            len,
            SendInfo {
                from: local,
                to: self.peer_addr,
                at: now,
            },
        )))
    }

    /// Writes a 1-RTT packet to `dcid` holding `frame` and PADDING up to
    /// 1200 bytes (or all of `out`, if less), for a path other than the
    /// current one: recorded as sent (ack-eliciting) but in no congestion
    /// window or RTT sample, its frame never retransmitted.
    fn seal_lone_frame(
        &mut self,
        out: &mut [u8],
        dcid: &[u8],
        frame: Frame<'_>,
        now: Instant,
    ) -> Result<usize> {
        let pad_to = MIN_INITIAL_DATAGRAM.min(out.len());
        self.seal_padded_frame(out, dcid, frame, pad_to, None, now)
    }

    /// A path MTU probe (RFC 9000 §14.4: PING and PADDING only) of the size
    /// the search asks for, when one is due and the window and `out` have
    /// room: it goes alone in its datagram, on the current path.
    pub(super) fn send_pmtu_probe(
        &mut self,
        out: &mut [u8],
        now: Instant,
    ) -> Result<Option<(usize, SendInfo)>> {
        let Some(size) = self.pmtu_probe_due() else {
            return Ok(None);
        };
        // Probes use congestion window like any packet (RFC 9000 §14.4).
        if out.len() < size || self.recovery.cwnd_available() < size {
            return Ok(None);
        }
        let dcid = self.cids.dcid().to_vec();
        let len = self.seal_padded_frame(
            &mut out[..size],
            &dcid,
            Frame::Ping,
            size,
            Some(SentFrame::PmtuProbe { size }),
            now,
        )?;
        if let Some(p) = self.pmtud.as_mut() {
            p.on_sent(size);
        }
        tracing::trace!(trace_id = %self.trace_id, size, "path MTU probe sent");
        Ok(Some((
            len,
            SendInfo {
                from: self.local_addr,
                to: self.peer_addr,
                at: now,
            },
        )))
    }

    /// The size of the path MTU probe to send now, if any: the search wants
    /// one and the path is settled (handshake confirmed, open, validated,
    /// not being probed or migrated).
    pub(super) fn pmtu_probe_due(&self) -> Option<usize> {
        let size = self.pmtud.as_ref()?.due()?;
        (self.handshake_confirmed
            && self.close == CloseState::Open
            && self.address_validated
            && self.path_validation.is_none()
            && self.spaces[Epoch::Application as usize].seal.is_some())
        .then_some(size)
    }

    /// Writes a 1-RTT packet to `dcid` holding `frame` and PADDING up to a
    /// datagram of `pad_to` bytes (at most `out`). Without `probe` it is
    /// recorded as sent (ack-eliciting) but in no congestion window or
    /// RTT sample, its frame never retransmitted (a packet for another
    /// path); with it, a path MTU probe: in the window, its
    /// acknowledgement or loss reported to the search, neither an RTT
    /// sample nor a congestion signal (RFC 9000 §14.4).
    fn seal_padded_frame(
        &mut self,
        out: &mut [u8],
        dcid: &[u8],
        frame: Frame<'_>,
        pad_to: usize,
        probe: Option<SentFrame>,
        now: Instant,
    ) -> Result<usize> {
        let ei = Epoch::Application as usize;
        let limit = pad_to.min(out.len());
        let pn = self.spaces[ei].next_pkt_num;
        let pn_len = packet::pkt_num_len(pn, self.recovery.largest_acked(Epoch::Application));
        let mut b = OctetsMut::with_slice(out);
        b.put_u8(0x40 | (pn_len - 1) as u8 | (u8::from(self.key_update.phase) << 2))?;
        b.put_bytes(dcid)?;
        let pn_off = b.off();
        packet::encode_pkt_num(pn, pn_len, &mut b)?;
        frame.to_bytes(&mut b)?;
        let payload_len = b.off() - pn_off - pn_len;
        let pad = limit
            .saturating_sub(b.off() + TAG_LEN)
            .min(b.cap().saturating_sub(TAG_LEN));
        b.rest_mut()[..pad].fill(0);
        let payload_len = payload_len + pad;
        let keys = self.spaces[ei].seal.as_ref().ok_or(Error::InvalidState)?;
        let len = packet::protect(out, pn_off, pn_len, pn, payload_len, keys)?;
        self.spaces[ei].next_pkt_num += 1;
        if self.key_update.first_sent_pn.is_none() {
            self.key_update.first_sent_pn = Some(pn);
        }
        self.stats.sent += 1;
        self.stats.sent_bytes += len as u64;
        let in_flight = probe.is_some();
        self.recovery.on_packet_sent(
            Epoch::Application,
            SentPacket {
                pkt_num: pn,
                time_sent: now,
                size: if in_flight { len } else { 0 },
                ack_eliciting: true,
                in_flight,
                old_path: true,
                payload: probe.into_iter().collect(),
            },
            now,
        );
        Ok(len)
    }

    /// Writes the packet header; returns (pn offset, Length field offset).
    fn write_header(
        &self,
        b: &mut OctetsMut<'_>,
        epoch: Epoch,
        pn_len: usize,
        zero_rtt: bool,
    ) -> Result<(usize, Option<usize>)> {
        let dcid = self.cids.dcid();
        let pn_bits = (pn_len - 1) as u8;
        if epoch == Epoch::Application && !zero_rtt {
            let mut first = 0x40 | pn_bits;
            if self.key_update.phase {
                first |= 0x04;
            }
            b.put_u8(first)?;
            b.put_bytes(dcid)?;
            return Ok((b.off(), None));
        }
        let ty: u8 = match epoch {
            Epoch::Initial => 0x00,
            Epoch::Application => 0x01,
            Epoch::Handshake => 0x02,
        };
        b.put_u8(0xc0 | (ty << 4) | pn_bits)?;
        b.put_u32(self.version)?;
        b.put_u8(dcid.len() as u8)?;
        b.put_bytes(dcid)?;
        let scid = self.cids.scid();
        b.put_u8(scid.len() as u8)?;
        b.put_bytes(scid)?;
        if epoch == Epoch::Initial {
            let token: &[u8] = if self.is_server { &[] } else { &self.token };
            b.put_varint(token.len() as u64)?;
            b.put_bytes(token)?;
        }
        let len_off = b.off();
        // Two bytes always suffice: packets are below 16384 bytes.
        b.put_varint_with_len(0, 2)?;
        Ok((b.off(), Some(len_off)))
    }

    /// Writes an ACK frame for `epoch`. Returns the largest acknowledged.
    fn write_ack(
        &mut self,
        epoch: Epoch,
        w: &mut OctetsMut<'_>,
        now: Instant,
    ) -> Result<Option<u64>> {
        let ei = epoch as usize;
        let mut ranges = std::mem::take(&mut self.ack_scratch);
        ranges.clear();
        self.spaces[ei]
            .recv_pkt_need_ack
            .to_inclusive_desc(&mut ranges, super::space::MAX_ACK_RANGES);
        let Some(largest) = ranges.first().map(|r| *r.end()) else {
            self.ack_scratch = ranges;
            return Ok(None);
        };
        let sp = &self.spaces[ei];
        let delay = sp
            .largest_rx
            .map(|(_, t)| now.saturating_duration_since(t))
            .unwrap_or(Duration::ZERO);
        let exp = if epoch == Epoch::Application {
            self.local_params.ack_delay_exponent
        } else {
            3
        };
        let ack_delay = (delay.as_micros() as u64) >> exp;
        // Fit as many ranges as the room allows (newest first).
        let mut n = ranges.len();
        let f = loop {
            let f = Frame::Ack {
                ack_delay,
                ranges: AckRanges::Slice(&ranges[..n]),
                ecn: None,
            };
            if f.wire_len() <= w.cap() || n == 1 {
                break f;
            }
            n -= 1;
        };
        if f.wire_len() > w.cap() {
            self.ack_scratch = ranges;
            return Ok(None);
        }
        f.to_bytes(w)?;
        let sp = &mut self.spaces[ei];
        sp.ack_elicited = false;
        sp.ack_now = false;
        sp.ack_eliciting_unacked = 0;
        sp.first_unacked_at = None;
        self.ack_scratch = ranges;
        Ok(Some(largest))
    }

    /// Writes CONNECTION_CLOSE (RFC 9000 §10.2.3: an application close
    /// before 1-RTT becomes APPLICATION_ERROR in Initial/Handshake).
    fn write_close(&self, epoch: Epoch, w: &mut OctetsMut<'_>) -> Result<()> {
        let Some(err) = &self.local_error else {
            return Ok(());
        };
        let reason = &err.reason[..err.reason.len().min(w.cap().saturating_sub(24))];
        let f = if err.is_app && epoch == Epoch::Application {
            Frame::ApplicationClose {
                error_code: err.error_code,
                reason,
            }
        } else if err.is_app {
            Frame::ConnectionClose {
                error_code: crate::TransportErrorCode::ApplicationError.to_wire(),
                frame_type: 0,
                reason: &[],
            }
        } else {
            Frame::ConnectionClose {
                error_code: err.error_code,
                frame_type: 0,
                reason,
            }
        };
        if f.wire_len() <= w.cap() {
            f.to_bytes(w)?;
        }
        Ok(())
    }

    /// Writes everything but ACK and CLOSE. Returns (ack-eliciting,
    /// in-flight, carries stream or CRYPTO data sent before).
    fn write_frames(
        &mut self,
        epoch: Epoch,
        zero_rtt: bool,
        w: &mut OctetsMut<'_>,
        frames: &mut SentFrames,
    ) -> Result<(bool, bool, bool)> {
        let ei = epoch as usize;
        let mut any = false;
        let mut resent = false;

        // 0-RTT packets carry stream data and DATAGRAMs; control frames
        // (some not allowed there, RFC 9000 §12.4) wait for 1-RTT.
        if epoch == Epoch::Application && !zero_rtt {
            any |= self.write_control_frames(w, frames)?;
        }

        // CRYPTO (never in 0-RTT packets: RFC 9000 §17.2.3).
        let crypto_room = if zero_rtt { 0 } else { usize::MAX };
        loop {
            let room = w.cap().min(crypto_room);
            let sp = &mut self.spaces[ei];
            // Header upper bound: type + 8-byte offset + length.
            let max_data = room.saturating_sub(frame::crypto_header_len(u64::MAX >> 2, room));
            if max_data == 0 {
                break;
            }
            let Some((off, len, _)) = sp.crypto.send.next_chunk(max_data) else {
                break;
            };
            if len == 0 {
                break;
            }
            w.put_varint(frame::types::CRYPTO)?;
            w.put_varint(off)?;
            w.put_varint(len as u64)?;
            resent |= sp
                .crypto
                .send
                .emit(off, len, false, &mut w.rest_mut()[..len])?
                > 0;
            w.skip(len)?;
            frames.push(SentFrame::Crypto { offset: off, len });
            any = true;
        }

        if epoch == Epoch::Application {
            any |= self.write_datagrams(w, frames)?;
            // While a server validates a new peer address, the little the
            // anti-amplification limit allows goes to the validation (a
            // client validating its own new path has no such limit).
            if !self.is_server || self.path_validation.is_none() {
                let (stream_any, stream_resent) = self.write_stream_frames(w, frames)?;
                any |= stream_any;
                resent |= stream_resent;
            }
        }
        Ok((any, any, resent))
    }

    /// Flow-control, stream-control and connection-ID frames.
    fn write_control_frames(
        &mut self,
        w: &mut OctetsMut<'_>,
        frames: &mut SentFrames,
    ) -> Result<bool> {
        // Nearly every packet of a transfer has none: one check.
        if !self.control_pending() {
            return Ok(false);
        }
        let mut any = false;
        let put = |w: &mut OctetsMut<'_>, f: Frame<'_>| -> Result<bool> {
            if f.wire_len() > w.cap() {
                return Ok(false);
            }
            f.to_bytes(w)?;
            Ok(true)
        };

        if self.pending.handshake_done && self.is_server && put(w, Frame::HandshakeDone)? {
            frames.push(SentFrame::HandshakeDone);
            self.pending.handshake_done = false;
            any = true;
        }
        if let Some(v) = self.path_validation.as_mut() {
            // PATH_CHALLENGE is 9 bytes on the wire.
            if v.send && w.cap() >= 9 {
                let data = v.next_challenge()?;
                put(w, Frame::PathChallenge { data })?;
                v.send = false;
                frames.push(SentFrame::PathChallenge);
                any = true;
            }
        }
        // Responses for the current path; those for another one go out in
        // datagrams of their own (`send_response_elsewhere`).
        let mut i = 0;
        while let Some(r) = self.pending.q().path_responses.get(i).copied() {
            if !r.is_for(self.peer_addr, self.local_addr) {
                i += 1;
                continue;
            }
            if !put(w, Frame::PathResponse { data: r.data })? {
                break;
            }
            self.pending.q_mut().path_responses.remove(i);
            any = true;
        }
        if self.pending.max_data {
            let rtt = self.recovery.rtt().smoothed_rtt;
            let max = self.flow.update_max_data(self.now_hint(), rtt);
            if put(w, Frame::MaxData { max })? {
                frames.push(SentFrame::MaxData);
                self.pending.max_data = false;
                any = true;
            }
        }
        let mut msd = std::mem::take(&mut self.pending.max_stream_data);
        msd.sort_unstable();
        msd.dedup();
        let mut left = Vec::new();
        for id in msd {
            let rtt = self.recovery.rtt().smoothed_rtt;
            let Some(max) = self
                .streams
                .update_max_stream_data(id, self.now_hint(), rtt)
            else {
                continue;
            };
            if put(w, Frame::MaxStreamData { stream_id: id, max })? {
                frames.push(SentFrame::MaxStreamData { id });
                any = true;
            } else {
                left.push(id);
            }
        }
        self.pending.max_stream_data = left;
        for bidi in [true, false] {
            let flag = if bidi {
                &mut self.pending.max_streams_bidi
            } else {
                &mut self.pending.max_streams_uni
            };
            if !*flag {
                continue;
            }
            let max = if bidi {
                self.streams.update_max_streams_bidi()
            } else {
                self.streams.update_max_streams_uni()
            };
            if put(w, Frame::MaxStreams { bidi, max })? {
                frames.push(SentFrame::MaxStreams { bidi });
                let flag = if bidi {
                    &mut self.pending.max_streams_bidi
                } else {
                    &mut self.pending.max_streams_uni
                };
                *flag = false;
                any = true;
            }
        }
        if let Some(limit) = self.pending.data_blocked {
            if put(w, Frame::DataBlocked { limit })? {
                frames.push(SentFrame::DataBlocked);
                self.pending.data_blocked = None;
                self.flow.blocked_sent();
                any = true;
            }
        }
        for (id, limit) in self.streams.take_blocked() {
            if put(
                w,
                Frame::StreamDataBlocked {
                    stream_id: id,
                    limit,
                },
            )? {
                frames.push(SentFrame::StreamDataBlocked);
                any = true;
            }
        }
        for bidi in [true, false] {
            let blocked = if bidi {
                self.streams.streams_blocked_bidi()
            } else {
                self.streams.streams_blocked_uni()
            };
            if let Some(limit) = blocked {
                if put(w, Frame::StreamsBlocked { bidi, limit })? {
                    frames.push(SentFrame::StreamsBlocked);
                    if bidi {
                        self.streams.streams_blocked_bidi_sent();
                    } else {
                        self.streams.streams_blocked_uni_sent();
                    }
                    any = true;
                }
            }
        }
        while let Some((id, error_code, final_size)) =
            self.pending.q().reset_stream.front().copied()
        {
            if !put(
                w,
                Frame::ResetStream {
                    stream_id: id,
                    error_code,
                    final_size,
                },
            )? {
                break;
            }
            self.pending.q_mut().reset_stream.pop_front();
            frames.push(SentFrame::ResetStream {
                id,
                error_code,
                final_size,
            });
            any = true;
        }
        while let Some((id, error_code)) = self.pending.q().stop_sending.front().copied() {
            if !put(
                w,
                Frame::StopSending {
                    stream_id: id,
                    error_code,
                },
            )? {
                break;
            }
            self.pending.q_mut().stop_sending.pop_front();
            frames.push(SentFrame::StopSending { id, error_code });
            any = true;
        }
        while let Some(seq) = self.pending.q().new_cids.front().copied() {
            let Some(e) = self.cids.scid_entry(seq) else {
                self.pending.q_mut().new_cids.pop_front();
                continue;
            };
            let f = Frame::NewConnectionId {
                seq_num: seq,
                retire_prior_to: self.cids.retire_prior_to,
                conn_id: &e.cid,
                reset_token: e.reset_token.unwrap_or(0).to_be_bytes(),
            };
            if !put(w, f)? {
                break;
            }
            self.pending.q_mut().new_cids.pop_front();
            frames.push(SentFrame::NewConnectionId { seq });
            any = true;
        }
        while let Some(seq) = self.pending.q().retire_cids.front().copied() {
            if !put(w, Frame::RetireConnectionId { seq_num: seq })? {
                break;
            }
            self.pending.q_mut().retire_cids.pop_front();
            frames.push(SentFrame::RetireConnectionId { seq });
            any = true;
        }
        Ok(any)
    }

    fn write_datagrams(&mut self, w: &mut OctetsMut<'_>, frames: &mut SentFrames) -> Result<bool> {
        let mut any = false;
        let Some(q) = self.dgrams.as_deref_mut() else {
            return Ok(false);
        };
        while let Some(d) = q.send.front() {
            let f = Frame::Datagram {
                data: d,
                with_len: true,
            };
            if f.wire_len() > w.cap() {
                break;
            }
            f.to_bytes(w)?;
            q.send.pop_front();
            frames.push(SentFrame::Datagram);
            any = true;
        }
        Ok(any)
    }

    /// STREAM frames in priority order until the packet is full. Returns
    /// (any written, any carrying bytes sent before).
    fn write_stream_frames(
        &mut self,
        w: &mut OctetsMut<'_>,
        frames: &mut SentFrames,
    ) -> Result<(bool, bool)> {
        let mut any = false;
        let mut resent = false;
        let mut guard = 0;
        // The smallest of the header bounds below (a one-byte stream ID):
        // a full packet ends the loop before any stream lookup.
        const MIN_HDR: usize = 1 + 1 + 8 + 2;
        while w.cap() > MIN_HDR {
            let Some(id) = self.streams.peek_flushable() else {
                break;
            };
            guard += 1;
            if guard > 10_000 {
                break;
            }
            let room = w.cap();
            // Header upper bound: type + id + 8-byte offset + 2-byte length.
            let max_hdr = 1 + varint_len(id) + 8 + 2;
            if room <= max_hdr {
                break;
            }
            let Some(stream) = self.streams.get_mut(id) else {
                self.streams.on_flushed(id);
                continue;
            };
            let Ok(send) = stream.send_mut() else {
                self.streams.on_flushed(id);
                continue;
            };
            // All that is ready next: `avail` bytes from `off` (`fin_all`:
            // they end the stream).
            let Some((off, avail, fin_all)) = send.next_chunk(usize::MAX) else {
                self.streams.on_flushed(id);
                continue;
            };
            // With the exact header, a chunk that fills the rest of the
            // packet goes without a Length field (RFC 9000 §19.8: the frame
            // then extends to the end of the packet), so that full packets
            // are exactly as long as the room (the equal segments of a GSO
            // batch) and carry a few bytes more. A shorter one takes a
            // Length field, sized with the header's upper bound.
            let off_len = if off != 0 { varint_len(off) } else { 0 };
            let to_end = room - (1 + varint_len(id) + off_len);
            let (len, with_len) = if avail >= to_end {
                (to_end, false)
            } else {
                (avail.min(room - max_hdr), true)
            };
            let fin = fin_all && len == avail;
            let mut ty = frame::types::STREAM;
            if with_len {
                ty |= 0x02;
            }
            if off != 0 {
                ty |= 0x04;
            }
            if fin {
                ty |= 0x01;
            }
            w.put_varint(ty)?;
            w.put_varint(id)?;
            if off != 0 {
                w.put_varint(off)?;
            }
            if with_len {
                w.put_varint_with_len(len as u64, 2)?;
            }
            let again = send.emit(off, len, fin, &mut w.rest_mut()[..len])?;
            w.skip(len)?;
            if again > 0 {
                self.stats.stream_retrans_bytes += again as u64;
                resent = true;
            }
            let m = Membership::refresh_half(stream, SEND_BITS);
            frames.push(SentFrame::Stream {
                id,
                offset: off,
                len,
                fin,
            });
            any = true;
            // Moves the stream behind others of its urgency (round-robin
            // for incremental streams) or out of the set when done.
            self.streams.on_flushed_with(id, m);
        }
        Ok((any, resent))
    }

    /// The time flow-control auto-tuning uses (last packet receipt).
    pub(crate) fn now_hint(&self) -> Instant {
        self.spaces[Epoch::Application as usize]
            .largest_rx
            .map(|(_, t)| t)
            .unwrap_or_else(Instant::now)
    }
}
