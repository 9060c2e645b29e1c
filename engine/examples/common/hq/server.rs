//! The hq-interop server: one thread, one UDP socket, many connections
//! keyed by the connection IDs we chose, Version Negotiation for unknown
//! versions, and optional address validation with Retry (RFC 9000 §8.1.2).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tarte::{ConnectionId, Header, RecvInfo, Shutdown, Type};

use super::token::TokenKey;
use super::{flush, recv_batch, CID_LEN, MAX_REQUEST_LEN, RECV_BUF_LEN};

/// RFC 9000 §14.1: a server MUST discard an Initial packet carried in a UDP
/// datagram with a payload smaller than 1200 bytes.
const MIN_INITIAL_DATAGRAM: usize = 1200;

/// The longest the loop sleeps, so that it notices the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// The application error code we reset a stream with when its request
/// cannot be served (file missing, bad request).
pub const NOT_FOUND_CODE: u64 = 0x404;

/// Server settings.
#[derive(Clone)]
pub struct ServerOptions {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
    /// Directory the files are served from.
    pub root: PathBuf,
    /// Whether to validate client addresses with Retry first.
    pub retry: bool,
    /// Idle timeout in milliseconds.
    pub idle_timeout_ms: u64,
    /// Initiate a key update (RFC 9001 §6) on each connection each time
    /// it has sent this many more bytes; an update waits until the
    /// previous one was acknowledged.
    pub key_update_every: Option<u64>,
    /// The server's static secret (Retry tokens, connection IDs, stateless
    /// reset tokens); the same across restarts lets a restarted server
    /// reset the connections it lost (RFC 9000 §10.3). Random when absent.
    pub secret: Option<[u8; 32]>,
    /// Append every connection's TLS secrets to this file (NSS key log
    /// format, for Wireshark; the binary takes it from `SSLKEYLOGFILE`).
    pub keylog: Option<PathBuf>,
    /// Write every connection's qlog into this directory (the binary
    /// takes it from `QLOGDIR`).
    pub qlog_dir: Option<PathBuf>,
    /// Path MTU discovery up to this many bytes of UDP payload.
    pub pmtud: Option<usize>,
}

// By hand: the secret stays out of logs.
impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("root", &self.root)
            .field("retry", &self.retry)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("key_update_every", &self.key_update_every)
            .field("secret", &self.secret.map(|_| "(set)"))
            .field("keylog", &self.keylog)
            .field("qlog_dir", &self.qlog_dir)
            .field("pmtud", &self.pmtud)
            .finish()
    }
}

/// Counters the server keeps (read by the tests and the example).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections that reached the established state.
    pub established: AtomicU64,
    /// Connections closed and freed.
    pub closed: AtomicU64,
    /// Retry packets sent.
    pub retries_sent: AtomicU64,
    /// Retry tokens accepted.
    pub tokens_accepted: AtomicU64,
    /// Tokens refused (forged, expired, another address).
    pub tokens_rejected: AtomicU64,
    /// Version Negotiation packets sent.
    pub version_negotiations: AtomicU64,
    /// Responses whose body was fully handed to the connection.
    pub responses: AtomicU64,
    /// Requests refused (missing file, traversal, malformed).
    pub refused: AtomicU64,
    /// Key updates this server initiated (`key_update_every`).
    pub key_updates: AtomicU64,
    /// Stateless Resets sent for packets of unknown connections.
    pub stateless_resets: AtomicU64,
    /// Client address changes a connection followed (migrations and NAT
    /// rebindings, RFC 9000 §9).
    pub migrations: AtomicU64,
    /// Connections whose handshake resumed a session (RFC 9001 §4.5).
    pub resumed: AtomicU64,
    /// Requests read before the handshake completed (from 0-RTT, RFC 9001
    /// §4.6; one whose packet came in the same batch as the client's
    /// Finished is read after and not counted).
    pub early_requests: AtomicU64,
    /// Connections that accepted 0-RTT.
    pub early_conns: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A response being written.
struct Response {
    body: Vec<u8>,
    off: usize,
}

struct ServerConn {
    conn: tarte::Connection,
    /// Request bytes received so far, per stream, until the line is whole.
    requests: HashMap<u64, Vec<u8>>,
    /// Streams whose request was handled (later data is ignored).
    handled: std::collections::HashSet<u64>,
    responses: HashMap<u64, Response>,
    established: bool,
    /// Counted in `early_conns`.
    early_counted: bool,
    /// Bytes sent at which the next key update is due.
    next_key_update: Option<u64>,
    /// The client address last seen (a change is a migration or a NAT
    /// rebinding the connection followed).
    peer: SocketAddr,
}

