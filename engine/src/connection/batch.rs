//! Batched send and receive: tarte's addition to the quiche API for
//! senders with UDP GSO (`UDP_SEGMENT`) and receivers with GRO, or any
//! I/O that moves several datagrams of one connection at once.
//!
//! [`Connection::send_batch`] writes datagrams back to back, every one but
//! the last exactly `segment_size` bytes, which is the layout one GSO send
//! takes; [`Connection::recv_batch`] takes the same layout. Both compute the
//! header-protection masks (RFC 9001 §5.4) of the batch's 1-RTT packets in
//! one multi-block AES call instead of one block per packet: a mask costs
//! ~1.2 ns instead of ~16 ns (see `HeaderProtectionBatch`). The packets
//! themselves are exactly what `send`/`recv` make and take.

use std::time::Instant;

use super::{Connection, RecvInfo, SendInfo};
use crate::crypto::{HeaderProtectionBatch, HP_SAMPLE_LEN};
use crate::error::{Error, Result};
use crate::packet::{self, MAX_PKT_NUM_LEN};
use crate::recovery::Epoch;

/// What [`Connection::send_batch`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// Bytes written in all.
    pub len: usize,
    /// Size of every datagram but the last, which may be shorter (the
    /// `UDP_SEGMENT` value of a GSO send).
    pub segment_size: usize,
    /// How many datagrams.
    pub segments: usize,
    /// Where they go and when (one path, one time for all).
    pub info: SendInfo,
}

/// A 1-RTT packet whose header protection waits for the end of a batch.
#[derive(Clone, Copy, Debug)]
struct Deferred {
    /// Offset of the packet's first byte in the batch buffer.
    start: usize,
    /// Offset of its packet number from `start`.
    pn_off: u16,
    pn_len: u8,
}

/// State of batched sends and receives, made on the first batch and
/// dropped when the connection goes idle without batching in between (a
/// cipher context per direction is ~0.9 KB that idle connections should
/// not keep, and making one costs what ~20 masks cost: a receiver, idle
/// after every ACK it sends, keeps it while batches keep coming).
#[derive(Default)]
pub(crate) struct Batch {
    /// Whether a batch ran since the sender last went idle.
    used: bool,
    seal_hp: Option<HeaderProtectionBatch>,
    open_hp: Option<HeaderProtectionBatch>,
    /// Whether 1-RTT packets sealed now defer their header protection.
    pub(super) deferring: bool,
    deferred: Vec<Deferred>,
    samples: Vec<u8>,
    masks: Vec<u8>,
    /// Receiving: the mask of the datagram being processed, if it was
    /// computed with the batch's, with the packet-number offset it is for.
    recv_mask: Option<(usize, [u8; 5])>,
}

impl Batch {
    /// Notes a packet sealed at `abs` whose header protection is deferred.
    pub(super) fn defer(&mut self, abs: usize, pn_off: usize, pn_len: usize) {
        self.deferred.push(Deferred {
            start: abs,
            // A packet number sits within the first 1 + 20 + 4 bytes of a
            // short header: both fit.
            pn_off: pn_off as u16,
            pn_len: pn_len as u8,
        });
    }

    /// The mask precomputed for a packet whose number starts at `pn_off`
    /// (taken: it serves one packet).
    pub(super) fn take_recv_mask(&mut self, pn_off: usize) -> Option<[u8; 5]> {
        match self.recv_mask.take() {
            Some((off, mask)) if off == pn_off => Some(mask),
            _ => None,
        }
    }
}

impl Connection {
    /// Writes up to `max_datagrams` datagrams into `out`, back to back,
    /// each of them `segment_size` bytes but the last, which may be
    /// shorter: the buffer of one GSO send (`UDP_SEGMENT` =
    /// `segment_size`). The batch ends early when the connection has
    /// nothing more to send, when a datagram comes out shorter than the
    /// first, when the pacer holds the next one back, and before anything
    /// for another path (answers to a probe elsewhere, path probes), which
    /// the next call writes alone. `Err(Done)` when there is nothing to
    /// send, as [`Connection::send`].
    pub fn send_batch(&mut self, out: &mut [u8], max_datagrams: usize) -> Result<BatchInfo> {
        self.send_batch_at(out, max_datagrams, Instant::now())
    }

