//! HTTP/3 interop with aioquic 1.7.2 both ways over loopback UDP, running
//! the example client and server code in-process, directly and through a
//! relay with 5% loss, 5% reordering and 1% duplication each way. Python comes from
//! `TARTE_AIOQUIC_PYTHON` (default `<workspace>/.venv/bin/python`, made by
//! scripts/setup.sh); without it the tests fail, they never skip.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tarte_tests::relay::{lossy, Relay};

#[path = "../examples/common/h3/client.rs"]
mod client;
#[path = "../examples/common/h3/server.rs"]
mod server;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let p = std::env::var_os("TARTE_AIOQUIC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    let ok = Command::new(&p)
        .args([
            "-c",
            "import aioquic; assert aioquic.__version__ == '1.7.2', aioquic.__version__",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "aioquic 1.7.2 not found at {} (run scripts/setup.sh or set TARTE_AIOQUIC_PYTHON)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n as u64).map(server::pattern_byte).collect()
}

/// Certificate files for this test (unique directory, removed on drop).
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn new(tag: &str) -> Certs {
        let dir =
            std::env::temp_dir().join(format!("tarte-h3-interop-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = tarte::testing::self_signed_cert();
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        std::fs::write(dir.join("index.html"), b"<h1>tarte</h1>\n").unwrap();
        Certs { dir }
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process killed on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// aioquic's server, started and waited for ("ready").
fn aioquic_server(certs: &Certs, extra: &[&str]) -> (Kill, u16, std::sync::mpsc::Receiver<String>) {
    let port = free_port();
    let mut child = Command::new(python())
        .arg(workspace().join("scripts/interop/aioquic_h3_server.py"))
        .args(["--port", &port.to_string()])
        .arg("--cert")
        .arg(certs.dir.join("cert.pem"))
        .arg("--key")
        .arg(certs.dir.join("key.pem"))
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let kill = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("aioquic server did not start");
    assert_eq!(line, format!("ready {port}"));
    (kill, port, rx)
}

fn lines(rx: &std::sync::mpsc::Receiver<String>) -> Vec<serde_json::Value> {
    let mut v = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
        v.push(serde_json::from_str(&l).unwrap());
    }
    v
}

fn tarte_client(port: u16, paths: &[String]) -> client::ClientOptions {
    let urls = paths
        .iter()
        .map(|p| format!("https://127.0.0.1:{port}{p}"))
        .collect();
    let mut o = client::ClientOptions::get(urls).unwrap();
    o.verify = false;
    o.timeout = Duration::from_secs(30);
    o
}

/// A 200 response whose body is the 10 MB `/bytes/10000000` pattern.
fn assert_10mb_pattern(r: &client::Response) {
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 10_000_000);
    assert_eq!(
        hex(&Sha256::digest(&r.body)),
        hex(&Sha256::digest(pattern(10_000_000)))
    );
}

// ---- tarte client ↔ aioquic server ----

#[test]
fn tarte_client_gets_small_and_10mb_from_aioquic() {
    let certs = Certs::new("c-get");
    let (_srv, port, _rx) = aioquic_server(&certs, &[]);
    let out = client::fetch(&tarte_client(
        port,
        &["/hello".into(), "/bytes/10000000".into()],
    ))
    .unwrap();
    assert_eq!(out.responses[0].status, 200);
    assert_eq!(out.responses[0].body, b"hello from aioquic /hello\n");
    let big = &out.responses[1];
    assert_10mb_pattern(big);
}

#[test]
fn tarte_client_resumes_and_requests_in_zero_rtt_from_aioquic() {
    let certs = Certs::new("c-0rtt");
    let (_k, port, rx) = aioquic_server(&certs, &[]);
    let mut o = tarte_client(port, &["/bytes/30000".into(), "/bytes/5".into()]);
    o.early_data = true;
    let first = client::fetch(&o).unwrap();
    assert!(!first.resumed && !first.sent_early);
    o.session = Some(first.session.expect("a ticket from aioquic"));
    let second = client::fetch(&o).unwrap();
    assert!(second.resumed && second.sent_early);
    for (r, n) in second.responses.iter().zip([30_000, 5]) {
        assert_eq!(r.status, 200);
        assert_eq!(r.body, pattern(n));
    }
    // aioquic's side: a full handshake, then one resumed with our two
    // requests accepted in 0-RTT.
    let hs: Vec<(bool, bool)> = lines(&rx)
        .iter()
        .filter(|v| v.get("handshake").is_some())
        .map(|v| {
            (
                v["resumed"].as_bool().unwrap(),
                v["early_data"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(hs, [(false, false), (true, true)]);
}

#[test]
fn tarte_client_posts_1mb_with_trailers_to_aioquic() {
    let certs = Certs::new("c-post");
    let (_srv, port, _rx) = aioquic_server(&certs, &[]);
    let mut o = tarte_client(port, &["/upload".into()]);
    o.method = "POST".into();
    let body = pattern(1 << 20);
    o.body = Some(body.clone());
    o.trailers = vec![("x-upload-done".into(), "1".into())];
    let out = client::fetch(&o).unwrap();
    let r = &out.responses[0];
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-received-length").unwrap(),
        (1 << 20).to_string()
    );
    assert_eq!(
        r.header("x-received-sha256").unwrap(),
        hex(&Sha256::digest(&body))
    );
    assert_eq!(r.header("x-request-trailer-x-upload-done").unwrap(), "1");
    // Trailers from aioquic.
    let out = client::fetch(&tarte_client(port, &["/trailers".into()])).unwrap();
    let r = &out.responses[0];
    assert_eq!(
        r.header("x-body-sha256").unwrap(),
        hex(&Sha256::digest(&r.body))
    );
    assert_eq!(r.trailers.len(), 2);
}

#[test]
fn tarte_client_200_concurrent_and_dynamic_table_with_aioquic() {
    let certs = Certs::new("c-200");
    let (_srv, port, rx) = aioquic_server(&certs, &[]);
    let paths: Vec<String> = (0..200).map(|i| format!("/item/{i}")).collect();
    let mut o = tarte_client(port, &paths);
    o.headers = vec![(
        "x-custom-field".into(),
        "the same value on every request".into(),
    )];
    let out = client::fetch(&o).unwrap();
    for (i, r) in out.responses.iter().enumerate() {
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-echo-path").unwrap(), format!("/item/{i}"));
        assert_eq!(r.body, format!("hello from aioquic /item/{i}\n").as_bytes());
    }
    // aioquic's encoder inserted into our decoder's table...
    assert!(out.qpack.decoder_insert_count > 0, "{:?}", out.qpack);
    // ...and ours into aioquic's: its decoder received encoder-stream bytes
    // beyond the stream type.
    let stats = lines(&rx);
    let max = stats
        .iter()
        .filter_map(|v| v["encoder_bytes_received"].as_u64())
        .max()
        .unwrap();
    assert!(max > 1, "{stats:?}");
    assert!(out.qpack.encoder_insert_count > 0);
}

#[test]
fn goaway_between_tarte_client_and_aioquic_server() {
    let certs = Certs::new("c-goaway");
    let (_srv, port, rx) = aioquic_server(&certs, &["--goaway-after", "1"]);
    let mut o = tarte_client(port, &["/a".into()]);
    o.send_goaway = true;
    let out = client::fetch(&o).unwrap();
    assert_eq!(out.responses[0].status, 200);
    // aioquic sent GOAWAY(4) after the first response; we saw it.
    assert_eq!(out.goaway, Some(4));
    let l = lines(&rx);
    assert!(l.iter().any(|v| v["goaway_sent"] == 4), "{l:?}");
    // Our GOAWAY reached aioquic's control stream parser (aioquic keeps
    // only the frame type).
    assert!(l.iter().any(|v| v["goaway_received"] == true), "{l:?}");
}

// ---- aioquic client ↔ tarte server ----

struct TarteServer {
    stop: Arc<AtomicBool>,
    stats: Arc<server::ServerStats>,
    thread: Option<std::thread::JoinHandle<()>>,
    port: u16,
    _certs: Certs,
}

impl TarteServer {
    fn start(tag: &str, goaway_after: u64) -> TarteServer {
        let certs = Certs::new(tag);
        let opts = server::ServerOptions {
            cert: certs.dir.join("cert.pem"),
            key: certs.dir.join("key.pem"),
            root: certs.dir.clone(),
            goaway_after,
        };
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut s = server::Server::bind(addr, opts).unwrap();
        let port = s.local_addr().port();
        let stats = s.stats.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || s.run(&st).unwrap());
        TarteServer {
            stop,
            stats,
            thread: Some(thread),
            port,
            _certs: certs,
        }
    }
}

impl Drop for TarteServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn aioquic_client(port: u16, args: &[&str]) -> Vec<serde_json::Value> {
    let start = Instant::now();
    let out = Command::new(python())
        .arg(workspace().join("scripts/interop/aioquic_h3_client.py"))
        .args(["--port", &port.to_string()])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aioquic client failed after {:?}",
        start.elapsed()
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn aioquic_client_gets_small_and_10mb_from_tarte() {
    let s = TarteServer::start("s-get", 0);
    let r = aioquic_client(
        s.port,
        &["--path", "/index.html", "--path", "/bytes/10000000"],
    );
    assert_eq!(r[0]["headers"][0][1], "200");
    assert_eq!(r[0]["len"], 15);
    assert_eq!(r[1]["len"], 10_000_000);
    assert_eq!(r[1]["sha256"], hex(&Sha256::digest(pattern(10_000_000))));
    assert_eq!(s.stats.h3_errors.load(Ordering::Relaxed), 0);
}

#[test]
fn aioquic_client_posts_1mb_with_trailers_to_tarte() {
    let s = TarteServer::start("s-post", 0);
    let r = aioquic_client(
        s.port,
        &[
            "--method",
            "POST",
            "--path",
            "/up",
            "--body-size",
            "1048576",
            "--trailer",
            "x-done=yes",
        ],
    );
    let h: Vec<(String, String)> = serde_json::from_value(r[0]["headers"].clone()).unwrap();
    let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get("x-received-length").unwrap(), "1048576");
    assert_eq!(
        get("x-received-sha256").unwrap(),
        hex(&Sha256::digest(pattern(1 << 20)))
    );
    assert_eq!(get("x-request-trailer-x-done").unwrap(), "yes");
    // Our trailers to aioquic.
    let r = aioquic_client(s.port, &["--path", "/trailers"]);
    let t: Vec<(String, String)> = serde_json::from_value(r[0]["trailers"].clone()).unwrap();
    assert_eq!(t[0].0, "x-body-sha256");
    assert_eq!(t[0].1, r[0]["sha256"].as_str().unwrap());
}

#[test]
fn aioquic_client_200_concurrent_and_dynamic_table_with_tarte() {
    let s = TarteServer::start("s-200", 0);
    let r = aioquic_client(s.port, &["--path", "/bytes/1000", "--count", "200"]);
    let responses: Vec<_> = r.iter().filter(|v| v.get("path").is_some()).collect();
    assert_eq!(responses.len(), 200);
    for v in &responses {
        assert_eq!(v["headers"][0][1], "200");
        assert_eq!(v["sha256"], hex(&Sha256::digest(pattern(1000))));
    }
    assert_eq!(s.stats.requests.load(Ordering::Relaxed), 200);
    // aioquic's encoder used our decoder's dynamic table...
    assert!(s.stats.decoder_inserts.load(Ordering::Relaxed) > 0);
    // ...and our encoder aioquic's.
    let stats = r.iter().find(|v| v["stats"] == true).unwrap();
    assert!(
        stats["encoder_bytes_received"].as_u64().unwrap() > 1,
        "{stats}"
    );
}

#[test]
fn goaway_between_aioquic_client_and_tarte_server() {
    let s = TarteServer::start("s-goaway", 1);
    let r = aioquic_client(s.port, &["--path", "/bytes/10", "--goaway"]);
    assert_eq!(r[0]["len"], 10);
    let stats = r.iter().find(|v| v["stats"] == true).unwrap();
    // Our server's GOAWAY after the first request reached aioquic's
    // control stream parser (aioquic keeps only the frame type).
    assert_eq!(stats["goaways"].as_array().unwrap().len(), 1, "{stats}");
    // aioquic's GOAWAY reached us.
    let t = Instant::now();
    while s.stats.goaways_received.load(Ordering::Relaxed) == 0
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.stats.goaways_received.load(Ordering::Relaxed), 1);
    assert_eq!(s.stats.h3_errors.load(Ordering::Relaxed), 0);
}

// ---- through a relay that drops, reorders and duplicates datagrams ----

#[test]
fn tarte_client_gets_10mb_from_aioquic_through_loss() {
    let certs = Certs::new("c-lossy");
    let (_srv, port, _rx) = aioquic_server(&certs, &[]);
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], port)), lossy(21)).unwrap();
    let mut o = tarte_client(relay.addr.port(), &["/bytes/10000000".into()]);
    o.timeout = Duration::from_secs(120);
    let out = client::fetch(&o).unwrap();
    let big = &out.responses[0];
    assert_10mb_pattern(big);
    let stats = relay.stop().unwrap();
    assert!(stats.impaired_both_ways(), "{stats:?}");
}

#[test]
fn aioquic_client_gets_10mb_from_tarte_through_loss() {
    let s = TarteServer::start("s-lossy", 0);
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], s.port)), lossy(22)).unwrap();
    let r = aioquic_client(relay.addr.port(), &["--path", "/bytes/10000000"]);
    assert_eq!(r[0]["headers"][0][1], "200");
    assert_eq!(r[0]["len"], 10_000_000);
    assert_eq!(r[0]["sha256"], hex(&Sha256::digest(pattern(10_000_000))));
    assert_eq!(s.stats.h3_errors.load(Ordering::Relaxed), 0);
    let stats = relay.stop().unwrap();
    assert!(stats.impaired_both_ways(), "{stats:?}");
}
