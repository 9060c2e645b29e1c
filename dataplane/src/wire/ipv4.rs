//! IPv4 headers (RFC 791). Options are skipped; fragments are reported as
//! [`Error::Fragment`] by [`Ipv4Repr::parse`] since we never reassemble.

use std::net::Ipv4Addr;

use super::{be16, checksum, put_be16, Error, IpProtocol, Result};

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
const FLAG_MF: u16 = 0x2000;
const FLAG_DF: u16 = 0x4000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checks (for emitting).
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after checking version, IHL and total length against
    /// the buffer. Bytes after `total_len` (Ethernet padding) are ignored.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Ipv4Packet { buffer };
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        // RFC 791 §3.1: "the minimum value for a correct header is 5".
        let hl = ((b[0] & 0x0f) as usize) * 4;
        if hl < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        let total = be16(b, 2) as usize;
        if total < hl {
            return Err(Error::BadLength);
        }
        if b.len() < hl || b.len() < total {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Version field (4 for a checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[0] & 0x0f) as usize) * 4
    }
    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// Total length (header + payload).
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }
    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), 6) & FLAG_DF != 0
    }
    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), 6) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), 6) & FRAG_OFFSET_MASK) << 3
    }
    /// Whether this is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), 6) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }
    /// Payload protocol.
    pub fn protocol(&self) -> IpProtocol {
        self.buffer.as_ref()[9].into()
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 10)
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }
    /// Options bytes (skipped by the repr).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Whether the header checksum verifies (RFC 791 §3.1: the sum over the
    /// header, checksum field included, is all ones).
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }
    /// The payload: from the end of the header to `total_len`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[hl..total]
    }
    /// Decrements the TTL and patches the checksum incrementally (RFC 1624).
    pub fn decrement_ttl(&mut self) {
        let b = self.buffer.as_mut();
        let old = be16(b, 8);
        b[8] = b[8].wrapping_sub(1);
        let new = be16(b, 8);
        let c = checksum::update16(be16(b, 10), old, new);
        put_be16(b, 10, c);
    }
}

/// A parsed IPv4 header (options are skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length (total length − header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP and ECN.
    pub dscp_ecn: u8,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// Identification.
    pub ident: u16,
}

impl Ipv4Repr {
    /// Parses a checked packet; verifies the header checksum when
    /// `verify_checksum`, and refuses fragments.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>, verify_checksum: bool) -> Result<Self> {
        if verify_checksum && !p.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        if p.is_fragment() {
            return Err(Error::Fragment);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len(),
            ttl: p.ttl(),
            dscp_ecn: p.dscp_ecn(),
            dont_frag: p.dont_frag(),
            ident: p.ident(),
        })
    }

    /// Header length this repr emits (20: no options).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with its checksum at the start of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>) -> Result<()> {
        let total = HEADER_LEN + self.payload_len;
        let total16 = u16::try_from(total).map_err(|_| Error::BadLength)?;
        let b = p.buffer.as_mut();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        b[0] = 0x45;
        b[1] = self.dscp_ecn;
        put_be16(b, 2, total16);
        put_be16(b, 4, self.ident);
        put_be16(b, 6, if self.dont_frag { FLAG_DF } else { 0 });
        b[8] = self.ttl;
        b[9] = self.protocol.into();
        put_be16(b, 10, 0);
        b[12..16].copy_from_slice(&self.src_addr.octets());
        b[16..20].copy_from_slice(&self.dst_addr.octets());
        let c = checksum::finish(checksum::data(&b[..HEADER_LEN]));
        put_be16(b, 10, c);
        Ok(())
    }
}
