//! QPACK primitives: prefixed integers (RFC 9204 §4.1.1, i.e. RFC 7541
//! §5.1) and string literals (RFC 9204 §4.1.2).

use tarte::octets::Octets;

use super::huffman::{self, HuffmanError};

/// Largest integer we accept: the largest QUIC varint, 2^62 - 1. Stream IDs,
/// capacities and indices never need more (RFC 9204 §4.1.1: "QPACK
/// implementations MUST be able to decode integers up to and including 62
/// bits long").
pub const MAX_INT: u64 = (1 << 62) - 1;

/// Why a primitive could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrimitiveError {
    /// The input ends inside the primitive: wait for more (on a stream), or
    /// a truncated representation (inside a field section).
    Incomplete,
    /// An integer above [`MAX_INT`] or with more continuation bytes than
    /// such a value needs.
    Overflow,
    /// A string longer than the caller's limit.
    TooLong,
    /// A malformed Huffman string.
    Huffman(HuffmanError),
}

impl From<tarte::octets::BufferTooShort> for PrimitiveError {
    fn from(_: tarte::octets::BufferTooShort) -> Self {
        PrimitiveError::Incomplete
    }
}

/// Reads an integer with an `prefix`-bit prefix (1..=8); the bits of the
/// first byte above the prefix are the caller's flags and are ignored here.
pub fn decode_int(b: &mut Octets<'_>, prefix: u8) -> Result<u64, PrimitiveError> {
    debug_assert!((1..=8).contains(&prefix));
    let mask = ((1u16 << prefix) - 1) as u8;
    let first = b.get_u8()? & mask;
    if first < mask {
        return Ok(u64::from(first));
    }
    let mut value = u64::from(mask);
    let mut shift = 0u32;
    loop {
        let byte = b.get_u8()?;
        // Nine continuation bytes carry 63 bits: anything beyond is an
        // overlong encoding, even if its extra bits are zero.
        if shift > 56 {
            return Err(PrimitiveError::Overflow);
        }
        let add = u64::from(byte & 0x7f) << shift;
        value = value.checked_add(add).ok_or(PrimitiveError::Overflow)?;
        if value > MAX_INT {
            return Err(PrimitiveError::Overflow);
        }
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
    }
}

