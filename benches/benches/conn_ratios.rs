//! One-shot report of the connection benchmarks as ratios against their
//! ceilings, each pair measured interleaved in the same run (so that the
//! machine's drift hits both sides alike):
//! - handshakes/s (X25519 + ECDSA P-256) against 2 X25519 key generations
//!   + 2 derivations + ECDSA P-256 sign and verify;
//! - resumed handshakes/s (PSK + X25519, RFC 9001 §4.5) against the same
//!   without the signature;
//! - bulk goodput of 256 MiB (whole flights, and streaming in batches of
//!   16 datagrams, the latter also with the application's data handed over
//!   by `stream_send_shared` instead of copied, and through the batch API:
//!   one `send_batch` / `recv_batch` per 16 datagrams, and per 64: the
//!   most one GSO send or GRO receive carries, `UDP_MAX_SEGMENTS`) against
//!   BoringSSL AES-128-GCM seal + open of the same number of 1350-byte
//!   packets.
//!
//! Each figure is the best of `ROUNDS` rounds. Run with
//! `cargo bench -p tarte-benches --bench conn_ratios`; the criterion
//! benches in `conn` measure the same workloads with statistics.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use boring::ec::{EcGroup, EcKey};
use boring::nid::Nid;
use tarte_benches::{
    aead_ceiling, bulk_once, bulk_streaming, bulk_streaming_batched, bulk_streaming_once, configs,
    crypto_ceiling_once, handshake_once, resumed_handshake_once, resumption_ceiling_once,
    session_of, BULK,
};

const ROUNDS: usize = 10;
const HANDSHAKES_PER_ROUND: u32 = 1000;

fn per_op(n: u32, f: impl FnMut()) -> Duration {
    let mut f = f;
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n
}

fn gbit_s(d: Duration) -> f64 {
    BULK as f64 * 8.0 / d.as_secs_f64() / 1e9
}

fn main() {
    // Criterion-style flags (`--bench`) are passed by `cargo bench`;
    // nothing to parse.
    let (mut c, mut s) = configs(Some("X25519"));
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    let ec = EcKey::generate(&group).expect("P-256 key");
    let digest = [7u8; 32];
    // Warm-up: caches, allocator, BoringSSL's one-time set-up.
    per_op(200, || handshake_once(&mut c, &mut s));
    per_op(200, || crypto_ceiling_once(&ec, &digest));
    let session = session_of(&mut c, &mut s);
    per_op(200, || resumed_handshake_once(&mut c, &mut s, &session));
    let (mut hs, mut hs_ceiling) = (Duration::MAX, Duration::MAX);
    let (mut res, mut res_ceiling) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        hs = hs.min(per_op(HANDSHAKES_PER_ROUND, || {
            handshake_once(&mut c, &mut s)
        }));
        hs_ceiling = hs_ceiling.min(per_op(HANDSHAKES_PER_ROUND, || {
            crypto_ceiling_once(&ec, &digest)
        }));
        res = res.min(per_op(HANDSHAKES_PER_ROUND, || {
            resumed_handshake_once(&mut c, &mut s, &session)
        }));
        res_ceiling = res_ceiling.min(per_op(HANDSHAKES_PER_ROUND, resumption_ceiling_once));
    }

    let (_, packets, _, _) = bulk_once();
    let (_, stream_packets, _, _) = bulk_streaming_once(16);
    let (_, shared_packets, _, _) = bulk_streaming(16, true);
    let (_, batched_packets, _, _) = bulk_streaming_batched(16);
    let (_, batched64_packets, _, _) = bulk_streaming_batched(64);
    let (mut flights, mut streaming, mut shared) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let (mut ceiling, mut stream_ceiling, mut shared_ceiling) =
        (Duration::MAX, Duration::MAX, Duration::MAX);
    let (mut batched, mut batched_ceiling) = (Duration::MAX, Duration::MAX);
    let (mut batched64, mut batched64_ceiling) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        flights = flights.min(bulk_once().0);
        ceiling = ceiling.min(aead_ceiling(packets));
        streaming = streaming.min(bulk_streaming_once(16).0);
        stream_ceiling = stream_ceiling.min(aead_ceiling(stream_packets));
        shared = shared.min(bulk_streaming(16, true).0);
        shared_ceiling = shared_ceiling.min(aead_ceiling(shared_packets));
        batched = batched.min(bulk_streaming_batched(16).0);
        batched_ceiling = batched_ceiling.min(aead_ceiling(batched_packets));
        batched64 = batched64.min(bulk_streaming_batched(64).0);
        batched64_ceiling = batched64_ceiling.min(aead_ceiling(batched64_packets));
    }

    let pct = |ceiling: Duration, d: Duration| 100.0 * ceiling.as_secs_f64() / d.as_secs_f64();
    println!("workload                          tarte                 ceiling               ratio");
    for (name, d, ceil) in [
        ("handshakes/s (X25519, P-256)", hs, hs_ceiling),
        ("resumed handshakes/s (PSK, X25519)", res, res_ceiling),
    ] {
        println!(
            "{name:<34}{:>9.0}/s ({:>6.1} µs) {:>9.0}/s ({:>6.1} µs) {:>5.1}%",
            1.0 / d.as_secs_f64(),
            d.as_secs_f64() * 1e6,
            1.0 / ceil.as_secs_f64(),
            ceil.as_secs_f64() * 1e6,
            pct(ceil, d)
        );
    }
    for (name, d, ceil, n) in [
        ("bulk 256 MiB, whole flights", flights, ceiling, packets),
        (
            "bulk 256 MiB, streaming 16",
            streaming,
            stream_ceiling,
            stream_packets,
        ),
        (
            "  the same, shared buffer",
            shared,
            shared_ceiling,
            shared_packets,
        ),
        (
            "  the same, send/recv_batch",
            batched,
            batched_ceiling,
            batched_packets,
        ),
        (
            "bulk 256 MiB, send/recv_batch 64",
            batched64,
            batched64_ceiling,
            batched64_packets,
        ),
    ] {
        println!(
            "{name:<33} {:>6.2} Gbit/s ({:>5.1} ms) {:>6.2} Gbit/s ({:>5.1} ms) {:>5.1}%  ({n} packets)",
            gbit_s(d),
            d.as_secs_f64() * 1e3,
            gbit_s(ceil),
            ceil.as_secs_f64() * 1e3,
            pct(ceil, d)
        );
    }
}
