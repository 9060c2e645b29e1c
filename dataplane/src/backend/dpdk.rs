//! DPDK backend (cargo feature `dpdk`): one DPDK port, one rx/tx queue pair
//! per backend instance, frames in mbufs handled in place.
//!
//! EAL is initialised once per process (DPDK cannot do it twice): the first
//! open builds the EAL arguments, later opens must ask for the same ones and
//! get a clear error otherwise. For a kernel interface the port is a virtual
//! device (`net_af_xdp` or `net_af_packet`) on it, with `--no-pci`, a unique
//! `--file-prefix` and either `--no-huge` or hugepages; `dpdk_args` pass EAL
//! arguments verbatim (a real NIC: `-a 0000:3b:00.0`).
//!
//! DPDK owns the port, so the kernel's neighbour code never sees our frames:
//! this backend answers ARP requests for its IPv4 address, learns its
//! neighbours' MACs from their ARP packets, and resolves a destination by
//! sending an ARP request (frames wait in a small bounded queue meanwhile).
//!
//! When the last backend of a port is dropped the port is stopped and
//! closed, its mempool freed, `rte_eal_cleanup` called and EAL's runtime
//! directory (`/var/run/dpdk/<prefix>`) removed; also on every error path of
//! opening.

use std::ffi::{c_char, CStr, CString};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tarte_dpdk_sys as sys;

use super::l2::{L2Endpoint, RxVerdict};
use super::{Backend, BackendConfig, BackendError, BackendStats, DgramMeta};
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
};

/// Frames per rx/tx burst call.
const BURST: usize = 64;
/// Frames that may wait for an ARP reply, per queue.
const PENDING_MAX: usize = 256;
/// How long a frame waits for an ARP reply before it is dropped.
const PENDING_TTL: Duration = Duration::from_secs(1);
/// Minimum gap between two ARP requests for the same address.
const ARP_RETRY: Duration = Duration::from_millis(100);
/// Times `rte_eth_tx_burst` is retried for frames the queue did not take.
const TX_RETRIES: usize = 16;

/// Which kernel-interface PMD carries the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KernelPmd {
    /// `net_af_xdp`: an AF_XDP socket per queue (XDP program on the interface).
    #[default]
    AfXdp,
    /// `net_af_packet`: a PACKET_MMAP socket per queue.
    AfPacket,
}

impl KernelPmd {
    fn vdev(self, iface: &str, start_queue: u32, queues: u16, ring: u16) -> String {
        match self {
            KernelPmd::AfXdp => format!(
                "--vdev=net_af_xdp0,iface={iface},start_queue={start_queue},queue_count={queues}"
            ),
            // The PACKET_MMAP ring, not the descriptor count, sets how much
            // af_packet can buffer (its default of 512 frames drops bursts):
            // one 2 KiB frame per descriptor, two per 4 KiB block.
            KernelPmd::AfPacket => format!(
                "--vdev=net_af_packet0,iface={iface},qpairs={queues},blocksz=4096,framesz=2048,framecnt={}",
                ring.max(64)
            ),
        }
    }
}

/// How to bring up EAL and the port. [`DpdkOptions::from_config`] fills it
/// from a [`BackendConfig`]; tests and tools set fields directly.
#[derive(Clone, Debug)]
pub struct DpdkOptions {
    /// PMD used when the port is a kernel interface.
    pub pmd: KernelPmd,
    /// Kernel interface to drive (ignored when `eal_args` name a device).
    pub interface: Option<String>,
    /// NIC queue of the interface the first DPDK queue maps to (af_xdp).
    pub start_queue: u32,
    /// hugetlbfs mount to use; `None` runs with `--no-huge`.
    pub huge_dir: Option<PathBuf>,
    /// EAL memory in MiB (`-m`).
    pub memory_mb: u32,
    /// The lcore EAL's main thread is registered on (`-l`).
    pub core: u32,
    /// `--file-prefix`; `None` picks a unique, pid-based one.
    pub file_prefix: Option<String>,
    /// EAL arguments passed verbatim. When they name a device (`--vdev`,
    /// `-a`/`--allow`), no vdev is added for `interface`; when they set
    /// memory, cores or the prefix, those defaults are not added either.
    pub eal_args: Vec<String>,
    /// rx and tx descriptors per queue (adjusted to the device's limits).
    pub ring_size: u16,
    /// Static destination MAC for every frame (a gateway, or a test peer).
    pub dst_mac: Option<EthernetAddress>,
}

/// The lowest-numbered CPU the calling thread may run on.
fn first_allowed_cpu() -> Option<u32> {
    // SAFETY: cpu_set_t is a plain bit set for which all-zero is valid.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid out-parameter of the size we pass.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return None;
    }
    // SAFETY: CPU_ISSET only reads the set, for indices below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .find(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .map(|c| c as u32)
}

impl Default for DpdkOptions {
    fn default() -> Self {
        DpdkOptions {
            pmd: KernelPmd::AfXdp,
            interface: None,
            start_queue: 0,
            huge_dir: None,
            memory_mb: 256,
            core: 0,
            file_prefix: None,
            eal_args: Vec::new(),
            ring_size: 1024,
            dst_mac: None,
        }
    }
}

