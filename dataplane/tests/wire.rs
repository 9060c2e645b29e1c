//! Wire parsing and emitting on realistic frames, and every malformed case.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tarte_dataplane::wire::{
    ArpOperation, ArpPacket, ArpRepr, Error, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpPacket, UdpRepr,
};

// Frames built by a small independent script (Python struct + RFC 1071 sum):
// 02:00:00:00:00:01 198.18.0.1:40000 → 02:00:00:00:00:02 198.18.0.2:4433,
// payload "hello tarte"; IPv6 between 2001:db8::1 and 2001:db8::2.
const V4_UDP: &[u8] = &[
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x27, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x92, 0x58, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
    0x00, 0x02, 0x9c, 0x40, 0x11, 0x51, 0x00, 0x13, 0x36, 0x46, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20,
    0x74, 0x61, 0x72, 0x74, 0x65,
];
const V4_UDP_VLAN: &[u8] = &[
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x81, 0x00, 0x20, 0x64,
    0x08, 0x00, 0x45, 0x00, 0x00, 0x27, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x92, 0x58, 0xc6, 0x12,
    0x00, 0x01, 0xc6, 0x12, 0x00, 0x02, 0x9c, 0x40, 0x11, 0x51, 0x00, 0x13, 0x36, 0x46, 0x68, 0x65,
    0x6c, 0x6c, 0x6f, 0x20, 0x74, 0x61, 0x72, 0x74, 0x65,
];
const V4_UDP_OPTS: &[u8] = &[
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x46, 0x00,
    0x00, 0x2b, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0xfd, 0x4f, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
    0x00, 0x02, 0x94, 0x04, 0x00, 0x00, 0x9c, 0x40, 0x11, 0x51, 0x00, 0x13, 0x36, 0x46, 0x68, 0x65,
    0x6c, 0x6c, 0x6f, 0x20, 0x74, 0x61, 0x72, 0x74, 0x65,
];
const V4_UDP_PADDED: &[u8] = &[
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x1e, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x92, 0x61, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
    0x00, 0x02, 0x9c, 0x40, 0x11, 0x51, 0x00, 0x0a, 0x5d, 0xb7, 0x68, 0x69, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];
const V6_UDP: &[u8] = &[
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60, 0x01,
    0x23, 0x45, 0x00, 0x13, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x9c, 0x40, 0x11, 0x51, 0x00, 0x13, 0x66, 0xf9, 0x68, 0x65,
    0x6c, 0x6c, 0x6f, 0x20, 0x74, 0x61, 0x72, 0x74, 0x65,
];
const V6_UDP_EXT: &[u8] = &[
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60, 0x01,
    0x23, 0x45, 0x00, 0x2b, 0x00, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x11, 0x01,
    0x01, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9c, 0x40,
    0x11, 0x51, 0x00, 0x13, 0x66, 0xf9, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x74, 0x61, 0x72, 0x74,
    0x65,
];
const V6_FRAG_FIRST: &[u8] = &[
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60, 0x01,
    0x23, 0x45, 0x00, 0x1b, 0x2c, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x11, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, 0x9c, 0x40,
    0x11, 0x51, 0x00, 0x13, 0x66, 0xf9, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x74, 0x61, 0x72, 0x74,
    0x65,
];
const V6_ATOMIC_FRAG: &[u8] = &[
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60, 0x01,
    0x23, 0x45, 0x00, 0x1b, 0x2c, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x11, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x9c, 0x40,
    0x11, 0x51, 0x00, 0x13, 0x66, 0xf9, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x74, 0x61, 0x72, 0x74,
    0x65,
];
const V4_FRAG_MF: &[u8] = &[
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x27, 0x1c, 0x46, 0x20, 0x00, 0x40, 0x11, 0xb2, 0x58, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
    0x00, 0x02, 0x9c, 0x40, 0x11, 0x51, 0x00, 0x13, 0x36, 0x46, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20,
    0x74, 0x61, 0x72, 0x74, 0x65,
];
const V4_FRAG_LAST: &[u8] = &[
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x1f, 0x1c, 0x46, 0x00, 0x03, 0x40, 0x11, 0xd2, 0x5d, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
    0x00, 0x02, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x74, 0x61, 0x72, 0x74, 0x65,
];
const ARP_REQUEST: &[u8] = &[
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x01,
    0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x12, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const V4_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const V4_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PAYLOAD: &[u8] = b"hello tarte";

fn v6(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)
}

