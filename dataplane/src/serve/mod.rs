//! `tarte serve`: a QUIC + HTTP/3 server on the dataplane's backends.
//!
//! [`Server::start`] opens one backend instance per worker (the `udp`
//! backend binds every worker's socket to the same address with
//! `SO_REUSEPORT`; frame backends take one NIC queue each) and runs one
//! share-nothing worker thread per instance (`worker`): its own
//! connection table keyed by our connection IDs (which carry the worker
//! index), its own table of client-chosen Initial DCIDs, its own timers and
//! counters. The only shared state is read-only (certificate, Retry key,
//! application) plus one bounded channel per worker for the rare datagram
//! that reaches the wrong worker.

pub mod app;
pub mod cert;
pub mod stats;
pub mod token;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::backend::{self, BackendConfig, BackendError, BackendKind, DgramMeta};
use app::App;
use stats::{Counters, WorkerStats};
use token::TokenKey;

/// Most workers (the worker index is one byte of our connection IDs).
pub const MAX_WORKERS: usize = 256;
/// Datagrams queued per worker for hand-off from other workers.
const HANDOFF_DEPTH: usize = 1024;

/// Errors of `serve` set-up and of its workers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A backend could not be opened or failed.
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
    /// The QUIC configuration was refused (certificate, key, ...).
    #[error("QUIC configuration: {what}: {source:?}")]
    Quic {
        /// What we were doing.
        what: &'static str,
        /// The engine's error.
        source: tarte::Error,
    },
    /// The HTTP/3 configuration was refused.
    #[error("HTTP/3 configuration: {0:?}")]
    H3(tarte_h3::Error),
    /// BoringSSL failed (certificate generation, random numbers).
    #[error("crypto: {0}")]
    Crypto(#[from] boring::error::ErrorStack),
    /// Making the Retry token key failed.
    #[error("retry token key: {0}")]
    Token(#[from] tarte::token::TokenError),
    /// The options cannot work.
    #[error("invalid serve options: {0}")]
    Config(String),
    /// A worker thread could not be started or panicked.
    #[error("worker {0}: {1}")]
    Worker(usize, String),
}

/// What `tarte serve` runs with.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Backend template: `local` is the listen address, `queue` is set per
    /// worker.
    pub backend: BackendConfig,
    /// Worker threads (one backend instance each).
    pub workers: usize,
    /// Pin worker i to core i (modulo the cores there are).
    pub pin: bool,
    /// PEM certificate chain and key; `None`: a self-signed pair generated
    /// in memory.
    pub cert_key: Option<(Vec<u8>, Vec<u8>)>,
    /// Static files; `None`: the built-in page at `/`.
    pub root: Option<PathBuf>,
    /// Validate client addresses with Retry before accepting.
    pub retry: bool,
    /// Open connections per worker; further Initials are dropped.
    pub max_conns_per_worker: usize,
    /// Idle timeout advertised (ms).
    pub idle_timeout_ms: u64,
    /// Spin on empty polls instead of backing off.
    pub busy_poll: bool,
    /// Static secret of Retry tokens and stateless reset tokens; the same
    /// across restarts lets a restarted server reset the connections it
    /// lost (RFC 9000 §10.3). `None`: a random one.
    pub secret: Option<[u8; 32]>,
    /// Accept 0-RTT from resuming clients (RFC 9001 §4.6; replayable, and
    /// this server answers only GETs of static content).
    pub early_data: bool,
    /// Append every connection's TLS secrets to this file, in the NSS key
    /// log format (Wireshark decrypts captures with it; anyone holding it
    /// reads the traffic: for debugging).
    pub keylog: Option<PathBuf>,
    /// Write every connection's qlog (JSON-SEQ) into this directory, one
    /// `<trace id>-server.sqlog` file each (an open file and a write
    /// buffer per connection: for debugging).
    pub qlog_dir: Option<PathBuf>,
    /// Discover each client path's MTU (RFC 8899, RFC 9000 §14.3): send
    /// 1200-byte datagrams until probes show larger ones (up to 1472)
    /// get through. Off: 1472 bytes (or the client's limit) after the
    /// handshake, which a path with a smaller MTU (a tunnel, PPPoE)
    /// drops.
    pub pmtud: bool,
}

