//! QUIC frames (RFC 9000 §19) and DATAGRAM (RFC 9221 §4): decode, encode,
//! `wire_len`, and the packet types allowed to carry each (RFC 9000
//! §12.4, Table 3).
//!
//! Decoded frames borrow from the packet buffer; nothing is allocated,
//! ACK ranges included (they are validated at decode time and iterated
//! lazily).

use std::ops::RangeInclusive;

use crate::cid::MAX_CONN_ID_LEN;
use crate::error::{Error, Result};
use crate::octets::{varint_len, Octets, OctetsMut, MAX_VARINT};
use crate::packet::Type;

/// Largest stream or CRYPTO offset + length (RFC 9000 §19.8: 2^62 - 1).
const MAX_OFFSET: u64 = MAX_VARINT;

/// Largest MAX_STREAMS / STREAMS_BLOCKED value (RFC 9000 §19.11: 2^60).
pub const MAX_STREAMS_LIMIT: u64 = 1 << 60;

/// Length of a stateless reset token.
pub const RESET_TOKEN_LEN: usize = 16;

/// Frame type codepoints.
pub mod types {
    /// PADDING
    pub const PADDING: u64 = 0x00;
    /// PING
    pub const PING: u64 = 0x01;
    /// ACK
    pub const ACK: u64 = 0x02;
    /// ACK with ECN counts
    pub const ACK_ECN: u64 = 0x03;
    /// RESET_STREAM
    pub const RESET_STREAM: u64 = 0x04;
    /// STOP_SENDING
    pub const STOP_SENDING: u64 = 0x05;
    /// CRYPTO
    pub const CRYPTO: u64 = 0x06;
    /// NEW_TOKEN
    pub const NEW_TOKEN: u64 = 0x07;
    /// STREAM (0x08-0x0f: OFF, LEN and FIN bits)
    pub const STREAM: u64 = 0x08;
    /// MAX_DATA
    pub const MAX_DATA: u64 = 0x10;
    /// MAX_STREAM_DATA
    pub const MAX_STREAM_DATA: u64 = 0x11;
    /// MAX_STREAMS (bidirectional)
    pub const MAX_STREAMS_BIDI: u64 = 0x12;
    /// MAX_STREAMS (unidirectional)
    pub const MAX_STREAMS_UNI: u64 = 0x13;
    /// DATA_BLOCKED
    pub const DATA_BLOCKED: u64 = 0x14;
    /// STREAM_DATA_BLOCKED
    pub const STREAM_DATA_BLOCKED: u64 = 0x15;
    /// STREAMS_BLOCKED (bidirectional)
    pub const STREAMS_BLOCKED_BIDI: u64 = 0x16;
    /// STREAMS_BLOCKED (unidirectional)
    pub const STREAMS_BLOCKED_UNI: u64 = 0x17;
    /// NEW_CONNECTION_ID
    pub const NEW_CONNECTION_ID: u64 = 0x18;
    /// RETIRE_CONNECTION_ID
    pub const RETIRE_CONNECTION_ID: u64 = 0x19;
    /// PATH_CHALLENGE
    pub const PATH_CHALLENGE: u64 = 0x1a;
    /// PATH_RESPONSE
    pub const PATH_RESPONSE: u64 = 0x1b;
    /// CONNECTION_CLOSE (transport)
    pub const CONNECTION_CLOSE: u64 = 0x1c;
    /// CONNECTION_CLOSE (application)
    pub const APPLICATION_CLOSE: u64 = 0x1d;
    /// HANDSHAKE_DONE
    pub const HANDSHAKE_DONE: u64 = 0x1e;
    /// DATAGRAM without length (RFC 9221)
    pub const DATAGRAM: u64 = 0x30;
    /// DATAGRAM with length (RFC 9221)
    pub const DATAGRAM_LEN: u64 = 0x31;
}

/// ECN counts of an ACK_ECN frame (RFC 9000 §19.3.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EcnCounts {
    /// ECT(0) count.
    pub ect0: u64,
    /// ECT(1) count.
    pub ect1: u64,
    /// ECN-CE count.
    pub ce: u64,
}

/// The acknowledged ranges of an ACK frame, largest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckRanges<'a> {
    /// Ranges as they arrived: the validated wire encoding.
    Wire {
        /// Largest acknowledged.
        largest: u64,
        /// First ACK Range.
        first: u64,
        /// Number of (gap, range) pairs in `rest`.
        count: u64,
        /// The encoded (gap, range) pairs.
        rest: &'a [u8],
    },
    /// Ranges to send, largest first, disjoint and not adjacent.
    Slice(&'a [RangeInclusive<u64>]),
}

