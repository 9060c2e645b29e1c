//! Send half of a stream (and CRYPTO data): buffering, retransmission of
//! lost ranges, release of acknowledged memory, RESET_STREAM / STOP_SENDING.
//!
//! Flow control is applied when the application writes: [`SendBuf::write`]
//! accepts at most [`SendBuf::capacity`] bytes (stream limit and buffer
//! cap); the caller also truncates to the connection's credit and counts
//! the accepted bytes with `FlowControl::add_sent`. So everything buffered
//! may be sent without further checks, and a reset's final size
//! ([`SendBuf::off_back`]) equals the credit charged.
//!
//! Emitting is two-step so the connection can size the STREAM frame header
//! first: [`SendBuf::next_chunk`] says what goes next (lost ranges first,
//! lowest offset first, then new data), then [`SendBuf::emit`] copies the
//! bytes and records them as sent. [`SendBuf::emit_into`] does both.

use std::collections::VecDeque;
use std::sync::Arc;

use super::pool;
use crate::ranges::RangeSet;
use crate::{Error, Result};

/// Largest chunk stored: acknowledged memory is released per chunk, so
/// this bounds how much acked data can stay allocated.
const CHUNK_SIZE: usize = pool::BLOCK;

/// Bytes held for sending: copied in ([`SendBuf::write`]), or a range of
/// a buffer the application shares ([`SendBuf::write_shared`]: nothing is
/// copied until the packet is built, and many connections sending one
/// object hold one copy of it).
#[derive(Clone, Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared {
        buf: Arc<[u8]>,
        start: usize,
        end: usize,
    },
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            // `start..end` lies within `buf` (checked by `write_shared`).
            Chunk::Shared { buf, start, end } => buf.get(*start..*end).unwrap_or_default(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Chunk::Owned(v) => v.len(),
            Chunk::Shared { start, end, .. } => end - start,
        }
    }

    /// Gives an owned block back to the pool.
    fn release(self) {
        if let Chunk::Owned(v) = self {
            pool::give(v);
        }
    }
}

/// Buffer for one send direction.
#[derive(Clone, Debug)]
pub(crate) struct SendBuf {
    /// (offset, bytes) in offset order, contiguous, from the first byte not
    /// yet acknowledged (chunk granularity) to `off_back`.
    chunks: VecDeque<(u64, Chunk)>,
    /// Everything below was acknowledged.
    acked_front: u64,
    /// Acknowledged ranges above `acked_front`.
    acked: RangeSet,
    /// Sent ranges declared lost and not acknowledged since.
    lost: RangeSet,
    /// Next offset never sent.
    emit_off: u64,
    /// End of written data.
    off_back: u64,
    /// Final size once the application finished the stream.
    fin_off: Option<u64>,
    fin_sent: bool,
    fin_lost: bool,
    fin_acked: bool,
    /// Peer's limit (MAX_STREAM_DATA); `u64::MAX` for CRYPTO.
    max_data: u64,
    /// Max bytes held (unacknowledged plus unsent).
    cap: u64,
    /// A write was cut short by `max_data`; cleared by a higher limit.
    blocked: bool,
    blocked_reported: Option<u64>,
    /// Final size of a RESET_STREAM we sent, and whether it was acked.
    reset: Option<u64>,
    reset_acked: bool,
    /// Error code of the peer's STOP_SENDING.
    stopped: Option<u64>,
}

impl SendBuf {
    /// A stream send buffer with the peer's initial limit `max_data` and a
    /// cap on buffered bytes.
    pub(crate) fn new(max_data: u64, cap: u64) -> Self {
        SendBuf {
            chunks: VecDeque::new(),
            acked_front: 0,
            acked: RangeSet::unbounded(),
            lost: RangeSet::unbounded(),
            emit_off: 0,
            off_back: 0,
            fin_off: None,
            fin_sent: false,
            fin_lost: false,
            fin_acked: false,
            max_data,
            cap,
            blocked: false,
            blocked_reported: None,
            reset: None,
            reset_acked: false,
            stopped: None,
        }
    }