    /// [`Connection::send_batch`] at an explicit time.
    pub fn send_batch_at(
        &mut self,
        out: &mut [u8],
        max_datagrams: usize,
        now: Instant,
    ) -> Result<BatchInfo> {
        if max_datagrams == 0 || out.is_empty() {
            return Err(Error::BufferTooShort);
        }
        // A path MTU probe is larger than the datagrams around it: it goes
        // alone.
        if let Some((len, info)) = self.send_pmtu_probe(out, now)? {
            return Ok(BatchInfo {
                len,
                segment_size: len,
                segments: 1,
                info,
            });
        }
        let deferring = max_datagrams > 1 && self.start_deferring()?;
        let mss = self.max_send_udp_payload_size();
        let first_room = out.len().min(mss);
        let (first, info) = match self.send_datagram(&mut out[..first_room], 0, false, now) {
            Ok(v) => v,
            Err(e) => {
                self.drop_deferred_from(0);
                if self.recovery.bytes_in_flight() == 0 {
                    self.release_batch_state();
                }
                return Err(e);
            }
        };
        let mut total = first;
        let mut segments = 1;
        // A short first datagram (little to send, an ACK) or one for
        // another path ends the batch: later segments could not be
        // longer, nor go elsewhere.
        let mut more =
            first == first_room && info.from == self.local_addr && info.to == self.peer_addr;
        // Once a datagram is one packet of stream data and nothing else
        // (`steady_stream_send`), the next one is too while window and
        // data last: the other conditions are not looked at again.
        let mut steady = more && self.steady_stream_send();
        while more && segments < max_datagrams && out.len() - total >= first {
            // Pacing (RFC 9002 §7.7): what the pacer would hold back
            // belongs to a later send.
            if self.recovery.next_send_time(now) > info.at {
                break;
            }
            let room = &mut out[total..total + first];
            let sent = if steady {
                self.send_stream_datagram(room, total, now)
                    .and_then(|n| n.ok_or(Error::Done))
            } else {
                self.send_datagram(room, total, true, now).map(|(n, _)| n)
            };
            match sent {
                Ok(n) => {
                    more = n == first;
                    total += n;
                    segments += 1;
                    steady = steady && self.steady_stream_send_continues();
                }
                Err(Error::Done) => break,
                Err(e) => {
                    // The datagram is incomplete: its packets go lost and
                    // are sent again; the batch so far stands.
                    tracing::debug!(trace_id = %self.trace_id, error = ?e, "batch ends on a failed datagram");
                    self.drop_deferred_from(total);
                    break;
                }
            }
        }
        if deferring {
            self.finish_deferred(&mut out[..total])?;
        }
        Ok(BatchInfo {
            len: total,
            segment_size: first,
            segments,
            info,
        })
    }

    /// Processes the datagrams in `buf`, back to back, each of them
    /// `segment_size` bytes but the last, which may be shorter (what one
    /// GRO receive gives, `UDP_GRO`), all from `info.from` to `info.to`.
    /// Each datagram is processed as [`Connection::recv`] would; returns
    /// the bytes processed. `Err(Done)` if the connection takes nothing
    /// (closed, draining); an error that closes the connection is
    /// returned at once, the datagrams after it left unprocessed.
    pub fn recv_batch(
        &mut self,
        buf: &mut [u8],
        segment_size: usize,
        info: RecvInfo,
    ) -> Result<usize> {
        self.recv_batch_at(buf, segment_size, info, Instant::now())
    }

