//! Encoded field sections (RFC 9204 §4.5): the prefix with Required Insert
//! Count and Base, and the five field line representations.

use tarte::octets::Octets;

use super::prefix_int::{decode_int, decode_string, encode_int, encode_string, PrimitiveError};
use super::{Error, Result};

/// `MaxEntries` for a maximum table capacity (RFC 9204 §4.5.1.1).
pub fn max_entries(max_table_capacity: u64) -> u64 {
    max_table_capacity / 32
}

/// Encodes a Required Insert Count (RFC 9204 §4.5.1.1).
pub fn encode_required_insert_count(ric: u64, max_table_capacity: u64) -> u64 {
    if ric == 0 {
        return 0;
    }
    // A non-zero RIC implies a non-zero capacity, so MaxEntries > 0.
    (ric % (2 * max_entries(max_table_capacity)).max(1)) + 1
}

/// Decodes an encoded Required Insert Count given the decoder's Insert
/// Count and maximum table capacity (RFC 9204 §4.5.1.1).
pub fn decode_required_insert_count(
    encoded: u64,
    insert_count: u64,
    max_table_capacity: u64,
) -> Result<u64> {
    if encoded == 0 {
        return Ok(0);
    }
    let max_entries = max_entries(max_table_capacity);
    let full_range = 2 * max_entries;
    // §4.5.1.1: "If the decoder encounters a value of EncodedInsertCount
    // that could not have been produced by a conformant encoder, it MUST
    // treat this as a connection error of type QPACK_DECOMPRESSION_FAILED."
    if encoded > full_range {
        return Err(Error::DecompressionFailed(
            "encoded Required Insert Count out of range",
        ));
    }
    let max_value = insert_count + max_entries;
    let max_wrapped = (max_value / full_range) * full_range;
    let mut ric = max_wrapped + encoded - 1;
    if ric > max_value {
        if ric <= full_range {
            return Err(Error::DecompressionFailed(
                "Required Insert Count wraps below zero",
            ));
        }
        ric -= full_range;
    }
    if ric == 0 {
        return Err(Error::DecompressionFailed(
            "Required Insert Count decodes to zero",
        ));
    }
    Ok(ric)
}

/// Appends the field section prefix (RFC 9204 §4.5.1).
pub fn emit_prefix(ric: u64, base: u64, max_table_capacity: u64, out: &mut Vec<u8>) {
    encode_int(
        encode_required_insert_count(ric, max_table_capacity),
        8,
        0,
        out,
    );
    if base >= ric {
        encode_int(base - ric, 7, 0x00, out);
    } else {
        encode_int(ric - base - 1, 7, 0x80, out);
    }
}

/// Reads the prefix: `(encoded Required Insert Count, sign, Delta Base)`.
pub fn parse_prefix(b: &mut Octets<'_>) -> Result<(u64, bool, u64)> {
    let ric = decode_int(b, 8).map_err(section_err)?;
    let sign = b
        .peek_u8()
        .map_err(|_| Error::DecompressionFailed("truncated prefix"))?
        & 0x80
        != 0;
    let delta = decode_int(b, 7).map_err(section_err)?;
    Ok((ric, sign, delta))
}

/// Computes Base from the prefix (RFC 9204 §4.5.1.2).
pub fn base(ric: u64, sign: bool, delta: u64) -> Result<u64> {
    if sign {
        // "the value of Base MUST NOT be negative": Base = RIC - Delta - 1.
        ric.checked_sub(delta)
            .and_then(|v| v.checked_sub(1))
            .ok_or(Error::DecompressionFailed("negative Base"))
    } else {
        ric.checked_add(delta)
            .ok_or(Error::DecompressionFailed("Base overflow"))
    }
}

/// Maps a primitive failure inside a field section.
pub fn section_err(e: PrimitiveError) -> Error {
    match e {
        PrimitiveError::Incomplete => Error::DecompressionFailed("truncated field line"),
        PrimitiveError::Overflow => Error::DecompressionFailed("integer overflow"),
        PrimitiveError::TooLong => Error::DecompressionFailed("string too long"),
        PrimitiveError::Huffman(_) => Error::DecompressionFailed("invalid Huffman string"),
    }
}

