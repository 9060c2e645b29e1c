//! AF_XDP backend (xsk-rs 0.11): one socket per NIC queue, skb or drv mode,
//! zero-copy when the driver offers it and copy mode otherwise (veth refuses
//! zero-copy with EOPNOTSUPP). Our own XDP program (`program`) redirects
//! only the engine's UDP port to the queue's socket and passes the rest to
//! the kernel, so ARP and neighbour discovery keep working.
//!
//! We load the program ourselves and create sockets with
//! `XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD`, so libxdp's dispatcher (which fails
//! to load on some kernels; `LIBXDP_SKIP_DISPATCHER=1` works around it) is
//! never involved.

mod program;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use super::l2::{interface_mac, L2Endpoint, RxVerdict};
use super::{Backend, BackendConfig, BackendError, BackendStats, DgramMeta, XdpMode, XdpRingStats};
use program::XdpProgram;

/// Descriptors handled per ring operation.
const BATCH: usize = 64;
/// UMEM frame size.
const FRAME_SIZE: u32 = 2048;
/// How long to keep retrying a queue that is still busy (EBUSY) from a
/// previous socket (~150 ms after that process exits on this kernel).
const BUSY_RETRY_FOR: Duration = Duration::from_secs(3);

/// An AF_XDP socket on one queue of one interface.
pub struct AfXdpBackend {
    // Queues first: they are dropped (and the socket deleted) before the
    // program is detached.
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    umem: Umem,
    rx_descs: Vec<FrameDesc>,
    tx_free: Vec<FrameDesc>,
    tx_ready: Vec<FrameDesc>,
    comp_descs: Vec<FrameDesc>,
    /// Frames handed to the tx ring whose completion we have not seen.
    tx_outstanding: usize,
    l2: L2Endpoint,
    queue: u32,
    zero_copy: bool,
    program: Arc<XdpProgram>,
}

fn xdp_err(config: &BackendConfig, reason: String) -> BackendError {
    BackendError::Xdp {
        iface: config.interface.clone().unwrap_or_default(),
        queue: config.queue,
        reason,
    }
}

fn os_error(e: &xsk_rs::socket::SocketCreateError) -> Option<i32> {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .and_then(|e| e.raw_os_error())
}

type Queues = (TxQueue, RxQueue, FillQueue, CompQueue);

