//! Frame I/O backends behind one trait, selected at run time.
//!
//! Every backend hands the caller UDP payloads in place (rx) and lets the
//! caller write UDP payloads in place into buffers that already have headroom
//! for the Ethernet/IP/UDP headers (tx). Frame backends (`afxdp`, `dpdk`,
//! `mem` in L2 mode) share the header work in `l2`.
//!
//! Contract for `dpdk` (feature `dpdk`): `pub fn open(config: &BackendConfig) ->
//! Result<Box<dyn Backend>, BackendError>`, called by [`open`].

use std::net::SocketAddr;

#[cfg(feature = "afxdp")]
pub mod afxdp;
pub mod l2;
pub mod mem;
pub mod pcap;
pub mod udp;

#[cfg(feature = "dpdk")]
pub mod dpdk;

/// Addresses of one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DgramMeta {
    /// Where the datagram came from.
    pub src: SocketAddr,
    /// Where it was addressed to.
    pub dst: SocketAddr,
}

/// Counters every backend keeps.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct BackendStats {
    /// Datagrams delivered to the caller.
    pub rx_packets: u64,
    /// UDP payload bytes delivered to the caller.
    pub rx_bytes: u64,
    /// Datagrams queued for transmission.
    pub tx_packets: u64,
    /// UDP payload bytes queued for transmission.
    pub tx_bytes: u64,
    /// Frames that were not for us: other port/protocol, ARP handled, etc.
    pub rx_dropped: u64,
    /// Frames dropped because an IPv4 header or UDP checksum was wrong.
    pub rx_bad_checksum: u64,
    /// Frames dropped because a header was truncated or inconsistent.
    pub rx_malformed: u64,
    /// IP fragments (dropped: the engine never sends fragments).
    pub rx_fragments: u64,
    /// Datagrams the backend failed to send.
    pub tx_errors: u64,
    /// Ring counters the kernel keeps for an AF_XDP socket; `None` for
    /// backends without them (udp, mem, dpdk).
    pub xdp: Option<XdpRingStats>,
}

/// What the kernel counts for an AF_XDP socket (`getsockopt(SOL_XDP,
/// XDP_STATISTICS)`): frames it could not hand to us, and ring under-runs.
/// Monotonic since the socket was created.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpRingStats {
    /// Frames dropped for other reasons (no UMEM frame for the packet in
    /// copy mode, frame too big for a UMEM chunk, ...).
    pub rx_dropped: u64,
    /// Frames dropped because a fill-ring descriptor was invalid.
    pub rx_invalid_descs: u64,
    /// Frames dropped because our rx ring was full (we did not keep up).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty (frames to come are
    /// dropped until we refill it).
    pub rx_fill_ring_empty_descs: u64,
    /// Tx descriptors the kernel rejected as invalid.
    pub tx_invalid_descs: u64,
    /// Times the kernel found the tx ring empty on a wake-up (not a drop).
    pub tx_ring_empty_descs: u64,
}

impl XdpRingStats {
    /// Adds `other` to `self` field by field.
    pub fn add(&mut self, other: &XdpRingStats) {
        self.rx_dropped += other.rx_dropped;
        self.rx_invalid_descs += other.rx_invalid_descs;
        self.rx_ring_full += other.rx_ring_full;
        self.rx_fill_ring_empty_descs += other.rx_fill_ring_empty_descs;
        self.tx_invalid_descs += other.tx_invalid_descs;
        self.tx_ring_empty_descs += other.tx_ring_empty_descs;
    }

    /// Received frames the kernel dropped before they reached our rx ring.
    pub fn rx_drops(&self) -> u64 {
        self.rx_dropped + self.rx_invalid_descs + self.rx_ring_full
    }
}

impl BackendStats {
    /// Adds `other` to `self` field by field (sum over workers/queues).
    pub fn add(&mut self, other: &BackendStats) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.rx_dropped += other.rx_dropped;
        self.rx_bad_checksum += other.rx_bad_checksum;
        self.rx_malformed += other.rx_malformed;
        self.rx_fragments += other.rx_fragments;
        self.tx_errors += other.tx_errors;
        if let Some(o) = &other.xdp {
            self.xdp.get_or_insert_with(Default::default).add(o);
        }
    }
}

/// Errors of backend set-up and I/O, with the context needed to act on them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// What we were doing ("bind 198.18.0.1:4433", "recvmmsg", ...).
        op: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration cannot work (missing interface, bad address, ...).
    #[error("invalid backend configuration: {0}")]
    Config(String),
    /// A network interface was not found or is unusable.
    #[error("interface {iface}: {reason}")]
    Interface {
        /// Interface name.
        iface: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No neighbour (MAC address) is known for a destination.
    #[error(
        "no neighbour entry for {0} (add a static one: ip neigh add ... lladdr ... nud permanent)"
    )]
    NoNeighbour(std::net::IpAddr),
    /// The backend was not compiled in.
    #[error("backend {0} is not available in this build (enable cargo feature {0})")]
    NotBuilt(&'static str),
    /// AF_XDP / XDP program set-up failed.
    #[error("af_xdp on {iface} queue {queue}: {reason}")]
    Xdp {
        /// Interface name.
        iface: String,
        /// Queue id.
        queue: u32,
        /// What failed.
        reason: String,
    },
    /// DPDK set-up or I/O failed.
    #[error("dpdk: {0}")]
    Dpdk(String),
    /// The peer side of an in-memory link is gone.
    #[error("in-memory link closed")]
    Closed,
}