/// What the dataplane does per frame: Ethernet → IP → UDP, checksums verified.
/// Returns (src, dst, ports, payload).
fn parse_frame(frame: &[u8]) -> Result<(IpAddr, IpAddr, u16, u16, Vec<u8>), Error> {
    let eth = EthernetFrame::new_checked(frame)?;
    let (src, dst, l4) = match eth.ethertype() {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload())?;
            let r = Ipv4Repr::parse(&ip, true)?;
            if r.protocol != IpProtocol::Udp {
                return Err(Error::Unsupported);
            }
            (
                IpAddr::V4(r.src_addr),
                IpAddr::V4(r.dst_addr),
                ip.payload().to_vec(),
            )
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload())?;
            let (r, off) = Ipv6Repr::parse(&ip)?;
            if r.next_header != IpProtocol::Udp {
                return Err(Error::Unsupported);
            }
            (
                IpAddr::V6(r.src_addr),
                IpAddr::V6(r.dst_addr),
                ip.payload()[off..].to_vec(),
            )
        }
        _ => return Err(Error::Unsupported),
    };
    let udp = UdpPacket::new_checked(&l4[..])?;
    let r = UdpRepr::parse(&udp, src, dst, true)?;
    Ok((src, dst, r.src_port, r.dst_port, udp.payload().to_vec()))
}

#[test]
fn ipv4_udp_frame_fields() {
    let eth = EthernetFrame::new_checked(V4_UDP).unwrap();
    let er = EthernetRepr::parse(&eth).unwrap();
    assert_eq!(
        er,
        EthernetRepr {
            src_addr: MAC_A,
            dst_addr: MAC_B,
            vlan_tci: None,
            ethertype: EtherType::Ipv4
        }
    );
    assert_eq!(eth.header_len(), 14);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.header_len(), 20);
    assert_eq!(ip.total_len(), 20 + 8 + 11);
    assert!(ip.verify_checksum());
    assert_eq!(ip.checksum(), u16::from_be_bytes([V4_UDP[24], V4_UDP[25]]));
    let r = Ipv4Repr::parse(&ip, true).unwrap();
    assert_eq!(r.src_addr, V4_A);
    assert_eq!(r.dst_addr, V4_B);
    assert_eq!(r.ttl, 64);
    assert!(r.dont_frag);
    assert_eq!(r.ident, 0x1c46);
    assert_eq!(r.payload_len, 19);
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (udp.src_port(), udp.dst_port(), udp.len()),
        (40000, 4433, 19)
    );
    assert_eq!(udp.checksum(), 0x3646);
    assert_eq!(udp.payload(), PAYLOAD);
    assert_eq!(
        parse_frame(V4_UDP).unwrap(),
        (V4_A.into(), V4_B.into(), 40000, 4433, PAYLOAD.to_vec())
    );
}

#[test]
fn vlan_tagged_frame() {
    let eth = EthernetFrame::new_checked(V4_UDP_VLAN).unwrap();
    assert_eq!(eth.vlan_tci(), Some(0x2064));
    assert_eq!(eth.header_len(), 18);
    assert_eq!(eth.ethertype(), EtherType::Ipv4);
    assert_eq!(parse_frame(V4_UDP_VLAN).unwrap().4, PAYLOAD);
    // A tag with nothing after it.
    assert_eq!(
        EthernetFrame::new_checked(&V4_UDP_VLAN[..17]).unwrap_err(),
        Error::Truncated
    );
}

#[test]
fn ipv4_options_are_skipped() {
    let eth = EthernetFrame::new_checked(V4_UDP_OPTS).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.header_len(), 24);
    assert_eq!(ip.options(), &[0x94, 4, 0, 0]);
    assert_eq!(Ipv4Repr::parse(&ip, true).unwrap().payload_len, 19);
    assert_eq!(parse_frame(V4_UDP_OPTS).unwrap().4, PAYLOAD);
}

