//! One worker: its backend socket/queue, its connection table, its timers.
//!
//! Per loop turn: `rx_burst` → route each datagram by its destination
//! connection ID (ours carry the worker index in byte 0; client-chosen
//! Initial DCIDs are in a per-worker table) → `Connection::recv` in place →
//! expired timers → HTTP/3 and connection-ID upkeep for every connection
//! that changed → `Connection::send` straight into `tx_burst` buffers.
//!
//! Every connection ID we issue, the first and the spares a client needs
//! to migrate (RFC 9000 §9.5), is a [`new_cid`] of this worker, so any
//! worker hands a packet of ours to its owner, and its stateless reset
//! token is the one [`super::token::TokenKey::reset_token`] derives, the
//! token this worker answers unknown IDs with.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tarte::{ConnectionId, RecvInfo, Type};

use super::app::H3State;
use super::stats::Counters;
use super::token::{cid_worker, new_cid, TokenKey, CID_LEN};
use super::{Handoff, ServeError, Shared};
use crate::backend::{Backend, DgramMeta};

/// Datagrams per rx/tx burst.
const BURST: usize = 64;
/// RFC 9000 §14.1: a server MUST discard an Initial packet carried in a UDP
/// datagram with a payload smaller than 1200 bytes; the same bound keeps
/// Version Negotiation from amplifying.
const MIN_INITIAL: usize = 1200;
/// Longest idle back-off between empty polls (unless a timer is sooner).
const MAX_IDLE_SLEEP: Duration = Duration::from_millis(1);

struct Conn {
    conn: tarte::Connection,
    h3: H3State,
    scid: [u8; CID_LEN],
    /// The client's first DCID, while it routes here.
    odcid: Option<Vec<u8>>,
    timer: Option<Instant>,
    dirty: bool,
    /// The peer address the engine last had (for `path_changes`).
    peer: SocketAddr,
    /// A datagram came from another address than `peer`: compare with
    /// the engine's at the next service pass (one comparison per packet,
    /// no lookup).
    peer_moved: bool,
    /// Whether the established connection was counted (`conns_resumed`).
    counted: bool,
    /// Whether it was seen accepting 0-RTT (`conns_early`).
    counted_early: bool,
}

impl Conn {
    /// Service pass of one changed connection, once per loop turn (not
    /// per packet): unroutes the IDs the client retired, tops its spare
    /// IDs up to its `active_connection_id_limit`, and counts a change of
    /// the engine's peer address.
    fn service(
        &mut self,
        i: usize,
        worker: usize,
        by_cid: &mut HashMap<[u8; CID_LEN], usize>,
        key: &TokenKey,
        c: &mut Counters,
    ) {
        // RFC 9000 §5.1.2: a retired ID is no longer used by the peer;
        // late packets carrying it get a Stateless Reset the client
        // ignores (§10.3.1: it checks no tokens of retired IDs).
        while let Some(cid) = self.conn.retired_scid_next() {
            if let Ok(k) = <[u8; CID_LEN]>::try_from(&cid[..]) {
                by_cid.remove(&k);
            }
        }
        if self.peer_moved {
            self.peer_moved = false;
            if let Some(p) = self.conn.path_stats().next() {
                if p.peer_addr != self.peer {
                    self.peer = p.peer_addr;
                    c.path_changes += 1;
                }
            }
        }
        let leaving =
            self.conn.is_closed() || self.conn.is_draining() || self.conn.local_error().is_some();
        if !self.conn.is_established() || leaving {
            return;
        }
        if !self.counted {
            self.counted = true;
            c.conns_resumed += u64::from(self.conn.is_resumed());
        }
        // RFC 9000 §9.5: a client moving to a new path MUST use an ID of
        // ours it has not used; §5.1.1: at most its
        // active_connection_id_limit at a time. Bounded: every success
        // lowers scids_left().
        for _ in 0..self.conn.scids_left() {
            let Ok(cid) = new_cid(worker) else { break };
            if by_cid.contains_key(&cid) {
                // A random collision (2^-120): try again next turn.
                break;
            }
            let Ok(token) = key.reset_token(&cid) else {
                break;
            };
            match self
                .conn
                .new_scid(&ConnectionId::from_ref(&cid), token, false)
            {
                Ok(_) => {
                    by_cid.insert(cid, i);
                }
                Err(e) => {
                    tracing::debug!(?e, "new_scid");
                    break;
                }
            }
        }
    }
}

