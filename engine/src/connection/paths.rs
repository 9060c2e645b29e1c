//! Network paths: validating a peer's new address (RFC 9000 §8.2, §9.3),
//! a client's path probes and migration (§9.1, §9.2), and the path events
//! the application reads (quiche's `PathEvent`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{cids, CloseState, Connection};

/// The peer addresses [`Connection::paths_iter`] yields.
pub type SocketAddrIter = std::vec::IntoIter<SocketAddr>;
use crate::error::{Error, Result};

/// A peer address being validated after the peer moved to it (RFC 9000
/// §9.3): boxed, since connections rarely have one.
#[derive(Debug)]
pub(crate) struct PathValidation {
    /// The data of the PATH_CHALLENGE frames sent, newest last (a few are
    /// kept: a response to any of them validates the path).
    pub(crate) challenges: Vec<[u8; 8]>,
    /// A PATH_CHALLENGE is to be sent: the first one, or another after
    /// one was lost, or acknowledged with no response.
    pub(crate) send: bool,
    /// Server: the last validated peer address, to go back to if this one
    /// fails. None for a client validating its own new local address
    /// (RFC 9000 §9.2), which has nothing to go back to.
    pub(crate) fallback: Option<SocketAddr>,
    /// When validation is given up (RFC 9000 §8.2.4).
    pub(crate) deadline: Instant,
}

impl PathValidation {
    /// Fresh unpredictable data for the next PATH_CHALLENGE, remembered
    /// for the response.
    pub(crate) fn next_challenge(&mut self) -> Result<[u8; 8]> {
        next_challenge(&mut self.challenges)
    }
}

/// Challenges remembered at most per path.
const CHALLENGES_KEPT: usize = 4;

/// Fresh unpredictable data for a PATH_CHALLENGE (RFC 9000 §8.2.1: "MUST
/// use unpredictable data in every PATH_CHALLENGE frame"), added to
/// `kept` (the last few: a response to any of them validates the path).
fn next_challenge(kept: &mut Vec<[u8; 8]>) -> Result<[u8; 8]> {
    let mut data = [0u8; 8];
    boring::rand::rand_bytes(&mut data).map_err(|_| Error::CryptoFail)?;
    if kept.len() == CHALLENGES_KEPT {
        kept.remove(0);
    }
    kept.push(data);
    Ok(data)
}

/// Client: a path probed before migrating to it (RFC 9000 §9.1), from
/// another local address to the server's, with a connection ID of its own.
#[derive(Debug)]
pub(crate) struct PathProbe {
    pub(crate) local: SocketAddr,
    /// The server's connection ID reserved for this path (§9.5).
    pub(crate) cid: cids::CidEntry,
    pub(crate) challenges: Vec<[u8; 8]>,
    /// A PATH_CHALLENGE is due.
    pub(crate) send: bool,
    /// When to challenge again without an answer.
    pub(crate) retry_at: Instant,
    /// When to give the path up (§8.2.4).
    pub(crate) deadline: Instant,
    pub(crate) validated: bool,
}

impl PathProbe {
    pub(crate) fn next_challenge(&mut self) -> Result<[u8; 8]> {
        next_challenge(&mut self.challenges)
    }
}

/// Whether two socket addresses are the same, an IPv4 address and its
/// IPv4-mapped IPv6 form being the same (a dual-stack socket reports
/// the latter).
pub(crate) fn same_address(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// A PATH_CHALLENGE to answer, and the path it came on: "A PATH_RESPONSE
/// frame MUST be sent on the network path where the PATH_CHALLENGE frame
/// was received" (RFC 9000 §8.2.2).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PathResponse {
    pub(crate) data: [u8; 8],
    /// The peer's address the challenge came from.
    pub(crate) peer: SocketAddr,
    /// Our address it came to.
    pub(crate) local: SocketAddr,
    /// Size of the datagram that carried it (a response on another path
    /// than the current one stays within three times that, §8.1).
    pub(crate) datagram_len: u32,
}

impl PathResponse {
    /// Whether it is for the path from `local` to `peer`.
    pub(crate) fn is_for(&self, peer: SocketAddr, local: SocketAddr) -> bool {
        same_address(self.peer, peer) && same_address(self.local, local)
    }
}

/// Path events kept for the application at most (the oldest go first: a
/// peer hopping between addresses cannot grow the queue).
const MAX_PATH_EVENTS: usize = 16;

