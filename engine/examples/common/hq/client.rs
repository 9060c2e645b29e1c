//! The hq-interop client: one connection, every URL on its own
//! bidirectional stream, all in parallel (as many as the server's stream
//! limit allows at a time), bounded in total time.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tarte::{ConnectionError, ConnectionId, RecvInfo};

use super::{flush, flush_paths, recv_batch, Url, ALPN, CID_LEN, RECV_BUF_LEN};

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Whether to verify the server's certificate.
    pub verify: bool,
    /// Trusted CA certificates (PEM file) for verification.
    pub ca: Option<PathBuf>,
    /// Bound on the whole run: handshake and every response.
    pub timeout: Duration,
    /// Idle timeout in milliseconds.
    pub idle_timeout_ms: u64,
    /// TLS key-exchange groups, e.g. `X25519` (BoringSSL's default when
    /// absent).
    pub curves: Option<String>,
    /// Initiate a key update (RFC 9001 §6) each time this many more
    /// response bytes have arrived (the interop runner's `keyupdate`
    /// case); an update waits until the previous one was acknowledged.
    pub key_update_every: Option<usize>,
    /// Once this many response bytes have arrived, move the connection to
    /// a new local UDP port (RFC 9000 §9.2, the interop runner's
    /// `connectionmigration` case): a new socket, the old one closed.
    pub migrate_after: Option<usize>,
    /// With `migrate_after`: validate the new path first (RFC 9000 §9.1,
    /// `probe_path`) and move once it is validated.
    pub probe_first: bool,
    /// A session from an earlier connection's [`Report::session`], offered
    /// for resumption (RFC 9001 §4.5).
    pub session: Option<Vec<u8>>,
    /// With a session that allows it, send the requests in 0-RTT packets
    /// (RFC 9001 §4.6).
    pub early_data: bool,
    /// Append the connection's TLS secrets to this file (NSS key log
    /// format, for Wireshark; the binary takes it from `SSLKEYLOGFILE`).
    pub keylog: Option<PathBuf>,
    /// Write the connection's qlog into this directory (the binary takes
    /// it from `QLOGDIR`).
    pub qlog_dir: Option<PathBuf>,
    /// Path MTU discovery up to this many bytes of UDP payload.
    pub pmtud: Option<usize>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            verify: true,
            ca: None,
            timeout: Duration::from_secs(30),
            idle_timeout_ms: 30_000,
            curves: None,
            key_update_every: None,
            migrate_after: None,
            probe_first: false,
            session: None,
            early_data: false,
            keylog: None,
            qlog_dir: None,
            pmtud: None,
        }
    }
}

/// One URL's outcome.
#[derive(Debug)]
pub struct Response {
    /// The URL as given.
    pub url: String,
    /// Its path.
    pub path: String,
    /// The body, or why there is none (stream reset, connection closed).
    pub result: Result<Vec<u8>, String>,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Report {
    /// One entry per URL, in the order given.
    pub responses: Vec<Response>,
    /// Time from the first Initial to handshake completion.
    pub handshake_time: Duration,
    /// Time from the first Initial to the last response.
    pub elapsed: Duration,
    /// Connection statistics at the end.
    pub stats: tarte::Stats,
    /// The peer's close error, if it closed the connection.
    pub peer_error: Option<ConnectionError>,
    /// The local address the connection migrated to, if it did.
    pub migrated_to: Option<SocketAddr>,
    /// Whether the handshake resumed the offered session.
    pub resumed: bool,
    /// Whether requests went out in 0-RTT packets (accepted or not).
    pub sent_early: bool,
    /// The newest session the server made resumable, if it sent a ticket.
    pub session: Option<Vec<u8>>,
    /// The largest UDP payload the connection sent at the end (what path
    /// MTU discovery found, with `pmtud`).
    pub pmtu: usize,
}

impl Report {
    /// Whether every URL got its body.
    pub fn all_ok(&self) -> bool {
        self.responses.iter().all(|r| r.result.is_ok())
    }
}

struct Request {
    url: String,
    path: String,
    line: Vec<u8>,
    written: usize,
    stream_id: Option<u64>,
    body: Vec<u8>,
    result: Option<Result<(), String>>,
}

/// The client's QUIC configuration.
pub fn client_config(opts: &ClientOptions) -> anyhow::Result<tarte::Config> {
    let mut c = tarte::Config::new(tarte::PROTOCOL_VERSION)?;
    c.verify_peer(opts.verify);
    if opts.keylog.is_some() {
        c.log_keys();
    }
    if let Some(ca) = &opts.ca {
        let f = ca
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("{}: not UTF-8", ca.display()))?;
        c.load_verify_locations_from_file(f)
            .map_err(|e| anyhow::anyhow!("{f}: {e}"))?;
    }
    if let Some(curves) = &opts.curves {
        c.set_curves_list(curves)?;
    }
    super::apply_transport_settings(&mut c, opts.idle_timeout_ms, 16)?;
    super::apply_pmtud(&mut c, opts.pmtud);
    if opts.early_data {
        c.enable_early_data();
    }
    Ok(c)
}