fn has_any(args: &[String], names: &[&str]) -> bool {
    args.iter().any(|a| {
        names
            .iter()
            .any(|n| a == n || a.strip_prefix(n).is_some_and(|rest| rest.starts_with('=')))
    })
}

static PREFIX_SEQ: AtomicU32 = AtomicU32::new(0);

impl DpdkOptions {
    /// Options for `config`: its interface, queue, static MAC, ring size,
    /// and `dpdk_args` as verbatim EAL arguments.
    pub fn from_config(config: &BackendConfig) -> Self {
        DpdkOptions {
            interface: config.interface.clone(),
            start_queue: config.queue,
            eal_args: config.dpdk_args.clone(),
            ring_size: u16::try_from(config.ring_size)
                .unwrap_or(4096)
                .clamp(64, 4096),
            dst_mac: config.dst_mac.map(EthernetAddress),
            // EAL pins its main thread (and so every thread it starts
            // later) to this lcore: keep whatever CPU we were given
            // (taskset), not CPU 0.
            core: first_allowed_cpu().unwrap_or(0),
            ..DpdkOptions::default()
        }
    }

    /// The EAL argument vector (without argv\[0\]) and the file prefix, for a
    /// port with `queues` queue pairs.
    pub fn eal_args(&self, queues: u16) -> Result<(Vec<String>, String), BackendError> {
        let mut args = self.eal_args.clone();
        let user_prefix = match args.iter().position(|a| a == "--file-prefix") {
            Some(i) => Some(args.get(i + 1).cloned().ok_or_else(|| {
                BackendError::Config("--file-prefix without a value in dpdk_args".into())
            })?),
            None => args
                .iter()
                .find_map(|a| a.strip_prefix("--file-prefix="))
                .map(str::to_owned),
        };
        let names_device = has_any(&args, &["--vdev", "-a", "--allow", "--pci-whitelist"]);
        if !names_device {
            let iface = self.interface.as_deref().ok_or_else(|| {
                BackendError::Config(
                    "dpdk needs an interface or EAL arguments naming a device (dpdk_args)".into(),
                )
            })?;
            if iface.is_empty() || iface.contains([',', '/', ' ', '=']) {
                return Err(BackendError::Interface {
                    iface: iface.into(),
                    reason: "not a usable interface name".into(),
                });
            }
            if !has_any(&args, &["--no-pci"]) {
                args.push("--no-pci".into());
            }
            args.push(
                self.pmd
                    .vdev(iface, self.start_queue, queues, self.ring_size),
            );
        }
        let mem_set = has_any(
            &args,
            &[
                "--no-huge",
                "--huge-dir",
                "-m",
                "--socket-mem",
                "--in-memory",
            ],
        );
        if !mem_set {
            match &self.huge_dir {
                Some(dir) => args.extend([
                    "--huge-dir".into(),
                    dir.display().to_string(),
                    "-m".into(),
                    self.memory_mb.to_string(),
                    // Nothing shared on disk, so nothing to clean up in the
                    // hugetlbfs mount after a crash.
                    "--in-memory".into(),
                ]),
                // `--in-memory` with `--no-huge` fails with EINVAL in 22.11.
                None => args.extend(["--no-huge".into(), "-m".into(), self.memory_mb.to_string()]),
            }
        }
        if !has_any(&args, &["-l", "-c", "--lcores"]) {
            args.extend(["-l".into(), self.core.to_string()]);
        }
        let prefix = match user_prefix {
            Some(p) => p,
            None => {
                let p = self.file_prefix.clone().unwrap_or_else(|| {
                    format!(
                        "tarte-{}-{}",
                        std::process::id(),
                        PREFIX_SEQ.fetch_add(1, Ordering::Relaxed)
                    )
                });
                args.extend(["--file-prefix".into(), p.clone()]);
                p
            }
        };
        if !has_any(&args, &["--telemetry", "--no-telemetry"]) {
            args.push("--no-telemetry".into());
        }
        if !has_any(&args, &["--log-level"]) {
            args.push("--log-level=warning".into());
        }
        Ok((args, prefix))
    }
}

// ---------------------------------------------------------------------------
// EAL: once per process.

enum EalState {
    Down,
    Up {
        args: Vec<String>,
        prefix: String,
        /// The argv strings; EAL may keep pointers into them.
        _argv: Vec<CString>,
        ports: Vec<u16>,
    },
    Failed(String),
    Cleaned,
}

fn eal() -> &'static Mutex<EalState> {
    static EAL: OnceLock<Mutex<EalState>> = OnceLock::new();
    EAL.get_or_init(|| Mutex::new(EalState::Down))
}

fn dpdk_err(what: &str) -> BackendError {
    let errno = sys::rte_errno();
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string for any errno value.
    let msg = unsafe { CStr::from_ptr(sys::rte_strerror(errno)) };
    BackendError::Dpdk(format!(
        "{what}: {} (rte_errno {errno})",
        msg.to_string_lossy()
    ))
}