/// Gives the client every spare connection ID it accepts, so that it can
/// migrate (RFC 9000 §9.5 wants a new ID per path), with the reset token
/// derived from each (a restarted server can still reset them), and
/// forgets the ones it retired.
fn issue_spare_ids(
    conn: &mut tarte::Connection,
    key: &ConnectionId<'static>,
    tokens: &TokenKey,
    aliases: &mut HashMap<ConnectionId<'static>, ConnectionId<'static>>,
) -> anyhow::Result<()> {
    while conn.scids_left() > 0 {
        let mut cid = [0u8; CID_LEN];
        boring::rand::rand_bytes(&mut cid)?;
        let cid = ConnectionId::from_vec(cid.to_vec());
        conn.new_scid(&cid, tokens.reset_token(&cid)?, false)?;
        aliases.insert(cid, key.clone());
    }
    while let Some(cid) = conn.retired_scid_next() {
        aliases.remove(&cid);
    }
    Ok(())
}

/// The hq-interop server.
pub struct Server {
    socket: UdpSocket,
    local: SocketAddr,
    config: tarte::Config,
    root: PathBuf,
    retry: bool,
    key_update_every: Option<u64>,
    key: TokenKey,
    conns: HashMap<ConnectionId<'static>, ServerConn>,
    /// The spare connection IDs issued to clients (RFC 9000 §5.1.1), each
    /// to the key of its connection in `conns`.
    aliases: HashMap<ConnectionId<'static>, ConnectionId<'static>>,
    stats: Arc<ServerStats>,
    out: Vec<u8>,
    stream_buf: Vec<u8>,
    keylog: Option<PathBuf>,
    qlog_dir: Option<PathBuf>,
}

