//! Round trips through a veth pair between two namespaces (needs root, as CI
//! runs): client in A → reflector in B → back to A, for the `udp` backend and
//! the `afxdp` backend in skb and drv modes, checking every byte of every
//! payload. Namespaces (and with them veths and XDP programs) are removed on
//! drop, also when an assertion fails.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use tarte_dataplane::backend::{self, Backend, BackendConfig, BackendKind, XdpMode};
use tarte_dataplane::testutil::VethPair;

const COUNT: usize = 2000;
const WINDOW: usize = 32;
const SERVER_PORT: u16 = 4433;
const CLIENT_PORT: u16 = 40000;

fn payload(i: usize) -> Vec<u8> {
    let len = 8 + (i * 53) % 1400;
    let mut p: Vec<u8> = (0..len).map(|j| (i * 7 + j * 11 + 3) as u8).collect();
    p[..8].copy_from_slice(&(i as u64).to_be_bytes());
    p
}

fn config(kind: BackendKind, local: SocketAddr, iface: &str, mode: XdpMode) -> BackendConfig {
    let mut c = BackendConfig::new(kind, local);
    c.interface = Some(iface.into());
    c.xdp_mode = mode;
    c
}

/// Sends every datagram it receives back to its source, unchanged, until it
/// has reflected `total` or the deadline passes. Returns how many.
fn reflect(b: &mut dyn Backend, total: usize, deadline: Instant) -> usize {
    let mut done = 0;
    let mut pending: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
    while done < total && Instant::now() < deadline {
        b.rx_burst(64, &mut |p, m| pending.push((p.to_vec(), m.src)))
            .unwrap();
        while !pending.is_empty() && Instant::now() < deadline {
            let n = b
                .tx_burst(pending.len(), &mut |i, buf| {
                    let (p, to) = &pending[i];
                    buf[..p.len()].copy_from_slice(p);
                    Some((p.len(), *to))
                })
                .unwrap();
            pending.drain(..n);
            done += n;
        }
    }
    done
}

/// Sends `COUNT` datagrams in windows of `WINDOW` and checks that each one
/// comes back byte for byte from `server`.
fn client(b: &mut dyn Backend, server: SocketAddr, deadline: Instant) {
    let mut next = 0;
    while next < COUNT {
        let end = (next + WINDOW).min(COUNT);
        let mut sent = next;
        while sent < end {
            assert!(Instant::now() < deadline, "timed out sending {sent}");
            sent += b
                .tx_burst(end - sent, &mut |i, buf| {
                    let p = payload(sent + i);
                    buf[..p.len()].copy_from_slice(&p);
                    Some((p.len(), server))
                })
                .unwrap();
        }
        let mut seen = vec![false; end - next];
        let mut got = 0;
        while got < end - next {
            assert!(
                Instant::now() < deadline,
                "timed out at {next}+{got} of {COUNT}"
            );
            b.rx_burst(64, &mut |p, m| {
                assert_eq!(m.src, server);
                assert!(p.len() >= 8, "short datagram");
                let i = u64::from_be_bytes(p[..8].try_into().unwrap()) as usize;
                assert!(
                    (next..end).contains(&i),
                    "datagram {i} outside window {next}..{end}"
                );
                assert_eq!(p, &payload(i)[..], "datagram {i}");
                assert!(!seen[i - next], "datagram {i} twice");
                seen[i - next] = true;
                got += 1;
            })
            .unwrap();
        }
        next = end;
    }
    assert_eq!(b.stats().rx_packets, COUNT as u64);
    assert_eq!(b.stats().tx_packets, COUNT as u64);
}

fn round_trip(tag: &str, kind: BackendKind, mode: XdpMode) {
    let pair = VethPair::new(tag, 1).expect("creating veth pair (needs root)");
    let server = SocketAddr::new(pair.b.ip.into(), SERVER_PORT);
    let client_addr = SocketAddr::new(pair.a.ip.into(), CLIENT_PORT);
    let deadline = Instant::now() + Duration::from_secs(30);
    let srv_cfg = config(kind, server, &pair.b.iface, mode);
    let (tx_ready, rx_ready) = std::sync::mpsc::channel();
    let reflector = VethPair::spawn_in(&pair.b.ns, move || {
        let mut b = backend::open(&srv_cfg).expect("server backend");
        tx_ready.send(()).unwrap();
        let n = reflect(b.as_mut(), COUNT, deadline);
        (n, b.stats())
    });
    rx_ready
        .recv_timeout(Duration::from_secs(10))
        .expect("server up");
    let cli_cfg = config(kind, client_addr, &pair.a.iface, mode);
    VethPair::run_in(&pair.a.ns, move || {
        let mut b = backend::open(&cli_cfg).expect("client backend");
        client(b.as_mut(), server, deadline);
    });
    let (n, stats) = reflector.join().expect("reflector");
    assert_eq!(n, COUNT);
    assert_eq!(stats.rx_packets, COUNT as u64);
    assert_eq!(stats.rx_bad_checksum + stats.rx_malformed, 0, "{stats:?}");
    if kind == BackendKind::AfXdp {
        // Dropping the backends detached the program.
        for side in [&pair.a, &pair.b] {
            let out = Command::new("ip")
                .args(["-n", &side.ns, "link", "show", "dev", &side.iface])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success() && !text.contains("xdp"), "{text}");
        }
    }
}

