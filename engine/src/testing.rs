//! A deterministic in-memory client/server pair with a virtual clock and a
//! configurable lossy link (`testing` feature).
//!
//! Every engine and HTTP/3 test builds on [`Pipe`]: datagrams go through a
//! [`Link`] per direction that applies MTU, delay, loss, reordering,
//! duplication and corruption from a seeded generator, so a failing run can
//! be replayed exactly.

use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{Config, Connection, ConnectionId, Error, RecvInfo, Result};

/// A self-signed ECDSA P-256 certificate for `localhost`/127.0.0.1 and its
/// key, in PEM, generated once per process.
pub fn self_signed_cert() -> &'static (Vec<u8>, Vec<u8>) {
    static CERT: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    CERT.get_or_init(|| {
        let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
        crate::cert::self_signed(&["localhost"], &[localhost], 365)
            .expect("generating a test certificate")
    })
}

/// A config suitable for tests: the test certificate (server), ALPN
/// `proto1`, generous limits, no peer verification.
pub fn test_config(is_server: bool) -> Result<Config> {
    let mut c = Config::new(crate::PROTOCOL_VERSION)?;
    if is_server {
        let (cert, key) = self_signed_cert();
        c.load_cert_chain_from_pem(cert)?;
        c.load_priv_key_from_pem(key)?;
    }
    c.verify_peer(false);
    c.set_application_protos(&[b"proto1"])?;
    c.set_initial_max_data(10_000_000);
    c.set_initial_max_stream_data_bidi_local(1_000_000);
    c.set_initial_max_stream_data_bidi_remote(1_000_000);
    c.set_initial_max_stream_data_uni(1_000_000);
    c.set_initial_max_streams_bidi(100);
    c.set_initial_max_streams_uni(100);
    c.set_max_idle_timeout(30_000);
    c.set_max_send_udp_payload_size(1350);
    c.set_max_recv_udp_payload_size(1350);
    Ok(c)
}

/// A writer whose bytes the test reads back (for key logs and qlogs);
/// clones share the bytes.
#[derive(Clone, Default)]
pub struct SharedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedLog {
    /// Everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl std::io::Write for SharedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes the calling thread's pool of stream buffer blocks holds: memory
/// that belongs to the thread, not to any connection (benchmarks of memory
/// per connection subtract it).
pub fn stream_pool_bytes() -> usize {
    crate::stream::pooled_bytes()
}

/// Impairments of one direction of the link.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Largest datagram carried; larger ones are dropped.
    pub mtu: usize,
    /// One-way delay.
    pub delay: Duration,
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delayed by an extra `delay` (reordered).
    pub reorder: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability one byte of a datagram is flipped.
    pub corrupt: f64,
    /// Seed of the deterministic generator.
    pub seed: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            mtu: 1500,
            delay: Duration::from_millis(10),
            loss: 0.0,
            reorder: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            seed: 1,
        }
    }
}

#[derive(PartialEq, Eq)]
struct InFlight {
    at: Instant,
    seq: u64,
    data: Vec<u8>,
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Min-heap on (at, seq).
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One direction of the in-memory link.
pub struct Link {
    cfg: LinkConfig,
    rng: u64,
    seq: u64,
    queue: BinaryHeap<InFlight>,
    /// Fast path for links that never reorder or duplicate: arrival order
    /// is send order, so a FIFO suffices.
    fifo: std::collections::VecDeque<(Instant, Vec<u8>)>,
    /// Datagrams handed to the link.
    pub sent: u64,
    /// Datagrams the link dropped (loss or MTU).
    pub dropped: u64,
}

impl Link {
    /// A link with the given impairments.
    pub fn new(cfg: LinkConfig) -> Self {
        let rng = cfg.seed.max(1);
        Link {
            cfg,
            rng,
            seq: 0,
            queue: BinaryHeap::new(),
            fifo: std::collections::VecDeque::new(),
            sent: 0,
            dropped: 0,
        }
    }

