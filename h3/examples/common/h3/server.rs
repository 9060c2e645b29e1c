//! The HTTP/3 example server: one std UDP socket, many connections keyed
//! by destination connection ID, static files from a root directory,
//! `/bytes/N` (N bytes of the pattern `i % 251`), `/trailers` (a body then
//! trailers) and POST (answers with the SHA-256 and length of the body).
//! Shared with the interop tests through `#[path]`.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tarte::{ConnectionId, RecvInfo, Type};
use tarte_h3::{Event, Header, NameValue};

/// Our connection ID length.
const CID_LEN: usize = 16;
/// Largest static file served.
const MAX_FILE: u64 = 64 << 20;
/// Largest request body hashed (bigger ones are refused).
const MAX_POST: usize = 64 << 20;

/// Server options.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Directory served.
    pub root: PathBuf,
    /// Send GOAWAY after this many requests on a connection (0: never).
    pub goaway_after: u64,
}

/// A response body being sent.
enum Body {
    Bytes(Vec<u8>, usize),
    Pattern { len: u64, off: u64 },
}

struct Request {
    headers: Vec<Header>,
    body: Sha256,
    body_len: usize,
    trailers: Vec<Header>,
}

struct Client {
    conn: tarte::Connection,
    h3: Option<tarte_h3::Connection>,
    requests: HashMap<u64, Request>,
    sending: HashMap<u64, (Body, Option<Vec<Header>>)>,
    served: u64,
    goaway_sent: bool,
}

/// Counters the tests read while the server runs.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Responses started.
    pub requests: AtomicU64,
    /// Largest QPACK decoder insert count seen on a connection (the peer's
    /// encoder used our dynamic table).
    pub decoder_inserts: AtomicU64,
    /// GOAWAY frames received.
    pub goaways_received: AtomicU64,
    /// HTTP/3 connection errors.
    pub h3_errors: AtomicU64,
}

/// The server.
pub struct Server {
    /// Counters.
    pub stats: Arc<ServerStats>,
    socket: UdpSocket,
    local: SocketAddr,
    config: tarte::Config,
    h3_config: tarte_h3::Config,
    opts: ServerOptions,
    ids: HashMap<ConnectionId<'static>, usize>,
    clients: Vec<Option<Client>>,
    out: Vec<u8>,
    pattern: Vec<u8>,
}

/// Unpredictable bytes from the standard library's randomly keyed hasher
/// (enough for example connection IDs).
fn random_bytes(n: usize) -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        let v = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// The byte at offset `i` of a `/bytes/N` body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

