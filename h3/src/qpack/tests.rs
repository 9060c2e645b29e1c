//! Encoder/decoder tests: RFC 9204 Appendix B byte for byte, round trips,
//! eviction, blocked streams and malformed input.

use super::*;
use crate::{Header, NameValue};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

fn hdrs(list: &[(&str, &str)]) -> Vec<Header> {
    list.iter()
        .map(|(n, v)| Header::new(n.as_bytes(), v.as_bytes()))
        .collect()
}

fn headers(d: Decoded) -> Vec<Header> {
    match d {
        Decoded::Headers(h) => h,
        Decoded::Blocked => panic!("unexpectedly blocked"),
    }
}

fn enc_stream(e: &mut Encoder) -> Vec<u8> {
    let mut v = vec![];
    e.emit_encoder_stream(&mut v);
    v
}

fn dec_stream(d: &mut Decoder) -> Vec<u8> {
    let mut v = vec![];
    d.emit_decoder_stream(&mut v);
    v
}

/// The whole of RFC 9204 Appendix B, one exchange after the other, checking
/// the encoder's section and encoder-stream bytes, the decoder's results and
/// decoder-stream bytes, and both tables.
#[test]
fn rfc9204_appendix_b() {
    let mut enc = Encoder::new();
    enc.set_huffman(false);
    let mut dec = Decoder::new(220, 100);

    // B.1: Literal Field Line with Name Reference, no dynamic table yet.
    let mut section = vec![];
    enc.encode(0, &hdrs(&[(":path", "/index.html")]), &mut section)
        .unwrap();
    assert_eq!(section, unhex("0000 510b 2f69 6e64 6578 2e68 746d 6c"));
    assert!(enc_stream(&mut enc).is_empty());
    assert_eq!(
        headers(dec.decode(0, &section).unwrap()),
        hdrs(&[(":path", "/index.html")])
    );
    assert!(dec_stream(&mut dec).is_empty());

    // B.2: Dynamic Table.
    enc.on_peer_settings(220, 100).unwrap();
    let mut section = vec![];
    let list = hdrs(&[(":authority", "www.example.com"), (":path", "/sample/path")]);
    enc.encode(4, &list, &mut section).unwrap();
    let encoder_stream = enc_stream(&mut enc);
    assert_eq!(
        encoder_stream,
        unhex(
            "3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468"
        )
    );
    assert_eq!(section, unhex("0381 10 11"));
    assert_eq!(enc.table().size(), 106);
    assert_eq!(enc.blocked_streams(), 1);
    dec.feed_encoder_stream(&encoder_stream).unwrap();
    assert_eq!(dec.table().size(), 106);
    assert_eq!(headers(dec.decode(4, &section).unwrap()), list);
    let decoder_stream = dec_stream(&mut dec);
    assert_eq!(decoder_stream, unhex("84"));
    enc.feed_decoder_stream(&decoder_stream).unwrap();
    assert_eq!(enc.known_received_count(), 2);
    assert_eq!(enc.blocked_streams(), 0);

    // B.3: Speculative Insert.
    assert_eq!(enc.insert(b"custom-key", b"custom-value").unwrap(), 2);
    let encoder_stream = enc_stream(&mut enc);
    assert_eq!(
        encoder_stream,
        unhex("4a63 7573 746f 6d2d 6b65 790c 6375 7374 6f6d 2d76 616c 7565")
    );
    assert_eq!(enc.table().size(), 160);
    dec.feed_encoder_stream(&encoder_stream).unwrap();
    let decoder_stream = dec_stream(&mut dec);
    assert_eq!(decoder_stream, unhex("01"));
    enc.feed_decoder_stream(&decoder_stream).unwrap();
    assert_eq!(enc.known_received_count(), 3);

    // B.4: Duplicate Instruction, Stream Cancellation.
    let mut section = vec![];
    let list = hdrs(&[
        (":authority", "www.example.com"),
        (":path", "/"),
        ("custom-key", "custom-value"),
    ]);
    enc.encode(8, &list, &mut section).unwrap();
    let encoder_stream = enc_stream(&mut enc);
    assert_eq!(encoder_stream, unhex("02"));
    assert_eq!(section, unhex("0500 80 c1 81"));
    assert_eq!(enc.table().size(), 217);
    // The encoder-stream packet is delayed: the section blocks ...
    assert_eq!(dec.decode(8, &section).unwrap(), Decoded::Blocked);
    assert_eq!(dec.blocked_streams(), 1);
    // ... and the stream is cancelled before it arrives.
    dec.cancel_stream(8);
    assert_eq!(dec.blocked_streams(), 0);
    let decoder_stream = dec_stream(&mut dec);
    assert_eq!(decoder_stream, unhex("48"));
    enc.feed_decoder_stream(&decoder_stream).unwrap();
    assert_eq!(enc.blocked_streams(), 0);
    dec.feed_encoder_stream(&encoder_stream).unwrap();
    assert!(
        dec.poll_unblocked().is_none(),
        "a cancelled section never comes back"
    );
    assert_eq!(dec.table().size(), 217);

    // B.5: Dynamic Table Insert, Eviction.
    assert_eq!(enc.insert(b"custom-key", b"custom-value2").unwrap(), 4);
    let encoder_stream = enc_stream(&mut enc);
    assert_eq!(
        encoder_stream,
        unhex("810d 6375 7374 6f6d 2d76 616c 7565 32")
    );
    assert_eq!(enc.table().size(), 215);
    assert_eq!(enc.table().first_index(), 1);
    dec.feed_encoder_stream(&encoder_stream).unwrap();
    let t = dec.table();
    assert_eq!(t.size(), 215);
    assert_eq!(t.first_index(), 1);
    assert_eq!(t.get(0), None);
    assert_eq!(t.get(1), Some((&b":path"[..], &b"/sample/path"[..])));
    assert_eq!(t.get(2), Some((&b"custom-key"[..], &b"custom-value"[..])));
    assert_eq!(
        t.get(3),
        Some((&b":authority"[..], &b"www.example.com"[..]))
    );
    assert_eq!(t.get(4), Some((&b"custom-key"[..], &b"custom-value2"[..])));
}