/// Where a datagram goes.
enum Route {
    Conn(usize),
    Handoff(usize),
    VersionNegotiation,
    Accept,
    /// A short header for a connection we do not have: Stateless Reset.
    Reset,
    Drop,
}

/// Stateless Resets a worker sends per second at most: each is smaller
/// than its trigger (no amplification), the bound keeps a flood of junk
/// from costing a reset each.
const RESETS_PER_SEC: u32 = 1_000;

/// Everything but the backend, so that rx/tx callbacks can borrow it.
struct State {
    index: usize,
    shared: Arc<Shared>,
    config: tarte::Config,
    h3_config: tarte_h3::Config,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    by_cid: HashMap<[u8; CID_LEN], usize>,
    by_odcid: HashMap<Vec<u8>, usize>,
    timers: BTreeSet<(Instant, usize)>,
    dirty: Vec<usize>,
    /// Stateless answers (Version Negotiation, Retry, Stateless Reset)
    /// waiting for tx.
    stateless: Vec<(Vec<u8>, SocketAddr)>,
    /// Start of the current second of the reset budget, and resets sent
    /// in it.
    reset_window: (Instant, u32),
    scratch: Vec<u8>,
    c: Counters,
}

/// A worker thread's loop state.
pub(crate) struct Worker {
    backend: Box<dyn Backend>,
    inbox: Receiver<Handoff>,
    st: State,
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        backend: Box<dyn Backend>,
        inbox: Receiver<Handoff>,
        shared: Arc<Shared>,
    ) -> Result<Worker, ServeError> {
        let config = shared.quic_config()?;
        let h3_config = tarte_h3::Config::new().map_err(ServeError::H3)?;
        Ok(Worker {
            backend,
            inbox,
            st: State {
                index,
                shared,
                config,
                h3_config,
                conns: Vec::new(),
                free: Vec::new(),
                by_cid: HashMap::new(),
                by_odcid: HashMap::new(),
                timers: BTreeSet::new(),
                dirty: Vec::new(),
                stateless: Vec::new(),
                reset_window: (Instant::now(), 0),
                scratch: vec![0; 65_536],
                c: Counters::default(),
            },
        })
    }

    /// Runs until the shared stop flag is set.
    pub(crate) fn run(mut self) -> Result<(), ServeError> {
        let mut idle = Duration::ZERO;
        let stats = Arc::clone(&self.st.shared);
        let stats = &stats.stats[self.st.index];
        while !self.st.shared.stop.load(Ordering::Relaxed) {
            let st = &mut self.st;
            let got = self
                .backend
                .rx_burst(BURST, &mut |buf, meta| st.on_datagram(buf, meta))
                .map_err(ServeError::Backend)?;
            let mut work = got;
            while let Ok(mut h) = self.inbox.try_recv() {
                self.st.on_datagram(&mut h.buf, &h.meta);
                work += 1;
            }
            work += self.st.run_timers(Instant::now());
            if !self.st.dirty.is_empty() || !self.st.stateless.is_empty() {
                self.st.flush(&mut *self.backend);
            }
            self.st.c.cids = self.st.route_entries();
            stats.publish(&self.st.c);
            if work > 0 || self.st.shared.busy_poll {
                idle = Duration::ZERO;
                continue;
            }
            // Nothing to do: back off exponentially up to MAX_IDLE_SLEEP,
            // waking for the next timer.
            idle = (idle * 2).clamp(Duration::from_micros(10), MAX_IDLE_SLEEP);
            let mut nap = idle;
            if let Some(&(t, _)) = self.st.timers.first() {
                nap = nap.min(t.saturating_duration_since(Instant::now()));
            }
            if !nap.is_zero() {
                std::thread::sleep(nap);
            }
        }
        // Tell the peers we are going away (best effort).
        for i in 0..self.st.conns.len() {
            if let Some(c) = self.st.conns[i].as_mut() {
                let _ = c.conn.close(true, 0x0100, b"server shutting down");
                self.st.mark_dirty(i);
            }
        }
        self.st.flush(&mut *self.backend);
        self.st.c.cids = self.st.route_entries();
        stats.publish(&self.st.c);
        Ok(())
    }
}

