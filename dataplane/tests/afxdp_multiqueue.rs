//! Multi-queue AF_XDP through a 2-queue veth pair (needs root, as CI runs):
//! one socket per queue on each side, client in A → reflector in B → back,
//! every byte of every payload checked.
//!
//! In drv mode each queue's traffic stays on its queue: socket q of A
//! transmits on tx queue q, veth hands it to rx queue q of B (its NAPI
//! context for that queue runs the XDP program with `rx_queue_index` q),
//! which redirects to B's socket q. In skb (generic) mode veth does not
//! record the rx queue, so the generic XDP hook sees queue 0 for every
//! frame (measured on Linux 6.18): all traffic reaches the queue-0 sockets.
//! The skb test therefore checks the bytes and the totals, not the steering;
//! it also pins the copy-mode tx kick: all 64 replies of a window leave
//! through one socket, and one `sendto` wake-up sends only 32 of them.

#![cfg(feature = "afxdp")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tarte_dataplane::backend::afxdp::AfXdpBackend;
use tarte_dataplane::backend::{Backend, BackendConfig, BackendKind, XdpMode};
use tarte_dataplane::testutil::VethPair;

const QUEUES: u32 = 2;
const PER_QUEUE: usize = 1500;
const WINDOW: usize = 32;
const SERVER_PORT: u16 = 4433;
const CLIENT_PORT: u16 = 40000;

/// Payload `i` of queue `q`: its queue and index first, then bytes that
/// depend on both, of a length that varies from 16 to ~1300.
fn payload(q: usize, i: usize) -> Vec<u8> {
    let len = 16 + (i * 61 + q * 17) % 1300;
    let mut p: Vec<u8> = (0..len)
        .map(|j| (i * 5 + j * 13 + q * 101 + 7) as u8)
        .collect();
    p[..8].copy_from_slice(&(q as u64).to_be_bytes());
    p[8..16].copy_from_slice(&(i as u64).to_be_bytes());
    p
}

fn ids(p: &[u8]) -> (usize, usize) {
    assert!(p.len() >= 16, "short datagram of {} bytes", p.len());
    let q = u64::from_be_bytes(p[..8].try_into().unwrap()) as usize;
    let i = u64::from_be_bytes(p[8..16].try_into().unwrap()) as usize;
    (q, i)
}

fn open_all(local: SocketAddr, iface: &str, mode: XdpMode) -> Vec<AfXdpBackend> {
    (0..QUEUES)
        .map(|q| {
            let mut c = BackendConfig::new(BackendKind::AfXdp, local);
            c.interface = Some(iface.into());
            c.xdp_mode = mode;
            c.queue = q;
            AfXdpBackend::open(&c).unwrap_or_else(|e| panic!("queue {q}: {e}"))
        })
        .collect()
}

/// Reflects from every queue's socket back through the same socket until
/// the client is done or the deadline passes (it keeps polling after the
/// last reply is queued: polling is what pushes the tx ring out in copy
/// mode); returns how many each queue received, and asserts (when
/// `steered`) that each carries its own queue's payloads.
fn reflect(
    socks: &mut [AfXdpBackend],
    client_done: &AtomicBool,
    steered: bool,
    deadline: Instant,
) -> Vec<usize> {
    let mut per_queue = vec![0; socks.len()];
    while !client_done.load(Ordering::Relaxed) && Instant::now() < deadline {
        for (q, b) in socks.iter_mut().enumerate() {
            let mut pending: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
            b.rx_burst(64, &mut |p, m| pending.push((p.to_vec(), m.src)))
                .unwrap();
            if steered {
                for (p, _) in &pending {
                    assert_eq!(ids(p).0, q, "queue {q} got another queue's datagram");
                }
            }
            per_queue[q] += pending.len();
            while !pending.is_empty() && Instant::now() < deadline {
                let n = b
                    .tx_burst(pending.len(), &mut |i, buf| {
                        let (p, to) = &pending[i];
                        buf[..p.len()].copy_from_slice(p);
                        Some((p.len(), *to))
                    })
                    .unwrap();
                pending.drain(..n);
            }
        }
    }
    per_queue
}

