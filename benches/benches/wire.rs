//! Wire-layer benchmarks: header parsing, 1-RTT packet protection per
//! cipher against the raw BoringSSL AEAD ceiling measured in the same run,
//! and frame encode/decode.
#![allow(missing_docs)]

use std::hint::black_box;
use std::ops::RangeInclusive;

use boring::aead::{AeadCtx, Algorithm as BoringAead};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tarte::crypto::{Algorithm, DirectionalKeys, TAG_LEN};
use tarte::frame::{AckRanges, Frame};
use tarte::octets::{Octets, OctetsMut};
use tarte::packet;
use tarte::Type;

/// A 1350-byte 1-RTT datagram: 1 + 8-byte DCID + 4-byte packet number,
/// 1321 bytes of payload, 16-byte tag.
const DATAGRAM: usize = 1350;
const DCID_LEN: usize = 8;
const PN_OFF: usize = 1 + DCID_LEN;
const PN_LEN: usize = 4;
const PAYLOAD: usize = DATAGRAM - PN_OFF - PN_LEN - TAG_LEN;

fn short_header(buf: &mut [u8], pn: u64) {
    buf[0] = 0x40 | 0x03;
    buf[1..PN_OFF].copy_from_slice(&[0x5a; DCID_LEN]);
    buf[PN_OFF..PN_OFF + PN_LEN].copy_from_slice(&(pn as u32).to_be_bytes());
}

fn protection(c: &mut Criterion) {
    let mut g = c.benchmark_group("protect_unprotect_1350");
    g.throughput(Throughput::Bytes(DATAGRAM as u64));
    for (name, alg, raw) in [
        ("aes128gcm", Algorithm::Aes128Gcm, BoringAead::aes_128_gcm()),
        ("aes256gcm", Algorithm::Aes256Gcm, BoringAead::aes_256_gcm()),
        (
            "chacha20",
            Algorithm::ChaCha20Poly1305,
            BoringAead::chacha20_poly1305(),
        ),
    ] {
        let secret = vec![0x11u8; alg.secret_len()];
        let keys = DirectionalKeys::from_secret(alg, &secret).unwrap();
        let mut buf = vec![0u8; DATAGRAM];
        let mut pn = 0u64;
        g.bench_function(format!("tarte/{name}"), |b| {
            b.iter(|| {
                pn += 1;
                short_header(&mut buf, pn);
                let n = packet::protect(&mut buf, PN_OFF, PN_LEN, pn, PAYLOAD, &keys).unwrap();
                let u = packet::unprotect(&mut buf[..n], PN_OFF, Some(pn - 1), &keys).unwrap();
                black_box(u.payload_len)
            })
        });

        // The ceiling: the same AEAD seal + open on the same payload and
        // associated data, with nothing around it.
        let mut ctx = AeadCtx::new_default_tag(&raw, &vec![0x22u8; alg.key_len()]).unwrap();
        let mut payload = vec![0u8; PAYLOAD];
        let mut tag = [0u8; TAG_LEN];
        let ad = [0x40u8; PN_OFF + PN_LEN];
        let mut nonce = [0u8; 12];
        g.bench_function(format!("raw_aead/{name}"), |b| {
            b.iter(|| {
                nonce[4..].copy_from_slice(&pn.to_be_bytes());
                pn += 1;
                ctx.seal_in_place_mut(&nonce, &mut payload, &mut tag, &ad)
                    .unwrap();
                ctx.open_in_place_mut(&nonce, &mut payload, &tag, &ad)
                    .unwrap();
                black_box(payload[0])
            })
        });
    }
    g.finish();
}

fn headers(c: &mut Criterion) {
    let mut g = c.benchmark_group("header_parse");
    let mut short = vec![0u8; DATAGRAM];
    short_header(&mut short, 7);
    let mut initial = vec![0u8; 1200];
    initial[..22].copy_from_slice(&[
        0xc3, 0, 0, 0, 1, 8, 0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08, 0, 0, 0x44, 0x9e, 0,
        0, 0, 2,
    ]);
    g.bench_function("short/from_slice", |b| {
        b.iter(|| {
            black_box(
                tarte::Header::from_slice(black_box(&mut short), DCID_LEN)
                    .unwrap()
                    .ty,
            )
        })
    });
    g.bench_function("short/peek", |b| {
        b.iter(|| {
            black_box(
                packet::peek(black_box(&short), DCID_LEN)
                    .unwrap()
                    .dcid
                    .len(),
            )
        })
    });
    g.bench_function("initial/from_slice", |b| {
        b.iter(|| {
            black_box(
                tarte::Header::from_slice(black_box(&mut initial), 0)
                    .unwrap()
                    .ty,
            )
        })
    });
    g.bench_function("initial/peek", |b| {
        b.iter(|| black_box(packet::peek(black_box(&initial), 0).unwrap().dcid.len()))
    });
    g.finish();
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frames");
    let data = vec![0x61u8; 1200];
    let ranges: Vec<RangeInclusive<u64>> = (0..16u64).rev().map(|i| i * 10..=i * 10 + 5).collect();
    let stream = Frame::Stream {
        stream_id: 4,
        offset: 1 << 20,
        data: &data,
        fin: false,
    };
    let ack = Frame::Ack {
        ack_delay: 100,
        ranges: AckRanges::Slice(&ranges),
        ecn: None,
    };
    let mut buf = vec![0u8; 1500];
    for (name, f) in [("stream_1200", &stream), ("ack_16_ranges", &ack)] {
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                let mut o = OctetsMut::with_slice(&mut buf);
                black_box(f.to_bytes(&mut o).unwrap())
            })
        });
        let n = f.to_bytes(&mut OctetsMut::with_slice(&mut buf)).unwrap();
        let encoded = buf[..n].to_vec();
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                let mut r = Octets::with_slice(black_box(&encoded));
                let f = Frame::from_bytes(&mut r, Type::Short).unwrap();
                if let Frame::Ack { ranges, .. } = &f {
                    black_box(ranges.iter().count());
                }
                black_box(f.frame_type())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, protection, headers, frames);
criterion_main!(benches);
