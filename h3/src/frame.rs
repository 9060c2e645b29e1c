//! HTTP/3 frames (RFC 9114 §7, RFC 9218 §7.2): decoding from a payload,
//! encoding, lengths, and an incremental frame-header parser for stream
//! data that arrives in pieces.
//!
//! Frames are `Type (i), Length (i), Payload (..)`. Each frame's payload
//! "MUST contain exactly the fields identified in its description" (§7.1):
//! missing or extra bytes are H3_FRAME_ERROR.

use tarte::octets::{varint_len, varint_parse_len, Octets, OctetsMut};

use crate::codepoint::{codepoints, is_reserved};
use crate::settings::Settings;
use crate::{Error, Result};

codepoints! {
    /// Frame types (RFC 9114 §11.2.1, RFC 9218 §7.2).
    pub enum FrameType {
        /// DATA (§7.2.1).
        Data = 0x00,
        /// HEADERS (§7.2.2).
        Headers = 0x01,
        /// CANCEL_PUSH (§7.2.3).
        CancelPush = 0x03,
        /// SETTINGS (§7.2.4).
        Settings = 0x04,
        /// PUSH_PROMISE (§7.2.5).
        PushPromise = 0x05,
        /// GOAWAY (§7.2.6).
        GoAway = 0x07,
        /// MAX_PUSH_ID (§7.2.7).
        MaxPushId = 0x0d,
        /// PRIORITY_UPDATE for a request stream (RFC 9218 §7.2).
        PriorityUpdateRequest = 0xf0700,
        /// PRIORITY_UPDATE for a push stream (RFC 9218 §7.2).
        PriorityUpdatePush = 0xf0701,
    }
}

/// HTTP/2 frame types with no HTTP/3 meaning (RFC 9114 §7.2.8, §11.2.1):
/// 0x02 PRIORITY, 0x06 PING, 0x08 WINDOW_UPDATE, 0x09 CONTINUATION.
pub fn is_http2_frame_type(ty: u64) -> bool {
    matches!(ty, 0x02 | 0x06 | 0x08 | 0x09)
}

/// An HTTP/3 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// DATA: a chunk of message content.
    Data {
        /// The content bytes.
        payload: Vec<u8>,
    },
    /// HEADERS: a QPACK-encoded field section.
    Headers {
        /// The encoded field section.
        header_block: Vec<u8>,
    },
    /// CANCEL_PUSH.
    CancelPush {
        /// The push being cancelled.
        push_id: u64,
    },
    /// SETTINGS.
    Settings(Settings),
    /// PUSH_PROMISE.
    PushPromise {
        /// The promised push.
        push_id: u64,
        /// The encoded request field section.
        header_block: Vec<u8>,
    },
    /// GOAWAY: a stream ID (from a server) or push ID (from a client).
    GoAway {
        /// The identifier.
        id: u64,
    },
    /// MAX_PUSH_ID.
    MaxPushId {
        /// The largest push ID the server may use.
        push_id: u64,
    },
    /// PRIORITY_UPDATE for a request stream (0xf0700).
    PriorityUpdateRequest {
        /// The request stream ID.
        prioritized_element_id: u64,
        /// The Priority Field Value (ASCII Structured Field dictionary).
        priority_field_value: Vec<u8>,
    },
    /// PRIORITY_UPDATE for a push stream (0xf0701).
    PriorityUpdatePush {
        /// The push ID.
        prioritized_element_id: u64,
        /// The Priority Field Value.
        priority_field_value: Vec<u8>,
    },
    /// A frame of a type we do not know, reserved ones included: skipped
    /// (RFC 9114 §9: "Implementations MUST ignore unknown or unsupported
    /// values in all extensible protocol elements"). Encoding one writes
    /// `payload_length` zero bytes, e.g. for greasing.
    Unknown {
        /// The frame type.
        raw_type: u64,
        /// The payload length.
        payload_length: u64,
    },
}

/// Reads a varint that must be inside the payload.
fn varint(b: &mut Octets<'_>) -> Result<u64> {
    b.get_varint().map_err(|_| Error::FrameError)
}

/// A payload that must be exactly one varint.
fn single_varint(payload: &[u8]) -> Result<u64> {
    let mut b = Octets::with_slice(payload);
    let v = varint(&mut b)?;
    if b.cap() != 0 {
        return Err(Error::FrameError);
    }
    Ok(v)
}

