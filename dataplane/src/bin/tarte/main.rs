//! `tarte`: the packet engine's command-line tool.
//!
//! Subcommands: `bench` (raw packet-rate modes: tx, rx, reflect). `serve`
//! and `load` join the `Cmd` enum as they land.

mod bench;

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
        Cmd::Bench { mode } => bench::run(mode),
    }
}
