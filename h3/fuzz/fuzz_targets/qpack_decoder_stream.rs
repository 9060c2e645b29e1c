//! QPACK decoder-stream instructions, parsed alone (with a re-encode check)
//! and fed in pieces to an encoder that has sections outstanding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tarte_h3::qpack::instructions::DecoderInstruction;
use tarte_h3::qpack::Encoder;
use tarte_h3::Header;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };

    let mut rest = data;
    while let Ok(Some((instr, used))) = DecoderInstruction::parse(rest) {
        let mut out = Vec::new();
        instr.emit(&mut out);
        assert_eq!(
            DecoderInstruction::parse(&out),
            Ok(Some((instr, out.len())))
        );
        rest = &rest[used..];
    }

    let mut enc = Encoder::new();
    enc.on_peer_settings(512, 4).unwrap();
    for stream in 0..6u64 {
        let list = [Header::new(b"x-fuzz", format!("value {stream}").as_bytes())];
        let mut section = Vec::new();
        enc.encode(stream * 4, &list, &mut section).unwrap();
    }
    for piece in data.chunks(usize::from(split) + 1) {
        if enc.feed_decoder_stream(piece).is_err() {
            return;
        }
        assert!(enc.known_received_count() <= enc.table().insert_count());
        assert!(enc.blocked_streams() <= 4);
    }
    // The encoder keeps working after whatever the decoder said.
    let mut section = Vec::new();
    enc.encode(100, &[Header::new(b"x-after", b"1")], &mut section)
        .unwrap();
});