/// Something that happened to a network path (local address, peer
/// address) of the connection, as quiche reports it
/// ([`Connection::path_event_next`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathEvent {
    /// Server: packets came from a new peer address (the peer migrated or
    /// was rebound, RFC 9000 §9.3); its validation started.
    New(SocketAddr, SocketAddr),
    /// The path was validated (RFC 9000 §8.2.3): a client's probed or
    /// migrated-to path, or a server's new peer address.
    Validated(SocketAddr, SocketAddr),
    /// The path's validation failed (RFC 9000 §8.2.4): a server went back
    /// to the last validated peer address; a client's probed path is
    /// dropped, a migrated-to one kept unvalidated.
    FailedValidation(SocketAddr, SocketAddr),
    /// Client: the connection no longer uses the path (it migrated
    /// elsewhere, or a probed path was given up by migrating to another).
    Closed(SocketAddr, SocketAddr),
    /// quiche reports a peer reusing a connection ID on another path with
    /// this; tarte does not (it keeps one active path and moves the
    /// peer's connection ID with it, RFC 9000 §9.5), so it never occurs.
    ReusedSourceConnectionId(u64, (SocketAddr, SocketAddr), (SocketAddr, SocketAddr)),
    /// Server: the peer now sends its non-probing packets on this
    /// validated path (RFC 9000 §9.3).
    PeerMigrated(SocketAddr, SocketAddr),
}

impl Connection {
    /// Client: moves the connection to a new local address (quiche's
    /// `migrate_source`); see [`Connection::migrate`].
    pub fn migrate_source(&mut self, local: SocketAddr) -> Result<u64> {
        let peer = self.peer_addr;
        self.migrate(local, peer)
    }

    /// Client: moves the connection to the path from `local` to `peer`
    /// (RFC 9000 §9.2), at once: the next packets go out from `local` with
    /// a connection ID of the server's not used before, congestion control
    /// and the RTT estimate restart, and a PATH_CHALLENGE validates the
    /// new path. `peer` must be the server's current address (preferred
    /// addresses are not supported). Returns the sequence number of the
    /// destination connection ID now in use.
    ///
    /// Errors: `InvalidState` on a server, before the handshake is
    /// confirmed, on a closing connection, when the server sent
    /// `disable_active_migration`, to another peer address or with
    /// zero-length IDs; `OutOfIdentifiers` when the server gave no unused
    /// connection ID (see [`Connection::available_dcids`]).
    pub fn migrate(&mut self, local: SocketAddr, peer: SocketAddr) -> Result<u64> {
        if self.is_server || self.close != CloseState::Open || peer != self.peer_addr {
            return Err(Error::InvalidState);
        }
        if local == self.local_addr {
            return Ok(self.cids.dcid_seq());
        }
        // RFC 9000 §9: "An endpoint MUST NOT initiate connection migration
        // before the handshake is confirmed", and with the peer's
        // disable_active_migration "MUST NOT send packets (including
        // probing packets) from a different local address".
        if !self.handshake_confirmed || self.peer_params.disable_active_migration {
            return Err(Error::InvalidState);
        }
        // §9.5: with zero-length IDs migration is linkable (SHOULD NOT).
        if self.cids.dcid().is_empty() {
            return Err(Error::InvalidState);
        }
        // §9.5: "An endpoint MUST NOT reuse a connection ID when sending
        // from more than one local address": the probed path's own ID, or
        // a new one.
        let probed = self.probe.take_if(|p| p.local == local);
        let (seq, validated) = match probed {
            Some(p) => {
                let seq = p.cid.seq;
                self.cids.install_dcid(p.cid);
                self.queue_dcid_retirements();
                (seq, p.validated)
            }
            None => (self.switch_dcid().ok_or(Error::OutOfIdentifiers)?, false),
        };
        // A probe of another path is over: its ID goes.
        if let Some(p) = &self.probe {
            let closed = PathEvent::Closed(p.local, self.peer_addr);
            self.abandon_probe();
            self.push_path_event(closed);
        }
        tracing::debug!(trace_id = %self.trace_id, from = %self.local_addr, to = %local, seq, validated, "migrating");
        self.push_path_event(PathEvent::Closed(self.local_addr, self.peer_addr));
        self.local_addr = local;
        // §9.2, §9.4: the new path might not take the old rate.
        let now = self.now_hint();
        self.recovery.reset_for_new_path(now);
        // RFC 9000 §14.3: the new path's MTU is found anew.
        if self.handshake_confirmed {
            self.start_pmtud();
        }
        // §9.2: "an endpoint initiates path validation on the new path"
        // (done already when it was probed); §8.2.4 bounds it by three
        // PTOs (of a new path: ~1 s).
        self.address_validated = validated;
        self.path_validation = if validated {
            None
        } else {
            let pto = self.recovery.pto().max(Duration::from_secs(1));
            Some(Box::new(PathValidation {
                challenges: Vec::new(),
                send: true,
                fallback: None,
                deadline: now + 3 * pto,
            }))
        };
        Ok(seq)
    }