impl Frame {
    /// Decodes the frame of type `frame_type` whose whole payload is
    /// `payload`.
    pub fn decode(frame_type: u64, payload: &[u8]) -> Result<Frame> {
        // §7.2.8: HTTP/2 frame types' "receipt MUST be treated as a
        // connection error of type H3_FRAME_UNEXPECTED".
        if is_http2_frame_type(frame_type) {
            return Err(Error::FrameUnexpected);
        }
        Ok(match FrameType::from_wire(frame_type) {
            FrameType::Data => Frame::Data {
                payload: payload.to_vec(),
            },
            FrameType::Headers => Frame::Headers {
                header_block: payload.to_vec(),
            },
            FrameType::CancelPush => Frame::CancelPush {
                push_id: single_varint(payload)?,
            },
            FrameType::Settings => Frame::Settings(Settings::decode(payload)?),
            FrameType::PushPromise => {
                let mut b = Octets::with_slice(payload);
                let push_id = varint(&mut b)?;
                Frame::PushPromise {
                    push_id,
                    header_block: b.rest().to_vec(),
                }
            }
            FrameType::GoAway => Frame::GoAway {
                id: single_varint(payload)?,
            },
            FrameType::MaxPushId => Frame::MaxPushId {
                push_id: single_varint(payload)?,
            },
            FrameType::PriorityUpdateRequest => {
                let mut b = Octets::with_slice(payload);
                Frame::PriorityUpdateRequest {
                    prioritized_element_id: varint(&mut b)?,
                    priority_field_value: b.rest().to_vec(),
                }
            }
            FrameType::PriorityUpdatePush => {
                let mut b = Octets::with_slice(payload);
                Frame::PriorityUpdatePush {
                    prioritized_element_id: varint(&mut b)?,
                    priority_field_value: b.rest().to_vec(),
                }
            }
            FrameType::Unknown(raw_type) => Frame::Unknown {
                raw_type,
                payload_length: payload.len() as u64,
            },
        })
    }

    /// Decodes one whole frame (header and payload) from the front of
    /// `buf`, returning it and the bytes it took. `Err(BufferTooShort)`
    /// means `buf` ends inside the frame.
    pub fn decode_from(buf: &[u8]) -> Result<(Frame, usize)> {
        let mut b = Octets::with_slice(buf);
        let ty = b.get_varint()?;
        let len = b.get_varint()?;
        let len = usize::try_from(len).map_err(|_| Error::BufferTooShort)?;
        let payload = b.get_bytes(len)?;
        Ok((Frame::decode(ty, payload)?, b.off()))
    }

    /// The frame type on the wire.
    pub fn frame_type(&self) -> u64 {
        match self {
            Frame::Data { .. } => FrameType::Data.to_wire(),
            Frame::Headers { .. } => FrameType::Headers.to_wire(),
            Frame::CancelPush { .. } => FrameType::CancelPush.to_wire(),
            Frame::Settings(_) => FrameType::Settings.to_wire(),
            Frame::PushPromise { .. } => FrameType::PushPromise.to_wire(),
            Frame::GoAway { .. } => FrameType::GoAway.to_wire(),
            Frame::MaxPushId { .. } => FrameType::MaxPushId.to_wire(),
            Frame::PriorityUpdateRequest { .. } => FrameType::PriorityUpdateRequest.to_wire(),
            Frame::PriorityUpdatePush { .. } => FrameType::PriorityUpdatePush.to_wire(),
            Frame::Unknown { raw_type, .. } => *raw_type,
        }
    }

    /// The payload length on the wire.
    pub fn payload_len(&self) -> u64 {
        (match self {
            Frame::Data { payload } => payload.len(),
            Frame::Headers { header_block } => header_block.len(),
            Frame::CancelPush { push_id: v }
            | Frame::GoAway { id: v }
            | Frame::MaxPushId { push_id: v } => varint_len(*v),
            Frame::Settings(s) => s.payload_len(),
            Frame::PushPromise {
                push_id,
                header_block,
            } => varint_len(*push_id) + header_block.len(),
            Frame::PriorityUpdateRequest {
                prioritized_element_id: id,
                priority_field_value: v,
            }
            | Frame::PriorityUpdatePush {
                prioritized_element_id: id,
                priority_field_value: v,
            } => varint_len(*id) + v.len(),
            Frame::Unknown { payload_length, .. } => return *payload_length,
        }) as u64
    }

    /// The whole frame's length on the wire.
    pub fn wire_len(&self) -> usize {
        let len = self.payload_len();
        varint_len(self.frame_type()) + varint_len(len) + len as usize
    }

