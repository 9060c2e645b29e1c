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
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tarte_dataplane::backend::dpdk::{DpdkBackend, DpdkOptions, KernelPmd};
use tarte_dataplane::backend::Backend;

const ROLE: &str = "TARTE_DPDK_ROLE";
const DPDK_ADDR: &str = "198.18.5.1:9000";
const PEER_ADDR: &str = "198.18.5.2:9000";
const COUNT: usize = 300;
/// Datagrams in flight at most, so the kernel peer's socket buffer never
/// overflows (veth itself does not lose frames).
const WINDOW: usize = 32;
const CASE_DEADLINE: Duration = Duration::from_secs(30);

fn run(cmd: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces joined by a veth pair; deleted on drop (which deletes the
/// veth too). Only the peer end gets a kernel address: DPDK owns the other.
struct Link {
    ns_dpdk: String,
    ns_peer: String,
    if_dpdk: String,
    prefix: String,
}

impl Link {
    fn new(tag: char) -> Link {
        let pid = std::process::id();
        let link = Link {
            ns_dpdk: format!("tarte-dpdk{tag}{pid}a"),
            ns_peer: format!("tarte-dpdk{tag}{pid}b"),
            if_dpdk: format!("td{tag}{pid}a"),
            prefix: format!("tarte-test-{tag}{pid}"),
        };
        let if_peer = format!("td{tag}{pid}b");
        let (a, b) = (link.ns_dpdk.as_str(), link.ns_peer.as_str());
        let steps: Vec<Vec<&str>> = vec![
            vec!["ip", "netns", "add", a],
            vec!["ip", "netns", "add", b],
            vec![
                "ip",
                "link",
                "add",
                &link.if_dpdk,
                "netns",
                a,
                "type",
                "veth",
                "peer",
                "name",
                &if_peer,
                "netns",
                b,
            ],
            // No IPv6 chatter (router solicitations, MLD) on the link.
            vec![
                "ip",
                "netns",
                "exec",
                a,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ],
            vec![
                "ip",
                "netns",
                "exec",
                b,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ],
            vec!["ip", "-n", a, "link", "set", &link.if_dpdk, "up"],
            vec!["ip", "-n", b, "link", "set", &if_peer, "up"],
            vec![
                "ip",
                "-n",
                b,
                "addr",
                "add",
                "198.18.5.2/24",
                "dev",
                &if_peer,
            ],
            // veth offloads the UDP checksum of the peer's kernel sockets
            // (CHECKSUM_PARTIAL: only the pseudo-header sum is in the
            // field); a NIC would fill it in. DPDK sees the raw frame, so
            // make the kernel compute it.
            vec![
                "ip", "netns", "exec", b, "ethtool", "-K", &if_peer, "tx", "off",
            ],
        ];
        for s in steps {
            // `link` is dropped on panic, deleting what exists so far.
            run(&s).unwrap_or_else(|e| panic!("netns set-up: {e}"));
        }
        link
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in [&self.ns_dpdk, &self.ns_peer] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        // The child removes its runtime dir; this covers a crashed child.
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

/// A child process killed on drop (a failed case never leaves one behind).
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_role(ns: &str, case: &str, role: &str, envs: &[(&str, &str)]) -> Kid {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(exe)
        .args([case, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Kid(cmd.spawn().expect("spawning child"))
}

/// Reads the child's stdout until a line containing `marker`; returns the
/// line from the marker on (libtest prints "test NAME ... " in front).
fn wait_line(kid: &mut Kid, marker: &str) -> String {
    let out = kid.0.stdout.as_mut().expect("piped stdout");
    let mut lines = BufReader::new(out).lines();
    for line in lines.by_ref() {
        let line = line.expect("reading child stdout");
        if let Some(at) = line.find(marker) {
            return line[at..].to_string();
        }
    }
    panic!("child exited without printing {marker:?}");
}

fn wait_exit(kid: &mut Kid, what: &str, deadline: Instant) {
    loop {
        match kid.0.try_wait().expect("waiting for child") {
            Some(st) => {
                assert!(st.success(), "{what} child failed: {st}");
                return;
            }
            None if Instant::now() > deadline => panic!("{what} child still running at deadline"),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Parent side of one case: link, echo peer, DPDK child, checks, cleanup.
fn round_trip_case(case: &str, tag: char, pmd: &str) {
    let link = Link::new(tag);
    let deadline = Instant::now() + CASE_DEADLINE;
    let count = COUNT.to_string();
    let mut echo = spawn_role(&link.ns_peer, case, "echo", &[("TARTE_DPDK_COUNT", &count)]);
    wait_line(&mut echo, "ECHO READY");
    let mut dpdk = spawn_role(
        &link.ns_dpdk,
        case,
        "dpdk",
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

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set by the parent"))
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
