//! QPACK encode + decode of a typical request and response header list,
//! with the static table only and with a 4 KiB dynamic table in steady
//! state (acknowledgments flowing back every round).
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tarte_h3::qpack::{Decoded, Decoder, Encoder};
use tarte_h3::Header;

fn request() -> Vec<Header> {
    [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "www.example.com"),
        (":path", "/assets/css/site.min.css?v=20240101"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        ("accept", "text/css,*/*;q=0.1"),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("referer", "https://www.example.com/"),
        ("cookie", "session=8c4f3a1b2d9e; theme=dark"),
        ("priority", "u=2"),
    ]
    .iter()
    .map(|(n, v)| Header::new(n.as_bytes(), v.as_bytes()))
    .collect()
}

fn response() -> Vec<Header> {
    [
        (":status", "200"),
        ("server", "tarte"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("content-type", "text/css"),
        ("content-length", "18342"),
        ("cache-control", "public, max-age=31536000"),
        ("etag", "\"5f2b-18342-64a1c3\""),
        ("last-modified", "Sat, 01 Jun 2024 10:00:00 GMT"),
        ("vary", "accept-encoding"),
        ("alt-svc", "h3=\":443\"; ma=86400"),
        (
            "strict-transport-security",
            "max-age=31536000; includesubdomains",
        ),
    ]
    .iter()
    .map(|(n, v)| Header::new(n.as_bytes(), v.as_bytes()))
    .collect()
}

struct Pair {
    enc: Encoder,
    dec: Decoder,
    stream: u64,
    section: Vec<u8>,
    wire: Vec<u8>,
}

impl Pair {
    fn new(dynamic: bool) -> Self {
        let mut enc = Encoder::new();
        let cap = if dynamic { 4096 } else { 0 };
        enc.on_peer_settings(cap, 100).unwrap();
        Pair {
            enc,
            dec: Decoder::new(cap, 100),
            stream: 0,
            section: vec![],
            wire: vec![],
        }
    }

    /// One field section through encoder, encoder stream, decoder and
    /// decoder stream. Returns the section length.
    fn round(&mut self, list: &[Header]) -> usize {
        self.section.clear();
        self.enc
            .encode(self.stream, list, &mut self.section)
            .unwrap();
        self.wire.clear();
        self.enc.emit_encoder_stream(&mut self.wire);
        if !self.wire.is_empty() {
            self.dec.feed_encoder_stream(&self.wire).unwrap();
        }
        match self.dec.decode(self.stream, &self.section).unwrap() {
            Decoded::Headers(h) => assert_eq!(h.len(), list.len()),
            Decoded::Blocked => unreachable!("encoder stream delivered first"),
        }
        self.wire.clear();
        self.dec.emit_decoder_stream(&mut self.wire);
        if !self.wire.is_empty() {
            self.enc.feed_decoder_stream(&self.wire).unwrap();
        }
        self.stream += 4;
        self.section.len()
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("qpack");
    g.throughput(Throughput::Elements(1));
    for (name, list) in [("request", request()), ("response", response())] {
        for dynamic in [false, true] {
            let mut pair = Pair::new(dynamic);
            let first = pair.round(&list);
            let steady = pair.round(&list);
            eprintln!(
                "{name} {}: first section {first} bytes, steady state {steady} bytes",
                if dynamic { "dynamic" } else { "static" }
            );
            let id = format!("{name}/{}", if dynamic { "dynamic" } else { "static" });
            g.bench_function(format!("{id}/encode+decode"), |b| {
                b.iter(|| pair.round(&list))
            });
            let mut enc_pair = Pair::new(dynamic);
            enc_pair.round(&list);
            g.bench_function(format!("{id}/encode"), |b| {
                b.iter(|| {
                    enc_pair.section.clear();
                    enc_pair
                        .enc
                        .encode(0, &list, &mut enc_pair.section)
                        .unwrap();
                    // Acknowledge so the encoder keeps no state per round.
                    if dynamic {
                        enc_pair.enc.feed_decoder_stream(&[0x80]).unwrap();
                    }
                    enc_pair.section.len()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