impl ServeOptions {
    /// Defaults for `kind` on `listen`: one worker, generated certificate,
    /// built-in document, no Retry.
    pub fn new(kind: BackendKind, listen: SocketAddr) -> ServeOptions {
        ServeOptions {
            backend: BackendConfig::new(kind, listen),
            workers: 1,
            pin: false,
            cert_key: None,
            root: None,
            retry: false,
            max_conns_per_worker: 10_000,
            idle_timeout_ms: 30_000,
            busy_poll: false,
            secret: None,
            early_data: true,
            keylog: None,
            qlog_dir: None,
            pmtud: true,
        }
    }
}

/// A connection's writer into the shared key log file: each line is one
/// `write` to a file opened to append, so lines of concurrent connections
/// do not interleave.
pub(crate) struct KeylogFile(pub(crate) Arc<std::fs::File>);

impl std::io::Write for KeylogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// A datagram handed from the worker that received it to its owner.
pub(crate) struct Handoff {
    pub(crate) buf: Vec<u8>,
    pub(crate) meta: DgramMeta,
}

/// Read-only state every worker shares, plus the stop flag and counters.
pub(crate) struct Shared {
    pub(crate) app: App,
    pub(crate) token_key: TokenKey,
    pub(crate) retry: bool,
    pub(crate) early_data: bool,
    pub(crate) pmtud: bool,
    /// The record of 0-RTT ClientHellos every worker consults: a replay to
    /// any worker is refused 0-RTT.
    pub(crate) replay_guard: tarte::ReplayGuard,
    pub(crate) max_conns: usize,
    pub(crate) busy_poll: bool,
    idle_timeout_ms: u64,
    cert: Vec<u8>,
    key: Vec<u8>,
    pub(crate) stop: AtomicBool,
    /// The key log file, shared by every connection of every worker.
    pub(crate) keylog: Option<Arc<std::fs::File>>,
    /// Where connections write their qlogs.
    pub(crate) qlog_dir: Option<PathBuf>,
    pub(crate) stats: Vec<WorkerStats>,
    pub(crate) handoff: Vec<SyncSender<Handoff>>,
}

impl Shared {
    /// The QUIC configuration of one worker (BoringSSL contexts are per
    /// worker: nothing on the packet path is shared).
    pub(crate) fn quic_config(&self) -> Result<tarte::Config, ServeError> {
        let q = |what| move |source| ServeError::Quic { what, source };
        let mut c = tarte::Config::new(tarte::PROTOCOL_VERSION).map_err(q("new"))?;
        c.load_cert_chain_from_pem(&self.cert)
            .map_err(q("certificate"))?;
        c.load_priv_key_from_pem(&self.key)
            .map_err(q("private key"))?;
        c.set_application_protos(&[b"h3"]).map_err(q("ALPN"))?;
        // Every worker seals session tickets with the key of the static
        // secret: a client resumes on any worker, and after a restart
        // with the same --secret-file.
        let ticket_key = self
            .token_key
            .ticket_key()
            .map_err(|_| ServeError::Config("deriving the session ticket key".into()))?;
        c.set_ticket_key(&ticket_key)
            .map_err(q("session ticket key"))?;
        // 0-RTT (RFC 9001 §4.6): the server answers GETs of static
        // content, which a replay cannot harm.
        if self.early_data {
            c.enable_early_data();
            c.set_replay_guard(&self.replay_guard);
        }
        if self.keylog.is_some() {
            c.log_keys();
        }
        c.set_max_idle_timeout(self.idle_timeout_ms);
        c.set_max_recv_udp_payload_size(1472);
        c.set_max_send_udp_payload_size(1472);
        c.discover_pmtu(self.pmtud);
        c.set_initial_max_data(100_000_000);
        c.set_initial_max_stream_data_bidi_local(10_000_000);
        c.set_initial_max_stream_data_bidi_remote(1_000_000);
        c.set_initial_max_stream_data_uni(1_000_000);
        c.set_initial_max_streams_bidi(1000);
        c.set_initial_max_streams_uni(16);
        Ok(c)
    }
}

/// A running server: its workers and their counters.
pub struct Server {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Result<(), ServeError>>>,
    local: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local", &self.local)
            .field("workers", &self.threads.len())
            .finish()
    }
}

