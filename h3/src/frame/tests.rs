use super::*;
use crate::settings::SettingId;

fn all_frames() -> Vec<Frame> {
    vec![
        Frame::Data {
            payload: b"hello".to_vec(),
        },
        Frame::Data { payload: vec![] },
        Frame::Data {
            payload: vec![0xa5; 70_000],
        },
        Frame::Headers {
            header_block: vec![0x00, 0x00, 0xd1, 0xd7],
        },
        Frame::CancelPush { push_id: 0 },
        Frame::CancelPush {
            push_id: (1 << 62) - 1,
        },
        Frame::Settings(Settings::default()),
        Frame::Settings(Settings {
            max_field_section_size: Some(16_384),
            qpack_max_table_capacity: Some(4096),
            qpack_blocked_streams: Some(100),
            connect_protocol_enabled: Some(1),
            h3_datagram: Some(1),
            additional: vec![(0x21, 7), (0x1f * 5 + 0x21, 0), (0x4242, 1 << 40)],
        }),
        Frame::PushPromise {
            push_id: 3,
            header_block: vec![0x00, 0x00, 0xc1],
        },
        Frame::GoAway { id: 4 },
        Frame::GoAway { id: 1 << 30 },
        Frame::MaxPushId { push_id: 100 },
        Frame::PriorityUpdateRequest {
            prioritized_element_id: 8,
            priority_field_value: b"u=0, i".to_vec(),
        },
        Frame::PriorityUpdatePush {
            prioritized_element_id: 2,
            priority_field_value: vec![],
        },
        Frame::Unknown {
            raw_type: 0x21,
            payload_length: 3,
        },
        Frame::Unknown {
            raw_type: 0x1234_5678,
            payload_length: 0,
        },
    ]
}

#[test]
fn every_frame_round_trips() {
    for f in all_frames() {
        let mut buf = vec![0xa5; f.wire_len() + 4];
        let n = f.encode(&mut OctetsMut::with_slice(&mut buf)).unwrap();
        assert_eq!(n, f.wire_len(), "{f:?}");
        assert_eq!(&buf[n..], &[0xa5; 4], "wrote past wire_len");
        let (back, used) = Frame::decode_from(&buf[..n]).unwrap();
        assert_eq!(used, n);
        assert_eq!(back, f);
        // A buffer one byte short fails cleanly.
        let mut short = vec![0; n - 1];
        assert_eq!(
            f.encode(&mut OctetsMut::with_slice(&mut short)),
            Err(Error::BufferTooShort)
        );
        // Every truncation is incomplete, never another frame.
        for cut in 0..n {
            assert_eq!(
                Frame::decode_from(&buf[..cut]),
                Err(Error::BufferTooShort),
                "{f:?} {cut}"
            );
        }
    }
}

#[test]
fn known_wire_bytes() {
    let enc = |f: &Frame| {
        let mut buf = vec![0; f.wire_len()];
        f.encode(&mut OctetsMut::with_slice(&mut buf)).unwrap();
        buf
    };
    assert_eq!(
        enc(&Frame::Data {
            payload: b"ab".to_vec()
        }),
        [0x00, 0x02, b'a', b'b']
    );
    assert_eq!(enc(&Frame::GoAway { id: 4 }), [0x07, 0x01, 0x04]);
    assert_eq!(
        enc(&Frame::MaxPushId { push_id: 64 }),
        [0x0d, 0x02, 0x40, 0x40]
    );
    // SETTINGS: QPACK_MAX_TABLE_CAPACITY=4096, QPACK_BLOCKED_STREAMS=16.
    let s = Settings {
        qpack_max_table_capacity: Some(4096),
        qpack_blocked_streams: Some(16),
        ..Default::default()
    };
    assert_eq!(
        enc(&Frame::Settings(s)),
        [0x04, 0x05, 0x01, 0x50, 0x00, 0x07, 0x10]
    );
    // PRIORITY_UPDATE type 0xf0700 is a 4-byte varint.
    let pu = Frame::PriorityUpdateRequest {
        prioritized_element_id: 0,
        priority_field_value: b"u=1".to_vec(),
    };
    assert_eq!(
        enc(&pu),
        [0x80, 0x0f, 0x07, 0x00, 0x04, 0x00, b'u', b'=', b'1']
    );
}

#[test]
fn fixed_payload_frames_reject_extra_or_missing_bytes() {
    for ty in [0x03, 0x07, 0x0d] {
        assert_eq!(Frame::decode(ty, &[]), Err(Error::FrameError));
        assert_eq!(Frame::decode(ty, &[0x04, 0x00]), Err(Error::FrameError));
        assert_eq!(Frame::decode(ty, &[0x40]), Err(Error::FrameError));
        assert!(Frame::decode(ty, &[0x04]).is_ok());
    }
    // PUSH_PROMISE and PRIORITY_UPDATE need at least their ID.
    for ty in [0x05, 0xf0700, 0xf0701] {
        assert_eq!(Frame::decode(ty, &[]), Err(Error::FrameError));
        assert_eq!(Frame::decode(ty, &[0x80, 0x00]), Err(Error::FrameError));
    }
}

#[test]
fn http2_frame_types_are_unexpected() {
    for ty in [0x02, 0x06, 0x08, 0x09] {
        assert_eq!(Frame::decode(ty, &[]), Err(Error::FrameUnexpected));
    }
}