    /// A CRYPTO send buffer: no flow control, no cap.
    pub(crate) fn new_crypto() -> Self {
        SendBuf::new(u64::MAX, u64::MAX)
    }

    /// Bytes [`SendBuf::write`] would accept now.
    pub(crate) fn capacity(&self) -> u64 {
        let held = self.off_back - self.acked_front;
        self.max_data
            .saturating_sub(self.off_back)
            .min(self.cap.saturating_sub(held))
    }

    /// Buffers up to [`SendBuf::capacity`] bytes of `data`; `fin` applies
    /// only if all of `data` was accepted. Returns the bytes accepted.
    pub(crate) fn write(&mut self, data: &[u8], fin: bool) -> Result<usize> {
        let Some(n) = self.accept(data.len(), fin)? else {
            return Ok(0);
        };
        let mut rest = &data[..n];
        // Top up the last chunk first so small writes do not make one
        // allocation each.
        if let Some((_, Chunk::Owned(last))) = self.chunks.back_mut() {
            let room = CHUNK_SIZE.saturating_sub(last.len()).min(rest.len());
            last.extend_from_slice(&rest[..room]);
            rest = &rest[room..];
        }
        let mut off = self.off_back + (n - rest.len()) as u64;
        for piece in rest.chunks(CHUNK_SIZE) {
            // CRYPTO data is small and short-lived: exact allocations, so
            // handshakes do not fill the pool.
            let mut v = if self.max_data == u64::MAX {
                Vec::with_capacity(piece.len())
            } else {
                pool::take(piece.len())
            };
            v.extend_from_slice(piece);
            self.chunks.push_back((off, Chunk::Owned(v)));
            off += piece.len() as u64;
        }
        self.commit(n, fin && n == data.len());
        Ok(n)
    }

    /// Like [`SendBuf::write`] for `buf[start..start + len]`, holding a
    /// reference to `buf` instead of a copy. Returns the bytes accepted.
    pub(crate) fn write_shared_len(
        &mut self,
        buf: &Arc<[u8]>,
        start: usize,
        len: usize,
        fin: bool,
    ) -> Result<usize> {
        if start.checked_add(len).is_none_or(|end| end > buf.len()) {
            return Err(Error::BufferTooShort);
        }
        let Some(n) = self.accept(len, fin)? else {
            return Ok(0);
        };
        if n > 0 {
            self.chunks.push_back((
                self.off_back,
                Chunk::Shared {
                    buf: Arc::clone(buf),
                    start,
                    end: start + n,
                },
            ));
        }
        self.commit(n, fin && n == len);
        Ok(n)
    }

    /// How much of a write of `len` bytes the stream takes: None for a
    /// bare FIN repeated after the final size (accepted, nothing to do).
    fn accept(&mut self, len: usize, fin: bool) -> Result<Option<usize>> {
        if let Some(code) = self.stopped {
            return Err(Error::StreamStopped(code));
        }
        if self.reset.is_some() {
            return Err(Error::Done);
        }
        if self.fin_off.is_some() {
            // RFC 9000 §4.5: "An endpoint MUST NOT send data on a stream at
            // or beyond the final size."
            if len == 0 && fin {
                return Ok(None);
            }
            return Err(Error::FinalSize);
        }
        let stream_room = self.max_data.saturating_sub(self.off_back);
        let n = (len as u64).min(self.capacity()) as usize;
        if (len as u64) > stream_room {
            self.blocked = true;
        }
        if n == 0 && len > 0 {
            return Err(Error::Done);
        }
        Ok(Some(n))
    }

    /// `n` more bytes were buffered; `fin`: they end the stream.
    fn commit(&mut self, n: usize, fin: bool) {
        self.off_back += n as u64;
        if fin {
            self.fin_off = Some(self.off_back);
        }
    }

