//! Interop with aioquic 1.7.2 over loopback, in both directions, speaking
//! hq-interop: the examples' client and server (run in-process, the same
//! code as `cargo run -p tarte --example client|server`) against aioquic's
//! side (scripts/interop/*.py in the workspace venv).
//!
//! A missing venv fails these tests (see `interop::python`). Each test is
//! bounded in time and kills its child process on the way out.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tarte_tests::hq::client::{fetch, ClientOptions, Report};
use tarte_tests::hq::server::{ServerOptions, ServerStats};
use tarte_tests::interop::{
    aioquic_fetch, random_bytes, run_aioquic_client, serial, server_options, sha256_hex,
    AioquicServer, TarteServer, TempDir,
};

const TEN_MB: usize = 10 * 1024 * 1024;

fn client_opts(timeout_s: u64) -> ClientOptions {
    ClientOptions {
        // aioquic's side runs with the test certificate; tarte's verification
        // against it is exercised by `aioquic_client_tarte_server_small_file`
        // the other way round and by the engine's own tests.
        verify: false,
        timeout: Duration::from_secs(timeout_s),
        ..Default::default()
    }
}

fn mbit_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e6
}

/// The 100 files of the parallel-streams tests: distinct names, lengths
/// and contents.
fn hundred_files(root: &Path) -> HashMap<String, Vec<u8>> {
    (0..100)
        .map(|i| {
            let name = format!("f{i:03}.txt");
            let body: Vec<u8> = format!("file {i} ")
                .bytes()
                .cycle()
                .take(1000 + 37 * i)
                .collect();
            std::fs::write(root.join(&name), &body).unwrap();
            (name, body)
        })
        .collect()
}

fn assert_all_ok(report: &Report) {
    for r in &report.responses {
        if let Err(e) = &r.result {
            panic!("{}: {e}", r.url);
        }
    }
}

/// Starts the aioquic server on a fresh root with `files`, runs the tarte
/// client on `paths`, checks every body, and returns the report and the
/// server's HANDSHAKE line.
fn tarte_client_run(
    files: &[(&str, &[u8])],
    paths: &[&str],
    server_flags: &[&str],
    timeout_s: u64,
) -> (Report, String) {
    let dir = TempDir::new("aioq-srv");
    let root = dir.path().join("www");
    std::fs::create_dir(&root).unwrap();
    for (name, body) in files {
        std::fs::write(root.join(name), body).unwrap();
    }
    let mut server = AioquicServer::start(dir.path(), &root, server_flags);
    let urls: Vec<String> = paths.iter().map(|p| server.url(p)).collect();
    let report = fetch(&urls, &client_opts(timeout_s)).unwrap_or_else(|e| {
        panic!(
            "tarte client: {e:#}\naioquic server output:\n{}",
            server.proc.log()
        )
    });
    let hs = server.proc.wait_line("HANDSHAKE ", Duration::from_secs(5));
    (report, hs)
}

/// aioquic's server on a fresh root holding `body` as `/name`.
fn aioquic_serving(tag: &str, name: &str, body: &[u8]) -> (TempDir, AioquicServer) {
    let dir = TempDir::new(tag);
    let root = dir.path().join("www");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join(name), body).unwrap();
    let server = AioquicServer::start(dir.path(), &root, &[]);
    (dir, server)
}

/// aioquic's server holds `len` random bytes as /big.bin; the tarte client
/// fetches them with `opts`; every byte is checked (SHA-256). Returns the
/// client's report.
fn tarte_client_gets_from_aioquic(tag: &str, len: usize, opts: &ClientOptions) -> Report {
    let body = random_bytes(len);
    let (_dir, server) = aioquic_serving(tag, "big.bin", &body);
    let report = fetch(&[server.url("/big.bin")], opts)
        .unwrap_or_else(|e| panic!("tarte client: {e:#}\naioquic:\n{}", server.proc.log()));
    let got = report.responses[0].result.as_ref().unwrap();
    assert_eq!(sha256_hex(got), sha256_hex(&body));
    report
}

