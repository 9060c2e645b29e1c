//! QPACK encoder-stream instructions: the decoder fed in pieces (sizes
//! from the first byte) must agree with feeding everything at once, and
//! every parsed instruction must re-encode to something that parses back
//! to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tarte_h3::qpack::instructions::EncoderInstruction;
use tarte_h3::qpack::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };

    let mut rest = data;
    while let Ok(Some((instr, used))) = EncoderInstruction::parse(rest, 1 << 16) {
        for huffman in [false, true] {
            let mut out = Vec::new();
            instr.emit(huffman, &mut out);
            assert_eq!(
                EncoderInstruction::parse(&out, 1 << 16),
                Ok(Some((instr.clone(), out.len())))
            );
        }
        rest = &rest[used..];
    }

    let mut whole = Decoder::new(1024, 4);
    let r_whole = whole.feed_encoder_stream(data);
    let mut pieces = Decoder::new(1024, 4);
    let mut r_pieces = Ok(());
    for piece in data.chunks(usize::from(split) + 1) {
        r_pieces = pieces.feed_encoder_stream(piece);
        if r_pieces.is_err() {
            break;
        }
    }
    assert_eq!(r_whole.is_ok(), r_pieces.is_ok());
    if r_whole.is_ok() {
        let (a, b) = (whole.table(), pieces.table());
        assert_eq!(a.insert_count(), b.insert_count());
        assert_eq!(a.size(), b.size());
        assert!(a.size() <= a.capacity() && a.capacity() <= 1024);
        for abs in a.first_index()..a.insert_count() {
            assert_eq!(a.get(abs), b.get(abs));
        }
    }
});