    /// What to send next, at most `max_len` bytes: `(offset, len, fin)`.
    /// Lost ranges come first, then new data. `None` when there is nothing
    /// to send (a bare FIN is `Some((off, 0, true))`).
    pub(crate) fn next_chunk(&self, max_len: usize) -> Option<(u64, usize, bool)> {
        if self.reset.is_some() {
            return None;
        }
        if let Some(r) = self.lost.first() {
            let len = ((r.end - r.start) as usize).min(max_len);
            let end = r.start + len as u64;
            let fin = self.fin_lost && self.fin_off == Some(end);
            if len == 0 && !fin {
                return None;
            }
            return Some((r.start, len, fin));
        }
        if self.fin_lost {
            if let Some(f) = self.fin_off {
                if f <= self.emit_off {
                    return Some((f, 0, true));
                }
            }
        }
        let len = ((self.off_back - self.emit_off) as usize).min(max_len);
        let end = self.emit_off + len as u64;
        let fin = !self.fin_sent && self.fin_off == Some(end);
        if len == 0 && !fin {
            return None;
        }
        Some((self.emit_off, len, fin))
    }

    /// Copies `[offset, offset + len)` into `out` and records it (and the
    /// FIN if `fin`) as sent. The range must lie between the acked prefix
    /// and `off_back` (normally what [`SendBuf::next_chunk`] returned, or a
    /// prefix of it). Returns how many of the bytes had been sent before:
    /// a retransmission.
    pub(crate) fn emit(
        &mut self,
        offset: u64,
        len: usize,
        fin: bool,
        out: &mut [u8],
    ) -> Result<usize> {
        if out.len() < len {
            return Err(Error::BufferTooShort);
        }
        let resent = self.mark_sent(offset, len, fin)?;
        self.copy_to(offset, &mut out[..len]);
        Ok(resent)
    }

    /// Records `[offset, offset + len)` (and the FIN if `fin`) as sent;
    /// returns how many of the bytes had been sent before.
    fn mark_sent(&mut self, offset: u64, len: usize, fin: bool) -> Result<usize> {
        let end = offset + len as u64;
        if offset < self.acked_front || end > self.off_back {
            return Err(Error::InvalidState);
        }
        if fin && self.fin_off != Some(end) {
            return Err(Error::InvalidState);
        }
        if !self.lost.is_empty() {
            self.lost.remove(offset..end);
        }
        // At most `len` (a usize).
        let resent = (end.min(self.emit_off).saturating_sub(offset)) as usize;
        self.emit_off = self.emit_off.max(end);
        if fin {
            self.fin_sent = true;
            self.fin_lost = false;
        }
        Ok(resent)
    }

    /// [`SendBuf::next_chunk`] then [`SendBuf::emit`] into `out`.
    pub(crate) fn emit_into(&mut self, out: &mut [u8]) -> Option<(u64, usize, bool)> {
        let (off, len, fin) = self.next_chunk(out.len())?;
        self.emit(off, len, fin, out).ok()?;
        Some((off, len, fin))
    }

    /// Index of the chunk holding `offset` (`chunks.len()` if none).
    fn chunk_index(&self, offset: u64) -> usize {
        // Every chunk but the last is CHUNK_SIZE long (`write` tops up the
        // last one first), so the index is arithmetic; the search is only
        // a fallback should that ever not hold.
        if let Some((front, _)) = self.chunks.front() {
            if let Ok(i) = usize::try_from(offset.saturating_sub(*front) / CHUNK_SIZE as u64) {
                if let Some((o, d)) = self.chunks.get(i) {
                    if *o <= offset && offset < o + d.len() as u64 {
                        return i;
                    }
                }
            }
        }
        self.chunks
            .partition_point(|(o, d)| o + d.len() as u64 <= offset)
    }

