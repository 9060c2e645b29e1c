//! The mem backend, its fault injection, pcap capture and the shared L2 code.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tarte_dataplane::backend::l2::{self, L2Endpoint, RxVerdict};
use tarte_dataplane::backend::mem::{self, MemConfig, MAC_A, MAC_B};
use tarte_dataplane::backend::pcap::{synth_frame, PcapBackend, MAGIC};
use tarte_dataplane::backend::{Backend, BackendStats, DgramMeta};
use tarte_dataplane::wire::{ArpOperation, ArpRepr, EthernetAddress};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Deterministic payload of datagram `i`: its index, then a pattern.
fn payload(i: usize) -> Vec<u8> {
    let len = 16 + (i * 37) % 1200;
    let mut p: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
    p[..8].copy_from_slice(&(i as u64).to_be_bytes());
    p
}

fn send_all(b: &mut dyn Backend, dst: SocketAddr, range: std::ops::Range<usize>) -> usize {
    let start = range.start;
    let n = range.len();
    b.tx_burst(n, &mut |i, buf| {
        let p = payload(start + i);
        buf[..p.len()].copy_from_slice(&p);
        Some((p.len(), dst))
    })
    .unwrap()
}

fn recv_all(b: &mut dyn Backend) -> Vec<(Vec<u8>, DgramMeta)> {
    let mut out = Vec::new();
    loop {
        let n = b
            .rx_burst(64, &mut |p, m| out.push((p.to_vec(), *m)))
            .unwrap();
        if n == 0 {
            return out;
        }
    }
}

