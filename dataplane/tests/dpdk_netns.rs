//! DPDK backend round trips through a veth pair whose two ends live in
//! namespaces this test creates (198.18.0.0/15, names with the pid), one
//! case per kernel-interface PMD (`net_af_xdp`, `net_af_packet`), both with
//! `--no-huge`.
//!
//! EAL initialises once per process, so every case runs its DPDK side in a
//! child process: the test re-executes its own binary (`--exact <case>`)
//! with `TARTE_DPDK_ROLE` set, inside the namespace, through `ip netns exec`.
//! The peer is a kernel UDP socket in the other namespace (a second child)
//! that echoes every datagram. The DPDK side sends datagrams of varied sizes
//! (first ones wait for its own ARP request to be answered), receives the
//! echoes (the peer's kernel resolves us by ARP, which the backend answers)
//! and checks every byte. Namespaces and DPDK runtime files are removed by
//! guards, also when the case fails. Needs root (CI runs as root).

#![cfg(feature = "dpdk")]

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tarte_dataplane::backend::dpdk::{DpdkBackend, DpdkOptions, KernelPmd};
use tarte_dataplane::backend::Backend;

mod dpdk_common;
use dpdk_common::{env, spawn_role, wait_exit, wait_line, Link, ROLE};

const DPDK_ADDR: &str = "198.18.5.1:9000";
const PEER_ADDR: &str = "198.18.5.2:9000";
const COUNT: usize = 300;
/// Datagrams in flight at most, so the kernel peer's socket buffer never
/// overflows (veth itself does not lose frames).
const WINDOW: usize = 32;
const CASE_DEADLINE: Duration = Duration::from_secs(30);

/// Parent side of one case: link, echo peer, DPDK child, checks, cleanup.
fn round_trip_case(case: &str, tag: char, pmd: &str) {
    let link = Link::new(tag, 5, false, false);
    let deadline = Instant::now() + CASE_DEADLINE;
    let count = COUNT.to_string();
    let mut echo = spawn_role(
        &link.ns_peer,
        case,
        "echo",
        None,
        &[("TARTE_DPDK_COUNT", &count)],
    );
    wait_line(&mut echo, "ECHO READY");
    let mut dpdk = spawn_role(
        &link.ns_dpdk,
        case,
        "dpdk",
        None,
        &[
            ("TARTE_DPDK_PMD", pmd),
            ("TARTE_DPDK_IFACE", &link.if_dpdk),
            ("TARTE_DPDK_PREFIX", &link.prefix),
            ("TARTE_DPDK_COUNT", &count),
        ],
    );
    let summary = wait_line(&mut dpdk, "DPDK OK");
    wait_exit(&mut dpdk, "dpdk", deadline);
    wait_exit(&mut echo, "echo", deadline);
    assert_eq!(summary, format!("DPDK OK echoed={COUNT} bad=0"));
    assert!(
        !std::path::Path::new(&format!("/var/run/dpdk/{}", link.prefix)).exists(),
        "the DPDK child left its runtime dir behind"
    );
}

fn payload(seq: usize) -> Vec<u8> {
    // Sizes from 4 to 1472 bytes (the most a 1500-byte MTU carries).
    let len = 4 + (seq * 37) % 1469;
    let mut p = vec![0u8; len];
    p[..4].copy_from_slice(&(seq as u32).to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(4) {
        *b = (seq as u8).wrapping_mul(31) ^ (i as u8);
    }
    p
}

/// Child role: kernel UDP socket echoing `COUNT` datagrams.
fn echo_role() {
    let count: usize = env("TARTE_DPDK_COUNT").parse().expect("count");
    let sock = UdpSocket::bind(PEER_ADDR).expect("bind echo socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    println!("ECHO READY");
    let deadline = Instant::now() + CASE_DEADLINE;
    let mut buf = [0u8; 2048];
    let mut echoed = 0;
    while echoed < count && Instant::now() < deadline {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            sock.send_to(&buf[..n], from).expect("echo send");
            echoed += 1;
        }
    }
    assert_eq!(echoed, count, "echo peer saw fewer datagrams than sent");
}

/// Child role: the DPDK side, sending, receiving echoes, checking bytes.
fn dpdk_role() {
    let count: usize = env("TARTE_DPDK_COUNT").parse().expect("count");
    let opts = DpdkOptions {
        pmd: match env("TARTE_DPDK_PMD").as_str() {
            "af_xdp" => KernelPmd::AfXdp,
            "af_packet" => KernelPmd::AfPacket,
            other => panic!("unknown pmd {other}"),
        },
        interface: Some(env("TARTE_DPDK_IFACE")),
        file_prefix: Some(env("TARTE_DPDK_PREFIX")),
        memory_mb: 256,
        ..DpdkOptions::default()
    };
    let local: SocketAddr = DPDK_ADDR.parse().unwrap();
    let peer: SocketAddr = PEER_ADDR.parse().unwrap();
    let mut be = DpdkBackend::open_queues(local, &opts, 1)
        .expect("opening the DPDK port")
        .pop()
        .unwrap();
    assert_eq!(be.local_addr(), local);
    assert_eq!(be.max_payload(), 1472);

    let deadline = Instant::now() + CASE_DEADLINE;
    let mut got: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let (mut next, mut bad, mut wrong_src) = (0usize, 0usize, 0usize);
    while got.len() < count && Instant::now() < deadline {
        let room = (got.len() + WINDOW).min(count).saturating_sub(next);
        if room > 0 {
            let sent = be
                .tx_burst(room, &mut |i, buf| {
                    let p = payload(next + i);
                    buf[..p.len()].copy_from_slice(&p);
                    Some((p.len(), peer))
                })
                .expect("tx_burst");
            next += sent;
        }
        be.rx_burst(64, &mut |data, meta| {
            if meta.src != peer || meta.dst != local {
                wrong_src += 1;
                return;
            }
            let seq = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            if seq >= count || data != payload(seq).as_slice() {
                bad += 1;
            }
            got.insert(seq, data.to_vec());
        })
        .expect("rx_burst");
    }
    let st = be.stats();
    assert_eq!(next, count, "not every datagram was queued: {st:?}");
    assert_eq!(got.len(), count, "echoes missing: {st:?}");
    assert_eq!(wrong_src, 0);
    assert!(got.iter().all(|(&s, d)| *d == payload(s)));
    assert_eq!(be.pending_len(), 0);
    assert_eq!(st.tx_packets, count as u64);
    assert_eq!(st.rx_packets, count as u64);
    assert_eq!(st.tx_errors, 0, "{st:?}");
    assert_eq!(st.rx_bad_checksum, 0);
    println!("DPDK OK echoed={} bad={bad}", got.len());
    // Dropping the backend closes the port, cleans EAL and its runtime dir.
    drop(be);
}

fn dispatch(case: &str, tag: char, pmd: &str) {
    match std::env::var(ROLE).as_deref() {
        Ok("echo") => echo_role(),
        Ok("dpdk") => dpdk_role(),
        Ok(other) => panic!("unknown {ROLE}={other}"),
        Err(_) => round_trip_case(case, tag, pmd),
    }
}

#[test]
fn dpdk_af_xdp_round_trip() {
    dispatch("dpdk_af_xdp_round_trip", 'x', "af_xdp");
}

#[test]
fn dpdk_af_packet_round_trip() {
    dispatch("dpdk_af_packet_round_trip", 'p', "af_packet");
}