/// Fetches every URL over one connection. All URLs must name the same
/// host and port. Fails on a timeout or when the connection ends before
/// every response is complete; per-URL failures (stream reset) are in the
/// report.
pub fn fetch(urls: &[String], opts: &ClientOptions) -> anyhow::Result<Report> {
    let parsed: Vec<Url> = urls
        .iter()
        .map(|u| Url::parse(u))
        .collect::<anyhow::Result<_>>()?;
    let Some(first) = parsed.first() else {
        anyhow::bail!("no URL given");
    };
    if let Some(u) = parsed
        .iter()
        .find(|u| (&u.host, u.port) != (&first.host, first.port))
    {
        anyhow::bail!(
            "all URLs must share one authority: {}:{} vs {}:{}",
            first.host,
            first.port,
            u.host,
            u.port
        );
    }
    let peer = first.socket_addr()?;
    let mut reqs: Vec<Request> = urls
        .iter()
        .zip(&parsed)
        .map(|(url, u)| Request {
            url: url.clone(),
            path: u.path.clone(),
            line: format!("GET {}\r\n", u.path).into_bytes(),
            written: 0,
            stream_id: None,
            body: Vec::new(),
            result: None,
        })
        .collect();
    let mut config = client_config(opts)?;
    let bind: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let mut socket = UdpSocket::bind(bind)?;
    let mut local = socket.local_addr()?;
    let mut scid = [0u8; CID_LEN];
    boring::rand::rand_bytes(&mut scid)?;
    let scid = ConnectionId::from_ref(&scid);
    let mut conn = tarte::connect(Some(&first.host), &scid, local, peer, &mut config)?;
    if let Some(path) = &opts.keylog {
        conn.set_keylog(super::keylog_writer(path)?);
    }
    if let Some(dir) = &opts.qlog_dir {
        super::start_qlog(&mut conn, dir, "client")?;
    }
    if let Some(session) = &opts.session {
        conn.set_session(session)
            .map_err(|e| anyhow::anyhow!("stored session refused: {e:?}"))?;
    }
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let mut path = ClientPath {
        socket: &mut socket,
        local: &mut local,
        migrate_after: opts.migrate_after,
        probe_first: opts.probe_first,
        peer,
        probing: None,
        migrated_to: None,
    };
    let mut sent_early = false;
    let handshake_time = run(
        &mut path,
        &mut conn,
        &mut reqs,
        deadline,
        opts.timeout,
        opts.key_update_every,
        &mut sent_early,
    )?;
    let migrated_to = path.migrated_to;
    Ok(Report {
        migrated_to,
        resumed: conn.is_resumed(),
        sent_early,
        session: conn.session().map(<[u8]>::to_vec),
        elapsed: start.elapsed(),
        handshake_time: handshake_time.saturating_duration_since(start),
        stats: conn.stats(),
        pmtu: conn.max_send_udp_payload_size(),
        peer_error: conn.peer_error().cloned(),
        responses: reqs
            .into_iter()
            .map(|r| Response {
                url: r.url,
                path: r.path,
                result: match r.result {
                    Some(Ok(())) => Ok(r.body),
                    Some(Err(e)) => Err(e),
                    None => Err("no response".into()),
                },
            })
            .collect(),
    })
}

/// The client's socket and local address, which a migration replaces.
struct ClientPath<'a> {
    socket: &'a mut UdpSocket,
    local: &'a mut SocketAddr,
    migrate_after: Option<usize>,
    probe_first: bool,
    peer: SocketAddr,
    /// The socket of a path being probed, and its address.
    probing: Option<(UdpSocket, SocketAddr)>,
    migrated_to: Option<SocketAddr>,
}

