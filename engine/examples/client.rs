//! An hq-interop (HTTP/0.9 over QUIC) client over a plain UDP socket.
//!
//! ```text
//! cargo run -p tarte --example client -- [--no-verify] [--ca ca.pem] \
//!     [--output DIR] [--timeout 30s] [--migrate-after BYTES] \
//!     [--session-file PATH [--early-data]] \
//!     https://127.0.0.1:4433/a https://127.0.0.1:4433/b
//! ```
//!
//! One connection; every URL on its own stream, in parallel. Bodies go to
//! stdout in the order of the URLs, or to `DIR/<last path segment>`. The
//! exit status is non-zero if anything failed, a timeout included.

#[allow(dead_code, unreachable_pub)]
#[path = "common/hq/mod.rs"]
mod hq;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// hq-interop client.
#[derive(Parser, Debug)]
#[command(
    after_help = "Environment: SSLKEYLOGFILE=PATH appends the TLS secrets of every connection to PATH (NSS key log format, for Wireshark); QLOGDIR=DIR writes the qlog (JSON-SEQ) of every connection into DIR."
)]
struct Args {
    /// Do not verify the server's certificate.
    #[arg(long)]
    no_verify: bool,
    /// Trusted CA certificates (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Write each body to DIR/<last path segment> instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Bound on the whole run, e.g. `30s`, `500ms`, `2m`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// TLS key-exchange groups, e.g. `X25519`.
    #[arg(long)]
    curves: Option<String>,
    /// Initiate a key update each time this many more response bytes
    /// have arrived (RFC 9001 §6).
    #[arg(long, value_name = "BYTES")]
    key_update_every: Option<usize>,
    /// Once this many response bytes have arrived, move the connection to
    /// a new local UDP port (connection migration, RFC 9000 §9.2).
    #[arg(long, value_name = "BYTES")]
    migrate_after: Option<usize>,
    /// With --migrate-after: validate the new path first (PATH_CHALLENGE
    /// from the new port, RFC 9000 §9.1) and move once it answered.
    #[arg(long, requires = "migrate_after")]
    probe_first: bool,
    /// Resume the TLS session stored in this file, if it exists, and store
    /// the server's newest one there (RFC 9001 §4.5).
    #[arg(long, value_name = "PATH")]
    session_file: Option<PathBuf>,
    /// With --session-file: send the requests in 0-RTT when the stored
    /// session allows it (RFC 9001 §4.6).
    #[arg(long, requires = "session_file")]
    early_data: bool,
    /// Discover the path's MTU (RFC 8899, RFC 9000 §14.3), from 1200
    /// bytes of UDP payload up to MAX (and accept datagrams up to MAX);
    /// without it every datagram is 1350 bytes at most.
    #[arg(long, value_name = "MAX", value_parser = clap::value_parser!(u16).range(1200..))]
    pmtud: Option<u16>,
    /// URLs, `https://host:port/path`, all on the same host and port.
    #[arg(required = true)]
    urls: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// The file name a path is saved under: its last segment, `index.html`
/// for a directory, never `.` or `..`.
fn file_name(path: &str) -> String {
    let p = path.split(['?', '#']).next().unwrap_or_default();
    match p.rsplit('/').next() {
        None | Some("" | "." | "..") => "index.html".to_string(),
        Some(s) => s.to_string(),
    }
}

fn save(dir: &Path, r: &hq::client::Response, body: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let f = dir.join(file_name(&r.path));
    std::fs::write(&f, body).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let session = match &args.session_file {
        Some(f) if f.exists() => match std::fs::read(f) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let opts = hq::client::ClientOptions {
        session,
        early_data: args.early_data,
        verify: !args.no_verify,
        ca: args.ca,
        timeout: args.timeout,
        curves: args.curves,
        key_update_every: args.key_update_every,
        migrate_after: args.migrate_after,
        probe_first: args.probe_first,
        keylog: std::env::var_os("SSLKEYLOGFILE").map(Into::into),
        qlog_dir: std::env::var_os("QLOGDIR").map(Into::into),
        pmtud: args.pmtud.map(usize::from),
        ..Default::default()
    };
    let report = match hq::client::fetch(&args.urls, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    let mut stdout = std::io::stdout().lock();
    for r in &report.responses {
        match &r.result {
            Ok(body) => {
                let res = match &args.output {
                    Some(dir) => save(dir, r, body),
                    None => stdout.write_all(body).map_err(Into::into),
                };
                if let Err(e) = res {
                    eprintln!("error: {e:#}");
                    failed = true;
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    let _ = stdout.flush();
    let bytes: usize = report
        .responses
        .iter()
        .filter_map(|r| r.result.as_ref().ok().map(Vec::len))
        .sum();
    eprintln!(
        "{} URLs, {} bytes in {:.3} s (handshake {:.1} ms), {} packets sent, {} lost",
        report.responses.len(),
        bytes,
        report.elapsed.as_secs_f64(),
        report.handshake_time.as_secs_f64() * 1e3,
        report.stats.sent,
        report.stats.lost
    );
    if let Some(to) = report.migrated_to {
        eprintln!("migrated to {to}");
    }
    if let Some(f) = &args.session_file {
        eprintln!("session resumed: {}", report.resumed);
        if args.early_data {
            eprintln!("requests in 0-RTT: {}", report.sent_early);
        }
        if let Some(s) = &report.session {
            if let Err(e) = std::fs::write(f, s) {
                eprintln!("error: {}: {e}", f.display());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