/// The decoder side of Appendix B fed straight from the RFC's bytes.
#[test]
fn rfc9204_appendix_b_decoder_only() {
    let mut dec = Decoder::new(220, 1);
    assert_eq!(
        headers(
            dec.decode(0, &unhex("0000 510b 2f69 6e64 6578 2e68 746d 6c"))
                .unwrap()
        ),
        hdrs(&[(":path", "/index.html")])
    );
    // B.2 with the section arriving before the encoder stream: blocked.
    assert_eq!(
        dec.decode(4, &unhex("0381 10 11")).unwrap(),
        Decoded::Blocked
    );
    // Byte by byte through the encoder stream.
    for b in unhex(
        "3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468",
    ) {
        dec.feed_encoder_stream(&[b]).unwrap();
    }
    let (stream, list) = dec.poll_unblocked().unwrap();
    assert_eq!(stream, 4);
    assert_eq!(
        list.unwrap(),
        hdrs(&[(":authority", "www.example.com"), (":path", "/sample/path")])
    );
    assert!(dec.poll_unblocked().is_none());
    assert_eq!(dec_stream(&mut dec), unhex("84"));
}

fn request() -> Vec<Header> {
    hdrs(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "example.net"),
        (":path", "/style.css"),
        ("user-agent", "tarte/0.1 (like curl)"),
        ("accept", "text/css,*/*;q=0.1"),
        ("accept-encoding", "gzip, deflate, br"),
        ("priority", "u=0"),
        ("x-custom", ""),
        ("authorization", "Bearer secret"),
    ])
}

/// Runs `rounds` requests through an encoder/decoder pair, delivering the
/// streams in order, and returns the total section bytes.
fn exchange(enc: &mut Encoder, dec: &mut Decoder, rounds: u64) -> usize {
    let mut total = 0;
    for i in 0..rounds {
        let mut list = request();
        list.push(Header::new(b"x-request", format!("{i}").as_bytes()));
        let mut section = vec![];
        enc.encode(i * 4, &list, &mut section).unwrap();
        total += section.len();
        dec.feed_encoder_stream(&enc_stream(enc)).unwrap();
        assert_eq!(headers(dec.decode(i * 4, &section).unwrap()), list);
        enc.feed_decoder_stream(&dec_stream(dec)).unwrap();
    }
    total
}

