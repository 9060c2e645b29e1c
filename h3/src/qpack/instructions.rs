//! Encoder instructions (RFC 9204 §4.3) and decoder instructions (§4.4):
//! parsing from a stream's bytes and emitting.
//!
//! Parsers work on whatever prefix of the stream is available: `Ok(None)`
//! means "incomplete, feed more", so callers can keep the unparsed tail.

use tarte::octets::Octets;

use super::prefix_int::{decode_int, decode_string, encode_int, encode_string, PrimitiveError};
use super::{Error, Result};

/// An instruction on the encoder stream (RFC 9204 §4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncoderInstruction {
    /// Set Dynamic Table Capacity (§4.3.1): `001` + capacity (5-bit prefix).
    SetCapacity(u64),
    /// Insert with Name Reference (§4.3.2): `1 T` + index (6-bit prefix),
    /// then the value. A dynamic `index` is relative to the Insert Count.
    InsertWithNameRef {
        /// Whether the name comes from the static table (T bit).
        is_static: bool,
        /// Static index or relative dynamic index.
        index: u64,
        /// The field value.
        value: Vec<u8>,
    },
    /// Insert with Literal Name (§4.3.3): `01 H` + name length (5-bit
    /// prefix), name, then the value.
    InsertWithLiteralName {
        /// The field name.
        name: Vec<u8>,
        /// The field value.
        value: Vec<u8>,
    },
    /// Duplicate (§4.3.4): `000` + relative index (5-bit prefix).
    Duplicate(u64),
}

/// Maps a primitive failure on the encoder stream: incomplete input is not
/// an error yet.
fn enc_stream_err(e: PrimitiveError) -> Option<Error> {
    match e {
        PrimitiveError::Incomplete => None,
        PrimitiveError::Overflow => Some(Error::EncoderStream("integer overflow")),
        PrimitiveError::TooLong => Some(Error::EncoderStream(
            "string longer than the table capacity",
        )),
        PrimitiveError::Huffman(_) => Some(Error::EncoderStream("invalid Huffman string")),
    }
}

impl EncoderInstruction {
    /// Parses one instruction from the front of `buf`, returning it and the
    /// bytes it took, or `Ok(None)` if `buf` ends inside it.
    ///
    /// `max_string` bounds the wire length of each string literal: an entry
    /// must fit the table (RFC 9204 §3.2.2), so a longer literal is a
    /// QPACK_ENCODER_STREAM_ERROR as soon as its length is read, and the
    /// caller never buffers more than about `2 * max_string` bytes.
    pub fn parse(buf: &[u8], max_string: usize) -> Result<Option<(Self, usize)>> {
        let mut b = Octets::with_slice(buf);
        match Self::parse_inner(&mut b, max_string) {
            Ok(i) => Ok(Some((i, b.off()))),
            Err(e) => match enc_stream_err(e) {
                None => Ok(None),
                Some(e) => Err(e),
            },
        }
    }

    fn parse_inner(
        b: &mut Octets<'_>,
        max_string: usize,
    ) -> std::result::Result<Self, PrimitiveError> {
        let first = b.peek_u8()?;
        if first & 0x80 != 0 {
            let is_static = first & 0x40 != 0;
            let index = decode_int(b, 6)?;
            let mut value = Vec::new();
            decode_string(b, 7, max_string, &mut value)?;
            Ok(EncoderInstruction::InsertWithNameRef {
                is_static,
                index,
                value,
            })
        } else if first & 0x40 != 0 {
            let mut name = Vec::new();
            decode_string(b, 5, max_string, &mut name)?;
            let mut value = Vec::new();
            decode_string(b, 7, max_string, &mut value)?;
            Ok(EncoderInstruction::InsertWithLiteralName { name, value })
        } else if first & 0x20 != 0 {
            Ok(EncoderInstruction::SetCapacity(decode_int(b, 5)?))
        } else {
            Ok(EncoderInstruction::Duplicate(decode_int(b, 5)?))
        }
    }

    /// Appends the instruction's encoding; strings are Huffman-coded when
    /// `huffman` is set and that is shorter.
    pub fn emit(&self, huffman: bool, out: &mut Vec<u8>) {
        match self {
            EncoderInstruction::SetCapacity(c) => emit_set_capacity(*c, out),
            EncoderInstruction::InsertWithNameRef {
                is_static,
                index,
                value,
            } => emit_insert_with_name_ref(*is_static, *index, value, huffman, out),
            EncoderInstruction::InsertWithLiteralName { name, value } => {
                emit_insert_with_literal_name(name, value, huffman, out)
            }
            EncoderInstruction::Duplicate(i) => emit_duplicate(*i, out),
        }
    }
}

/// Set Dynamic Table Capacity (RFC 9204 §4.3.1).
pub fn emit_set_capacity(capacity: u64, out: &mut Vec<u8>) {
    encode_int(capacity, 5, 0x20, out);
}

/// Insert with Name Reference (RFC 9204 §4.3.2).
pub fn emit_insert_with_name_ref(
    is_static: bool,
    index: u64,
    value: &[u8],
    huffman: bool,
    out: &mut Vec<u8>,
) {
    encode_int(index, 6, if is_static { 0xc0 } else { 0x80 }, out);
    encode_string(value, 7, 0, huffman, out);
}

/// Insert with Literal Name (RFC 9204 §4.3.3).
pub fn emit_insert_with_literal_name(name: &[u8], value: &[u8], huffman: bool, out: &mut Vec<u8>) {
    encode_string(name, 5, 0x40, huffman, out);
    encode_string(value, 7, 0, huffman, out);
}

/// Duplicate (RFC 9204 §4.3.4).
pub fn emit_duplicate(relative_index: u64, out: &mut Vec<u8>) {
    encode_int(relative_index, 5, 0x00, out);
}

