//! An hq-interop (HTTP/0.9 over QUIC) file server over a plain UDP socket.
//!
//! ```text
//! cargo run -p tarte --example server -- --listen 127.0.0.1:4433 \
//!     --cert cert.pem --key key.pem --root ./www [--retry]
//! ```
//!
//! `GET /path\r\n` on a bidirectional stream answers with the file's bytes
//! and FIN; a missing file (or a path leaving the root) resets the stream
//! with code 0x404. `RUST_LOG=info` (or `debug`) shows what happens.

#[allow(dead_code, unreachable_pub)]
#[path = "common/hq/mod.rs"]
mod hq;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use clap::Parser;

/// hq-interop file server.
#[derive(Parser, Debug)]
#[command(
    after_help = "Environment: SSLKEYLOGFILE=PATH appends the TLS secrets of every connection to PATH (NSS key log format, for Wireshark); QLOGDIR=DIR writes the qlog (JSON-SEQ) of every connection into DIR."
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4433")]
    listen: SocketAddr,
    /// Certificate chain (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// Private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// Directory to serve files from.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Validate client addresses with a Retry first.
    #[arg(long, overrides_with = "no_retry")]
    retry: bool,
    /// Do not send Retry (the default).
    #[arg(long, overrides_with = "retry")]
    no_retry: bool,
    /// Idle timeout in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    idle_timeout: u64,
    /// Initiate a key update on each connection each time it has sent
    /// this many more bytes (RFC 9001 §6).
    #[arg(long, value_name = "BYTES")]
    key_update_every: Option<u64>,
    /// File holding the server's static secret, 64 hex digits: with the
    /// same secret a restarted server resets the connections it lost
    /// (stateless reset, RFC 9000 §10.3) and accepts its Retry tokens.
    /// A random secret when absent.
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// Discover each path's MTU (RFC 8899, RFC 9000 §14.3), from 1200
    /// bytes of UDP payload up to MAX (and accept datagrams up to MAX);
    /// without it every datagram is 1350 bytes at most.
    #[arg(long, value_name = "MAX", value_parser = clap::value_parser!(u16).range(1200..))]
    pmtud: Option<u16>,
}

fn read_secret(path: &Path) -> anyhow::Result<[u8; 32]> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    tarte::token::secret_from_hex(&text)
        .ok_or_else(|| anyhow::anyhow!("{}: expected 64 hex digits", path.display()))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let opts = hq::server::ServerOptions {
        cert: args.cert,
        key: args.key,
        root: args.root,
        retry: args.retry && !args.no_retry,
        idle_timeout_ms: args.idle_timeout,
        key_update_every: args.key_update_every,
        secret: args.secret_file.as_deref().map(read_secret).transpose()?,
        keylog: std::env::var_os("SSLKEYLOGFILE").map(Into::into),
        qlog_dir: std::env::var_os("QLOGDIR").map(Into::into),
        pmtud: args.pmtud.map(usize::from),
    };
    let mut server = hq::server::Server::bind(args.listen, &opts)?;
    eprintln!(
        "listening on {} (hq-interop, retry {})",
        server.local_addr(),
        if opts.retry { "on" } else { "off" }
    );
    // Runs until killed; the stop flag is for embedding (the tests).
    let stop = AtomicBool::new(false);
    server.run(&stop)
}
