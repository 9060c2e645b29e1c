//! Connection benchmarks, one thread running both endpoints with packets
//! handed over in memory (1350-byte datagrams, CUBIC):
//! - handshakes/s with X25519 + ECDSA P-256 and with the default groups
//!   (X25519MLKEM768 first), against the crypto ceiling measured in the
//!   same run: 2 X25519 key generations + 2 derivations + ECDSA P-256 sign
//!   and verify;
//! - bulk goodput of 256 MiB on one stream, against the AEAD ceiling of
//!   sealing and opening the same number of 1350-byte packets.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use boring::aead::{AeadCtx, Algorithm as BoringAead};
use boring::derive::Deriver;
use boring::ec::{EcGroup, EcKey};
use boring::ecdsa::EcdsaSig;
use boring::nid::Nid;
use boring::pkey::{Id, PKey};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tarte::testing::{test_config, LinkConfig, Pipe};

fn zero_delay() -> LinkConfig {
    LinkConfig {
        delay: Duration::ZERO,
        ..LinkConfig::default()
    }
}

/// Configs built once, as a server reuses its Config for every
/// connection.
fn configs(curves: Option<&str>) -> (tarte::Config, tarte::Config) {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    if let Some(curves) = curves {
        c.set_curves_list(curves).unwrap();
        s.set_curves_list(curves).unwrap();
    }
    (c, s)
}

fn handshake_once(c: &mut tarte::Config, s: &mut tarte::Config) {
    let mut p = Pipe::with_configs(c, s, zero_delay(), zero_delay()).unwrap();
    p.handshake().unwrap();
    black_box(p.client.is_established());
}

fn crypto_ceiling_once(ec: &EcKey<boring::pkey::Private>, digest: &[u8; 32]) {
    let a = PKey::generate(Id::X25519).unwrap();
    let b = PKey::generate(Id::X25519).unwrap();
    let mut d = Deriver::new(&a).unwrap();
    d.set_peer(&b).unwrap();
    black_box(d.derive_to_vec().unwrap());
    let mut d = Deriver::new(&b).unwrap();
    d.set_peer(&a).unwrap();
    black_box(d.derive_to_vec().unwrap());
    let sig = EcdsaSig::sign(digest, ec).unwrap();
    assert!(sig.verify(digest, ec).unwrap());
}

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
    g.finish();
}

const BULK: usize = 256 * 1024 * 1024;

/// Moves `BULK` bytes client → server on stream 0; returns the time taken
/// and the number of datagrams the client sent.
fn bulk_once() -> (Duration, u64) {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    for cfg in [&mut c, &mut s] {
        cfg.set_cc_algorithm(tarte::CongestionControlAlgorithm::CUBIC);
        cfg.enable_pacing(false);
        cfg.set_initial_max_data(64 << 20);
        cfg.set_initial_max_stream_data_bidi_local(32 << 20);
        cfg.set_initial_max_stream_data_bidi_remote(32 << 20);
        cfg.set_max_connection_window(64 << 20);
        cfg.set_max_stream_window(32 << 20);
    }
    let mut p = Pipe::with_configs(&mut c, &mut s, zero_delay(), zero_delay()).unwrap();
    p.handshake().unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    let mut buf = vec![0u8; 1 << 20];
    let (mut sent, mut got) = (0usize, 0usize);
    let start = Instant::now();
    while got < BULK {
        while sent < BULK {
            let n = (BULK - sent).min(chunk.len());
            match p.client.stream_send(0, &chunk[..n], sent + n == BULK) {
                Ok(k) => sent += k,
                Err(tarte::Error::Done) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        while let Ok((n, _)) = p.server.stream_recv(0, &mut buf) {
            got += n;
        }
        if !p.advance().unwrap() {
            break;
        }
    }
    assert_eq!(got, BULK);
    (start.elapsed(), p.c2s.sent)
}

/// The AEAD ceiling: seal + open of `packets` 1350-byte packets.
fn aead_ceiling(packets: u64) -> Duration {
    let mut ctx = AeadCtx::new_default_tag(&BoringAead::aes_128_gcm(), &[9u8; 16]).unwrap();
    let mut payload = vec![0u8; 1350 - 13 - 16];
    let mut tag = [0u8; 16];
    let ad = [0u8; 13];
    let start = Instant::now();
    for pn in 0..packets {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&pn.to_be_bytes());
        ctx.seal_in_place_mut(&nonce, &mut payload, &mut tag, &ad)
            .unwrap();
        ctx.open_in_place_mut(&nonce, &mut payload, &tag, &ad)
            .unwrap();
    }
    black_box(&payload);
    start.elapsed()
}

fn bulk(c: &mut Criterion) {
    let mut g = c.benchmark_group("bulk_256MiB");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(BULK as u64));
    g.bench_function("tarte/one_stream_cubic", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| bulk_once().0).sum())
    });
    // The same number of packets through the bare AEAD.
    let (_, packets) = bulk_once();
    g.bench_function("ceiling/aead_seal_open_same_packets", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| aead_ceiling(packets)).sum())
    });
    g.finish();
}

criterion_group!(benches, handshakes, bulk);
criterion_main!(benches);
