//! Encoder and decoder agree: arbitrary header lists (from the input) go
//! through an encoder/decoder pair with a small dynamic table; sections
//! are delivered before or after the encoder stream as the input says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tarte_h3::qpack::{Decoded, Decoder, Encoder};
use tarte_h3::Header;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let cap = u64::from(flags & 0x0f) * 32;
    let blocked = u64::from(flags >> 4 & 0x03);
    let mut enc = Encoder::new();
    enc.set_huffman(flags & 0x40 != 0);
    enc.on_peer_settings(cap, blocked).unwrap();
    let mut dec = Decoder::new(cap, blocked);

    // Lists separated by 0xff; fields by 0xfe; name and value by 0xfd.
    for (i, list) in data.split(|&b| b == 0xff).enumerate() {
        let headers: Vec<Header> = list
            .split(|&b| b == 0xfe)
            .map(|f| {
                let mut nv = f.splitn(2, |&b| b == 0xfd);
                Header::new(nv.next().unwrap_or(&[]), nv.next().unwrap_or(&[]))
            })
            .collect();
        let stream = i as u64 * 4;
        let mut section = Vec::new();
        enc.encode(stream, &headers, &mut section).unwrap();
        let mut es = Vec::new();
        enc.emit_encoder_stream(&mut es);
        let early = flags & 0x80 != 0;
        let decoded = if early {
            let d = dec.decode(stream, &section).unwrap();
            dec.feed_encoder_stream(&es).unwrap();
            match d {
                Decoded::Headers(h) => h,
                Decoded::Blocked => {
                    let (id, h) = dec.poll_unblocked().expect("unblocked");
                    assert_eq!(id, stream);
                    h.unwrap()
                }
            }
        } else {
            dec.feed_encoder_stream(&es).unwrap();
            match dec.decode(stream, &section).unwrap() {
                Decoded::Headers(h) => h,
                Decoded::Blocked => panic!("blocked with the encoder stream delivered"),
            }
        };
        assert_eq!(decoded, headers);
        let mut ds = Vec::new();
        dec.emit_decoder_stream(&mut ds);
        enc.feed_decoder_stream(&ds).unwrap();
    }
});
