//! Packet tests: RFC 9001 Appendix A vectors byte for byte, RFC 9000
//! Appendix A packet-number examples, every header form, malformed input.

use super::*;
use crate::crypto::{Algorithm, DirectionalKeys};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

const CLIENT_CRYPTO: &str = "060040f1010000ed0303ebf8fa56f129 39b9584a3896472ec40bb863cfd3e868
04fe3a47f06a2b69484c000004130113 02010000c000000010000e00000b6578
616d706c652e636f6dff01000100000a 00080006001d00170018001000070005
04616c706e0005000501000000000033 00260024001d00209370b2c9caa47fba
baf4559fedba753de171fa71f50f1ce1 5d43e994ec74d748002b000302030400
0d0010000e0403050306030203080408 050806002d00020101001c0002400100
3900320408ffffffffffffffff050480 00ffff07048000ffff08011001048000
75300901100f088394c8f03e51570806 048000ffff";

const CLIENT_PROTECTED: &str = include_str!("rfc9001_a2_client_initial.hex");

const SERVER_PAYLOAD: &str = "02000000000600405a020000560303ee fce7f7b37ba1d1632e96677825ddf739
88cfc79825df566dc5430b9a045a1200 130100002e00330024001d00209d3c94
0d89690b84d08a60993c144eca684d10 81287c834d5311bcf32bb9da1a002b00
020304";

const SERVER_PROTECTED: &str = "cf000000010008f067a5502a4262b500 4075c0d95a482cd0991cd25b0aac406a
5816b6394100f37a1c69797554780bb3 8cc5a99f5ede4cf73c3ec2493a1839b3
dbcba3f6ea46c5b7684df3548e7ddeb9 c3bf9c73cc3f3bded74b562bfb19fb84
022f8ef4cdd93795d77d06edbb7aaf2f 58891850abbdca3d20398c276456cbc4
2158407dd074ee";

const ODCID: &str = "8394c8f03e515708";

/// Protects `plain` (header + payload) and checks the RFC bytes, then
/// unprotects the RFC bytes and checks the plaintext.
fn check_vector(
    header: &[u8],
    payload: &[u8],
    pn: u64,
    pn_len: usize,
    expected: &[u8],
    keys: &DirectionalKeys,
) {
    let pn_off = header.len() - pn_len;
    let mut buf = vec![0xa5u8; header.len() + payload.len() + TAG_LEN];
    buf[..header.len()].copy_from_slice(header);
    buf[header.len()..header.len() + payload.len()].copy_from_slice(payload);
    let n = protect(&mut buf, pn_off, pn_len, pn, payload.len(), keys).unwrap();
    assert_eq!(n, expected.len());
    assert_eq!(buf, expected, "protected bytes differ");

    let mut rx = expected.to_vec();
    let u = unprotect(&mut rx, pn_off, pn.checked_sub(1), keys).unwrap();
    assert_eq!(u.pn, pn);
    assert_eq!(u.pn_len, pn_len);
    assert_eq!(&rx[..header.len()], header);
    assert_eq!(&rx[u.payload_off..u.payload_off + u.payload_len], payload);
}

// RFC 9001 Appendix A.2.
#[test]
fn rfc9001_a2_client_initial() {
    let mut payload = h(CLIENT_CRYPTO);
    payload.resize(1162, 0);
    let header = h("c300000001088394c8f03e5157080000449e00000002");
    let keys = DirectionalKeys::initial(&h(ODCID), false).unwrap();
    check_vector(&header, &payload, 2, 4, &h(CLIENT_PROTECTED), &keys);

    // The protected packet parses as an Initial with an empty token.
    let mut pkt = h(CLIENT_PROTECTED);
    let hdr = Header::from_slice(&mut pkt, 0).unwrap();
    assert_eq!(hdr.ty, Type::Initial);
    assert_eq!(hdr.version, 1);
    assert_eq!(&hdr.dcid[..], &h(ODCID)[..]);
    assert!(hdr.scid.is_empty());
    assert_eq!(hdr.token.as_deref(), Some(&[][..]));
}

// RFC 9001 Appendix A.3.
#[test]
fn rfc9001_a3_server_initial() {
    let header = h("c1000000010008f067a5502a4262b50040750001");
    let keys = DirectionalKeys::initial(&h(ODCID), true).unwrap();
    check_vector(
        &header,
        &h(SERVER_PAYLOAD),
        1,
        2,
        &h(SERVER_PROTECTED),
        &keys,
    );
}

