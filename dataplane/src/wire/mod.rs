//! Zero-copy wire formats: Ethernet II (+ one 802.1Q tag), ARP, IPv4, IPv6, UDP.
//!
//! Two levels per protocol, as in smoltcp: a `Packet<T: AsRef<[u8]>>` view
//! whose accessors cannot panic once `new_checked()` succeeded, and a plain
//! `Repr` with `parse`/`emit`/`buffer_len`. Emitting checks the buffer length
//! and returns [`Error::Truncated`] instead of panicking.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use udp::{UdpPacket, UdpRepr};

/// Why a header could not be parsed or emitted. Cheap to copy and match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header or than a length field says.
    #[error("truncated")]
    Truncated,
    /// The IP version field does not match the header type.
    #[error("bad IP version")]
    BadVersion,
    /// The header length field is below the minimum (IPv4 IHL < 5).
    #[error("bad header length")]
    BadHeaderLen,
    /// A length field is inconsistent (IPv4 total length < header length,
    /// UDP length < 8, ...).
    #[error("bad length field")]
    BadLength,
    /// A checksum did not verify.
    #[error("bad checksum")]
    BadChecksum,
    /// The packet is an IP fragment (we never reassemble).
    #[error("IP fragment")]
    Fragment,
    /// A well-formed header we do not handle (other hardware type, ESP, ...).
    #[error("unsupported")]
    Unsupported,
}

/// Result of wire operations.
pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers we care about (IANA "Assigned Internet Protocol Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// IPv6 Hop-by-Hop Options (0).
    HopByHop,
    /// ICMP (1).
    Icmp,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// IPv6 Routing header (43).
    Ipv6Route,
    /// IPv6 Fragment header (44).
    Ipv6Frag,
    /// Encapsulating Security Payload (50).
    Esp,
    /// Authentication Header (51).
    Ah,
    /// ICMPv6 (58).
    Icmpv6,
    /// IPv6 No Next Header (59).
    Ipv6NoNxt,
    /// IPv6 Destination Options (60).
    Ipv6Opts,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            0 => IpProtocol::HopByHop,
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            43 => IpProtocol::Ipv6Route,
            44 => IpProtocol::Ipv6Frag,
            50 => IpProtocol::Esp,
            51 => IpProtocol::Ah,
            58 => IpProtocol::Icmpv6,
            59 => IpProtocol::Ipv6NoNxt,
            60 => IpProtocol::Ipv6Opts,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Esp => 50,
            IpProtocol::Ah => 51,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6NoNxt => 59,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Unknown(v) => v,
        }
    }
}

/// Reads a big-endian u16 at `at`; callers guarantee `at + 2 <= b.len()`.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Writes a big-endian u16 at `at`; callers guarantee `at + 2 <= b.len()`.
#[inline]
pub(crate) fn put_be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
