//! Helpers for the aioquic interop tests: finding the venv's Python,
//! running aioquic's side as a child process that is killed on drop,
//! temporary directories, certificates, and the tarte hq-interop server on
//! a thread of the test process.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::hq::server::{Server, ServerOptions, ServerStats};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The Python interpreter with aioquic: `$TARTE_AIOQUIC_PYTHON`, else the
/// workspace's `.venv/bin/python` (made by `scripts/setup.sh`). Panics with
/// instructions when it is missing or lacks aioquic: the interop tests
/// fail rather than skip.
pub fn python() -> PathBuf {
    let py = std::env::var_os("TARTE_AIOQUIC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    let out = Command::new(&py)
        .args(["-c", "import aioquic; print(aioquic.__version__)"])
        .output();
    match out {
        Ok(o) if o.status.success() => py,
        Ok(o) => panic!(
            "{} cannot import aioquic ({}): run scripts/setup.sh or set TARTE_AIOQUIC_PYTHON",
            py.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "aioquic's Python {} is missing ({e}): run scripts/setup.sh or set TARTE_AIOQUIC_PYTHON",
            py.display()
        ),
    }
}

/// A script of `scripts/interop/`.
pub fn script(name: &str) -> PathBuf {
    workspace_root().join("scripts/interop").join(name)
}

/// Serializes the interop tests: each moves megabytes through a Python
/// peer on few cores, and the timings they print mean more alone.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A directory removed (with its contents) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory under the system's temporary directory.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tarte-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temporary directory");
        TempDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Writes the test certificate (ECDSA P-256, `localhost` and 127.0.0.1)
/// and its key into `dir`; returns their paths.
pub fn write_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = tarte::testing::self_signed_cert();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert).expect("writing cert.pem");
    std::fs::write(&k, key).expect("writing key.pem");
    (c, k)
}

/// Options for the examples' server on `dir`: the test certificate
/// written there, `dir/www` holding `files`; no Retry, no key updates, a
/// random secret, 30 s idle timeout (change fields as needed).
pub fn server_options(dir: &Path, files: &[(&str, &[u8])]) -> ServerOptions {
    let (cert, key) = write_cert(dir);
    let root = dir.join("www");
    std::fs::create_dir_all(&root).expect("creating www");
    for (name, body) in files {
        std::fs::write(root.join(name), body).expect("writing a served file");
    }
    ServerOptions {
        cert,
        key,
        root,
        retry: false,
        idle_timeout_ms: 30_000,
        key_update_every: None,
        secret: None,
        keylog: None,
        qlog_dir: None,
        pmtud: None,
    }
}

/// `len` random bytes.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    boring::rand::rand_bytes(&mut v).expect("random bytes");
    v
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    boring::sha::sha256(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A child process killed (and reaped) on drop, with its output lines
/// collected by reader threads.
pub struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    /// Everything seen so far, stdout and stderr interleaved.
    log: Arc<Mutex<String>>,
}

impl Proc {
    /// Spawns `cmd` with stdin, stdout and stderr piped. Stdin stays open
    /// until drop (the aioquic server exits when it closes).
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let (tx, log) = (tx.clone(), log.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut l) = log.lock() {
                        l.push_str(&line);
                        l.push('\n');
                    }
                    let _ = tx.send(line);
                }
            });
        }
        Proc {
            name: name.to_string(),
            child,
            lines: rx,
            log,
        }
    }

    /// Waits for an output line starting with `prefix`; returns the rest.
    /// Panics (with the output so far) after `timeout`.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(_) => panic!(
                    "{}: no line starting with {prefix:?} within {timeout:?}; exit status {:?}; output:\n{}",
                    self.name,
                    self.child.try_wait().ok().flatten(),
                    self.log()
                ),
            }
        }
    }

    /// Waits for the process to exit; kills it and panics after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Let the reader threads drain the pipes.
                    std::thread::sleep(Duration::from_millis(50));
                    return status;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "{}: still running after {timeout:?}, killed; output:\n{}",
                        self.name,
                        self.log()
                    );
                }
                Err(e) => panic!("{}: wait failed: {e}", self.name),
            }
        }
    }

    /// The output so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An aioquic hq-interop server (scripts/interop/aioquic_hq_server.py)