    /// Copies buffered bytes starting at `offset` into `out` (all of it).
    fn copy_to(&self, mut offset: u64, out: &mut [u8]) {
        let mut i = self.chunk_index(offset);
        let mut n = 0;
        while n < out.len() {
            let Some((o, d)) = self.chunks.get(i) else {
                break;
            };
            let d = d.bytes();
            let from = (offset - o) as usize;
            let take = (d.len() - from).min(out.len() - n);
            out[n..n + take].copy_from_slice(&d[from..from + take]);
            n += take;
            offset += take as u64;
            i += 1;
        }
    }

    /// A STREAM/CRYPTO frame carrying `[offset, offset + len)` (+FIN) was
    /// acknowledged: release memory of the acknowledged prefix.
    pub(crate) fn on_ack(&mut self, offset: u64, len: usize, fin: bool) {
        let end = offset + len as u64;
        if fin {
            self.fin_acked = true;
            self.fin_lost = false;
        }
        if end <= self.acked_front {
            return;
        }
        self.acked.insert(offset.max(self.acked_front)..end);
        self.lost.remove(offset..end);
        if let Some(r) = self.acked.first() {
            if r.start <= self.acked_front {
                self.acked_front = r.end;
                self.acked.remove_until(r.end);
            }
        }
        while let Some((o, d)) = self.chunks.front() {
            if o + d.len() as u64 > self.acked_front {
                break;
            }
            if let Some((_, d)) = self.chunks.pop_front() {
                d.release();
            }
        }
    }

    /// Gives back the memory an idle buffer still holds (emptied
    /// collections keep their allocations): for buffers that live as long
    /// as the connection, like the 1-RTT CRYPTO stream after a session
    /// ticket went out.
    pub(crate) fn release_idle_memory(&mut self) {
        if self.chunks.is_empty() && self.chunks.capacity() > 0 {
            self.chunks = VecDeque::new();
        }
        if self.acked.is_empty() {
            self.acked.clear();
        }
        if self.lost.is_empty() {
            self.lost.clear();
        }
    }

    /// A frame carrying `[offset, offset + len)` (+FIN) was declared lost:
    /// queue the parts not acknowledged since for retransmission.
    pub(crate) fn on_lost(&mut self, offset: u64, len: usize, fin: bool) {
        if self.reset.is_some() {
            // RFC 9000 §3.1: after RESET_STREAM, no (re)transmission.
            return;
        }
        self.queue_lost(offset, offset.saturating_add(len as u64));
        if fin && !self.fin_acked && self.fin_sent {
            self.fin_lost = true;
        }
    }

    /// Marks `[start, end)` lost, minus what was acknowledged or never sent.
    fn queue_lost(&mut self, start: u64, end: u64) {
        let start = start.max(self.acked_front);
        let end = end.min(self.emit_off);
        if start >= end {
            return;
        }
        self.lost.insert(start..end);
        // Small: the acknowledged ranges inside one lost frame.
        let acked: Vec<_> = self.acked.overlapping(start..end).collect();
        for r in acked {
            self.lost.remove(r);
        }
    }

    /// Queues every sent, unacknowledged byte (and an unacknowledged FIN)
    /// for retransmission: what a PTO probe carries (RFC 9002 §6.2.4).
    pub(crate) fn retransmit_unacked(&mut self) {
        if self.reset.is_some() {
            return;
        }
        self.queue_lost(self.acked_front, self.emit_off);
        if self.fin_sent && !self.fin_acked {
            self.fin_lost = true;
        }
    }

    /// Abandons the stream (RESET_STREAM, RFC 9000 §3.1); returns the final
    /// size to send: all written bytes, which is what was charged to flow
    /// control. Idempotent.
    pub(crate) fn reset(&mut self) -> u64 {
        if let Some(f) = self.reset {
            return f;
        }
        let f = self.off_back;
        self.reset = Some(f);
        self.fin_off = Some(f);
        self.chunks.clear();
        self.lost.clear();
        self.acked.clear();
        self.fin_lost = false;
        f
    }

    /// Final size of the RESET_STREAM we sent.
    pub(crate) fn reset_final_size(&self) -> Option<u64> {
        self.reset
    }

