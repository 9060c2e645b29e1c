//! Frame tests: a round trip for every frame type, and truncated, overlong
//! and corrupted input for the decoder.

use super::*;

const ALL_TYPES: [Type; 4] = [Type::Initial, Type::ZeroRTT, Type::Handshake, Type::Short];

fn sample_frames() -> Vec<Frame<'static>> {
    static RANGES: [RangeInclusive<u64>; 3] = [90..=100, 50..=80, 0..=10];
    vec![
        Frame::Padding { len: 7 },
        Frame::Ping,
        Frame::Ack {
            ack_delay: 874,
            ranges: AckRanges::Slice(&RANGES),
            ecn: None,
        },
        Frame::Ack {
            ack_delay: 0,
            ranges: AckRanges::Slice(&RANGES[..1]),
            ecn: Some(EcnCounts {
                ect0: 1,
                ect1: 200,
                ce: 70_000,
            }),
        },
        Frame::ResetStream {
            stream_id: 4,
            error_code: 0x10c,
            final_size: 1 << 40,
        },
        Frame::StopSending {
            stream_id: 8,
            error_code: 0,
        },
        Frame::Crypto {
            offset: 1_000_000,
            data: b"client hello bytes",
        },
        Frame::NewToken { token: b"tok" },
        Frame::Stream {
            stream_id: 0,
            offset: 0,
            data: b"GET /index.html\r\n",
            fin: true,
        },
        Frame::Stream {
            stream_id: 1 << 40,
            offset: 99_999,
            data: &[0xab; 300],
            fin: false,
        },
        Frame::Stream {
            stream_id: 3,
            offset: 5,
            data: b"",
            fin: true,
        },
        Frame::MaxData { max: 1 << 50 },
        Frame::MaxStreamData {
            stream_id: 2,
            max: 65_536,
        },
        Frame::MaxStreams {
            bidi: true,
            max: 100,
        },
        Frame::MaxStreams {
            bidi: false,
            max: MAX_STREAMS_LIMIT,
        },
        Frame::DataBlocked { limit: 12 },
        Frame::StreamDataBlocked {
            stream_id: 6,
            limit: 13,
        },
        Frame::StreamsBlocked {
            bidi: true,
            limit: 14,
        },
        Frame::StreamsBlocked {
            bidi: false,
            limit: 15,
        },
        Frame::NewConnectionId {
            seq_num: 3,
            retire_prior_to: 1,
            conn_id: &[0x11; 20],
            reset_token: [0x22; 16],
        },
        Frame::RetireConnectionId { seq_num: 2 },
        Frame::PathChallenge { data: *b"abcdefgh" },
        Frame::PathResponse { data: *b"hgfedcba" },
        Frame::ConnectionClose {
            error_code: 0x0a,
            frame_type: 0x08,
            reason: b"bad stream",
        },
        Frame::ApplicationClose {
            error_code: 0x100,
            reason: b"",
        },
        Frame::HandshakeDone,
        Frame::Datagram {
            data: b"dgram with len",
            with_len: true,
        },
        Frame::Datagram {
            data: b"dgram to end",
            with_len: false,
        },
    ]
}

/// A packet type that may carry `f`.
fn carrier(f: &Frame<'_>) -> Type {
    *ALL_TYPES.iter().rev().find(|t| f.allowed_in(**t)).unwrap()
}

#[test]
fn every_frame_round_trips() {
    for f in sample_frames() {
        let mut buf = [0xa5u8; 1500];
        let mut b = OctetsMut::with_slice(&mut buf);
        let n = f.to_bytes(&mut b).unwrap();
        assert_eq!(n, f.wire_len(), "{f:?}");
        let pkt = carrier(&f);
        let mut r = Octets::with_slice(&buf[..n]);
        let g = Frame::from_bytes(&mut r, pkt).unwrap();
        assert_eq!(r.cap(), 0, "{f:?} consumed exactly");
        match (&f, &g) {
            // Decoded ACKs are in wire form; compare their ranges.
            (
                Frame::Ack {
                    ack_delay: d1,
                    ranges: r1,
                    ecn: e1,
                },
                Frame::Ack {
                    ack_delay: d2,
                    ranges: r2,
                    ecn: e2,
                },
            ) => {
                assert_eq!((d1, e1), (d2, e2));
                assert_eq!(r1.iter().collect::<Vec<_>>(), r2.iter().collect::<Vec<_>>());
                assert_eq!(r1.largest(), r2.largest());
                assert_eq!(r1.smallest(), r2.smallest());
                // Re-encoding the wire form gives the same bytes.
                let mut again = [0u8; 64];
                let m = g.to_bytes(&mut OctetsMut::with_slice(&mut again)).unwrap();
                assert_eq!(&again[..m], &buf[..n]);
            }
            _ => assert_eq!(f, g),
        }
        // Too small an output buffer is an error, never a panic.
        let mut small = vec![0u8; n - 1];
        assert_eq!(
            f.to_bytes(&mut OctetsMut::with_slice(&mut small)),
            Err(Error::BufferTooShort)
        );
    }
}

