//! Byte cursors and the QUIC variable-length integer codec (RFC 9000 §16).
//!
//! Every wire codec in tarte (packet headers, frames, transport parameters,
//! HTTP/3 frames) reads through [`Octets`] and writes through [`OctetsMut`].
//! Both cursors are bounds-checked: running past the end is a
//! [`BufferTooShort`] error, never a panic.

use std::fmt;

/// The buffer ran out before the value did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooShort;

impl fmt::Display for BufferTooShort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("buffer too short")
    }
}

impl std::error::Error for BufferTooShort {}

/// Result of a cursor operation.
pub type Result<T> = std::result::Result<T, BufferTooShort>;

/// The largest value a variable-length integer can hold (2^62 - 1).
pub const MAX_VARINT: u64 = (1 << 62) - 1;

/// Number of bytes the variable-length encoding of `v` takes (RFC 9000 §16).
///
/// Values above [`MAX_VARINT`] cannot be encoded; they report 8 and
/// [`OctetsMut::put_varint`] rejects them.
#[inline]
pub const fn varint_len(v: u64) -> usize {
    if v < 64 {
        1
    } else if v < 16_384 {
        2
    } else if v < 1_073_741_824 {
        4
    } else {
        8
    }
}

/// Length of a variable-length integer from its first byte.
#[inline]
pub const fn varint_parse_len(first: u8) -> usize {
    1 << (first >> 6)
}

/// A read cursor over an immutable byte slice.
#[derive(Debug)]
pub struct Octets<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> Octets<'a> {
    /// A cursor at the start of `buf`.
    #[inline]
    pub fn with_slice(buf: &'a [u8]) -> Self {
        Octets { buf, off: 0 }
    }

    /// Reads `N` bytes as a fixed array.
    #[inline]
    fn get_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.buf.get(self.off..self.off + N).ok_or(BufferTooShort)?;
        self.off += N;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads one byte.
    #[inline]
    pub fn get_u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.off).ok_or(BufferTooShort)?;
        self.off += 1;
        Ok(b)
    }

    /// Reads one byte without advancing.
    #[inline]
    pub fn peek_u8(&self) -> Result<u8> {
        self.buf.get(self.off).copied().ok_or(BufferTooShort)
    }

    /// Reads a big-endian u16.
    #[inline]
    pub fn get_u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.get_array()?))
    }

    /// Reads a big-endian 24-bit integer.
    #[inline]
    pub fn get_u24(&mut self) -> Result<u32> {
        let [a, b, c] = self.get_array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    /// Reads a big-endian u32.
    #[inline]
    pub fn get_u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.get_array()?))
    }

    /// Reads a big-endian u64.
    #[inline]
    pub fn get_u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.get_array()?))
    }

    /// Reads a variable-length integer (RFC 9000 §16).
    #[inline]
    pub fn get_varint(&mut self) -> Result<u64> {
        // One big-endian load per length (RFC 9000 §16: the two high
        // bits of the first byte give it), not a loop over the bytes.
        let first = self.peek_u8()?;
        Ok(match first >> 6 {
            0 => {
                self.off += 1;
                u64::from(first)
            }
            1 => u64::from(u16::from_be_bytes(self.get_array()?) & 0x3fff),
            2 => u64::from(u32::from_be_bytes(self.get_array()?) & 0x3fff_ffff),
            _ => u64::from_be_bytes(self.get_array()?) & 0x3fff_ffff_ffff_ffff,
        })
    }

    /// Reads `len` bytes as a sub-slice.
    #[inline]
    pub fn get_bytes(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self.off.checked_add(len).ok_or(BufferTooShort)?;
        let out = self.buf.get(self.off..end).ok_or(BufferTooShort)?;
        self.off = end;
        Ok(out)
    }

    /// Reads a one-byte length followed by that many bytes.
    #[inline]
    pub fn get_bytes_with_u8_length(&mut self) -> Result<&'a [u8]> {
        let len = self.get_u8()?;
        self.get_bytes(usize::from(len))
    }

    /// Reads a varint length followed by that many bytes.
    #[inline]
    pub fn get_bytes_with_varint_length(&mut self) -> Result<&'a [u8]> {
        let len = self.get_varint()?;
        let len = usize::try_from(len).map_err(|_| BufferTooShort)?;
        self.get_bytes(len)
    }

    /// Returns the next `len` bytes without advancing.
    #[inline]
    pub fn peek_bytes(&self, len: usize) -> Result<&'a [u8]> {
        let end = self.off.checked_add(len).ok_or(BufferTooShort)?;
        self.buf.get(self.off..end).ok_or(BufferTooShort)
    }

    /// Advances by `n` bytes.
    #[inline]
    pub fn skip(&mut self, n: usize) -> Result<()> {
        let end = self.off.checked_add(n).ok_or(BufferTooShort)?;
        if end > self.buf.len() {
            return Err(BufferTooShort);
        }
        self.off = end;
        Ok(())
    }

    /// Bytes left to read.
    #[inline]
    pub fn cap(&self) -> usize {
        self.buf.len() - self.off
    }

    /// Total length of the underlying slice.
    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the underlying slice is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Current read offset.
    #[inline]
    pub fn off(&self) -> usize {
        self.off
    }

    /// The unread remainder.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.off..]
    }

    /// The whole underlying slice.
    #[inline]
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }
}

