#![no_main]
//! Frame decoding for every packet type; whatever decodes must re-encode
//! into exactly its wire_len and decode back to the same frame.

use libfuzzer_sys::fuzz_target;
use tarte::frame::Frame;
use tarte::octets::{Octets, OctetsMut};
use tarte::Type;

fuzz_target!(|data: &[u8]| {
    for ty in [Type::Initial, Type::ZeroRTT, Type::Handshake, Type::Short] {
        let mut b = Octets::with_slice(data);
        while b.cap() > 0 {
            let Ok(frame) = Frame::from_bytes(&mut b, ty) else {
                break;
            };
            let mut out = vec![0u8; frame.wire_len()];
            let n = frame
                .to_bytes(&mut OctetsMut::with_slice(&mut out))
                .expect("a decoded frame re-encodes within its wire_len");
            assert_eq!(n, out.len());
            if let Frame::Ack { ranges, .. } = &frame {
                for r in ranges.iter() {
                    assert!(r.start() <= r.end());
                }
            }
            let again = Frame::from_bytes(&mut Octets::with_slice(&out), ty).expect("re-decodes");
            assert_eq!(again.frame_type(), frame.frame_type());
        }
    }
});
