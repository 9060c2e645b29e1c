//! The HTTP/3 example client: every URL as a concurrent request on one
//! connection, bounded in time. Shared with the interop tests through
//! `#[path]`.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tarte_h3::{Event, Header, NameValue};

/// Client options.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Verify the server certificate.
    pub verify: bool,
    /// Trusted CA certificates (PEM file) for the verification; the
    /// system's default locations when `None`.
    pub ca: Option<std::path::PathBuf>,
    /// Request method.
    pub method: String,
    /// Request body (sent with every request).
    pub body: Option<Vec<u8>>,
    /// Trailers sent after the body.
    pub trailers: Vec<(String, String)>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// URLs, all on the same authority.
    pub urls: Vec<String>,
    /// Give up after this long.
    pub timeout: Duration,
    /// Send GOAWAY once every response arrived, before closing.
    pub send_goaway: bool,
    /// HTTP/3 settings.
    pub h3: tarte_h3::Config,
    /// A session from an earlier connection's [`Outcome::session`], offered
    /// for resumption (RFC 9001 §4.5).
    pub session: Option<Vec<u8>>,
    /// With a session that allows it, send the requests in 0-RTT (RFC
    /// 9001 §4.6; the server's SETTINGS are not remembered, so the first
    /// requests use QPACK's static table only, always safe).
    pub early_data: bool,
}

impl ClientOptions {
    /// GET of `urls` with defaults.
    pub fn get(urls: Vec<String>) -> anyhow::Result<ClientOptions> {
        Ok(ClientOptions {
            verify: true,
            ca: None,
            method: "GET".into(),
            body: None,
            trailers: Vec::new(),
            headers: Vec::new(),
            urls,
            timeout: Duration::from_secs(30),
            send_goaway: false,
            h3: tarte_h3::Config::new()?,
            session: None,
            early_data: false,
        })
    }
}

/// One response.
#[derive(Clone, Debug, Default)]
pub struct Response {
    /// The URL requested.
    pub url: String,
    /// The stream it came on.
    pub stream_id: u64,
    /// `:status`.
    pub status: u16,
    /// All header fields.
    pub headers: Vec<Header>,
    /// The body.
    pub body: Vec<u8>,
    /// Trailers, if any.
    pub trailers: Vec<Header>,
    /// The stream was reset with this code.
    pub reset: Option<u64>,
}

impl Response {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .chain(&self.trailers)
            .find(|h| h.name() == name.as_bytes())
            .map(|h| String::from_utf8_lossy(h.value()).into_owned())
    }
}

/// What a run gave.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Responses in URL order.
    pub responses: Vec<Response>,
    /// The peer's GOAWAY ID, if it sent one.
    pub goaway: Option<u64>,
    /// QPACK table use.
    pub qpack: tarte_h3::QpackStats,
    /// The peer's SETTINGS.
    pub peer_settings: Vec<(u64, u64)>,
    /// Whether the handshake resumed the offered session.
    pub resumed: bool,
    /// Whether the requests went out in 0-RTT (accepted or not).
    pub sent_early: bool,
    /// The newest session the server made resumable.
    pub session: Option<Vec<u8>>,
}

/// Splits `https://host[:port]/path` into (host, port, authority, path).
pub fn parse_url(url: &str) -> anyhow::Result<(String, u16, String, String)> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("{url}: only https:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_matches(|c| c == '[' || c == ']'),
            p.parse().context("port")?,
        ),
        _ => (authority, 443),
    };
    Ok((
        host.to_string(),
        port,
        authority.to_string(),
        path.to_string(),
    ))
}

struct InFlight {
    index: usize,
    body_off: usize,
    body_done: bool,
}

