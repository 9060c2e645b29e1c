//! Measurement, not a check (ignored by default; it asserts counts only,
//! never a time): rx packets/s of the DPDK backend (`net_af_xdp` and
//! `net_af_packet` vdevs, `--no-huge`) next to the kernel `udp` backend
//! (recvmmsg) receiving the same stream over the same kind of veth link,
//! from the same generator in the peer namespace, sending 64-byte datagrams
//! for a fixed time: the kernel `udp` backend (sendmmsg), then the DPDK
//! backend (af_xdp on the peer end), which sends faster than the kernel
//! and so shows what each receiver can take.
//!
//! Run: `cargo test --release -p tarte-dataplane --features dpdk --test
//! dpdk_rate -- --ignored --nocapture` (root). Environment knobs:
//! `TARTE_RATE_SECS` (default 3), `TARTE_RATE_SIZE` (default 64),
//! `TARTE_RATE_GENS` (default `udp,dpdk`).

#![cfg(feature = "dpdk")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tarte_dataplane::backend::dpdk::{DpdkBackend, DpdkOptions, KernelPmd};
use tarte_dataplane::backend::udp::UdpBackend;
use tarte_dataplane::backend::{Backend, BackendConfig, BackendKind};
use tarte_dataplane::wire::EthernetAddress;

mod dpdk_common;
use dpdk_common::{env, spawn_role, wait_exit, wait_line, Link, DPDK_MAC, ROLE};

const CASE: &str = "dpdk_vs_kernel_rx_rate";
const NET: u8 = 6;
/// Receivers stop after this long without a packet once traffic started.
const QUIET: Duration = Duration::from_millis(500);

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Child: sends `size`-byte datagrams to the receiver for `secs` seconds,
/// through the kernel (`udp` backend) or DPDK af_xdp on the peer end.
fn generator_role() {
    let secs = knob("TARTE_RATE_SECS", 3);
    let size = knob("TARTE_RATE_SIZE", 64) as usize;
    let dst: SocketAddr = format!("198.18.{NET}.1:9000").parse().unwrap();
    let local: SocketAddr = format!("198.18.{NET}.2:9001").parse().unwrap();
    let mut tx: Box<dyn Backend> = if env("TARTE_RATE_GEN") == "dpdk" {
        let opts = DpdkOptions {
            interface: Some(env("TARTE_DPDK_IFACE")),
            file_prefix: Some(env("TARTE_DPDK_PREFIX")),
            ring_size: 2048,
            dst_mac: Some(EthernetAddress::parse(DPDK_MAC).unwrap()),
            ..DpdkOptions::default()
        };
        Box::new(
            DpdkBackend::open_queues(local, &opts, 1)
                .unwrap()
                .pop()
                .unwrap(),
        )
    } else {
        let mut cfg = BackendConfig::new(BackendKind::Udp, local);
        // One datagram per frame on the wire (no GSO super-frames).
        cfg.offloads = false;
        Box::new(UdpBackend::open(&cfg).expect("generator socket"))
    };
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut sent = 0u64;
    while Instant::now() < end {
        sent += tx
            .tx_burst(64, &mut |i, buf| {
                buf[..8].copy_from_slice(&(sent + i as u64).to_be_bytes());
                Some((size, dst))
            })
            .unwrap_or(0) as u64;
    }
    let dt = start.elapsed().as_secs_f64();
    println!("GEN sent={sent} secs={dt:.3}");
}

