//! `tarte serve` end to end on loopback: the server runs in-process on a
//! free port (every run bounded), clients are the h3 example client (our
//! own stack) and aioquic's HTTP/3 client (an independent one, through
//! `TARTE_AIOQUIC_PYTHON`, default `<workspace>/.venv/bin/python`; missing,
//! the test fails, it never skips).

#[path = "../../h3/examples/common/h3/client.rs"]
mod client;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tarte_dataplane::backend::BackendKind;
use tarte_dataplane::serve::app::{pattern_byte, INDEX_HTML};
use tarte_dataplane::serve::{ServeOptions, Server};
use tarte_tests::interop::{drive, TempDir};
use tarte_tests::relay::{lossy, Relay};

fn start(f: impl FnOnce(&mut ServeOptions)) -> Server {
    let mut o = ServeOptions::new(BackendKind::Udp, "127.0.0.1:0".parse().unwrap());
    f(&mut o);
    Server::start(o).unwrap()
}

/// Our HTTP/3 client's options for GETs of `paths` from `server`.
fn client_opts(server: &Server, paths: &[&str]) -> client::ClientOptions {
    let port = server.local_addr().port();
    let urls = paths
        .iter()
        .map(|p| format!("https://127.0.0.1:{port}{p}"))
        .collect();
    let mut o = client::ClientOptions::get(urls).unwrap();
    o.verify = false;
    o.timeout = Duration::from_secs(20);
    o
}

fn get(server: &Server, paths: &[&str]) -> client::Outcome {
    client::fetch(&client_opts(server, paths)).unwrap()
}

fn pattern(n: u64) -> Vec<u8> {
    (0..n).map(pattern_byte).collect()
}

/// Waits (bounded) until the workers have published `f`'s condition.
fn wait_for(
    server: &Server,
    what: &str,
    f: impl Fn(&tarte_dataplane::serve::stats::Counters) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(5);
    while !f(&server.stats()) {
        assert!(Instant::now() < end, "{what}: {:?}", server.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn index_and_a_megabyte_over_h3() {
    let server = start(|_| {});
    let out = get(
        &server,
        &[
            "/",
            "/bytes/1000000",
            "/bytes/0",
            "/nope",
            "/bytes/2000000000",
        ],
    );
    let r = &out.responses;
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].body, INDEX_HTML);
    assert_eq!(
        r[0].header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(r[1].status, 200);
    assert_eq!(r[1].body.len(), 1_000_000);
    assert!(
        r[1].body == pattern(1_000_000),
        "body bytes differ from the pattern"
    );
    assert_eq!(r[1].header("content-length").as_deref(), Some("1000000"));
    assert_eq!((r[2].status, r[2].body.len()), (200, 0));
    assert_eq!(r[3].status, 404);
    // Over the 1 GiB bound.
    assert_eq!(r[4].status, 400);
    wait_for(&server, "5 requests", |c| {
        c.requests == 5 && c.conns_accepted == 1
    });
    let total = server.join().unwrap();
    assert!(total.rx_packets > 10 && total.tx_packets > 700, "{total:?}");
    assert!(total.tx_bytes > 1_000_000, "{total:?}");
}

#[test]
fn static_root_refuses_traversal() {
    let dir = std::env::temp_dir().join(format!("tarte-serve-root-{}", std::process::id()));
    let root = dir.join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("index.html"), b"<p>root index</p>").unwrap();
    std::fs::write(root.join("sub/a.txt"), b"file a").unwrap();
    std::fs::write(dir.join("secret"), b"outside").unwrap();
    let server = start(|o| o.root = Some(root.clone()));
    let out = get(
        &server,
        &[
            "/",
            "/sub/a.txt",
            "/../secret",
            "/sub/../../secret",
            "/bytes/10",
        ],
    );
    let r = &out.responses;
    assert_eq!(
        (r[0].status, &r[0].body[..]),
        (200, &b"<p>root index</p>"[..])
    );
    assert_eq!((r[1].status, &r[1].body[..]), (200, &b"file a"[..]));
    assert_eq!(r[2].status, 404);
    assert_eq!(r[3].status, 404);
    assert_eq!(r[4].body, pattern(10));
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_version_gets_version_negotiation() {
    let server = start(|_| {});
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let dcid = [0x11u8; 12];
    let scid = [0x22u8; 5];
    let mut pkt = vec![0xc0u8];
    pkt.extend_from_slice(&0x0a1a_2a3au32.to_be_bytes());
    pkt.push(dcid.len() as u8);
    pkt.extend_from_slice(&dcid);
    pkt.push(scid.len() as u8);
    pkt.extend_from_slice(&scid);
    // Too small: RFC 9000 §14.1 says no answer (no amplification).
    sock.send_to(&pkt, server.local_addr()).unwrap();
    pkt.resize(1200, 0);
    sock.send_to(&pkt, server.local_addr()).unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(from, server.local_addr());
    let b = &buf[..n];
    assert_eq!(b[0] & 0x80, 0x80, "long header");
    assert_eq!(&b[1..5], &[0, 0, 0, 0], "version 0: Version Negotiation");
    // RFC 9000 §17.2.1: the DCID is the client's SCID and vice versa.
    assert_eq!(usize::from(b[5]), scid.len());
    assert_eq!(&b[6..11], &scid);
    assert_eq!(usize::from(b[11]), dcid.len());
    assert_eq!(&b[12..24], &dcid);
    let versions: Vec<u32> = b[24..]
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert!(versions.contains(&1), "{versions:x?}");
    wait_for(&server, "one VN", |c| {
        c.version_negotiations == 1 && c.conns_accepted == 0
    });
    // The small one was dropped, not answered.
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(sock.recv_from(&mut buf).is_err(), "second answer");
}

#[test]
fn retry_then_requests_complete() {
    let server = start(|o| o.retry = true);
    let out = get(&server, &["/", "/bytes/50000"]);
    assert_eq!(out.responses[0].body, INDEX_HTML);
    assert_eq!(out.responses[1].body, pattern(50_000));
    wait_for(&server, "retry + 2 requests", |c| {
        c.retries >= 1 && c.conns_accepted == 1 && c.requests == 2 && c.tokens_rejected == 0
    });
}

#[test]
fn two_workers_share_the_port() {
    let server = start(|o| o.workers = 2);
    assert_eq!(server.worker_stats().len(), 2);
    let port = server.local_addr().port();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let url = format!("https://127.0.0.1:{port}/bytes/{}", 1000 + i);
                let mut o = client::ClientOptions::get(vec![url]).unwrap();
                o.verify = false;
                o.timeout = Duration::from_secs(20);
                client::fetch(&o).unwrap().responses.remove(0).body
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), pattern(1000 + i as u64));
    }
    wait_for(&server, "6 connections", |c| {
        c.conns_accepted == 6 && c.requests == 6
    });
}