impl ClientPath<'_> {
    /// Moves the connection to a new local port once `migrate_after`
    /// response bytes arrived and the server gave a spare connection ID
    /// (tried again on the next pass until then); with `probe_first`, once
    /// the new path is validated.
    fn maybe_migrate(&mut self, conn: &mut tarte::Connection, got: usize) -> anyhow::Result<()> {
        let due = self.migrate_after.is_some_and(|after| got >= after);
        if !due || self.migrated_to.is_some() {
            return Ok(());
        }
        if let Some((_, local)) = &self.probing {
            let local = *local;
            return match conn.is_path_validated(local, self.peer) {
                Ok(true) => self.move_to(conn, local),
                Ok(false) => Ok(()),
                Err(_) => anyhow::bail!("validation of the path from {local} failed"),
            };
        }
        if conn.available_dcids() == 0 {
            return Ok(());
        }
        let socket = UdpSocket::bind(SocketAddr::new(self.local.ip(), 0))?;
        let local = socket.local_addr()?;
        if self.probe_first {
            let seq = conn.probe_path(local, self.peer)?;
            tracing::info!(%local, dcid_seq = seq, "probing");
            self.probing = Some((socket, local));
            return Ok(());
        }
        *self.socket = socket;
        self.move_to(conn, local)
    }

    /// Migrates to `local` (its socket already in place, or the probing
    /// one) and closes the old socket.
    fn move_to(&mut self, conn: &mut tarte::Connection, local: SocketAddr) -> anyhow::Result<()> {
        let seq = conn.migrate(local, self.peer)?;
        tracing::info!(from = %self.local, to = %local, dcid_seq = seq, "migrated");
        if let Some((socket, _)) = self.probing.take() {
            *self.socket = socket;
        }
        *self.local = local;
        self.migrated_to = Some(local);
        Ok(())
    }

    /// Hands what arrived on the probing socket to the connection.
    fn drain_probing(&self, conn: &mut tarte::Connection, buf: &mut [u8]) -> anyhow::Result<()> {
        if let Some((socket, local)) = &self.probing {
            recv_batch(socket, buf, Duration::ZERO, |pkt, from| {
                let _ = conn.recv(pkt, RecvInfo { from, to: *local });
            })?;
        }
        Ok(())
    }

    fn flush(&self, conn: &mut tarte::Connection, out: &mut [u8]) -> anyhow::Result<usize> {
        let other = self.probing.as_ref().map(|(s, a)| (s, *a));
        flush_paths(self.socket, other, conn, out)
    }
}

/// Gives the server every spare connection ID it accepts (it needs an
/// unused one to follow a migration, RFC 9000 §9.5).
fn issue_spare_ids(conn: &mut tarte::Connection) -> anyhow::Result<()> {
    while conn.scids_left() > 0 {
        let mut cid = [0u8; CID_LEN];
        boring::rand::rand_bytes(&mut cid)?;
        let mut token = [0u8; 16];
        boring::rand::rand_bytes(&mut token)?;
        conn.new_scid(
            &ConnectionId::from_ref(&cid),
            u128::from_be_bytes(token),
            false,
        )?;
    }
    Ok(())
}

