//! Receive half of a stream (and CRYPTO data): out-of-order reassembly,
//! final-size rules (RFC 9000 §4.5) and stream flow control (§4.1, §4.2).
//!
//! Accounting contract for the connection: around every call, compare
//! [`RecvBuf::highest_offset`] (growth counts toward the connection's
//! received bytes, checked against MAX_DATA) and [`RecvBuf::consumed`]
//! (growth is credit to return through MAX_DATA: bytes read, or discarded
//! after STOP_SENDING / RESET_STREAM).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::flow::Window;
use super::pool;
use crate::{Error, Result};

/// A run of in-order data up to this size grows as a plain vector: a
/// little unread data on many streams costs what it weighs. Half a block,
/// so a run moved into a block is at least half full: allocation stays
/// within twice the data held (as with a doubling vector), plus at most
/// one block for the run at a bulk stream's read offset.
const SMALL_RUN: usize = pool::BLOCK / 2;

/// Data of one contiguous chunk; `pos` bytes at its front were read.
#[derive(Clone, Debug)]
struct Chunk {
    data: Vec<u8>,
    pos: usize,
}

/// Reassembly buffer for one receive direction.
#[derive(Clone, Debug)]
pub(crate) struct RecvBuf {
    /// Stored chunks keyed by the offset of `data[0]`; disjoint, all above
    /// `off`. Memory is bounded by `max_data - off` (or the crypto cap).
    chunks: BTreeMap<u64, Chunk>,
    /// Read offset: everything below was delivered or discarded.
    off: u64,
    /// Highest offset received (end of the furthest frame).
    len: u64,
    /// The final size, once known (FIN or RESET_STREAM).
    fin_off: Option<u64>,
    /// The application saw the FIN.
    fin_read: bool,
    /// Flow-control limit we advertised.
    max_data: u64,
    window: Window,
    /// CRYPTO buffer: no flow control, data capped at `off + cap`.
    crypto_cap: Option<u64>,
    /// RESET_STREAM received: (error code, delivered to the application).
    reset: Option<(u64, bool)>,
    /// We sent STOP_SENDING: incoming data is discarded.
    stopped: Option<u64>,
    /// A run of this stream outgrew SMALL_RUN: later runs start in a
    /// block (the peer has shown it sends bulk data here).
    bulk: bool,
}

impl RecvBuf {
    /// A stream receive buffer advertising `max_data`; auto-tuning may grow
    /// the window up to `max_window`.
    pub(crate) fn new(max_data: u64, max_window: u64) -> Self {
        RecvBuf {
            chunks: BTreeMap::new(),
            off: 0,
            len: 0,
            fin_off: None,
            fin_read: false,
            max_data,
            window: Window::new(max_data, max_window),
            crypto_cap: None,
            reset: None,
            stopped: None,
            bulk: false,
        }
    }

    /// A CRYPTO data buffer: data more than `cap` bytes past the read
    /// offset raises CryptoBufferExceeded (RFC 9000 §7.5).
    pub(crate) fn new_crypto(cap: u64) -> Self {
        let mut b = RecvBuf::new(u64::MAX, u64::MAX);
        b.crypto_cap = Some(cap);
        b
    }

    /// Gives back the memory an idle buffer still holds (see
    /// `SendBuf::release_idle_memory`).
    pub(crate) fn release_idle_memory(&mut self) {
        if self.chunks.is_empty() {
            self.chunks = BTreeMap::new();
        }
    }

