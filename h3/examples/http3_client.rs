//! `cargo run -p tarte-h3 --example http3-client -- [--no-verify | --ca CA.pem] [--method M] [--body FILE]
//! [--session-file PATH [--early-data]] URL...`
//!
//! Status and headers go to stderr, bodies to stdout; the exit status is
//! non-zero when the connection or any request fails.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use tarte_h3::NameValue;

#[path = "common/h3/client.rs"]
mod client;

/// An HTTP/3 client: every URL as a concurrent request on one connection.
#[derive(Parser)]
struct Args {
    /// Do not verify the server certificate.
    #[arg(long)]
    no_verify: bool,
    /// Trusted CA certificates (PEM) to verify the server with (default:
    /// the system's).
    #[arg(long, conflicts_with = "no_verify")]
    ca: Option<std::path::PathBuf>,
    /// Request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// File sent as the request body.
    #[arg(long)]
    body: Option<std::path::PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Resume the TLS session stored in this file, if it exists, and store
    /// the server's newest one there (RFC 9001 §4.5).
    #[arg(long, value_name = "PATH")]
    session_file: Option<std::path::PathBuf>,
    /// With --session-file: send the requests in 0-RTT when the stored
    /// session allows it (RFC 9001 §4.6).
    #[arg(long, requires = "session_file")]
    early_data: bool,
    /// URLs (same authority).
    #[arg(required = true)]
    urls: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let mut opts = client::ClientOptions::get(a.urls)?;
    opts.verify = !a.no_verify;
    opts.ca = a.ca;
    opts.method = a.method;
    opts.timeout = Duration::from_secs(a.timeout);
    if let Some(p) = a.body {
        opts.body = Some(std::fs::read(&p)?);
    }
    if let Some(f) = a.session_file.as_ref().filter(|f| f.exists()) {
        opts.session = Some(std::fs::read(f)?);
    }
    opts.early_data = a.early_data;
    let out = client::fetch(&opts)?;
    if let Some(f) = &a.session_file {
        eprintln!("session resumed: {}", out.resumed);
        if a.early_data {
            eprintln!("requests in 0-RTT: {}", out.sent_early);
        }
        if let Some(s) = &out.session {
            std::fs::write(f, s)?;
        }
    }
    let mut stdout = std::io::stdout().lock();
    let mut failed = false;
    for r in &out.responses {
        eprintln!("{} -> {}", r.url, r.status);
        for h in r.headers.iter().chain(&r.trailers) {
            eprintln!(
                "{}: {}",
                String::from_utf8_lossy(h.name()),
                String::from_utf8_lossy(h.value())
            );
        }
        if let Some(code) = r.reset {
            eprintln!("stream reset with {code:#x}");
            failed = true;
        }
        stdout.write_all(&r.body)?;
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