#[test]
fn frames_in_sequence_decode_in_order() {
    let frames = sample_frames();
    // Datagram without length must be last; PADDING would swallow zeros.
    let frames: Vec<_> = frames
        .into_iter()
        .filter(|f| f.allowed_in(Type::Short) && !matches!(f, Frame::Padding { .. }))
        .collect();
    let mut buf = vec![0u8; 8192];
    let mut b = OctetsMut::with_slice(&mut buf);
    for f in &frames {
        f.to_bytes(&mut b).unwrap();
    }
    let len = b.off();
    let mut r = Octets::with_slice(&buf[..len]);
    let mut n = 0;
    while r.cap() > 0 {
        let f = Frame::from_bytes(&mut r, Type::Short).unwrap();
        assert_eq!(f.frame_type(), frames[n].frame_type());
        n += 1;
    }
    assert_eq!(n, frames.len());
}

#[test]
fn truncated_frames_are_errors() {
    for f in sample_frames() {
        let mut buf = [0u8; 1500];
        let n = f.to_bytes(&mut OctetsMut::with_slice(&mut buf)).unwrap();
        let pkt = carrier(&f);
        for cut in 0..n {
            let mut r = Octets::with_slice(&buf[..cut]);
            match Frame::from_bytes(&mut r, pkt) {
                Err(e) => assert_eq!(e, Error::InvalidFrame, "{f:?} cut at {cut}"),
                // Frames that run to the end of the packet or have no body
                // may legitimately decode from a prefix.
                Ok(g) => assert!(
                    matches!(
                        g,
                        Frame::Padding { .. }
                            | Frame::Datagram {
                                with_len: false,
                                ..
                            }
                    ),
                    "{f:?} cut at {cut} decoded as {g:?}"
                ),
            }
        }
    }
}

#[test]
fn packet_type_rules() {
    use types::*;
    // RFC 9000 Table 3.
    assert!(allowed_in(PADDING, Type::Initial));
    assert!(allowed_in(ACK, Type::Handshake));
    assert!(!allowed_in(ACK, Type::ZeroRTT));
    assert!(!allowed_in(CRYPTO, Type::ZeroRTT));
    assert!(!allowed_in(STREAM, Type::Initial));
    assert!(allowed_in(0x0f, Type::ZeroRTT));
    assert!(!allowed_in(HANDSHAKE_DONE, Type::Handshake));
    assert!(allowed_in(HANDSHAKE_DONE, Type::Short));
    assert!(!allowed_in(NEW_TOKEN, Type::ZeroRTT));
    assert!(!allowed_in(PATH_RESPONSE, Type::ZeroRTT));
    assert!(allowed_in(CONNECTION_CLOSE, Type::Initial));
    assert!(!allowed_in(APPLICATION_CLOSE, Type::Initial));
    assert!(!allowed_in(DATAGRAM, Type::Handshake));
    assert!(!allowed_in(PING, Type::Retry));

    // A STREAM frame in an Initial packet is a PROTOCOL_VIOLATION.
    let mut r = Octets::with_slice(&[0x08, 0x00, 0x61]);
    assert_eq!(
        Frame::from_bytes(&mut r, Type::Initial),
        Err(Error::InvalidPacket)
    );
    assert_eq!(Error::InvalidPacket.to_wire(), 0x0a);
    // Unknown frame type: FRAME_ENCODING_ERROR.
    let mut r = Octets::with_slice(&[0x21]);
    assert_eq!(
        Frame::from_bytes(&mut r, Type::Short),
        Err(Error::InvalidFrame)
    );
    // A frame type in a longer encoding than necessary.
    let mut r = Octets::with_slice(&[0x40, 0x01]);
    assert_eq!(
        Frame::from_bytes(&mut r, Type::Short),
        Err(Error::InvalidPacket)
    );
}