    fn rand(&mut self) -> f64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Hands a datagram to the link at `now`.
    pub fn push(&mut self, mut data: Vec<u8>, now: Instant) {
        self.sent += 1;
        if data.len() > self.cfg.mtu || self.rand() < self.cfg.loss {
            self.dropped += 1;
            return;
        }
        if self.rand() < self.cfg.corrupt && !data.is_empty() {
            let i = (self.rand() * data.len() as f64) as usize % data.len();
            data[i] ^= 0x5a;
        }
        let mut at = now + self.cfg.delay;
        if self.cfg.reorder == 0.0 && self.cfg.duplicate == 0.0 {
            self.fifo.push_back((at, data));
            return;
        }
        if self.rand() < self.cfg.reorder {
            at += self.cfg.delay.max(Duration::from_millis(1));
        }
        if self.rand() < self.cfg.duplicate {
            self.seq += 1;
            self.queue.push(InFlight {
                at: at + Duration::from_micros(100),
                seq: self.seq,
                data: data.clone(),
            });
        }
        self.seq += 1;
        self.queue.push(InFlight {
            at,
            seq: self.seq,
            data,
        });
    }

    /// The next datagram due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.fifo.front().is_some_and(|(at, _)| *at <= now) {
            return self.fifo.pop_front().map(|(_, d)| d);
        }
        if self.queue.peek().is_some_and(|f| f.at <= now) {
            return self.queue.pop().map(|f| f.data);
        }
        None
    }

    /// When the next datagram is due.
    pub fn next_due(&self) -> Option<Instant> {
        match (
            self.fifo.front().map(|(at, _)| *at),
            self.queue.peek().map(|f| f.at),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A client and a server connected through two [`Link`]s, on a virtual
/// clock.
pub struct Pipe {
    /// The client side.
    pub client: Connection,
    /// The server side.
    pub server: Connection,
    /// The virtual time.
    pub now: Instant,
    /// Client → server.
    pub c2s: Link,
    /// Server → client.
    pub s2c: Link,
    client_addr: SocketAddr,
    server_addr: SocketAddr,
    /// Decides, from its destination and length, whether a datagram the
    /// server sends is lost before it reaches the link (an address gone,
    /// a path that drops large datagrams...).
    #[allow(clippy::type_complexity)]
    s2c_drop: Option<Box<dyn FnMut(SocketAddr, usize) -> bool>>,
    /// Recycled datagram buffers.
    pool: Vec<Vec<u8>>,
}

/// Size of the datagram buffers the pipe hands to `send`.
const DATAGRAM_BUF: usize = 1500;

impl Pipe {
    /// A pipe with the default test configs and a clean 10 ms link.
    pub fn new() -> Result<Pipe> {
        Pipe::with_configs(
            &mut test_config(false)?,
            &mut test_config(true)?,
            LinkConfig::default(),
            LinkConfig::default(),
        )
    }

    /// A pipe with the given configs and link impairments.
    pub fn with_configs(
        client_config: &mut Config,
        server_config: &mut Config,
        c2s: LinkConfig,
        s2c: LinkConfig,
    ) -> Result<Pipe> {
        let client_addr: SocketAddr = "127.0.0.1:4444".parse().map_err(|_| Error::InvalidState)?;
        let server_addr: SocketAddr = "127.0.0.1:4433".parse().map_err(|_| Error::InvalidState)?;
        let cscid = ConnectionId::from_vec(vec![0xc1; 8]);
        let sscid = ConnectionId::from_vec(vec![0x5e; 8]);
        let client = crate::connect(
            Some("localhost"),
            &cscid,
            client_addr,
            server_addr,
            client_config,
        )?;
        let server = crate::accept(&sscid, None, server_addr, client_addr, server_config)?;
        Ok(Pipe {
            client,
            server,
            now: Instant::now(),
            c2s: Link::new(c2s),
            s2c: Link::new(s2c),
            client_addr,
            server_addr,
            s2c_drop: None,
            pool: Vec::new(),
        })
    }

    /// Moves every datagram both sides want to send into the links.
    pub fn flush(&mut self) -> Result<usize> {
        let mut n = 0;
        for client_side in [true, false] {
            for _ in 0..10_000 {
                let (conn, link) = if client_side {
                    (&mut self.client, &mut self.c2s)
                } else {
                    (&mut self.server, &mut self.s2c)
                };
                // Datagram buffers are recycled: the harness should cost
                // next to nothing next to the connections it drives.
                let mut d = self.pool.pop().unwrap_or_default();
                d.resize(DATAGRAM_BUF, 0);
                match conn.send_at(&mut d, self.now) {
                    Ok((len, info))
                        if !client_side
                            && self.s2c_drop.as_mut().is_some_and(|f| f(info.to, len)) =>
                    {
                        self.pool.push(d);
                        n += 1;
                    }
                    Ok((len, _)) => {
                        d.truncate(len);
                        link.push(d, self.now);
                        n += 1;
                    }
                    Err(Error::Done) => {
                        self.pool.push(d);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    /// From now on the server sees the client's datagrams come from `addr`,
    /// as after a NAT rebinding (the client's own view does not change).
    pub fn rebind_client(&mut self, addr: SocketAddr) {
        self.client_addr = addr;
    }

    /// From now on a datagram the server sends is lost when `drop(to,
    /// len)` says so (None: none is).
    pub fn drop_server_datagrams(
        &mut self,
        drop: Option<Box<dyn FnMut(SocketAddr, usize) -> bool>>,
    ) {
        self.s2c_drop = drop;
    }

    /// The [`RecvInfo`] of a datagram from the client to the server (for
    /// callers handing datagrams over themselves).
    pub fn c2s_info(&self) -> RecvInfo {
        RecvInfo {
            from: self.client_addr,
            to: self.server_addr,
        }
    }

    /// The [`RecvInfo`] of a datagram from the server to the client (at
    /// the client's own address).
    pub fn s2c_info(&self) -> RecvInfo {
        RecvInfo {
            from: self.server_addr,
            to: self.client.local_addr,
        }
    }

    /// Delivers every datagram due now. Errors from `recv` other than
    /// `Done` are returned (the connection closes itself on them).
    pub fn deliver(&mut self) -> Result<usize> {
        let mut n = 0;
        while let Some(mut d) = self.c2s.pop_due(self.now) {
            let info = RecvInfo {
                from: self.client_addr,
                to: self.server_addr,
            };
            let r = self.server.recv_at(&mut d, info, self.now);
            self.pool.push(d);
            match r {
                Ok(_) | Err(Error::Done) => (),
                Err(e) => return Err(e),
            }
            n += 1;
        }
        while let Some(mut d) = self.s2c.pop_due(self.now) {
            // The client sees its datagrams arrive on its own address (a
            // NAT in between rewrites the server's view only).
            let info = RecvInfo {
                from: self.server_addr,
                to: self.client.local_addr,
            };
            let r = self.client.recv_at(&mut d, info, self.now);
            self.pool.push(d);
            match r {
                Ok(_) | Err(Error::Done) => (),
                Err(e) => return Err(e),
            }
            n += 1;
        }
        Ok(n)
    }

    /// One step: flush, deliver what is due, then jump the clock to the
    /// next event (a datagram arrival or a timer) and fire timers.
    /// Returns false when nothing at all is left to happen.
    pub fn advance(&mut self) -> Result<bool> {
        self.flush()?;
        if self.deliver()? > 0 {
            return Ok(true);
        }
        let next = [
            self.c2s.next_due(),
            self.s2c.next_due(),
            self.client.timeout_instant(),
            self.server.timeout_instant(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            return Ok(false);
        };
        if next > self.now {
            self.now = next;
        }
        if self.client.timeout_instant().is_some_and(|t| t <= self.now) {
            self.client.on_timeout_at(self.now);
        }
        if self.server.timeout_instant().is_some_and(|t| t <= self.now) {
            self.server.on_timeout_at(self.now);
        }
        self.deliver()?;
        Ok(true)
    }

    /// Advances until `done` holds, at most `max_steps` steps.
    pub fn run_until(
        &mut self,
        max_steps: usize,
        mut done: impl FnMut(&mut Pipe) -> bool,
    ) -> Result<()> {
        for _ in 0..max_steps {
            if done(self) {
                return Ok(());
            }
            if !self.advance()? {
                return if done(self) { Ok(()) } else { Err(Error::Done) };
            }
        }
        if done(self) {
            Ok(())
        } else {
            Err(Error::Done)
        }
    }

    /// Runs the handshake to completion on both sides (and until the
    /// client sees HANDSHAKE_DONE).
    pub fn handshake(&mut self) -> Result<()> {
        self.run_until(10_000, |p| {
            p.client.is_established() && p.server.is_established() && p.client.handshake_confirmed
        })
    }

    /// Virtual time elapsed since `start`.
    pub fn elapsed_since(&self, start: Instant) -> Duration {
        self.now.saturating_duration_since(start)
    }
}

impl Pipe {
    /// A pipe around connections built elsewhere (Retry tests, custom
    /// servers); addresses as in [`Pipe::new`].
    pub fn from_parts(
        client: Connection,
        server: Connection,
        now: Instant,
        c2s: LinkConfig,
        s2c: LinkConfig,
    ) -> Result<Pipe> {
        Ok(Pipe {
            client,
            server,
            now,
            c2s: Link::new(c2s),
            s2c: Link::new(s2c),
            client_addr: "127.0.0.1:4444".parse().map_err(|_| Error::InvalidState)?,
            server_addr: "127.0.0.1:4433".parse().map_err(|_| Error::InvalidState)?,
            s2c_drop: None,
            pool: Vec::new(),
        })
    }

    /// The addresses the pipe uses: (client, server).
    pub fn addrs() -> (SocketAddr, SocketAddr) {
        (
            SocketAddr::from(([127, 0, 0, 1], 4444)),
            SocketAddr::from(([127, 0, 0, 1], 4433)),
        )
    }
}

/// Protects `payload` (frames, not checked) as the next 1-RTT packet from
/// `from`, as if that endpoint had sent those frames: for tests and fuzz
/// targets that put arbitrary frames past packet protection. `None`
/// before `from` has 1-RTT keys.
pub fn forge_1rtt(from: &mut Connection, payload: &[u8]) -> Option<Vec<u8>> {
    let phase = from.key_update.phase;
    let dcid = from.cids.dcid().to_vec();
    let sp = &mut from.spaces[crate::recovery::Epoch::Application as usize];
    let keys = sp.seal.as_ref()?;
    let pn = sp.next_pkt_num;
    let pn_off = 1 + dcid.len();
    // A 4-byte packet number, and at least 4 payload bytes for the header
    // protection sample (RFC 9001 §5.4.2).
    let body_len = payload.len().max(4);
    let mut buf = vec![0u8; pn_off + 4 + body_len + crate::crypto::TAG_LEN];
    buf[0] = 0x40 | 0x03 | if phase { 0x04 } else { 0 };
    buf[1..pn_off].copy_from_slice(&dcid);
    buf[pn_off..pn_off + 4].copy_from_slice(&(pn as u32).to_be_bytes());
    buf[pn_off + 4..pn_off + 4 + payload.len()].copy_from_slice(payload);
    let n = crate::packet::protect(&mut buf, pn_off, 4, pn, body_len, keys).ok()?;
    sp.next_pkt_num += 1;
    buf.truncate(n);
    Some(buf)
}

/// A fuzz input cut into the payloads of up to `max` packets, on 0xff 0xfe
/// markers (for fuzz targets that seal each piece as a packet).
pub fn fuzz_pieces(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut rest = data;
    while pieces.len() + 1 < max {
        let Some(i) = rest.windows(2).position(|w| w == [0xff, 0xfe]) else {
            break;
        };
        pieces.push(&rest[..i]);
        rest = &rest[i + 2..];
    }
    pieces.push(rest);
    pieces
}

/// Protects `payload` (frames, not checked) as the next 0-RTT packet of
/// client `from`, which must be sending 0-RTT (`is_in_early_data`): for
/// tests and fuzz targets that put arbitrary frames into 0-RTT. `None`
/// otherwise.
pub fn forge_0rtt(from: &mut Connection, payload: &[u8]) -> Option<Vec<u8>> {
    if from.is_server {
        return None;
    }
    let keys = from.zero_rtt_keys.as_ref()?;
    let dcid = from.cids.dcid().to_vec();
    let scid = from.cids.scid().to_vec();
    let sp = &mut from.spaces[crate::recovery::Epoch::Application as usize];
    let pn = sp.next_pkt_num;
    let body_len = payload.len().max(4);
    let mut buf = Vec::with_capacity(64 + body_len);
    // Long header, type 0-RTT (RFC 9000 §17.2.3), 4-byte packet number.
    buf.push(0xc0 | (0x01 << 4) | 0x03);
    buf.extend_from_slice(&from.version.to_be_bytes());
    buf.push(dcid.len() as u8);
    buf.extend_from_slice(&dcid);
    buf.push(scid.len() as u8);
    buf.extend_from_slice(&scid);
    let len = 4 + body_len + crate::crypto::TAG_LEN;
    // Two-byte varint Length (packets stay below 16384 bytes).
    let len = u16::try_from(len).ok().filter(|l| *l < 0x4000)?;
    buf.extend_from_slice(&(0x4000 | len).to_be_bytes());
    let pn_off = buf.len();
    buf.extend_from_slice(&(pn as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    buf.resize(pn_off + 4 + body_len + crate::crypto::TAG_LEN, 0);
    let n = crate::packet::protect(&mut buf, pn_off, 4, pn, body_len, keys).ok()?;
    sp.next_pkt_num += 1;
    buf.truncate(n);
    Some(buf)
}

impl Pipe {
    /// The two connections, dropping the links and buffers.
    pub fn into_parts(self) -> (Connection, Connection) {
        (self.client, self.server)
    }
}
