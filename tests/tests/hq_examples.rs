//! The examples' hq-interop client against the examples' server, both
//! in-process: concurrent connections through Retry, the client's
//! certificate check and its time bound, and a restarted server resetting
//! the connection it lost.

use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tarte_tests::hq::client::{fetch, ClientOptions};
use tarte_tests::hq::server::ServerOptions;
use tarte_tests::interop::{drive, random_bytes, serial, server_options, TarteServer, TempDir};

fn server(dir: &TempDir, retry: bool, files: &[(String, Vec<u8>)]) -> TarteServer {
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    TarteServer::start(ServerOptions {
        retry,
        idle_timeout_ms: 10_000,
        ..server_options(dir.path(), &files)
    })
}

fn opts(verify: bool, timeout: Duration) -> ClientOptions {
    ClientOptions {
        verify,
        timeout,
        ..Default::default()
    }
}

#[test]
fn concurrent_connections_through_retry() {
    let dir = TempDir::new("hq-conc");
    let files: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| (format!("f{i}.bin"), random_bytes(10_000 + 1000 * i)))
        .collect();
    let srv = server(&dir, true, &files);
    std::thread::scope(|s| {
        for c in 0..8 {
            let (files, srv) = (&files, &srv);
            s.spawn(move || {
                let mine = &files[c * 3..c * 3 + 3];
                let urls: Vec<String> = mine
                    .iter()
                    .map(|(n, _)| srv.url(&format!("/{n}")))
                    .collect();
                let report = fetch(&urls, &opts(false, Duration::from_secs(30)))
                    .unwrap_or_else(|e| panic!("client {c}: {e:#}"));
                for (r, (_, body)) in report.responses.iter().zip(mine) {
                    assert_eq!(r.result.as_ref().unwrap(), body, "{}", r.url);
                }
            });
        }
    });
    let st = &srv.stats;
    assert_eq!(st.connections.load(Ordering::Relaxed), 8);
    assert_eq!(st.tokens_accepted.load(Ordering::Relaxed), 8);
    assert!(st.retries_sent.load(Ordering::Relaxed) >= 8);
    assert_eq!(st.tokens_rejected.load(Ordering::Relaxed), 0);
    assert_eq!(st.responses.load(Ordering::Relaxed), 24);
}

#[test]
fn client_refuses_an_untrusted_certificate() {
    let dir = TempDir::new("hq-verify");
    let srv = server(&dir, false, &[("a".into(), b"a".to_vec())]);
    // No CA given: the self-signed certificate is not trusted.
    let err = fetch(&[srv.url("/a")], &opts(true, Duration::from_secs(10)))
        .expect_err("an untrusted certificate must fail the handshake");
    let msg = format!("{err:#}");
    // BoringSSL's verdict, as the CONNECTION_CLOSE's reason.
    assert!(
        msg.contains(
            "local error transport error 0x130: certificate verify failed: self signed certificate"
        ),
        "{msg}"
    );
    assert_eq!(srv.stats.established.load(Ordering::Relaxed), 0);
}

#[test]
fn client_accepts_the_certificate_it_was_given_to_trust() {
    let dir = TempDir::new("hq-ca");
    let srv = server(&dir, false, &[("a".into(), b"trusted".to_vec())]);
    // The server's self-signed certificate as the trust anchor, checked
    // for the URL's name (localhost) and address (127.0.0.1).
    for url in [
        srv.url("/a"),
        srv.url("/a").replace("127.0.0.1", "localhost"),
    ] {
        let o = ClientOptions {
            ca: Some(dir.path().join("cert.pem")),
            ..opts(true, Duration::from_secs(10))
        };
        let report =
            fetch(std::slice::from_ref(&url), &o).unwrap_or_else(|e| panic!("{url}: {e:#}"));
        assert_eq!(report.responses[0].result.as_ref().unwrap(), b"trusted");
    }
    assert_eq!(srv.stats.established.load(Ordering::Relaxed), 2);
}

#[test]
fn client_gives_up_at_its_timeout() {
    // A socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/x", silent.local_addr().unwrap());
    let t = Instant::now();
    let err = fetch(&[url], &opts(false, Duration::from_millis(800)))
        .expect_err("nobody answers: the client must fail");
    let took = t.elapsed();
    assert!(format!("{err:#}").contains("timed out"), "{err:#}");
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The client did send its Initials there.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = silent.recv_from(&mut buf).expect("an Initial arrived");
    assert!(
        n >= 1200,
        "Initial datagrams are padded to 1200 bytes, got {n}"
    );
    assert_eq!(buf[0] & 0xf0, 0xc0, "long header, Initial");
}

