//! `tarte bench tx|rx|reflect`: packet rate of one backend.
//!
//! Workers (one per `--queues`) each open their own backend instance (one
//! NIC queue / one SO_REUSEPORT socket) and run the mode's loop; the main
//! thread prints a progress line on stderr once a second and a summary at
//! the end. Every run is bounded by `--count` or `--duration` (10 s when
//! neither is given).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use tarte_dataplane::backend::{
    self, Backend, BackendConfig, BackendKind, BackendStats, XdpMode, XdpRingStats,
};

/// What to measure.
#[derive(Subcommand, Debug, Clone)]
pub(crate) enum Mode {
    /// Generate datagrams to --dst as fast as allowed.
    Tx(BenchArgs),
    /// Receive (checksums verified by the backend), count, drop.
    Rx(BenchArgs),
    /// Send every received datagram back to its source.
    Reflect(BenchArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackendArg {
    Udp,
    Afxdp,
    #[cfg(feature = "dpdk")]
    Dpdk,
    Mem,
}

#[cfg(feature = "dpdk")]
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DpdkPmdArg {
    AfXdp,
    AfPacket,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XdpModeArg {
    Skb,
    Drv,
}

/// Options shared by the bench modes.
#[derive(Args, Debug, Clone)]
pub(crate) struct BenchArgs {
    /// Backend to measure.
    #[arg(long, value_enum, default_value = "udp")]
    backend: BackendArg,
    /// Kernel interface (afxdp, dpdk).
    #[arg(long)]
    interface: Option<String>,
    /// Local address; with --interface alone, the interface's first IPv4
    /// address and port 4433 (rx, reflect) or 40000 (tx).
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Destination (tx).
    #[arg(long)]
    dst: Option<SocketAddr>,
    /// UDP payload bytes per datagram (tx).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Datagrams per second over all queues (tx); 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Stop after this many datagrams (over all queues).
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds (default 10 when --count is not given).
    #[arg(long)]
    duration: Option<f64>,
    /// Workers, one per NIC queue / SO_REUSEPORT socket.
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// Datagrams per burst.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Descriptors per ring (afxdp: rx/tx/fill/completion rings, up to
    /// 8192; dpdk: rx/tx descriptors; udp: socket buffers of this many
    /// 2 KiB datagrams).
    #[arg(long, default_value_t = 2048)]
    ring_size: u32,
    /// rx: open the backend, then wait this many seconds without polling
    /// while the generator fills the rings, then drain them and time the
    /// drain alone (first to last datagram). Measures the receiver's cost
    /// independently of the generator's speed; what the rings cannot hold
    /// is dropped (see the kernel counters).
    #[arg(long)]
    prefill: Option<f64>,
    /// AF_XDP attach mode.
    #[arg(long, value_enum, default_value = "skb")]
    xdp_mode: XdpModeArg,
    /// Do not try AF_XDP zero-copy.
    #[arg(long)]
    no_zero_copy: bool,
    /// Destination MAC (frame backends); default: neighbour table.
    #[arg(long)]
    dst_mac: Option<String>,
    /// Do not use UDP GSO/GRO (udp).
    #[arg(long)]
    no_offloads: bool,
    /// DPDK poll-mode driver for a kernel --interface: af_xdp (default) or
    /// af_packet (the af_xdp PMD takes one queue on veth: it reads the
    /// combined channel count, which veth does not report).
    #[cfg(feature = "dpdk")]
    #[arg(long, value_enum, default_value = "af-xdp")]
    dpdk_pmd: DpdkPmdArg,
    /// Extra DPDK EAL arguments (space separated).
    #[cfg(feature = "dpdk")]
    #[arg(long, allow_hyphen_values = true)]
    dpdk_args: Option<String>,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tx,
    Rx,
    Reflect,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Tx => "tx",
            Kind::Rx => "rx",
            Kind::Reflect => "reflect",
        }
    }
}

/// Counters a worker publishes for the progress line.
#[derive(Default)]
struct Live {
    rx: AtomicU64,
    tx: AtomicU64,
    bytes: AtomicU64,
}

struct Shared {
    stop: AtomicBool,
    live: Vec<Live>,
    total_rx: AtomicU64,
}

struct WorkerResult {
    stats: BackendStats,
    first_rx: Option<Instant>,
    last_rx: Option<Instant>,
    /// Time spent in rx bursts that returned datagrams.
    busy: Duration,
}

pub(crate) fn run(mode: Mode) -> Result<()> {
    let (kind, args) = match mode {
        Mode::Tx(a) => (Kind::Tx, a),
        Mode::Rx(a) => (Kind::Rx, a),
        Mode::Reflect(a) => (Kind::Reflect, a),
    };
    let base = base_config(kind, &args)?;
    if kind == Kind::Tx && args.dst.is_none() {
        bail!("bench tx needs --dst ADDR:PORT");
    }
    if args.queues == 0 || args.batch == 0 {
        bail!("--queues and --batch must be at least 1");
    }
    let duration = match (args.count, args.duration) {
        (None, None) => Some(Duration::from_secs(10)),
        (_, d) => d.map(Duration::from_secs_f64),
    };
    // Open every worker's backend up front so that errors surface before
    // anything runs.
    let mut backends: Vec<Box<dyn Backend>> = Vec::new();
    let mut peers: Vec<Option<Box<dyn Backend>>> = Vec::new();
    #[cfg(feature = "dpdk")]
    if base.kind == BackendKind::Dpdk {
        // DPDK owns the whole port: one port with N queue pairs, opened
        // once, one backend per queue (a second open of the port fails).
        let n = u16::try_from(args.queues).context("--queues too large for dpdk")?;
        let mut opts = backend::dpdk::DpdkOptions::from_config(&base);
        opts.pmd = match args.dpdk_pmd {
            DpdkPmdArg::AfXdp => backend::dpdk::KernelPmd::AfXdp,
            DpdkPmdArg::AfPacket => backend::dpdk::KernelPmd::AfPacket,
        };
        let v = backend::dpdk::DpdkBackend::open_queues(base.local, &opts, n)
            .with_context(|| format!("opening dpdk port with {n} queue(s)"))?;
        for b in v {
            backends.push(Box::new(b));
            peers.push(None);
        }
    }
    // Every other backend opens one instance per queue.
    for q in backends.len() as u32..args.queues {
        let mut c = base.clone();
        c.queue = q;
        if c.kind == BackendKind::Mem {
            if kind != Kind::Tx {
                bail!("--backend mem supports tx only (the peer end is drained in-process)");
            }
            let dst = args.dst.context("--dst")?;
            let (a, b) = backend::mem::pair(c.local, dst, Default::default());
            backends.push(Box::new(a));
            peers.push(Some(Box::new(b)));
        } else {
            let b = backend::open(&c)
                .with_context(|| format!("opening {} backend for queue {q}", c.kind))?;
            backends.push(b);
            peers.push(None);
        }
    }
    let local = backends[0].local_addr();
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        live: (0..args.queues).map(|_| Live::default()).collect(),
        total_rx: AtomicU64::new(0),
    });
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let mut handles = Vec::new();
    for (q, (b, peer)) in backends.into_iter().zip(peers).enumerate() {
        let sh = shared.clone();
        let a = args.clone();
        let quota = args
            .count
            .map(|c| c / args.queues as u64 + u64::from((q as u64) < c % args.queues as u64));
        handles.push(
            std::thread::Builder::new()
                .name(format!("bench-{q}"))
                .spawn(move || worker(kind, b, peer, &a, q, quota, deadline, &sh))?,
        );
    }
    progress(kind, &shared, start, &handles);
    let elapsed = start.elapsed();
    let mut total = BackendStats::default();
    let mut busy = Duration::ZERO;
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    for h in handles {
        let r = h
            .join()
            .map_err(|_| anyhow::anyhow!("a bench worker panicked"))??;
        total.add(&r.stats);
        busy += r.busy;
        first = match (first, r.first_rx) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = match (last, r.last_rx) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    summary(kind, &args, local, &total, elapsed, first.zip(last), busy);
    Ok(())
}