#[test]
fn tarte_client_aioquic_server_small_file() {
    let _g = serial();
    let body = b"hello from aioquic\n";
    let (report, hs) = tarte_client_run(&[("hello.txt", body)], &["/hello.txt"], &[], 20);
    assert_all_ok(&report);
    assert_eq!(report.responses[0].result.as_deref().unwrap(), body);
    assert!(hs.contains("alpn=hq-interop"), "{hs}");
    eprintln!(
        "tarte client <- aioquic server: handshake {:.1} ms, {hs}",
        report.handshake_time.as_secs_f64() * 1e3
    );
}

#[test]
fn tarte_client_aioquic_server_missing_file_fails() {
    let _g = serial();
    let (report, _) = tarte_client_run(&[("a.txt", b"a")], &["/a.txt", "/missing.txt"], &[], 20);
    assert_eq!(report.responses[0].result.as_deref().unwrap(), b"a");
    let err = report.responses[1].result.as_ref().unwrap_err();
    assert!(err.contains("reset") && err.contains("0x404"), "{err}");
}

#[test]
fn tarte_client_aioquic_server_10mb_sha256() {
    let _g = serial();
    let body = random_bytes(TEN_MB);
    let want = sha256_hex(&body);
    let (report, _) = tarte_client_run(&[("big.bin", &body)], &["/big.bin"], &[], 120);
    let got = report.responses[0].result.as_ref().unwrap();
    assert_eq!(got.len(), TEN_MB);
    assert_eq!(sha256_hex(got), want);
    let transfer = report.elapsed - report.handshake_time;
    eprintln!(
        "tarte client <- aioquic server: 10 MiB in {:.2} s = {:.0} Mbit/s ({} packets sent, {} received, {} lost)",
        transfer.as_secs_f64(),
        mbit_s(TEN_MB, transfer),
        report.stats.sent,
        report.stats.recv,
        report.stats.lost
    );
}

// RFC 9001 §6 against an independent peer: the tarte client updates its
// keys every 2 MiB of a 10 MiB response; aioquic must follow each update
// (it answers in the new phase) for the body to arrive.
#[test]
fn tarte_client_aioquic_server_key_updates() {
    let _g = serial();
    let opts = ClientOptions {
        key_update_every: Some(2 * 1024 * 1024),
        ..client_opts(120)
    };
    let report = tarte_client_gets_from_aioquic("aioq-ku", TEN_MB, &opts);
    assert!(report.stats.key_updates >= 3, "{:?}", report.stats);
    eprintln!(
        "tarte client <- aioquic server: 10 MiB with {} key updates",
        report.stats.key_updates
    );
}

#[test]
fn tarte_client_aioquic_server_migration() {
    let _g = serial();
    let opts = ClientOptions {
        migrate_after: Some(2 * 1024 * 1024),
        ..client_opts(120)
    };
    let report = tarte_client_gets_from_aioquic("aioq-mig", TEN_MB, &opts);
    let to = report.migrated_to.expect("the client migrated");
    eprintln!(
        "tarte client <- aioquic server: 10 MiB, migrated to {to} after 2 MiB ({} packets lost)",
        report.stats.lost
    );
}

#[test]
fn tarte_client_aioquic_server_probes_then_migrates() {
    let _g = serial();
    let opts = ClientOptions {
        migrate_after: Some(512 << 10),
        probe_first: true,
        ..client_opts(60)
    };
    let report = tarte_client_gets_from_aioquic("aioq-probe", 4 << 20, &opts);
    assert!(report.migrated_to.is_some());
}

