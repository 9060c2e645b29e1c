//! The kernel UDP backend over loopback: batching, GSO/GRO, SO_REUSEPORT.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tarte_dataplane::backend::udp::UdpBackend;
use tarte_dataplane::backend::{self, Backend, BackendConfig, BackendKind};

fn open(addr: &str, offloads: bool) -> UdpBackend {
    let mut c = BackendConfig::new(BackendKind::Udp, addr.parse().unwrap());
    c.offloads = offloads;
    UdpBackend::open(&c).unwrap()
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|j| (i * 13 + j * 3 + 1) as u8).collect();
    if len >= 4 {
        p[..4].copy_from_slice(&(i as u32).to_be_bytes());
    }
    p
}

/// Sends datagram i (of `sizes[i]` bytes) for every i, in bursts.
fn send(b: &mut dyn Backend, dst: SocketAddr, sizes: &[usize]) {
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while next < sizes.len() {
        assert!(Instant::now() < deadline, "send stuck at {next}");
        let n = b
            .tx_burst(sizes.len() - next, &mut |i, buf| {
                let p = payload(next + i, sizes[next + i]);
                buf[..p.len()].copy_from_slice(&p);
                Some((p.len(), dst))
            })
            .unwrap();
        next += n;
    }
}

/// Receives until `n` datagrams arrived (or 5 s passed).
fn recv(b: &mut dyn Backend, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while out.len() < n && Instant::now() < deadline {
        let got = b
            .rx_burst(16, &mut |p, m| out.push((p.to_vec(), m.src)))
            .unwrap();
        assert!(got <= 16);
        if got == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    out
}

fn check(got: &[(Vec<u8>, SocketAddr)], sizes: &[usize], from: SocketAddr) {
    assert_eq!(got.len(), sizes.len());
    for (i, (p, src)) in got.iter().enumerate() {
        assert_eq!(*src, from);
        assert_eq!(p, &payload(i, sizes[i]), "datagram {i}");
    }
}

#[test]
fn loopback_round_trip_every_byte() {
    for (tx_off, rx_off) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut a = open("127.0.0.1:0", tx_off);
        let mut b = open("127.0.0.1:0", rx_off);
        assert_ne!(b.local_addr().port(), 0);
        // Mixed sizes: runs of equal sizes (GSO groups) with shorter tails,
        // an empty datagram and a change of size every few.
        let sizes: Vec<usize> = (0..300)
            .map(|i| {
                if i == 7 {
                    0
                } else {
                    [1200, 1200, 1200, 700, 64][i % 5]
                }
            })
            .collect();
        send(&mut a, b.local_addr(), &sizes);
        let got = recv(&mut b, sizes.len());
        check(&got, &sizes, a.local_addr());
        let st = b.stats();
        assert_eq!(st.rx_packets, 300);
        assert_eq!(st.rx_bytes, sizes.iter().sum::<usize>() as u64);
        assert_eq!(a.stats().tx_packets, 300);
        assert_eq!(a.stats().tx_errors, 0);
        // Nothing more arrives.
        assert_eq!(b.rx_burst(16, &mut |_, _| {}).unwrap(), 0);
    }
}

#[test]
fn gso_and_gro_are_used_on_this_kernel() {
    let mut a = open("127.0.0.1:0", true);
    let mut b = open("127.0.0.1:0", true);
    // Linux 6.x has both; the fallback is tested by `offloads = false` above.
    assert!(a.gso() && b.gro(), "gso {} gro {}", a.gso(), b.gro());
    let sizes = vec![1000; 64];
    send(&mut a, b.local_addr(), &sizes);
    // With GRO the 64 segments may arrive as one buffer; rx still hands them
    // out one by one, at most `max` per call.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 64 && Instant::now() < deadline {
        let n = b
            .rx_burst(5, &mut |p, m| got.push((p.to_vec(), m.src)))
            .unwrap();
        assert!(n <= 5);
    }
    check(&got, &sizes, a.local_addr());
}

#[test]
fn ipv6_loopback() {
    let mut a = open("[::1]:0", true);
    let mut b = open("[::1]:0", true);
    let sizes = vec![100, 1400, 1400, 3];
    send(&mut a, b.local_addr(), &sizes);
    check(&recv(&mut b, 4), &sizes, a.local_addr());
}