fn base_config(kind: Kind, args: &BenchArgs) -> Result<BackendConfig> {
    let bk = match args.backend {
        BackendArg::Udp => BackendKind::Udp,
        BackendArg::Afxdp => BackendKind::AfXdp,
        #[cfg(feature = "dpdk")]
        BackendArg::Dpdk => BackendKind::Dpdk,
        BackendArg::Mem => BackendKind::Mem,
    };
    let default_port = if kind == Kind::Tx { 40000 } else { 4433 };
    let local = match (args.bind, &args.interface) {
        (Some(b), _) => b,
        (None, Some(ifc)) => SocketAddr::new(interface_ipv4(ifc)?, default_port),
        (None, None) => bail!("give --bind ADDR:PORT or --interface IF"),
    };
    let mut c = BackendConfig::new(bk, local);
    c.interface = args.interface.clone();
    c.xdp_mode = match args.xdp_mode {
        XdpModeArg::Skb => XdpMode::Skb,
        XdpModeArg::Drv => XdpMode::Drv,
    };
    c.zero_copy = !args.no_zero_copy;
    c.ring_size = args.ring_size;
    c.offloads = !args.no_offloads;
    if let Some(m) = &args.dst_mac {
        let mac = tarte_dataplane::wire::EthernetAddress::parse(m)
            .with_context(|| format!("--dst-mac {m:?} is not a MAC address"))?;
        c.dst_mac = Some(mac.0);
    }
    #[cfg(feature = "dpdk")]
    if let Some(a) = &args.dpdk_args {
        c.dpdk_args = a.split_whitespace().map(String::from).collect();
    }
    if matches!(bk, BackendKind::AfXdp | BackendKind::Dpdk) && c.interface.is_none() {
        bail!("--backend {bk} needs --interface IF");
    }
    Ok(c)
}