#[test]
fn invalid_field_values_are_frame_encoding_errors() {
    let bad: &[&[u8]] = &[
        // ACK: first range larger than largest.
        &[0x02, 0x05, 0x00, 0x00, 0x06],
        // ACK: gap below zero.
        &[0x02, 0x05, 0x00, 0x01, 0x01, 0x05, 0x00],
        // ACK: range below zero.
        &[0x02, 0x05, 0x00, 0x01, 0x00, 0x00, 0x05],
        // ACK: range count larger than the packet.
        &[0x02, 0x05, 0x00, 0xbf, 0xff, 0xff, 0xff, 0x00],
        // NEW_TOKEN with an empty token.
        &[0x07, 0x00],
        // MAX_STREAMS above 2^60.
        &[0x12, 0xd0, 0, 0, 0, 0, 0, 0, 1],
        // STREAMS_BLOCKED above 2^60.
        &[0x17, 0xd0, 0, 0, 0, 0, 0, 0, 1],
        // NEW_CONNECTION_ID: retire_prior_to > seq.
        &[0x18, 0x01, 0x02, 0x01, 0xaa],
        // NEW_CONNECTION_ID: zero-length CID.
        &[0x18, 0x01, 0x00, 0x00],
        // NEW_CONNECTION_ID: 21-byte CID.
        &[0x18, 0x01, 0x00, 21],
        // STREAM: offset + length beyond 2^62-1.
        &[
            0x0e, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x61,
        ],
        // CRYPTO: offset + length beyond 2^62-1.
        &[
            0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x61,
        ],
        // STREAM with a length past the end of the packet.
        &[0x0a, 0x00, 0x10, 0x61],
        // CONNECTION_CLOSE reason length past the end.
        &[0x1c, 0x00, 0x00, 0x05, 0x61],
        // DATAGRAM with length past the end.
        &[0x31, 0x05, 0x61],
    ];
    for bytes in bad {
        let mut r = Octets::with_slice(bytes);
        assert_eq!(
            Frame::from_bytes(&mut r, Type::Short),
            Err(Error::InvalidFrame),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn ack_ranges_decode_as_sent() {
    // largest 60, delay 3, 2 more ranges: [55..=60], gap 3 -> [49..=50], gap 0 -> [39..=47]
    let bytes = [0x02, 60, 3, 2, 5, 3, 1, 0, 8];
    let mut r = Octets::with_slice(&bytes);
    let Frame::Ack {
        ranges, ack_delay, ..
    } = Frame::from_bytes(&mut r, Type::Short).unwrap()
    else {
        panic!("not an ACK");
    };
    assert_eq!(ack_delay, 3);
    assert_eq!(
        ranges.iter().collect::<Vec<_>>(),
        vec![55..=60, 49..=50, 39..=47]
    );
    assert_eq!(ranges.smallest(), Some(39));
    // Encoding from a slice gives the same bytes.
    let slice = [55..=60u64, 49..=50, 39..=47];
    let f = Frame::Ack {
        ack_delay: 3,
        ranges: AckRanges::Slice(&slice),
        ecn: None,
    };
    let mut out = [0u8; 16];
    let n = f.to_bytes(&mut OctetsMut::with_slice(&mut out)).unwrap();
    assert_eq!(&out[..n], &bytes);
    // Adjacent or overlapping ranges cannot be encoded.
    let bad = [10..=20u64, 9..=9];
    let f = Frame::Ack {
        ack_delay: 0,
        ranges: AckRanges::Slice(&bad),
        ecn: None,
    };
    assert_eq!(
        f.to_bytes(&mut OctetsMut::with_slice(&mut out)),
        Err(Error::InvalidFrame)
    );
}

#[test]
fn padding_runs_collapse() {
    let bytes = [0u8; 300];
    let mut r = Octets::with_slice(&bytes);
    assert_eq!(
        Frame::from_bytes(&mut r, Type::Initial).unwrap(),
        Frame::Padding { len: 300 }
    );
    assert_eq!(r.cap(), 0);
    let bytes = [0, 0, 0, 1];
    let mut r = Octets::with_slice(&bytes);
    assert_eq!(
        Frame::from_bytes(&mut r, Type::Initial).unwrap(),
        Frame::Padding { len: 3 }
    );
    assert_eq!(
        Frame::from_bytes(&mut r, Type::Initial).unwrap(),
        Frame::Ping
    );
}

#[test]
fn corrupted_input_never_panics() {
    let mut buf = vec![0u8; 4096];
    let mut b = OctetsMut::with_slice(&mut buf);
    for f in sample_frames() {
        f.to_bytes(&mut b).unwrap();
    }
    let len = b.off();
    let mut seed = 0x9e37_79b9u32;
    for _ in 0..3000 {
        let mut p = buf[..len].to_vec();
        for _ in 0..3 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let i = (seed as usize) % p.len();
            p[i] = (seed >> 11) as u8;
        }
        for ty in ALL_TYPES {
            let mut r = Octets::with_slice(&p);
            while r.cap() > 0 {
                match Frame::from_bytes(&mut r, ty) {
                    Ok(f) => {
                        // Anything decoded re-encodes within its wire_len.
                        let mut out = vec![0u8; f.wire_len()];
                        f.to_bytes(&mut OctetsMut::with_slice(&mut out)).unwrap();
                        let _ = f.ack_eliciting();
                        if let Frame::Ack { ranges, .. } = f {
                            for r in ranges.iter() {
                                assert!(r.start() <= r.end());
                            }
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }
}