#[test]
fn ethernet_padding_is_ignored() {
    assert_eq!(V4_UDP_PADDED.len(), 60);
    let (_, _, sp, dp, payload) = parse_frame(V4_UDP_PADDED).unwrap();
    assert_eq!((sp, dp, &payload[..]), (40000, 4433, &b"hi"[..]));
}

#[test]
fn ipv6_udp_frames() {
    assert_eq!(
        parse_frame(V6_UDP).unwrap(),
        (v6(1).into(), v6(2).into(), 40000, 4433, PAYLOAD.to_vec())
    );
    let eth = EthernetFrame::new_checked(V6_UDP).unwrap();
    let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.flow_label(), 0x12345);
    assert_eq!(ip.traffic_class(), 0);
    assert_eq!(ip.hop_limit(), 64);
    assert_eq!(ip.upper_layer().unwrap(), (IpProtocol::Udp, 0));
    // Hop-by-Hop (8) then Destination Options (16) then UDP.
    let eth = EthernetFrame::new_checked(V6_UDP_EXT).unwrap();
    let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.next_header(), IpProtocol::HopByHop);
    let (r, off) = Ipv6Repr::parse(&ip).unwrap();
    assert_eq!(
        (r.next_header, off, r.payload_len),
        (IpProtocol::Udp, 24, 19)
    );
    assert_eq!(parse_frame(V6_UDP_EXT).unwrap().4, PAYLOAD);
    // An atomic fragment (offset 0, M clear) is a whole packet.
    assert_eq!(parse_frame(V6_ATOMIC_FRAG).unwrap().4, PAYLOAD);
}

#[test]
fn fragments_are_refused() {
    assert_eq!(parse_frame(V4_FRAG_MF).unwrap_err(), Error::Fragment);
    assert_eq!(parse_frame(V4_FRAG_LAST).unwrap_err(), Error::Fragment);
    let ip = Ipv4Packet::new_checked(&V4_FRAG_LAST[14..]).unwrap();
    assert_eq!(ip.frag_offset(), 24);
    assert!(!ip.more_frags());
    assert_eq!(parse_frame(V6_FRAG_FIRST).unwrap_err(), Error::Fragment);
}

#[test]
fn every_truncation_fails_cleanly() {
    for frame in [V4_UDP, V4_UDP_VLAN, V4_UDP_OPTS, V6_UDP, V6_UDP_EXT] {
        for len in 0..frame.len() {
            let e = parse_frame(&frame[..len]).unwrap_err();
            assert_eq!(e, Error::Truncated, "len {len}");
        }
    }
}

fn with(frame: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = frame.to_vec();
    f(&mut v);
    v
}