// A server restarted with the same secret answers a packet of a connection
// it lost with a Stateless Reset (RFC 9000 §10.3), so the client learns at
// once instead of after its 30 s idle timeout.
#[test]
fn restarted_server_resets_the_connections_it_lost() {
    let _g = serial();
    let dir = TempDir::new("reset");
    let opts = ServerOptions {
        secret: Some([0x42; 32]),
        ..server_options(dir.path(), &[("a.txt", b"first")])
    };
    let first = TarteServer::start(opts.clone());
    let addr = first.addr;

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut config = tarte_tests::hq::client::client_config(&ClientOptions {
        verify: false,
        ..Default::default()
    })
    .unwrap();
    let scid = [9u8; tarte_tests::hq::CID_LEN];
    let mut conn = tarte::connect(
        Some("localhost"),
        &tarte::ConnectionId::from_ref(&scid),
        socket.local_addr().unwrap(),
        addr,
        &mut config,
    )
    .unwrap();
    assert!(drive(&socket, &mut conn, Duration::from_secs(10), |c| {
        c.is_established()
    }));
    conn.stream_send(0, b"GET /a.txt\r\n", true).unwrap();
    let mut body = Vec::new();
    assert!(drive(&socket, &mut conn, Duration::from_secs(10), |c| {
        let mut b = [0u8; 64];
        while let Ok((n, _)) = c.stream_recv(0, &mut b) {
            body.extend_from_slice(&b[..n]);
        }
        c.stream_finished(0)
    }));
    assert_eq!(body, b"first");

    // The server goes away and comes back on the same port with the same
    // secret, but without the connection. Its goodbye (CONNECTION_CLOSE)
    // is thrown away unread, as if it had crashed.
    first.stop().unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut scratch = [0u8; 2048];
    while socket.recv_from(&mut scratch).is_ok() {}
    socket.set_nonblocking(false).unwrap();
    let second = TarteServer::start_at(addr, opts);
    conn.stream_send(4, b"GET /a.txt\r\n", true).unwrap();
    assert!(
        drive(&socket, &mut conn, Duration::from_secs(5), |c| c
            .peer_error()
            .is_some()),
        "no stateless reset within 5 s"
    );
    assert_eq!(conn.peer_error().unwrap().reason, b"stateless reset");
    assert!(conn.is_draining() || conn.is_closed());
    let resets = second.stats.stateless_resets.load(Ordering::Relaxed);
    assert!(resets >= 1);
}

