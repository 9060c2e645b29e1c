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

/// Fetches `/` and `/bytes/BIG` from `listen` with the h3 client on a
/// thread inside `ns` (a kernel UDP socket) and checks every byte.
fn fetch_and_check(ns: &str, listen: SocketAddr) {
    let urls = ["/", &format!("/bytes/{BIG}")]
        .iter()
        .map(|p| format!("https://{listen}{p}"))
        .collect();
    let out = VethPair::run_in(ns, move || {
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
    fetch_and_check(&pair.a.ns, listen);
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

/// `tarte serve --backend dpdk` on the server's veth end, through DPDK's
/// `net_af_xdp` and `net_af_packet` vdevs with `--no-huge`. EAL initialises
/// once per process, so the server runs in a child: this test binary
/// re-executed (`--exact <case>`) with `TARTE_SERVE_ROLE=serve` inside the
/// server's namespace. It prints a ready line, serves until the parent
/// closes its stdin (bounded), then prints its counters and exits.
#[cfg(feature = "dpdk")]
mod dpdk_common;

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::io::Read;
    use std::net::SocketAddr;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use tarte_dataplane::backend::BackendKind;
    use tarte_dataplane::serve::{ServeOptions, Server};
    use tarte_dataplane::testutil::VethPair;

    use super::dpdk_common::{env, wait_exit, wait_line, Kid};

    const ROLE: &str = "TARTE_SERVE_ROLE";
    const CASE_DEADLINE: Duration = Duration::from_secs(60);

    fn parse_mac(s: &str) -> [u8; 6] {
        let v: Vec<u8> = s
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).expect("mac byte"))
            .collect();
        v.try_into().expect("six mac bytes")
    }

    /// Child role: the server on DPDK until stdin closes.
    fn serve_role() {
        let iface = env("TARTE_SERVE_IFACE");
        let listen: SocketAddr = env("TARTE_SERVE_LISTEN").parse().unwrap();
        let mut o = ServeOptions::new(BackendKind::Dpdk, listen);
        o.backend.interface = Some(iface.clone());
        // The client's MAC: no ARP needed for the first answer.
        o.backend.dst_mac = Some(parse_mac(&env("TARTE_SERVE_PEER_MAC")));
        match env("TARTE_SERVE_PMD").as_str() {
            "af_xdp" => {}
            "af_packet" => {
                o.backend.dpdk_args = vec![
                    "--no-pci".into(),
                    format!(
                        "--vdev=net_af_packet0,iface={iface},qpairs=1,\
                         blocksz=4096,framesz=2048,framecnt=2048"
                    ),
                ]
            }
            other => panic!("unknown pmd {other}"),
        }
        let server = Server::start(o).expect("tarte serve on dpdk");
        assert_eq!(server.local_addr(), listen);
        println!("SERVE READY");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = tx.send(());
        });
        rx.recv_timeout(CASE_DEADLINE)
            .expect("the parent never closed stdin");
        let c = server.join().expect("workers stop cleanly");
        println!(
            "SERVE DONE requests={} conns={} tx_over_big={}",
            c.requests,
            c.conns_accepted,
            c.tx_bytes > super::BIG
        );
    }

    fn case(name: &str, tag: &str, pmd: &str) {
        if let Ok(role) = std::env::var(ROLE) {
            assert_eq!(role, "serve", "unknown {ROLE}");
            return serve_role();
        }
        let pair = VethPair::new(tag, 1).expect("creating veth pair (needs root)");
        let listen = SocketAddr::new(pair.b.ip.into(), super::SERVER_PORT);
        let deadline = Instant::now() + CASE_DEADLINE;
        let exe = std::env::current_exe().expect("test binary path");
        let mut kid = Kid(Command::new("ip")
            .args(["netns", "exec", &pair.b.ns])
            .arg(exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, "serve")
            .env("TARTE_SERVE_IFACE", &pair.b.iface)
            .env("TARTE_SERVE_LISTEN", listen.to_string())
            .env("TARTE_SERVE_PEER_MAC", pair.a.mac.to_string())
            .env("TARTE_SERVE_PMD", pmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the server child"));
        wait_line(&mut kid, "SERVE READY");
        super::fetch_and_check(&pair.a.ns, listen);
        drop(kid.0.stdin.take());
        let summary = wait_line(&mut kid, "SERVE DONE");
        wait_exit(&mut kid, "serve", deadline);
        assert_eq!(summary, "SERVE DONE requests=2 conns=1 tx_over_big=true");
    }

    #[test]
    fn serve_dpdk_af_xdp_through_veth() {
        case("dpdk::serve_dpdk_af_xdp_through_veth", "sdx", "af_xdp");
    }

    #[test]
    fn serve_dpdk_af_packet_through_veth() {
        case(
            "dpdk::serve_dpdk_af_packet_through_veth",
            "sdp",
            "af_packet",
        );
    }
}