#[test]
fn clean_link_delivers_every_byte() {
    let (a, b) = (addr("198.18.0.1:40000"), addr("198.18.0.2:4433"));
    let (mut ea, mut eb) = mem::pair(a, b, MemConfig::default());
    assert_eq!(send_all(&mut ea, b, 0..100), 100);
    let got = recv_all(&mut eb);
    assert_eq!(got.len(), 100);
    for (i, (p, m)) in got.iter().enumerate() {
        assert_eq!(p, &payload(i), "datagram {i}");
        assert_eq!(*m, DgramMeta { src: a, dst: b });
    }
    let bytes: u64 = (0..100).map(|i| payload(i).len() as u64).sum();
    assert_eq!(
        eb.stats(),
        BackendStats {
            rx_packets: 100,
            rx_bytes: bytes,
            ..Default::default()
        }
    );
    assert_eq!(
        ea.stats(),
        BackendStats {
            tx_packets: 100,
            tx_bytes: bytes,
            ..Default::default()
        }
    );
    // And back, in place: the receiver edits the payload it is handed.
    send_all(&mut eb, a, 5..6);
    let n = ea
        .rx_burst(8, &mut |p, m| {
            assert_eq!(m.src, b);
            p[0] ^= 0xff;
            assert_eq!(p[0], payload(5)[0] ^ 0xff);
        })
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn ipv6_link() {
    let (a, b) = (addr("[2001:db8::1]:40000"), addr("[2001:db8::2]:4433"));
    let (mut ea, mut eb) = mem::pair(a, b, MemConfig::default());
    assert_eq!(ea.l2().headroom(), 14 + 40 + 8);
    send_all(&mut ea, b, 0..10);
    let got = recv_all(&mut eb);
    assert_eq!(got.len(), 10);
    for (i, (p, m)) in got.iter().enumerate() {
        assert_eq!((p, m.src, m.dst), (&payload(i), a, b));
    }
}

fn lossy_run(seed: u64) -> (Vec<u64>, mem::LinkStats) {
    let (a, b) = (addr("198.18.0.1:1"), addr("198.18.0.2:2"));
    let cfg = MemConfig {
        seed,
        loss: 0.3,
        ..Default::default()
    };
    let (mut ea, mut eb) = mem::pair(a, b, cfg);
    send_all(&mut ea, b, 0..1000);
    let ids = recv_all(&mut eb)
        .into_iter()
        .map(|(p, _)| u64::from_be_bytes(p[..8].try_into().unwrap()))
        .collect();
    (ids, ea.link_stats().clone())
}

#[test]
fn loss_is_seeded_and_counted() {
    let (ids, link) = lossy_run(7);
    assert_eq!(link.sent, 1000);
    assert_eq!(ids.len() as u64, 1000 - link.lost);
    assert!((200..400).contains(&link.lost), "lost {}", link.lost);
    // Order is kept and nothing is invented.
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(lossy_run(7).0, ids, "same seed, same losses");
    assert_ne!(lossy_run(8).0, ids, "another seed, other losses");
}

#[test]
fn duplication_and_corruption() {
    let (a, b) = (addr("198.18.0.1:1"), addr("198.18.0.2:2"));
    let cfg = MemConfig {
        seed: 3,
        duplicate: 0.2,
        corrupt: 0.2,
        ..Default::default()
    };
    let (mut ea, mut eb) = mem::pair(a, b, cfg);
    send_all(&mut ea, b, 0..500);
    let link = ea.link_stats().clone();
    assert!(link.duplicated > 50 && link.corrupted > 50, "{link:?}");
    let got = recv_all(&mut eb);
    // Every delivered payload is exactly one that was sent: a flipped byte
    // either misses the checksummed part (MAC source) or is caught.
    for (p, _) in &got {
        let i = u64::from_be_bytes(p[..8].try_into().unwrap()) as usize;
        assert_eq!(p, &payload(i));
    }
    let s = eb.stats();
    let arrived = link.sent + link.duplicated;
    assert_eq!(
        s.rx_packets + s.rx_bad_checksum + s.rx_malformed + s.rx_dropped,
        arrived,
        "{s:?}"
    );
    assert!(s.rx_bad_checksum > 30, "{s:?}");
    assert_eq!(s.rx_packets, got.len() as u64);
}

#[test]
fn delay_holds_frames_until_due() {
    let (a, b) = (addr("198.18.0.1:1"), addr("198.18.0.2:2"));
    let cfg = MemConfig {
        delay: Duration::from_millis(40),
        ..Default::default()
    };
    let (mut ea, mut eb) = mem::pair(a, b, cfg);
    send_all(&mut ea, b, 0..3);
    assert_eq!(eb.rx_burst(8, &mut |_, _| {}).unwrap(), 0);
    assert_eq!(eb.pending(), 3);
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(recv_all(&mut eb).len(), 3);
}

#[test]
fn capacity_stops_tx_early() {
    let (a, b) = (addr("198.18.0.1:1"), addr("198.18.0.2:2"));
    let cfg = MemConfig {
        capacity: 10,
        ..Default::default()
    };
    let (mut ea, mut eb) = mem::pair(a, b, cfg);
    assert_eq!(send_all(&mut ea, b, 0..25), 10);
    assert_eq!(send_all(&mut ea, b, 0..25), 0);
    assert_eq!(recv_all(&mut eb).len(), 10);
    // `None` stops a burst early too.
    let n = ea.tx_burst(5, &mut |i, buf| {
        (i < 2).then(|| {
            buf[0] = 1;
            (1, b)
        })
    });
    assert_eq!(n.unwrap(), 2);
    // A payload that does not fit the frame is an error, and counted.
    let err = ea.tx_burst(1, &mut |_, buf| Some((buf.len() + 1, b)));
    assert!(err.is_err());
    assert_eq!(ea.stats().tx_errors, 1);
}

#[test]
fn injected_frames_are_classified_and_counted() {
    let (a, b) = (addr("198.18.0.1:1"), addr("198.18.0.2:2"));
    let (mut ea, mut eb) = mem::pair(a, b, MemConfig::default());
    let mut frame = vec![0u8; 2048];
    let mut l2a = L2Endpoint::new(MAC_A, a, Some(MAC_B));
    let hr = l2a.headroom();
    frame[hr..hr + 4].copy_from_slice(b"good");
    let len = l2a.build_tx(&mut frame, 4, b).unwrap();
    let good = frame[..len].to_vec();
    ea.inject_frame(&good);
    ea.inject_frame(&good[..good.len() - 1]); // IP total length beyond frame
    let mut bad = good.clone();
    bad[len - 1] ^= 1; // payload bit: UDP checksum
    ea.inject_frame(&bad);
    let mut frag = good.clone();
    frag[20] = 0x20; // MF
    fix_ipv4(&mut frag);
    ea.inject_frame(&frag);
    let mut other_port = l2a.clone();
    let len2 = other_port
        .build_tx(&mut frame, 4, addr("198.18.0.2:9"))
        .unwrap();
    ea.inject_frame(&frame[..len2]);
    let mut other_mac = good.clone();
    other_mac[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    ea.inject_frame(&other_mac);
    let got = recv_all(&mut eb);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, b"good");
    let s = eb.stats();
    assert_eq!(
        (
            s.rx_packets,
            s.rx_malformed,
            s.rx_bad_checksum,
            s.rx_fragments,
            s.rx_dropped
        ),
        (1, 1, 1, 1, 2),
        "{s:?}"
    );
}

fn fix_ipv4(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let c = !tarte_dataplane::wire::checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn arp_requests_for_us_are_answered() {
    let me = addr("198.18.0.2:4433");
    let ep = L2Endpoint::new(MAC_B, me, None);
    let mut l2 = ep.clone();
    let req = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: MAC_A,
        source_protocol_addr: Ipv4Addr::new(198, 18, 0, 1),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: Ipv4Addr::new(198, 18, 0, 2),
    };
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&MAC_A.0);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    req.emit(&mut tarte_dataplane::wire::ArpPacket::new_unchecked(
        &mut f[14..],
    ))
    .unwrap();
    assert_eq!(l2.parse_rx(&f), RxVerdict::ArpRequest(req));
    let mut out = [0xa5u8; 64];
    assert_eq!(ep.build_arp_reply(&req, &mut out).unwrap(), 60);
    assert_eq!(&out[0..6], &MAC_A.0);
    assert_eq!(&out[6..12], &MAC_B.0);
    let mut l2a = L2Endpoint::new(MAC_A, addr("198.18.0.1:1"), None);
    // A reply is not a request for A: dropped, but it parses as the reply.
    assert_eq!(l2a.parse_rx(&out[..60]), RxVerdict::Drop);
    let p = tarte_dataplane::wire::ArpPacket::new_checked(&out[14..60]).unwrap();
    assert_eq!(ArpRepr::parse(&p).unwrap(), req.reply(MAC_B));
    // A request for someone else is dropped.
    let mut other = f;
    other[41] = 9;
    assert_eq!(l2.parse_rx(&other), RxVerdict::Drop);
}

