//! Connection-facing operations on a [`StreamMap`]: one call per frame
//! received, per frame acknowledged or lost, and per application call. Each
//! validates the stream ID (RFC 9000 §2.1, §4.6, §19), applies the change
//! and refreshes the stream's set memberships.
//!
//! Connection-level accounting contract:
//! - received bytes (checked against our MAX_DATA): the `u64` returned by
//!   [`StreamMap::on_stream_frame`] and [`StreamMap::on_reset_stream`];
//! - consumed bytes (credit for the next MAX_DATA): what
//!   [`StreamMap::recv`] returns, plus the value returned by
//!   [`StreamMap::on_reset_stream`], plus [`StreamMap::take_discarded`]
//!   (unread data dropped by a reset or STOP_SENDING, and data arriving on
//!   such streams).

use std::time::{Duration, Instant};

use super::map::{Membership, RECV_BITS, SEND_BITS};
use super::{is_bidi, is_local, Stream, StreamMap};
use crate::{Error, Result};

impl StreamMap {
    fn existing_mut(&mut self, id: u64) -> Result<&mut Stream> {
        self.get_mut(id).ok_or(Error::InvalidStreamState(id))
    }

    /// Application read (quiche's `stream_recv`): `InvalidStreamState` for
    /// an unknown stream or one without a receive half, `Done` when nothing
    /// is readable, `StreamReset(code)` once the peer reset it.
    pub(crate) fn recv(&mut self, id: u64, out: &mut [u8]) -> Result<(usize, bool)> {
        let s = self.existing_mut(id)?;
        let res = s.recv_mut()?.read(out);
        let m = Membership::refresh_half(s, RECV_BITS);
        self.apply(id, m);
        res
    }

    /// Application write (quiche's `stream_send`), opening a local stream
    /// if needed. At most `conn_cap` bytes (the connection's credit) are
    /// taken; `fin` applies only if all of `buf` was taken. Returns the
    /// bytes taken, which the caller adds to `FlowControl::add_sent`.
    pub(crate) fn send(
        &mut self,
        id: u64,
        buf: &[u8],
        fin: bool,
        conn_cap: usize,
    ) -> Result<usize> {
        let n = buf.len().min(conn_cap);
        let s = self.get_or_create(id, true)?;
        let res = s.send_mut()?.write(&buf[..n], fin && n == buf.len());
        let m = Membership::refresh_half(s, SEND_BITS);
        self.apply(id, m);
        res
    }

    /// [`StreamMap::send`] of `buf[range]`, referenced instead of copied.
    pub(crate) fn send_shared(
        &mut self,
        id: u64,
        buf: &std::sync::Arc<[u8]>,
        range: std::ops::Range<usize>,
        fin: bool,
        conn_cap: usize,
    ) -> Result<usize> {
        let len = range.len();
        let n = len.min(conn_cap);
        let s = self.get_or_create(id, true)?;
        let res = s
            .send_mut()?
            .write_shared_len(buf, range.start, n, fin && n == len);
        let m = Membership::refresh_half(s, SEND_BITS);
        self.apply(id, m);
        res
    }

    /// Stream-level room for writing (quiche's `stream_capacity`, before
    /// the caller applies connection credit).
    pub(crate) fn capacity(&self, id: u64) -> Result<usize> {
        let send = self
            .get(id)
            .and_then(|s| s.send.as_ref())
            .ok_or(Error::InvalidStreamState(id))?;
        if let Some(code) = send.stopped() {
            return Err(Error::StreamStopped(code));
        }
        Ok(usize::try_from(send.capacity()).unwrap_or(usize::MAX))
    }

    /// The application stops reading: buffered and future data is dropped.
    /// Returns whether a STOP_SENDING is worth sending (data may still
    /// come: not already stopped, not reset, not all received).
    pub(crate) fn shutdown_read(&mut self, id: u64, error_code: u64) -> Result<bool> {
        let r = self.existing_mut(id)?.recv_mut()?;
        let want = r.stopped().is_none() && r.reset_code().is_none() && !r.all_received();
        let before = r.consumed();
        r.stop(error_code);
        let dropped = r.consumed() - before;
        self.discarded += dropped;
        self.update(id);
        Ok(want)
    }