/// Compares EAL argument lists ignoring the file prefix, which is unique per
/// open unless the caller fixed it.
fn same_eal(a: &[String], b: &[String]) -> bool {
    let strip = |v: &[String]| -> Vec<String> {
        let mut out = Vec::new();
        let mut it = v.iter();
        while let Some(x) = it.next() {
            if x == "--file-prefix" {
                it.next();
            } else if !x.starts_with("--file-prefix=") {
                out.push(x.clone());
            }
        }
        out
    };
    strip(a) == strip(b)
}

/// Initialises EAL with `args` or checks it already runs with them.
fn eal_acquire(args: &[String], prefix: &str) -> Result<(), BackendError> {
    let mut st = eal()
        .lock()
        .map_err(|_| BackendError::Dpdk("EAL state poisoned".into()))?;
    match &*st {
        EalState::Up { args: have, .. } if same_eal(have, args) => return Ok(()),
        EalState::Up { args: have, .. } => {
            return Err(BackendError::Dpdk(format!(
                "EAL is already initialised in this process with {have:?}; it cannot be \
                 initialised again with {args:?} (one EAL per process)"
            )))
        }
        EalState::Failed(why) => {
            return Err(BackendError::Dpdk(format!(
                "EAL initialisation failed earlier in this process ({why}); DPDK cannot retry"
            )))
        }
        EalState::Cleaned => {
            return Err(BackendError::Dpdk(
                "EAL was cleaned up when its last port closed; DPDK cannot initialise it again \
                 in the same process"
                    .into(),
            ))
        }
        EalState::Down => {}
    }
    let mut argv: Vec<CString> = Vec::with_capacity(args.len() + 1);
    argv.push(CString::new("tarte").expect("no NUL in literal"));
    for a in args {
        argv.push(CString::new(a.as_str()).map_err(|_| {
            BackendError::Config(format!("EAL argument {a:?} contains a NUL byte"))
        })?);
    }
    let mut ptrs: Vec<*mut c_char> = argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
    let affinity = save_affinity();
    let argc =
        i32::try_from(ptrs.len()).map_err(|_| BackendError::Config("too many EAL args".into()))?;
    // SAFETY: `ptrs` holds `argc` pointers to NUL-terminated strings owned by
    // `argv`, which is kept alive in the EAL state for the process lifetime
    // of EAL; EAL only permutes the pointer array. The EAL lock serialises
    // this call.
    let ret = unsafe { sys::rte_eal_init(argc, ptrs.as_mut_ptr()) };
    // EAL pins the calling thread to its main lcore; give the caller its
    // thread back (workers pin themselves).
    restore_affinity(affinity);
    if ret < 0 {
        let err = dpdk_err(&format!("rte_eal_init {args:?}"));
        remove_runtime_dir(prefix, None);
        *st = EalState::Failed(err.to_string());
        return Err(err);
    }
    tracing::info!(?args, "DPDK EAL initialised");
    *st = EalState::Up {
        args: args.to_vec(),
        prefix: prefix.into(),
        _argv: argv,
        ports: Vec::new(),
    };
    Ok(())
}

/// Marks `port` as used, or fails when another backend already owns it.
fn eal_claim_port(port: u16) -> Result<(), BackendError> {
    let mut st = eal()
        .lock()
        .map_err(|_| BackendError::Dpdk("EAL state poisoned".into()))?;
    match &mut *st {
        EalState::Up { ports, .. } if ports.contains(&port) => Err(BackendError::Dpdk(format!(
            "port {port} is already open in this process (open all its queues at once)"
        ))),
        EalState::Up { ports, .. } => {
            ports.push(port);
            Ok(())
        }
        _ => Err(BackendError::Dpdk("EAL is not running".into())),
    }
}

/// Releases `port` (if claimed); when no port is left, cleans EAL up and
/// removes its runtime directory.
fn eal_release(port: Option<u16>) {
    let Ok(mut st) = eal().lock() else { return };
    let EalState::Up { ports, prefix, .. } = &mut *st else {
        return;
    };
    if let Some(p) = port {
        ports.retain(|&x| x != p);
    }
    if !ports.is_empty() {
        return;
    }
    let prefix = prefix.clone();
    // SAFETY: EAL is up; read before cleanup frees it, copied at once.
    let dir = unsafe {
        let p = sys::rte_eal_get_runtime_dir();
        (!p.is_null()).then(|| PathBuf::from(CStr::from_ptr(p).to_string_lossy().into_owned()))
    };
    // SAFETY: every port of this process is closed (the list is empty) and
    // no mbuf of ours is outstanding (each Port frees its pool first); EAL
    // is cleaned at most once, guarded by the state lock.
    let ret = unsafe { sys::rte_eal_cleanup() };
    if ret != 0 {
        tracing::warn!(ret, "rte_eal_cleanup failed");
    }
    remove_runtime_dir(&prefix, dir);
    *st = EalState::Cleaned;
}

/// Removes EAL's runtime directory for `prefix`, only if its last component
/// is that prefix (never anything else).
fn remove_runtime_dir(prefix: &str, dir: Option<PathBuf>) {
    let dir = dir.unwrap_or_else(|| PathBuf::from("/var/run/dpdk").join(prefix));
    if prefix.is_empty() || dir.file_name().and_then(|n| n.to_str()) != Some(prefix) {
        return;
    }
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => tracing::debug!(dir = %dir.display(), "removed DPDK runtime dir"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(dir = %dir.display(), %e, "removing DPDK runtime dir"),
    }
}