/// The server's QUIC configuration.
pub fn server_config(opts: &ServerOptions) -> anyhow::Result<tarte::Config> {
    let path = |p: &Path| {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("{}: not UTF-8", p.display()))
    };
    let mut c = tarte::Config::new(tarte::PROTOCOL_VERSION)?;
    if opts.keylog.is_some() {
        c.log_keys();
    }
    c.load_cert_chain_from_pem_file(&path(&opts.cert)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", opts.cert.display()))?;
    c.load_priv_key_from_pem_file(&path(&opts.key)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", opts.key.display()))?;
    c.verify_peer(false);
    super::apply_transport_settings(&mut c, opts.idle_timeout_ms, 256)?;
    super::apply_pmtud(&mut c, opts.pmtud);
    c.enable_early_data();
    Ok(c)
}

impl Server {
    /// Binds the socket and loads the certificate.
    pub fn bind(addr: SocketAddr, opts: &ServerOptions) -> anyhow::Result<Server> {
        let config = server_config(opts)?;
        let root = opts
            .root
            .canonicalize()
            .map_err(|e| anyhow::anyhow!("root {}: {e}", opts.root.display()))?;
        if !root.is_dir() {
            anyhow::bail!("root {}: not a directory", root.display());
        }
        let socket = UdpSocket::bind(addr)?;
        let local = socket.local_addr()?;
        Ok(Server {
            socket,
            local,
            config,
            root,
            retry: opts.retry,
            key_update_every: opts.key_update_every,
            key: match opts.secret {
                Some(s) => TokenKey::from_secret(s),
                None => TokenKey::random()?,
            },
            conns: HashMap::new(),
            aliases: HashMap::new(),
            stats: Arc::default(),
            out: vec![0u8; RECV_BUF_LEN],
            stream_buf: vec![0u8; RECV_BUF_LEN],
            keylog: opts.keylog.clone(),
            qlog_dir: opts.qlog_dir.clone(),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The server's counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.stats.clone()
    }

    /// Serves until `stop` is set, then closes every connection.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let socket = self.socket.try_clone()?;
        let mut buf = vec![0u8; RECV_BUF_LEN];
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self
                .conns
                .values()
                .filter_map(|c| c.conn.timeout_instant())
                .min()
                .map_or(POLL, |t| t.saturating_duration_since(now).min(POLL));
            recv_batch(&socket, &mut buf, wait, |pkt, from| {
                if let Err(e) = self.on_datagram(pkt, from) {
                    tracing::warn!(%from, error = %e, "datagram handling failed");
                }
            })?;
            self.service()?;
        }
        for sc in self.conns.values_mut() {
            let _ = sc.conn.close(true, 0, b"server shutting down");
            flush(&self.socket, &mut sc.conn, &mut self.out)?;
        }
        self.conns.clear();
        Ok(())
    }

    /// Fires timers, serves streams, sends, and frees closed connections.
    fn service(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        for (key, sc) in self.conns.iter_mut() {
            if sc.conn.timeout_instant().is_some_and(|t| t <= now) {
                sc.conn.on_timeout();
            }
            if sc.conn.is_established() && !sc.established {
                sc.established = true;
                bump(&self.stats.established);
                if sc.conn.is_resumed() {
                    bump(&self.stats.resumed);
                }
                tracing::info!(
                    trace_id = sc.conn.trace_id(),
                    resumed = sc.conn.is_resumed(),
                    "established"
                );
            }
            if sc.established {
                issue_spare_ids(&mut sc.conn, key, &self.key, &mut self.aliases)?;
                if sc
                    .conn
                    .path_stats()
                    .next()
                    .is_some_and(|p| p.peer_addr != sc.peer)
                {
                    sc.peer = sc.conn.path_stats().next().map_or(sc.peer, |p| p.peer_addr);
                    bump(&self.stats.migrations);
                }
                if let (Some(due), Some(every)) = (sc.next_key_update, self.key_update_every) {
                    let sent = sc.conn.stats().sent_bytes;
                    // Refused until the handshake is confirmed and the
                    // previous update acknowledged: tried again next pass.
                    if sent >= due && sc.conn.initiate_key_update().is_ok() {
                        sc.next_key_update = Some(sent + every);
                        bump(&self.stats.key_updates);
                    }
                }
            }
            if sc.conn.is_in_early_data() && !sc.early_counted {
                sc.early_counted = true;
                bump(&self.stats.early_conns);
            }
            // Requests are served from 0-RTT on (RFC 9001 §4.6: GETs of
            // static files are safe to replay), the answers going out in
            // 0.5-RTT packets.
            if sc.established || sc.conn.is_in_early_data() {
                serve_streams(sc, &self.root, &self.stats, &mut self.stream_buf);
            }
            flush(&self.socket, &mut sc.conn, &mut self.out)?;
        }
        let stats = &self.stats;
        self.conns.retain(|_, sc| {
            if !sc.conn.is_closed() {
                return true;
            }
            let s = sc.conn.stats();
            tracing::info!(
                trace_id = sc.conn.trace_id(),
                sent = s.sent,
                recv = s.recv,
                lost = s.lost,
                timed_out = sc.conn.is_timed_out(),
                peer_error = ?sc.conn.peer_error(),
                local_error = ?sc.conn.local_error(),
                "connection closed"
            );
            bump(&stats.closed);
            false
        });
        let conns = &self.conns;
        self.aliases.retain(|_, key| conns.contains_key(key));
        Ok(())
    }

    fn send_to(&self, len: usize, to: SocketAddr) -> anyhow::Result<()> {
        self.socket.send_to(&self.out[..len], to)?;
        Ok(())
    }

    /// Routes one datagram to its connection, creating the connection (or
    /// answering with Version Negotiation or Retry) for a new client.
    fn on_datagram(&mut self, pkt: &mut [u8], from: SocketAddr) -> anyhow::Result<()> {
        let len = pkt.len();
        let hdr = match Header::from_slice(pkt, CID_LEN) {
            Ok(h) => h.into_owned(),
            Err(e) => {
                tracing::debug!(%from, error = %e, "unparsable header, dropped");
                return Ok(());
            }
        };
        let key = if self.conns.contains_key(&hdr.dcid) {
            hdr.dcid.clone()
        } else if let Some(key) = self.aliases.get(&hdr.dcid) {
            key.clone()
        } else if hdr.ty == Type::Short {
            // A connection we do not know (lost in a restart, or long
            // gone): tell the client at once with a Stateless Reset rather
            // than let it wait for its idle timeout (RFC 9000 §10.3).
            let token = self.key.reset_token(&hdr.dcid)?;
            if let Ok(n) = tarte::stateless_reset(token, len, &mut self.out) {
                bump(&self.stats.stateless_resets);
                self.send_to(n, from)?;
            }
            return Ok(());
        } else {
            match self.new_connection(&hdr, len, from)? {
                Some(k) => k,
                None => return Ok(()),
            }
        };
        let Some(sc) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        let info = RecvInfo {
            from,
            to: self.local,
        };
        if let Err(e) = sc.conn.recv(pkt, info) {
            tracing::debug!(trace_id = sc.conn.trace_id(), error = %e, "recv failed");
        }
        Ok(())
    }

    /// Handles a packet for no known connection. Returns the key of the
    /// connection to feed it to, if any.
    fn new_connection(
        &mut self,
        hdr: &Header<'static>,
        len: usize,
        from: SocketAddr,
    ) -> anyhow::Result<Option<ConnectionId<'static>>> {
        if hdr.ty == Type::Short {
            return Ok(None);
        }
        if !tarte::version_is_supported(hdr.version) {
            // RFC 9000 §6.1: a server answers a packet of a version it does
            // not support with Version Negotiation, only for datagrams large
            // enough to open a connection (§14.1) so it cannot amplify.
            if len >= MIN_INITIAL_DATAGRAM {
                let n = tarte::negotiate_version(&hdr.scid, &hdr.dcid, &mut self.out)?;
                self.send_to(n, from)?;
                bump(&self.stats.version_negotiations);
            }
            return Ok(None);
        }
        if hdr.ty != Type::Initial && hdr.ty != Type::ZeroRTT {
            return Ok(None);
        }
        // Every Initial and 0-RTT packet of one attempt carries the same
        // client-chosen DCID: our CID derived from it routes them all to
        // one connection.
        let derived = ConnectionId::from_vec(self.key.derive_cid(&hdr.dcid)?.to_vec());
        if self.conns.contains_key(&derived) {
            return Ok(Some(derived));
        }
        if hdr.ty != Type::Initial {
            // 0-RTT before its Initial: dropped (the client sends it
            // again in 1-RTT).
            return Ok(None);
        }
        if len < MIN_INITIAL_DATAGRAM {
            return Ok(None);
        }
        let (scid, odcid) = if self.retry {
            let token = hdr.token.as_deref().unwrap_or_default();
            if token.is_empty() {
                let token = self
                    .key
                    .mint(&hdr.dcid, &derived, from, SystemTime::now())?;
                let n = tarte::retry(
                    &hdr.scid,
                    &hdr.dcid,
                    &derived,
                    &token,
                    hdr.version,
                    &mut self.out,
                )?;
                self.send_to(n, from)?;
                bump(&self.stats.retries_sent);
                return Ok(None);
            }
            match self.key.validate(token, &hdr.dcid, from, SystemTime::now()) {
                Some(odcid) => {
                    bump(&self.stats.tokens_accepted);
                    (hdr.dcid.clone(), Some(ConnectionId::from_vec(odcid)))
                }
                None => {
                    // RFC 9000 §8.1.3 suggests closing with INVALID_TOKEN; a
                    // stateless close needs Initial keys we do not keep, so
                    // the packet is dropped and the client times out.
                    bump(&self.stats.tokens_rejected);
                    tracing::info!(%from, "invalid Retry token, dropped");
                    return Ok(None);
                }
            }
        } else {
            (derived, None)
        };
        // The token our first connection ID carries (transport parameter)
        // is derived, so a restarted server can still reset it.
        self.config
            .set_stateless_reset_token(Some(self.key.reset_token(&scid)?));
        let mut conn = tarte::accept(&scid, odcid.as_ref(), self.local, from, &mut self.config)?;
        if let Some(path) = &self.keylog {
            conn.set_keylog(super::keylog_writer(path)?);
        }
        if let Some(dir) = &self.qlog_dir {
            super::start_qlog(&mut conn, dir, "server")?;
        }
        tracing::info!(%from, trace_id = conn.trace_id(), retry = odcid.is_some(), "new connection");
        bump(&self.stats.connections);
        self.conns.insert(
            scid.clone(),
            ServerConn {
                conn,
                requests: HashMap::new(),
                handled: Default::default(),
                responses: HashMap::new(),
                established: false,
                early_counted: false,
                next_key_update: self.key_update_every,
                peer: from,
            },
        );
        Ok(Some(scid))
    }
}