#[test]
fn neighbour_tables_parse() {
    let arp = "IP address       HW type     Flags       HW address            Mask     Device\n\
               198.18.0.2       0x1         0x6         02:00:00:00:00:02     *        veth0\n\
               198.18.0.3       0x1         0x0         00:00:00:00:00:00     *        veth0\n\
               198.18.0.4       0x1         0x2         02:00:00:00:00:04     *        veth1\n";
    let v4 = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let mac = |s: &str| EthernetAddress::parse(s).unwrap();
    assert_eq!(
        l2::parse_proc_net_arp(arp, v4("198.18.0.2"), None),
        Some(mac("02:00:00:00:00:02"))
    );
    assert_eq!(l2::parse_proc_net_arp(arp, v4("198.18.0.3"), None), None);
    assert_eq!(
        l2::parse_proc_net_arp(arp, v4("198.18.0.4"), Some("veth0")),
        None
    );
    assert_eq!(
        l2::parse_proc_net_arp(arp, v4("198.18.0.4"), Some("veth1")),
        Some(mac("02:00:00:00:00:04"))
    );
    let neigh = "2001:db8::2 dev veth0 lladdr 02:00:00:00:00:02 PERMANENT\n\
                 2001:db8::3 dev veth0  FAILED\n";
    let v6 = |s: &str| s.parse().unwrap();
    assert_eq!(
        l2::parse_ip_neigh(neigh, v6("2001:db8::2"), Some("veth0")),
        Some(mac("02:00:00:00:00:02"))
    );
    assert_eq!(
        l2::parse_ip_neigh(neigh, v6("2001:db8::2"), Some("veth1")),
        None
    );
    assert_eq!(l2::parse_ip_neigh(neigh, v6("2001:db8::3"), None), None);
    // Resolution: a seeded cache entry, and a miss that names the address.
    let mut ep = L2Endpoint::new(MAC_A, addr("198.18.0.1:1"), None)
        .with_interface(Some("tarte-no-such-if".into()));
    ep.add_neighbour("198.18.0.2".parse().unwrap(), MAC_B);
    assert_eq!(ep.resolve("198.18.0.2".parse().unwrap()).unwrap(), MAC_B);
    let e = ep.resolve("198.18.0.99".parse().unwrap()).unwrap_err();
    assert!(e.to_string().contains("198.18.0.99"), "{e}");
}