type CpuSet = libc::cpu_set_t;

fn save_affinity() -> Option<CpuSet> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: CpuSet = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, size_of::<CpuSet>(), &mut set) };
    (r == 0).then_some(set)
}

fn restore_affinity(set: Option<CpuSet>) {
    if let Some(set) = set {
        // SAFETY: `set` is a valid cpu_set_t read by sched_getaffinity.
        let r = unsafe { libc::sched_setaffinity(0, size_of::<CpuSet>(), &set) };
        if r != 0 {
            tracing::warn!("could not restore CPU affinity after rte_eal_init");
        }
    }
}

/// Registers the calling thread with EAL once, so that mempool operations
/// use a per-lcore cache instead of the shared ring.
fn register_thread() {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    DONE.with(|d| {
        if d.get() {
            return;
        }
        d.set(true);
        // SAFETY: EAL is up (a Port exists); both calls are thread-safe.
        unsafe {
            if sys::tarte_rte_lcore_id() == sys::LCORE_ID_ANY && sys::rte_thread_register() != 0 {
                tracing::debug!("rte_thread_register failed: mempool without lcore cache");
            }
        }
    });
}

// ---------------------------------------------------------------------------
// Port: shared by the queue backends of one device.

/// Neighbours learnt from ARP on any queue, published to all queues.
#[derive(Default)]
struct Neighbours {
    version: AtomicU64,
    table: Mutex<Vec<(Ipv4Addr, EthernetAddress)>>,
}

impl Neighbours {
    fn learn(&self, ip: Ipv4Addr, mac: EthernetAddress) {
        let Ok(mut t) = self.table.lock() else { return };
        match t.iter_mut().find(|(i, _)| *i == ip) {
            Some(e) if e.1 == mac => return,
            Some(e) => e.1 = mac,
            None => t.push((ip, mac)),
        }
        self.version.fetch_add(1, Ordering::Release);
    }
}

struct Port {
    id: u16,
    pool: *mut sys::rte_mempool,
    started: bool,
    mac: EthernetAddress,
    mtu: u16,
    neighbours: Neighbours,
}

// SAFETY: the port id and mempool pointer are process-global DPDK objects;
// mempools are multi-thread safe, and each queue is used by one backend
// (one thread at a time). Port set-up and teardown happen while no queue
// backend exists (open / last drop).
unsafe impl Send for Port {}
// SAFETY: shared access only reads `id`, `pool`, `mac`, `mtu` (immutable after
// open) and `neighbours` (atomics and a Mutex).
unsafe impl Sync for Port {}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: no queue backend is left (this is the last Arc), so no
        // burst call runs; stop/close on a configured port and freeing the
        // pool after the port (its queues hold mbufs of it) are the
        // documented teardown order.
        unsafe {
            if self.started && sys::rte_eth_dev_stop(self.id) != 0 {
                tracing::warn!(port = self.id, "rte_eth_dev_stop failed");
            }
            if sys::rte_eth_dev_close(self.id) != 0 {
                tracing::warn!(port = self.id, "rte_eth_dev_close failed");
            }
            if !self.pool.is_null() {
                sys::rte_mempool_free(self.pool);
            }
        }
        eal_release(Some(self.id));
    }
}

/// Releases EAL if opening fails before a `Port` exists to do it.
struct EalGuard(bool);

impl Drop for EalGuard {
    fn drop(&mut self) {
        if self.0 {
            eal_release(None);
        }
    }
}

fn first_port() -> Result<u16, BackendError> {
    // SAFETY: EAL is up; iterating ports is read-only.
    let id = unsafe { sys::rte_eth_find_next_owned_by(0, u64::from(sys::RTE_ETH_DEV_NO_OWNER)) };
    u16::try_from(id)
        .ok()
        .filter(|&p| u32::from(p) < sys::RTE_MAX_ETHPORTS)
        .ok_or_else(|| {
            BackendError::Dpdk("EAL found no ethernet port (check the device args)".into())
        })
}

impl Port {
    fn open(opts: &DpdkOptions, queues: u16) -> Result<Arc<Port>, BackendError> {
        if queues == 0 {
            return Err(BackendError::Config("dpdk needs at least one queue".into()));
        }
        let (args, prefix) = opts.eal_args(queues)?;
        eal_acquire(&args, &prefix)?;
        let mut guard = EalGuard(true);
        let id = first_port()?;
        eal_claim_port(id)?;
        guard.0 = false;
        // From here the Port's Drop closes the device and releases EAL.
        let mut port = Port {
            id,
            pool: std::ptr::null_mut(),
            started: false,
            mac: EthernetAddress([0; 6]),
            mtu: 1500,
            neighbours: Neighbours::default(),
        };
        port.setup(queues, opts.ring_size)?;
        Ok(Arc::new(port))
    }

