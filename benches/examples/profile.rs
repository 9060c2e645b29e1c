//! Runs one workload in a loop, for a profiler:
//! `perf record cargo run --release -p tarte-benches --example profile -- bulk|streaming|handshake [N]`.
#![allow(missing_docs)]

use tarte_benches::{bulk_once, bulk_streaming_once, configs, handshake_once};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("bulk");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    match what {
        "bulk" => (0..n).for_each(|_| {
            bulk_once();
        }),
        "streaming" => (0..n).for_each(|_| {
            bulk_streaming_once(16);
        }),
        "handshake" => {
            let (mut c, mut s) = configs(Some("X25519"));
            (0..n * 1000).for_each(|_| handshake_once(&mut c, &mut s));
        }
        other => {
            eprintln!("unknown workload {other}: bulk, streaming or handshake");
            std::process::exit(2);
        }
    }
}