#[test]
fn tarte_client_aioquic_server_100_streams() {
    let _g = serial();
    let dir = TempDir::new("files");
    let files = hundred_files(dir.path());
    let mut names: Vec<&String> = files.keys().collect();
    names.sort();
    let list: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), files[*n].as_slice()))
        .collect();
    let paths: Vec<String> = names.iter().map(|n| format!("/{n}")).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (report, _) = tarte_client_run(&list, &paths, &[], 60);
    assert_eq!(report.responses.len(), 100);
    for r in &report.responses {
        let name = r.path.trim_start_matches('/');
        assert_eq!(r.result.as_ref().unwrap(), &files[name], "{}", r.url);
    }
    eprintln!(
        "tarte client <- aioquic server: 100 streams in {:.0} ms",
        report.elapsed.as_secs_f64() * 1e3
    );
}

#[test]
fn tarte_client_aioquic_server_chacha20_only() {
    let _g = serial();
    let body = random_bytes(100_000);
    let (report, hs) = tarte_client_run(&[("c.bin", &body)], &["/c.bin"], &["--chacha"], 20);
    assert_eq!(report.responses[0].result.as_ref().unwrap(), &body);
    assert!(hs.contains("cipher=CHACHA20_POLY1305_SHA256"), "{hs}");
}

#[test]
fn tarte_client_aioquic_server_retry() {
    let _g = serial();
    // aioquic's server with retry=True creates no connection for an Initial
    // without a valid token: a completed transfer means the client took the
    // Retry, echoed its token and checked retry_source_connection_id.
    let body = random_bytes(50_000);
    let (report, hs) = tarte_client_run(&[("r.bin", &body)], &["/r.bin"], &["--retry"], 20);
    assert_eq!(report.responses[0].result.as_ref().unwrap(), &body);
    assert!(hs.contains("alpn=hq-interop"), "{hs}");
}

#[test]
fn tarte_client_aioquic_server_resumes() {
    let _g = serial();
    let body = random_bytes(300_000);
    let (_dir, mut server) = aioquic_serving("aioq-resume", "r.bin", &body);
    let urls = [server.url("/r.bin")];
    let mut opts = client_opts(20);
    let first = fetch(&urls, &opts)
        .unwrap_or_else(|e| panic!("first: {e:#}\naioquic:\n{}", server.proc.log()));
    assert_eq!(first.responses[0].result.as_ref().unwrap(), &body);
    assert!(!first.resumed);
    let hs = server.proc.wait_line("HANDSHAKE ", Duration::from_secs(5));
    assert!(hs.contains("resumed=False"), "{hs}");
    // aioquic's NewSessionTicket, stored with its transport parameters.
    opts.session = Some(first.session.expect("a session ticket from aioquic"));
    let second = fetch(&urls, &opts)
        .unwrap_or_else(|e| panic!("resuming: {e:#}\naioquic:\n{}", server.proc.log()));
    assert_eq!(second.responses[0].result.as_ref().unwrap(), &body);
    assert!(second.resumed, "the tarte client did not resume");
    let hs = server.proc.wait_line("HANDSHAKE ", Duration::from_secs(5));
    assert!(hs.contains("resumed=True"), "{hs}");
    // A fresh ticket came on the resumed connection too; aioquic takes
    // each ticket once, so the first one no longer resumes.
    assert!(second.session.is_some());
    let third = fetch(&urls, &opts)
        .unwrap_or_else(|e| panic!("third: {e:#}\naioquic:\n{}", server.proc.log()));
    assert_eq!(third.responses[0].result.as_ref().unwrap(), &body);
    assert!(!third.resumed);
}