#[test]
fn round_trip_static_only() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new(0, 0);
    exchange(&mut enc, &mut dec, 3);
    assert_eq!(dec.table().insert_count(), 0);
    let mut bytes = vec![];
    enc.emit_encoder_stream(&mut bytes);
    assert!(
        bytes.is_empty(),
        "no encoder instructions with capacity 0 (§3.2.3)"
    );
}

#[test]
fn round_trip_dynamic_table_shrinks_sections() {
    let mut baseline = Encoder::new();
    let mut static_section = vec![];
    baseline.encode(0, &request(), &mut static_section).unwrap();

    let mut enc = Encoder::new();
    enc.on_peer_settings(4096, 16).unwrap();
    let mut dec = Decoder::new(4096, 16);
    exchange(&mut enc, &mut dec, 1);
    let inserts = dec.table().insert_count();
    assert!(inserts >= 6, "{inserts}");
    // The same request again: no insert, every line a reference.
    let next = exchange(&mut enc, &mut dec, 1);
    assert_eq!(dec.table().insert_count(), inserts);
    assert!(
        next < static_section.len() / 2,
        "{next} vs {}",
        static_section.len()
    );
    // The sensitive value never entered the table.
    for abs in dec.table().first_index()..dec.table().insert_count() {
        assert_ne!(dec.table().get(abs).unwrap().0, b"authorization");
    }
}

#[test]
fn round_trip_many_with_eviction() {
    let mut enc = Encoder::new();
    enc.on_peer_settings(256, 4).unwrap();
    let mut dec = Decoder::new(256, 4);
    exchange(&mut enc, &mut dec, 200);
    assert!(dec.table().insert_count() > 20);
    assert!(dec.table().first_index() > 0, "entries were evicted");
    assert!(dec.table().size() <= 256);
}

#[test]
fn huffman_and_literal_names_round_trip() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new(0, 0);
    let list = vec![
        Header::new(b"x-binary", &(0..=255u8).collect::<Vec<_>>()),
        Header::new(b"", b""),
        Header::new(&[b'n'; 300], &[b'v'; 5000]),
    ];
    let mut section = vec![];
    enc.encode(0, &list, &mut section).unwrap();
    assert_eq!(headers(dec.decode(0, &section).unwrap()), list);
}

/// With no acknowledgments, an encoder allowed 0 blocked streams inserts
/// but never references unacknowledged entries, so nothing blocks.
#[test]
fn no_blocking_when_not_allowed() {
    let mut enc = Encoder::new();
    enc.on_peer_settings(4096, 0).unwrap();
    let mut dec = Decoder::new(4096, 0);
    let mut section = vec![];
    enc.encode(0, &request(), &mut section).unwrap();
    assert_eq!(section[0], 0, "Required Insert Count 0");
    // Deliver the section before the encoder stream: decodes right away.
    assert_eq!(headers(dec.decode(0, &section).unwrap()), request());
    dec.feed_encoder_stream(&enc_stream(&mut enc)).unwrap();
    enc.feed_decoder_stream(&dec_stream(&mut dec)).unwrap();
    // Now acknowledged: the next section uses the table without blocking.
    let mut section2 = vec![];
    enc.encode(4, &request(), &mut section2).unwrap();
    assert!(section2.len() < section.len() / 2);
    assert!(enc_stream(&mut enc).is_empty());
    assert_eq!(headers(dec.decode(4, &section2).unwrap()), request());
}