impl State {
    /// Entries of both routing tables (the `cids` gauge).
    fn route_entries(&self) -> u64 {
        (self.by_cid.len() + self.by_odcid.len()) as u64
    }

    fn mark_dirty(&mut self, idx: usize) {
        if let Some(c) = self.conns[idx].as_mut() {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(idx);
            }
        }
    }

    fn route(&self, buf: &[u8]) -> Route {
        let Ok(p) = tarte::packet::peek(buf, CID_LEN) else {
            return Route::Drop;
        };
        if let Ok(cid) = <[u8; CID_LEN]>::try_from(p.dcid) {
            if let Some(&i) = self.by_cid.get(&cid) {
                return Route::Conn(i);
            }
        }
        match p.ty {
            // RFC 9000 §6.1: a server answers a long header of a version it
            // does not support with Version Negotiation, only for datagrams
            // large enough to open a connection (§14.1).
            None if buf.len() >= MIN_INITIAL => Route::VersionNegotiation,
            // RFC 9000 §6.1: never answer a Version Negotiation packet.
            None | Some(Type::VersionNegotiation) | Some(Type::Retry) => Route::Drop,
            Some(Type::Initial | Type::ZeroRTT) => match self.by_odcid.get(p.dcid) {
                Some(&i) => Route::Conn(i),
                None if p.ty == Some(Type::Initial) => Route::Accept,
                None => Route::Drop,
            },
            // Our CIDs carry the owning worker: hand the datagram over when
            // the kernel or NIC steered it elsewhere (e.g. a NAT rebinding).
            Some(Type::Handshake | Type::Short) => match cid_worker(p.dcid) {
                Some(w) if w != self.index && w < self.shared.handoff.len() => Route::Handoff(w),
                // One of our connection IDs (by its length) that no
                // connection holds: lost in a restart or long closed.
                Some(_) if p.ty == Some(Type::Short) => Route::Reset,
                _ => Route::Drop,
            },
        }
    }

    fn on_datagram(&mut self, buf: &mut [u8], meta: &DgramMeta) {
        self.c.rx_packets += 1;
        self.c.rx_bytes += buf.len() as u64;
        match self.route(buf) {
            Route::Conn(i) => self.recv(i, buf, meta),
            Route::Handoff(w) => {
                let h = Handoff {
                    buf: buf.to_vec(),
                    meta: *meta,
                };
                match self.shared.handoff[w].try_send(h) {
                    Ok(()) => self.c.handed_off += 1,
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                        self.c.dropped += 1
                    }
                }
            }
            Route::VersionNegotiation => self.version_negotiation(buf, meta),
            Route::Reset => self.stateless_reset(buf, meta),
            Route::Accept => {
                if let Some(i) = self.accept(buf, meta) {
                    self.recv(i, buf, meta);
                }
            }
            Route::Drop => self.c.dropped += 1,
        }
    }

    fn recv(&mut self, i: usize, buf: &mut [u8], meta: &DgramMeta) {
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        c.peer_moved |= meta.src != c.peer;
        let info = RecvInfo {
            from: meta.src,
            to: meta.dst,
        };
        if let Err(e) = c.conn.recv(buf, info) {
            tracing::trace!(?e, "recv");
        }
        self.mark_dirty(i);
    }

    fn version_negotiation(&mut self, buf: &[u8], meta: &DgramMeta) {
        let Ok(p) = tarte::packet::peek(buf, CID_LEN) else {
            return;
        };
        let mut out = vec![0u8; 600];
        let scid = ConnectionId::from_ref(p.scid);
        let dcid = ConnectionId::from_ref(p.dcid);
        match tarte::negotiate_version(&scid, &dcid, &mut out) {
            Ok(n) => {
                out.truncate(n);
                self.stateless.push((out, meta.src));
                self.c.version_negotiations += 1;
            }
            Err(_) => self.c.dropped += 1,
        }
    }

    /// Answers a short-header packet of a connection we do not have with a
    /// Stateless Reset (RFC 9000 §10.3), so its client stops at once
    /// instead of after its idle timeout; within the per-second budget.
    fn stateless_reset(&mut self, buf: &[u8], meta: &DgramMeta) {
        let now = Instant::now();
        if now.duration_since(self.reset_window.0) >= Duration::from_secs(1) {
            self.reset_window = (now, 0);
        }
        if self.reset_window.1 >= RESETS_PER_SEC {
            self.c.dropped += 1;
            return;
        }
        let Ok(p) = tarte::packet::peek(buf, CID_LEN) else {
            self.c.dropped += 1;
            return;
        };
        let Ok(token) = self.shared.token_key.reset_token(p.dcid) else {
            self.c.dropped += 1;
            return;
        };
        let mut out = vec![0u8; tarte::packet::MIN_STATELESS_RESET_LEN + 64];
        match tarte::stateless_reset(token, buf.len(), &mut out) {
            Ok(n) => {
                out.truncate(n);
                self.stateless.push((out, meta.src));
                self.reset_window.1 += 1;
                self.c.stateless_resets += 1;
            }
            // Too short to answer with anything shorter.
            Err(_) => self.c.dropped += 1,
        }
    }

    /// Admission for an Initial that matches no connection: size check,
    /// connection limit, Retry, then `accept`. Returns the new slot.
    fn accept(&mut self, buf: &mut [u8], meta: &DgramMeta) -> Option<usize> {
        if buf.len() < MIN_INITIAL {
            self.c.dropped += 1;
            return None;
        }
        if self.c.conns_active >= self.shared.max_conns as u64 {
            self.c.refused += 1;
            return None;
        }
        let (dcid, scid, token, version) = match tarte::Header::from_slice(buf, CID_LEN) {
            Ok(h) => (
                h.dcid.to_vec(),
                h.scid.to_vec(),
                h.token.unwrap_or_default(),
                h.version,
            ),
            Err(_) => {
                self.c.dropped += 1;
                return None;
            }
        };
        let (our_cid, odcid) = if self.shared.retry {
            if token.is_empty() {
                self.send_retry(&dcid, &scid, version, meta);
                return None;
            }
            let valid = self
                .shared
                .token_key
                .validate_retry(&token, &dcid, meta.src, SystemTime::now())
                .ok();
            match (valid, <[u8; CID_LEN]>::try_from(&dcid[..])) {
                (Some(odcid), Ok(ours)) => (ours, Some(odcid)),
                _ => {
                    // RFC 9000 §8.1.3 allows closing with INVALID_TOKEN; a
                    // stateless close needs Initial keys we do not keep, so
                    // the packet is dropped and the client times out.
                    self.c.tokens_rejected += 1;
                    return None;
                }
            }
        } else {
            (new_cid(self.index).ok()?, None)
        };
        let odcid_ref = odcid.as_deref().map(ConnectionId::from_ref);
        // Our connection ID's reset token comes from the static key, so
        // that a restarted server can still reset the connection.
        self.config
            .set_stateless_reset_token(self.shared.token_key.reset_token(&our_cid).ok());
        let mut conn = match tarte::accept(
            &ConnectionId::from_ref(&our_cid),
            odcid_ref.as_ref(),
            meta.dst,
            meta.src,
            &mut self.config,
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(?e, "accept failed");
                self.c.dropped += 1;
                return None;
            }
        };
        if let Some(f) = &self.shared.keylog {
            conn.set_keylog(Box::new(super::KeylogFile(f.clone())));
        }
        if let Some(dir) = &self.shared.qlog_dir {
            let path = dir.join(format!("{}-server.sqlog", conn.trace_id()));
            match std::fs::File::create(&path) {
                Ok(f) => conn.set_qlog(
                    Box::new(std::io::BufWriter::new(f)),
                    "tarte serve".into(),
                    format!("worker {}", self.index),
                ),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "qlog file"),
            }
        }
        tracing::debug!(peer = %meta.src, trace_id = conn.trace_id(), worker = self.index, "new connection");
        // Without Retry the client keeps its first DCID on Initials (and
        // 0-RTT) until it sees our SCID.
        let first_dcid = odcid.is_none().then_some(dcid);
        let slot = Conn {
            conn,
            h3: H3State::default(),
            scid: our_cid,
            odcid: first_dcid.clone(),
            timer: None,
            dirty: false,
            peer: meta.src,
            peer_moved: false,
            counted: false,
            counted_early: false,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.conns[i] = Some(slot);
                i
            }
            None => {
                self.conns.push(Some(slot));
                self.conns.len() - 1
            }
        };
        self.by_cid.insert(our_cid, i);
        if let Some(d) = first_dcid {
            self.by_odcid.insert(d, i);
        }
        self.c.conns_accepted += 1;
        self.c.conns_active += 1;
        Some(i)
    }

    fn send_retry(&mut self, dcid: &[u8], scid: &[u8], version: u32, meta: &DgramMeta) {
        let Ok(new_scid) = new_cid(self.index) else {
            return;
        };
        let Some(token) = self
            .shared
            .token_key
            .mint_retry(dcid, &new_scid, meta.src, SystemTime::now())
            .ok()
        else {
            self.c.dropped += 1;
            return;
        };
        let mut out = vec![0u8; 600];
        match tarte::retry(
            &ConnectionId::from_ref(scid),
            &ConnectionId::from_ref(dcid),
            &ConnectionId::from_ref(&new_scid),
            &token,
            version,
            &mut out,
        ) {
            Ok(n) => {
                out.truncate(n);
                self.stateless.push((out, meta.src));
                self.c.retries += 1;
            }
            Err(_) => self.c.dropped += 1,
        }
    }

    /// Fires every timer due by `now`; returns how many fired.
    fn run_timers(&mut self, now: Instant) -> usize {
        let mut fired = 0;
        while let Some(&(t, i)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if let Some(c) = self.conns[i].as_mut() {
                c.timer = None;
                c.conn.on_timeout();
            }
            self.mark_dirty(i);
            fired += 1;
        }
        fired
    }

    /// HTTP/3 for every changed connection, then their packets into
    /// `tx_burst` buffers, then timers and clean-up.
    fn flush(&mut self, backend: &mut dyn Backend) {
        let dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            if let Some(c) = self.conns[i].as_mut() {
                let early = c.conn.is_in_early_data();
                if early && !c.counted_early {
                    // First seen in the flush after the burst that
                    // completed the ClientHello: before any Finished.
                    c.counted_early = true;
                    self.c.conns_early += 1;
                }
                let answered = self.shared.app.serve(
                    &mut c.conn,
                    &mut c.h3,
                    &self.h3_config,
                    &mut self.scratch,
                );
                self.c.requests += answered;
                if early {
                    self.c.early_requests += answered;
                }
                c.service(
                    i,
                    self.index,
                    &mut self.by_cid,
                    &self.shared.token_key,
                    &mut self.c,
                );
            }
        }
        if !self.stateless.is_empty() {
            let pending = std::mem::take(&mut self.stateless);
            let mut k = 0;
            while k < pending.len() {
                let r = backend.tx_burst(BURST, &mut |_, buf| {
                    let (p, to) = pending.get(k)?;
                    k += 1;
                    let n = p.len().min(buf.len());
                    buf[..n].copy_from_slice(&p[..n]);
                    Some((n, *to))
                });
                if self.account_tx(r, &pending[..k]) == 0 {
                    break;
                }
            }
        }
        let mut cursor = 0;
        loop {
            let conns = &mut self.conns;
            let mut done = false;
            let mut produced = 0u64;
            let mut bytes = 0u64;
            let r = backend.tx_burst(BURST, &mut |_, buf| loop {
                let Some(&i) = dirty.get(cursor) else {
                    done = true;
                    return None;
                };
                let Some(c) = conns[i].as_mut() else {
                    cursor += 1;
                    continue;
                };
                match c.conn.send(buf) {
                    Ok((n, info)) => {
                        bytes += n as u64;
                        produced += 1;
                        return Some((n, info.to));
                    }
                    Err(tarte::Error::Done) => cursor += 1,
                    Err(e) => {
                        tracing::debug!(?e, "send failed");
                        cursor += 1;
                    }
                }
            });
            match r {
                Ok(n) => {
                    self.c.tx_packets += n as u64;
                    self.c.tx_bytes += bytes;
                    // What the engine produced and the backend did not
                    // queue is lost (loss recovery resends it).
                    self.c.tx_errors += produced.saturating_sub(n as u64);
                    if produced == 0 && !done {
                        // The backend has no free buffers: the rest waits
                        // for the next turn.
                        break;
                    }
                }
                Err(e) => {
                    tracing::debug!(?e, "tx_burst");
                    self.c.tx_errors += produced.max(1);
                    break;
                }
            }
            if done {
                break;
            }
        }
        let now = Instant::now();
        for &i in &dirty {
            self.settle(i, now);
        }
        // Connections left with unsent work (stopped above) come back next turn.
        for &i in dirty.iter().skip(cursor) {
            self.mark_dirty(i);
        }
    }

    fn account_tx(
        &mut self,
        r: Result<usize, crate::backend::BackendError>,
        sent: &[(Vec<u8>, SocketAddr)],
    ) -> usize {
        match r {
            Ok(n) => {
                self.c.tx_packets += n as u64;
                self.c.tx_bytes += sent
                    .iter()
                    .take(n)
                    .map(|(p, _)| p.len() as u64)
                    .sum::<u64>();
                n
            }
            Err(e) => {
                tracing::debug!(?e, "tx_burst");
                self.c.tx_errors += 1;
                0
            }
        }
    }

    /// After a connection's turn: free it if closed, else re-arm its timer.
    fn settle(&mut self, i: usize, now: Instant) {
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        c.dirty = false;
        if c.conn.is_closed() {
            let mut c = self.conns[i].take().expect("slot checked above");
            if let Some(t) = c.timer {
                self.timers.remove(&(t, i));
            }
            // Every ID of ours it still had or retired since the last
            // service pass, and the first (also when the client retired it).
            let ours = c.conn.source_ids().map(|id| &id[..]);
            for id in ours {
                if let Ok(k) = <[u8; CID_LEN]>::try_from(id) {
                    self.by_cid.remove(&k);
                }
            }
            while let Some(id) = c.conn.retired_scid_next() {
                if let Ok(k) = <[u8; CID_LEN]>::try_from(&id[..]) {
                    self.by_cid.remove(&k);
                }
            }
            self.by_cid.remove(&c.scid);
            if let Some(d) = &c.odcid {
                self.by_odcid.remove(d);
            }
            self.free.push(i);
            self.c.conns_closed += 1;
            self.c.conns_active -= 1;
            tracing::debug!(trace_id = c.conn.trace_id(), "connection closed");
            return;
        }
        let next = c.conn.timeout_instant();
        if next != c.timer {
            if let Some(t) = c.timer {
                self.timers.remove(&(t, i));
            }
            if let Some(t) = next {
                self.timers.insert((t.max(now), i));
            }
            c.timer = next.map(|t| t.max(now));
        }
    }
}