impl AfXdpBackend {
    /// Attaches the XDP program (once per interface) and binds a socket to
    /// `config.queue` of `config.interface`.
    pub fn open(config: &BackendConfig) -> Result<Self, BackendError> {
        let iface = config
            .interface
            .as_deref()
            .ok_or_else(|| BackendError::Config("afxdp needs an interface".into()))?;
        let ring = config.ring_size.clamp(64, 8192).next_power_of_two();
        let qsize = QueueSize::new(ring).map_err(|e| xdp_err(config, e.to_string()))?;
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| xdp_err(config, e.to_string()))?)
            .fill_queue_size(qsize)
            .comp_queue_size(qsize)
            .build()
            .map_err(|e| xdp_err(config, e.to_string()))?;
        // Half the frames feed the fill ring, half are for transmission.
        let frames = NonZeroU32::new(ring * 2).unwrap_or(NonZeroU32::MIN);
        let (umem, mut descs) = Umem::new(umem_cfg, frames, false)
            .map_err(|e| xdp_err(config, format!("creating UMEM: {e}")))?;
        let program = XdpProgram::attach_shared(iface, config.xdp_mode, config.local.port())?;
        let (tx, rx, mut fq, cq, zero_copy) = Self::bind(config, iface, &umem, qsize)?;
        program.register(config.queue, rx.fd().as_raw_fd())?;
        let tx_free = descs.split_off(ring as usize);
        // SAFETY: these descriptors come from this UMEM and are not in use.
        let filled = unsafe { fq.produce(&descs) };
        if filled != descs.len() {
            return Err(xdp_err(
                config,
                format!("fill ring took {filled} of {} frames", descs.len()),
            ));
        }
        let local_mac = interface_mac(iface)?;
        let mac_peer = config.dst_mac.map(crate::wire::EthernetAddress);
        let l2 =
            L2Endpoint::new(local_mac, config.local, mac_peer).with_interface(Some(iface.into()));
        tracing::info!(iface, queue = config.queue, mode = ?config.xdp_mode, zero_copy, "afxdp socket bound");
        Ok(AfXdpBackend {
            tx,
            rx,
            fq,
            cq,
            umem,
            rx_descs: descs,
            tx_free,
            tx_ready: Vec::with_capacity(BATCH),
            comp_descs: vec![FrameDesc::default(); BATCH],
            tx_outstanding: 0,
            l2,
            queue: config.queue,
            zero_copy,
            program,
        })
    }

    /// Creates the socket: zero-copy first when asked, then copy mode;
    /// retries EBUSY with exponential back-off.
    fn bind(
        config: &BackendConfig,
        iface: &str,
        umem: &Umem,
        qsize: QueueSize,
    ) -> Result<(TxQueue, RxQueue, FillQueue, CompQueue, bool), BackendError> {
        let name: Interface = iface
            .parse()
            .map_err(|_| xdp_err(config, "bad interface name".into()))?;
        let xdp_flags = match config.xdp_mode {
            XdpMode::Skb => XdpFlags::XDP_FLAGS_SKB_MODE,
            XdpMode::Drv => XdpFlags::XDP_FLAGS_DRV_MODE,
        };
        let mut attempts = vec![(BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP, false)];
        if config.zero_copy && config.xdp_mode == XdpMode::Drv {
            attempts.insert(
                0,
                (
                    BindFlags::XDP_ZEROCOPY | BindFlags::XDP_USE_NEED_WAKEUP,
                    true,
                ),
            );
        }
        let mut last = String::new();
        for (bind_flags, zc) in attempts {
            let sc = SocketConfig::builder()
                .rx_queue_size(qsize)
                .tx_queue_size(qsize)
                .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                .xdp_flags(xdp_flags)
                .bind_flags(bind_flags)
                .build();
            match Self::bind_retrying(sc, umem, &name, config.queue) {
                Ok((tx, rx, fq, cq)) => return Ok((tx, rx, fq, cq, zc)),
                Err((e, code)) => {
                    last = e;
                    if zc && matches!(code, Some(c) if c == libc::EOPNOTSUPP || c == libc::EINVAL) {
                        tracing::debug!(iface, "zero-copy refused, falling back to copy mode");
                        continue;
                    }
                    break;
                }
            }
        }
        Err(xdp_err(config, format!("binding socket: {last}")))
    }

    fn bind_retrying(
        sc: SocketConfig,
        umem: &Umem,
        name: &Interface,
        queue: u32,
    ) -> Result<Queues, (String, Option<i32>)> {
        let start = Instant::now();
        let mut wait = Duration::from_millis(10);
        loop {
            // SAFETY: the UMEM is not shared with another socket on this
            // (interface, queue) pair, so the INHIBIT_PROG_LOAD requirement
            // for shared UMEMs does not apply (and we set it anyway).
            match unsafe { xsk_rs::Socket::new(sc, umem, name, queue) } {
                Ok((tx, rx, Some((fq, cq)))) => return Ok((tx, rx, fq, cq)),
                Ok((_, _, None)) => return Err(("UMEM already bound to this queue".into(), None)),
                Err(e) => {
                    let code = os_error(&e);
                    if code == Some(libc::EBUSY) && start.elapsed() < BUSY_RETRY_FOR {
                        tracing::debug!(queue, ?wait, "queue busy, retrying");
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_millis(200));
                        continue;
                    }
                    let detail = std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    return Err((format!("{e}: {detail}"), code));
                }
            }
        }
    }

    /// Whether the socket runs in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The kernel's counters for this socket (`XDP_STATISTICS`), or `None`
    /// when the kernel does not answer (logged).
    pub fn xdp_statistics(&self) -> Option<XdpRingStats> {
        match self.rx.fd().xdp_statistics() {
            Ok(k) => Some(XdpRingStats {
                rx_dropped: k.rx_dropped(),
                rx_invalid_descs: k.rx_invalid_descs(),
                rx_ring_full: k.rx_ring_full(),
                rx_fill_ring_empty_descs: k.rx_fill_ring_empty_descs(),
                tx_invalid_descs: k.tx_invalid_descs(),
                tx_ring_empty_descs: k.tx_ring_empty_descs(),
            }),
            Err(e) => {
                tracing::debug!(queue = self.queue, error = %e, "XDP_STATISTICS failed");
                None
            }
        }
    }

    /// Takes completed transmissions back into the free list, and kicks
    /// the kernel again while frames are still waiting in the tx ring: in
    /// copy mode one `sendto` wake-up transmits at most 32 descriptors
    /// (the kernel's TX_BATCH_SIZE), so without another kick the rest would
    /// wait for our next tx burst, which may never come.
    fn reclaim(&mut self) {
        // SAFETY: comp_descs are plain descriptors to be overwritten.
        let n = unsafe { self.cq.consume(&mut self.comp_descs) };
        self.tx_free.extend_from_slice(&self.comp_descs[..n]);
        self.tx_outstanding = self.tx_outstanding.saturating_sub(n);
        if self.tx_outstanding > 0 && self.tx.needs_wakeup() {
            if let Err(e) = self.tx.wakeup() {
                tracing::debug!(queue = self.queue, error = %e, "af_xdp tx kick failed");
            }
        }
    }
}