/// Reads requests, starts responses and continues the pending ones.
fn serve_streams(sc: &mut ServerConn, root: &Path, stats: &ServerStats, buf: &mut [u8]) {
    for id in sc.conn.readable() {
        loop {
            match sc.conn.stream_recv(id, buf) {
                Ok((n, fin)) => {
                    // Only client-initiated bidirectional streams carry
                    // requests (stream ID bits 0b00, RFC 9000 §2.1).
                    if id % 4 != 0 {
                        continue;
                    }
                    if sc.handled.contains(&id) {
                        // Nothing can follow the FIN: forget the stream, so
                        // a long connection's set does not grow per request.
                        if fin {
                            sc.handled.remove(&id);
                        }
                        continue;
                    }
                    let req = sc.requests.entry(id).or_default();
                    req.extend_from_slice(&buf[..n]);
                    // Handled streams are remembered only while more data
                    // can still come (until their FIN).
                    if req.len() > MAX_REQUEST_LEN {
                        sc.requests.remove(&id);
                        if !fin {
                            sc.handled.insert(id);
                        }
                        refuse(&mut sc.conn, id, stats, "request too long");
                    } else if fin || req.windows(2).any(|w| w == b"\r\n") {
                        let req = sc.requests.remove(&id).unwrap_or_default();
                        if !fin {
                            sc.handled.insert(id);
                        }
                        if sc.conn.is_in_early_data() {
                            bump(&stats.early_requests);
                        }
                        start_response(sc, id, &req, root, stats);
                    }
                }
                Err(tarte::Error::Done) => break,
                Err(e) => {
                    tracing::debug!(stream = id, error = %e, "stream_recv");
                    sc.requests.remove(&id);
                    break;
                }
            }
        }
    }
    let conn = &mut sc.conn;
    sc.responses.retain(|&id, r| {
        let rest = &r.body[r.off..];
        match conn.stream_send(id, rest, true) {
            Ok(n) => {
                r.off += n;
                // The FIN went with the last byte (or alone, for an empty
                // body) once everything was accepted.
                let done = r.off == r.body.len();
                if done {
                    bump(&stats.responses);
                }
                !done
            }
            Err(tarte::Error::Done) => true,
            Err(e) => {
                tracing::debug!(stream = id, error = %e, "response abandoned");
                false
            }
        }
    });
}

