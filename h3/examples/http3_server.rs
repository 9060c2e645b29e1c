//! `cargo run -p tarte-h3 --example http3-server -- --listen ADDR --cert C --key K --root DIR`

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use clap::Parser;

#[path = "common/h3/server.rs"]
mod server;

/// A static-file HTTP/3 server (also `/bytes/N`, `/trailers`, POST digests).
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4433")]
    listen: std::net::SocketAddr,
    /// PEM certificate chain.
    #[arg(long)]
    cert: PathBuf,
    /// PEM private key.
    #[arg(long)]
    key: PathBuf,
    /// Directory to serve.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Send GOAWAY after this many requests per connection (0: never).
    #[arg(long, default_value_t = 0)]
    goaway_after: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let mut s = server::Server::bind(
        a.listen,
        server::ServerOptions {
            cert: a.cert,
            key: a.key,
            root: a.root,
            goaway_after: a.goaway_after,
        },
    )?;
    eprintln!("listening on {}", s.local_addr());
    s.run(&AtomicBool::new(false))
}