// RFC 9001 Appendix A.4.
#[test]
fn rfc9001_a4_retry() {
    let expected = h("ff000000010008f067a5502a4262b574 6f6b656e04a265ba2eff4d829058fb3f 0f2496ba");
    let odcid = h(ODCID);
    let new_scid = h("f067a5502a4262b5");
    let mut out = [0xa5u8; 128];
    let n = retry(
        &ConnectionId::from_ref(&[]),
        &ConnectionId::from_ref(&odcid),
        &ConnectionId::from_ref(&new_scid),
        b"token",
        PROTOCOL_VERSION,
        &mut out,
    )
    .unwrap();
    assert_eq!(&out[..n], &expected[..]);
    assert!(verify_retry(&odcid, &expected));
    assert!(verify_retry(&odcid, &out[..n]));
    assert!(!verify_retry(&h("0000000000000000"), &expected));
    let mut bad = expected.clone();
    bad[10] ^= 1;
    assert!(!verify_retry(&odcid, &bad));

    let mut pkt = expected.clone();
    let hdr = Header::from_slice(&mut pkt, 0).unwrap();
    assert_eq!(hdr.ty, Type::Retry);
    assert!(hdr.dcid.is_empty());
    assert_eq!(&hdr.scid[..], &new_scid[..]);
    assert_eq!(hdr.token.as_deref(), Some(&b"token"[..]));
}

// RFC 9001 Appendix A.5.
#[test]
fn rfc9001_a5_chacha20_short_header() {
    let secret = h("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b");
    let keys = DirectionalKeys::from_secret(Algorithm::ChaCha20Poly1305, &secret).unwrap();
    let header = h("4200bff4");
    let expected = h("4cfe4189655e5cd55c41f69080575d7999c25a5bfb");
    let pn = 654_360_564;
    assert_eq!(pkt_num_len(pn, Some(pn - 2)), 1);
    let mut buf = [0xa5u8; 4 + 1 + TAG_LEN];
    buf[..4].copy_from_slice(&header);
    buf[4] = 0x01;
    let n = protect(&mut buf, 1, 3, pn, 1, &keys).unwrap();
    assert_eq!(&buf[..n], &expected[..]);

    let mut rx = expected.clone();
    let u = unprotect(&mut rx, 1, Some(pn - 1), &keys).unwrap();
    assert_eq!(u.pn, pn);
    assert_eq!(u.pn_len, 3);
    assert!(!u.key_phase);
    assert_eq!(&rx[u.payload_off..u.payload_off + u.payload_len], &[0x01]);

    let mut rx = expected.clone();
    let hdr = Header::from_slice(&mut rx, 0).unwrap();
    assert_eq!(hdr.ty, Type::Short);
}

#[test]
fn unprotect_rejects_corruption_and_short_packets() {
    let keys = DirectionalKeys::initial(&h(ODCID), true).unwrap();
    let good = h(SERVER_PROTECTED);
    for i in [0usize, 18, 19, 30, good.len() - 1] {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        assert!(
            unprotect(&mut bad, 18, Some(0), &keys).is_err(),
            "flip at {i}"
        );
    }
    // Too short to sample.
    let mut short = good[..30].to_vec();
    assert_eq!(
        unprotect(&mut short, 18, None, &keys),
        Err(Error::InvalidPacket)
    );
    // Wrong keys.
    let client = DirectionalKeys::initial(&h(ODCID), false).unwrap();
    let mut pkt = good.clone();
    assert_eq!(
        unprotect(&mut pkt, 18, None, &client),
        Err(Error::CryptoFail)
    );
}

// RFC 9000 Appendix A.2 and A.3.
#[test]
fn rfc9000_packet_number_examples() {
    assert_eq!(pkt_num_len(0xac5c02, Some(0xabe8b3)), 2);
    assert_eq!(pkt_num_len(0xace8fe, Some(0xabe8b3)), 3);
    assert_eq!(decode_pkt_num(Some(0xa82f30ea), 0x9b32, 2), 0xa82f9b32);
    assert_eq!(pkt_num_len(0, None), 1);
    assert_eq!(pkt_num_len(1 << 40, Some(0)), 4);

    // Encode/decode round trips across window edges.
    for (largest, pn) in [
        (0u64, 1u64),
        (254, 255),
        (255, 256),
        (0xffff, 0x1_0000),
        (1 << 30, (1 << 30) + 5000),
    ] {
        let len = pkt_num_len(pn, Some(largest));
        let truncated = pn & ((1u64 << (len * 8)) - 1);
        assert_eq!(decode_pkt_num(Some(largest), truncated, len), pn);
        let mut out = [0u8; 4];
        let mut b = OctetsMut::with_slice(&mut out);
        encode_pkt_num(pn, len, &mut b).unwrap();
        assert_eq!(b.off(), len);
    }
    // Near the top of the space no overflow happens.
    let top = (1u64 << 62) - 1;
    assert_eq!(decode_pkt_num(Some(top - 1), top & 0xff, 1), top);
    let mut out = [0u8; 4];
    assert!(encode_pkt_num(1, 5, &mut OctetsMut::with_slice(&mut out)).is_err());
}