#[test]
fn tarte_client_aioquic_server_zero_rtt() {
    let _g = serial();
    let body = random_bytes(200_000);
    let (_dir, mut server) = aioquic_serving("aioq-0rtt", "z.bin", &body);
    let urls = [server.url("/z.bin"), server.url("/z.bin")];
    let mut opts = ClientOptions {
        early_data: true,
        ..client_opts(20)
    };
    let first = fetch(&urls, &opts).unwrap();
    assert!(!first.sent_early);
    let hs = server.proc.wait_line("HANDSHAKE ", Duration::from_secs(5));
    assert!(hs.contains("early_data=False"), "{hs}");
    opts.session = Some(first.session.expect("a ticket from aioquic"));
    let second = fetch(&urls, &opts)
        .unwrap_or_else(|e| panic!("0-RTT: {e:#}\naioquic:\n{}", server.proc.log()));
    for r in &second.responses {
        assert_eq!(r.result.as_ref().unwrap(), &body);
    }
    assert!(second.resumed && second.sent_early);
    // aioquic accepted the two requests in 0-RTT.
    let hs = server.proc.wait_line("HANDSHAKE ", Duration::from_secs(5));
    assert!(
        hs.contains("resumed=True") && hs.contains("early_data=True"),
        "{hs}"
    );
}

/// What the aioquic client reported.
struct ClientRun {
    /// Its HANDSHAKE line (cipher, ALPN, Retry count).
    handshake: String,
    /// Connection set-up plus every response, as it measured them.
    elapsed: Duration,
}

/// Runs the aioquic client against a tarte server; panics with its output
/// on failure.
fn aioquic_client_run(
    server: &TarteServer,
    out: &Path,
    paths: &[String],
    flags: &[&str],
    timeout_s: u64,
) -> ClientRun {
    let urls: Vec<String> = paths.iter().map(|p| server.url(p)).collect();
    let log = aioquic_fetch(out, &urls, flags, Duration::from_secs(timeout_s));
    let line = |prefix: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{log}"))
            .to_string()
    };
    ClientRun {
        handshake: line("HANDSHAKE "),
        elapsed: Duration::from_secs_f64(line("ELAPSED ").parse().expect("ELAPSED seconds")),
    }
}

struct TarteSide {
    dir: TempDir,
    server: TarteServer,
}

impl TarteSide {
    fn start(retry: bool, files: &[(&str, &[u8])]) -> TarteSide {
        Self::start_with(retry, files, None)
    }

    fn start_with(
        retry: bool,
        files: &[(&str, &[u8])],
        key_update_every: Option<u64>,
    ) -> TarteSide {
        let dir = TempDir::new("tarte-srv");
        let opts = server_options(dir.path(), files);
        std::fs::create_dir_all(opts.root.join("out")).unwrap();
        let server = TarteServer::start(ServerOptions {
            retry,
            key_update_every,
            ..opts
        });
        TarteSide { dir, server }
    }

    fn out(&self) -> std::path::PathBuf {
        let o = self.dir.path().join("out");
        std::fs::create_dir_all(&o).unwrap();
        o
    }

    fn stats(&self) -> &ServerStats {
        &self.server.stats
    }
}