#[test]
fn reuseport_sockets_share_a_port() {
    let mut b1 = open("127.0.0.1:0", false);
    let port = b1.local_addr().port();
    let mut b2 = open(&format!("127.0.0.1:{port}"), false);
    assert_eq!(b2.local_addr(), b1.local_addr());
    // Many senders (flows); the kernel hashes each to one of the sockets.
    let mut total = 0;
    for _ in 0..16 {
        let mut a = open("127.0.0.1:0", false);
        send(&mut a, b1.local_addr(), &[32; 4]);
        total += 4;
    }
    let mut n1 = 0;
    let mut n2 = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while n1 + n2 < total && Instant::now() < deadline {
        n1 += b1
            .rx_burst(64, &mut |p, _| assert_eq!(p.len(), 32))
            .unwrap();
        n2 += b2
            .rx_burst(64, &mut |p, _| assert_eq!(p.len(), 32))
            .unwrap();
    }
    assert_eq!(n1 + n2, total);
    assert!(n1 > 0 && n2 > 0, "both sockets get flows: {n1} {n2}");
}

#[test]
fn errors_carry_context() {
    // 198.18.0.1 is not configured in this namespace.
    let c = BackendConfig::new(BackendKind::Udp, "198.18.0.1:4433".parse().unwrap());
    let e = backend::open(&c).err().unwrap();
    assert!(e.to_string().contains("bind 198.18.0.1:4433"), "{e}");
    let mut a = open("127.0.0.1:0", true);
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    assert!(a.tx_burst(1, &mut |_, _| Some((1, v6))).is_err());
    assert!(a
        .tx_burst(1, &mut |_, buf| Some((buf.len() + 1, a_addr())))
        .is_err());
    assert_eq!(a.stats().tx_errors, 2);
    // Through the run-time selector.
    let c = BackendConfig::new(BackendKind::Udp, "127.0.0.1:0".parse().unwrap());
    let b = backend::open(&c).unwrap();
    assert_eq!(b.name(), "udp");
}

fn a_addr() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

/// A socket bound to a wildcard address reports each datagram's real
/// destination (IP_PKTINFO / IPV6_PKTINFO), not the bind address.
#[test]
fn wildcard_bind_reports_the_real_destination() {
    let mut rx = open("0.0.0.0:0", true);
    let port = rx.local_addr().port();
    assert!(rx.local_addr().ip().is_unspecified());
    // Loopback answers for all of 127/8: three different destinations.
    let dsts: Vec<SocketAddr> = ["127.0.0.1", "127.0.0.2", "127.3.4.5"]
        .iter()
        .map(|ip| SocketAddr::new(ip.parse().unwrap(), port))
        .collect();
    let mut tx = open("127.0.0.1:0", false);
    for (i, d) in dsts.iter().enumerate() {
        let n = tx
            .tx_burst(1, &mut |_, buf| {
                buf[..4].copy_from_slice(&(i as u32).to_be_bytes());
                Some((4, *d))
            })
            .unwrap();
        assert_eq!(n, 1);
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < dsts.len() && Instant::now() < deadline {
        rx.rx_burst(16, &mut |p, m| got.push((p.to_vec(), *m)))
            .unwrap();
    }
    assert_eq!(got.len(), dsts.len());
    for (p, m) in &got {
        let i = u32::from_be_bytes(p[..4].try_into().unwrap()) as usize;
        assert_eq!(m.dst, dsts[i], "datagram {i}");
        assert_eq!(m.src, tx.local_addr());
    }

    // IPv6 wildcard: ::1 natively, and an IPv4 sender on the dual-stack
    // socket shows up with IPv4-mapped addresses.
    let mut rx6 = open("[::]:0", true);
    let port6 = rx6.local_addr().port();
    let mut tx6 = open("[::1]:0", false);
    let d6: SocketAddr = format!("[::1]:{port6}").parse().unwrap();
    let d4: SocketAddr = format!("127.0.0.9:{port6}").parse().unwrap();
    tx6.tx_burst(1, &mut |_, buf| {
        buf[0] = 6;
        Some((1, d6))
    })
    .unwrap();
    let mut tx4 = open("127.0.0.1:0", false);
    tx4.tx_burst(1, &mut |_, buf| {
        buf[0] = 4;
        Some((1, d4))
    })
    .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 2 && Instant::now() < deadline {
        rx6.rx_burst(16, &mut |p, m| got.push((p[0], *m))).unwrap();
    }
    got.sort_by_key(|g| g.0);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].1.dst,
        format!("[::ffff:127.0.0.9]:{port6}").parse().unwrap()
    );
    assert_eq!(got[1].1.dst, d6);
    assert_eq!(got[1].1.src, tx6.local_addr());
}