impl<'a> AckRanges<'a> {
    /// The ranges, largest first.
    pub fn iter(&self) -> AckRangeIter<'a> {
        match *self {
            AckRanges::Wire {
                largest,
                first,
                count,
                rest,
            } => AckRangeIter::Wire {
                next: Some(largest - first..=largest),
                remaining: count,
                b: Octets::with_slice(rest),
            },
            AckRanges::Slice(s) => AckRangeIter::Slice(s.iter()),
        }
    }

    /// The largest acknowledged packet number.
    pub fn largest(&self) -> Option<u64> {
        match self {
            AckRanges::Wire { largest, .. } => Some(*largest),
            AckRanges::Slice(s) => s.first().map(|r| *r.end()),
        }
    }

    /// The smallest acknowledged packet number.
    pub fn smallest(&self) -> Option<u64> {
        self.iter().last().map(|r| *r.start())
    }

    fn wire_len(&self) -> usize {
        match self {
            AckRanges::Wire {
                first, count, rest, ..
            } => varint_len(*count) + varint_len(*first) + rest.len(),
            AckRanges::Slice(s) => {
                let mut len = varint_len(s.len().saturating_sub(1) as u64);
                let mut prev_start = None::<u64>;
                for r in s.iter() {
                    match prev_start {
                        None => len += varint_len(r.end().saturating_sub(*r.start())),
                        Some(ps) => {
                            // Malformed (overlapping) input is rejected by
                            // encode(); only the length must not overflow here.
                            len += varint_len(ps.saturating_sub(*r.end()).saturating_sub(2));
                            len += varint_len(r.end().saturating_sub(*r.start()));
                        }
                    }
                    prev_start = Some(*r.start());
                }
                len
            }
        }
    }

    fn encode(&self, b: &mut OctetsMut<'_>) -> Result<()> {
        match self {
            AckRanges::Wire {
                first, count, rest, ..
            } => {
                b.put_varint(*count)?;
                b.put_varint(*first)?;
                b.put_bytes(rest)?;
            }
            AckRanges::Slice(s) => {
                let Some(head) = s.first() else {
                    return Err(Error::InvalidFrame);
                };
                b.put_varint(s.len() as u64 - 1)?;
                b.put_varint(
                    head.end()
                        .checked_sub(*head.start())
                        .ok_or(Error::InvalidFrame)?,
                )?;
                let mut prev_start = *head.start();
                for r in &s[1..] {
                    // Gap: packets between this range and the previous one,
                    // minus one (RFC 9000 §19.3.1).
                    let gap = prev_start
                        .checked_sub(*r.end())
                        .and_then(|d| d.checked_sub(2))
                        .ok_or(Error::InvalidFrame)?;
                    b.put_varint(gap)?;
                    b.put_varint(r.end().checked_sub(*r.start()).ok_or(Error::InvalidFrame)?)?;
                    prev_start = *r.start();
                }
            }
        }
        Ok(())
    }
}

/// Iterator over ACK ranges, largest first.
#[derive(Debug)]
pub enum AckRangeIter<'a> {
    /// Over the wire encoding.
    Wire {
        /// The next range to yield.
        next: Option<RangeInclusive<u64>>,
        /// Pairs left to decode.
        remaining: u64,
        /// Cursor over the pairs.
        b: Octets<'a>,
    },
    /// Over a slice.
    Slice(std::slice::Iter<'a, RangeInclusive<u64>>),
}

impl Iterator for AckRangeIter<'_> {
    type Item = RangeInclusive<u64>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            AckRangeIter::Slice(it) => it.next().cloned(),
            AckRangeIter::Wire { next, remaining, b } => {
                let cur = next.take()?;
                if *remaining > 0 {
                    *remaining -= 1;
                    // Validated at decode time, so these cannot fail or
                    // underflow; stop quietly if they somehow do.
                    let gap = b.get_varint().ok()?;
                    let len = b.get_varint().ok()?;
                    let end = cur.start().checked_sub(gap + 2)?;
                    let start = end.checked_sub(len)?;
                    *next = Some(start..=end);
                }
                Some(cur)
            }
        }
    }
}

