//! UDP (RFC 768) with checksums over the IPv4 and IPv6 pseudo-headers.

use std::net::IpAddr;

use super::{be16, checksum, put_be16, Error, Result};

/// Length of a UDP header.
pub const HEADER_LEN: usize = 8;
const PROTO_UDP: u8 = 17;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checks (for emitting).
    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after checking the length field: at least 8 and within
    /// the buffer. Bytes after it are ignored.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = UdpPacket { buffer };
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = be16(b, 4) as usize;
        if len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    /// Length field (header + payload).
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }
    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() as usize == HEADER_LEN
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }

    /// Verifies the checksum against the pseudo-header of `src` → `dst`.
    ///
    /// Over IPv4 a zero checksum means "not computed" (RFC 768) and passes.
    /// Over IPv6 it does not: RFC 8200 §8.1 "IPv6 receivers must discard UDP
    /// packets containing a zero checksum".
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let dgram = &self.buffer.as_ref()[..self.len() as usize];
        let ph = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                if self.checksum() == 0 {
                    return true;
                }
                checksum::pseudo_header_v4(s, d, PROTO_UDP, self.len())
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                if self.checksum() == 0 {
                    return false;
                }
                checksum::pseudo_header_v6(s, d, PROTO_UDP, self.len() as u32)
            }
            _ => return false,
        };
        checksum::combine(ph, checksum::data(dgram)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }
}

/// A UDP header; the payload stays where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a checked datagram, verifying its checksum when `verify` with
    /// the addresses of the enclosing IP header.
    pub fn parse<T: AsRef<[u8]>>(
        p: &UdpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
        verify: bool,
    ) -> Result<Self> {
        if verify && !p.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    /// Bytes of header plus `payload_len` of payload.
    pub fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header in front of the `payload_len` payload bytes that are
    /// already in place at `p[8..]`, and the checksum over the pseudo-header
    /// of `src` → `dst`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut UdpPacket<T>,
        payload_len: usize,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<()> {
        let len = HEADER_LEN + payload_len;
        let len16 = u16::try_from(len).map_err(|_| Error::BadLength)?;
        let b = p.buffer.as_mut();
        if b.len() < len {
            return Err(Error::Truncated);
        }
        put_be16(b, 0, self.src_port);
        put_be16(b, 2, self.dst_port);
        put_be16(b, 4, len16);
        put_be16(b, 6, 0);
        let ph = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header_v4(s, d, PROTO_UDP, len16),
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                checksum::pseudo_header_v6(s, d, PROTO_UDP, len as u32)
            }
            _ => return Err(Error::Unsupported),
        };
        let mut c = checksum::finish(checksum::combine(ph, checksum::data(&b[..len])));
        // RFC 768: a computed checksum of zero is transmitted as all ones.
        if c == 0 {
            c = 0xffff;
        }
        put_be16(b, 6, c);
        Ok(())
    }
}