/// Sends `PER_QUEUE` datagrams on each queue, windows of `WINDOW` per
/// queue in lock step, and checks that each comes back byte for byte, once,
/// from `server` (when `steered`, on the queue it left from).
fn client(socks: &mut [AfXdpBackend], server: SocketAddr, steered: bool, deadline: Instant) {
    let nq = socks.len();
    let mut seen = vec![vec![false; PER_QUEUE]; nq];
    let mut next = 0;
    while next < PER_QUEUE {
        let end = (next + WINDOW).min(PER_QUEUE);
        for (q, b) in socks.iter_mut().enumerate() {
            let mut sent = next;
            while sent < end {
                assert!(
                    Instant::now() < deadline,
                    "queue {q}: timed out sending {sent}"
                );
                sent += b
                    .tx_burst(end - sent, &mut |i, buf| {
                        let p = payload(q, sent + i);
                        buf[..p.len()].copy_from_slice(&p);
                        Some((p.len(), server))
                    })
                    .unwrap();
            }
        }
        let want = (end - next) * nq;
        let mut got = 0;
        while got < want {
            if Instant::now() >= deadline {
                let st: Vec<_> = socks.iter().map(|b| b.stats()).collect();
                panic!("timed out at window {next}..{end}: {got} of {want} back; {st:?}");
            }
            for (q, b) in socks.iter_mut().enumerate() {
                got += b
                    .rx_burst(64, &mut |p, m| {
                        assert_eq!(m.src, server);
                        let (pq, i) = ids(p);
                        if steered {
                            assert_eq!(pq, q, "datagram {i} of queue {pq} came back on {q}");
                        }
                        assert!(
                            (next..end).contains(&i),
                            "datagram {i} outside {next}..{end}"
                        );
                        assert_eq!(p, &payload(pq, i)[..], "queue {pq} datagram {i}");
                        assert!(!seen[pq][i], "queue {pq} datagram {i} twice");
                        seen[pq][i] = true;
                    })
                    .unwrap();
            }
        }
        next = end;
    }
    let mut rx_total = 0;
    for (q, b) in socks.iter().enumerate() {
        let st = b.stats();
        if steered {
            assert_eq!(st.rx_packets, PER_QUEUE as u64, "queue {q}: {st:?}");
        }
        rx_total += st.rx_packets;
        assert_eq!(st.tx_packets, PER_QUEUE as u64, "queue {q}: {st:?}");
        let k = st.xdp.expect("afxdp sockets report XDP_STATISTICS");
        assert_eq!(k.rx_drops(), 0, "queue {q}: {k:?}");
    }
    assert_eq!(rx_total, (PER_QUEUE * nq) as u64);
    assert!(seen.iter().flatten().all(|s| *s));
}

fn multi_queue_round_trip(tag: &str, mode: XdpMode) {
    let steered = mode == XdpMode::Drv;
    let pair = VethPair::new(tag, QUEUES).expect("creating veth pair (needs root)");
    let server = SocketAddr::new(pair.b.ip.into(), SERVER_PORT);
    let client_addr = SocketAddr::new(pair.a.ip.into(), CLIENT_PORT);
    let deadline = Instant::now() + Duration::from_secs(40);
    let (b_if, a_if) = (pair.b.iface.clone(), pair.a.iface.clone());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let client_done = Arc::new(AtomicBool::new(false));
    let done = client_done.clone();
    let reflector = VethPair::spawn_in(&pair.b.ns, move || {
        let mut socks = open_all(server, &b_if, mode);
        ready_tx.send(()).unwrap();
        let per_queue = reflect(&mut socks, &done, steered, deadline);
        let stats: Vec<_> = socks.iter().map(|s| s.stats()).collect();
        (per_queue, stats)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("server up");
    let client_result = std::panic::catch_unwind(|| {
        VethPair::run_in(&pair.a.ns, move || {
            let mut socks = open_all(client_addr, &a_if, mode);
            client(&mut socks, server, steered, deadline);
        })
    });
    client_done.store(true, Ordering::Relaxed);
    if let Err(p) = client_result {
        std::panic::resume_unwind(p);
    }
    let (per_queue, stats) = reflector.join().expect("reflector");
    if steered {
        assert_eq!(per_queue, vec![PER_QUEUE; QUEUES as usize]);
    } else {
        eprintln!("skb mode: datagrams per server queue {per_queue:?}");
    }
    assert_eq!(per_queue.iter().sum::<usize>(), PER_QUEUE * QUEUES as usize);
    for (q, st) in stats.iter().enumerate() {
        assert_eq!(st.rx_packets, per_queue[q] as u64, "server queue {q}");
        assert_eq!(st.rx_bad_checksum + st.rx_malformed, 0, "{st:?}");
        let k = st.xdp.expect("afxdp sockets report XDP_STATISTICS");
        assert_eq!(k.rx_drops(), 0, "server queue {q}: {k:?}");
    }
}

#[test]
fn afxdp_drv_two_queues_every_byte() {
    multi_queue_round_trip("xmqd", XdpMode::Drv);
}

#[test]
fn afxdp_skb_two_queues_every_byte() {
    multi_queue_round_trip("xmqs", XdpMode::Skb);
}
