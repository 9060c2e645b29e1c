//! Streams (RFC 9000 §2-§4): send and receive buffers, per-stream and
//! connection flow control, stream states, stream IDs and limits, and the
//! priority order (RFC 9218) in which streams are flushed.
//!
//! Sans-IO and clock-free: time comes in as arguments. The connection owns
//! a [`StreamMap`] and a [`FlowControl`] and drives them from frames.

// The connection state machine that calls this is being written alongside.
#![allow(dead_code)]

mod flow;
mod map;
mod ops;
mod pool;
#[cfg(any(test, feature = "testing"))]
pub(crate) use pool::pooled_bytes;
mod recv;
mod send;

#[cfg(test)]
mod tests;

// Unused until the connection module calls them.
#[allow(unused_imports)]
pub(crate) use flow::FlowControl;
#[allow(unused_imports)]
pub(crate) use map::{Membership, StreamLimits, StreamMap, SEND_BITS};
pub(crate) use recv::RecvBuf;
pub(crate) use send::SendBuf;

/// Default urgency, as quiche's transport: after every stream the
/// application prioritized with an RFC 9218 urgency (0-7), so that an h3
/// layer can map its urgencies onto the low values.
pub(crate) const DEFAULT_URGENCY: u8 = 127;

/// Whether `id` was opened by the client (RFC 9000 §2.1: least significant
/// bit 0).
pub(crate) fn is_client_initiated(id: u64) -> bool {
    id & 0x1 == 0
}

/// Whether `id` was opened by this endpoint.
pub(crate) fn is_local(id: u64, is_server: bool) -> bool {
    // RFC 9000 §2.1: bit 0x01 is 1 for server-initiated streams.
    (id & 0x1 == 1) == is_server
}

/// Whether `id` is bidirectional (RFC 9000 §2.1: bit 0x02 is 0).
pub(crate) fn is_bidi(id: u64) -> bool {
    id & 0x2 == 0
}

/// Sending-part states (RFC 9000 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendState {
    /// Nothing sent yet.
    Ready,
    /// Sending data.
    Send,
    /// FIN sent, waiting for acknowledgements.
    DataSent,
    /// All data and FIN acknowledged (terminal).
    DataRecvd,
    /// RESET_STREAM sent.
    ResetSent,
    /// RESET_STREAM acknowledged (terminal).
    ResetRecvd,
}

/// Receiving-part states (RFC 9000 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecvState {
    /// Receiving, final size unknown.
    Recv,
    /// Final size known, data missing.
    SizeKnown,
    /// All data received, not all read.
    DataRecvd,
    /// All data read (terminal).
    DataRead,
    /// RESET_STREAM received, not yet delivered.
    ResetRecvd,
    /// Reset delivered to the application (terminal).
    ResetRead,
}

/// One stream: the halves it has (a unidirectional stream has one), its
/// priority and its origin.
#[derive(Clone, Debug)]
pub(crate) struct Stream {
    /// The stream ID.
    pub(crate) id: u64,
    /// Receive half; `None` on a locally initiated unidirectional stream.
    pub(crate) recv: Option<RecvBuf>,
    /// Send half; `None` on a peer-initiated unidirectional stream.
    pub(crate) send: Option<SendBuf>,
    /// Urgency, lower first (RFC 9218 uses 0-7; any `u8` is accepted).
    pub(crate) urgency: u8,
    /// RFC 9218 incremental flag.
    pub(crate) incremental: bool,
    /// Opened by this endpoint.
    pub(crate) is_local: bool,
    /// Bidirectional.
    pub(crate) is_bidi: bool,
    /// Which of the map's sets (readable, writable, almost-full, blocked)
    /// the stream is in, so that an update that changes nothing costs no
    /// set operation.
    pub(crate) sets: u8,
}

impl Stream {
    /// A stream with the given halves' initial limits.
    pub(crate) fn new(
        id: u64,
        is_server: bool,
        recv: Option<RecvBuf>,
        send: Option<SendBuf>,
    ) -> Self {
        Stream {
            id,
            recv,
            send,
            urgency: DEFAULT_URGENCY,
            incremental: true,
            is_local: is_local(id, is_server),
            is_bidi: is_bidi(id),
            sets: 0,
        }
    }

    /// The receive half, or InvalidStreamState when this stream has none
    /// (our unidirectional stream).
    pub(crate) fn recv_mut(&mut self) -> crate::Result<&mut RecvBuf> {
        let id = self.id;
        self.recv
            .as_mut()
            .ok_or(crate::Error::InvalidStreamState(id))
    }

    /// The send half, or InvalidStreamState when this stream has none (the
    /// peer's unidirectional stream).
    pub(crate) fn send_mut(&mut self) -> crate::Result<&mut SendBuf> {
        let id = self.id;
        self.send
            .as_mut()
            .ok_or(crate::Error::InvalidStreamState(id))
    }

    /// Whether the application can read something.
    pub(crate) fn is_readable(&self) -> bool {
        self.recv.as_ref().is_some_and(RecvBuf::is_readable)
    }

    /// Whether the application can write something.
    pub(crate) fn is_writable(&self) -> bool {
        self.send.as_ref().is_some_and(SendBuf::is_writable)
    }

    /// Whether there is something to transmit.
    pub(crate) fn is_flushable(&self) -> bool {
        self.send.as_ref().is_some_and(SendBuf::is_flushable)
    }

    /// Whether a MAX_STREAM_DATA is due.
    pub(crate) fn is_almost_full(&self) -> bool {
        self.recv
            .as_ref()
            .is_some_and(RecvBuf::should_update_max_data)
    }

    /// The limit for STREAM_DATA_BLOCKED, if due.
    pub(crate) fn blocked_at(&self) -> Option<u64> {
        self.send.as_ref().and_then(SendBuf::blocked_at)
    }

    /// Both directions reached a terminal state: the stream can be
    /// collected.
    pub(crate) fn is_complete(&self) -> bool {
        self.recv.as_ref().is_none_or(RecvBuf::is_complete)
            && self.send.as_ref().is_none_or(SendBuf::is_complete)
    }

    /// The sending-part state, `None` without a send half.
    pub(crate) fn send_state(&self) -> Option<SendState> {
        let s = self.send.as_ref()?;
        Some(if s.reset_final_size().is_some() {
            if s.is_complete() {
                SendState::ResetRecvd
            } else {
                SendState::ResetSent
            }
        } else if s.is_complete() {
            SendState::DataRecvd
        } else if s.fin_sent() {
            SendState::DataSent
        } else if s.off_front() > 0 || s.off_back() > 0 {
            SendState::Send
        } else {
            SendState::Ready
        })
    }

    /// The receiving-part state, `None` without a receive half.
    pub(crate) fn recv_state(&self) -> Option<RecvState> {
        let r = self.recv.as_ref()?;
        Some(if r.reset_code().is_some() {
            if r.is_complete() {
                RecvState::ResetRead
            } else {
                RecvState::ResetRecvd
            }
        } else if r.is_complete() {
            RecvState::DataRead
        } else if r.all_received() {
            RecvState::DataRecvd
        } else if r.is_fin() {
            RecvState::SizeKnown
        } else {
            RecvState::Recv
        })
    }
}