/// Rewrites the IPv4 header checksum of an Ethernet frame so that only the
/// field under test is wrong.
fn fix_ipv4_checksum(v: &mut [u8]) {
    let hl = ((v[14] & 0x0f) as usize) * 4;
    v[24] = 0;
    v[25] = 0;
    let end = (14 + hl).min(v.len());
    let c = !tarte_dataplane::wire::checksum::data(&v[14..end]);
    v[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn malformed_ipv4_headers() {
    let bad_version = with(V4_UDP, |v| {
        v[14] = 0x65;
        fix_ipv4_checksum(v)
    });
    assert_eq!(parse_frame(&bad_version).unwrap_err(), Error::BadVersion);
    let ihl4 = with(V4_UDP, |v| v[14] = 0x44);
    assert_eq!(parse_frame(&ihl4).unwrap_err(), Error::BadHeaderLen);
    // IHL 15 = 60 bytes > total length 39.
    let ihl15 = with(V4_UDP, |v| v[14] = 0x4f);
    assert_eq!(parse_frame(&ihl15).unwrap_err(), Error::BadLength);
    let total_short = with(V4_UDP, |v| {
        v[16..18].copy_from_slice(&19u16.to_be_bytes());
        fix_ipv4_checksum(v)
    });
    assert_eq!(parse_frame(&total_short).unwrap_err(), Error::BadLength);
    let total_long = with(V4_UDP, |v| {
        v[16..18].copy_from_slice(&40u16.to_be_bytes());
        fix_ipv4_checksum(v)
    });
    assert_eq!(parse_frame(&total_long).unwrap_err(), Error::Truncated);
    let bad_sum = with(V4_UDP, |v| v[22] = 63);
    assert_eq!(parse_frame(&bad_sum).unwrap_err(), Error::BadChecksum);
    let ip = Ipv4Packet::new_checked(&bad_sum[14..]).unwrap();
    assert!(!ip.verify_checksum());
    // Without verification the same header parses.
    assert_eq!(Ipv4Repr::parse(&ip, false).unwrap().ttl, 63);
    let not_udp = with(V4_UDP, |v| {
        v[23] = 6;
        fix_ipv4_checksum(v)
    });
    assert_eq!(parse_frame(&not_udp).unwrap_err(), Error::Unsupported);
}

#[test]
fn malformed_udp() {
    // UDP length 7 (< header).
    let short = with(V4_UDP, |v| v[38..40].copy_from_slice(&7u16.to_be_bytes()));
    assert_eq!(parse_frame(&short).unwrap_err(), Error::BadLength);
    // UDP length beyond the IP payload.
    let long = with(V4_UDP, |v| v[38..40].copy_from_slice(&20u16.to_be_bytes()));
    assert_eq!(parse_frame(&long).unwrap_err(), Error::Truncated);
    // One payload bit flipped.
    let flipped = with(V4_UDP, |v| v[45] ^= 0x01);
    assert_eq!(parse_frame(&flipped).unwrap_err(), Error::BadChecksum);
    let flipped6 = with(V6_UDP, |v| v[70] ^= 0x80);
    assert_eq!(parse_frame(&flipped6).unwrap_err(), Error::BadChecksum);
    // Zero checksum: "no checksum" over IPv4 (RFC 768), refused over IPv6
    // (RFC 8200 §8.1).
    let zero4 = with(V4_UDP, |v| v[40..42].copy_from_slice(&[0, 0]));
    assert_eq!(parse_frame(&zero4).unwrap().4, PAYLOAD);
    let zero6 = with(V6_UDP, |v| v[60..62].copy_from_slice(&[0, 0]));
    assert_eq!(parse_frame(&zero6).unwrap_err(), Error::BadChecksum);
    // Address mismatch in the pseudo-header.
    let udp = UdpPacket::new_checked(&V4_UDP[34..]).unwrap();
    assert!(udp.verify_checksum(V4_A.into(), V4_B.into()));
    assert!(!udp.verify_checksum(V4_A.into(), Ipv4Addr::new(198, 18, 0, 3).into()));
    assert!(!udp.verify_checksum(V4_A.into(), v6(2).into()));
}

#[test]
fn malformed_ipv6() {
    let bad_version = with(V6_UDP, |v| v[14] = 0x46);
    assert_eq!(parse_frame(&bad_version).unwrap_err(), Error::BadVersion);
    let long = with(V6_UDP, |v| v[18..20].copy_from_slice(&20u16.to_be_bytes()));
    assert_eq!(parse_frame(&long).unwrap_err(), Error::Truncated);
    // Hop-by-Hop header claiming 8 × 8 bytes.
    let ext_long = with(V6_UDP_EXT, |v| v[55] = 7);
    assert_eq!(parse_frame(&ext_long).unwrap_err(), Error::Truncated);
    // ESP cannot be walked.
    let esp = with(V6_UDP, |v| v[20] = 50);
    assert_eq!(parse_frame(&esp).unwrap_err(), Error::Unsupported);
    // A chain longer than MAX_EXT_HEADERS: Destination Options pointing at itself.
    let mut chain = V6_UDP[..54].to_vec();
    chain[20] = 60;
    let n = tarte_dataplane::wire::ipv6::MAX_EXT_HEADERS + 2;
    for _ in 0..n {
        chain.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    }
    let pl = (n * 8) as u16;
    chain[18..20].copy_from_slice(&pl.to_be_bytes());
    assert_eq!(parse_frame(&chain).unwrap_err(), Error::Unsupported);
    // No Next Header: not UDP.
    let nonxt = with(V6_UDP, |v| v[20] = 59);
    assert_eq!(parse_frame(&nonxt).unwrap_err(), Error::Unsupported);
}

#[test]
fn arp_request_and_reply() {
    let eth = EthernetFrame::new_checked(ARP_REQUEST).unwrap();
    assert_eq!(eth.ethertype(), EtherType::Arp);
    assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
    assert!(eth.dst_addr().is_multicast());
    let p = ArpPacket::new_checked(eth.payload()).unwrap();
    let r = ArpRepr::parse(&p).unwrap();
    assert_eq!(r.operation, ArpOperation::Request);
    assert_eq!(r.source_hardware_addr, MAC_A);
    assert_eq!(r.source_protocol_addr, V4_A);
    assert_eq!(r.target_protocol_addr, V4_B);
    let reply = r.reply(MAC_B);
    let mut buf = [0xa5u8; 28];
    reply
        .emit(&mut ArpPacket::new_unchecked(&mut buf[..]))
        .unwrap();
    let expect = [
        0, 1, 8, 0, 6, 4, 0, 2, 2, 0, 0, 0, 0, 2, 198, 18, 0, 2, 2, 0, 0, 0, 0, 1, 198, 18, 0, 1,
    ];
    assert_eq!(buf, expect);
    assert_eq!(
        ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap(),
        reply
    );
    // Truncated, and a non-Ethernet hardware type.
    assert_eq!(
        ArpPacket::new_checked(&buf[..7]).unwrap_err(),
        Error::Truncated
    );
    assert_eq!(
        ArpPacket::new_checked(&buf[..27]).unwrap_err(),
        Error::Truncated
    );
    let mut other = buf;
    other[1] = 6;
    assert_eq!(
        ArpRepr::parse(&ArpPacket::new_checked(&other[..]).unwrap()).unwrap_err(),
        Error::Unsupported
    );
    assert_eq!(
        reply.emit(&mut ArpPacket::new_unchecked(&mut [0u8; 27][..])),
        Err(Error::Truncated)
    );
}

/// Emits Ethernet + IPv4/IPv6 + UDP in a 0xa5-filled buffer and compares with
/// the independently built frames.
#[test]
fn emit_matches_reference_frames() {
    for (vlan, want) in [(None, V4_UDP), (Some(0x2064), V4_UDP_VLAN)] {
        let mut buf = vec![0xa5u8; want.len()];
        let er = EthernetRepr {
            src_addr: MAC_A,
            dst_addr: MAC_B,
            vlan_tci: vlan,
            ethertype: EtherType::Ipv4,
        };
        let hl = er.buffer_len();
        er.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]))
            .unwrap();
        buf[hl + 28..].copy_from_slice(PAYLOAD);
        let ur = UdpRepr {
            src_port: 40000,
            dst_port: 4433,
        };
        ur.emit(
            &mut UdpPacket::new_unchecked(&mut buf[hl + 20..]),
            PAYLOAD.len(),
            V4_A.into(),
            V4_B.into(),
        )
        .unwrap();
        let ir = Ipv4Repr {
            src_addr: V4_A,
            dst_addr: V4_B,
            protocol: IpProtocol::Udp,
            payload_len: ur.buffer_len(PAYLOAD.len()),
            ttl: 64,
            dscp_ecn: 0,
            dont_frag: true,
            ident: 0x1c46,
        };
        ir.emit(&mut Ipv4Packet::new_unchecked(&mut buf[hl..]))
            .unwrap();
        assert_eq!(buf, want);
    }
    let mut buf = vec![0xa5u8; V6_UDP.len()];
    let er = EthernetRepr {
        src_addr: MAC_A,
        dst_addr: MAC_B,
        vlan_tci: None,
        ethertype: EtherType::Ipv6,
    };
    er.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]))
        .unwrap();
    buf[62..].copy_from_slice(PAYLOAD);
    UdpRepr {
        src_port: 40000,
        dst_port: 4433,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut buf[54..]),
        PAYLOAD.len(),
        v6(1).into(),
        v6(2).into(),
    )
    .unwrap();
    let ir = Ipv6Repr {
        src_addr: v6(1),
        dst_addr: v6(2),
        next_header: IpProtocol::Udp,
        payload_len: 19,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0x12345,
    };
    ir.emit(&mut Ipv6Packet::new_unchecked(&mut buf[14..]))
        .unwrap();
    assert_eq!(buf, V6_UDP);
}