/// First IPv4 address of `iface` in the current namespace (`ip -4 -o addr`).
fn interface_ipv4(iface: &str) -> Result<IpAddr> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", iface])
        .output()
        .context("running ip")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("no IPv4 address on {iface}: give --bind ADDR:PORT"))
}

#[allow(clippy::too_many_arguments)]
fn worker(
    kind: Kind,
    mut b: Box<dyn Backend>,
    mut peer: Option<Box<dyn Backend>>,
    args: &BenchArgs,
    q: usize,
    quota: Option<u64>,
    deadline: Option<Instant>,
    sh: &Shared,
) -> Result<WorkerResult> {
    let live = &sh.live[q];
    let start = Instant::now();
    let per_worker_rate = args.rate as f64 / args.queues as f64;
    let size = args.size;
    let dst = args.dst;
    let mut sent: u64 = 0;
    let mut got: u64 = 0;
    let (mut first_rx, mut last_rx) = (None, None);
    let mut busy = Duration::ZERO;
    if let (Kind::Rx, Some(wait)) = (kind, args.prefill) {
        // Let the generator fill the rings while we do not poll (bounded by
        // the deadline like everything else).
        let mut until = Instant::now() + Duration::from_secs_f64(wait);
        if let Some(d) = deadline {
            until = until.min(d);
        }
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let mut pending: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
    let mut spins: u32 = 0;
    loop {
        if sh.stop.load(Ordering::Relaxed) {
            break;
        }
        spins = spins.wrapping_add(1);
        if spins % 256 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        match kind {
            Kind::Tx => {
                if quota.is_some_and(|qn| sent >= qn) {
                    break;
                }
                let mut allowed = args.batch as u64;
                if let Some(qn) = quota {
                    allowed = allowed.min(qn - sent);
                }
                if per_worker_rate > 0.0 {
                    let target = (start.elapsed().as_secs_f64() * per_worker_rate) as u64;
                    allowed = allowed.min(target.saturating_sub(sent));
                    if allowed == 0 {
                        std::hint::spin_loop();
                        continue;
                    }
                }
                let Some(dst) = dst else { break };
                let base = sent;
                let n = b.tx_burst(allowed as usize, &mut |i, buf| {
                    let len = size.min(buf.len());
                    let seq = (base + i as u64).to_be_bytes();
                    let k = len.min(8);
                    buf[..k].copy_from_slice(&seq[..k]);
                    Some((len, dst))
                })?;
                sent += n as u64;
                live.tx.store(sent, Ordering::Relaxed);
                live.bytes.fetch_add((n * size) as u64, Ordering::Relaxed);
                if let Some(p) = peer.as_mut() {
                    while p.rx_burst(args.batch, &mut |_, _| {})? > 0 {}
                }
            }
            Kind::Rx | Kind::Reflect => {
                let mut bytes = 0u64;
                let t0 = Instant::now();
                let n = b.rx_burst(args.batch, &mut |p, m| {
                    bytes += p.len() as u64;
                    if kind == Kind::Reflect {
                        pending.push((p.to_vec(), m.src));
                    }
                })?;
                if n > 0 {
                    let now = Instant::now();
                    busy += now - t0;
                    first_rx.get_or_insert(now);
                    last_rx = Some(now);
                    got += n as u64;
                    live.rx.store(got, Ordering::Relaxed);
                    live.bytes.fetch_add(bytes, Ordering::Relaxed);
                    let total = sh.total_rx.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                    if args.count.is_some_and(|c| total >= c) {
                        sh.stop.store(true, Ordering::Relaxed);
                    }
                }
                if !pending.is_empty() {
                    let k = b.tx_burst(pending.len(), &mut |i, buf| {
                        let (p, to) = &pending[i];
                        let len = p.len().min(buf.len());
                        buf[..len].copy_from_slice(&p[..len]);
                        Some((len, *to))
                    })?;
                    // What the ring could not take now is dropped: a
                    // reflector must not fall behind its input.
                    pending.clear();
                    sent += k as u64;
                    live.tx.store(sent, Ordering::Relaxed);
                }
            }
        }
    }
    Ok(WorkerResult {
        stats: b.stats(),
        first_rx,
        last_rx,
        busy,
    })
}

fn progress(
    kind: Kind,
    sh: &Shared,
    start: Instant,
    handles: &[std::thread::JoinHandle<Result<WorkerResult>>],
) {
    let mut last = (0u64, 0u64, 0u64);
    let mut tick = start;
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if tick.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let dt = tick.elapsed().as_secs_f64();
        tick = Instant::now();
        let sum = |f: fn(&Live) -> &AtomicU64| {
            sh.live
                .iter()
                .map(|l| f(l).load(Ordering::Relaxed))
                .sum::<u64>()
        };
        let now = (sum(|l| &l.rx), sum(|l| &l.tx), sum(|l| &l.bytes));
        let (drx, dtx, db) = (now.0 - last.0, now.1 - last.1, now.2 - last.2);
        last = now;
        eprintln!(
            "[{:6.1}s] {} rx {:8.3} Mpps  tx {:8.3} Mpps  {:7.3} Gbit/s  total rx {} tx {}",
            start.elapsed().as_secs_f64(),
            kind.as_str(),
            drx as f64 / dt / 1e6,
            dtx as f64 / dt / 1e6,
            db as f64 * 8.0 / dt / 1e9,
            now.0,
            now.1
        );
    }
}