    /// Accepts a STREAM (or CRYPTO) frame's data at `offset`.
    pub(crate) fn write(&mut self, offset: u64, data: &[u8], fin: bool) -> Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(Error::FlowControl)?;
        if let Some(cap) = self.crypto_cap {
            // RFC 9000 §7.5: an endpoint that cannot buffer CRYPTO data
            // "MAY close the connection with a CRYPTO_BUFFER_EXCEEDED".
            if end > self.off.saturating_add(cap) {
                return Err(Error::CryptoBufferExceeded);
            }
        } else if end > self.max_data {
            // RFC 9000 §4.1: violating the advertised stream limit is a
            // FLOW_CONTROL_ERROR.
            return Err(Error::FlowControl);
        }
        if let Some(final_size) = self.fin_off {
            // RFC 9000 §4.5: "A receiver SHOULD treat receipt of data at or
            // beyond the final size as an error of type FINAL_SIZE_ERROR";
            // "Once a final size for a stream is known, it cannot change."
            if end > final_size || (fin && end != final_size) {
                return Err(Error::FinalSize);
            }
        }
        if fin {
            // A FIN below data already received would shrink the stream.
            if end < self.len {
                return Err(Error::FinalSize);
            }
            self.fin_off = Some(end);
        }
        // An empty frame without FIN carries no byte: it does not move the
        // highest offset (the final size counts bytes, §4.5).
        if !data.is_empty() || fin {
            self.len = self.len.max(end);
        }