/// One field line representation (RFC 9204 §4.5.2-§4.5.6). Dynamic indices
/// are as on the wire: relative to Base, or post-Base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldLine {
    /// Indexed Field Line, static (§4.5.2, T=1).
    IndexedStatic(u64),
    /// Indexed Field Line, dynamic, relative index (§4.5.2, T=0).
    IndexedDynamic(u64),
    /// Indexed Field Line with Post-Base Index (§4.5.3).
    IndexedPostBase(u64),
    /// Literal Field Line with Name Reference (§4.5.4).
    LiteralNameRef {
        /// N bit: never index this field at an intermediary.
        never_indexed: bool,
        /// T bit: static name index; otherwise relative dynamic index.
        is_static: bool,
        /// The name index.
        index: u64,
        /// The value.
        value: Vec<u8>,
    },
    /// Literal Field Line with Post-Base Name Reference (§4.5.5).
    LiteralPostBaseNameRef {
        /// N bit.
        never_indexed: bool,
        /// Post-base name index.
        index: u64,
        /// The value.
        value: Vec<u8>,
    },
    /// Literal Field Line with Literal Name (§4.5.6).
    LiteralName {
        /// N bit.
        never_indexed: bool,
        /// The name.
        name: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
}

impl FieldLine {
    /// Parses one field line; the section is complete in memory, so running
    /// out of bytes is QPACK_DECOMPRESSION_FAILED. `max_string` bounds each
    /// string's wire length.
    pub fn parse(b: &mut Octets<'_>, max_string: usize) -> Result<Self> {
        Self::parse_inner(b, max_string).map_err(section_err)
    }

    fn parse_inner(
        b: &mut Octets<'_>,
        max_string: usize,
    ) -> std::result::Result<Self, PrimitiveError> {
        let first = b.peek_u8()?;
        if first & 0x80 != 0 {
            let index = decode_int(b, 6)?;
            return Ok(if first & 0x40 != 0 {
                FieldLine::IndexedStatic(index)
            } else {
                FieldLine::IndexedDynamic(index)
            });
        }
        if first & 0x40 != 0 {
            let index = decode_int(b, 4)?;
            let mut value = Vec::new();
            decode_string(b, 7, max_string, &mut value)?;
            return Ok(FieldLine::LiteralNameRef {
                never_indexed: first & 0x20 != 0,
                is_static: first & 0x10 != 0,
                index,
                value,
            });
        }
        if first & 0x20 != 0 {
            let mut name = Vec::new();
            decode_string(b, 3, max_string, &mut name)?;
            let mut value = Vec::new();
            decode_string(b, 7, max_string, &mut value)?;
            return Ok(FieldLine::LiteralName {
                never_indexed: first & 0x10 != 0,
                name,
                value,
            });
        }
        if first & 0x10 != 0 {
            return Ok(FieldLine::IndexedPostBase(decode_int(b, 4)?));
        }
        let index = decode_int(b, 3)?;
        let mut value = Vec::new();
        decode_string(b, 7, max_string, &mut value)?;
        Ok(FieldLine::LiteralPostBaseNameRef {
            never_indexed: first & 0x08 != 0,
            index,
            value,
        })
    }

    /// Appends this representation.
    pub fn emit(&self, huffman: bool, out: &mut Vec<u8>) {
        match self {
            FieldLine::IndexedStatic(i) => emit_indexed(true, *i, out),
            FieldLine::IndexedDynamic(i) => emit_indexed(false, *i, out),
            FieldLine::IndexedPostBase(i) => emit_indexed_post_base(*i, out),
            FieldLine::LiteralNameRef {
                never_indexed,
                is_static,
                index,
                value,
            } => emit_literal_name_ref(*never_indexed, *is_static, *index, value, huffman, out),
            FieldLine::LiteralPostBaseNameRef {
                never_indexed,
                index,
                value,
            } => emit_literal_post_base_name_ref(*never_indexed, *index, value, huffman, out),
            FieldLine::LiteralName {
                never_indexed,
                name,
                value,
            } => emit_literal_name(*never_indexed, name, value, huffman, out),
        }
    }
}

/// Indexed Field Line (§4.5.2).
pub fn emit_indexed(is_static: bool, index: u64, out: &mut Vec<u8>) {
    encode_int(index, 6, if is_static { 0xc0 } else { 0x80 }, out);
}

/// Indexed Field Line with Post-Base Index (§4.5.3).
pub fn emit_indexed_post_base(index: u64, out: &mut Vec<u8>) {
    encode_int(index, 4, 0x10, out);
}

/// Literal Field Line with Name Reference (§4.5.4).
pub fn emit_literal_name_ref(
    never_indexed: bool,
    is_static: bool,
    index: u64,
    value: &[u8],
    huffman: bool,
    out: &mut Vec<u8>,
) {
    let flags = 0x40 | if never_indexed { 0x20 } else { 0 } | if is_static { 0x10 } else { 0 };
    encode_int(index, 4, flags, out);
    encode_string(value, 7, 0, huffman, out);
}

/// Literal Field Line with Post-Base Name Reference (§4.5.5).
pub fn emit_literal_post_base_name_ref(
    never_indexed: bool,
    index: u64,
    value: &[u8],
    huffman: bool,
    out: &mut Vec<u8>,
) {
    encode_int(index, 3, if never_indexed { 0x08 } else { 0 }, out);
    encode_string(value, 7, 0, huffman, out);
}