fn load(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn aioquic_client_tarte_server_small_file() {
    let _g = serial();
    let body = b"hello from tarte\n";
    let side = TarteSide::start(false, &[("hello.txt", body)]);
    let out = side.out();
    // The aioquic client verifies the tarte server's certificate chain and
    // its name (the test certificate is for localhost).
    let ca = side.dir.path().join("cert.pem").display().to_string();
    let hs = aioquic_client_run(
        &side.server,
        &out,
        &["/hello.txt".into()],
        &["--ca", &ca, "--server-name", "localhost"],
        20,
    )
    .handshake;
    assert_eq!(std::fs::read(out.join("hello.txt")).unwrap(), body);
    assert!(
        hs.contains("alpn=hq-interop") && hs.contains("retry=0"),
        "{hs}"
    );
    assert_eq!(load(&side.stats().connections), 1);
    assert_eq!(load(&side.stats().established), 1);
    assert_eq!(load(&side.stats().responses), 1);
    assert_eq!(load(&side.stats().retries_sent), 0);
}

#[test]
fn aioquic_client_tarte_server_10mb_sha256() {
    let _g = serial();
    let body = random_bytes(TEN_MB);
    let side = TarteSide::start(false, &[("big.bin", &body)]);
    let out = side.out();
    let run = aioquic_client_run(&side.server, &out, &["/big.bin".into()], &[], 120);
    let elapsed = run.elapsed;
    let got = std::fs::read(out.join("big.bin")).unwrap();
    assert_eq!(got.len(), TEN_MB);
    assert_eq!(sha256_hex(&got), sha256_hex(&body));
    eprintln!(
        "aioquic client <- tarte server: 10 MiB in {:.2} s (handshake included) = {:.0} Mbit/s",
        elapsed.as_secs_f64(),
        mbit_s(TEN_MB, elapsed)
    );
}

// The other way round: the tarte server updates its keys every 2 MiB
// sent; aioquic's client must follow.
#[test]
fn aioquic_client_tarte_server_key_updates() {
    let _g = serial();
    let body = random_bytes(TEN_MB);
    let side = TarteSide::start_with(false, &[("big.bin", &body)], Some(2 * 1024 * 1024));
    let out = side.out();
    aioquic_client_run(&side.server, &out, &["/big.bin".into()], &[], 120);
    let got = std::fs::read(out.join("big.bin")).unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&body));
    let updates = load(&side.stats().key_updates);
    assert!(updates >= 3, "{updates} key updates");
    eprintln!("aioquic client <- tarte server: 10 MiB with {updates} key updates");
}

// The other way round: the aioquic client fetches 1 MiB, changes its
// connection ID and moves to a new local port (old socket closed), then
// fetches 4 MiB more; the tarte server must validate the new path, follow
// it, and switch to one of the client's spare IDs (RFC 9000 §9.5).
#[test]
fn aioquic_client_tarte_server_migration() {
    let _g = serial();
    let (a, b) = (random_bytes(1 << 20), random_bytes(4 << 20));
    let side = TarteSide::start(false, &[("a.bin", &a), ("b.bin", &b)]);
    let out = side.out();
    let urls = [side.server.url("/a.bin"), side.server.url("/b.bin")];
    let log = aioquic_fetch(&out, &urls, &["--migrate"], Duration::from_secs(60));
    let ports: Vec<u16> = log
        .lines()
        .find_map(|l| l.strip_prefix("MIGRATED "))
        .unwrap_or_else(|| panic!("no MIGRATED line:\n{log}"))
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_ne!(ports[0], ports[1], "{log}");
    assert!(std::fs::read(out.join("a.bin")).unwrap() == a);
    assert!(std::fs::read(out.join("b.bin")).unwrap() == b);
    assert_eq!(load(&side.stats().migrations), 1);
    eprintln!(
        "aioquic client <- tarte server: migrated from port {} to {}, 5 MiB byte-exact",
        ports[0], ports[1]
    );
}

#[test]
fn aioquic_client_tarte_server_100_streams() {
    let _g = serial();
    let side = TarteSide::start(false, &[]);
    let root = side.dir.path().join("www");
    let files = hundred_files(&root);
    let out = side.out();
    let mut paths: Vec<String> = files.keys().map(|n| format!("/{n}")).collect();
    paths.sort();
    aioquic_client_run(&side.server, &out, &paths, &[], 60);
    for (name, body) in &files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), body, "{name}");
    }
    assert_eq!(load(&side.stats().responses), 100);
    assert_eq!(load(&side.stats().connections), 1);
}

#[test]
fn aioquic_client_tarte_server_chacha20_only() {
    let _g = serial();
    let body = random_bytes(100_000);
    let side = TarteSide::start(false, &[("c.bin", &body)]);
    let out = side.out();
    let hs =
        aioquic_client_run(&side.server, &out, &["/c.bin".into()], &["--chacha"], 20).handshake;
    assert_eq!(std::fs::read(out.join("c.bin")).unwrap(), body);
    assert!(hs.contains("cipher=CHACHA20_POLY1305_SHA256"), "{hs}");
}