/// Runs every request of `opts` on one connection.
pub fn fetch(opts: &ClientOptions) -> anyhow::Result<Outcome> {
    let deadline = Instant::now() + opts.timeout;
    let first = opts.urls.first().context("no URL")?;
    let (host, port, authority, _) = parse_url(first)?;
    let peer: SocketAddr = (host.as_str(), port)
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("cannot resolve {host}"))?;
    let bind: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()?;
    let socket = UdpSocket::bind(bind)?;
    let local = socket.local_addr()?;
    let mut config = tarte::Config::new(tarte::PROTOCOL_VERSION)?;
    config.verify_peer(opts.verify);
    if let Some(ca) = &opts.ca {
        let f = ca
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("{}: not UTF-8", ca.display()))?;
        config
            .load_verify_locations_from_file(f)
            .map_err(|e| anyhow::anyhow!("{f}: {e}"))?;
    }
    config.set_application_protos(&[b"h3"])?;
    config.set_max_idle_timeout(30_000);
    config.set_max_recv_udp_payload_size(1350);
    config.set_max_send_udp_payload_size(1350);
    config.set_initial_max_data(50_000_000);
    config.set_initial_max_stream_data_bidi_local(10_000_000);
    config.set_initial_max_stream_data_bidi_remote(1_000_000);
    config.set_initial_max_stream_data_uni(1_000_000);
    config.set_initial_max_streams_bidi(100);
    config.set_initial_max_streams_uni(16);
    if opts.early_data {
        config.enable_early_data();
    }
    let scid = tarte::ConnectionId::from_vec({
        use std::hash::{BuildHasher, Hasher};
        let h = || {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        [h().to_le_bytes(), h().to_le_bytes()].concat()
    });
    let mut conn = tarte::connect(Some(&host), &scid, local, peer, &mut config)?;
    if let Some(session) = &opts.session {
        conn.set_session(session)
            .map_err(|e| anyhow::anyhow!("stored session refused: {e:?}"))?;
    }
    let mut h3: Option<tarte_h3::Connection> = None;
    let mut out = Outcome {
        responses: opts
            .urls
            .iter()
            .map(|u| Response {
                url: u.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut queue: VecDeque<usize> = (0..opts.urls.len()).collect();
    let mut inflight: HashMap<u64, InFlight> = HashMap::new();
    let mut finished = 0;
    let mut buf = vec![0u8; 65_536];
    let mut sbuf = vec![0u8; 65_536];
    let mut closing = false;
    let mut close_at: Option<Instant> = None;
    loop {
        if Instant::now() > deadline {
            bail!(
                "timed out after {:?} ({finished}/{} responses)",
                opts.timeout,
                opts.urls.len()
            );
        }
        // Send.
        loop {
            match conn.send(&mut sbuf) {
                Ok((n, info)) => {
                    socket.send_to(&sbuf[..n], info.to)?;
                }
                Err(tarte::Error::Done) => break,
                Err(e) => bail!("send: {e:?}"),
            }
        }
        // CONNECTION_CLOSE went out with the send above.
        if conn.is_closed() || closing {
            break;
        }
        // Receive (wait at most until the next timer; not at all when
        // the requests can go in 0-RTT now).
        let early_now = h3.is_none() && conn.is_in_early_data();
        let wait = conn
            .timeout()
            .unwrap_or(Duration::from_millis(100))
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        if !early_now {
            socket.set_read_timeout(Some(wait))?;
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let _ = conn.recv(&mut buf[..n], tarte::RecvInfo { from, to: local });
                    socket.set_nonblocking(true)?;
                    while let Ok((n, from)) = socket.recv_from(&mut buf) {
                        let _ = conn.recv(&mut buf[..n], tarte::RecvInfo { from, to: local });
                    }
                    socket.set_nonblocking(false)?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if conn.timeout().is_some_and(|t| t.is_zero()) {
            conn.on_timeout();
        }
        if (conn.is_established() || conn.is_in_early_data()) && h3.is_none() {
            out.sent_early = !conn.is_established();
            h3 = Some(tarte_h3::Connection::with_transport(&mut conn, &opts.h3)?);
        }
        let Some(h3c) = h3.as_mut() else { continue };
        // New requests.
        while let Some(&i) = queue.front() {
            let (_, _, _, path) = parse_url(&opts.urls[i])?;
            let mut req = vec![
                Header::new(b":method", opts.method.as_bytes()),
                Header::new(b":scheme", b"https"),
                Header::new(b":authority", authority.as_bytes()),
                Header::new(b":path", path.as_bytes()),
                Header::new(b"user-agent", b"tarte-h3-client"),
            ];
            for (n, v) in &opts.headers {
                req.push(Header::new(n.as_bytes(), v.as_bytes()));
            }
            let has_body = opts.body.is_some() || !opts.trailers.is_empty();
            match h3c.send_request(&mut conn, &req, !has_body) {
                Ok(id) => {
                    queue.pop_front();
                    out.responses[i].stream_id = id;
                    inflight.insert(
                        id,
                        InFlight {
                            index: i,
                            body_off: 0,
                            body_done: !has_body,
                        },
                    );
                }
                Err(tarte_h3::Error::TransportError(tarte::Error::StreamLimit))
                | Err(tarte_h3::Error::StreamBlocked) => break,
                Err(e) => bail!("send_request: {e:?}"),
            }
        }
        // Request bodies and trailers.
        for (&id, f) in inflight.iter_mut().filter(|(_, f)| !f.body_done) {
            let body = opts.body.as_deref().unwrap_or_default();
            let with_trailers = !opts.trailers.is_empty();
            while f.body_off < body.len() {
                match h3c.send_body(&mut conn, id, &body[f.body_off..], !with_trailers) {
                    Ok(n) => f.body_off += n,
                    Err(tarte_h3::Error::Done) => break,
                    Err(e) => bail!("send_body: {e:?}"),
                }
            }
            if f.body_off == body.len() {
                if with_trailers {
                    let t: Vec<Header> = opts
                        .trailers
                        .iter()
                        .map(|(n, v)| Header::new(n.as_bytes(), v.as_bytes()))
                        .collect();
                    h3c.send_additional_headers(&mut conn, id, &t, true, true)?;
                    f.body_done = true;
                } else if body.is_empty() {
                    if h3c.send_body(&mut conn, id, &[], true).is_ok() {
                        f.body_done = true;
                    }
                } else {
                    f.body_done = true;
                }
            }
        }
        // Events.
        loop {
            match h3c.poll(&mut conn) {
                Ok((id, Event::Headers { list, .. })) => {
                    let Some(f) = inflight.get(&id) else { continue };
                    let r = &mut out.responses[f.index];
                    if r.status == 0 {
                        let s = list.iter().find(|h| h.name() == b":status");
                        r.status = s
                            .and_then(|h| std::str::from_utf8(h.value()).ok()?.parse().ok())
                            .unwrap_or(0);
                        r.headers = list;
                    } else {
                        r.trailers = list;
                    }
                }
                Ok((id, Event::Data)) => {
                    while let Ok(n) = h3c.recv_body(&mut conn, id, &mut buf) {
                        if let Some(f) = inflight.get(&id) {
                            out.responses[f.index].body.extend_from_slice(&buf[..n]);
                        }
                    }
                }
                Ok((id, Event::Finished)) => {
                    if inflight.remove(&id).is_some() {
                        finished += 1;
                    }
                }
                Ok((id, Event::Reset(code))) => {
                    if let Some(f) = inflight.remove(&id) {
                        out.responses[f.index].reset = Some(code);
                        finished += 1;
                    }
                }
                Ok((id, Event::GoAway)) => {
                    out.goaway = Some(id);
                    // Requests at or above the ID will not be processed.
                    for &i in &queue {
                        out.responses[i].reset = Some(0x10b);
                        finished += 1;
                    }
                    queue.clear();
                }
                Ok(_) => {}
                Err(tarte_h3::Error::Done) => break,
                Err(e) => bail!("HTTP/3 error: {e:?}"),
            }
        }
        if finished == opts.urls.len() && close_at.is_none() {
            if opts.send_goaway {
                h3c.send_goaway(&mut conn, 0)?;
            }
            // Give the GOAWAY a moment to be sent and acknowledged.
            close_at = Some(
                Instant::now() + Duration::from_millis(if opts.send_goaway { 200 } else { 0 }),
            );
        }
        if close_at.is_some_and(|t| Instant::now() >= t) {
            out.qpack = h3c.qpack_stats();
            out.peer_settings = h3c.peer_settings_raw().unwrap_or_default().to_vec();
            let _ = conn.close(true, 0x100, b"done");
            closing = true;
        }
    }
    if let Some(e) = conn.peer_error() {
        if e.error_code != 0x100 {
            bail!(
                "peer closed with {:#x}: {}",
                e.error_code,
                String::from_utf8_lossy(&e.reason)
            );
        }
    }
    if finished < opts.urls.len() {
        // A TLS failure of ours (an untrusted certificate) is a local
        // CRYPTO_ERROR, 0x100 + the alert (RFC 9001 §4.8).
        let local = conn.local_error().map(|e| {
            format!(
                ", local error {:#x}: {}",
                e.error_code,
                String::from_utf8_lossy(&e.reason)
            )
        });
        bail!(
            "connection closed with {finished}/{} responses (timed out: {}){}",
            opts.urls.len(),
            conn.is_timed_out(),
            local.unwrap_or_default()
        );
    }
    out.resumed = conn.is_resumed();
    out.session = conn.session().map(<[u8]>::to_vec);
    Ok(out)
}
