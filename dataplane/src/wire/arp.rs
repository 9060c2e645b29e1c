//! ARP for IPv4 over Ethernet (RFC 826).

use std::net::Ipv4Addr;

use super::{be16, put_be16, Error, EthernetAddress, Result};

/// Length of an Ethernet/IPv4 ARP packet.
pub const ETH_IPV4_LEN: usize = 28;
const FIXED_LEN: usize = 8;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOperation {
    /// 1.
    Request,
    /// 2.
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            o => ArpOperation::Unknown(o),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(o: ArpOperation) -> u16 {
        match o {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(v) => v,
        }
    }
}

/// A view of an ARP packet (any hardware/protocol address lengths).
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after checking that the fixed part and the four
    /// addresses (of the lengths the header announces) fit.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = ArpPacket { buffer };
        let b = p.buffer.as_ref();
        if b.len() < FIXED_LEN {
            return Err(Error::Truncated);
        }
        let need = FIXED_LEN + 2 * (b[4] as usize + b[5] as usize);
        if b.len() < need {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }
    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[4]
    }
    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[5]
    }
    /// Operation.
    pub fn operation(&self) -> ArpOperation {
        be16(self.buffer.as_ref(), 6).into()
    }
    fn field(&self, idx: usize) -> &[u8] {
        let b = self.buffer.as_ref();
        let (h, p) = (b[4] as usize, b[5] as usize);
        let starts = [
            FIXED_LEN,
            FIXED_LEN + h,
            FIXED_LEN + h + p,
            FIXED_LEN + 2 * h + p,
        ];
        let lens = [h, p, h, p];
        &b[starts[idx]..starts[idx] + lens[idx]]
    }
    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> &[u8] {
        self.field(0)
    }
    /// Sender protocol address.
    pub fn source_protocol_addr(&self) -> &[u8] {
        self.field(1)
    }
    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> &[u8] {
        self.field(2)
    }
    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> &[u8] {
        self.field(3)
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in requests).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses an Ethernet/IPv4 ARP packet; other kinds are `Unsupported`.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<Self> {
        if p.hardware_type() != 1
            || p.protocol_type() != 0x0800
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        let mac = |s: &[u8]| {
            let mut a = [0u8; 6];
            a.copy_from_slice(s);
            EthernetAddress(a)
        };
        let ip = |s: &[u8]| Ipv4Addr::new(s[0], s[1], s[2], s[3]);
        Ok(ArpRepr {
            operation: p.operation(),
            source_hardware_addr: mac(p.source_hardware_addr()),
            source_protocol_addr: ip(p.source_protocol_addr()),
            target_hardware_addr: mac(p.target_hardware_addr()),
            target_protocol_addr: ip(p.target_protocol_addr()),
        })
    }

    /// Bytes this repr emits (28).
    pub fn buffer_len(&self) -> usize {
        ETH_IPV4_LEN
    }

    /// Writes the packet at the start of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) -> Result<()> {
        let b = p.buffer.as_mut();
        if b.len() < ETH_IPV4_LEN {
            return Err(Error::Truncated);
        }
        put_be16(b, 0, 1);
        put_be16(b, 2, 0x0800);
        b[4] = 6;
        b[5] = 4;
        put_be16(b, 6, self.operation.into());
        b[8..14].copy_from_slice(&self.source_hardware_addr.0);
        b[14..18].copy_from_slice(&self.source_protocol_addr.octets());
        b[18..24].copy_from_slice(&self.target_hardware_addr.0);
        b[24..28].copy_from_slice(&self.target_protocol_addr.octets());
        Ok(())
    }

    /// The reply to this request from `our_mac` (RFC 826 "Packet Reception":
    /// swap sender and target, put our hardware address in as sender).
    pub fn reply(&self, our_mac: EthernetAddress) -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: our_mac,
            source_protocol_addr: self.target_protocol_addr,
            target_hardware_addr: self.source_hardware_addr,
            target_protocol_addr: self.source_protocol_addr,
        }
    }
}