/// The encoder blocks at most SETTINGS_QPACK_BLOCKED_STREAMS streams.
#[test]
fn encoder_respects_blocked_streams_limit() {
    let mut enc = Encoder::new();
    enc.on_peer_settings(4096, 2).unwrap();
    let mut dec = Decoder::new(4096, 2);
    let mut sections = vec![];
    for i in 0..4u64 {
        let list = hdrs(&[("x-stream", &format!("value-{i}"))]);
        let mut s = vec![];
        enc.encode(i * 4, &list, &mut s).unwrap();
        sections.push((i * 4, s, list));
    }
    assert_eq!(enc.blocked_streams(), 2);
    // Sections arrive before the encoder stream: exactly two block.
    let mut blocked = 0;
    for (id, s, list) in &sections {
        match dec.decode(*id, s).unwrap() {
            Decoded::Blocked => blocked += 1,
            Decoded::Headers(h) => assert_eq!(&h, list),
        }
    }
    assert_eq!(blocked, 2);
    dec.feed_encoder_stream(&enc_stream(&mut enc)).unwrap();
    let mut unblocked = vec![];
    while let Some((id, r)) = dec.poll_unblocked() {
        let list = &sections.iter().find(|s| s.0 == id).unwrap().2;
        assert_eq!(&r.unwrap(), list);
        unblocked.push(id);
    }
    unblocked.sort();
    assert_eq!(unblocked, [0, 4]);
    enc.feed_decoder_stream(&dec_stream(&mut dec)).unwrap();
    assert_eq!(enc.blocked_streams(), 0);
    assert_eq!(enc.known_received_count(), enc.table().insert_count());
}

/// Entries referenced by unacknowledged sections are never evicted: the
/// encoder falls back to literals instead.
#[test]
fn encoder_never_evicts_referenced_entries() {
    let mut enc = Encoder::new();
    enc.on_peer_settings(200, 10).unwrap();
    let mut dec = Decoder::new(200, 10);
    // Each entry is ~80 bytes: two fit.
    let list = |i: u64| hdrs(&[("x-long-header-name", &format!("{i:0>40}"))]);
    let mut pending = vec![];
    for i in 0..6u64 {
        let mut s = vec![];
        enc.encode(i * 4, &list(i), &mut s).unwrap();
        pending.push((i * 4, s));
    }
    // Nothing acknowledged: only two inserts were possible.
    assert_eq!(enc.table().insert_count(), 2);
    dec.feed_encoder_stream(&enc_stream(&mut enc)).unwrap();
    for (i, (id, s)) in pending.iter().enumerate() {
        assert_eq!(headers(dec.decode(*id, s).unwrap()), list(i as u64));
    }
    enc.feed_decoder_stream(&dec_stream(&mut dec)).unwrap();
    // Acknowledged and unreferenced now: the next insert may evict.
    let mut s = vec![];
    enc.encode(100, &list(99), &mut s).unwrap();
    assert_eq!(enc.table().insert_count(), 3);
    assert_eq!(enc.table().first_index(), 1);
    dec.feed_encoder_stream(&enc_stream(&mut enc)).unwrap();
    assert_eq!(headers(dec.decode(100, &s).unwrap()), list(99));
}