/// A write (and read) cursor over a mutable byte slice.
#[derive(Debug)]
pub struct OctetsMut<'a> {
    buf: &'a mut [u8],
    off: usize,
}

impl<'a> OctetsMut<'a> {
    /// A cursor at the start of `buf`.
    #[inline]
    pub fn with_slice(buf: &'a mut [u8]) -> Self {
        OctetsMut { buf, off: 0 }
    }

    #[inline]
    fn reserve(&mut self, n: usize) -> Result<&mut [u8]> {
        let end = self.off.checked_add(n).ok_or(BufferTooShort)?;
        let out = self.buf.get_mut(self.off..end).ok_or(BufferTooShort)?;
        self.off = end;
        Ok(out)
    }

    /// Writes one byte.
    #[inline]
    pub fn put_u8(&mut self, v: u8) -> Result<()> {
        self.reserve(1)?[0] = v;
        Ok(())
    }

    /// Writes a big-endian u16.
    #[inline]
    pub fn put_u16(&mut self, v: u16) -> Result<()> {
        self.put_bytes(&v.to_be_bytes())
    }

    /// Writes a big-endian 24-bit integer (the top byte of `v` must be 0).
    #[inline]
    pub fn put_u24(&mut self, v: u32) -> Result<()> {
        self.put_bytes(&v.to_be_bytes()[1..])
    }

    /// Writes a big-endian u32.
    #[inline]
    pub fn put_u32(&mut self, v: u32) -> Result<()> {
        self.put_bytes(&v.to_be_bytes())
    }

    /// Writes a big-endian u64.
    #[inline]
    pub fn put_u64(&mut self, v: u64) -> Result<()> {
        self.put_bytes(&v.to_be_bytes())
    }

    /// Writes `v` as a variable-length integer in its shortest form.
    #[inline]
    pub fn put_varint(&mut self, v: u64) -> Result<()> {
        self.put_varint_with_len(v, varint_len(v))
    }

    /// Writes `v` as a variable-length integer of exactly `len` bytes
    /// (1, 2, 4 or 8), e.g. to reserve room for a length patched later.
    #[inline]
    pub fn put_varint_with_len(&mut self, v: u64, len: usize) -> Result<()> {
        // A value that does not fit is a caller bug surfaced as an error,
        // not a silently truncated encoding.
        if v > MAX_VARINT || varint_len(v) > len {
            return Err(BufferTooShort);
        }
        // One fixed-size big-endian store per length (a copy of a
        // variable length is a call to memcpy).
        match len {
            1 => self.put_array([v as u8]),
            2 => self.put_array((v as u16 | 0x4000).to_be_bytes()),
            4 => self.put_array((v as u32 | 0x8000_0000).to_be_bytes()),
            8 => self.put_array((v | 0xc000_0000_0000_0000).to_be_bytes()),
            _ => Err(BufferTooShort),
        }
    }

    /// Writes the `N` bytes of `v`.
    #[inline]
    fn put_array<const N: usize>(&mut self, v: [u8; N]) -> Result<()> {
        let end = self.off.checked_add(N).ok_or(BufferTooShort)?;
        let out: &mut [u8; N] = self
            .buf
            .get_mut(self.off..end)
            .and_then(|s| s.try_into().ok())
            .ok_or(BufferTooShort)?;
        *out = v;
        self.off = end;
        Ok(())
    }

    /// Writes `v` bytes.
    #[inline]
    pub fn put_bytes(&mut self, v: &[u8]) -> Result<()> {
        self.reserve(v.len())?.copy_from_slice(v);
        Ok(())
    }