/// A QUIC frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One or more consecutive PADDING bytes.
    Padding {
        /// Number of padding bytes.
        len: usize,
    },
    /// PING.
    Ping,
    /// ACK or ACK_ECN.
    Ack {
        /// Encoded ACK Delay (scale by the ack_delay_exponent).
        ack_delay: u64,
        /// The acknowledged ranges.
        ranges: AckRanges<'a>,
        /// ECN counts, for ACK_ECN.
        ecn: Option<EcnCounts>,
    },
    /// RESET_STREAM.
    ResetStream {
        /// Stream ID.
        stream_id: u64,
        /// Application error code.
        error_code: u64,
        /// Final size of the stream.
        final_size: u64,
    },
    /// STOP_SENDING.
    StopSending {
        /// Stream ID.
        stream_id: u64,
        /// Application error code.
        error_code: u64,
    },
    /// CRYPTO.
    Crypto {
        /// Offset in the crypto stream of this level.
        offset: u64,
        /// Data.
        data: &'a [u8],
    },
    /// NEW_TOKEN.
    NewToken {
        /// The token.
        token: &'a [u8],
    },
    /// STREAM.
    Stream {
        /// Stream ID.
        stream_id: u64,
        /// Offset of `data` in the stream.
        offset: u64,
        /// Data.
        data: &'a [u8],
        /// Whether this frame ends the stream.
        fin: bool,
    },
    /// MAX_DATA.
    MaxData {
        /// Maximum data.
        max: u64,
    },
    /// MAX_STREAM_DATA.
    MaxStreamData {
        /// Stream ID.
        stream_id: u64,
        /// Maximum stream data.
        max: u64,
    },
    /// MAX_STREAMS (bidi or uni).
    MaxStreams {
        /// Whether it concerns bidirectional streams.
        bidi: bool,
        /// Maximum cumulative streams.
        max: u64,
    },
    /// DATA_BLOCKED.
    DataBlocked {
        /// The connection limit at which sending blocked.
        limit: u64,
    },
    /// STREAM_DATA_BLOCKED.
    StreamDataBlocked {
        /// Stream ID.
        stream_id: u64,
        /// The stream limit at which sending blocked.
        limit: u64,
    },
    /// STREAMS_BLOCKED (bidi or uni).
    StreamsBlocked {
        /// Whether it concerns bidirectional streams.
        bidi: bool,
        /// The stream limit at which opening blocked.
        limit: u64,
    },
    /// NEW_CONNECTION_ID.
    NewConnectionId {
        /// Sequence number.
        seq_num: u64,
        /// Retire Prior To.
        retire_prior_to: u64,
        /// The connection ID (1 to 20 bytes).
        conn_id: &'a [u8],
        /// Stateless reset token.
        reset_token: [u8; RESET_TOKEN_LEN],
    },
    /// RETIRE_CONNECTION_ID.
    RetireConnectionId {
        /// Sequence number to retire.
        seq_num: u64,
    },
    /// PATH_CHALLENGE.
    PathChallenge {
        /// Data to echo.
        data: [u8; 8],
    },
    /// PATH_RESPONSE.
    PathResponse {
        /// Echoed data.
        data: [u8; 8],
    },
    /// CONNECTION_CLOSE with a transport error (0x1c).
    ConnectionClose {
        /// Transport error code.
        error_code: u64,
        /// Type of the frame that triggered the error.
        frame_type: u64,
        /// Reason phrase.
        reason: &'a [u8],
    },
    /// CONNECTION_CLOSE with an application error (0x1d).
    ApplicationClose {
        /// Application error code.
        error_code: u64,
        /// Reason phrase.
        reason: &'a [u8],
    },
    /// HANDSHAKE_DONE.
    HandshakeDone,
    /// DATAGRAM (RFC 9221).
    Datagram {
        /// Payload.
        data: &'a [u8],
        /// Whether the frame carries an explicit length (0x31) or runs to
        /// the end of the packet (0x30).
        with_len: bool,
    },
}

/// Bit of the packet types that may carry a frame.
const I: u8 = 1;
const Z: u8 = 2;
const H: u8 = 4;
const O: u8 = 8;

fn type_bit(pkt: Type) -> u8 {
    match pkt {
        Type::Initial => I,
        Type::ZeroRTT => Z,
        Type::Handshake => H,
        Type::Short => O,
        Type::Retry | Type::VersionNegotiation => 0,
    }
}