/// serving `root` on a free port of 127.0.0.1.
pub struct AioquicServer {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl AioquicServer {
    /// Starts it with the certificate in `cert_dir` and `extra` flags
    /// (`--retry`, `--chacha`); waits until it listens.
    pub fn start(cert_dir: &Path, root: &Path, extra: &[&str]) -> AioquicServer {
        let (cert, key) = write_cert(cert_dir);
        let mut cmd = Command::new(python());
        cmd.arg(script("aioquic_hq_server.py"))
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--root")
            .arg(root)
            .args(extra);
        let mut proc = Proc::spawn("aioquic server", cmd);
        let port: u16 = proc
            .wait_line("LISTENING ", Duration::from_secs(20))
            .parse()
            .expect("port in the LISTENING line");
        AioquicServer {
            proc,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }
}

/// Runs the aioquic hq-interop client (scripts/interop/aioquic_hq_client.py)
/// with `args`, bounded by `timeout` (its own `--timeout` is set a little
/// shorter so that it reports). Returns its exit status and output.
pub fn run_aioquic_client(args: &[String], timeout: Duration) -> (ExitStatus, String) {
    let mut cmd = Command::new(python());
    cmd.arg(script("aioquic_hq_client.py"))
        .arg("--timeout")
        .arg(format!("{}", timeout.as_secs_f64() * 0.9))
        .args(args);
    let mut p = Proc::spawn("aioquic client", cmd);
    let status = p.wait(timeout);
    (status, p.log())
}

/// Runs the aioquic hq-interop client on `urls` with `flags`, bodies into
/// `out` (created); panics with its output unless it succeeds. Returns its
/// output.
pub fn aioquic_fetch(out: &Path, urls: &[String], flags: &[&str], timeout: Duration) -> String {
    std::fs::create_dir_all(out).unwrap();
    let mut args: Vec<String> = vec!["--output".into(), out.display().to_string()];
    args.extend(flags.iter().map(|s| s.to_string()));
    args.extend_from_slice(urls);
    let (status, log) = run_aioquic_client(&args, timeout);
    assert!(status.success(), "aioquic client failed ({status}):\n{log}");
    log
}

/// The tarte hq-interop server of the examples, running on a thread of
/// the test process; stopped and joined on drop.
pub struct TarteServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TarteServer {
    /// Starts it on a free port of 127.0.0.1.
    pub fn start(opts: ServerOptions) -> TarteServer {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), opts)
    }

    /// Starts it on `addr` (a restarted server takes its old port).
    pub fn start_at(addr: SocketAddr, opts: ServerOptions) -> TarteServer {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut server = match Server::bind(addr, &opts) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let _ = tx.send(Ok((server.local_addr(), server.stats())));
            server.run(&stop2)
        });
        let (addr, stats) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server thread reports its address")
            .unwrap_or_else(|e| panic!("starting the tarte server: {e}"));
        TarteServer {
            addr,
            stats,
            stop,
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Stops the server and returns how its loop ended.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for TarteServer {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Drives `conn` over `socket` until `done` holds or `limit` passes;
/// returns whether `done` held.
pub fn drive(
    socket: &UdpSocket,
    conn: &mut tarte::Connection,
    limit: Duration,
    mut done: impl FnMut(&mut tarte::Connection) -> bool,
) -> bool {
    let local = socket.local_addr().unwrap();
    let end = Instant::now() + limit;
    let (mut buf, mut out) = (vec![0u8; 65_536], vec![0u8; 65_536]);
    while Instant::now() < end {
        if done(conn) {
            return true;
        }
        crate::hq::recv_batch(socket, &mut buf, Duration::from_millis(5), |pkt, from| {
            let _ = conn.recv(pkt, tarte::RecvInfo { from, to: local });
        })
        .unwrap();
        if conn.timeout_instant().is_some_and(|t| t <= Instant::now()) {
            conn.on_timeout();
        }
        crate::hq::flush(socket, conn, &mut out).unwrap();
    }
    done(conn)
}
