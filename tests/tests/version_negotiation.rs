//! Version Negotiation by a server written the quiche way: parse the header
//! of any long-header packet, and answer an unsupported version with
//! `negotiate_version(&hdr.scid, &hdr.dcid, ..)` (RFC 9000 §6.1).
//!
//! quiche's `Header::from_slice` parses long headers of any version (only
//! the version-independent fields, RFC 8999 §5.1) so that a server can do
//! this; tarte's returns `Error::UnknownVersion` instead, which leaves a
//! ported server no way to answer. These tests pin the expected behaviour.

use std::net::UdpSocket;
use std::time::Duration;

use tarte_tests::hq::server::ServerOptions;
use tarte_tests::interop::{server_options, TarteServer, TempDir};

const UNKNOWN_VERSION: u32 = 0x1a2a_3a4a;
const DCID: [u8; 8] = [0xd0, 1, 2, 3, 4, 5, 6, 7];
const SCID: [u8; 5] = [0x5c, 1, 2, 3, 4];

/// A 1200-byte datagram with a long header of an unknown version.
fn unknown_version_datagram() -> Vec<u8> {
    let mut d = vec![0xc0];
    d.extend_from_slice(&UNKNOWN_VERSION.to_be_bytes());
    d.push(DCID.len() as u8);
    d.extend_from_slice(&DCID);
    d.push(SCID.len() as u8);
    d.extend_from_slice(&SCID);
    d.resize(1200, 0);
    d
}

#[test]
fn header_from_slice_parses_long_header_of_unknown_version() {
    let mut d = unknown_version_datagram();
    let hdr = tarte::Header::from_slice(&mut d, 16)
        .expect("the version-independent fields of an unknown version parse (RFC 8999 §5.1)");
    assert_eq!(hdr.version, UNKNOWN_VERSION);
    assert_eq!(&hdr.dcid[..], &DCID);
    assert_eq!(&hdr.scid[..], &SCID);
}

#[test]
fn example_server_answers_unknown_version_with_version_negotiation() {
    let dir = TempDir::new("vn");
    let server = TarteServer::start(ServerOptions {
        idle_timeout_ms: 5_000,
        ..server_options(dir.path(), &[])
    });
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(&unknown_version_datagram(), server.addr)
        .unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = sock
        .recv_from(&mut buf)
        .expect("a Version Negotiation packet within 2 s");
    assert_eq!(from, server.addr);
    let vn = &buf[..n];
    // RFC 9000 §17.2.1: long header, version 0, the client's SCID as DCID
    // and its DCID as SCID, then the supported versions.
    assert_eq!(vn[0] & 0x80, 0x80);
    assert_eq!(&vn[1..5], &[0, 0, 0, 0]);
    assert_eq!(vn[5] as usize, SCID.len());
    assert_eq!(&vn[6..11], &SCID);
    assert_eq!(vn[11] as usize, DCID.len());
    assert_eq!(&vn[12..20], &DCID);
    let versions: Vec<u32> = vn[20..]
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert!(versions.contains(&1), "{versions:x?}");
    // The server thread counts after it sent: wait (bounded) for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let count = || {
        server
            .stats
            .version_negotiations
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    while count() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(count(), 1);
}