/// The packet types (RFC 9000 Table 3 "Pkts" column) allowed to carry a
/// frame type, as a mask of I, Z (0-RTT), H and O (1-RTT). `None` for
/// unknown frame types.
fn allowed_mask(frame_type: u64) -> Option<u8> {
    use types::*;
    Some(match frame_type {
        PADDING | PING | CONNECTION_CLOSE => I | Z | H | O,
        // RFC 9000 §17.2.3: 0-RTT packets cannot carry ACK or CRYPTO.
        ACK | ACK_ECN | CRYPTO => I | H | O,
        NEW_TOKEN | PATH_RESPONSE | HANDSHAKE_DONE => O,
        RESET_STREAM
        | STOP_SENDING
        | 0x08..=0x0f
        | MAX_DATA
        | MAX_STREAM_DATA
        | MAX_STREAMS_BIDI
        | MAX_STREAMS_UNI
        | DATA_BLOCKED
        | STREAM_DATA_BLOCKED
        | STREAMS_BLOCKED_BIDI
        | STREAMS_BLOCKED_UNI
        | NEW_CONNECTION_ID
        | RETIRE_CONNECTION_ID
        | PATH_CHALLENGE
        | APPLICATION_CLOSE
        | DATAGRAM
        | DATAGRAM_LEN => Z | O,
        _ => return None,
    })
}

/// Whether a packet of type `pkt` may carry a frame of type `frame_type`
/// (RFC 9000 §12.4).
pub fn allowed_in(frame_type: u64, pkt: Type) -> bool {
    allowed_mask(frame_type).is_some_and(|m| m & type_bit(pkt) != 0)
}

/// The body of a STREAM frame of type `frame_type` (0x08..=0x0f, RFC 9000
/// §19.8) after its type byte: (stream ID, offset, data, FIN). Errors as
/// [`Frame::from_bytes`] before its mapping (a short body is
/// `BufferTooShort`). The receiver's fast path for stream data calls it
/// directly, without building a [`Frame`].
#[inline(always)]
pub(crate) fn stream_body<'a>(
    frame_type: u8,
    b: &mut Octets<'a>,
) -> Result<(u64, u64, &'a [u8], bool)> {
    let stream_id = b.get_varint()?;
    let offset = if frame_type & 0x04 != 0 {
        b.get_varint()?
    } else {
        0
    };
    let data = if frame_type & 0x02 != 0 {
        b.get_bytes_with_varint_length()?
    } else {
        b.get_bytes(b.cap())?
    };
    // RFC 9000 §19.8: "The largest offset delivered on a stream ... cannot
    // exceed 2^62-1 ... Receipt of a frame that exceeds this limit MUST be
    // treated as a connection error of type FRAME_ENCODING_ERROR or
    // FLOW_CONTROL_ERROR."
    check_offset(offset, data.len())?;
    Ok((stream_id, offset, data, frame_type & 0x01 != 0))
}

