//! DATAGRAM frames (RFC 9221): the application's queues and calls
//! (quiche's `dgram_*`).

use std::collections::VecDeque;

use super::Connection;
use crate::error::{Error, Result};

/// DATAGRAM payloads (RFC 9221) waiting for the application or to be
/// sent.
#[derive(Default)]
pub(crate) struct DatagramQueues {
    pub(crate) recv: VecDeque<Vec<u8>>,
    pub(crate) send: VecDeque<Vec<u8>>,
}

impl Connection {
    /// Sends an unreliable datagram (RFC 9221).
    pub fn dgram_send(&mut self, buf: &[u8]) -> Result<()> {
        self.dgram_admit(buf.len())?;
        self.dgram_send_vec(buf.to_vec())
    }

    /// Whether a datagram of `len` bytes may be queued now: `Done` when
    /// the queue is full.
    fn dgram_admit(&self, len: usize) -> Result<()> {
        let Some(max) = self.dgram_max_writable_len() else {
            return Err(Error::InvalidState);
        };
        if len > max {
            return Err(Error::BufferTooShort);
        }
        if self.dgram_send_queue_len() >= self.dgram_send_max {
            return Err(Error::Done);
        }
        Ok(())
    }

    /// Receives a datagram.
    pub fn dgram_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let Some(q) = self.dgrams.as_deref_mut() else {
            return Err(Error::Done);
        };
        let Some(d) = q.recv.front() else {
            return Err(Error::Done);
        };
        if d.len() > buf.len() {
            return Err(Error::BufferTooShort);
        }
        let d = q.recv.pop_front().unwrap_or_default();
        buf[..d.len()].copy_from_slice(&d);
        Ok(d.len())
    }

    /// Receives a datagram into a new vector.
    pub fn dgram_recv_vec(&mut self) -> Result<Vec<u8>> {
        self.dgrams
            .as_deref_mut()
            .and_then(|q| q.recv.pop_front())
            .ok_or(Error::Done)
    }

    /// Copies up to `len` bytes of the next datagram into `buf` without
    /// taking it; returns how many.
    pub fn dgram_recv_peek(&self, buf: &mut [u8], len: usize) -> Result<usize> {
        let d = self
            .dgrams
            .as_ref()
            .and_then(|q| q.recv.front())
            .ok_or(Error::Done)?;
        let n = len.min(d.len()).min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }

    /// Length of the next datagram to read, if any.
    pub fn dgram_recv_front_len(&self) -> Option<usize> {
        self.dgrams.as_ref()?.recv.front().map(Vec::len)
    }

    /// Sends `buf` as a datagram, taking the vector (no copy).
    pub fn dgram_send_vec(&mut self, buf: Vec<u8>) -> Result<()> {
        self.dgram_admit(buf.len())?;
        self.dgrams
            .get_or_insert_with(Box::default)
            .send
            .push_back(buf);
        Ok(())
    }

    /// Drops the queued, unsent datagrams for which `f` is true.
    pub fn dgram_purge_outgoing<F: Fn(&[u8]) -> bool>(&mut self, f: F) {
        if let Some(q) = self.dgrams.as_deref_mut() {
            q.send.retain(|d| !f(d));
        }
    }

    /// Number of received datagrams waiting to be read.
    pub fn dgram_recv_queue_len(&self) -> usize {
        self.dgrams.as_ref().map_or(0, |q| q.recv.len())
    }

    /// Bytes of the received datagrams waiting to be read.
    pub fn dgram_recv_queue_byte_size(&self) -> usize {
        self.dgrams
            .as_ref()
            .map_or(0, |q| q.recv.iter().map(Vec::len).sum())
    }

    /// Whether the queue of received datagrams is full (new ones are then
    /// dropped, RFC 9221 §5: delivery is unreliable).
    pub fn is_dgram_recv_queue_full(&self) -> bool {
        self.dgram_recv_queue_len() >= self.dgram_recv_max
    }

    /// Number of datagrams waiting to be sent.
    pub fn dgram_send_queue_len(&self) -> usize {
        self.dgrams.as_ref().map_or(0, |q| q.send.len())
    }

    /// Bytes of the datagrams waiting to be sent.
    pub fn dgram_send_queue_byte_size(&self) -> usize {
        self.dgrams
            .as_ref()
            .map_or(0, |q| q.send.iter().map(Vec::len).sum())
    }

    /// Whether the send queue is full (`dgram_send` then says `Done`).
    pub fn is_dgram_send_queue_full(&self) -> bool {
        self.dgram_send_queue_len() >= self.dgram_send_max
    }

    /// The largest datagram payload the peer accepts, once known.
    pub fn dgram_max_writable_len(&self) -> Option<usize> {
        if !self.peer_params_parsed || self.local_params.max_datagram_frame_size.is_none() {
            return None;
        }
        let peer_max = self.peer_params.max_datagram_frame_size? as usize;
        // 1-RTT header (1 + DCID + 4 pn) + tag + frame type + length.
        let overhead = 1 + self.cids.dcid().len() + 4 + crate::crypto::TAG_LEN + 1 + 2;
        Some(
            peer_max
                .min(self.max_send_udp_payload)
                .saturating_sub(overhead),
        )
    }
}