#[test]
fn header_round_trip_every_long_type() {
    for ty in [Type::Initial, Type::ZeroRTT, Type::Handshake] {
        let hdr = Header {
            ty,
            version: PROTOCOL_VERSION,
            dcid: ConnectionId::from_ref(&[1, 2, 3, 4, 5, 6, 7, 8]),
            scid: ConnectionId::from_ref(&[9, 9, 9]),
            pkt_num: 0,
            pkt_num_len: 2,
            token: if ty == Type::Initial {
                Some(vec![0xaa; 40])
            } else {
                None
            },
            versions: None,
            key_phase: false,
        };
        let mut buf = [0xa5u8; 128];
        let mut b = OctetsMut::with_slice(&mut buf);
        hdr.to_bytes(&mut b).unwrap();
        let len = b.off();
        let parsed = Header::from_slice(&mut buf[..len], 8).unwrap();
        assert_eq!(parsed.ty, ty);
        assert_eq!(parsed.dcid, hdr.dcid);
        assert_eq!(parsed.scid, hdr.scid);
        assert_eq!(parsed.token, hdr.token);
        assert_eq!(buf[0] & 0x03, 1, "pn length bits");
        let p = peek(&buf[..len], 8).unwrap();
        assert_eq!(p.ty, Some(ty));
        assert_eq!(p.dcid, &[1, 2, 3, 4, 5, 6, 7, 8]);
    }
    let short = Header {
        ty: Type::Short,
        version: 0,
        dcid: ConnectionId::from_ref(&[7; 16]),
        scid: ConnectionId::default(),
        pkt_num: 0,
        pkt_num_len: 4,
        token: None,
        versions: None,
        key_phase: true,
    };
    let mut buf = [0u8; 64];
    let mut b = OctetsMut::with_slice(&mut buf);
    short.to_bytes(&mut b).unwrap();
    assert_eq!(b.off(), 17);
    assert_eq!(buf[0], 0x40 | 0x04 | 0x03);
    let parsed = Header::from_slice(&mut buf, 16).unwrap();
    assert_eq!(parsed.ty, Type::Short);
    assert_eq!(&parsed.dcid[..], &[7; 16]);
    assert_eq!(peek(&buf, 16).unwrap().dcid, &[7; 16]);
}

#[test]
fn version_negotiation_round_trip() {
    let scid = ConnectionId::from_ref(&[1, 2, 3]);
    let dcid = ConnectionId::from_ref(&[4, 5, 6, 7]);
    let mut out = [0xa5u8; 64];
    let n = negotiate_version(&scid, &dcid, &mut out).unwrap();
    assert_eq!(n, 1 + 4 + 1 + 3 + 1 + 4 + 8);
    let hdr = Header::from_slice(&mut out[..n], 0).unwrap();
    assert_eq!(hdr.ty, Type::VersionNegotiation);
    // The answer swaps the IDs.
    assert_eq!(&hdr.dcid[..], &[1, 2, 3]);
    assert_eq!(&hdr.scid[..], &[4, 5, 6, 7]);
    assert_eq!(hdr.versions, Some(vec![PROTOCOL_VERSION, 0x1a2a3a4a]));
    assert_eq!(
        negotiate_version(&scid, &dcid, &mut [0u8; 10]),
        Err(Error::BufferTooShort)
    );
    // A VN with no versions or a ragged list is malformed.
    assert_eq!(
        Header::from_slice(&mut out[..n - 8], 0),
        Err(Error::InvalidPacket)
    );
    assert_eq!(
        Header::from_slice(&mut out[..n - 1], 0),
        Err(Error::InvalidPacket)
    );
}

