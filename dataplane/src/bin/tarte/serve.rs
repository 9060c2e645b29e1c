//! `tarte serve`: QUIC + HTTP/3 on one backend, with embedded defaults that
//! run on loopback without root.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tarte_dataplane::backend::{BackendKind, XdpMode};
use tarte_dataplane::serve::stats::Counters;
use tarte_dataplane::serve::{ServeOptions, Server};

/// Options of `tarte serve`.
#[derive(Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// Address (IP and UDP port) to serve on.
    #[arg(long, default_value = "127.0.0.1:4433")]
    listen: std::net::SocketAddr,
    /// Backend: udp, afxdp, dpdk.
    #[arg(long, default_value = "udp")]
    backend: BackendKind,
    /// Kernel interface (afxdp, dpdk).
    #[arg(long)]
    interface: Option<String>,
    /// AF_XDP native driver mode instead of generic (skb) mode.
    #[arg(long)]
    xdp_drv: bool,
    /// Worker threads, one backend socket/queue each.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Pin worker i to core i.
    #[arg(long)]
    pin: bool,
    /// PEM certificate chain (default: a self-signed one made in memory).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Serve static files from this directory (default: a built-in page at
    /// `/`); `/bytes/N` always answers N bytes.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Validate client addresses with Retry before accepting.
    #[arg(long)]
    retry: bool,
    /// File holding the server's static secret, 64 hex digits (Retry and
    /// stateless reset tokens, the session ticket key): with the same
    /// secret a restarted server resets the connections it lost and
    /// resumes its earlier sessions. Default: a random secret.
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// Refuse 0-RTT: resuming clients wait for the handshake before their
    /// requests are answered (0-RTT data can be replayed).
    #[arg(long)]
    no_early_data: bool,
    /// Send 1472-byte datagrams (or the client's limit) from the end of
    /// the handshake instead of discovering each path's MTU from 1200
    /// bytes up (RFC 8899): for networks known to carry them.
    #[arg(long)]
    no_pmtud: bool,
    /// Append every connection's TLS secrets to PATH in the NSS key log
    /// format, for Wireshark (anyone holding the file can read the
    /// traffic: for debugging only).
    #[arg(long, value_name = "PATH")]
    keylog: Option<PathBuf>,
    /// Write every connection's qlog (JSON-SEQ, for qvis) into DIR, one
    /// `<trace id>-server.sqlog` file each (a file per connection: for
    /// debugging).
    #[arg(long, value_name = "DIR")]
    qlog_dir: Option<PathBuf>,
    /// Open connections per worker.
    #[arg(long, default_value_t = 10_000)]
    max_conns: usize,
    /// Spin on empty polls instead of backing off (lowest latency, one
    /// busy core per worker).
    #[arg(long)]
    busy_poll: bool,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    duration: Option<f64>,
    /// Print a stats line on stderr every S seconds (0: only at exit).
    #[arg(long, default_value_t = 5.0)]
    stats_interval: f64,
}

/// 32 bytes from a file of 64 hex digits (surrounding whitespace allowed).
fn read_secret(path: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    tarte::token::secret_from_hex(&text)
        .with_context(|| format!("--secret-file {}: expected 64 hex digits", path.display()))
}

fn line(t: &Counters, prev: &Counters, secs: f64) -> String {
    let rate = |a: u64, b: u64| (a - b) as f64 / secs.max(1e-9);
    format!(
        "conns {} open ({} accepted, {} resumed, {} 0-RTT) | req {} ({:.0}/s, {} in 0-RTT) | rx {} pkts {:.1} Mbit/s | tx {} pkts {:.1} Mbit/s | vn {} retry {} reset {} refused {} dropped {} handoff {} tx_err {} | paths {} cids {}",
        t.conns_active,
        t.conns_accepted,
        t.conns_resumed,
        t.conns_early,
        t.requests,
        rate(t.requests, prev.requests),
        t.early_requests,
        t.rx_packets,
        rate(t.rx_bytes, prev.rx_bytes) * 8e-6,
        t.tx_packets,
        rate(t.tx_bytes, prev.tx_bytes) * 8e-6,
        t.version_negotiations,
        t.retries,
        t.stateless_resets,
        t.refused,
        t.dropped,
        t.handed_off,
        t.tx_errors,
        t.path_changes,
        t.cids,
    )
}

pub(crate) fn run(a: ServeArgs) -> anyhow::Result<()> {
    let mut opts = ServeOptions::new(a.backend, a.listen);
    opts.backend.interface = a.interface.clone();
    if a.xdp_drv {
        opts.backend.xdp_mode = XdpMode::Drv;
    }
    opts.workers = a.workers;
    opts.pin = a.pin;
    opts.root = a.root.clone();
    opts.retry = a.retry;
    opts.early_data = !a.no_early_data;
    opts.pmtud = !a.no_pmtud;
    opts.keylog = a.keylog.clone();
    opts.qlog_dir = a.qlog_dir.clone();
    opts.max_conns_per_worker = a.max_conns;
    opts.busy_poll = a.busy_poll;
    if let Some(f) = &a.secret_file {
        opts.secret = Some(read_secret(f)?);
    }
    if let (Some(c), Some(k)) = (&a.cert, &a.key) {
        let cert = std::fs::read(c).with_context(|| format!("reading {}", c.display()))?;
        let key = std::fs::read(k).with_context(|| format!("reading {}", k.display()))?;
        opts.cert_key = Some((cert, key));
    }
    if let Some(r) = &a.root {
        anyhow::ensure!(r.is_dir(), "--root {}: not a directory", r.display());
    }
    let server = Server::start(opts).context("starting tarte serve")?;
    eprintln!(
        "tarte serve: HTTP/3 on https://{} ({} backend, {} worker{}, {}{}); try: cargo run -p tarte-h3 --example http3-client -- --no-verify https://{}/",
        server.local_addr(),
        a.backend,
        a.workers,
        if a.workers == 1 { "" } else { "s" },
        if a.cert.is_some() { "certificate from file" } else { "self-signed certificate" },
        if a.retry { ", Retry on" } else { "" },
        server.local_addr(),
    );
    let start = Instant::now();
    let end = a
        .duration
        .map(|d| start + Duration::from_secs_f64(d.max(0.0)));
    let interval = (a.stats_interval > 0.0).then(|| Duration::from_secs_f64(a.stats_interval));
    let mut prev = Counters::default();
    let mut last = start;
    while !server.is_stopping() {
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        if let Some(iv) = interval {
            if now - last >= iv {
                let t = server.stats();
                eprintln!(
                    "[{:>7.1}s] {}",
                    (now - start).as_secs_f64(),
                    line(&t, &prev, (now - last).as_secs_f64())
                );
                prev = t;
                last = now;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let total = server.join()?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "tarte serve: done after {secs:.1}s: {}",
        line(&total, &Counters::default(), secs)
    );
    Ok(())
}