/// Our client fetches 4 MiB from our server and moves to a new local port
/// after 512 KiB (a probe has the rest of the transfer to complete),
/// closing the old socket (after validating the new path
/// first if `probe_first`); checks every byte and that the server followed.
fn migrate_mid_transfer(tag: &str, probe_first: bool) {
    let dir = TempDir::new(tag);
    let body = random_bytes(4 << 20);
    let srv = server(&dir, false, &[("big.bin".to_string(), body.clone())]);
    let report = fetch(
        &[srv.url("/big.bin")],
        &ClientOptions {
            migrate_after: Some(512 << 10),
            probe_first,
            ..opts(false, Duration::from_secs(30))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(report.responses[0].result.as_ref().unwrap() == &body);
    let to = report.migrated_to.expect("the client migrated");
    assert_eq!(srv.stats.migrations.load(Ordering::Relaxed), 1);
    eprintln!("migrated to {to} after 512 KiB (probed first: {probe_first}); 4 MiB byte-exact");
}

// Connection migration between our own client and server (RFC 9000 §9):
// the rest of the body can only arrive if the server followed the client
// (validated the new path, switched to a fresh connection ID).
#[test]
fn client_migrates_mid_transfer() {
    migrate_mid_transfer("hq-mig", false);
}

// Probing first: our server's PATH_RESPONSE must come back on the probed
// path (RFC 9000 §8.2.2), with a spare connection ID of the client's, for
// the client to move at all.
#[test]
fn client_probes_then_migrates() {
    migrate_mid_transfer("hq-probe", true);
}

/// Our client and server: the second connection resumes and sends its
/// requests in 0-RTT, which the server reads before its handshake
/// completes; a restarted server (another ticket key) cannot resume, so
/// 0-RTT is rejected and the requests go again in 1-RTT.
#[test]
fn zero_rtt_and_its_rejection_after_a_restart() {
    let _g = serial();
    let dir = TempDir::new("hq-0rtt");
    let body = random_bytes(150_000);
    let files = [("z.bin".to_string(), body.clone())];
    let srv = server(&dir, false, &files);
    let urls: Vec<String> = (0..3).map(|_| srv.url("/z.bin")).collect();
    let mut o = ClientOptions {
        early_data: true,
        ..opts(false, Duration::from_secs(20))
    };
    let first = fetch(&urls, &o).unwrap();
    assert!(!first.resumed && !first.sent_early);
    o.session = first.session.clone();
    let second = fetch(&urls, &o).unwrap();
    for r in &second.responses {
        assert_eq!(r.result.as_ref().unwrap(), &body);
    }
    assert!(second.resumed && second.sent_early);
    assert_eq!(srv.stats.early_conns.load(Ordering::Relaxed), 1);
    // Read before the handshake completed, unless the client's Finished
    // came in the same batch.
    assert!(srv.stats.early_requests.load(Ordering::Relaxed) <= 3);
    assert_eq!(srv.stats.resumed.load(Ordering::Relaxed), 1);
    srv.stop().unwrap();

    let srv = server(&dir, false, &files);
    let urls: Vec<String> = (0..3).map(|_| srv.url("/z.bin")).collect();
    o.session = second.session.clone();
    let third = fetch(&urls, &o).unwrap();
    for r in &third.responses {
        assert_eq!(r.result.as_ref().unwrap(), &body);
    }
    assert!(!third.resumed && third.sent_early);
    assert_eq!(srv.stats.early_requests.load(Ordering::Relaxed), 0);
    assert_eq!(srv.stats.early_conns.load(Ordering::Relaxed), 0);
    assert_eq!(srv.stats.responses.load(Ordering::Relaxed), 3);
}

/// (label, client random, secret) of each line of an NSS key log file.
fn key_log(path: &std::path::Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "{l}");
            assert!(f[1].len() == 64 && f[2].len() >= 64, "{l}");
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// `SSLKEYLOGFILE` in the examples (the `keylog` option): client and
/// server append the same secrets for each connection, so that a capture
/// of either side can be decrypted.
#[test]
fn key_logs_of_client_and_server_agree() {
    let _g = serial();
    let dir = TempDir::new("hq-keylog");
    let body = random_bytes(20_000);
    let (ckeys, skeys) = (
        dir.path().join("client.keys"),
        dir.path().join("server.keys"),
    );
    let qlogs = dir.path().join("qlog");
    std::fs::create_dir_all(&qlogs).unwrap();
    let srv = TarteServer::start(ServerOptions {
        keylog: Some(skeys.clone()),
        qlog_dir: Some(qlogs.clone()),
        ..server_options(dir.path(), &[("k.bin", &body)])
    });
    let o = ClientOptions {
        keylog: Some(ckeys.clone()),
        qlog_dir: Some(qlogs.clone()),
        ..opts(false, Duration::from_secs(20))
    };
    for _ in 0..2 {
        let r = fetch(&[srv.url("/k.bin")], &o).unwrap();
        assert_eq!(r.responses[0].result.as_ref().unwrap(), &body);
    }
    srv.stop().unwrap();
    let (c, s) = (key_log(&ckeys), key_log(&skeys));
    let app = |l: &[(String, String, String)]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = l
            .iter()
            .filter(|x| x.0 == "CLIENT_TRAFFIC_SECRET_0" || x.0 == "SERVER_TRAFFIC_SECRET_0")
            .map(|x| (x.1.clone(), x.2.clone()))
            .collect();
        v.sort();
        v
    };
    // Two connections, two secrets each, the same on both sides.
    assert_eq!(app(&c).len(), 4, "{c:?}");
    assert_eq!(app(&c), app(&s));
    assert_ne!(app(&c)[0].0, app(&c)[2].0);
    assert_eq!(c.len(), s.len());

    // `QLOGDIR` (the `qlog_dir` option): a JSON-SEQ qlog per connection and
    // side, client and server of a connection in the same group.
    let mut groups: std::collections::HashMap<String, Vec<String>> = Default::default();
    for e in std::fs::read_dir(&qlogs).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let records: Vec<serde_json::Value> = bytes
            .split(|b| *b == 0x1e)
            .skip(1)
            .map(|r| serde_json::from_slice(r).unwrap())
            .collect();
        let trace = &records[0]["trace"];
        let side = trace["vantage_point"]["type"].as_str().unwrap().to_string();
        let sent = records
            .iter()
            .filter(|r| r["name"] == "quic:packet_sent")
            .count();
        assert!(sent > 3, "{}: {sent} packets", path.display());
        let group = trace["common_fields"]["group_id"].as_str().unwrap();
        groups.entry(group.to_string()).or_default().push(side);
    }
    assert_eq!(groups.len(), 2, "{groups:?}");
    for sides in groups.values_mut() {
        sides.sort();
        assert_eq!(sides, &["client", "server"]);
    }
}
