//! In-process backend: two endpoints joined by frame rings, with seeded
//! loss, duplication, corruption and delay on the way, and optional pcap
//! capture of the real frames. For tests and benches; not a fast path.
//!
//! Frames are full Ethernet/IP/UDP frames built and parsed by [`L2Endpoint`],
//! so the mem backend exercises the same header code as afxdp and dpdk.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::l2::{L2Endpoint, RxVerdict};
use super::pcap::PcapWriter;
use super::{Backend, BackendError, BackendStats, DgramMeta};
use crate::wire::EthernetAddress;

/// Faults and sizes of a mem link (both directions).
#[derive(Clone, Debug)]
pub struct MemConfig {
    /// Seed of the fault generator: same seed, same faults.
    pub seed: u64,
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that one byte of a frame is flipped.
    pub corrupt: f64,
    /// One-way delay of every frame.
    pub delay: Duration,
    /// Frames a direction holds before tx stops early.
    pub capacity: usize,
    /// Frame buffer size (MTU + headers).
    pub frame_size: usize,
}

impl Default for MemConfig {
    fn default() -> Self {
        MemConfig {
            seed: 1,
            loss: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            delay: Duration::ZERO,
            capacity: 4096,
            frame_size: 2048,
        }
    }
}

/// What the link did to frames (per direction, as seen by the sender).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames put on the wire by the sender.
    pub sent: u64,
    /// Frames lost.
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Frames with a byte flipped.
    pub corrupted: u64,
}

/// xorshift64*: small, seeded, good enough for fault injection.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[derive(Debug, Default)]
struct Ring {
    frames: VecDeque<(Instant, Vec<u8>)>,
    free: Vec<Vec<u8>>,
}

type Shared = Arc<Mutex<Ring>>;

fn lock(r: &Shared) -> MutexGuard<'_, Ring> {
    // A panic while holding the lock cannot leave the ring inconsistent
    // (every operation is a single push/pop), so poisoning is ignored.
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// One end of a mem link.
pub struct MemBackend {
    l2: L2Endpoint,
    rx: Shared,
    tx: Shared,
    cfg: MemConfig,
    rng: Rng,
    link: LinkStats,
    capture: Option<PcapWriter<Box<dyn Write + Send>>>,
    scratch: Vec<u8>,
}

/// MAC of the first endpoint of a pair.
pub const MAC_A: EthernetAddress = EthernetAddress([0x02, 0x74, 0x61, 0x72, 0x00, 0x01]);
/// MAC of the second endpoint of a pair.
pub const MAC_B: EthernetAddress = EthernetAddress([0x02, 0x74, 0x61, 0x72, 0x00, 0x02]);

/// Two endpoints at `a` and `b` joined by a link with faults `cfg`.
pub fn pair(a: SocketAddr, b: SocketAddr, cfg: MemConfig) -> (MemBackend, MemBackend) {
    let ab: Shared = Arc::default();
    let ba: Shared = Arc::default();
    let end = |mac, local, peer, rx: &Shared, tx: &Shared, salt: u64| MemBackend {
        l2: L2Endpoint::new(mac, local, Some(peer)),
        rx: rx.clone(),
        tx: tx.clone(),
        rng: Rng::new(cfg.seed ^ salt),
        cfg: cfg.clone(),
        link: LinkStats::default(),
        capture: None,
        scratch: vec![0u8; cfg.frame_size],
    };
    let ea = end(MAC_A, a, MAC_B, &ba, &ab, 0xa);
    let eb = end(MAC_B, b, MAC_A, &ab, &ba, 0xb);
    (ea, eb)
}

impl MemBackend {
    /// Records every frame this end receives (before parsing) to `out`.
    pub fn capture_rx(&mut self, out: Box<dyn Write + Send>) -> Result<(), BackendError> {
        let w = PcapWriter::new(out).map_err(|e| BackendError::io("writing pcap header", e))?;
        self.capture = Some(w);
        Ok(())
    }

