//! IPv6 headers (RFC 8200) with extension headers walked to the upper layer.

use std::net::Ipv6Addr;

use super::{be16, put_be16, Error, IpProtocol, Result};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// At most this many extension headers are walked; more is treated as
/// malformed (a cheap bound against crafted chains).
pub const MAX_EXT_HEADERS: usize = 8;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checks (for emitting).
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after checking the version and that the payload length
    /// fits. Bytes after the payload (Ethernet padding) are ignored.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Ipv6Packet { buffer };
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::BadVersion);
        }
        if b.len() < HEADER_LEN + be16(b, 4) as usize {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Version (6 for a checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }
    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }
    /// Payload length (extension headers included).
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }
    /// Next Header of the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        self.buffer.as_ref()[6].into()
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[8..24]);
        Ipv6Addr::from(a)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[24..40]);
        Ipv6Addr::from(a)
    }
    /// The payload (extension headers and upper layer).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len() as usize]
    }

    /// Walks the extension headers (RFC 8200 §4) and returns the upper-layer
    /// protocol and the offset of its header within [`payload`](Self::payload).
    ///
    /// Hop-by-Hop, Routing, Destination Options and AH are skipped. A
    /// Fragment header of a real fragment (offset ≠ 0 or M set) gives
    /// [`Error::Fragment`]; an atomic fragment (RFC 6946) is walked through.
    /// ESP gives [`Error::Unsupported`]: its content is encrypted.
    pub fn upper_layer(&self) -> Result<(IpProtocol, usize)> {
        let payload = self.payload();
        let mut next = self.next_header();
        let mut off = 0usize;
        for _ in 0..=MAX_EXT_HEADERS {
            let len = match next {
                IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                    // §4.3: Hdr Ext Len is in 8-octet units, not counting the first 8.
                    let l = payload.get(off + 1).ok_or(Error::Truncated)?;
                    (*l as usize + 1) * 8
                }
                IpProtocol::Ah => {
                    // RFC 4302 §2.2: Payload Len is in 4-octet units, minus 2.
                    let l = payload.get(off + 1).ok_or(Error::Truncated)?;
                    (*l as usize + 2) * 4
                }
                IpProtocol::Ipv6Frag => {
                    let h = payload.get(off..off + 8).ok_or(Error::Truncated)?;
                    // §4.5: Fragment Offset (13 bits) | Res | M.
                    if be16(h, 2) & 0xfff9 != 0 {
                        return Err(Error::Fragment);
                    }
                    8
                }
                IpProtocol::Esp => return Err(Error::Unsupported),
                upper => return Ok((upper, off)),
            };
            if off + len > payload.len() {
                return Err(Error::Truncated);
            }
            // The Next Header byte is the first of every extension header.
            next = payload[off].into();
            off += len;
        }
        Err(Error::Unsupported)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let pl = self.payload_len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..HEADER_LEN + pl]
    }
}

/// A parsed IPv6 header: `next_header` and `payload_len` describe the upper
/// layer after the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Upper-layer protocol (after extension headers).
    pub next_header: IpProtocol,
    /// Upper-layer length (payload minus extension headers).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label.
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Parses a checked packet and walks its extension headers. Returns the
    /// repr and the offset of the upper-layer header in the packet's payload.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<(Self, usize)> {
        let (next_header, off) = p.upper_layer()?;
        Ok((
            Ipv6Repr {
                src_addr: p.src_addr(),
                dst_addr: p.dst_addr(),
                next_header,
                payload_len: p.payload_len() as usize - off,
                hop_limit: p.hop_limit(),
                traffic_class: p.traffic_class(),
                flow_label: p.flow_label(),
            },
            off,
        ))
    }

    /// Header length this repr emits (40: no extension headers).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header at the start of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) -> Result<()> {
        let pl = u16::try_from(self.payload_len).map_err(|_| Error::BadLength)?;
        let b = p.buffer.as_mut();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let vtf = (6u32 << 28) | ((self.traffic_class as u32) << 20) | (self.flow_label & 0xf_ffff);
        b[0..4].copy_from_slice(&vtf.to_be_bytes());
        put_be16(b, 4, pl);
        b[6] = self.next_header.into();
        b[7] = self.hop_limit;
        b[8..24].copy_from_slice(&self.src_addr.octets());
        b[24..40].copy_from_slice(&self.dst_addr.octets());
        Ok(())
    }
}