#[test]
fn emit_refuses_short_buffers() {
    let er = EthernetRepr {
        src_addr: MAC_A,
        dst_addr: MAC_B,
        vlan_tci: Some(1),
        ethertype: EtherType::Ipv4,
    };
    assert_eq!(
        er.emit(&mut EthernetFrame::new_unchecked(&mut [0u8; 17][..])),
        Err(Error::Truncated)
    );
    let ur = UdpRepr {
        src_port: 1,
        dst_port: 2,
    };
    assert_eq!(
        ur.emit(
            &mut UdpPacket::new_unchecked(&mut [0u8; 10][..]),
            3,
            V4_A.into(),
            V4_B.into()
        ),
        Err(Error::Truncated)
    );
    assert_eq!(
        ur.emit(
            &mut UdpPacket::new_unchecked(&mut [0u8; 12][..]),
            3,
            V4_A.into(),
            v6(1).into()
        ),
        Err(Error::Unsupported)
    );
    let ir = Ipv4Repr {
        src_addr: V4_A,
        dst_addr: V4_B,
        protocol: IpProtocol::Udp,
        payload_len: 70_000,
        ttl: 1,
        dscp_ecn: 0,
        dont_frag: false,
        ident: 0,
    };
    assert_eq!(
        ir.emit(&mut Ipv4Packet::new_unchecked(&mut [0u8; 20][..])),
        Err(Error::BadLength)
    );
}