    /// Client: starts validating the path from `local` to `peer` without
    /// moving the connection (RFC 9000 §9.1, quiche's `probe_path`):
    /// PATH_CHALLENGEs leave from `local`, with a connection ID of the
    /// server's reserved for that path, padded to 1200 bytes, until a
    /// PATH_RESPONSE comes back (see [`Connection::is_path_validated`])
    /// or three PTOs (at least 3 s) pass. [`Connection::migrate`] to
    /// `local` then moves without validating again. One probe at a time: a
    /// new one replaces it. Datagrams for `local` are passed to `recv`
    /// with that address in `RecvInfo::to`. Returns the sequence number of
    /// the connection ID the probe uses; errors as for `migrate`.
    pub fn probe_path(&mut self, local: SocketAddr, peer: SocketAddr) -> Result<u64> {
        if self.is_server
            || self.close != CloseState::Open
            || peer != self.peer_addr
            || local == self.local_addr
            || !self.handshake_confirmed
            // §9: not even probing packets with disable_active_migration.
            || self.peer_params.disable_active_migration
            || self.cids.dcid().is_empty()
        {
            return Err(Error::InvalidState);
        }
        if let Some(p) = self.probe.as_ref().filter(|p| p.local == local) {
            return Ok(p.cid.seq);
        }
        self.abandon_probe();
        let cid = self
            .cids
            .reserve_spare_dcid()
            .ok_or(Error::OutOfIdentifiers)?;
        let seq = cid.seq;
        let now = self.now_hint();
        let pto = self.recovery.pto().max(Duration::from_secs(1));
        self.probe = Some(Box::new(PathProbe {
            local,
            cid,
            challenges: Vec::new(),
            send: true,
            retry_at: now,
            deadline: now + 3 * pto,
            validated: false,
        }));
        Ok(seq)
    }

    /// Whether the path from `local` to `peer` is validated: the current
    /// one (false while a migration's validation runs) or a probed one.
    /// `InvalidState` for a path neither current nor probed (a probe that
    /// failed is dropped).
    pub fn is_path_validated(&self, local: SocketAddr, peer: SocketAddr) -> Result<bool> {
        if same_address(local, self.local_addr) && same_address(peer, self.peer_addr) {
            return Ok(self.path_validation.is_none());
        }
        match &self.probe {
            Some(p) if same_address(local, p.local) && same_address(peer, self.peer_addr) => {
                Ok(p.validated)
            }
            _ => Err(Error::InvalidState),
        }
    }

    /// The peer addresses of the paths that use our address `from`
    /// (quiche's `paths_iter`): the current path's, a probed path's, a
    /// path a peer's challenge came on that still awaits our answer.
    pub fn paths_iter(&self, from: SocketAddr) -> SocketAddrIter {
        let mut peers: Vec<SocketAddr> = Vec::new();
        let mut add = |p: SocketAddr| {
            if !peers.iter().any(|&q| same_address(q, p)) {
                peers.push(p);
            }
        };
        if same_address(from, self.local_addr) {
            add(self.peer_addr);
        }
        if self
            .probe
            .as_ref()
            .is_some_and(|p| same_address(from, p.local))
        {
            add(self.peer_addr);
        }
        for r in self.pending.q().path_responses.iter() {
            if r.datagram_len != 0 && same_address(from, r.local) {
                add(r.peer);
            }
        }
        peers.into_iter()
    }