#[test]
fn malformed_headers_are_errors() {
    let mut pkt = h(CLIENT_PROTECTED);
    // Every truncation of the header is an error, never a panic.
    for len in 0..24 {
        let r = Header::from_slice(&mut pkt[..len], 0);
        // 1 + 4 + 1 + 8 + 1 + 1 bytes reach the (empty) token.
        assert_eq!(r.is_err(), len < 16, "len {len}");
    }
    // Unknown version.
    let mut bad = pkt.clone();
    bad[1..5].copy_from_slice(&[0xff, 0, 0, 0x1d]);
    // Unknown versions parse to their invariant fields so that a server
    // can answer with Version Negotiation.
    let hdr = Header::from_slice(&mut bad, 0).unwrap();
    assert_eq!(hdr.version, 0xff00_001d);
    assert!(!version_is_supported(hdr.version));
    assert_eq!(&hdr.dcid[..], &h(ODCID)[..]);
    assert_eq!(hdr.token, None);
    assert_eq!(peek(&bad, 0).unwrap().ty, None);
    // DCID longer than 20 in v1.
    let mut bad = pkt.clone();
    bad[5] = 21;
    assert_eq!(Header::from_slice(&mut bad, 0), Err(Error::InvalidPacket));
    // Token length past the end.
    let mut bad = h("c3000000010100004fff");
    assert_eq!(Header::from_slice(&mut bad, 0), Err(Error::InvalidPacket));
    // Short header shorter than the DCID.
    assert_eq!(
        Header::from_slice(&mut [0x40, 1, 2], 8),
        Err(Error::InvalidPacket)
    );
    assert_eq!(
        Header::from_slice(&mut [0x40; 30], 21),
        Err(Error::InvalidPacket)
    );
    // Retry shorter than its tag.
    let mut bad = h("f0000000010000aabbcc");
    assert_eq!(Header::from_slice(&mut bad, 0), Err(Error::InvalidPacket));
    // Corrupting random bytes never panics.
    let mut seed = 0x1234_5678u32;
    for _ in 0..2000 {
        let mut p = pkt[..64].to_vec();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let i = (seed as usize) % p.len();
            p[i] = (seed >> 8) as u8;
        }
        let _ = Header::from_slice(&mut p, (seed % 21) as usize);
        let _ = peek(&p, (seed % 21) as usize);
    }
}

#[test]
fn retry_rejects_bad_arguments() {
    let cid = ConnectionId::from_ref(&[1; 8]);
    let long = ConnectionId::from_ref(&[1; 21]);
    let mut out = [0u8; 128];
    assert_eq!(
        retry(&cid, &cid, &cid, b"t", 0xbabababa, &mut out),
        Err(Error::UnknownVersion)
    );
    assert_eq!(
        retry(&cid, &long, &cid, b"t", 1, &mut out),
        Err(Error::InvalidPacket)
    );
    assert_eq!(
        retry(&cid, &cid, &cid, &[0; 200], 1, &mut out),
        Err(Error::BufferTooShort)
    );
}

// RFC 9000 §10.3: a short header with the fixed bit, unpredictable bytes,
// the token last; always shorter than its trigger (§10.3.3), 43 bytes at
// most, never under 21.
#[test]
fn stateless_reset_sizes_and_layout() {
    let token = 0x0011_2233_4455_6677_8899_aabb_ccdd_eeffu128;
    let mut out = [0u8; 64];
    for (trigger, want) in [(1200, 43), (44, 43), (43, 42), (30, 29), (22, 21)] {
        let n = stateless_reset(token, trigger, &mut out).unwrap();
        assert_eq!(n, want, "trigger {trigger}");
        assert_eq!(out[0] & 0xc0, 0x40, "short header, fixed bit");
        assert_eq!(&out[n - 16..n], &token.to_be_bytes());
    }
    assert_eq!(stateless_reset(token, 21, &mut out), Err(Error::Done));
    assert_eq!(stateless_reset(token, 0, &mut out), Err(Error::Done));
    assert_eq!(
        stateless_reset(token, 100, &mut out[..30]),
        Err(Error::BufferTooShort)
    );
    // The bytes before the token are random, not a fixed pattern.
    let mut a = [0u8; 64];
    let mut b = [0u8; 64];
    stateless_reset(token, 100, &mut a).unwrap();
    stateless_reset(token, 100, &mut b).unwrap();
    assert_ne!(a[1..27], b[1..27]);
}