#[test]
fn ttl_decrement_keeps_checksum_valid() {
    let mut v = V4_UDP[14..].to_vec();
    let mut ip = Ipv4Packet::new_checked(&mut v[..]).unwrap();
    for _ in 0..70 {
        ip.decrement_ttl();
        assert!(ip.verify_checksum());
    }
    assert_eq!(ip.ttl(), 64u8.wrapping_sub(70));
}

#[test]
fn mac_address_text() {
    let m = EthernetAddress::parse("02:0a:ff:00:10:01").unwrap();
    assert_eq!(m, EthernetAddress([2, 10, 255, 0, 16, 1]));
    assert_eq!(m.to_string(), "02:0a:ff:00:10:01");
    for bad in [
        "",
        "02:0a:ff:00:10",
        "02:0a:ff:00:10:01:02",
        "02:0a:ff:00:10:zz",
        "020:a:ff:00:10:01",
    ] {
        assert_eq!(EthernetAddress::parse(bad), None, "{bad}");
    }
}

/// Random byte flips and truncations of real frames never panic, and a frame
/// that still parses as UDP carries a checksum that verifies.
#[test]
fn mutations_never_panic() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let frames = [
        V4_UDP,
        V4_UDP_VLAN,
        V4_UDP_OPTS,
        V6_UDP,
        V6_UDP_EXT,
        ARP_REQUEST,
        V6_FRAG_FIRST,
    ];
    let mut parsed = 0;
    for i in 0..20_000 {
        let f = frames[i % frames.len()];
        let mut v = f.to_vec();
        for _ in 0..(rnd() % 4) {
            let at = (rnd() as usize) % v.len();
            v[at] = rnd() as u8;
        }
        v.truncate((rnd() as usize) % (v.len() + 1));
        if parse_frame(&v).is_ok() {
            parsed += 1;
        }
        if let Ok(eth) = EthernetFrame::new_checked(&v[..]) {
            if let Ok(p) = ArpPacket::new_checked(eth.payload()) {
                let _ = ArpRepr::parse(&p);
                let _ = (p.source_hardware_addr(), p.target_protocol_addr());
            }
        }
    }
    // Some survive (untouched bytes past the end, TTL flips fail the sum...).
    assert!(parsed > 0);
}