/// A `Write` that tests can read back after handing it away.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Splits a pcap stream into its records, checking the global header.
fn pcap_records(data: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(u32::from_ne_bytes(data[0..4].try_into().unwrap()), MAGIC);
    assert_eq!(u16::from_ne_bytes(data[4..6].try_into().unwrap()), 2);
    assert_eq!(u16::from_ne_bytes(data[6..8].try_into().unwrap()), 4);
    assert_eq!(u32::from_ne_bytes(data[20..24].try_into().unwrap()), 1);
    let mut out = Vec::new();
    let mut at = 24;
    while at < data.len() {
        let incl = u32::from_ne_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        let orig = u32::from_ne_bytes(data[at + 12..at + 16].try_into().unwrap()) as usize;
        assert_eq!(incl, orig);
        out.push(data[at + 16..at + 16 + incl].to_vec());
        at += 16 + incl;
    }
    assert_eq!(at, data.len());
    out
}

#[test]
fn pcap_capture_of_real_frames() {
    let (a, b) = (addr("198.18.0.1:40000"), addr("198.18.0.2:4433"));
    let (mut ea, mut eb) = mem::pair(a, b, MemConfig::default());
    let buf = SharedBuf::default();
    eb.capture_rx(Box::new(buf.clone())).unwrap();
    send_all(&mut ea, b, 0..4);
    assert_eq!(recv_all(&mut eb).len(), 4);
    eb.stop_capture().unwrap();
    let recs = pcap_records(&buf.0.lock().unwrap());
    assert_eq!(recs.len(), 4);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(&r[0..6], &MAC_B.0);
        assert_eq!(&r[42..], &payload(i)[..]);
    }
}

#[test]
fn pcap_middleware_records_both_directions() {
    let (a, b) = (addr("198.18.0.1:40000"), addr("198.18.0.2:4433"));
    let (ea, mut eb) = mem::pair(a, b, MemConfig::default());
    let buf = SharedBuf::default();
    let mut pa = PcapBackend::new(ea, buf.clone()).unwrap();
    send_all(&mut pa, b, 0..3);
    send_all(&mut eb, a, 10..12);
    assert_eq!(recv_all(&mut pa).len(), 2);
    assert_eq!(pa.name(), "mem");
    let (_inner, out) = pa.finish().unwrap();
    let recs = pcap_records(&out.0.lock().unwrap());
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0], synth_frame(a, b, &payload(0)));
    assert_eq!(recs[3], synth_frame(b, a, &payload(10)));
    // The synthesised frames are valid: another endpoint parses them.
    let mut l2b = L2Endpoint::new(EthernetAddress([2, 0, 0, 0, 0, 2]), b, None);
    match l2b.parse_rx(&recs[1]) {
        RxVerdict::Deliver { payload: r, meta } => {
            assert_eq!(&recs[1][r], &payload(1)[..]);
            assert_eq!(meta, DgramMeta { src: a, dst: b });
        }
        v => panic!("{v:?}"),
    }
}