/// The event loop. Returns when the handshake completed.
fn run(
    path: &mut ClientPath<'_>,
    conn: &mut tarte::Connection,
    reqs: &mut [Request],
    deadline: Instant,
    timeout: Duration,
    key_update_every: Option<usize>,
    sent_early: &mut bool,
) -> anyhow::Result<Instant> {
    let mut buf = vec![0u8; RECV_BUF_LEN];
    // Response bytes at which the next key update is due.
    let mut next_key_update = key_update_every;
    let mut out = vec![0u8; RECV_BUF_LEN];
    let mut by_stream: HashMap<u64, usize> = HashMap::new();
    let mut next_req = 0;
    let mut next_stream = 0u64;
    let mut established_at = None;
    flush(path.socket, conn, &mut out)?;
    loop {
        // Once the ClientHello is out, a resumed session that allows it
        // takes the requests in 0-RTT (RFC 9001 §4.6).
        if established_at.is_none() && conn.is_in_early_data() {
            *sent_early |= next_req == 0 && !reqs.is_empty();
            open_streams(conn, reqs, &mut by_stream, &mut next_req, &mut next_stream);
            flush(path.socket, conn, &mut out)?;
        }
        let (socket, local) = (&*path.socket, *path.local);
        let now = Instant::now();
        if now >= deadline {
            let done = reqs.iter().filter(|r| r.result.is_some()).count();
            anyhow::bail!(
                "timed out after {timeout:?} ({} of {} responses complete, established: {})",
                done,
                reqs.len(),
                conn.is_established()
            );
        }
        let left = deadline - now;
        let mut wait = conn.timeout().map_or(left, |t| t.min(left));
        if path.probing.is_some() {
            // Both sockets are polled while a path is probed.
            wait = wait.min(Duration::from_millis(2));
        }
        recv_batch(socket, &mut buf, wait, |pkt, from| {
            if let Err(e) = conn.recv(pkt, RecvInfo { from, to: local }) {
                tracing::debug!(error = %e, "recv failed");
            }
        })?;
        path.drain_probing(conn, &mut buf)?;
        if conn.timeout_instant().is_some_and(|t| t <= Instant::now()) {
            conn.on_timeout();
        }
        if conn.is_closed() {
            fn show(e: Option<&impl std::fmt::Display>) -> String {
                e.map_or_else(|| "none".to_string(), |e| e.to_string())
            }
            anyhow::bail!(
                "connection closed before all responses arrived: peer error {}, local error {}, idle timeout: {}",
                show(conn.peer_error()),
                show(conn.local_error()),
                conn.is_timed_out()
            );
        }
        if conn.is_established() && established_at.is_none() {
            established_at = Some(Instant::now());
            if conn.application_proto() != ALPN {
                let _ = conn.close(false, 0x178, b"no application protocol");
                flush(socket, conn, &mut out)?;
                anyhow::bail!("server did not negotiate ALPN hq-interop");
            }
        }
        if established_at.is_some() {
            issue_spare_ids(conn)?;
            open_streams(conn, reqs, &mut by_stream, &mut next_req, &mut next_stream);
            read_streams(conn, reqs, &by_stream, &mut buf);
            if let (Some(due), Some(every)) = (next_key_update, key_update_every) {
                let got: usize = reqs.iter().map(|r| r.body.len()).sum();
                // Refused (Error::KeyUpdate) until the previous update
                // was acknowledged: tried again on the next pass.
                if got >= due && conn.initiate_key_update().is_ok() {
                    next_key_update = Some(got + every);
                }
            }
            if reqs.iter().all(|r| r.result.is_some()) {
                // Done: close and send the CONNECTION_CLOSE once; the server
                // tolerates its loss (it idles out).
                let _ = conn.close(true, 0, b"done");
                flush(socket, conn, &mut out)?;
                return Ok(established_at.unwrap_or(now));
            }
            let got: usize = reqs.iter().map(|r| r.body.len()).sum();
            path.maybe_migrate(conn, got)?;
        }
        path.flush(conn, &mut out)?;
    }
}

fn open_streams(
    conn: &mut tarte::Connection,
    reqs: &mut [Request],
    by_stream: &mut HashMap<u64, usize>,
    next_req: &mut usize,
    next_stream: &mut u64,
) {
    // Requests partly written (connection flow control) go on first.
    for r in reqs[..*next_req].iter_mut() {
        if let (Some(id), true) = (r.stream_id, r.written < r.line.len()) {
            if let Ok(n) = conn.stream_send(id, &r.line[r.written..], true) {
                r.written += n;
            }
        }
    }
    while *next_req < reqs.len() && conn.peer_streams_left_bidi() > 0 {
        let id = *next_stream;
        let r = &mut reqs[*next_req];
        match conn.stream_send(id, &r.line, true) {
            Ok(n) => r.written = n,
            Err(tarte::Error::Done) => (),
            Err(e) => {
                r.result = Some(Err(format!("cannot open stream {id}: {e}")));
            }
        }
        r.stream_id = Some(id);
        by_stream.insert(id, *next_req);
        *next_stream += 4;
        *next_req += 1;
    }
}

fn read_streams(
    conn: &mut tarte::Connection,
    reqs: &mut [Request],
    by_stream: &HashMap<u64, usize>,
    buf: &mut [u8],
) {
    for id in conn.readable() {
        let Some(&i) = by_stream.get(&id) else {
            // Not ours (a server-initiated stream): drain and ignore.
            while let Ok((_, false)) = conn.stream_recv(id, buf) {}
            continue;
        };
        let r = &mut reqs[i];
        loop {
            match conn.stream_recv(id, buf) {
                Ok((n, fin)) => {
                    r.body.extend_from_slice(&buf[..n]);
                    if fin {
                        r.result = Some(Ok(()));
                        break;
                    }
                }
                Err(tarte::Error::Done) => break,
                Err(tarte::Error::StreamReset(code)) => {
                    r.result = Some(Err(format!(
                        "{}: stream reset by the server (code {code:#x})",
                        r.url
                    )));
                    break;
                }
                Err(e) => {
                    r.result = Some(Err(format!("{}: {e}", r.url)));
                    break;
                }
            }
        }
    }
}