/// An instruction on the decoder stream (RFC 9204 §4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecoderInstruction {
    /// Section Acknowledgment (§4.4.1): `1` + stream ID (7-bit prefix).
    SectionAck(u64),
    /// Stream Cancellation (§4.4.2): `01` + stream ID (6-bit prefix).
    StreamCancellation(u64),
    /// Insert Count Increment (§4.4.3): `00` + increment (6-bit prefix).
    InsertCountIncrement(u64),
}

impl DecoderInstruction {
    /// Parses one instruction from the front of `buf`, returning it and the
    /// bytes it took, or `Ok(None)` if `buf` ends inside it.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>> {
        let mut b = Octets::with_slice(buf);
        let Ok(first) = b.peek_u8() else {
            return Ok(None);
        };
        let r = if first & 0x80 != 0 {
            decode_int(&mut b, 7).map(DecoderInstruction::SectionAck)
        } else if first & 0x40 != 0 {
            decode_int(&mut b, 6).map(DecoderInstruction::StreamCancellation)
        } else {
            decode_int(&mut b, 6).map(DecoderInstruction::InsertCountIncrement)
        };
        match r {
            Ok(i) => Ok(Some((i, b.off()))),
            Err(PrimitiveError::Incomplete) => Ok(None),
            Err(_) => Err(Error::DecoderStream("integer overflow")),
        }
    }

    /// Appends the instruction's encoding.
    pub fn emit(&self, out: &mut Vec<u8>) {
        match *self {
            DecoderInstruction::SectionAck(id) => encode_int(id, 7, 0x80, out),
            DecoderInstruction::StreamCancellation(id) => encode_int(id, 6, 0x40, out),
            DecoderInstruction::InsertCountIncrement(n) => encode_int(n, 6, 0x00, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn rfc9204_appendix_b_encoder_instructions() {
        let cases = [
            ("3fbd01", EncoderInstruction::SetCapacity(220)),
            (
                "c00f 7777 772e 6578 616d 706c 652e 636f 6d",
                EncoderInstruction::InsertWithNameRef {
                    is_static: true,
                    index: 0,
                    value: b"www.example.com".to_vec(),
                },
            ),
            (
                "4a63 7573 746f 6d2d 6b65 790c 6375 7374 6f6d 2d76 616c 7565",
                EncoderInstruction::InsertWithLiteralName {
                    name: b"custom-key".to_vec(),
                    value: b"custom-value".to_vec(),
                },
            ),
            ("02", EncoderInstruction::Duplicate(2)),
            (
                "810d 6375 7374 6f6d 2d76 616c 7565 32",
                EncoderInstruction::InsertWithNameRef {
                    is_static: false,
                    index: 1,
                    value: b"custom-value2".to_vec(),
                },
            ),
        ];
        for (hex, instr) in cases {
            let wire = unhex(hex);
            assert_eq!(
                EncoderInstruction::parse(&wire, 4096),
                Ok(Some((instr.clone(), wire.len())))
            );
            let mut out = vec![];
            instr.emit(false, &mut out);
            assert_eq!(out, wire);
            // Every strict prefix is incomplete, not an error.
            for n in 0..wire.len() {
                assert_eq!(
                    EncoderInstruction::parse(&wire[..n], 4096),
                    Ok(None),
                    "{hex} {n}"
                );
            }
            // Huffman emission parses back to the same instruction.
            let mut h = vec![];
            instr.emit(true, &mut h);
            assert_eq!(
                EncoderInstruction::parse(&h, 4096),
                Ok(Some((instr, h.len())))
            );
        }
    }

    #[test]
    fn encoder_instruction_errors() {
        // A value longer than the limit is refused from its length alone.
        assert_eq!(
            EncoderInstruction::parse(&[0xc0, 0x7f, 0xff, 0x7f], 100),
            Err(Error::EncoderStream(
                "string longer than the table capacity"
            ))
        );
        // Overlong integer.
        let mut w = vec![0x3f];
        w.extend([0xff; 12]);
        assert!(matches!(
            EncoderInstruction::parse(&w, 100),
            Err(Error::EncoderStream(_))
        ));
        // Bad Huffman value (8 bits of padding).
        assert!(matches!(
            EncoderInstruction::parse(&[0xc0, 0x81, 0xff], 100),
            Err(Error::EncoderStream(_))
        ));
    }

    #[test]
    fn rfc9204_appendix_b_decoder_instructions() {
        let cases = [
            ("84", DecoderInstruction::SectionAck(4)),
            ("01", DecoderInstruction::InsertCountIncrement(1)),
            ("48", DecoderInstruction::StreamCancellation(8)),
        ];
        for (hex, instr) in cases {
            let wire = unhex(hex);
            assert_eq!(DecoderInstruction::parse(&wire), Ok(Some((instr, 1))));
            let mut out = vec![];
            instr.emit(&mut out);
            assert_eq!(out, wire);
        }
        // Large stream IDs round-trip and truncate cleanly.
        let instr = DecoderInstruction::SectionAck((1 << 62) - 4);
        let mut out = vec![];
        instr.emit(&mut out);
        assert_eq!(
            DecoderInstruction::parse(&out),
            Ok(Some((instr, out.len())))
        );
        assert_eq!(DecoderInstruction::parse(&out[..out.len() - 1]), Ok(None));
        assert_eq!(DecoderInstruction::parse(&[]), Ok(None));
        let mut w = vec![0xff];
        w.extend([0xff; 10]);
        assert_eq!(
            DecoderInstruction::parse(&w),
            Err(Error::DecoderStream("integer overflow"))
        );
    }
}