/// Child: receives with the named backend until the stream stops.
fn receiver_role() {
    let kind = env("TARTE_RATE_RX");
    let local: SocketAddr = format!("198.18.{NET}.1:9000").parse().unwrap();
    let mut rx: Box<dyn Backend> = match kind.as_str() {
        "udp" => Box::new(UdpBackend::open(&BackendConfig::new(BackendKind::Udp, local)).unwrap()),
        pmd => {
            let opts = DpdkOptions {
                pmd: if pmd == "af_packet" {
                    KernelPmd::AfPacket
                } else {
                    KernelPmd::AfXdp
                },
                interface: Some(env("TARTE_DPDK_IFACE")),
                file_prefix: Some(env("TARTE_DPDK_PREFIX")),
                ring_size: 2048,
                ..DpdkOptions::default()
            };
            Box::new(
                DpdkBackend::open_queues(local, &opts, 1)
                    .unwrap()
                    .pop()
                    .unwrap(),
            )
        }
    };
    println!("RX READY");
    let hard_end = Instant::now() + Duration::from_secs(knob("TARTE_RATE_SECS", 3) + 20);
    let (mut count, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None::<Instant>, Instant::now());
    while Instant::now() < hard_end {
        let n = rx
            .rx_burst(64, &mut |d, _| {
                bytes += d.len() as u64;
            })
            .unwrap();
        if n > 0 {
            last = Instant::now();
            first.get_or_insert(last);
            count += n as u64;
        } else if first.is_some() && last.elapsed() > QUIET {
            break;
        }
    }
    let dt = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let st = rx.stats();
    assert_eq!(st.rx_packets, count);
    assert_eq!(st.rx_bad_checksum, 0);
    println!(
        "RX got={count} bytes={bytes} secs={dt:.3} dropped={} ",
        st.rx_dropped
    );
}

fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn measure(tag: char, gen_kind: &str, rx_kind: &str) -> (f64, f64, f64) {
    let kernel = rx_kind == "udp";
    let link = Link::new(tag, NET, kernel, true);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (rx_cpu, gen_cpu) = if cpus > 1 {
        (Some(1), Some(0))
    } else {
        (None, None)
    };
    let deadline = Instant::now() + Duration::from_secs(knob("TARTE_RATE_SECS", 3) + 40);
    let envs = [
        ("TARTE_RATE_RX", rx_kind),
        ("TARTE_DPDK_IFACE", link.if_dpdk.as_str()),
        ("TARTE_DPDK_PREFIX", link.prefix.as_str()),
    ];
    let mut rx = spawn_role(&link.ns_dpdk, CASE, "rx", rx_cpu, &envs);
    wait_line(&mut rx, "RX READY");
    let gen_prefix = format!("{}-gen", link.prefix);
    let gen_envs = [
        ("TARTE_RATE_GEN", gen_kind),
        ("TARTE_DPDK_IFACE", link.if_peer.as_str()),
        ("TARTE_DPDK_PREFIX", gen_prefix.as_str()),
    ];
    let mut gen = spawn_role(&link.ns_peer, CASE, "gen", gen_cpu, &gen_envs);
    let g = wait_line(&mut gen, "GEN");
    let r = wait_line(&mut rx, "RX got");
    wait_exit(&mut gen, "generator", deadline);
    wait_exit(&mut rx, "receiver", deadline);
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{gen_prefix}"));
    let (sent, gsecs) = (field(&g, "sent"), field(&g, "secs"));
    let (got, rsecs) = (field(&r, "got"), field(&r, "secs"));
    assert!(got > 0.0 && got <= sent, "{r} / {g}");
    (sent / gsecs, got / rsecs.max(1e-9), got / sent)
}

#[test]
#[ignore = "measurement: cargo test --release --features dpdk --test dpdk_rate -- --ignored --nocapture"]
fn dpdk_vs_kernel_rx_rate() {
    match std::env::var(ROLE).as_deref() {
        Ok("gen") => return generator_role(),
        Ok("rx") => return receiver_role(),
        Ok(other) => panic!("unknown {ROLE}={other}"),
        Err(_) => {}
    }
    println!("generator    receiver        gen pps     rx pps      delivered");
    let gens = std::env::var("TARTE_RATE_GENS").unwrap_or_else(|_| "udp,dpdk".into());
    for gen_kind in gens.split(',') {
        for (tag, kind) in [('k', "udp"), ('x', "af_xdp"), ('p', "af_packet")] {
            let (gen, rx, frac) = measure(tag, gen_kind, kind);
            println!(
                "{:<12} {:<14} {:>9.0}  {:>9.0}   {:>6.1}%",
                format!("{gen_kind} tx"),
                if kind == "udp" {
                    "kernel udp".to_string()
                } else {
                    format!("dpdk {kind}")
                },
                gen,
                rx,
                frac * 100.0
            );
        }
    }
}