    /// The application abandons writing: returns the final size for the
    /// RESET_STREAM to send (the caller keeps the error code), or `None`
    /// when already reset or everything was acknowledged.
    pub(crate) fn shutdown_write(&mut self, id: u64, _error_code: u64) -> Result<Option<u64>> {
        let send = self.existing_mut(id)?.send_mut()?;
        let out = if send.reset_final_size().is_some() || send.is_complete() {
            None
        } else {
            Some(send.reset())
        };
        self.update(id);
        Ok(out)
    }

    /// Whether the peer will send nothing more the application has not
    /// seen (quiche's `stream_finished`): the FIN was read, the stream was
    /// reset or stopped with its final size known, it has no receive half,
    /// or it no longer exists.
    pub(crate) fn is_finished(&self, id: u64) -> bool {
        match self.get(id).map(|s| s.recv.as_ref()) {
            None | Some(None) => true,
            Some(Some(r)) => r.final_size() == Some(r.consumed()) && !r.is_readable(),
        }
    }

    /// Whether the application can read from `id`.
    pub(crate) fn is_readable(&self, id: u64) -> bool {
        self.get(id).is_some_and(Stream::is_readable)
    }

    /// Whether a MAX_STREAM_DATA is due for `id`.
    pub(crate) fn should_update_max_stream_data(&self, id: u64) -> bool {
        self.get(id).is_some_and(Stream::is_almost_full)
    }

    /// Raises `id`'s receive limit (auto-tuning its window) and returns the
    /// value for MAX_STREAM_DATA; `None` when the stream is gone or no
    /// longer needs credit (final size known, or stopped).
    pub(crate) fn update_max_stream_data(
        &mut self,
        id: u64,
        now: Instant,
        rtt: Duration,
    ) -> Option<u64> {
        let r = self.get_mut(id)?.recv.as_mut()?;
        if r.is_fin() || r.is_draining() {
            return None;
        }
        let max = r.update_max_data(now, rtt);
        self.update(id);
        Some(max)
    }

    /// Collects `id` if both directions are done; returns whether it did.
    pub(crate) fn collect_if_complete(&mut self, id: u64) -> bool {
        self.get(id).is_some_and(Stream::is_complete) && self.collect(id)
    }

    /// STREAM frame. Returns how far the stream's highest received offset
    /// grew (for connection flow control). Frames for collected streams
    /// are ignored.
    pub(crate) fn on_stream_frame(
        &mut self,
        id: u64,
        offset: u64,
        data: &[u8],
        fin: bool,
    ) -> Result<u64> {
        // An open stream's frames (nearly all) take one lookup; only the
        // first frame of a stream (or one of our unidirectional streams,
        // an error) goes through the creation rules.
        let peer_may_send = is_bidi(id) || !is_local(id, self.is_server());
        let s = match self.get_mut(id) {
            Some(s) if peer_may_send => s,
            _ => match self.get_or_create_recv(id)? {
                Some(s) => s,
                None => return Ok(0),
            },
        };
        let r = s.recv_mut()?;
        let (high, consumed) = (r.highest_offset(), r.consumed());
        r.write(offset, data, fin)?;
        let newly = r.highest_offset() - high;
        let dropped = r.consumed() - consumed;
        let m = Membership::refresh_half(s, RECV_BITS);
        self.discarded += dropped;
        self.apply(id, m);
        Ok(newly)
    }