impl<'a> Frame<'a> {
    /// Decodes one frame from `b`, which must hold the rest of a decrypted
    /// packet payload of type `pkt`.
    ///
    /// Malformed frames are [`Error::InvalidFrame`] (FRAME_ENCODING_ERROR,
    /// RFC 9000 §12.4: also for unknown types); a frame not allowed in
    /// this packet type is [`Error::InvalidPacket`] (PROTOCOL_VIOLATION).
    pub fn from_bytes(b: &mut Octets<'a>, pkt: Type) -> Result<Frame<'a>> {
        let start = b.off();
        let frame_type = b.get_varint().map_err(|_| Error::InvalidFrame)?;
        // RFC 9000 §12.4: "a frame type MUST use the shortest possible
        // encoding"; we treat a longer one as PROTOCOL_VIOLATION, as allowed.
        if b.off() - start != varint_len(frame_type) {
            return Err(Error::InvalidPacket);
        }
        let Some(mask) = allowed_mask(frame_type) else {
            return Err(Error::InvalidFrame);
        };
        if mask & type_bit(pkt) == 0 {
            return Err(Error::InvalidPacket);
        }
        Frame::decode_body(frame_type, b).map_err(|e| match e {
            Error::BufferTooShort => Error::InvalidFrame,
            e => e,
        })
    }

    fn decode_body(frame_type: u64, b: &mut Octets<'a>) -> Result<Frame<'a>> {
        use types::*;
        let frame = match frame_type {
            PADDING => {
                let run = b.rest().iter().take_while(|&&x| x == 0).count();
                b.skip(run)?;
                Frame::Padding { len: 1 + run }
            }
            PING => Frame::Ping,
            ACK | ACK_ECN => decode_ack(frame_type, b)?,
            RESET_STREAM => Frame::ResetStream {
                stream_id: b.get_varint()?,
                error_code: b.get_varint()?,
                final_size: b.get_varint()?,
            },
            STOP_SENDING => Frame::StopSending {
                stream_id: b.get_varint()?,
                error_code: b.get_varint()?,
            },
            CRYPTO => {
                let offset = b.get_varint()?;
                let data = b.get_bytes_with_varint_length()?;
                // RFC 9000 §19.6: offset + length beyond 2^62-1 is a
                // FRAME_ENCODING_ERROR (or CRYPTO_BUFFER_EXCEEDED).
                check_offset(offset, data.len())?;
                Frame::Crypto { offset, data }
            }
            NEW_TOKEN => {
                let token = b.get_bytes_with_varint_length()?;
                // RFC 9000 §19.7: "A client MUST treat receipt of a
                // NEW_TOKEN frame with an empty Token field as a connection
                // error of type FRAME_ENCODING_ERROR."
                if token.is_empty() {
                    return Err(Error::InvalidFrame);
                }
                Frame::NewToken { token }
            }
            0x08..=0x0f => {
                let (stream_id, offset, data, fin) = stream_body(frame_type as u8, b)?;
                Frame::Stream {
                    stream_id,
                    offset,
                    data,
                    fin,
                }
            }
            MAX_DATA => Frame::MaxData {
                max: b.get_varint()?,
            },
            MAX_STREAM_DATA => Frame::MaxStreamData {
                stream_id: b.get_varint()?,
                max: b.get_varint()?,
            },
            MAX_STREAMS_BIDI | MAX_STREAMS_UNI => {
                let max = b.get_varint()?;
                // RFC 9000 §19.11: "If a max_streams transport parameter or
                // a MAX_STREAMS frame is received with a value greater than
                // 2^60 ... MUST be closed ... FRAME_ENCODING_ERROR".
                if max > MAX_STREAMS_LIMIT {
                    return Err(Error::InvalidFrame);
                }
                Frame::MaxStreams {
                    bidi: frame_type == MAX_STREAMS_BIDI,
                    max,
                }
            }
            DATA_BLOCKED => Frame::DataBlocked {
                limit: b.get_varint()?,
            },
            STREAM_DATA_BLOCKED => Frame::StreamDataBlocked {
                stream_id: b.get_varint()?,
                limit: b.get_varint()?,
            },
            STREAMS_BLOCKED_BIDI | STREAMS_BLOCKED_UNI => {
                let limit = b.get_varint()?;
                // RFC 9000 §19.14: values above 2^60 are a
                // FRAME_ENCODING_ERROR.
                if limit > MAX_STREAMS_LIMIT {
                    return Err(Error::InvalidFrame);
                }
                Frame::StreamsBlocked {
                    bidi: frame_type == STREAMS_BLOCKED_BIDI,
                    limit,
                }
            }
            NEW_CONNECTION_ID => {
                let seq_num = b.get_varint()?;
                let retire_prior_to = b.get_varint()?;
                // RFC 9000 §19.15: "The value in the Retire Prior To field
                // MUST be less than or equal to the value in the Sequence
                // Number field. Receiving a value in the Retire Prior To
                // field that is greater than that in the Sequence Number
                // field MUST be treated as a connection error of type
                // FRAME_ENCODING_ERROR."
                if retire_prior_to > seq_num {
                    return Err(Error::InvalidFrame);
                }
                let conn_id = b.get_bytes_with_u8_length()?;
                // RFC 9000 §19.15: "Values less than 1 and greater than 20
                // are invalid and MUST be treated as a connection error of
                // type FRAME_ENCODING_ERROR."
                if conn_id.is_empty() || conn_id.len() > MAX_CONN_ID_LEN {
                    return Err(Error::InvalidFrame);
                }
                let mut reset_token = [0u8; RESET_TOKEN_LEN];
                reset_token.copy_from_slice(b.get_bytes(RESET_TOKEN_LEN)?);
                Frame::NewConnectionId {
                    seq_num,
                    retire_prior_to,
                    conn_id,
                    reset_token,
                }
            }
            RETIRE_CONNECTION_ID => Frame::RetireConnectionId {
                seq_num: b.get_varint()?,
            },
            PATH_CHALLENGE | PATH_RESPONSE => {
                let mut data = [0u8; 8];
                data.copy_from_slice(b.get_bytes(8)?);
                if frame_type == PATH_CHALLENGE {
                    Frame::PathChallenge { data }
                } else {
                    Frame::PathResponse { data }
                }
            }
            CONNECTION_CLOSE => Frame::ConnectionClose {
                error_code: b.get_varint()?,
                frame_type: b.get_varint()?,
                reason: b.get_bytes_with_varint_length()?,
            },
            APPLICATION_CLOSE => Frame::ApplicationClose {
                error_code: b.get_varint()?,
                reason: b.get_bytes_with_varint_length()?,
            },
            HANDSHAKE_DONE => Frame::HandshakeDone,
            DATAGRAM => Frame::Datagram {
                data: b.get_bytes(b.cap())?,
                with_len: false,
            },
            DATAGRAM_LEN => Frame::Datagram {
                data: b.get_bytes_with_varint_length()?,
                with_len: true,
            },
            _ => return Err(Error::InvalidFrame),
        };
        Ok(frame)
    }

    /// The frame's type codepoint as it is encoded.
    pub fn frame_type(&self) -> u64 {
        use types::*;
        match self {
            Frame::Padding { .. } => PADDING,
            Frame::Ping => PING,
            Frame::Ack { ecn: None, .. } => ACK,
            Frame::Ack { ecn: Some(_), .. } => ACK_ECN,
            Frame::ResetStream { .. } => RESET_STREAM,
            Frame::StopSending { .. } => STOP_SENDING,
            Frame::Crypto { .. } => CRYPTO,
            Frame::NewToken { .. } => NEW_TOKEN,
            Frame::Stream { offset, fin, .. } => {
                // Always with an explicit length: frames can then be
                // followed by others in the same packet.
                STREAM | 0x02 | if *offset != 0 { 0x04 } else { 0 } | u64::from(*fin)
            }
            Frame::MaxData { .. } => MAX_DATA,
            Frame::MaxStreamData { .. } => MAX_STREAM_DATA,
            Frame::MaxStreams { bidi: true, .. } => MAX_STREAMS_BIDI,
            Frame::MaxStreams { bidi: false, .. } => MAX_STREAMS_UNI,
            Frame::DataBlocked { .. } => DATA_BLOCKED,
            Frame::StreamDataBlocked { .. } => STREAM_DATA_BLOCKED,
            Frame::StreamsBlocked { bidi: true, .. } => STREAMS_BLOCKED_BIDI,
            Frame::StreamsBlocked { bidi: false, .. } => STREAMS_BLOCKED_UNI,
            Frame::NewConnectionId { .. } => NEW_CONNECTION_ID,
            Frame::RetireConnectionId { .. } => RETIRE_CONNECTION_ID,
            Frame::PathChallenge { .. } => PATH_CHALLENGE,
            Frame::PathResponse { .. } => PATH_RESPONSE,
            Frame::ConnectionClose { .. } => CONNECTION_CLOSE,
            Frame::ApplicationClose { .. } => APPLICATION_CLOSE,
            Frame::HandshakeDone => HANDSHAKE_DONE,
            Frame::Datagram {
                with_len: false, ..
            } => DATAGRAM,
            Frame::Datagram { with_len: true, .. } => DATAGRAM_LEN,
        }
    }

    /// Whether the frame elicits an acknowledgement (RFC 9002 §2: all but
    /// ACK, PADDING and CONNECTION_CLOSE).
    pub fn ack_eliciting(&self) -> bool {
        !matches!(
            self,
            Frame::Padding { .. }
                | Frame::Ack { .. }
                | Frame::ConnectionClose { .. }
                | Frame::ApplicationClose { .. }
        )
    }

    /// Whether the frame counts toward bytes in flight (RFC 9002 §2: all
    /// but ACK and CONNECTION_CLOSE; PADDING does count).
    pub fn in_flight(&self) -> bool {
        !matches!(
            self,
            Frame::Ack { .. } | Frame::ConnectionClose { .. } | Frame::ApplicationClose { .. }
        )
    }

    /// Whether a packet of type `pkt` may carry this frame.
    pub fn allowed_in(&self, pkt: Type) -> bool {
        allowed_in(self.frame_type(), pkt)
    }

    /// Number of bytes [`Frame::to_bytes`] writes.
    pub fn wire_len(&self) -> usize {
        let ty = varint_len(self.frame_type());
        match self {
            Frame::Padding { len } => *len,
            Frame::Ping | Frame::HandshakeDone => ty,
            Frame::Ack {
                ack_delay,
                ranges,
                ecn,
            } => {
                ty + varint_len(ranges.largest().unwrap_or(0))
                    + varint_len(*ack_delay)
                    + ranges.wire_len()
                    + ecn.map_or(0, |e| {
                        varint_len(e.ect0) + varint_len(e.ect1) + varint_len(e.ce)
                    })
            }
            Frame::ResetStream {
                stream_id,
                error_code,
                final_size,
            } => ty + varint_len(*stream_id) + varint_len(*error_code) + varint_len(*final_size),
            Frame::StopSending {
                stream_id,
                error_code,
            } => ty + varint_len(*stream_id) + varint_len(*error_code),
            Frame::Crypto { offset, data } => {
                ty + varint_len(*offset) + varint_len(data.len() as u64) + data.len()
            }
            Frame::NewToken { token } => ty + varint_len(token.len() as u64) + token.len(),
            Frame::Stream {
                stream_id,
                offset,
                data,
                ..
            } => stream_header_len(*stream_id, *offset, data.len()) + data.len(),
            Frame::MaxData { max } => ty + varint_len(*max),
            Frame::MaxStreamData { stream_id, max } => {
                ty + varint_len(*stream_id) + varint_len(*max)
            }
            Frame::MaxStreams { max, .. } => ty + varint_len(*max),
            Frame::DataBlocked { limit } => ty + varint_len(*limit),
            Frame::StreamDataBlocked { stream_id, limit } => {
                ty + varint_len(*stream_id) + varint_len(*limit)
            }
            Frame::StreamsBlocked { limit, .. } => ty + varint_len(*limit),
            Frame::NewConnectionId {
                seq_num,
                retire_prior_to,
                conn_id,
                ..
            } => {
                ty + varint_len(*seq_num)
                    + varint_len(*retire_prior_to)
                    + 1
                    + conn_id.len()
                    + RESET_TOKEN_LEN
            }
            Frame::RetireConnectionId { seq_num } => ty + varint_len(*seq_num),
            Frame::PathChallenge { .. } | Frame::PathResponse { .. } => ty + 8,
            Frame::ConnectionClose {
                error_code,
                frame_type,
                reason,
            } => {
                ty + varint_len(*error_code)
                    + varint_len(*frame_type)
                    + varint_len(reason.len() as u64)
                    + reason.len()
            }
            Frame::ApplicationClose { error_code, reason } => {
                ty + varint_len(*error_code) + varint_len(reason.len() as u64) + reason.len()
            }
            Frame::Datagram { data, with_len } => {
                ty + if *with_len {
                    varint_len(data.len() as u64)
                } else {
                    0
                } + data.len()
            }
        }
    }

    /// Encodes the frame. Returns the number of bytes written.
    pub fn to_bytes(&self, b: &mut OctetsMut<'_>) -> Result<usize> {
        let before = b.off();
        if let Frame::Padding { len } = self {
            if b.cap() < *len {
                return Err(Error::BufferTooShort);
            }
            b.rest_mut()[..*len].fill(0);
            b.skip(*len)?;
            return Ok(*len);
        }
        if b.cap() < self.wire_len() {
            return Err(Error::BufferTooShort);
        }
        b.put_varint(self.frame_type())?;
        match self {
            Frame::Padding { .. } | Frame::Ping | Frame::HandshakeDone => (),
            Frame::Ack {
                ack_delay,
                ranges,
                ecn,
            } => {
                b.put_varint(ranges.largest().ok_or(Error::InvalidFrame)?)?;
                b.put_varint(*ack_delay)?;
                ranges.encode(b)?;
                if let Some(e) = ecn {
                    b.put_varint(e.ect0)?;
                    b.put_varint(e.ect1)?;
                    b.put_varint(e.ce)?;
                }
            }
            Frame::ResetStream {
                stream_id,
                error_code,
                final_size,
            } => {
                b.put_varint(*stream_id)?;
                b.put_varint(*error_code)?;
                b.put_varint(*final_size)?;
            }
            Frame::StopSending {
                stream_id,
                error_code,
            } => {
                b.put_varint(*stream_id)?;
                b.put_varint(*error_code)?;
            }
            Frame::Crypto { offset, data } => {
                b.put_varint(*offset)?;
                b.put_varint(data.len() as u64)?;
                b.put_bytes(data)?;
            }
            Frame::NewToken { token } => {
                b.put_varint(token.len() as u64)?;
                b.put_bytes(token)?;
            }
            Frame::Stream {
                stream_id,
                offset,
                data,
                ..
            } => {
                b.put_varint(*stream_id)?;
                if *offset != 0 {
                    b.put_varint(*offset)?;
                }
                b.put_varint(data.len() as u64)?;
                b.put_bytes(data)?;
            }
            Frame::MaxData { max }
            | Frame::MaxStreams { max, .. }
            | Frame::DataBlocked { limit: max }
            | Frame::StreamsBlocked { limit: max, .. }
            | Frame::RetireConnectionId { seq_num: max } => b.put_varint(*max)?,
            Frame::MaxStreamData { stream_id, max }
            | Frame::StreamDataBlocked {
                stream_id,
                limit: max,
            } => {
                b.put_varint(*stream_id)?;
                b.put_varint(*max)?;
            }
            Frame::NewConnectionId {
                seq_num,
                retire_prior_to,
                conn_id,
                reset_token,
            } => {
                b.put_varint(*seq_num)?;
                b.put_varint(*retire_prior_to)?;
                b.put_u8(conn_id.len() as u8)?;
                b.put_bytes(conn_id)?;
                b.put_bytes(reset_token)?;
            }
            Frame::PathChallenge { data } | Frame::PathResponse { data } => b.put_bytes(data)?,
            Frame::ConnectionClose {
                error_code,
                frame_type,
                reason,
            } => {
                b.put_varint(*error_code)?;
                b.put_varint(*frame_type)?;
                b.put_varint(reason.len() as u64)?;
                b.put_bytes(reason)?;
            }
            Frame::ApplicationClose { error_code, reason } => {
                b.put_varint(*error_code)?;
                b.put_varint(reason.len() as u64)?;
                b.put_bytes(reason)?;
            }
            Frame::Datagram { data, with_len } => {
                if *with_len {
                    b.put_varint(data.len() as u64)?;
                }
                b.put_bytes(data)?;
            }
        }
        Ok(b.off() - before)
    }
}

/// Length of a STREAM frame's header (type, ID, offset when non-zero,
/// length) carrying `len` bytes at `offset`.
#[inline]
pub fn stream_header_len(stream_id: u64, offset: u64, len: usize) -> usize {
    1 + varint_len(stream_id)
        + if offset != 0 { varint_len(offset) } else { 0 }
        + varint_len(len as u64)
}

/// Length of a CRYPTO frame's header carrying `len` bytes at `offset`.
#[inline]
pub fn crypto_header_len(offset: u64, len: usize) -> usize {
    1 + varint_len(offset) + varint_len(len as u64)
}

fn check_offset(offset: u64, len: usize) -> Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= MAX_OFFSET => Ok(()),
        _ => Err(Error::InvalidFrame),
    }
}