    fn setup(&mut self, queues: u16, ring_size: u16) -> Result<(), BackendError> {
        let id = self.id;
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: EAL is up, `id` is a valid port, `info` is writable.
        if unsafe { sys::rte_eth_dev_info_get(id, &mut info) } != 0 {
            return Err(dpdk_err(&format!("rte_eth_dev_info_get port {id}")));
        }
        if queues > info.max_rx_queues || queues > info.max_tx_queues {
            return Err(BackendError::Dpdk(format!(
                "port {id} has {} rx / {} tx queues, {queues} asked",
                info.max_rx_queues, info.max_tx_queues
            )));
        }
        let mut conf = sys::rte_eth_conf::default();
        if queues > 1 && info.flow_type_rss_offloads != 0 {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads;
        }
        // SAFETY: valid port, `conf` outlives the call.
        if unsafe { sys::rte_eth_dev_configure(id, queues, queues, &conf) } != 0 {
            return Err(dpdk_err(&format!(
                "rte_eth_dev_configure port {id} ({queues} queues)"
            )));
        }
        let (mut nrx, mut ntx) = (ring_size, ring_size);
        // SAFETY: valid port and writable counters.
        if unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nrx, &mut ntx) } != 0 {
            return Err(dpdk_err("rte_eth_dev_adjust_nb_rx_tx_desc"));
        }
        // Enough mbufs for full rx and tx rings, a burst in flight and the
        // ARP wait queue on every queue, plus the per-lcore caches.
        let per_queue = u32::from(nrx) + u32::from(ntx) + 2 * BURST as u32 + PENDING_MAX as u32;
        let nb_mbufs = (u32::from(queues) * per_queue + 1024).next_power_of_two() - 1;
        let name = CString::new(format!("tarte_pool_p{id}")).expect("no NUL in format");
        // SAFETY: valid name; sizes in range; socket id of the port.
        self.pool = unsafe {
            sys::rte_pktmbuf_pool_create(
                name.as_ptr(),
                nb_mbufs,
                256,
                0,
                sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                sys::rte_eth_dev_socket_id(id),
            )
        };
        if self.pool.is_null() {
            return Err(dpdk_err(&format!(
                "rte_pktmbuf_pool_create ({nb_mbufs} mbufs)"
            )));
        }
        // SAFETY: valid port; socket id of the port (SOCKET_ID_ANY is -1 and
        // wraps to the same bit pattern DPDK expects); default queue
        // configurations (null); `self.pool` is a live pktmbuf pool.
        unsafe {
            let socket = sys::rte_eth_dev_socket_id(id) as u32;
            for q in 0..queues {
                if sys::rte_eth_rx_queue_setup(id, q, nrx, socket, std::ptr::null(), self.pool) != 0
                {
                    return Err(dpdk_err(&format!(
                        "rte_eth_rx_queue_setup port {id} queue {q}"
                    )));
                }
                if sys::rte_eth_tx_queue_setup(id, q, ntx, socket, std::ptr::null()) != 0 {
                    return Err(dpdk_err(&format!(
                        "rte_eth_tx_queue_setup port {id} queue {q}"
                    )));
                }
            }
            if sys::rte_eth_dev_start(id) != 0 {
                return Err(dpdk_err(&format!("rte_eth_dev_start port {id}")));
            }
            self.started = true;
            // Not every PMD supports it (af_xdp does not need it): log only.
            if sys::rte_eth_promiscuous_enable(id) != 0 {
                tracing::debug!(port = id, "promiscuous mode not enabled");
            }
            let mut mac = sys::rte_ether_addr::default();
            if sys::rte_eth_macaddr_get(id, &mut mac) != 0 {
                return Err(dpdk_err(&format!("rte_eth_macaddr_get port {id}")));
            }
            self.mac = EthernetAddress(mac.addr_bytes);
            let mut mtu = 0u16;
            if sys::rte_eth_dev_get_mtu(id, &mut mtu) == 0 && mtu >= 1280 {
                self.mtu = mtu;
            }
        }
        tracing::info!(port = id, queues, mac = %self.mac, mtu = self.mtu, rx_desc = nrx, tx_desc = ntx, "DPDK port started");
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The per-queue backend.

/// A frame waiting for its destination's MAC.
struct Pending {
    mbuf: *mut sys::rte_mbuf,
    payload_len: usize,
    dst: SocketAddr,
    since: Instant,
}

/// One rx/tx queue pair of a DPDK port, as a [`Backend`].
pub struct DpdkBackend {
    port: Arc<Port>,
    queue: u16,
    l2: L2Endpoint,
    neigh_version: u64,
    pending: Vec<Pending>,
    arp_sent: Vec<(Ipv4Addr, Instant)>,
    rx: [*mut sys::rte_mbuf; BURST],
    tx: [*mut sys::rte_mbuf; BURST],
}

// SAFETY: the mbuf pointers are owned exclusively by this backend (rx/tx
// arrays only hold them within one call; `pending` owns its mbufs), and
// the queue is served by whichever single thread holds the backend. DPDK
// allows rx/tx burst on a queue from any thread as long as calls on one
// queue do not overlap, which `&mut self` guarantees.
unsafe impl Send for DpdkBackend {}

/// Opens a single-queue DPDK backend for `config` (see [`DpdkOptions::from_config`]).
pub fn open(config: &BackendConfig) -> Result<Box<dyn Backend>, BackendError> {
    let mut v = DpdkBackend::open_queues(config.local, &DpdkOptions::from_config(config), 1)?;
    Ok(Box::new(
        v.pop().expect("open_queues returns one backend per queue"),
    ))
}

