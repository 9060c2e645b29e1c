//! HTTP/3 frame parsing: whole-buffer decoding with a re-encode check, and
//! the incremental header reader fed in pieces whose sizes come from the
//! input's first byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tarte::octets::OctetsMut;
use tarte_h3::frame::{Frame, FrameHeaderReader};

/// Payloads above this are not buffered (a connection would refuse them).
const MAX_PAYLOAD: u64 = 1 << 16;

fn check_round_trip(f: &Frame) {
    let mut buf = vec![0u8; f.wire_len()];
    let n = f
        .encode(&mut OctetsMut::with_slice(&mut buf))
        .expect("encode into wire_len bytes");
    assert_eq!(n, buf.len());
    let (back, used) = Frame::decode_from(&buf).expect("re-decode");
    assert_eq!(used, n);
    assert_eq!(&back, f);
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };

    // Whole-buffer decoding, frame after frame.
    let mut rest = data;
    while let Ok((f, used)) = Frame::decode_from(rest) {
        if f.payload_len() <= MAX_PAYLOAD {
            check_round_trip(&f);
        }
        rest = &rest[used..];
    }

    // The same bytes in pieces of `split + 1` bytes through the reader.
    let chunk = usize::from(split) + 1;
    let mut reader = FrameHeaderReader::default();
    let mut payload: Vec<u8> = Vec::new();
    let mut want: Option<(u64, usize)> = None;
    for piece in data.chunks(chunk) {
        let mut p = piece;
        while !p.is_empty() {
            if let Some((ty, len)) = want {
                let n = (len - payload.len()).min(p.len());
                payload.extend_from_slice(&p[..n]);
                p = &p[n..];
                if payload.len() == len {
                    if let Ok(f) = Frame::decode(ty, &payload) {
                        check_round_trip(&f);
                    }
                    payload.clear();
                    want = None;
                }
                continue;
            }
            let (n, h) = reader.feed(p);
            assert!(n > 0 || p.is_empty());
            p = &p[n..];
            if let Some(h) = h {
                if h.payload_len > MAX_PAYLOAD {
                    return;
                }
                want = Some((h.frame_type, h.payload_len as usize));
                if h.payload_len == 0 {
                    if let Ok(f) = Frame::decode(h.frame_type, &[]) {
                        check_round_trip(&f);
                    }
                    want = None;
                }
            }
        }
    }
});