#[test]
fn unknown_and_reserved_frames_are_skippable() {
    let f = Frame::decode(0x21, b"junk").unwrap();
    assert_eq!(
        f,
        Frame::Unknown {
            raw_type: 0x21,
            payload_length: 4
        }
    );
    assert!(f.is_grease());
    let f = Frame::decode(0x0a, b"").unwrap();
    assert!(!f.is_grease());
    // A stream with a grease frame between two frames.
    let stream = [0x21, 0x02, 0xff, 0xff, 0x07, 0x01, 0x00];
    let (f1, n1) = Frame::decode_from(&stream).unwrap();
    assert!(f1.is_grease());
    let (f2, _) = Frame::decode_from(&stream[n1..]).unwrap();
    assert_eq!(f2, Frame::GoAway { id: 0 });
}

#[test]
fn settings_errors() {
    // Reserved HTTP/2 settings.
    for id in [0x00, 0x02, 0x03, 0x04, 0x05] {
        assert_eq!(
            Settings::decode(&[id, 0x00]),
            Err(Error::SettingsError),
            "{id}"
        );
    }
    // Duplicates, known and unknown.
    assert_eq!(
        Settings::decode(&[0x01, 0x00, 0x01, 0x01]),
        Err(Error::SettingsError)
    );
    assert_eq!(
        Settings::decode(&[0x21, 0x00, 0x21, 0x01]),
        Err(Error::SettingsError)
    );
    // Booleans other than 0/1.
    assert_eq!(Settings::decode(&[0x08, 0x02]), Err(Error::SettingsError));
    assert_eq!(Settings::decode(&[0x33, 0x02]), Err(Error::SettingsError));
    // Truncated parameter.
    assert_eq!(Settings::decode(&[0x01]), Err(Error::FrameError));
    assert_eq!(Settings::decode(&[0x01, 0x40]), Err(Error::FrameError));
    // Through the frame decoder.
    assert_eq!(
        Frame::decode(0x04, &[0x06, 0x00, 0x06, 0x00]),
        Err(Error::SettingsError)
    );
    // Unknown ones are kept, in order, and the known ones parsed.
    let s = Settings::decode(&[0x06, 0x44, 0x00, 0x40, 0x42, 0x05, 0x01, 0x00]).unwrap();
    assert_eq!(s.max_field_section_size, Some(0x400));
    assert_eq!(s.qpack_max_table_capacity, Some(0));
    assert_eq!(s.additional, [(0x42, 5)]);
    assert_eq!(SettingId::from_wire(0x33), SettingId::H3Datagram);
}

#[test]
fn header_reader_handles_any_split() {
    // Two frames: DATA with a 2-byte length, and PRIORITY_UPDATE with a
    // 4-byte type.
    let mut stream = vec![];
    for f in [
        Frame::Data {
            payload: vec![7; 300],
        },
        Frame::PriorityUpdateRequest {
            prioritized_element_id: 4,
            priority_field_value: b"i".to_vec(),
        },
    ] {
        let mut buf = vec![0; f.wire_len()];
        f.encode(&mut OctetsMut::with_slice(&mut buf)).unwrap();
        stream.extend(buf);
    }
    for chunk in 1..=stream.len() {
        let mut reader = FrameHeaderReader::default();
        let mut headers = vec![];
        let mut off = 0;
        let mut skip = 0usize;
        for piece in stream.chunks(chunk) {
            let mut p = piece;
            while !p.is_empty() {
                if skip > 0 {
                    let n = skip.min(p.len());
                    skip -= n;
                    p = &p[n..];
                    continue;
                }
                let (n, h) = reader.feed(p);
                p = &p[n..];
                off += n;
                if let Some(h) = h {
                    headers.push(h);
                    skip = h.payload_len as usize;
                }
            }
        }
        assert!(!reader.is_partial());
        assert_eq!(
            headers,
            [
                FrameHeader {
                    frame_type: 0x00,
                    payload_len: 300
                },
                FrameHeader {
                    frame_type: 0xf0700,
                    payload_len: 2
                },
            ],
            "chunk {chunk}"
        );
        assert_eq!(off, 3 + 5);
    }
    // A partial header is reported.
    let mut r = FrameHeaderReader::default();
    assert_eq!(r.feed(&[0x40]), (1, None));
    assert!(r.is_partial());
    assert_eq!(r.feed(&[0x01, 0x80]), (2, None));
    assert_eq!(
        r.feed(&[0, 0, 9, 0xaa]),
        (
            3,
            Some(FrameHeader {
                frame_type: 1,
                payload_len: 9
            })
        )
    );
    assert!(!r.is_partial());
    assert_eq!(r.feed(&[]), (0, None));
}

#[test]
fn varint_reader() {
    let mut r = VarintReader::default();
    let bytes = [0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c];
    for (i, b) in bytes.iter().enumerate() {
        let (n, v) = r.feed(std::slice::from_ref(b));
        assert_eq!(n, 1);
        assert_eq!(v.is_some(), i == 7);
        if let Some(v) = v {
            assert_eq!(v, 151_288_809_941_952_652);
        }
    }
    assert_eq!(r.feed(&[0x25, 0x26]), (1, Some(37)));
}