impl DpdkBackend {
    /// Brings up EAL (once per process) and the port `opts` describe with
    /// `queues` rx/tx queue pairs, and returns one backend per queue, all
    /// bound to `local`.
    pub fn open_queues(
        local: SocketAddr,
        opts: &DpdkOptions,
        queues: u16,
    ) -> Result<Vec<DpdkBackend>, BackendError> {
        let port = Port::open(opts, queues)?;
        let l2 = L2Endpoint::new(port.mac, local, opts.dst_mac);
        Ok((0..queues)
            .map(|queue| DpdkBackend {
                port: Arc::clone(&port),
                queue,
                l2: l2.clone(),
                neigh_version: 0,
                pending: Vec::new(),
                arp_sent: Vec::new(),
                rx: [std::ptr::null_mut(); BURST],
                tx: [std::ptr::null_mut(); BURST],
            })
            .collect())
    }

    /// The port's MAC address.
    pub fn mac(&self) -> EthernetAddress {
        self.port.mac
    }

    /// The DPDK port id and this backend's queue.
    pub fn port_queue(&self) -> (u16, u16) {
        (self.port.id, self.queue)
    }

    /// Frames waiting for an ARP reply.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Largest UDP payload that fits the port's MTU (we add no VLAN tag,
    /// so everything in the headroom past 14 bytes of Ethernet is IP + UDP).
    pub fn max_payload(&self) -> usize {
        usize::from(self.port.mtu).saturating_sub(self.l2.headroom() - 14)
    }
}

/// The data of a single-segment mbuf as a mutable slice.
///
/// # Safety
/// `m` must be a valid mbuf owned by the caller for the returned lifetime.
unsafe fn frame_mut<'a>(m: *mut sys::rte_mbuf) -> &'a mut [u8] {
    // SAFETY: per the contract `m` is valid and ours; DPDK guarantees
    // `data_off + data_len <= buf_len` for the first segment.
    unsafe {
        std::slice::from_raw_parts_mut(sys::pktmbuf_mtod(m), usize::from(sys::pktmbuf_data_len(m)))
    }
}

/// The whole buffer of an mbuf from its data start (room for headers and
/// payload), as a mutable slice.
///
/// # Safety
/// `m` must be a valid mbuf owned by the caller for the returned lifetime.
unsafe fn room_mut<'a>(m: *mut sys::rte_mbuf) -> &'a mut [u8] {
    // SAFETY: per the contract `m` is valid and ours; the buffer is
    // `buf_len` bytes from `buf_addr` and `data_off <= buf_len`.
    unsafe {
        let len = usize::from((*m).buf_len).saturating_sub(usize::from((*m).data_off));
        std::slice::from_raw_parts_mut(sys::pktmbuf_mtod(m), len)
    }
}

impl DpdkBackend {
    /// Pulls neighbours other queues learnt since we last looked.
    fn sync_neighbours(&mut self) {
        let v = self.port.neighbours.version.load(Ordering::Acquire);
        if v == self.neigh_version {
            return;
        }
        self.neigh_version = v;
        if let Ok(t) = self.port.neighbours.table.lock() {
            for &(ip, mac) in t.iter() {
                self.l2.add_neighbour(IpAddr::V4(ip), mac);
            }
        }
    }

    /// RFC 826 "Packet Reception": merge the sender's (protocol, hardware)
    /// pair of an ARP packet addressed to us into the translation table.
    fn learn(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
        if ip.is_unspecified() || mac.is_multicast() || mac == EthernetAddress([0; 6]) {
            return;
        }
        self.port.neighbours.learn(ip, mac);
        self.sync_neighbours();
    }