impl Server {
    /// Binds `addr` and loads the certificate.
    pub fn bind(addr: SocketAddr, opts: ServerOptions) -> anyhow::Result<Server> {
        let socket = UdpSocket::bind(addr).with_context(|| format!("binding {addr}"))?;
        let local = socket.local_addr()?;
        let mut config = tarte::Config::new(tarte::PROTOCOL_VERSION)?;
        config
            .load_cert_chain_from_pem_file(&opts.cert.to_string_lossy())
            .map_err(|e| anyhow::anyhow!("certificate {}: {e:?}", opts.cert.display()))?;
        config
            .load_priv_key_from_pem_file(&opts.key.to_string_lossy())
            .map_err(|e| anyhow::anyhow!("key {}: {e:?}", opts.key.display()))?;
        config.set_application_protos(&[b"h3"])?;
        config.set_max_idle_timeout(30_000);
        config.set_max_recv_udp_payload_size(1350);
        config.set_max_send_udp_payload_size(1350);
        config.set_initial_max_data(50_000_000);
        config.set_initial_max_stream_data_bidi_local(5_000_000);
        config.set_initial_max_stream_data_bidi_remote(5_000_000);
        config.set_initial_max_stream_data_uni(1_000_000);
        config.set_initial_max_streams_bidi(256);
        config.set_initial_max_streams_uni(16);
        let pattern = (0..251 * 64).map(pattern_byte).collect();
        Ok(Server {
            stats: Arc::default(),
            socket,
            local,
            config,
            h3_config: tarte_h3::Config::new()?,
            opts,
            ids: HashMap::new(),
            clients: Vec::new(),
            out: vec![0; 65_536],
            pattern,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            let wait = self
                .clients
                .iter()
                .flatten()
                .filter_map(|c| c.conn.timeout())
                .min()
                .unwrap_or(Duration::from_millis(50))
                .clamp(Duration::from_millis(1), Duration::from_millis(50));
            self.socket.set_read_timeout(Some(wait))?;
            let mut first = true;
            loop {
                if !first {
                    self.socket.set_nonblocking(true)?;
                }
                let r = self.socket.recv_from(&mut buf);
                if !first {
                    self.socket.set_nonblocking(false)?;
                }
                first = false;
                match r {
                    Ok((len, from)) => self.on_datagram(&mut buf[..len], from),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            self.service()?;
        }
        Ok(())
    }

    fn on_datagram(&mut self, pkt: &mut [u8], from: SocketAddr) {
        let hdr = match tarte::Header::from_slice(pkt, CID_LEN) {
            Ok(h) => h.into_owned(),
            Err(_) => return,
        };
        let idx = match self.ids.get(&hdr.dcid) {
            Some(&i) => i,
            None => {
                if hdr.ty != Type::Initial || !tarte::version_is_supported(hdr.version) {
                    return;
                }
                let scid = ConnectionId::from_vec(random_bytes(CID_LEN));
                let Ok(conn) = tarte::accept(&scid, None, self.local, from, &mut self.config)
                else {
                    return;
                };
                let i = self.clients.len();
                self.clients.push(Some(Client {
                    conn,
                    h3: None,
                    requests: HashMap::new(),
                    sending: HashMap::new(),
                    served: 0,
                    goaway_sent: false,
                }));
                // Both the client's chosen DCID and ours route here.
                self.ids.insert(scid, i);
                self.ids.insert(hdr.dcid.clone(), i);
                i
            }
        };
        if let Some(Some(c)) = self.clients.get_mut(idx) {
            let _ = c.conn.recv(
                pkt,
                RecvInfo {
                    from,
                    to: self.local,
                },
            );
        }
    }

    fn service(&mut self) -> anyhow::Result<()> {
        for i in 0..self.clients.len() {
            let Some(c) = self.clients[i].as_mut() else {
                continue;
            };
            if c.conn.timeout().is_some_and(|t| t.is_zero()) {
                c.conn.on_timeout();
            }
            if (c.conn.is_established() || c.conn.is_in_early_data()) && c.h3.is_none() {
                c.h3 = Some(tarte_h3::Connection::with_transport(
                    &mut c.conn,
                    &self.h3_config,
                )?);
            }
            if c.h3.is_some() {
                serve(c, &self.opts, &self.pattern, &self.stats);
            }
            loop {
                match c.conn.send(&mut self.out) {
                    Ok((n, info)) => {
                        self.socket.send_to(&self.out[..n], info.to)?;
                    }
                    Err(tarte::Error::Done) => break,
                    Err(e) => {
                        tracing::debug!(?e, "send failed");
                        break;
                    }
                }
            }
            if c.conn.is_closed() {
                tracing::info!(trace_id = c.conn.trace_id(), "connection closed");
                self.clients[i] = None;
                self.ids.retain(|_, v| *v != i);
            }
        }
        Ok(())
    }
}

fn serve(c: &mut Client, opts: &ServerOptions, pattern: &[u8], stats: &ServerStats) {
    let Some(h3) = c.h3.as_mut() else { return };
    stats
        .decoder_inserts
        .fetch_max(h3.qpack_stats().decoder_insert_count, Ordering::Relaxed);
    let mut buf = vec![0u8; 65_536];
    loop {
        match h3.poll(&mut c.conn) {
            Ok((id, Event::Headers { list, .. })) => match c.requests.get_mut(&id) {
                Some(r) => r.trailers = list,
                None => {
                    c.requests.insert(
                        id,
                        Request {
                            headers: list,
                            body: Sha256::new(),
                            body_len: 0,
                            trailers: Vec::new(),
                        },
                    );
                }
            },
            Ok((id, Event::Data)) => {
                while let Ok(n) = h3.recv_body(&mut c.conn, id, &mut buf) {
                    if let Some(r) = c.requests.get_mut(&id) {
                        r.body.update(&buf[..n]);
                        r.body_len += n;
                        if r.body_len > MAX_POST {
                            let _ = c.conn.stream_shutdown(id, tarte::Shutdown::Read, 0x10b);
                        }
                    }
                }
            }
            Ok((id, Event::Finished)) => {
                if let Some(r) = c.requests.remove(&id) {
                    respond(h3, &mut c.conn, &mut c.sending, id, r, opts);
                    stats.requests.fetch_add(1, Ordering::Relaxed);
                    c.served += 1;
                    if opts.goaway_after > 0 && c.served >= opts.goaway_after && !c.goaway_sent {
                        c.goaway_sent = true;
                        let _ = h3.send_goaway(&mut c.conn, id + 4);
                    }
                }
            }
            Ok((id, Event::Reset(_))) => {
                c.requests.remove(&id);
                c.sending.remove(&id);
            }
            Ok((id, Event::GoAway)) => {
                tracing::info!(id, "peer sent GOAWAY");
                stats.goaways_received.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(tarte_h3::Error::Done) => break,
            Err(e) => {
                tracing::info!(?e, "h3 error");
                stats.h3_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
    send_bodies(h3, &mut c.conn, &mut c.sending, pattern);
}

fn header_value<'a>(list: &'a [Header], name: &str) -> &'a [u8] {
    list.iter()
        .find(|h| h.name() == name.as_bytes())
        .map_or(&b""[..], |h| h.value())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn respond(
    h3: &mut tarte_h3::Connection,
    conn: &mut tarte::Connection,
    sending: &mut HashMap<u64, (Body, Option<Vec<Header>>)>,
    id: u64,
    r: Request,
    opts: &ServerOptions,
) {
    let method = header_value(&r.headers, ":method").to_vec();
    let path = String::from_utf8_lossy(header_value(&r.headers, ":path")).into_owned();
    let path = path.split('?').next().unwrap_or("/").to_string();
    let mut headers = vec![Header::new(b"server", b"tarte-h3-example")];
    let mut trailers = None;
    let (status, body) = if method == b"POST" || method == b"PUT" {
        headers.push(Header::new(
            b"x-received-sha256",
            hex(&r.body.finalize()).as_bytes(),
        ));
        headers.push(Header::new(
            b"x-received-length",
            r.body_len.to_string().as_bytes(),
        ));
        for t in &r.trailers {
            let mut n = b"x-request-trailer-".to_vec();
            n.extend_from_slice(t.name());
            headers.push(Header::new(&n, t.value()));
        }
        (200, Body::Bytes(b"ok\n".to_vec(), 0))
    } else if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<u64>().ok())
    {
        (200, Body::Pattern { len: n, off: 0 })
    } else if path == "/trailers" {
        let body = b"a body followed by trailers\n".to_vec();
        trailers = Some(vec![
            Header::new(b"x-body-sha256", hex(&Sha256::digest(&body)).as_bytes()),
            Header::new(b"x-trailer", b"yes"),
        ]);
        (200, Body::Bytes(body, 0))
    } else {
        match read_file(&opts.root, &path) {
            Some(b) => (200, Body::Bytes(b, 0)),
            None => (404, Body::Bytes(b"not found\n".to_vec(), 0)),
        }
    };
    let len = match &body {
        Body::Bytes(b, _) => b.len() as u64,
        Body::Pattern { len, .. } => *len,
    };
    let mut list = vec![Header::new(b":status", status.to_string().as_bytes())];
    list.append(&mut headers);
    list.push(Header::new(b"content-length", len.to_string().as_bytes()));
    if h3.send_response(conn, id, &list, false).is_ok() {
        sending.insert(id, (body, trailers));
    }
}

/// A file under `root` for a request path, refusing anything that leaves
/// the root.
fn read_file(root: &Path, path: &str) -> Option<Vec<u8>> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let mut p = root.join(rel);
    if p.is_dir() {
        p = p.join("index.html");
    }
    let meta = std::fs::metadata(&p).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    std::fs::read(p).ok()
}

fn send_bodies(
    h3: &mut tarte_h3::Connection,
    conn: &mut tarte::Connection,
    sending: &mut HashMap<u64, (Body, Option<Vec<Header>>)>,
    pattern: &[u8],
) {
    let mut done = Vec::new();
    for (&id, (body, trailers)) in sending.iter_mut() {
        loop {
            let fin_with_body = trailers.is_none();
            let (chunk, left): (&[u8], u64) = match body {
                Body::Bytes(b, off) => (&b[*off..], (b.len() - *off) as u64),
                Body::Pattern { len, off } => {
                    let start = (*off % 251) as usize;
                    let n = (*len - *off).min((pattern.len() - start) as u64) as usize;
                    (&pattern[start..start + n], *len - *off)
                }
            };
            let last = chunk.len() as u64 == left;
            match h3.send_body(conn, id, chunk, last && fin_with_body) {
                Ok(n) => {
                    match body {
                        Body::Bytes(_, off) => *off += n,
                        Body::Pattern { off, .. } => *off += n as u64,
                    }
                    if n as u64 == left {
                        if let Some(t) = trailers.take() {
                            let _ = h3.send_additional_headers(conn, id, &t, true, true);
                        }
                        done.push(id);
                        break;
                    }
                }
                Err(tarte_h3::Error::Done) => break,
                Err(e) => {
                    tracing::debug!(id, ?e, "send_body failed");
                    done.push(id);
                    break;
                }
            }
        }
    }
    for id in done {
        sending.remove(&id);
    }
}
