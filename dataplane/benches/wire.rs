//! Per-frame cost of the receive parse (Ethernet → IPv4/IPv6 → UDP with both
//! checksums verified), of building tx headers, and of the checksum itself.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tarte_dataplane::backend::l2::{L2Endpoint, RxVerdict};
use tarte_dataplane::wire::{checksum, EthernetAddress};

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

fn frame(src: SocketAddr, dst: SocketAddr, payload: usize) -> Vec<u8> {
    let mut tx = L2Endpoint::new(MAC_A, src, Some(MAC_B));
    let mut f = vec![0u8; 2048];
    let hr = tx.headroom();
    for (i, b) in f[hr..hr + payload].iter_mut().enumerate() {
        *b = i as u8;
    }
    let len = tx.build_tx(&mut f, payload, dst).expect("frame fits");
    f.truncate(len);
    f
}

fn parse(c: &mut Criterion) {
    let cases = [
        ("v4", "198.18.0.1:40000", "198.18.0.2:4433"),
        ("v6", "[2001:db8::1]:40000", "[2001:db8::2]:4433"),
    ];
    for (fam, a, b) in cases {
        let (a, b): (SocketAddr, SocketAddr) = (a.parse().unwrap(), b.parse().unwrap());
        for payload in [64usize, 1200] {
            let f = frame(a, b, payload);
            let mut rx = L2Endpoint::new(MAC_B, b, None);
            let mut g = c.benchmark_group(format!("parse_rx_{fam}"));
            g.throughput(Throughput::Elements(1));
            g.bench_function(format!("{payload}B"), |bn| {
                bn.iter(|| match rx.parse_rx(black_box(&f)) {
                    RxVerdict::Deliver { payload, .. } => payload.len(),
                    _ => 0,
                })
            });
            g.finish();
        }
        let mut tx = L2Endpoint::new(MAC_A, a, Some(MAC_B));
        let mut buf = vec![0u8; 2048];
        let mut g = c.benchmark_group(format!("build_tx_{fam}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("1200B", |bn| {
            bn.iter(|| tx.build_tx(black_box(&mut buf), 1200, b).unwrap())
        });
        g.finish();
    }
}

fn sum(c: &mut Criterion) {
    let data: Vec<u8> = (0..1500u32).map(|i| (i * 7) as u8).collect();
    let mut g = c.benchmark_group("checksum");
    for len in [20usize, 64, 1500] {
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("{len}B"), |bn| {
            bn.iter(|| checksum::data(black_box(&data[..len])))
        });
    }
    g.finish();
}

criterion_group!(benches, parse, sum);
criterion_main!(benches);