#[test]
fn udp_round_trip_through_veth() {
    round_trip("udp", BackendKind::Udp, XdpMode::Skb);
}

#[test]
fn afxdp_skb_round_trip_through_veth() {
    round_trip("xskb", BackendKind::AfXdp, XdpMode::Skb);
}

#[test]
fn afxdp_drv_round_trip_through_veth() {
    round_trip("xdrv", BackendKind::AfXdp, XdpMode::Drv);
}

/// The XDP program takes only the engine's port: a kernel socket on
/// another port of the same interface still gets its datagrams, and ARP
/// still works (the kernel resolves the peer without a static entry).
#[test]
fn afxdp_passes_other_traffic_to_the_kernel() {
    let pair = VethPair::new("xpass", 1).expect("creating veth pair (needs root)");
    let server = SocketAddr::new(pair.b.ip.into(), SERVER_PORT);
    let other = SocketAddr::new(pair.b.ip.into(), 5555);
    let (b_ns, b_if, a_ns, b_ip) = (
        pair.b.ns.clone(),
        pair.b.iface.clone(),
        pair.a.ns.clone(),
        pair.b.ip,
    );
    // Drop A's static entry for B so that A must ARP through B's XDP program.
    let st = Command::new("ip")
        .args([
            "-n",
            &a_ns,
            "neigh",
            "del",
            &b_ip.to_string(),
            "dev",
            &pair.a.iface,
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = VethPair::spawn_in(&b_ns, move || {
        let cfg = config(BackendKind::AfXdp, server, &b_if, XdpMode::Skb);
        let mut xsk = backend::open(&cfg).expect("afxdp");
        let kernel = std::net::UdpSocket::bind(other).unwrap();
        kernel
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = kernel
            .recv_from(&mut buf)
            .expect("kernel socket gets its datagram");
        let mut xsk_got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while xsk_got.is_empty() && Instant::now() < deadline {
            xsk.rx_burst(8, &mut |p, _| xsk_got.push(p.to_vec()))
                .unwrap();
        }
        (buf[..n].to_vec(), xsk_got)
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    VethPair::run_in(&a_ns, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"for the kernel", other).unwrap();
        s.send_to(b"for the engine", server).unwrap();
    });
    let (kernel_got, xsk_got) = h.join().unwrap();
    assert_eq!(kernel_got, b"for the kernel");
    assert_eq!(xsk_got, vec![b"for the engine".to_vec()]);
}

/// RFC 9000 §14: QUIC datagrams are never fragmented at the IP layer (DF
/// set). Over a veth of MTU 1300, the `udp` backend sends a datagram that
/// fits and refuses one that does not (EMSGSIZE, counted as a send error)
/// instead of letting the kernel split it: the receiver gets exactly the
/// one that fits. (Path MTU discovery relies on this: an oversize probe
/// must be lost, not delivered in fragments.)
#[test]
fn udp_backend_never_fragments() {
    let pair = VethPair::new("udpdf", 1).expect("creating veth pair (needs root)");
    for side in [&pair.a, &pair.b] {
        let st = Command::new("ip")
            .args([
                "-n",
                &side.ns,
                "link",
                "set",
                "dev",
                &side.iface,
                "mtu",
                "1300",
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let receiver = SocketAddr::new(pair.b.ip.into(), 5555);
    let sender = SocketAddr::new(pair.a.ip.into(), CLIENT_PORT);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = VethPair::spawn_in(&pair.b.ns, move || {
        let s = std::net::UdpSocket::bind(receiver).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        ready_tx.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            got.push(n);
        }
        got
    });
    ready_rx.recv().unwrap();
    let a_ns = pair.a.ns.clone();
    let stats = VethPair::spawn_in(&a_ns, move || {
        let mut b = backend::open(&BackendConfig::new(BackendKind::Udp, sender)).expect("udp");
        // 1272 + 28 = 1300 bytes of IPv4 packet: fits; 1400 does not.
        let sizes = [1272usize, 1400, 1000];
        let _ = b.tx_burst(sizes.len(), &mut |i, buf| {
            buf[..sizes[i]].fill(i as u8);
            Some((sizes[i], receiver))
        });
        b.stats()
    })
    .join()
    .unwrap();
    let got = h.join().unwrap();
    assert_eq!(got, [1272, 1000], "{stats:?}");
    assert_eq!((stats.tx_packets, stats.tx_errors), (2, 1), "{stats:?}");
}