    /// Learns from ARP replies addressed to our IPv4 address (`parse_rx`
    /// only reports requests).
    fn inspect_arp_reply(&mut self, frame: &[u8]) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        if eth.ethertype() != EtherType::Arp {
            return;
        }
        let Ok(p) = ArpPacket::new_checked(eth.payload()) else {
            return;
        };
        let Ok(r) = ArpRepr::parse(&p) else { return };
        if r.operation == ArpOperation::Reply
            && IpAddr::V4(r.target_protocol_addr) == self.l2.local_addr().ip()
        {
            self.learn(r.source_protocol_addr, r.source_hardware_addr);
        }
    }

    /// Allocates one mbuf, lets `fill` write a frame into it and sends it.
    fn send_control(&mut self, what: &str, fill: impl FnOnce(&Self, &mut [u8]) -> Option<usize>) {
        // SAFETY: the pool is live while the port is.
        let m = unsafe { sys::tarte_rte_pktmbuf_alloc(self.port.pool) };
        if m.is_null() {
            self.l2.stats_mut().tx_errors += 1;
            return;
        }
        // SAFETY: `m` is a fresh mbuf we own.
        let len = fill(self, unsafe { room_mut(m) });
        let mut one = [m];
        // SAFETY: `m` is ours; a frame length that fits the room fits u16
        // (the buffer is 2 KiB); tx_burst takes ownership when it returns 1.
        let sent = unsafe {
            match len.and_then(|l| u16::try_from(l).ok()) {
                Some(l) => {
                    sys::pktmbuf_set_len(m, l);
                    sys::tarte_rte_eth_tx_burst(self.port.id, self.queue, one.as_mut_ptr(), 1)
                }
                None => 0,
            }
        };
        if sent == 0 {
            // SAFETY: not taken by the PMD: still ours.
            unsafe { sys::tarte_rte_pktmbuf_free(m) };
            self.l2.stats_mut().tx_errors += 1;
            tracing::debug!(what, "control frame not sent");
        }
    }

    fn answer_arp(&mut self, req: &ArpRepr) {
        // A request for us also tells us the asker's address (RFC 826).
        self.learn(req.source_protocol_addr, req.source_hardware_addr);
        self.send_control("ARP reply", |s, room| s.l2.build_arp_reply(req, room).ok());
    }

    /// Sends an ARP request for `ip` unless one went out very recently.
    fn request_arp(&mut self, ip: Ipv4Addr) {
        let now = Instant::now();
        self.arp_sent
            .retain(|(_, t)| now.duration_since(*t) < ARP_RETRY);
        if self.arp_sent.iter().any(|(i, _)| *i == ip) {
            return;
        }
        let IpAddr::V4(src) = self.l2.local_addr().ip() else {
            return;
        };
        self.arp_sent.push((ip, now));
        let mac = self.port.mac;
        self.send_control("ARP request", |_, room| {
            const LEN: usize = 60;
            let room = room.get_mut(..LEN)?;
            room.fill(0);
            let eth = EthernetRepr {
                src_addr: mac,
                dst_addr: EthernetAddress::BROADCAST,
                vlan_tci: None,
                ethertype: EtherType::Arp,
            };
            let arp = ArpRepr {
                operation: ArpOperation::Request,
                source_hardware_addr: mac,
                source_protocol_addr: src,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: ip,
            };
            let hl = eth.buffer_len();
            eth.emit(&mut EthernetFrame::new_unchecked(&mut room[..]))
                .ok()?;
            arp.emit(&mut ArpPacket::new_unchecked(&mut room[hl..]))
                .ok()?;
            Some(LEN)
        });
        tracing::debug!(%ip, "ARP request sent");
    }

    /// Sends what waits for a neighbour that is now known; drops what waited
    /// too long; asks again for the rest.
    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut keep = Vec::with_capacity(self.pending.len());
        let mut ready: Vec<*mut sys::rte_mbuf> = Vec::new();
        let mut ask: Vec<Ipv4Addr> = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            // SAFETY: pending mbufs are ours.
            let room = unsafe { room_mut(p.mbuf) };
            match self.l2.build_tx(room, p.payload_len, p.dst) {
                Ok(len) => {
                    // SAFETY: `len` fits the room, which is under 64 KiB.
                    unsafe { sys::pktmbuf_set_len(p.mbuf, len as u16) };
                    self.l2.count_tx(p.payload_len);
                    ready.push(p.mbuf);
                }
                Err(_) if now.duration_since(p.since) < PENDING_TTL => {
                    if let IpAddr::V4(ip) = p.dst.ip() {
                        if !ask.contains(&ip) {
                            ask.push(ip);
                        }
                    }
                    keep.push(p);
                }
                Err(_) => {
                    // SAFETY: ours, never handed to the PMD.
                    unsafe { sys::tarte_rte_pktmbuf_free(p.mbuf) };
                    self.l2.stats_mut().tx_errors += 1;
                }
            }
        }
        self.pending = keep;
        for ip in ask {
            self.request_arp(ip);
        }
        for chunk in ready.chunks_mut(BURST) {
            let n = chunk.len();
            let sent = self.transmit(chunk);
            self.l2.stats_mut().tx_errors += (n - sent) as u64;
        }
    }

    /// Hands `frames` to the PMD, retrying a few times when the ring is full;
    /// frees what it would not take. Returns how many were taken.
    fn transmit(&mut self, frames: &mut [*mut sys::rte_mbuf]) -> usize {
        let mut done = 0;
        for _ in 0..TX_RETRIES {
            if done == frames.len() {
                break;
            }
            let rest = &mut frames[done..];
            // SAFETY: `rest` holds valid mbufs we own; the PMD takes
            // ownership of the first `sent` ones.
            let sent = unsafe {
                sys::tarte_rte_eth_tx_burst(
                    self.port.id,
                    self.queue,
                    rest.as_mut_ptr(),
                    rest.len() as u16,
                )
            };
            done += usize::from(sent);
        }
        if done < frames.len() {
            let rest = &mut frames[done..];
            // SAFETY: not taken by the PMD: still ours.
            unsafe { sys::tarte_rte_pktmbuf_free_bulk(rest.as_mut_ptr(), rest.len() as u32) };
        }
        done
    }
}