    /// [`Connection::send`] for one path only (quiche's `send_on_path`):
    /// the next datagram from `from` to `to` (`None`: any address), or
    /// `Err(Done)` when that path has nothing to send. On the current path
    /// that is everything the connection sends there; on a probed path its
    /// PATH_CHALLENGE; on a path a peer's challenge came on, our answer.
    pub fn send_on_path(
        &mut self,
        out: &mut [u8],
        from: Option<SocketAddr>,
        to: Option<SocketAddr>,
    ) -> Result<(usize, super::SendInfo)> {
        self.send_on_path_at(out, from, to, Instant::now())
    }

    /// [`Connection::send_on_path`] at an explicit time.
    pub fn send_on_path_at(
        &mut self,
        out: &mut [u8],
        from: Option<SocketAddr>,
        to: Option<SocketAddr>,
        now: Instant,
    ) -> Result<(usize, super::SendInfo)> {
        if from.is_none() && to.is_none() {
            return self.send_at(out, now);
        }
        if out.is_empty() {
            return Err(Error::BufferTooShort);
        }
        let on = |local: SocketAddr, peer: SocketAddr| {
            from.is_none_or(|f| same_address(f, local)) && to.is_none_or(|t| same_address(t, peer))
        };
        if on(self.local_addr, self.peer_addr) {
            if let Some(sent) = self.send_pmtu_probe(out, now)? {
                return Ok(sent);
            }
            match self.send_datagram(out, 0, true, now) {
                Err(Error::Done) => (),
                r => return r,
            }
        }
        if self.close != CloseState::Open {
            return Err(Error::Done);
        }
        if self
            .probe
            .as_ref()
            .is_some_and(|p| on(p.local, self.peer_addr))
        {
            if let Some(sent) = self.send_probe(out, now)? {
                return Ok(sent);
            }
        }
        // Answers owed on other paths, for the one asked about.
        if let Some(sent) = self.send_response_on(out, from, to, now)? {
            return Ok(sent);
        }
        Err(Error::Done)
    }

    /// The bytes to give the next `send_on_path` burst on a path (quiche's
    /// `send_quantum_on_path`): the connection's quantum on the current
    /// path, one datagram on another path we have something for (a
    /// challenge or an answer), 0 on a path we do not know.
    pub fn send_quantum_on_path(&self, local: SocketAddr, peer: SocketAddr) -> usize {
        if same_address(local, self.local_addr) && same_address(peer, self.peer_addr) {
            return self.send_quantum();
        }
        if self.paths_iter(local).any(|p| same_address(p, peer)) {
            return self.max_send_udp_payload_size();
        }
        0
    }

    /// quiche's `send_ack_eliciting_on_path`: an ack-eliciting packet on
    /// the current path ([`Connection::send_ack_eliciting`]); on a probed
    /// path every packet is one already (its PATH_CHALLENGE); on a path we
    /// do not know, `Err(InvalidState)`.
    pub fn send_ack_eliciting_on_path(
        &mut self,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Result<()> {
        if same_address(local, self.local_addr) && same_address(peer, self.peer_addr) {
            return self.send_ack_eliciting();
        }
        if self.paths_iter(local).any(|p| same_address(p, peer)) {
            return Ok(());
        }
        Err(Error::InvalidState)
    }

    /// The next path event (see [`PathEvent`]), oldest first; at most the
    /// last 16 are kept.
    pub fn path_event_next(&mut self) -> Option<PathEvent> {
        self.pending.q_existing()?.path_events.pop_front()
    }

    /// Queues a path event for the application.
    pub(crate) fn push_path_event(&mut self, ev: PathEvent) {
        tracing::debug!(trace_id = %self.trace_id, event = ?ev, "path event");
        let q = &mut self.pending.q_mut().path_events;
        if q.len() == MAX_PATH_EVENTS {
            q.pop_front();
        }
        q.push_back(ev);
    }

    /// Ends a probe, retiring its connection ID (it was used on that path,
    /// §9.5).
    pub(crate) fn abandon_probe(&mut self) {
        if let Some(p) = self.probe.take() {
            tracing::debug!(trace_id = %self.trace_id, local = %p.local, validated = p.validated, "probe ended");
            self.pending.q_mut().retire_cids.push_back(p.cid.seq);
        }
    }

    /// Moves the peer connection IDs `Cids` marked for retirement to the
    /// RETIRE_CONNECTION_ID queue.
    pub(crate) fn queue_dcid_retirements(&mut self) {
        while let Some(old) = self.cids.dcids_to_retire.pop_front() {
            self.pending.q_mut().retire_cids.push_back(old);
        }
    }
}