    /// RESET_STREAM frame. Returns how far the highest received offset grew
    /// (received and, the data being dropped, consumed at once); the unread
    /// data dropped is added to [`StreamMap::take_discarded`].
    pub(crate) fn on_reset_stream(
        &mut self,
        id: u64,
        error_code: u64,
        final_size: u64,
    ) -> Result<u64> {
        let Some(s) = self.get_or_create_recv(id)? else {
            return Ok(0);
        };
        let r = s.recv_mut()?;
        let consumed = r.consumed();
        let newly = r.reset(error_code, final_size)?;
        let dropped = (r.consumed() - consumed).saturating_sub(newly);
        self.discarded += dropped;
        self.update(id);
        Ok(newly)
    }

    /// STOP_SENDING frame: returns the final size of the RESET_STREAM to
    /// answer with (RFC 9000 §3.5), if one is needed.
    pub(crate) fn on_stop_sending(&mut self, id: u64, error_code: u64) -> Result<Option<u64>> {
        let Some(s) = self.get_or_create_send(id)? else {
            return Ok(None);
        };
        let out = s.send_mut()?.stop(error_code);
        self.update(id);
        Ok(out)
    }

    /// MAX_STREAM_DATA frame (decreases are ignored).
    pub(crate) fn on_max_stream_data(&mut self, id: u64, max: u64) -> Result<()> {
        if let Some(s) = self.get_or_create_send(id)? {
            s.send_mut()?.update_max_data(max);
            self.update(id);
        }
        Ok(())
    }

    /// MAX_STREAMS frame (decreases are ignored).
    pub(crate) fn on_max_streams(&mut self, bidi: bool, max: u64) {
        if bidi {
            self.update_peer_max_streams_bidi(max);
        } else {
            self.update_peer_max_streams_uni(max);
        }
    }

    /// STREAM_DATA_BLOCKED frame: validates the ID (and opens the stream,
    /// RFC 9000 §19.13 counts it as opening).
    pub(crate) fn on_stream_data_blocked(&mut self, id: u64) -> Result<()> {
        self.get_or_create_recv(id)?;
        Ok(())
    }

    /// A STREAM frame we sent was acknowledged.
    pub(crate) fn on_stream_acked(&mut self, id: u64, offset: u64, len: usize, fin: bool) {
        if let Some(s) = self.get_mut(id) {
            let Some(send) = s.send.as_mut() else {
                return;
            };
            send.on_ack(offset, len, fin);
            let m = Membership::refresh_half(s, SEND_BITS);
            self.apply(id, m);
        }
    }

    /// A STREAM frame we sent was lost.
    pub(crate) fn on_stream_lost(&mut self, id: u64, offset: u64, len: usize, fin: bool) {
        if let Some(send) = self.get_mut(id).and_then(|s| s.send.as_mut()) {
            send.on_lost(offset, len, fin);
            self.update(id);
        }
    }

    /// Our RESET_STREAM was acknowledged.
    pub(crate) fn on_reset_acked(&mut self, id: u64) {
        if let Some(send) = self.get_mut(id).and_then(|s| s.send.as_mut()) {
            send.on_reset_acked();
            self.update(id);
        }
    }

    /// Whether a lost STOP_SENDING for `id` should be sent again: we still
    /// discard its data and the peer has not finished or reset it.
    pub(crate) fn wants_stop_sending(&self, id: u64) -> bool {
        self.get(id)
            .and_then(|s| s.recv.as_ref())
            .is_some_and(|r| r.stopped().is_some() && !r.is_fin())
    }

    /// Streams due a STREAM_DATA_BLOCKED, with the limit; each is reported
    /// once per limit.
    pub(crate) fn take_blocked(&mut self) -> Vec<(u64, u64)> {
        let due: Vec<(u64, u64)> = self.blocked().collect();
        for &(id, _) in &due {
            if let Some(send) = self.get_mut(id).and_then(|s| s.send.as_mut()) {
                send.blocked_sent();
            }
            self.update(id);
        }
        due
    }

    /// Consumed-credit from dropped data since the last call (see the
    /// module docs); the caller adds it to `FlowControl::add_consumed`.
    pub(crate) fn take_discarded(&mut self) -> u64 {
        std::mem::take(&mut self.discarded)
    }
}