/// Decodes the body of an ACK frame, validating every range so that the
/// lazy iterator cannot fail later (RFC 9000 §19.3.1: a range that would
/// go below zero is a FRAME_ENCODING_ERROR).
fn decode_ack<'a>(frame_type: u64, b: &mut Octets<'a>) -> Result<Frame<'a>> {
    let largest = b.get_varint()?;
    let ack_delay = b.get_varint()?;
    let count = b.get_varint()?;
    let first = b.get_varint()?;
    let mut smallest = largest.checked_sub(first).ok_or(Error::InvalidFrame)?;
    let start = b.off();
    for _ in 0..count {
        let gap = b.get_varint()?;
        let len = b.get_varint()?;
        let end = smallest
            .checked_sub(gap)
            .and_then(|v| v.checked_sub(2))
            .ok_or(Error::InvalidFrame)?;
        smallest = end.checked_sub(len).ok_or(Error::InvalidFrame)?;
    }
    let rest = &b.buf()[start..b.off()];
    let ecn = if frame_type == types::ACK_ECN {
        Some(EcnCounts {
            ect0: b.get_varint()?,
            ect1: b.get_varint()?,
            ce: b.get_varint()?,
        })
    } else {
        None
    };
    Ok(Frame::Ack {
        ack_delay,
        ranges: AckRanges::Wire {
            largest,
            first,
            count,
            rest,
        },
        ecn,
    })
}

#[cfg(test)]
mod tests;