impl Backend for AfXdpBackend {
    fn name(&self) -> &'static str {
        "afxdp"
    }

    fn rx_burst(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(&mut [u8], &DgramMeta),
    ) -> Result<usize, BackendError> {
        if self.tx_outstanding > 0 {
            self.reclaim();
        }
        let want = max.min(BATCH).min(self.rx_descs.len());
        // SAFETY: rx_descs are ours to overwrite.
        let n = unsafe { self.rx.consume(&mut self.rx_descs[..want]) };
        if n == 0 {
            if self.fq.needs_wakeup() {
                // Nothing arrived and the kernel waits for a kick to refill.
                let _ = self.fq.wakeup(self.rx.fd_mut(), 0);
            }
            return Ok(0);
        }
        let mut delivered = 0;
        for i in 0..n {
            let mut desc = self.rx_descs[i];
            // SAFETY: desc was just consumed from the rx ring of this UMEM, so
            // the frame is ours until we hand it back to the fill ring below.
            let mut data = unsafe { self.umem.data_mut(&mut desc) };
            let frame = data.contents_mut();
            if let RxVerdict::Deliver { payload, meta } = self.l2.parse_rx(frame) {
                f(&mut frame[payload], &meta);
                delivered += 1;
            }
        }
        // SAFETY: the frames are no longer referenced; they return to the
        // kernel through the fill ring.
        let back = unsafe { self.fq.produce(&self.rx_descs[..n]) };
        if back != n {
            // Cannot happen: the fill ring has room for every UMEM rx frame.
            tracing::warn!(back, n, "fill ring refused frames");
        }
        if self.fq.needs_wakeup() {
            let _ = self.fq.wakeup(self.rx.fd_mut(), 0);
        }
        Ok(delivered)
    }

    fn tx_burst(
        &mut self,
        n: usize,
        f: &mut dyn FnMut(usize, &mut [u8]) -> Option<(usize, SocketAddr)>,
    ) -> Result<usize, BackendError> {
        self.reclaim();
        let hr = self.l2.headroom();
        let mut err = None;
        for i in 0..n.min(BATCH) {
            let Some(mut desc) = self.tx_free.pop() else {
                break;
            };
            // SAFETY: desc is on the free list: not in any ring.
            let mut data = unsafe { self.umem.data_mut(&mut desc) };
            let mut cur = data.cursor();
            let cap = cur.buf_len();
            cur.set_pos(cap);
            let frame = data.contents_mut();
            let Some((len, dst)) = f(i, &mut frame[hr..]) else {
                self.tx_free.push(desc);
                break;
            };
            match self.l2.build_tx(frame, len, dst) {
                Ok(flen) => {
                    data.cursor().set_pos(flen);
                    self.l2.count_tx(len);
                    self.tx_ready.push(desc);
                }
                Err(e) => {
                    self.l2.stats_mut().tx_errors += 1;
                    self.tx_free.push(desc);
                    err = Some(e);
                    break;
                }
            }
        }
        let ready = self.tx_ready.len();
        // SAFETY: tx_ready frames hold complete packets and are not used
        // again until they come back through the completion ring.
        let queued = unsafe { self.tx.produce_and_wakeup(&self.tx_ready) }
            .map_err(|e| BackendError::io("af_xdp tx wakeup", e))?;
        self.tx_outstanding += queued;
        if queued < ready {
            // The tx ring is full: un-count and keep the frames.
            let st = self.l2.stats_mut();
            for d in &self.tx_ready[queued..] {
                st.tx_packets -= 1;
                st.tx_bytes -= (d.lengths().data() - hr) as u64;
            }
            self.tx_free.extend_from_slice(&self.tx_ready[queued..]);
        }
        self.tx_ready.clear();
        match err {
            Some(e) if queued == 0 => Err(e),
            _ => Ok(queued),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.l2.local_addr()
    }

    fn stats(&self) -> BackendStats {
        let mut s = self.l2.stats().clone();
        s.xdp = self.xdp_statistics();
        s
    }
}

impl Drop for AfXdpBackend {
    fn drop(&mut self) {
        self.program.unregister(self.queue);
    }
}