/// Literal Field Line with Literal Name (§4.5.6).
pub fn emit_literal_name(
    never_indexed: bool,
    name: &[u8],
    value: &[u8],
    huffman: bool,
    out: &mut Vec<u8>,
) {
    encode_string(
        name,
        3,
        0x20 | if never_indexed { 0x10 } else { 0 },
        huffman,
        out,
    );
    encode_string(value, 7, 0, huffman, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_representation_round_trips() {
        let lines = [
            FieldLine::IndexedStatic(98),
            FieldLine::IndexedDynamic(0),
            FieldLine::IndexedDynamic(1000),
            FieldLine::IndexedPostBase(15),
            FieldLine::IndexedPostBase(16),
            FieldLine::LiteralNameRef {
                never_indexed: true,
                is_static: true,
                index: 1,
                value: b"/index.html".to_vec(),
            },
            FieldLine::LiteralNameRef {
                never_indexed: false,
                is_static: false,
                index: 300,
                value: vec![],
            },
            FieldLine::LiteralPostBaseNameRef {
                never_indexed: true,
                index: 7,
                value: b"v".to_vec(),
            },
            FieldLine::LiteralPostBaseNameRef {
                never_indexed: false,
                index: 8,
                value: vec![0xff; 200],
            },
            FieldLine::LiteralName {
                never_indexed: true,
                name: b"x-custom".to_vec(),
                value: b"some value".to_vec(),
            },
            FieldLine::LiteralName {
                never_indexed: false,
                name: vec![],
                value: vec![],
            },
        ];
        for huffman in [false, true] {
            let mut out = vec![];
            for l in &lines {
                l.emit(huffman, &mut out);
            }
            let mut b = Octets::with_slice(&out);
            for l in &lines {
                assert_eq!(&FieldLine::parse(&mut b, 1 << 16).unwrap(), l);
            }
            assert_eq!(b.cap(), 0);
            // Any truncation inside the last line is an error, not a panic.
            for n in 0..out.len() {
                let mut b = Octets::with_slice(&out[..n]);
                let mut ok = 0;
                while b.cap() > 0 {
                    if FieldLine::parse(&mut b, 1 << 16).is_err() {
                        break;
                    }
                    ok += 1;
                }
                assert!(ok < lines.len());
            }
        }
    }

    #[test]
    fn literal_example_b1() {
        // RFC 9204 B.1: 510b 2f69 6e64 6578 2e68 746d 6c
        let mut out = vec![];
        emit_literal_name_ref(false, true, 1, b"/index.html", false, &mut out);
        assert_eq!(hex::encode(&out), "510b2f696e6465782e68746d6c");
    }

    #[test]
    fn required_insert_count_codec() {
        // RFC 9204 B.2 and B.4: capacity 220 → MaxEntries 6, FullRange 12.
        assert_eq!(encode_required_insert_count(2, 220), 3);
        assert_eq!(encode_required_insert_count(4, 220), 5);
        assert_eq!(encode_required_insert_count(0, 220), 0);
        assert_eq!(decode_required_insert_count(3, 0, 220), Ok(2));
        // Round trip over a window around the Insert Count, with wrapping.
        for insert_count in 0..100u64 {
            let lo = insert_count.saturating_sub(5).max(1);
            for ric in lo..=insert_count + 6 {
                let enc = encode_required_insert_count(ric, 220);
                assert_eq!(
                    decode_required_insert_count(enc, insert_count, 220),
                    Ok(ric)
                );
            }
        }
        // Out of range and impossible values.
        assert!(decode_required_insert_count(13, 0, 220).is_err());
        assert!(decode_required_insert_count(1, 0, 0).is_err());
        // With Insert Count 0, encoded 8 would need RIC 7 > MaxValue 6 and
        // 7 <= FullRange: impossible.
        assert!(decode_required_insert_count(8, 0, 220).is_err());
    }

    #[test]
    fn prefix_and_base() {
        let mut out = vec![];
        emit_prefix(2, 0, 220, &mut out);
        assert_eq!(out, [0x03, 0x81]);
        out.clear();
        emit_prefix(4, 4, 220, &mut out);
        assert_eq!(out, [0x05, 0x00]);
        let mut b = Octets::with_slice(&[0x03, 0x81]);
        assert_eq!(parse_prefix(&mut b), Ok((3, true, 1)));
        assert_eq!(base(2, true, 1), Ok(0));
        assert_eq!(base(2, false, 3), Ok(5));
        assert!(base(2, true, 2).is_err());
        assert!(base(u64::MAX, false, 1).is_err());
        assert!(parse_prefix(&mut Octets::with_slice(&[0x03])).is_err());
        assert!(parse_prefix(&mut Octets::with_slice(&[])).is_err());
    }
}