impl BackendError {
    /// Wraps the last OS error with what we were doing.
    pub fn last_os(op: impl Into<String>) -> Self {
        BackendError::Io {
            op: op.into(),
            source: std::io::Error::last_os_error(),
        }
    }
    /// Wraps an I/O error with what we were doing.
    pub fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        BackendError::Io {
            op: op.into(),
            source,
        }
    }
}

/// A batched datagram I/O backend. One instance per worker/queue.
pub trait Backend: Send {
    /// Name for logs ("udp", "afxdp", ...).
    fn name(&self) -> &'static str;
    /// Receives up to `max` UDP datagrams addressed to us; `f` gets each
    /// payload in place (mutable: the engine decrypts in place) with its
    /// addresses. Returns how many were delivered. Never blocks longer than a
    /// short poll.
    fn rx_burst(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(&mut [u8], &DgramMeta),
    ) -> Result<usize, BackendError>;
    /// Sends up to `n` datagrams; for the i-th, `f(i, payload_buf)` writes the
    /// UDP payload in place into a buffer that already has headroom for
    /// Ethernet/IP/UDP headers, and returns `Some((len, dst))`, or `None` to
    /// stop early. Returns how many were queued.
    // The callback type is spelled out (not aliased) so that implementations
    // keep the exact elided lifetimes of the published signature.
    #[allow(clippy::type_complexity)]
    fn tx_burst(
        &mut self,
        n: usize,
        f: &mut dyn FnMut(usize, &mut [u8]) -> Option<(usize, SocketAddr)>,
    ) -> Result<usize, BackendError>;
    /// Local address datagrams are sent from.
    fn local_addr(&self) -> SocketAddr;
    /// Counters so far.
    fn stats(&self) -> BackendStats;
}

/// Which backend to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Kernel UDP sockets (runs anywhere, no root).
    Udp,
    /// AF_XDP sockets on a kernel interface.
    AfXdp,
    /// DPDK port (feature `dpdk`).
    Dpdk,
    /// In-process rings (tests, benches).
    Mem,
}

impl BackendKind {
    /// The name used on the command line and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Udp => "udp",
            BackendKind::AfXdp => "afxdp",
            BackendKind::Dpdk => "dpdk",
            BackendKind::Mem => "mem",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "udp" => Ok(BackendKind::Udp),
            "afxdp" | "af_xdp" | "xdp" => Ok(BackendKind::AfXdp),
            "dpdk" => Ok(BackendKind::Dpdk),
            "mem" => Ok(BackendKind::Mem),
            other => Err(BackendError::Config(format!(
                "unknown backend {other:?} (expected udp, afxdp, dpdk or mem)"
            ))),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// AF_XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Generic (skb) mode: works on every interface.
    #[default]
    Skb,
    /// Native driver mode.
    Drv,
}

/// Everything needed to open one backend instance (one worker/queue).
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// Which backend.
    pub kind: BackendKind,
    /// Local address (IP and UDP port) we receive on and send from.
    pub local: SocketAddr,
    /// Kernel interface (frame backends).
    pub interface: Option<String>,
    /// NIC queue this instance serves (frame backends) / worker index.
    pub queue: u32,
    /// Static destination MAC (frame backends); otherwise looked up in the
    /// neighbour table of the current network namespace.
    pub dst_mac: Option<[u8; 6]>,
    /// AF_XDP attach mode.
    pub xdp_mode: XdpMode,
    /// Try AF_XDP zero-copy first (falls back to copy when unsupported).
    pub zero_copy: bool,
    /// Frames per ring / batch sizing hint.
    pub ring_size: u32,
    /// Extra EAL arguments (dpdk).
    pub dpdk_args: Vec<String>,
    /// Use UDP GSO/GRO when the kernel has them (udp).
    pub offloads: bool,
}

impl BackendConfig {
    /// A config with defaults for `kind` bound to `local`.
    pub fn new(kind: BackendKind, local: SocketAddr) -> Self {
        BackendConfig {
            kind,
            local,
            interface: None,
            queue: 0,
            dst_mac: None,
            xdp_mode: XdpMode::Skb,
            zero_copy: true,
            ring_size: 2048,
            dpdk_args: Vec::new(),
            offloads: true,
        }
    }
}

/// Opens the backend that `config` names.
pub fn open(config: &BackendConfig) -> Result<Box<dyn Backend>, BackendError> {
    match config.kind {
        BackendKind::Udp => Ok(Box::new(udp::UdpBackend::open(config)?)),
        #[cfg(feature = "afxdp")]
        BackendKind::AfXdp => Ok(Box::new(afxdp::AfXdpBackend::open(config)?)),
        #[cfg(not(feature = "afxdp"))]
        BackendKind::AfXdp => Err(BackendError::NotBuilt("afxdp")),
        BackendKind::Mem => Err(BackendError::Config(
            "mem backends come in pairs: use backend::mem::pair()".into(),
        )),
        #[cfg(feature = "dpdk")]
        BackendKind::Dpdk => dpdk::open(config),
        #[cfg(not(feature = "dpdk"))]
        BackendKind::Dpdk => Err(BackendError::NotBuilt("dpdk")),
    }
}
