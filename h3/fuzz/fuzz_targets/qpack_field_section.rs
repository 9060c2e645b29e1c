//! The QPACK field-section decoder: the input is an encoder-stream part
//! (length in the first two bytes) followed by field sections separated by
//! their own two-byte lengths, decoded on successive streams; blocked
//! sections are polled after the encoder stream is fed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tarte_h3::qpack::{Decoded, Decoder};

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (part, rest) = rest.split_at(len);
    *data = rest;
    Some(part)
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mut dec = Decoder::new(4096, 8);
    dec.set_max_field_section_size(Some(64 * 1024));
    let Some(encoder_stream) = take(&mut data) else {
        return;
    };
    let mut stream = 0u64;
    // Sections before the encoder stream may block.
    while let Some(section) = take(&mut data) {
        match dec.decode(stream, section) {
            Ok(Decoded::Headers(h)) => assert!(h.len() <= section.len()),
            Ok(Decoded::Blocked) => assert!(dec.blocked_streams() <= 8),
            Err(_) => {}
        }
        stream += 4;
        if stream == 16 {
            if dec.feed_encoder_stream(encoder_stream).is_err() {
                return;
            }
            while dec.poll_unblocked().is_some() {}
        }
    }
    if stream < 16 && dec.feed_encoder_stream(encoder_stream).is_ok() {
        while dec.poll_unblocked().is_some() {}
    }
    // Whatever was left is decodable as-is.
    dec.decode(1000, data).ok();
    let mut out = Vec::new();
    dec.emit_decoder_stream(&mut out);
});