    /// Flushes and stops the capture.
    pub fn stop_capture(&mut self) -> Result<(), BackendError> {
        if let Some(mut w) = self.capture.take() {
            w.flush()
                .map_err(|e| BackendError::io("flushing pcap", e))?;
        }
        Ok(())
    }

    /// What the link did to the frames this end sent.
    pub fn link_stats(&self) -> &LinkStats {
        &self.link
    }

    /// Puts a raw frame on the wire towards the peer (no faults applied):
    /// tests use it to feed malformed frames.
    pub fn inject_frame(&mut self, frame: &[u8]) {
        lock(&self.tx)
            .frames
            .push_back((Instant::now(), frame.to_vec()));
    }

    /// Frames waiting for this end (delivered or not yet due).
    pub fn pending(&self) -> usize {
        lock(&self.rx).frames.len()
    }

    /// The L2 identity of this end.
    pub fn l2(&self) -> &L2Endpoint {
        &self.l2
    }

    fn put_on_wire(&mut self, ring: &mut Ring, len: usize) {
        self.link.sent += 1;
        if self.rng.chance(self.cfg.loss) {
            self.link.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.cfg.duplicate) {
            self.link.duplicated += 1;
            2
        } else {
            1
        };
        let corrupt_at = if self.rng.chance(self.cfg.corrupt) {
            self.link.corrupted += 1;
            Some((self.rng.next() as usize) % len)
        } else {
            None
        };
        let due = Instant::now() + self.cfg.delay;
        for _ in 0..copies {
            let mut f = ring.free.pop().unwrap_or_default();
            f.clear();
            f.extend_from_slice(&self.scratch[..len]);
            if let Some(at) = corrupt_at {
                f[at] ^= 0x04;
            }
            ring.frames.push_back((due, f));
        }
    }
}

impl Backend for MemBackend {
    fn name(&self) -> &'static str {
        "mem"
    }

    fn rx_burst(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(&mut [u8], &DgramMeta),
    ) -> Result<usize, BackendError> {
        let now = Instant::now();
        let mut delivered = 0;
        let rx = self.rx.clone();
        let mut ring = lock(&rx);
        while delivered < max {
            match ring.frames.front() {
                Some((due, _)) if *due <= now => {}
                _ => break,
            }
            let Some((_, mut frame)) = ring.frames.pop_front() else {
                break;
            };
            if let Some(c) = self.capture.as_mut() {
                if c.write_frame(&frame).is_err() {
                    tracing::warn!("mem: pcap write failed, capture stopped");
                    self.capture = None;
                }
            }
            match self.l2.parse_rx(&frame) {
                RxVerdict::Deliver { payload, meta } => {
                    f(&mut frame[payload], &meta);
                    delivered += 1;
                }
                RxVerdict::ArpRequest(_) | RxVerdict::Drop => {}
            }
            ring.free.push(frame);
        }
        Ok(delivered)
    }

    fn tx_burst(
        &mut self,
        n: usize,
        f: &mut dyn FnMut(usize, &mut [u8]) -> Option<(usize, SocketAddr)>,
    ) -> Result<usize, BackendError> {
        let tx = self.tx.clone();
        let mut ring = lock(&tx);
        let hr = self.l2.headroom();
        let mut queued = 0;
        for i in 0..n {
            if ring.frames.len() >= self.cfg.capacity {
                break;
            }
            let Some((len, dst)) = f(i, &mut self.scratch[hr..]) else {
                break;
            };
            match self.l2.build_tx(&mut self.scratch, len, dst) {
                Ok(flen) => {
                    self.l2.count_tx(len);
                    self.put_on_wire(&mut ring, flen);
                    queued += 1;
                }
                Err(e) => {
                    self.l2.stats_mut().tx_errors += 1;
                    return if queued == 0 { Err(e) } else { Ok(queued) };
                }
            }
        }
        Ok(queued)
    }

    fn local_addr(&self) -> SocketAddr {
        self.l2.local_addr()
    }

    fn stats(&self) -> BackendStats {
        self.l2.stats().clone()
    }
}
