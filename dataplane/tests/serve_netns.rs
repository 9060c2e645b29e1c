//! `tarte serve` on the kernel-bypass `afxdp` backend (skb and drv modes)
//! inside a network namespace, answering the h3 example client (our own
//! stack over a kernel UDP socket) in the peer namespace across a veth
//! pair. Every body byte is checked and every wait is bounded. Needs root
//! (CI runs as root); namespaces, veths and XDP programs are removed when
//! the pair drops, also when an assertion fails.

#[path = "../../h3/examples/common/h3/client.rs"]
mod client;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use tarte_dataplane::backend::{BackendKind, XdpMode};
use tarte_dataplane::serve::app::{pattern_byte, INDEX_HTML};
use tarte_dataplane::serve::stats::Counters;
use tarte_dataplane::serve::{ServeOptions, Server};
use tarte_dataplane::testutil::VethPair;

const SERVER_PORT: u16 = 4433;
const BIG: u64 = 300_000;

fn pattern(n: u64) -> Vec<u8> {
    (0..n).map(pattern_byte).collect()
}

/// Waits (bounded) until the workers have published `f`'s condition.
fn wait_for(server: &Server, what: &str, f: impl Fn(&Counters) -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !f(&server.stats()) {
        assert!(Instant::now() < end, "{what}: {:?}", server.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `side`'s interface has an XDP program attached.
fn has_xdp(ns: &str, iface: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "link", "show", "dev", iface])
        .output()
        .unwrap();
    assert!(out.status.success(), "ip link show {iface} in {ns}");
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

fn serve_through_veth(tag: &str, mode: XdpMode) {
    let pair = VethPair::new(tag, 1).expect("creating veth pair (needs root)");
    let listen = SocketAddr::new(pair.b.ip.into(), SERVER_PORT);
    let mut opts = ServeOptions::new(BackendKind::AfXdp, listen);
    opts.backend.interface = Some(pair.b.iface.clone());
    opts.backend.xdp_mode = mode;
    // The server starts on a thread inside B: the backend opens there and
    // the worker threads it spawns inherit B's namespace.
    let server =
        VethPair::run_in(&pair.b.ns, move || Server::start(opts)).expect("tarte serve on afxdp");
    assert_eq!(server.local_addr(), listen);
    assert!(
        has_xdp(&pair.b.ns, &pair.b.iface),
        "no XDP program on the server's veth end"
    );
    let urls = ["/", &format!("/bytes/{BIG}")]
        .iter()
        .map(|p| format!("https://{listen}{p}"))
        .collect();
    let out = VethPair::run_in(&pair.a.ns, move || {
        let mut o = client::ClientOptions::get(urls).unwrap();
        o.verify = false;
        o.timeout = Duration::from_secs(20);
        client::fetch(&o)
    })
    .expect("h3 client in the peer namespace");
    let r = &out.responses;
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].status, 200);
    assert!(r[0].body == INDEX_HTML, "index body differs");
    assert_eq!(r[1].status, 200);
    assert_eq!(r[1].body.len() as u64, BIG);
    assert!(
        r[1].body == pattern(BIG),
        "body bytes differ from the pattern"
    );
    assert_eq!(
        r[1].header("content-length"),
        Some(BIG.to_string()),
        "content-length"
    );
    wait_for(&server, "2 requests on 1 connection", |c| {
        c.requests == 2 && c.conns_accepted == 1
    });
    let total = server.join().expect("workers stop cleanly");
    // 300 kB in datagrams of at most 1350 bytes (the client's limit).
    assert!(
        total.tx_packets > BIG / 1350 && total.tx_bytes > BIG,
        "{total:?}"
    );
    assert!(total.rx_packets > 2, "{total:?}");
    // Joining the workers dropped the backend, which detached the program.
    assert!(
        !has_xdp(&pair.b.ns, &pair.b.iface),
        "XDP program left on the server's veth end"
    );
}

#[test]
fn serve_afxdp_skb_through_veth() {
    serve_through_veth("sskb", XdpMode::Skb);
}

#[test]
fn serve_afxdp_drv_through_veth() {
    serve_through_veth("sdrv", XdpMode::Drv);
}