    /// Reads a variable-length integer at the cursor.
    pub fn get_varint(&mut self) -> Result<u64> {
        let mut r = Octets::with_slice(&self.buf[self.off..]);
        let v = r.get_varint()?;
        self.off += r.off();
        Ok(v)
    }

    /// Reads one byte at the cursor.
    pub fn get_u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.off).ok_or(BufferTooShort)?;
        self.off += 1;
        Ok(b)
    }

    /// Advances by `n` bytes without writing.
    #[inline]
    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.reserve(n).map(|_| ())
    }

    /// Bytes left to write.
    #[inline]
    pub fn cap(&self) -> usize {
        self.buf.len() - self.off
    }

    /// Current write offset (bytes written so far from the start).
    #[inline]
    pub fn off(&self) -> usize {
        self.off
    }

    /// The unwritten remainder.
    #[inline]
    pub fn rest_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..]
    }

    /// The whole underlying slice.
    #[inline]
    pub fn buf_mut(&mut self) -> &mut [u8] {
        self.buf
    }

    /// The bytes written so far.
    #[inline]
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.off]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 9000 Appendix A.1: sample variable-length integer decodings.
    #[test]
    fn rfc9000_a1_varint_examples() {
        let cases: &[(&[u8], u64)] = &[
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
            // "the single byte 0x25 ... can also be encoded as 0x4025"
            (&[0x40, 0x25], 37),
        ];
        for (bytes, value) in cases {
            let mut r = Octets::with_slice(bytes);
            assert_eq!(r.get_varint().unwrap(), *value);
            assert_eq!(r.cap(), 0);
        }
        // Shortest-form encodings round-trip to the exact RFC bytes.
        for (bytes, value) in &cases[..4] {
            let mut out = [0xa5u8; 8];
            let mut w = OctetsMut::with_slice(&mut out);
            w.put_varint(*value).unwrap();
            assert_eq!(w.written(), *bytes);
            assert_eq!(varint_len(*value), bytes.len());
        }
    }

    #[test]
    fn varint_bounds() {
        let mut out = [0u8; 8];
        let mut w = OctetsMut::with_slice(&mut out);
        assert_eq!(w.put_varint(MAX_VARINT + 1), Err(BufferTooShort));
        assert!(w.put_varint(MAX_VARINT).is_ok());
        assert_eq!(Octets::with_slice(&out).get_varint().unwrap(), MAX_VARINT);

        let mut small = [0u8; 1];
        let mut w = OctetsMut::with_slice(&mut small);
        assert_eq!(w.put_varint(64), Err(BufferTooShort));
        assert_eq!(w.off(), 0);
        assert_eq!(w.put_varint_with_len(300, 1), Err(BufferTooShort));
    }

    #[test]
    fn truncated_reads_fail() {
        for bytes in [&[0x40][..], &[0x80, 0, 0], &[0xc0, 0, 0, 0, 0, 0, 0]] {
            let mut r = Octets::with_slice(bytes);
            assert_eq!(r.get_varint(), Err(BufferTooShort));
            assert_eq!(r.off(), 0, "a failed read does not advance");
        }
        let mut r = Octets::with_slice(&[3, 1, 2]);
        assert_eq!(r.get_bytes_with_u8_length(), Err(BufferTooShort));
        let mut r = Octets::with_slice(&[0xff; 9]);
        assert_eq!(r.get_bytes_with_varint_length(), Err(BufferTooShort));
        assert_eq!(r.get_bytes(usize::MAX), Err(BufferTooShort));
        assert_eq!(r.skip(usize::MAX), Err(BufferTooShort));
    }

    #[test]
    fn fixed_width_round_trip() {
        let mut out = [0xa5u8; 18];
        let mut w = OctetsMut::with_slice(&mut out);
        w.put_u8(1).unwrap();
        w.put_u16(0x0203).unwrap();
        w.put_u24(0x040506).unwrap();
        w.put_u32(0x0708090a).unwrap();
        w.put_u64(0x0b0c0d0e0f101112).unwrap();
        assert_eq!(w.cap(), 0);
        let mut r = Octets::with_slice(&out);
        assert_eq!(r.get_u8().unwrap(), 1);
        assert_eq!(r.get_u16().unwrap(), 0x0203);
        assert_eq!(r.get_u24().unwrap(), 0x040506);
        assert_eq!(r.get_u32().unwrap(), 0x0708090a);
        assert_eq!(r.get_u64().unwrap(), 0x0b0c0d0e0f101112);
        assert_eq!(r.get_u8(), Err(BufferTooShort));
    }
}