    /// Writes the frame; returns the bytes written.
    pub fn encode(&self, out: &mut OctetsMut<'_>) -> Result<usize> {
        let start = out.off();
        encode_header(self.frame_type(), self.payload_len(), out)?;
        match self {
            Frame::Data { payload: bytes }
            | Frame::Headers {
                header_block: bytes,
            } => out.put_bytes(bytes)?,
            Frame::CancelPush { push_id: v }
            | Frame::GoAway { id: v }
            | Frame::MaxPushId { push_id: v } => out.put_varint(*v)?,
            Frame::Settings(s) => s.encode(out)?,
            Frame::PushPromise {
                push_id,
                header_block,
            } => {
                out.put_varint(*push_id)?;
                out.put_bytes(header_block)?;
            }
            Frame::PriorityUpdateRequest {
                prioritized_element_id: id,
                priority_field_value: v,
            }
            | Frame::PriorityUpdatePush {
                prioritized_element_id: id,
                priority_field_value: v,
            } => {
                out.put_varint(*id)?;
                out.put_bytes(v)?;
            }
            Frame::Unknown { payload_length, .. } => {
                let n = usize::try_from(*payload_length).map_err(|_| Error::BufferTooShort)?;
                if out.cap() < n {
                    return Err(Error::BufferTooShort);
                }
                for _ in 0..n {
                    out.put_u8(0)?;
                }
            }
        }
        Ok(out.off() - start)
    }

    /// Whether this is a frame of a reserved (grease) type.
    pub fn is_grease(&self) -> bool {
        matches!(self, Frame::Unknown { raw_type, .. } if is_reserved(*raw_type))
    }
}

/// Writes a frame header: type and payload length.
pub fn encode_header(frame_type: u64, payload_len: u64, out: &mut OctetsMut<'_>) -> Result<()> {
    out.put_varint(frame_type)?;
    out.put_varint(payload_len)?;
    Ok(())
}

/// Length of a frame header.
pub fn header_len(frame_type: u64, payload_len: u64) -> usize {
    varint_len(frame_type) + varint_len(payload_len)
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The frame type.
    pub frame_type: u64,
    /// The payload length.
    pub payload_len: u64,
}

/// Reads one QUIC varint from input that may arrive a byte at a time.
#[derive(Clone, Copy, Debug, Default)]
pub struct VarintReader {
    buf: [u8; 8],
    have: usize,
}

impl VarintReader {
    /// Consumes bytes from `data` until the varint is complete; returns the
    /// bytes consumed and the value once complete (then the reader is reset
    /// for the next varint).
    pub fn feed(&mut self, data: &[u8]) -> (usize, Option<u64>) {
        let Some(&first) = data.first() else {
            return (0, None);
        };
        if self.have == 0 {
            self.buf[0] = first;
        }
        let need = varint_parse_len(self.buf[0]);
        let take = (need - self.have).min(data.len());
        self.buf[self.have..self.have + take].copy_from_slice(&data[..take]);
        self.have += take;
        if self.have < need {
            return (take, None);
        }
        self.have = 0;
        // `need` bytes of a well-formed varint are present.
        let v = Octets::with_slice(&self.buf[..need]).get_varint().ok();
        (take, v)
    }

    /// Whether part of a varint has been read.
    pub fn is_partial(&self) -> bool {
        self.have > 0
    }
}

/// Parses frame headers from stream data that arrives in pieces.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameHeaderReader {
    frame_type: Option<u64>,
    varint: VarintReader,
}

impl FrameHeaderReader {
    /// Consumes bytes from `data` until a header is complete; returns the
    /// bytes consumed and the header once complete (then the reader starts
    /// over for the next frame).
    pub fn feed(&mut self, data: &[u8]) -> (usize, Option<FrameHeader>) {
        let mut used = 0;
        loop {
            let (n, v) = self.varint.feed(&data[used..]);
            used += n;
            let Some(v) = v else {
                return (used, None);
            };
            match self.frame_type.take() {
                None => self.frame_type = Some(v),
                Some(frame_type) => {
                    return (
                        used,
                        Some(FrameHeader {
                            frame_type,
                            payload_len: v,
                        }),
                    );
                }
            }
        }
    }

    /// Whether part of a header has been read (a stream that ends now ends
    /// inside a frame: RFC 9114 §7.1, H3_FRAME_ERROR).
    pub fn is_partial(&self) -> bool {
        self.frame_type.is_some() || self.varint.is_partial()
    }
}

#[cfg(test)]
mod tests;