/// Appends `value` with an `prefix`-bit prefix; `flags` supplies the bits
/// above the prefix in the first byte.
pub fn encode_int(value: u64, prefix: u8, flags: u8, out: &mut Vec<u8>) {
    debug_assert!((1..=8).contains(&prefix));
    let mask = ((1u16 << prefix) - 1) as u8;
    if value < u64::from(mask) {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask);
    let mut rest = value - u64::from(mask);
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Bytes that [`encode_int`] writes for `value`.
pub fn int_len(value: u64, prefix: u8) -> usize {
    let mask = (1u64 << prefix) - 1;
    if value < mask {
        return 1;
    }
    let mut rest = value - mask;
    let mut n = 2;
    while rest >= 0x80 {
        rest >>= 7;
        n += 1;
    }
    n
}

/// Reads a string literal whose length has a `prefix`-bit prefix and whose
/// Huffman flag is the bit just above it, appending the decoded bytes to
/// `out`. A wire length above `max_len` is [`PrimitiveError::TooLong`]
/// before any byte of the string is needed, so a stream parser can reject
/// an oversized literal without buffering it.
pub fn decode_string(
    b: &mut Octets<'_>,
    prefix: u8,
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), PrimitiveError> {
    let huffman = b.peek_u8()? & (1 << prefix) != 0;
    let len = decode_int(b, prefix)?;
    let len = usize::try_from(len).map_err(|_| PrimitiveError::TooLong)?;
    if len > max_len {
        return Err(PrimitiveError::TooLong);
    }
    let bytes = b.get_bytes(len)?;
    if huffman {
        huffman::decode(bytes, out).map_err(PrimitiveError::Huffman)
    } else {
        out.extend_from_slice(bytes);
        Ok(())
    }
}

/// Appends a string literal with a `prefix`-bit length prefix; `flags` are
/// the bits above the Huffman flag. Huffman coding is used when `huffman`
/// is set and it is shorter.
pub fn encode_string(s: &[u8], prefix: u8, flags: u8, huffman: bool, out: &mut Vec<u8>) {
    if huffman {
        let hlen = huffman::encoded_len(s);
        if hlen < s.len() {
            encode_int(hlen as u64, prefix, flags | (1 << prefix), out);
            huffman::encode(s, out);
            return;
        }
    }
    encode_int(s.len() as u64, prefix, flags, out);
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(buf: &[u8], prefix: u8) -> Result<(u64, usize), PrimitiveError> {
        let mut b = Octets::with_slice(buf);
        let v = decode_int(&mut b, prefix)?;
        Ok((v, b.off()))
    }

    // RFC 7541 C.1.1-C.1.3.
    #[test]
    fn rfc7541_integer_examples() {
        let mut out = vec![];
        encode_int(10, 5, 0, &mut out);
        assert_eq!(out, [0x0a]);
        out.clear();
        encode_int(1337, 5, 0, &mut out);
        assert_eq!(out, [0x1f, 0x9a, 0x0a]);
        out.clear();
        encode_int(42, 8, 0, &mut out);
        assert_eq!(out, [0x2a]);
        assert_eq!(dec(&[0x0a], 5), Ok((10, 1)));
        assert_eq!(dec(&[0xff, 0x9a, 0x0a], 5), Ok((1337, 3)));
        assert_eq!(dec(&[0x2a], 8), Ok((42, 1)));
        assert_eq!(int_len(1337, 5), 3);
    }

    #[test]
    fn flags_are_kept_and_ignored() {
        let mut out = vec![];
        encode_int(3, 6, 0xc0, &mut out);
        assert_eq!(out, [0xc3]);
        assert_eq!(dec(&out, 6), Ok((3, 1)));
    }

    #[test]
    fn round_trip_all_prefixes() {
        let values = [
            0,
            1,
            30,
            31,
            32,
            126,
            127,
            128,
            255,
            256,
            16_383,
            1 << 20,
            MAX_INT,
        ];
        for prefix in 1..=8 {
            for &v in &values {
                let mut out = vec![0xa5];
                encode_int(v, prefix, 0, &mut out);
                assert_eq!(out.len() - 1, int_len(v, prefix));
                assert_eq!(
                    dec(&out[1..], prefix),
                    Ok((v, out.len() - 1)),
                    "{v} {prefix}"
                );
            }
        }
    }

    #[test]
    fn truncated_and_overlong() {
        assert_eq!(dec(&[], 5), Err(PrimitiveError::Incomplete));
        assert_eq!(dec(&[0x1f], 5), Err(PrimitiveError::Incomplete));
        assert_eq!(dec(&[0x1f, 0x80], 5), Err(PrimitiveError::Incomplete));
        // 2^62 is one above the limit.
        let mut out = vec![];
        encode_int(MAX_INT + 1, 8, 0, &mut out);
        assert_eq!(dec(&out, 8), Err(PrimitiveError::Overflow));
        // Ten continuation bytes of zero: a small value, overlong encoding.
        let mut long = vec![0xff];
        long.extend([0x80; 10]);
        long.push(0);
        assert_eq!(dec(&long, 8), Err(PrimitiveError::Overflow));
        // u64 overflow in the shift.
        assert_eq!(
            dec(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
                8
            ),
            Err(PrimitiveError::Overflow)
        );
    }

    #[test]
    fn strings() {
        let mut out = vec![];
        encode_string(b"custom-key", 7, 0, false, &mut out);
        assert_eq!(out, b"\x0acustom-key");
        out.clear();
        // RFC 7541 C.4.1: "www.example.com" Huffman-coded, 7-bit prefix.
        encode_string(b"www.example.com", 7, 0, true, &mut out);
        assert_eq!(hex::encode(&out), "8cf1e3c2e5f23a6ba0ab90f4ff");
        let mut b = Octets::with_slice(&out);
        let mut s = vec![];
        decode_string(&mut b, 7, 100, &mut s).unwrap();
        assert_eq!(s, b"www.example.com");
        assert_eq!(b.cap(), 0);
        // Length above the limit is refused before the bytes arrive.
        let mut b = Octets::with_slice(&[0x7f, 0x81, 0x01]);
        assert_eq!(
            decode_string(&mut b, 7, 100, &mut s),
            Err(PrimitiveError::TooLong)
        );
        // Truncated body.
        let mut b = Octets::with_slice(&[0x05, b'a']);
        assert_eq!(
            decode_string(&mut b, 7, 100, &mut s),
            Err(PrimitiveError::Incomplete)
        );
        // Bad Huffman: 0xff alone is 8 bits of padding.
        let mut b = Octets::with_slice(&[0x81, 0xff]);
        assert_eq!(
            decode_string(&mut b, 7, 100, &mut s),
            Err(PrimitiveError::Huffman(HuffmanError::BadPadding))
        );
    }
}