    /// [`Connection::recv_batch`] at an explicit time.
    pub fn recv_batch_at(
        &mut self,
        buf: &mut [u8],
        segment_size: usize,
        info: RecvInfo,
        now: Instant,
    ) -> Result<usize> {
        if buf.is_empty() || segment_size == 0 {
            return Err(Error::BufferTooShort);
        }
        let count = buf.len().div_ceil(segment_size);
        let pn_off = 1 + self.cids.scid().len();
        // Masks for the segments that start with a short header (a 1-RTT
        // packet fills its datagram), computed before any is decrypted:
        // decryption in place changes only its own segment.
        let masked = count > 1 && self.precompute_recv_masks(buf, segment_size, pn_off)?;
        let mut done = 0;
        for (k, seg) in buf.chunks_mut(segment_size).enumerate() {
            let len = seg.len();
            if masked {
                self.set_recv_mask(k, seg, pn_off);
            }
            let r = self.recv_at(seg, info, now);
            if let Some(b) = self.batch.as_deref_mut() {
                b.recv_mask = None;
            }
            match r {
                Ok(_) => done += len,
                Err(Error::Done) if done > 0 => return Ok(done),
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Makes the batch state, with the mask context of the 1-RTT sealing
    /// (`sealing`) or opening key; false while there is no such key.
    fn ready_batch(&mut self, sealing: bool) -> Result<bool> {
        let sp = &self.spaces[Epoch::Application as usize];
        let Some(keys) = (if sealing { &sp.seal } else { &sp.open }).as_deref() else {
            return Ok(false);
        };
        let b = self.batch.get_or_insert_with(Default::default);
        b.used = true;
        let hp = if sealing {
            &mut b.seal_hp
        } else {
            &mut b.open_hp
        };
        if hp.is_none() {
            *hp = Some(keys.hp.batch()?);
        }
        Ok(true)
    }

    /// Starts deferring header protection; false without a 1-RTT key.
    fn start_deferring(&mut self) -> Result<bool> {
        if !self.ready_batch(true)? {
            return Ok(false);
        }
        if let Some(b) = self.batch.as_deref_mut() {
            b.deferring = true;
            b.deferred.clear();
        }
        Ok(true)
    }

    /// Forgets deferred packets from offset `from` on (a datagram that
    /// will not be sent).
    fn drop_deferred_from(&mut self, from: usize) {
        if let Some(b) = self.batch.as_deref_mut() {
            b.deferred.retain(|d| d.start < from);
            if from == 0 {
                b.deferring = false;
            }
        }
    }

    /// Applies the deferred header protection to the packets in `out`.
    fn finish_deferred(&mut self, out: &mut [u8]) -> Result<()> {
        let Some(b) = self.batch.as_deref_mut() else {
            return Ok(());
        };
        b.deferring = false;
        if b.deferred.is_empty() {
            return Ok(());
        }
        b.samples.clear();
        for d in &b.deferred {
            // RFC 9001 §5.4.2: the sample starts 4 bytes after the packet
            // number's first byte; every packet is padded to hold it.
            let s = d.start + usize::from(d.pn_off) + MAX_PKT_NUM_LEN;
            let sample = out.get(s..s + HP_SAMPLE_LEN).ok_or(Error::InvalidState)?;
            b.samples.extend_from_slice(sample);
        }
        let hp = b.seal_hp.as_mut().ok_or(Error::InvalidState)?;
        hp.masks(&b.samples, &mut b.masks)?;
        for (i, d) in b.deferred.drain(..).enumerate() {
            let mask = mask_at(&b.masks, i);
            packet::apply_mask(
                &mut out[d.start..],
                usize::from(d.pn_off),
                usize::from(d.pn_len),
                &mask,
            )?;
        }
        Ok(())
    }

    /// Computes the header-protection masks of the short-header segments
    /// of `buf` with the 1-RTT opening key; false when there is none yet.
    fn precompute_recv_masks(
        &mut self,
        buf: &[u8],
        segment_size: usize,
        pn_off: usize,
    ) -> Result<bool> {
        if !self.ready_batch(false)? {
            return Ok(false);
        }
        let Some(b) = self.batch.as_deref_mut() else {
            return Ok(false);
        };
        b.samples.clear();
        let s = pn_off + MAX_PKT_NUM_LEN;
        for seg in buf.chunks(segment_size) {
            // Segments without a sample get a dummy slot (they are long
            // headers, or too short to be a packet, and never use it).
            match seg.get(s..s + HP_SAMPLE_LEN) {
                Some(sample) if seg[0] & 0x80 == 0 => b.samples.extend_from_slice(sample),
                _ => b.samples.extend_from_slice(&[0; HP_SAMPLE_LEN]),
            }
        }
        let hp = b.open_hp.as_mut().ok_or(Error::InvalidState)?;
        hp.masks(&b.samples, &mut b.masks)?;
        Ok(true)
    }

    /// Offers segment `k`'s precomputed mask to the packet it starts with.
    fn set_recv_mask(&mut self, k: usize, seg: &[u8], pn_off: usize) {
        let Some(b) = self.batch.as_deref_mut() else {
            return;
        };
        b.recv_mask = None;
        if seg[0] & 0x80 != 0 || seg.len() < pn_off + MAX_PKT_NUM_LEN + HP_SAMPLE_LEN {
            return;
        }
        b.recv_mask = Some((pn_off, mask_at(&b.masks, k)));
    }

    /// The sender is idle: drops the batch state if no batch ran since it
    /// last was (see [`Batch`]).
    pub(super) fn release_batch_state(&mut self) {
        match self.batch.as_deref_mut() {
            Some(b) if b.deferring => (),
            Some(b) if b.used => b.used = false,
            Some(_) => self.batch = None,
            None => (),
        }
    }
}

/// The mask of sample `i` in the output of `HeaderProtectionBatch::masks`
/// (16-byte slots, the mask in the first 5 bytes of each).
fn mask_at(masks: &[u8], i: usize) -> [u8; 5] {
    let mut mask = [0u8; 5];
    mask.copy_from_slice(&masks[i * HP_SAMPLE_LEN..i * HP_SAMPLE_LEN + 5]);
    mask
}