impl Server {
    /// Opens the backends (errors come back here, before any thread runs)
    /// and starts the workers.
    pub fn start(opts: ServeOptions) -> Result<Server, ServeError> {
        if opts.workers == 0 || opts.workers > MAX_WORKERS {
            return Err(ServeError::Config(format!(
                "--workers must be 1..={MAX_WORKERS}, not {}",
                opts.workers
            )));
        }
        let (cert, key) = match opts.cert_key {
            Some(ck) => ck,
            None => cert::self_signed().map_err(|source| ServeError::Quic {
                what: "generating a self-signed certificate",
                source,
            })?,
        };
        let mut backends = Vec::with_capacity(opts.workers);
        let mut bcfg = opts.backend.clone();
        for w in 0..opts.workers {
            bcfg.queue = w as u32;
            let b = backend::open(&bcfg)?;
            if w == 0 {
                // Port 0 picks a port once; every other worker shares it.
                bcfg.local = b.local_addr();
            }
            backends.push(b);
        }
        let local = bcfg.local;
        let mut inboxes = Vec::with_capacity(opts.workers);
        let mut handoff = Vec::with_capacity(opts.workers);
        for _ in 0..opts.workers {
            let (tx, rx) = sync_channel(HANDOFF_DEPTH);
            handoff.push(tx);
            inboxes.push(rx);
        }
        let shared = Arc::new(Shared {
            app: App::new(opts.root.clone()),
            token_key: match opts.secret {
                Some(s) => TokenKey::from_secret(s),
                None => TokenKey::random()?,
            },
            retry: opts.retry,
            early_data: opts.early_data,
            pmtud: opts.pmtud,
            replay_guard: tarte::ReplayGuard::default(),
            max_conns: opts.max_conns_per_worker,
            busy_poll: opts.busy_poll,
            idle_timeout_ms: opts.idle_timeout_ms,
            cert,
            key,
            stop: AtomicBool::new(false),
            keylog: match &opts.keylog {
                Some(path) => Some(Arc::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| {
                            ServeError::Config(format!("key log {}: {e}", path.display()))
                        })?,
                )),
                None => None,
            },
            qlog_dir: match opts.qlog_dir {
                Some(d) if !d.is_dir() => {
                    return Err(ServeError::Config(format!(
                        "qlog directory {}: not a directory",
                        d.display()
                    )))
                }
                d => d,
            },
            stats: (0..opts.workers).map(|_| WorkerStats::default()).collect(),
            handoff,
        });
        // Check the certificate once here so that a bad one fails start.
        shared.quic_config()?;
        let cores = if opts.pin {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut threads = Vec::with_capacity(opts.workers);
        for (w, (b, inbox)) in backends.into_iter().zip(inboxes).enumerate() {
            let sh = Arc::clone(&shared);
            let core = (!cores.is_empty()).then(|| cores[w % cores.len()]);
            let t = std::thread::Builder::new()
                .name(format!("tarte-w{w}"))
                .spawn(move || {
                    if let Some(core) = core {
                        if !core_affinity::set_for_current(core) {
                            tracing::warn!(worker = w, core = core.id, "pinning failed");
                        }
                    }
                    let r =
                        worker::Worker::new(w, b, inbox, Arc::clone(&sh)).and_then(|wk| wk.run());
                    if let Err(e) = &r {
                        tracing::error!(worker = w, %e, "worker stopped");
                        // One worker failing stops the server.
                        sh.stop.store(true, Ordering::Relaxed);
                    }
                    r
                })
                .map_err(|e| ServeError::Worker(w, e.to_string()))?;
            threads.push(t);
        }
        tracing::info!(%local, workers = opts.workers, retry = opts.retry, "serving HTTP/3");
        Ok(Server {
            shared,
            threads,
            local,
        })
    }

    /// The address the workers listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Each worker's counters as last published.
    pub fn worker_stats(&self) -> Vec<Counters> {
        self.shared.stats.iter().map(WorkerStats::read).collect()
    }

    /// The sum over workers.
    pub fn stats(&self) -> Counters {
        let mut t = Counters::default();
        for c in self.worker_stats() {
            t.add(&c);
        }
        t
    }

    /// Whether the workers were asked to stop (or one failed).
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// Asks the workers to stop (they close their connections first).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the workers and waits for them; the first worker error wins.
    pub fn join(mut self) -> Result<Counters, ServeError> {
        self.stop();
        let mut first = Ok(());
        for (w, t) in self.threads.drain(..).enumerate() {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(ServeError::Worker(w, "panicked".into())));
            if first.is_ok() {
                first = r;
            }
        }
        first.map(|()| self.stats())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