impl Backend for DpdkBackend {
    fn name(&self) -> &'static str {
        "dpdk"
    }

    fn rx_burst(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(&mut [u8], &DgramMeta),
    ) -> Result<usize, BackendError> {
        register_thread();
        self.flush_pending();
        let want = max.min(BURST);
        if want == 0 {
            return Ok(0);
        }
        // SAFETY: `self.rx` has room for BURST >= want pointers; the PMD
        // fills the first `n` with mbufs that we then own.
        let n = usize::from(unsafe {
            sys::tarte_rte_eth_rx_burst(self.port.id, self.queue, self.rx.as_mut_ptr(), want as u16)
        });
        let mut delivered = 0;
        for i in 0..n {
            let m = self.rx[i];
            // SAFETY: `m` came from rx_burst and is ours until freed below.
            if unsafe { sys::tarte_rte_pktmbuf_nb_segs(m) } != 1 {
                // Our mbufs hold a full 1500-byte MTU frame: a chain means a
                // jumbo frame we do not handle.
                self.l2.stats_mut().rx_malformed += 1;
                continue;
            }
            // SAFETY: as above; the slice dies before the mbuf is freed.
            let frame = unsafe { frame_mut(m) };
            match self.l2.parse_rx(frame) {
                RxVerdict::Deliver { payload, meta } => {
                    f(&mut frame[payload], &meta);
                    delivered += 1;
                }
                RxVerdict::ArpRequest(req) => self.answer_arp(&req),
                RxVerdict::Drop => self.inspect_arp_reply(frame),
            }
        }
        if n > 0 {
            // SAFETY: the n received mbufs are ours; no slice into them lives on.
            unsafe { sys::tarte_rte_pktmbuf_free_bulk(self.rx.as_mut_ptr(), n as u32) };
        }
        Ok(delivered)
    }

    fn tx_burst(
        &mut self,
        n: usize,
        f: &mut dyn FnMut(usize, &mut [u8]) -> Option<(usize, SocketAddr)>,
    ) -> Result<usize, BackendError> {
        register_thread();
        self.sync_neighbours();
        let want = n.min(BURST);
        if want == 0 {
            return Ok(0);
        }
        // SAFETY: `self.tx` has room for BURST >= want pointers.
        if unsafe {
            sys::tarte_rte_pktmbuf_alloc_bulk(self.port.pool, self.tx.as_mut_ptr(), want as u32)
        } != 0
        {
            self.l2.stats_mut().tx_errors += 1;
            return Err(BackendError::Dpdk(format!(
                "mbuf pool of port {} exhausted",
                self.port.id
            )));
        }
        let hr = self.l2.headroom();
        let cap = self.max_payload();
        let (mut ready, mut queued, mut used) = (0usize, 0usize, 0usize);
        let mut result = Ok(());
        while used < want {
            let m = self.tx[used];
            // SAFETY: freshly allocated mbuf, ours.
            let room = unsafe { room_mut(m) };
            let Some((len, dst)) = f(used, &mut room[hr..hr + cap]) else {
                break;
            };
            used += 1;
            if len > cap {
                // SAFETY: ours.
                unsafe { sys::tarte_rte_pktmbuf_free(m) };
                self.l2.stats_mut().tx_errors += 1;
                result = Err(BackendError::Config(format!(
                    "payload length {len} over the {cap}-byte room"
                )));
                break;
            }
            match self.l2.build_tx(room, len, dst) {
                Ok(total) => {
                    // SAFETY: `total <= hr + cap` fits the mbuf.
                    unsafe { sys::pktmbuf_set_len(m, total as u16) };
                    self.l2.count_tx(len);
                    self.tx[ready] = m;
                    ready += 1;
                }
                Err(BackendError::NoNeighbour(IpAddr::V4(ip)))
                    if self.pending.len() < PENDING_MAX =>
                {
                    self.pending.push(Pending {
                        mbuf: m,
                        payload_len: len,
                        dst,
                        since: Instant::now(),
                    });
                    queued += 1;
                    self.request_arp(ip);
                }
                Err(e) => {
                    // SAFETY: ours.
                    unsafe { sys::tarte_rte_pktmbuf_free(m) };
                    self.l2.stats_mut().tx_errors += 1;
                    tracing::debug!(%dst, %e, "datagram dropped");
                }
            }
        }
        if used < want {
            let rest = &mut self.tx[used..want];
            // SAFETY: allocated above, never filled: ours.
            unsafe { sys::tarte_rte_pktmbuf_free_bulk(rest.as_mut_ptr(), rest.len() as u32) };
        }
        let mut frames = self.tx;
        let sent = self.transmit(&mut frames[..ready]);
        if sent < ready {
            // Counted as sent by build_tx's caller above; correct that.
            let st = self.l2.stats_mut();
            let lost = (ready - sent) as u64;
            st.tx_errors += lost;
            st.tx_packets -= lost;
        }
        result.map(|()| sent + queued)
    }

    fn local_addr(&self) -> SocketAddr {
        self.l2.local_addr()
    }

    fn stats(&self) -> BackendStats {
        self.l2.stats().clone()
    }
}

impl Drop for DpdkBackend {
    fn drop(&mut self) {
        for p in self.pending.drain(..) {
            // SAFETY: pending mbufs are ours and the pool is still live (the
            // port, which frees it, outlives this backend's Arc).
            unsafe { sys::tarte_rte_pktmbuf_free(p.mbuf) };
        }
    }
}