#[test]
fn stream_cancellation_releases_references() {
    let mut enc = Encoder::new();
    enc.on_peer_settings(100, 10).unwrap();
    let mut s = vec![];
    enc.encode(
        0,
        &hdrs(&[("x-a", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]),
        &mut s,
    )
    .unwrap();
    assert_eq!(enc.table().insert_count(), 1);
    // Received but section still referenced: no room for a second entry.
    enc.feed_decoder_stream(&[0x01]).unwrap();
    let mut s2 = vec![];
    enc.encode(
        4,
        &hdrs(&[("x-b", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")]),
        &mut s2,
    )
    .unwrap();
    assert_eq!(enc.table().insert_count(), 1);
    // Stream Cancellation (stream 0) frees entry 0.
    enc.feed_decoder_stream(&[0x40]).unwrap();
    let mut s3 = vec![];
    enc.encode(
        8,
        &hdrs(&[("x-b", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")]),
        &mut s3,
    )
    .unwrap();
    assert_eq!(enc.table().insert_count(), 2);
    assert_eq!(enc.table().first_index(), 1);
}

#[test]
fn encoder_rejects_bad_decoder_stream() {
    let mut enc = Encoder::new();
    enc.on_peer_settings(4096, 10).unwrap();
    // Insert Count Increment of zero.
    assert!(matches!(
        enc.feed_decoder_stream(&[0x00]),
        Err(Error::DecoderStream(_))
    ));
    // Increment beyond the inserts.
    let mut enc = Encoder::new();
    enc.on_peer_settings(4096, 10).unwrap();
    assert!(matches!(
        enc.feed_decoder_stream(&[0x01]),
        Err(Error::DecoderStream(_))
    ));
    // Acknowledgment of a stream with nothing outstanding.
    let mut enc = Encoder::new();
    assert!(matches!(
        enc.feed_decoder_stream(&[0x84]),
        Err(Error::DecoderStream(_))
    ));
    // Overlong integer.
    let mut enc = Encoder::new();
    let mut w = vec![0xff];
    w.extend([0x80; 12]);
    assert!(matches!(
        enc.feed_decoder_stream(&w),
        Err(Error::DecoderStream(_))
    ));
    // Split instruction is fine.
    let mut enc = Encoder::new();
    enc.on_peer_settings(4096, 10).unwrap();
    let mut s = vec![];
    enc.encode(1000, &hdrs(&[("x-a", "b")]), &mut s).unwrap();
    // Section Ack for stream 1000: 0xff 0xe9 0x06.
    enc.feed_decoder_stream(&[0xff]).unwrap();
    enc.feed_decoder_stream(&[0xe9]).unwrap();
    assert_eq!(enc.blocked_streams(), 1);
    enc.feed_decoder_stream(&[0x06]).unwrap();
    assert_eq!(enc.blocked_streams(), 0);
    assert_eq!(enc.known_received_count(), 1);
}

#[test]
fn encoder_capacity_rules() {
    let mut enc = Encoder::new();
    enc.set_capacity_limit(1000);
    enc.on_peer_settings(5000, 0).unwrap();
    assert_eq!(enc.table().capacity(), 1000);
    assert!(enc.set_capacity(6000).is_err());
    let mut enc = Encoder::new();
    enc.on_peer_settings(100, 10).unwrap();
    let mut s = vec![];
    enc.encode(0, &hdrs(&[("x-a", "a")]), &mut s).unwrap();
    // Shrinking to 0 would evict an entry the decoder has not acknowledged.
    assert!(enc.set_capacity(0).is_err());
}

// --- Decoder: malformed input -------------------------------------------

fn dec_err(dec: &mut Decoder, section: &[u8]) -> Error {
    dec.decode(0, section).unwrap_err()
}

#[test]
fn decoder_rejects_bad_sections() {
    let mut dec = Decoder::new(220, 1);
    let df = |e: Error| matches!(e, Error::DecompressionFailed(_));
    // Empty or truncated prefix.
    assert!(df(dec_err(&mut dec, &[])));
    assert!(df(dec_err(&mut dec, &[0x00])));
    // Encoded Required Insert Count above 2 * MaxEntries (12).
    assert!(df(dec_err(&mut dec, &[0x0e, 0x00])));
    // Negative Base: RIC 1 (encoded 2), sign, delta 1.
    assert!(df(dec_err(&mut dec, &[0x02, 0x81])));
    // Static index out of range (99).
    assert!(df(dec_err(&mut dec, &[0x00, 0x00, 0xff, 0x24])));
    // Dynamic reference with Required Insert Count 0.
    assert!(df(dec_err(&mut dec, &[0x00, 0x00, 0x80])));
    assert!(df(dec_err(&mut dec, &[0x00, 0x00, 0x10])));
    assert!(df(dec_err(&mut dec, &[0x00, 0x00, 0x40, 0x00])));
    assert!(df(dec_err(&mut dec, &[0x00, 0x00, 0x00, 0x00])));
    // Truncated literal.
    assert!(df(dec_err(&mut dec, &[0x00, 0x00, 0x51, 0x0b, b'/'])));
    // Bad Huffman value: 8 bits of padding.
    assert!(df(dec_err(&mut dec, &[0x00, 0x00, 0x51, 0x81, 0xff])));
    // EOS inside a Huffman name.
    assert!(df(dec_err(
        &mut dec,
        &[0x00, 0x00, 0x2c, 0xff, 0xff, 0xff, 0xff, 0x00]
    )));
    // Overlong integer.
    let mut w = vec![0x00, 0x00, 0xff];
    w.extend([0x80; 12]);
    assert!(df(dec_err(&mut dec, &w)));
    // Huge string length.
    assert!(df(dec_err(
        &mut dec,
        &[0x00, 0x00, 0x51, 0x7f, 0xff, 0xff, 0xff, 0x7f]
    )));
    // Decoder still works afterwards.
    assert!(dec.decode(0, &[0x00, 0x00, 0xd1]).is_ok());
}

#[test]
fn decoder_rejects_bad_dynamic_references() {
    let mut dec = Decoder::new(220, 1);
    // Two entries, as in B.2.
    dec.feed_encoder_stream(&unhex(
        "3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468",
    ))
    .unwrap();
    // RIC 2, Base 2: relative index 2 would be absolute -1.
    assert!(matches!(
        dec.decode(0, &[0x03, 0x00, 0x82]),
        Err(Error::DecompressionFailed(_))
    ));
    // RIC 1, Base 1, post-base index 0 = absolute 1 >= RIC.
    assert!(matches!(
        dec.decode(0, &[0x02, 0x00, 0x10]),
        Err(Error::DecompressionFailed(_))
    ));
    // RIC 2 but only entry 0 referenced: larger than needed.
    assert!(matches!(
        dec.decode(0, &[0x03, 0x00, 0x81]),
        Err(Error::DecompressionFailed(_))
    ));
    // RIC 2 with no dynamic reference at all.
    assert!(matches!(
        dec.decode(0, &[0x03, 0x00, 0xd1]),
        Err(Error::DecompressionFailed(_))
    ));
    // Correct: RIC 2, Base 2, relative 0 (abs 1) and 1 (abs 0).
    assert_eq!(
        headers(dec.decode(0, &[0x03, 0x00, 0x80, 0x81]).unwrap()),
        hdrs(&[(":path", "/sample/path"), (":authority", "www.example.com")])
    );
    // Literal with dynamic name reference and post-base name reference.
    assert_eq!(
        headers(
            dec.decode(4, &[0x03, 0x81, 0x01, 0x01, b'x', 0x00, 0x01, b'y'])
                .unwrap()
        ),
        hdrs(&[(":path", "x"), (":authority", "y")])
    );
}

#[test]
fn decoder_evicted_reference() {
    let mut dec = Decoder::new(100, 1);
    // Capacity 100; three inserts of 32+3+10=45: the first is evicted.
    dec.feed_encoder_stream(&[0x3f, 0x45]).unwrap();
    for v in ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"] {
        let mut w = vec![];
        instructions::emit_insert_with_literal_name(b"x-a", v.as_bytes(), false, &mut w);
        dec.feed_encoder_stream(&w).unwrap();
    }
    assert_eq!(dec.table().first_index(), 1);
    // RIC 3 (MaxEntries 3, encoded 3 % 6 + 1 = 4), Base 3: relative 2 = abs 0.
    assert!(matches!(
        dec.decode(0, &[0x04, 0x00, 0x80, 0x82]),
        Err(Error::DecompressionFailed(_))
    ));
}

#[test]
fn decoder_rejects_bad_encoder_stream() {
    let es = |e: Result<()>| matches!(e, Err(Error::EncoderStream(_)));
    // Capacity above our maximum.
    assert!(es(Decoder::new(100, 0).feed_encoder_stream(&[0x3f, 0x46])));
    // Insert into a zero-capacity table.
    assert!(es(
        Decoder::new(100, 0).feed_encoder_stream(&[0xc0, 0x01, b'a'])
    ));
    // Entry larger than the capacity.
    let mut d = Decoder::new(100, 0);
    d.feed_encoder_stream(&[0x3f, 0x15]).unwrap(); // capacity 52
    let mut w = vec![0xc0, 0x12];
    w.extend([b'a'; 0x12]);
    assert!(es(d.feed_encoder_stream(&w)));
    // Static name index out of range.
    let mut d = Decoder::new(100, 0);
    d.feed_encoder_stream(&[0x3f, 0x45]).unwrap();
    assert!(es(d.feed_encoder_stream(&[0xff, 0x24, 0x00])));
    // Dynamic name reference and duplicate with an empty table.
    let mut d = Decoder::new(100, 0);
    d.feed_encoder_stream(&[0x3f, 0x45]).unwrap();
    assert!(es(d.feed_encoder_stream(&[0x80, 0x00])));
    assert!(es(d.feed_encoder_stream(&[0x00])));
    // A literal longer than the capacity could ever hold is refused from
    // its length, before its bytes arrive.
    let mut d = Decoder::new(100, 0);
    assert!(es(d.feed_encoder_stream(&[0x5f, 0xff, 0x7f])));
    // Bad Huffman.
    let mut d = Decoder::new(100, 0);
    d.feed_encoder_stream(&[0x3f, 0x45]).unwrap();
    assert!(es(d.feed_encoder_stream(&[0xc0, 0x81, 0xff])));
    // Overlong integer.
    let mut d = Decoder::new(100, 0);
    let mut w = vec![0x3f];
    w.extend([0x80; 12]);
    assert!(es(d.feed_encoder_stream(&w)));
}

#[test]
fn decoder_blocked_streams_limit() {
    let mut dec = Decoder::new(220, 1);
    // RIC 1 with an empty table blocks.
    assert_eq!(
        dec.decode(0, &[0x02, 0x00, 0x80]).unwrap(),
        Decoded::Blocked
    );
    // A second blocked stream is over the limit.
    assert!(matches!(
        dec.decode(4, &[0x02, 0x00, 0x80]),
        Err(Error::DecompressionFailed(_))
    ));
    // Zero allowed: the first already fails.
    let mut dec = Decoder::new(220, 0);
    assert!(matches!(
        dec.decode(0, &[0x02, 0x00, 0x80]),
        Err(Error::DecompressionFailed(_))
    ));
}

#[test]
fn unblocked_section_with_bad_reference_fails_later() {
    let mut dec = Decoder::new(220, 4);
    // RIC 1, Base 1, but references relative 1 (abs -1).
    assert_eq!(
        dec.decode(0, &[0x02, 0x00, 0x81]).unwrap(),
        Decoded::Blocked
    );
    dec.feed_encoder_stream(&[0x3f, 0xbd, 0x01, 0xc0, 0x01, b'a'])
        .unwrap();
    let (id, r) = dec.poll_unblocked().unwrap();
    assert_eq!(id, 0);
    assert!(matches!(r, Err(Error::DecompressionFailed(_))));
}

#[test]
fn max_field_section_size() {
    let mut dec = Decoder::new(0, 0);
    // :path /index.html = 5 + 11 + 32 = 48 bytes.
    let section = unhex("0000 510b 2f69 6e64 6578 2e68 746d 6c");
    dec.set_max_field_section_size(Some(47));
    assert_eq!(
        dec.decode(0, &section),
        Err(Error::FieldSectionTooLarge { limit: 47 })
    );
    dec.set_max_field_section_size(Some(48));
    assert!(dec.decode(0, &section).is_ok());
}

#[test]
fn encoder_stream_buffer_is_bounded() {
    // Maximum capacity 64: a string may be at most 4*64+8 bytes on the wire;
    // a longer one errors out as soon as its length is known instead of
    // being buffered.
    let mut d = Decoder::new(64, 0);
    d.feed_encoder_stream(&[0x3f, 0x21]).unwrap();
    let mut w = vec![0xc0];
    prefix_int::encode_int(265, 7, 0, &mut w);
    assert!(matches!(
        d.feed_encoder_stream(&w),
        Err(Error::EncoderStream(_))
    ));
}

#[test]
fn name_value_for_tuples() {
    let t = (b"a".to_vec(), "b");
    assert_eq!(t.name(), b"a");
    assert_eq!(t.value(), b"b");
    let mut enc = Encoder::new();
    let mut out = vec![];
    enc.encode(0, &[(":method", "GET")], &mut out).unwrap();
    assert_eq!(out, [0x00, 0x00, 0xd1]);
}