fn refuse(conn: &mut tarte::Connection, id: u64, stats: &ServerStats, why: &str) {
    tracing::info!(
        trace_id = conn.trace_id(),
        stream = id,
        why,
        "request refused"
    );
    bump(&stats.refused);
    let _ = conn.stream_shutdown(id, Shutdown::Write, NOT_FOUND_CODE);
    let _ = conn.stream_shutdown(id, Shutdown::Read, NOT_FOUND_CODE);
}

fn start_response(sc: &mut ServerConn, id: u64, req: &[u8], root: &Path, stats: &ServerStats) {
    let Some(path) = parse_request(req) else {
        return refuse(&mut sc.conn, id, stats, "malformed request");
    };
    let Some(file) = resolve(root, path) else {
        return refuse(&mut sc.conn, id, stats, "not found or outside the root");
    };
    match std::fs::read(&file) {
        Ok(body) => {
            tracing::debug!(stream = id, path, len = body.len(), "serving");
            sc.responses.insert(id, Response { body, off: 0 });
        }
        Err(e) => {
            tracing::info!(file = %file.display(), error = %e, "read failed");
            refuse(&mut sc.conn, id, stats, "unreadable");
        }
    }
}

/// Extracts the path of `GET /path\r\n` (CRLF optional when FIN ends it).
pub fn parse_request(req: &[u8]) -> Option<&str> {
    let line = req.split(|&b| b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).ok()?;
    let path = line.strip_prefix("GET ")?.trim();
    (path.starts_with('/') && !path.contains(' ')).then_some(path)
}

/// Maps a request path onto a regular file under `root` (canonical).
/// Refuses `..` components, NUL, backslashes, and anything that resolves
/// (through symbolic links) outside the root.
pub fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let path = path.split(['?', '#']).next()?;
    let mut out = root.to_path_buf();
    let mut any = false;
    for comp in path.split('/') {
        match comp {
            "" | "." => continue,
            ".." => return None,
            c if c.contains(['\\', '\0']) => return None,
            c => {
                out.push(c);
                any = true;
            }
        }
    }
    if !any {
        out.push("index.html");
    }
    let canon = out.canonicalize().ok()?;
    (canon.starts_with(root) && canon.is_file()).then_some(canon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(parse_request(b"GET /a.txt\r\n"), Some("/a.txt"));
        assert_eq!(parse_request(b"GET /a.txt"), Some("/a.txt"));
        assert_eq!(parse_request(b"GET /a\n"), Some("/a"));
        assert_eq!(parse_request(b"POST /a\r\n"), None);
        assert_eq!(parse_request(b"GET a\r\n"), None);
        assert_eq!(parse_request(b"\xff\r\n"), None);
    }
}
