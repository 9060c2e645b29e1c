//! Runs one workload in a loop, for a profiler:
//! `perf record cargo run --release -p tarte-benches --example profile -- bulk|streaming|batched|handshake|handshake-ceiling [N] [BATCH]`
//! (BATCH: datagrams per batch of `batched`, 16 by default).
#![allow(missing_docs)]

use tarte_benches::{
    bulk_once, bulk_streaming_batched, bulk_streaming_once, configs, crypto_ceiling_once,
    handshake_once,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("bulk");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let batch: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(16);
    match what {
        "bulk" => (0..n).for_each(|_| {
            bulk_once();
        }),
        "streaming" => (0..n).for_each(|_| {
            bulk_streaming_once(16);
        }),
        "batched" => (0..n).for_each(|_| {
            bulk_streaming_batched(batch);
        }),
        "handshake" => {
            let (mut c, mut s) = configs(Some("X25519"));
            (0..n * 1000).for_each(|_| handshake_once(&mut c, &mut s));
        }
        "handshake-ceiling" => {
            let group = boring::ec::EcGroup::from_curve_name(boring::nid::Nid::X9_62_PRIME256V1)
                .expect("P-256");
            let ec = boring::ec::EcKey::generate(&group).expect("P-256 key");
            (0..n * 1000).for_each(|_| crypto_ceiling_once(&ec, &[7u8; 32]));
        }
        other => {
            eprintln!("unknown workload {other}: bulk, streaming, batched, handshake or handshake-ceiling");
            std::process::exit(2);
        }
    }
}
