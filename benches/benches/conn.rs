//! Connection benchmarks, one thread running both endpoints with packets
//! handed over in memory (1350-byte datagrams, CUBIC):
//! - handshakes/s with X25519 + ECDSA P-256 and with the default groups,
//!   and resumed (PSK + X25519) against 2 X25519 key generations + derivations
//!   (X25519MLKEM768 first), against the crypto ceiling measured in the
//!   same run: 2 X25519 key generations + 2 derivations + ECDSA P-256 sign
//!   and verify;
//! - bulk goodput of 256 MiB on one stream, whole flights per step and
//!   streaming (16 datagrams per batch, ACKs after each; also through
//!   `send_batch`/`recv_batch`, one call per batch), against the AEAD
//!   ceiling of sealing and opening the same number of 1350-byte packets.
#![allow(missing_docs)]

use std::time::Duration;

use boring::ec::{EcGroup, EcKey};
use boring::nid::Nid;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tarte_benches::{
    aead_ceiling, bulk_once, bulk_streaming_batched, bulk_streaming_once, configs,
    crypto_ceiling_once, handshake_once, resumed_handshake_once, resumption_ceiling_once,
    session_of, BULK,
};

fn handshakes(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    let (mut c1, mut s1) = configs(Some("X25519"));
    g.bench_function("tarte/x25519_ecdsa_p256", |b| {
        b.iter(|| handshake_once(&mut c1, &mut s1))
    });
    let (mut c2, mut s2) = configs(None);
    g.bench_function("tarte/default_groups", |b| {
        b.iter(|| handshake_once(&mut c2, &mut s2))
    });
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let ec = EcKey::generate(&group).unwrap();
    let digest = [7u8; 32];
    g.bench_function("ceiling/2x25519_ecdsa_sign_verify", |b| {
        b.iter(|| crypto_ceiling_once(&ec, &digest))
    });
    let session = session_of(&mut c1, &mut s1);
    g.bench_function("tarte/resumed_x25519", |b| {
        b.iter(|| resumed_handshake_once(&mut c1, &mut s1, &session))
    });
    g.bench_function("ceiling/2x25519", |b| b.iter(resumption_ceiling_once));
    g.finish();
}

fn bulk(c: &mut Criterion) {
    let mut g = c.benchmark_group("bulk_256MiB");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(BULK as u64));
    g.bench_function("tarte/one_stream_cubic", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| bulk_once().0).sum())
    });
    g.bench_function("tarte/one_stream_cubic_streaming16", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| bulk_streaming_once(16).0).sum())
    });
    g.bench_function("tarte/one_stream_cubic_batched16", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| bulk_streaming_batched(16).0).sum())
    });
    let (_, _, cs, ss) = bulk_streaming_once(16);
    eprintln!(
        "bulk streaming16: client sent {} packets ({} lost), server sent {} packets",
        cs.sent, cs.lost, ss.sent
    );
    // The same number of packets through the bare AEAD.
    let (_, packets, cs, ss) = bulk_once();
    eprintln!(
        "bulk: client sent {} packets ({} lost), server sent {} packets",
        cs.sent, cs.lost, ss.sent
    );
    g.bench_function("ceiling/aead_seal_open_same_packets", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| aead_ceiling(packets)).sum())
    });
    g.finish();
}

criterion_group!(benches, handshakes, bulk);
criterion_main!(benches);