fn summary(
    kind: Kind,
    args: &BenchArgs,
    local: SocketAddr,
    s: &BackendStats,
    elapsed: Duration,
    rx_window: Option<(Instant, Instant)>,
    busy: Duration,
) {
    let (packets, bytes) = match kind {
        Kind::Tx => (s.tx_packets, s.tx_bytes),
        Kind::Rx | Kind::Reflect => (s.rx_packets, s.rx_bytes),
    };
    // Receivers are measured from their first to their last datagram, so
    // that waiting for the generator does not count.
    let secs = match (kind, rx_window) {
        (Kind::Rx | Kind::Reflect, Some((a, b))) if b > a => (b - a).as_secs_f64(),
        _ => elapsed.as_secs_f64(),
    };
    let mpps = packets as f64 / secs / 1e6;
    let gbps = bytes as f64 * 8.0 / secs / 1e9;
    // Receive cost: time inside bursts that returned datagrams, per
    // datagram (idle polls excluded). Only the user-space side: kernel
    // work done in softirq on another core is not in it.
    let busy_ns = (kind != Kind::Tx && s.rx_packets > 0)
        .then(|| busy.as_nanos() as f64 / s.rx_packets as f64);
    let drops = s.rx_dropped + s.rx_bad_checksum + s.rx_malformed + s.rx_fragments;
    let backend = format!("{:?}", args.backend).to_lowercase();
    if args.json {
        let mut v = serde_json::json!({
            "mode": kind.as_str(),
            "backend": backend,
            "local": local.to_string(),
            "queues": args.queues,
            "packets": packets,
            "bytes": bytes,
            "seconds": secs,
            "mpps": mpps,
            "gbps": gbps,
            "tx_packets": s.tx_packets,
            "rx_packets": s.rx_packets,
            "drops": drops,
            "rx_dropped": s.rx_dropped,
            "rx_bad_checksum": s.rx_bad_checksum,
            "rx_malformed": s.rx_malformed,
            "rx_fragments": s.rx_fragments,
            "errors": s.tx_errors,
            "rx_busy_ns_per_packet": busy_ns,
            "prefill": args.prefill.is_some(),
        });
        if let (Some(k), Some(o)) = (&s.xdp, v.as_object_mut()) {
            // Flat keys so that shell scripts can pick them out.
            for (name, val) in xdp_fields(k) {
                o.insert(format!("xdp_{name}"), val.into());
            }
            o.insert("xdp_rx_drops".into(), k.rx_drops().into());
        }
        println!("{v}");
    } else {
        println!("mode      {}", kind.as_str());
        println!(
            "backend   {backend} ({} queue(s), local {local})",
            args.queues
        );
        println!("packets   {packets}");
        println!("bytes     {bytes}");
        println!("seconds   {secs:.3}");
        println!("Mpps      {mpps:.3}");
        println!("Gbit/s    {gbps:.3}");
        if let Some(ns) = busy_ns {
            println!(
                "rx cost   {ns:.1} ns/datagram in non-empty bursts ({:.3} Mpps if never idle)",
                1e3 / ns
            );
        }
        println!(
            "drops     {drops} (not for us {}, bad checksum {}, malformed {}, fragments {})",
            s.rx_dropped, s.rx_bad_checksum, s.rx_malformed, s.rx_fragments
        );
        if let Some(k) = &s.xdp {
            let list: Vec<String> = xdp_fields(k)
                .iter()
                .map(|(n, v)| format!("{n} {v}"))
                .collect();
            println!("kernel    {} (XDP_STATISTICS)", list.join(", "));
        }
        println!("errors    {}", s.tx_errors);
    }
}

/// The kernel's AF_XDP counters by name, in `struct xdp_statistics` order.
fn xdp_fields(k: &XdpRingStats) -> [(&'static str, u64); 6] {
    [
        ("rx_dropped", k.rx_dropped),
        ("rx_invalid_descs", k.rx_invalid_descs),
        ("tx_invalid_descs", k.tx_invalid_descs),
        ("rx_ring_full", k.rx_ring_full),
        ("rx_fill_ring_empty_descs", k.rx_fill_ring_empty_descs),
        ("tx_ring_empty_descs", k.tx_ring_empty_descs),
    ]
}