#[test]
fn aioquic_client_tarte_server_retry() {
    let _g = serial();
    let body = random_bytes(50_000);
    let side = TarteSide::start(true, &[("r.bin", &body)]);
    let out = side.out();
    let hs = aioquic_client_run(&side.server, &out, &["/r.bin".into()], &[], 20).handshake;
    assert_eq!(std::fs::read(out.join("r.bin")).unwrap(), body);
    // The client saw exactly one Retry and the server accepted its token.
    assert!(hs.contains("retry=1"), "{hs}");
    assert!(load(&side.stats().retries_sent) >= 1);
    assert_eq!(load(&side.stats().tokens_accepted), 1);
    assert_eq!(load(&side.stats().tokens_rejected), 0);
    assert_eq!(load(&side.stats().established), 1);
}

#[test]
fn aioquic_client_tarte_server_resumes() {
    let _g = serial();
    let body = random_bytes(300_000);
    let side = TarteSide::start(false, &[("r.bin", &body)]);
    let session = side.dir.path().join("session.pickle");
    let session_arg = session.display().to_string();
    let flags = ["--session-file", &session_arg];
    let mut runs = Vec::new();
    for i in 0..3 {
        let out = side.dir.path().join(format!("out{i}"));
        let urls = [side.server.url("/r.bin")];
        let log = aioquic_fetch(&out, &urls, &flags, Duration::from_secs(20));
        assert_eq!(std::fs::read(out.join("r.bin")).unwrap(), body);
        runs.push(log.contains("RESUMED True"));
        assert!(session.exists(), "no ticket from the tarte server:\n{log}");
    }
    // The first run has nothing to resume; each later one resumes the
    // ticket of the run before.
    assert_eq!(runs, [false, true, true]);
    assert_eq!(load(&side.stats().established), 3);
    assert_eq!(load(&side.stats().resumed), 2);
}

#[test]
fn aioquic_client_tarte_server_zero_rtt() {
    let _g = serial();
    let body = random_bytes(100_000);
    let side = TarteSide::start(false, &[("z.bin", &body)]);
    let session = side.dir.path().join("session.pickle");
    let session_arg = session.display().to_string();
    let flags = ["--session-file", &session_arg, "--zero-rtt"];
    let mut early = Vec::new();
    for i in 0..2 {
        let out = side.dir.path().join(format!("out{i}"));
        let urls = [side.server.url("/z.bin")];
        let log = aioquic_fetch(&out, &urls, &flags, Duration::from_secs(20));
        assert_eq!(std::fs::read(out.join("z.bin")).unwrap(), body);
        early.push(log.contains("early=True"));
    }
    // The second connection's request went in 0-RTT, and the server read
    // it before the handshake completed.
    assert_eq!(early, [false, true]);
    assert_eq!(load(&side.stats().early_conns), 1);
    assert_eq!(load(&side.stats().resumed), 1);
}

#[test]
fn aioquic_client_tarte_server_refuses_path_traversal() {
    let _g = serial();
    let side = TarteSide::start(false, &[("ok.txt", b"ok")]);
    std::fs::write(side.dir.path().join("secret.txt"), b"secret").unwrap();
    let out = side.out();
    let mut args: Vec<String> = vec!["--output".into(), out.display().to_string()];
    args.push(side.server.url("/ok.txt"));
    args.push(side.server.url("/../secret.txt"));
    args.push(side.server.url("/missing.txt"));
    let (status, log) = run_aioquic_client(&args, Duration::from_secs(20));
    assert!(!status.success(), "the client must fail:\n{log}");
    assert!(log.contains("reset, code 0x404"), "{log}");
    assert_eq!(std::fs::read(out.join("ok.txt")).unwrap(), b"ok");
    assert!(!out.join("secret.txt").exists());
    assert_eq!(load(&side.stats().refused), 2);
    assert_eq!(load(&side.stats().responses), 1);
}