    /// Our RESET_STREAM was acknowledged (Reset Recvd).
    pub(crate) fn on_reset_acked(&mut self) {
        if self.reset.is_some() {
            self.reset_acked = true;
        }
    }

    /// The peer sent STOP_SENDING. RFC 9000 §3.5: "An endpoint that
    /// receives a STOP_SENDING frame MUST send a RESET_STREAM frame if the
    /// stream is in the "Ready" or "Send" state"; returns the final size
    /// to reset with, or `None` when no reset is needed (already reset, or
    /// everything was acknowledged).
    pub(crate) fn stop(&mut self, error_code: u64) -> Option<u64> {
        if self.stopped.is_none() {
            self.stopped = Some(error_code);
        }
        if self.reset.is_some() || self.is_complete() {
            return None;
        }
        Some(self.reset())
    }

    /// Error code of the peer's STOP_SENDING.
    pub(crate) fn stopped(&self) -> Option<u64> {
        self.stopped
    }

    /// Applies MAX_STREAM_DATA. RFC 9000 §4.1: "A sender MUST ignore any
    /// MAX_STREAM_DATA or MAX_DATA frames that do not increase flow control
    /// limits."
    pub(crate) fn update_max_data(&mut self, max: u64) {
        if max > self.max_data {
            self.max_data = max;
            self.blocked = false;
        }
    }

    /// The peer's limit.
    pub(crate) fn max_data(&self) -> u64 {
        self.max_data
    }

    /// The limit to report in STREAM_DATA_BLOCKED (once per limit) when a
    /// write was cut short by it.
    pub(crate) fn blocked_at(&self) -> Option<u64> {
        (self.blocked && self.reset.is_none() && self.blocked_reported != Some(self.max_data))
            .then_some(self.max_data)
    }

    /// Records that STREAM_DATA_BLOCKED was sent for the current limit.
    pub(crate) fn blocked_sent(&mut self) {
        self.blocked_reported = Some(self.max_data);
    }

    /// Whether there is something to (re)transmit.
    pub(crate) fn is_flushable(&self) -> bool {
        self.reset.is_none()
            && (!self.lost.is_empty()
                || self.emit_off < self.off_back
                || self.fin_lost
                || (self.fin_off.is_some() && !self.fin_sent))
    }

    /// Same as [`SendBuf::is_flushable`] (the CRYPTO streams' name).
    pub(crate) fn ready(&self) -> bool {
        self.is_flushable()
    }

    /// Whether the application can write (not finished, reset or stopped,
    /// and room for at least one byte).
    pub(crate) fn is_writable(&self) -> bool {
        self.fin_off.is_none() && self.stopped.is_none() && self.capacity() > 0
    }

    /// Terminal state: all data and FIN acknowledged (Data Recvd), or our
    /// reset acknowledged (Reset Recvd).
    pub(crate) fn is_complete(&self) -> bool {
        if self.reset.is_some() {
            return self.reset_acked;
        }
        self.fin_acked && Some(self.acked_front) == self.fin_off
    }

    /// Next offset never sent (quiche's `off_front`).
    pub(crate) fn off_front(&self) -> u64 {
        self.emit_off
    }

    /// End of written data.
    pub(crate) fn off_back(&self) -> u64 {
        self.off_back
    }

    /// Everything below was acknowledged.
    pub(crate) fn acked_front(&self) -> u64 {
        self.acked_front
    }

    /// Whether the application finished the stream (or it was reset).
    pub(crate) fn is_fin(&self) -> bool {
        self.fin_off.is_some()
    }

    /// Whether the FIN was sent at least once.
    pub(crate) fn fin_sent(&self) -> bool {
        self.fin_sent
    }

    /// Bytes held in memory (unacknowledged or unsent, chunk granularity).
    pub(crate) fn buffered(&self) -> usize {
        self.chunks.iter().map(|(_, d)| d.len()).sum()
    }
}