        if self.reset.is_some() || self.stopped.is_some() {
            // RFC 9000 §3.2 / §3.5: data after RESET_STREAM or STOP_SENDING
            // is discarded; its credit counts as consumed at once.
            self.off = self.len;
            return Ok(());
        }
        self.store(offset, data);
        Ok(())
    }

    /// Stores the parts of `[offset, offset + data.len())` not yet held,
    /// appending to an adjacent predecessor where possible so in-order data
    /// grows one chunk. Work is per chunk, never per byte.
    fn store(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        let mut cur = offset.max(self.off);
        while cur < end {
            // In-order arrival continues the last chunk: no tree search.
            let last = self
                .chunks
                .last_key_value()
                .map(|(&k, c)| (k, k + c.data.len() as u64, c.pos));
            let beyond_all = last.is_none_or(|(_, e, _)| e <= cur);
            // Skip over a chunk that already covers `cur`.
            let prev = if beyond_all {
                last
            } else {
                self.chunks
                    .range(..=cur)
                    .next_back()
                    .map(|(&k, c)| (k, k + c.data.len() as u64, c.pos))
            };
            let mut append_to = None;
            if let Some((k, c_end, pos)) = prev {
                if c_end > cur {
                    cur = c_end;
                    continue;
                }
                // Never grow a partly read chunk: its read prefix would
                // stay allocated for as long as data keeps arriving.
                if c_end == cur && pos == 0 {
                    append_to = Some(k);
                }
            }
            let next_start = if beyond_all {
                None
            } else {
                self.chunks.range(cur..).next().map(|(&k, _)| k)
            };
            let piece_end = next_start.map_or(end, |n| n.min(end));
            let piece = &data[(cur - offset) as usize..(piece_end - offset) as usize];
            // Bulk data lands in pooled blocks, copied once and never
            // reallocated: a run grows as a plain vector up to SMALL_RUN,
            // then moves into a block, fills it, and continues in the next
            // block. (CRYPTO data is small: plain vectors.)
            let blocks = self.crypto_cap.is_none();
            let bulk = &mut self.bulk;
            let appended = append_to.and_then(|k| {
                // In order, the chunk appended to is the last one: reached
                // without a search.
                let c = if beyond_all {
                    self.chunks.last_entry()?.into_mut()
                } else {
                    self.chunks.get_mut(&k)?
                };
                let new_len = c.data.len() + piece.len();
                if !blocks || new_len <= c.data.capacity() || new_len <= SMALL_RUN {
                    // Fits, or still small.
                } else if new_len <= pool::BLOCK {
                    *bulk = true;
                    let mut b = pool::take(pool::BLOCK);
                    b.extend_from_slice(&c.data);
                    drop(std::mem::replace(&mut c.data, b));
                } else {
                    return None;
                }
                c.data.extend_from_slice(piece);
                Some(k)
            });
            let key = match appended {
                Some(k) => k,
                None => {
                    // After a full block comes the next block, and a
                    // bulk stream's next readable run starts in one;
                    // anything else (a first or isolated piece) gets its
                    // own size, so scattered tiny frames cannot make us
                    // allocate more than they carry.
                    let in_order = append_to.is_some() || (self.bulk && cur == self.off);
                    let data = if blocks && in_order && piece.len() <= pool::BLOCK {
                        let mut v = pool::take(pool::BLOCK);
                        v.extend_from_slice(piece);
                        v
                    } else {
                        piece.to_vec()
                    };
                    self.chunks.insert(cur, Chunk { data, pos: 0 });
                    cur
                }
            };
            // Filling a gap exactly: merge the following chunk in when it
            // fits the allocation or is small (reading crosses chunk
            // borders anyway).
            if next_start == Some(piece_end) {
                let fits = match (self.chunks.get(&key), self.chunks.get(&piece_end)) {
                    (Some(c), Some(n)) => {
                        let merged = c.data.len() + n.data.len() - n.pos;
                        merged <= c.data.capacity().max(SMALL_RUN)
                    }
                    _ => false,
                };
                if fits {
                    if let Some(next) = self.chunks.remove(&piece_end) {
                        if let Some(c) = self.chunks.get_mut(&key) {
                            c.data.extend_from_slice(&next.data[next.pos..]);
                        }
                    }
                }
            }
            cur = piece_end;
        }
    }

    /// Copies contiguous data into `out`. Returns the bytes copied and
    /// whether the FIN was reached; `Done` when nothing is readable;
    /// `StreamReset(code)` once the peer reset the stream.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> Result<(usize, bool)> {
        // After STOP_SENDING the application gave up on this direction; a
        // later reset is not reported to it.
        if self.stopped.is_some() {
            return Err(Error::Done);
        }
        if let Some((code, delivered)) = &mut self.reset {
            *delivered = true;
            return Err(Error::StreamReset(*code));
        }
        let mut n = 0;
        while n < out.len() {
            let Some(mut entry) = self.chunks.first_entry() else {
                break;
            };
            let start = *entry.key();
            let c = entry.get_mut();
            if start + c.pos as u64 != self.off {
                break;
            }
            let avail = &c.data[c.pos..];
            let take = avail.len().min(out.len() - n);
            out[n..n + take].copy_from_slice(&avail[..take]);
            c.pos += take;
            n += take;
            self.off += take as u64;
            if c.pos == c.data.len() {
                pool::give(entry.remove().data);
            }
        }
        let fin = self.fin_off == Some(self.off);
        if n == 0 && (!fin || self.fin_read) {
            return Err(Error::Done);
        }
        if fin {
            self.fin_read = true;
        }
        Ok((n, fin))
    }

    /// Whether [`RecvBuf::read`] would return something (data, FIN or the
    /// reset).
    pub(crate) fn is_readable(&self) -> bool {
        if self.stopped.is_some() {
            return false;
        }
        if let Some((_, delivered)) = self.reset {
            return !delivered;
        }
        if self.fin_off == Some(self.off) && !self.fin_read {
            return true;
        }
        self.chunks
            .first_key_value()
            .is_some_and(|(&k, c)| k + c.pos as u64 == self.off)
    }

    /// Handles RESET_STREAM. Returns how far the highest received offset
    /// grew (bytes to count toward connection flow control, §4.5).
    pub(crate) fn reset(&mut self, error_code: u64, final_size: u64) -> Result<u64> {
        // RFC 9000 §4.5: the final size cannot change, and cannot be below
        // data already received.
        if let Some(f) = self.fin_off {
            if f != final_size {
                return Err(Error::FinalSize);
            }
        }
        if final_size < self.len {
            return Err(Error::FinalSize);
        }
        if final_size > self.max_data {
            return Err(Error::FlowControl);
        }
        // A duplicate, or a reset after the application read everything
        // (RFC 9000 §3.2: "Data Read" is terminal): nothing changes.
        if self.reset.is_some() || self.fin_read {
            return Ok(0);
        }
        let grown = final_size - self.len;
        self.len = final_size;
        self.fin_off = Some(final_size);
        self.reset = Some((error_code, false));
        // The data will never be read: drop it and return its credit.
        self.chunks.clear();
        self.off = final_size;
        Ok(grown)
    }

    /// We sent STOP_SENDING: drop buffered data, discard what still comes.
    pub(crate) fn stop(&mut self, error_code: u64) {
        if self.stopped.is_none() {
            self.stopped = Some(error_code);
        }
        self.chunks.clear();
        self.off = self.len;
    }

    /// The error code we sent STOP_SENDING with.
    pub(crate) fn stopped(&self) -> Option<u64> {
        self.stopped
    }

    /// The peer's RESET_STREAM error code.
    pub(crate) fn reset_code(&self) -> Option<u64> {
        self.reset.map(|(c, _)| c)
    }

    /// Whether incoming data is being discarded (stopped or reset).
    pub(crate) fn is_draining(&self) -> bool {
        self.stopped.is_some() || self.reset.is_some()
    }

    /// The limit we advertised.
    pub(crate) fn max_data(&self) -> u64 {
        self.max_data
    }

    /// Current window (grows by auto-tuning).
    pub(crate) fn window(&self) -> u64 {
        self.window.size
    }

    /// Whether a MAX_STREAM_DATA is due: more than half the window was
    /// consumed, and the peer may still send (no final size yet).
    pub(crate) fn should_update_max_data(&self) -> bool {
        // No credit for a stream we asked the peer to stop sending on.
        self.crypto_cap.is_none()
            && self.stopped.is_none()
            && self.fin_off.is_none()
            && self.max_data.saturating_sub(self.off) < self.window.size / 2
    }

    /// Raises the limit to `consumed + window` (auto-tuning the window
    /// first) and returns the value for MAX_STREAM_DATA.
    pub(crate) fn update_max_data(&mut self, now: Instant, rtt: Duration) -> u64 {
        self.window.autotune(now, rtt);
        self.max_data = self.max_data.max(self.off.saturating_add(self.window.size));
        self.max_data
    }

    /// Highest offset received (flow-control credit used by the peer).
    pub(crate) fn highest_offset(&self) -> u64 {
        self.len
    }

    /// Read offset: bytes delivered to the application or discarded.
    pub(crate) fn consumed(&self) -> u64 {
        self.off
    }

    /// The final size, once known.
    pub(crate) fn final_size(&self) -> Option<u64> {
        self.fin_off
    }

    /// Whether the final size is known (Size Known / Reset Recvd).
    pub(crate) fn is_fin(&self) -> bool {
        self.fin_off.is_some()
    }

    /// Whether everything up to the final size was received.
    pub(crate) fn all_received(&self) -> bool {
        match self.fin_off {
            // Chunks are disjoint and above `off`: no gap iff they add up.
            Some(f) if self.reset.is_none() => self.off + self.buffered() as u64 == f,
            _ => false,
        }
    }

    /// Whether this direction reached a terminal state: the FIN was read,
    /// the reset was delivered, or (after STOP_SENDING) the final size is
    /// known.
    pub(crate) fn is_complete(&self) -> bool {
        if self.stopped.is_some() {
            return self.fin_off.is_some();
        }
        match self.reset {
            Some((_, delivered)) => delivered,
            None => self.fin_read,
        }
    }

    /// Bytes currently buffered (for tests and stats).
    pub(crate) fn buffered(&self) -> usize {
        self.chunks.values().map(|c| c.data.len() - c.pos).sum()
    }

    /// Number of stored chunks (for tests and stats).
    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Bytes allocated for held data (tests: memory per buffered byte).
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        self.chunks.values().map(|c| c.data.capacity()).sum()
    }
}
