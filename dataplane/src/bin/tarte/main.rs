//! `tarte`: the packet engine's command-line tool.
//!
//! Subcommands: `serve` (QUIC + HTTP/3 server), `bench` (raw packet-rate
//! modes: tx, rx, reflect). `load` joins the `Cmd` enum when it lands.

mod bench;
mod serve;

use clap::{Parser, Subcommand};

/// tarte: kernel-bypass QUIC + HTTP/3 packet engine.
#[derive(Parser, Debug)]
#[command(name = "tarte", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve HTTP/3 over QUIC (defaults: 127.0.0.1:4433, udp backend,
    /// self-signed certificate, built-in page).
    Serve(serve::ServeArgs),
    /// Raw packet-rate benchmarks on one backend: tx, rx, reflect.
    Bench {
        #[command(subcommand)]
        mode: bench::Mode,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TARTE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve(args) => serve::run(args),
        Cmd::Bench { mode } => bench::run(mode),
    }
}