#[test]
fn connection_limit_refuses_extra_initials() {
    // A limit of 0 open connections: every Initial is refused, the client
    // times out.
    let server = start(|o| o.max_conns_per_worker = 0);
    let port = server.local_addr().port();
    let mut o = client::ClientOptions::get(vec![format!("https://127.0.0.1:{port}/")]).unwrap();
    o.verify = false;
    o.timeout = Duration::from_secs(1);
    assert!(client::fetch(&o).is_err());
    wait_for(&server, "refused", |c| {
        c.refused >= 1 && c.conns_accepted == 0
    });
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let p = std::env::var_os("TARTE_AIOQUIC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import aioquic"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "aioquic not found at {} (run scripts/setup.sh or set TARTE_AIOQUIC_PYTHON)",
        p.display()
    );
    p
}

fn sha256_hex(b: &[u8]) -> String {
    boring::hash::hash(boring::hash::MessageDigest::sha256(), b)
        .unwrap()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Runs aioquic's HTTP/3 client (scripts/interop/aioquic_h3_client.py)
/// against `port` with `args`; returns its JSON lines (one per response,
/// then stats and events such as a migration).
fn aioquic_h3(port: u16, args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(python())
        .arg(workspace().join("scripts/interop/aioquic_h3_client.py"))
        .args(["--port", &port.to_string()])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "aioquic client failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The client's response lines are exactly `paths`, in order, each with
/// the right length and SHA-256 (`/bytes/N`: the pattern; `/`: the index).
fn assert_bodies(lines: &[serde_json::Value], paths: &[&str]) {
    let got: Vec<_> = lines
        .iter()
        .filter(|v| v.get("path").is_some())
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["len"].as_u64().unwrap(),
                r["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<_> = paths
        .iter()
        .map(|&p| {
            let body = match p.strip_prefix("/bytes/") {
                Some(n) => pattern(n.parse().unwrap()),
                None => INDEX_HTML.to_vec(),
            };
            (p.to_string(), body.len() as u64, sha256_hex(&body))
        })
        .collect();
    assert_eq!(got, want);
}

/// aioquic's HTTP/3 client fetching `/bytes/5000` with the session file
/// `session`; returns whether it resumed the session stored there.
fn aioquic_resumes(port: u16, session: &std::path::Path) -> bool {
    let session = session.display().to_string();
    let lines = aioquic_h3(port, &["--path", "/bytes/5000", "--session-file", &session]);
    assert_bodies(&lines, &["/bytes/5000"]);
    let stats = lines.iter().find(|v| v.get("stats").is_some()).unwrap();
    stats["resumed"].as_bool().unwrap()
}

#[test]
fn our_client_requests_in_zero_rtt() {
    let server = start(|o| o.workers = 2);
    let mut o = client_opts(&server, &["/bytes/40000", "/"]);
    o.early_data = true;
    let first = client::fetch(&o).unwrap();
    assert!(!first.resumed && !first.sent_early);
    o.session = first.session;
    let second = client::fetch(&o).unwrap();
    assert!(second.resumed && second.sent_early);
    assert_eq!(second.responses[0].body, pattern(40_000));
    assert_eq!(second.responses[1].body, INDEX_HTML);
    wait_for(&server, "a connection in 0-RTT", |c| {
        c.requests == 4 && c.conns_early == 1 && c.conns_resumed == 1
    });
    server.stop();
    server.join().unwrap();
    // A server refusing 0-RTT resumes but answers after the handshake.
    let server = start(|o| o.early_data = false);
    o.urls = client_opts(&server, &["/bytes/40000"]).urls;
    let first = client::fetch(&o).unwrap();
    o.session = first.session;
    let second = client::fetch(&o).unwrap();
    assert!(second.resumed && !second.sent_early);
    assert_eq!(second.responses[0].body, pattern(40_000));
    wait_for(&server, "no request from 0-RTT", |c| {
        c.requests == 2 && c.conns_early == 0 && c.early_requests == 0 && c.conns_resumed == 1
    });
}

#[test]
fn aioquic_client_requests_in_zero_rtt() {
    let dir = TempDir::new("serve-0rtt");
    let session = dir.path().join("ticket.pickle").display().to_string();
    let server = start(|o| o.workers = 2);
    let port = server.local_addr().port();
    let args = [
        "--path",
        "/bytes/70000",
        "--path",
        "/",
        "--session-file",
        &session,
        "--zero-rtt",
    ];
    let mut early = Vec::new();
    for _ in 0..2 {
        let lines = aioquic_h3(port, &args);
        assert_bodies(&lines, &["/bytes/70000", "/"]);
        let stats = lines.iter().find(|v| v.get("stats").is_some()).unwrap();
        early.push(stats["early_data"].as_bool().unwrap());
    }
    // The second connection's two requests went in 0-RTT, the server
    // accepted them and answered before its handshake completed.
    assert_eq!(early, [false, true]);
    wait_for(&server, "a connection in 0-RTT", |c| {
        c.requests == 4 && c.conns_early == 1 && c.conns_resumed == 1
    });
}

#[test]
fn aioquic_client_resumes_on_any_worker_and_after_a_restart() {
    let secret = [0x17u8; 32];
    let dir = TempDir::new("serve-resume");
    let session = dir.path().join("ticket.pickle");
    let server = start(|o| {
        o.workers = 2;
        o.secret = Some(secret);
    });
    let port = server.local_addr().port();
    // Each run is a new connection from a new port, so SO_REUSEPORT spreads
    // them over both workers; the ticket key is common to all.
    let runs: Vec<bool> = (0..4).map(|_| aioquic_resumes(port, &session)).collect();
    assert_eq!(runs, [false, true, true, true]);
    wait_for(&server, "3 resumed of 4", |c| {
        c.conns_accepted == 4 && c.conns_resumed == 3
    });
    server.stop();
    server.join().unwrap();
    // A restarted server with the same secret resumes the last ticket.
    let server = start(|o| o.secret = Some(secret));
    assert!(aioquic_resumes(server.local_addr().port(), &session));
    wait_for(&server, "resumed after restart", |c| c.conns_resumed == 1);
    server.stop();
    server.join().unwrap();
    // One with another secret cannot open it: a full handshake instead.
    let server = start(|o| o.secret = Some([0x18u8; 32]));
    assert!(!aioquic_resumes(server.local_addr().port(), &session));
    wait_for(&server, "full handshake", |c| {
        c.conns_accepted == 1 && c.conns_resumed == 0
    });
}

#[test]
fn aioquic_client_fifty_requests() {
    let server = start(|_| {});
    // --count repeats every --path: 2 x 25 requests on one connection.
    let lines = aioquic_h3(
        server.local_addr().port(),
        &["--path", "/bytes/20000", "--path", "/", "--count", "25"],
    );
    let responses: Vec<_> = lines.iter().filter(|v| v.get("stats").is_none()).collect();
    assert_eq!(responses.len(), 50);
    let want = sha256_hex(&pattern(20_000));
    for r in &responses {
        let status = r["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == ":status")
            .map(|h| h[1].as_str().unwrap().to_string());
        assert_eq!(status.as_deref(), Some("200"), "{r}");
        if r["path"] == "/" {
            assert_eq!(r["sha256"], sha256_hex(INDEX_HTML));
        } else {
            assert_eq!(
                (r["len"].as_u64(), r["sha256"].as_str()),
                (Some(20_000), Some(&want[..]))
            );
        }
    }
    wait_for(&server, "50 requests", |c| {
        c.requests == 50 && c.conns_accepted == 1
    });
}

/// aioquic's HTTP/3 client fetches 10 MB from `tarte serve` (two workers)
/// through a relay configured as `cfg`; checks every byte and the single
/// request; `path_changes` is how many client moves the server must have
/// followed. Returns the relay's counts.
fn aioquic_10mb_through(
    cfg: tarte_tests::relay::RelayConfig,
    path_changes: u64,
) -> tarte_tests::relay::RelayStats {
    let server = start(|o| o.workers = 2);
    let relay = Relay::start(server.local_addr(), cfg).unwrap();
    let lines = aioquic_h3(relay.addr.port(), &["--path", "/bytes/10000000"]);
    assert_bodies(&lines, &["/bytes/10000000"]);
    wait_for(&server, "1 request, the path changes", |c| {
        c.requests == 1 && c.conns_accepted == 1 && c.path_changes == path_changes
    });
    relay.stop().unwrap()
}

// Loss, reordering and duplication between aioquic and `tarte serve`
// (two workers): 10 MB must still arrive byte-exact.
#[test]
fn aioquic_client_10mb_through_loss() {
    let stats = aioquic_10mb_through(lossy(41), 0);
    assert!(stats.impaired_both_ways(), "{stats:?}");
}

// A NAT rebinding mid-download (RFC 9000 §9.3): the worker that owns the
// connection follows the client to its new port.
#[test]
fn aioquic_client_10mb_across_a_nat_rebinding() {
    let stats = aioquic_10mb_through(
        tarte_tests::relay::RelayConfig {
            rebind_after: Some(100),
            ..Default::default()
        },
        1,
    );
    assert_eq!(stats.rebinds, 1, "{stats:?}");
}

// Path MTU discovery, on by default: over a path of 1300 bytes (a
// tunnel, say) the server's 1472-byte datagrams would all be lost; it
// starts at 1200 and only its probes are too large.
#[test]
fn aioquic_client_10mb_over_a_small_mtu() {
    let stats = aioquic_10mb_through(
        tarte_tests::relay::RelayConfig {
            max_datagram: 1300,
            ..Default::default()
        },
        0,
    );
    assert!((1..=18).contains(&stats.s2c.oversize), "{stats:?}");
}

// RFC 9000 §10.3: a connection's reset token comes from the server's
// static secret and its connection ID, and a short-header packet for an
// ID no connection holds (as after a restart) gets a Stateless Reset with
// that token, shorter than the packet; one too short to undercut does not.
#[test]
fn unknown_connections_get_a_stateless_reset() {
    let secret = [0x17u8; 32];
    let key = tarte::token::TokenKey::from_secret(secret);
    let server = start(|o| o.secret = Some(secret));

    // A real connection advertises the derived token for its ID.
    let (_socket, conn) = tarte_client(&server, 2);
    let server_cid = conn.destination_id().to_vec();
    let advertised = conn
        .peer_transport_params()
        .and_then(|tp| tp.stateless_reset_token);
    assert_eq!(advertised, Some(key.reset_token(&server_cid).unwrap()));

    // A packet for an ID of worker 0 that no connection holds.
    let mut dcid = [0u8; 16];
    dcid[1..].copy_from_slice(&[0x5a; 15]);
    let mut pkt = vec![0x41u8; 100];
    pkt[1..17].copy_from_slice(&dcid);
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    probe.send_to(&pkt, server.local_addr()).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = probe.recv_from(&mut buf).unwrap();
    assert_eq!(n, 43);
    assert_eq!(buf[0] & 0xc0, 0x40, "a short header");
    assert_eq!(
        &buf[n - 16..n],
        &key.reset_token(&dcid).unwrap().to_be_bytes()
    );
    // 22 bytes: a reset would have to be 21 or less to be shorter.
    probe.send_to(&pkt[..21], server.local_addr()).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(probe.recv_from(&mut buf).is_err(), "no answer to 21 bytes");
    wait_for(&server, "1 reset", |c| c.stateless_resets == 1);
}

/// The binary: `tarte serve --listen ... --duration` answers, then exits 0.
#[test]
fn binary_serves_and_stops_after_duration() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tarte"))
        .args([
            "serve",
            "--listen",
            &listen.to_string(),
            "--duration",
            "4",
            "--stats-interval",
            "1",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut o = client::ClientOptions::get(vec![format!("https://{listen}/bytes/3000")]).unwrap();
    o.verify = false;
    o.timeout = Duration::from_secs(3);
    let r = client::fetch(&o);
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("tarte serve did not stop after --duration");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(r.unwrap().responses[0].body, pattern(3000), "{err}");
    assert!(err.contains("tarte serve: done after"), "{err}");
    assert!(err.contains("req 1 "), "{err}");
    assert!(err.contains(" | paths 0 cids "), "{err}");
}

/// A tarte client with `limit` as its active_connection_id_limit, on a
/// fresh loopback socket, established with `server`.
fn tarte_client(server: &Server, limit: u64) -> (UdpSocket, tarte::Connection) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut config = tarte::Config::new(tarte::PROTOCOL_VERSION).unwrap();
    config.verify_peer(false);
    config.set_application_protos(&[b"h3"]).unwrap();
    config.set_max_idle_timeout(10_000);
    // Room for the server's HTTP/3 control and QPACK streams, which it
    // opens at once (without it the server closes the connection).
    config.set_initial_max_data(1_000_000);
    config.set_initial_max_stream_data_uni(100_000);
    config.set_initial_max_stream_data_bidi_local(100_000);
    config.set_initial_max_streams_uni(3);
    config.set_active_connection_id_limit(limit);
    let scid = tarte::ConnectionId::from_ref(&[9u8; 16]).into_owned();
    let mut conn = tarte::connect(
        Some("localhost"),
        &scid,
        socket.local_addr().unwrap(),
        server.local_addr(),
        &mut config,
    )
    .unwrap();
    assert!(drive(&socket, &mut conn, Duration::from_secs(10), |c| {
        c.is_established()
    }));
    (socket, conn)
}

/// Reads (and drops) whatever waits on `socket`.
fn discard_pending(socket: &UdpSocket) {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1500];
    while socket.recv_from(&mut buf).is_ok() {}
}

// RFC 9000 §5.1.1, §9.5: the server issues the client as many connection
// IDs as its active_connection_id_limit allows, routes each to the owning
// worker, replaces the one the client retires when it migrates, and the
// routing tables hold exactly the live IDs: none once the connection is
// gone. The spare IDs' reset tokens are the static secret's: after a
// restart with the same secret, a packet on the migrated path (carrying a
// spare ID) gets a Stateless Reset that the client recognises.
#[test]
fn spare_connection_ids_route_migrate_and_leave_the_tables() {
    let secret = [0x29u8; 32];
    let server = start(|o| {
        o.workers = 2;
        o.secret = Some(secret);
    });
    let addr = server.local_addr();
    let (socket, mut conn) = tarte_client(&server, 5);
    // Four spares beside the one in use; the tables hold our five IDs
    // and the client's first Initial DCID.
    assert!(drive(&socket, &mut conn, Duration::from_secs(5), |c| {
        c.available_dcids() == 4
    }));
    wait_for(&server, "5 + 1 routed IDs", |c| {
        c.cids == 6 && c.conns_active == 1 && c.path_changes == 0
    });

    // Migrate to a new local port: the client uses a spare ID and
    // retires the first; the server drops the retired one from its table
    // and issues a replacement.
    let first = conn.destination_id().to_vec();
    let moved = UdpSocket::bind("127.0.0.1:0").unwrap();
    conn.migrate_source(moved.local_addr().unwrap()).unwrap();
    let spare = conn.destination_id().to_vec();
    assert_ne!(spare, first);
    assert!(usize::from(spare[0]) < 2, "a worker index: {spare:x?}");
    assert!(drive(&moved, &mut conn, Duration::from_secs(5), |c| {
        c.available_dcids() == 4
    }));
    wait_for(&server, "the retired ID replaced", |c| {
        c.cids == 6 && c.path_changes == 1 && c.conns_active == 1
    });
    assert!(!conn.is_closed());

    // A restart with the same secret: the next packet on the new path
    // meets no connection and comes back as a Stateless Reset carrying
    // the token the spare ID was issued with.
    server.join().unwrap();
    discard_pending(&moved);
    let server = start(|o| {
        o.backend.local = addr;
        o.secret = Some(secret);
    });
    conn.stream_send(0, b"after the restart", true).unwrap();
    assert!(drive(&moved, &mut conn, Duration::from_secs(5), |c| {
        c.is_draining() || c.is_closed()
    }));
    assert_eq!(
        conn.peer_error().map(|e| &e.reason[..]),
        Some(&b"stateless reset"[..])
    );
    wait_for(&server, "a reset, no connection", |c| {
        c.stateless_resets >= 1 && c.conns_accepted == 0 && c.cids == 0
    });
}

// Connections that close free every routing entry they had (ours, the
// spares, the client's first DCID).
#[test]
fn closed_connections_leave_no_routing_entries() {
    let server = start(|o| o.workers = 2);
    let mut clients: Vec<_> = (0..3).map(|_| tarte_client(&server, 4)).collect();
    for (s, c) in clients.iter_mut() {
        let ok = drive(s, c, Duration::from_secs(5), |c| c.available_dcids() == 3);
        assert!(ok, "{} spares, {:?}", c.available_dcids(), server.stats());
    }
    wait_for(&server, "3 x (4 + 1) routed IDs", |c| {
        c.cids == 15 && c.conns_active == 3
    });
    for (s, c) in clients.iter_mut() {
        c.close(true, 0, b"done").unwrap();
        assert!(drive(s, c, Duration::from_secs(5), |c| c.is_closed()));
    }
    wait_for(&server, "all freed", |c| {
        c.cids == 0 && c.conns_active == 0 && c.conns_closed == 3
    });
}

// aioquic's HTTP/3 client migrates to a new local port in the middle of a
// 5 MB download from `tarte serve` (two workers) and fetches more on the
// same connection: every byte arrives, the client really moved and used
// one of the seven spare IDs the server issued (aioquic's limit is 8),
// the server followed it, and no routing entry outlives the connection.
#[test]
fn aioquic_client_migrates_mid_download() {
    let server = start(|o| o.workers = 2);
    let lines = aioquic_h3(
        server.local_addr().port(),
        &[
            "--path",
            "/bytes/5000000",
            "--path",
            "/bytes/300000",
            "--path",
            "/",
            "--migrate",
            "--migrate-after",
            "1000000",
        ],
    );
    assert_bodies(&lines, &["/bytes/5000000", "/bytes/300000", "/"]);
    let m = lines
        .iter()
        .find(|v| v.get("migration").is_some())
        .expect("a migration line");
    let (old, new) = (
        m["old_port"].as_u64().unwrap(),
        m["new_port"].as_u64().unwrap(),
    );
    assert!(old != 0 && new != 0 && old != new, "{m}");
    // Mid-download: between 1 MB and the end of the first body.
    let at = m["at_bytes"].as_u64().unwrap();
    assert!((1_000_000..5_000_000).contains(&at), "{m}");
    assert_eq!(m["spare_dcids"], 7, "{m}");
    let (d0, d1) = (
        m["old_dcid"].as_str().unwrap(),
        m["new_dcid"].as_str().unwrap(),
    );
    assert!(d0 != d1 && d1.len() == 32, "{m}");
    assert!(d1.starts_with("00") || d1.starts_with("01"), "{m}");
    wait_for(&server, "3 requests, one path change, tables empty", |c| {
        c.requests == 3
            && c.conns_accepted == 1
            && c.path_changes == 1
            && c.conns_active == 0
            && c.cids == 0
    });
}

// The same migration through 5% loss, 5% reordering and 1% duplication
// each way, the relay moving its server-facing port when the client moves
// (so the workers see the client migrate): every body still arrives.
#[test]
fn aioquic_client_migrates_through_loss() {
    let server = start(|o| o.workers = 2);
    let relay = Relay::start(
        server.local_addr(),
        tarte_tests::relay::RelayConfig {
            follow_client_moves: true,
            ..lossy(43)
        },
    )
    .unwrap();
    let lines = aioquic_h3(
        relay.addr.port(),
        &[
            "--path",
            "/bytes/3000000",
            "--path",
            "/bytes/1000000",
            "--migrate",
            "--migrate-after",
            "500000",
        ],
    );
    assert_bodies(&lines, &["/bytes/3000000", "/bytes/1000000"]);
    assert!(lines.iter().any(|v| v.get("migration").is_some()));
    let stats = relay.stop().unwrap();
    assert_eq!(stats.rebinds, 1, "{stats:?}");
    // Losses both ways (the client's ~500 datagrams make a duplicate in
    // that direction likely, not certain).
    assert!(
        stats.c2s.dropped > 0 && stats.s2c.dropped > 0 && stats.s2c.duplicated > 0,
        "{stats:?}"
    );
    wait_for(&server, "2 requests, one path change", |c| {
        c.requests == 2 && c.path_changes == 1
    });
}

/// The secrets of a key log file (label, client random, secret), sorted.
fn key_log_lines(path: &std::path::Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut v: Vec<_> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "{l}");
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect();
    v.sort();
    v
}

/// `--keylog`: the secrets `tarte serve` (2 workers) logs for three
/// connections are the ones aioquic's client logged for them (an
/// independent TLS stack deriving the same handshake and 1-RTT secrets),
/// one line per secret, none torn.
#[test]
fn keylog_matches_aioquic_secrets() {
    let dir = TempDir::new("serve-keylog");
    let (ours, theirs) = (
        dir.path().join("serve.keys"),
        dir.path().join("aioquic.keys"),
    );
    let qlogs = dir.path().join("qlog");
    std::fs::create_dir_all(&qlogs).unwrap();
    let server = start(|o| {
        o.workers = 2;
        o.keylog = Some(ours.clone());
        o.qlog_dir = Some(qlogs.clone());
    });
    let port = server.local_addr().port();
    for _ in 0..3 {
        let lines = aioquic_h3(
            port,
            &[
                "--path",
                "/bytes/2000",
                "--secrets-log",
                theirs.to_str().unwrap(),
            ],
        );
        assert_bodies(&lines, &["/bytes/2000"]);
    }
    wait_for(&server, "3 requests", |c| c.requests == 3);
    drop(server);
    let wanted = [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ];
    let pick = |v: Vec<(String, String, String)>| -> Vec<(String, String, String)> {
        v.into_iter()
            .filter(|l| wanted.contains(&l.0.as_str()))
            .collect()
    };
    let (a, b) = (pick(key_log_lines(&ours)), pick(key_log_lines(&theirs)));
    assert_eq!(a.len(), 12, "{a:?}");
    assert_eq!(a, b);
    // `--qlog-dir`: a qlog per connection, each with the response's
    // 2,000 bytes in the STREAM frames it sent.
    let files: Vec<_> = std::fs::read_dir(&qlogs).unwrap().collect();
    assert_eq!(files.len(), 3);
    for f in files {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        let records: Vec<serde_json::Value> = bytes
            .split(|b| *b == 0x1e)
            .skip(1)
            .map(|r| serde_json::from_slice(r).unwrap())
            .collect();
        assert_eq!(records[0]["trace"]["vantage_point"]["type"], "server");
        let stream_bytes: u64 = records
            .iter()
            .filter(|r| r["name"] == "quic:packet_sent")
            .flat_map(|r| r["data"]["frames"].as_array().unwrap().iter())
            .filter(|f| f["frame_type"] == "stream" && f["stream_id"] == 0)
            .map(|f| f["raw"]["payload_length"].as_u64().unwrap())
            .sum();
        assert!(stream_bytes >= 2000, "{stream_bytes}");
    }
}
