//! hq-interop (HTTP/0.9 over QUIC, ALPN `hq-interop`): the protocol of the
//! QUIC interop runner. A request is `GET /path\r\n` on a client-initiated
//! bidirectional stream; the response is the file's bytes, then FIN.
//!
//! This code is shared by `examples/server.rs`, `examples/client.rs` and the
//! interop tests of `tarte-tests` (which include this file with `#[path]`),
//! so the tests run exactly the examples' code. One thread, plain std UDP
//! sockets, no pacing (datagrams leave as soon as `send` returns them).

pub mod client;
pub mod server;
pub mod token;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

/// The ALPN of hq-interop.
pub const ALPN: &[u8] = b"hq-interop";

/// Length of the connection IDs we choose (short headers carry no length).
pub const CID_LEN: usize = 16;

/// Largest UDP payload we send (fits a 1500-byte MTU path with room for
/// IPv6 and tunnels).
pub const MAX_DATAGRAM_SIZE: usize = 1350;

/// Receive buffer size: the largest UDP payload.
pub const RECV_BUF_LEN: usize = 65_535;

/// How many datagrams one wake-up drains before the loop services timers
/// and sends (keeps ACKs flowing under load).
const RECV_BATCH: usize = 64;

/// Longest request line we accept, `GET ` and CRLF included.
pub const MAX_REQUEST_LEN: usize = 4096;

/// Starts `conn`'s qlog in `dir` (`<trace id>-<role>.sqlog`, as
/// quiche's tools name them for `QLOGDIR`).
pub fn start_qlog(
    conn: &mut tarte::Connection,
    dir: &std::path::Path,
    role: &str,
) -> anyhow::Result<()> {
    let path = dir.join(format!("{}-{role}.sqlog", conn.trace_id()));
    let f = std::fs::File::create(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    conn.set_qlog(
        Box::new(io::BufWriter::new(f)),
        format!("tarte hq-interop {role}"),
        format!("tarte {role} connection {}", conn.trace_id()),
    );
    Ok(())
}

/// A key log writer appending to `path` (the NSS key log format that
/// `SSLKEYLOGFILE` names; `Config::log_keys` must be on).
pub fn keylog_writer(path: &std::path::Path) -> anyhow::Result<Box<dyn io::Write + Send + Sync>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Box::new(f))
}

/// The transport settings both hq-interop endpoints use: ALPN, idle
/// timeout, datagram sizes and flow-control windows; `max_streams_bidi`
/// is what the peer may open.
pub fn apply_transport_settings(
    c: &mut tarte::Config,
    idle_timeout_ms: u64,
    max_streams_bidi: u64,
) -> tarte::Result<()> {
    c.set_application_protos(&[ALPN])?;
    c.set_max_idle_timeout(idle_timeout_ms);
    c.set_max_send_udp_payload_size(MAX_DATAGRAM_SIZE);
    c.set_max_recv_udp_payload_size(MAX_DATAGRAM_SIZE);
    c.set_initial_max_data(16 * 1024 * 1024);
    c.set_initial_max_stream_data_bidi_local(2 * 1024 * 1024);
    c.set_initial_max_stream_data_bidi_remote(64 * 1024);
    c.set_initial_max_stream_data_uni(64 * 1024);
    c.set_initial_max_streams_bidi(max_streams_bidi);
    c.set_initial_max_streams_uni(16);
    // Room for the peer's spare connection IDs, which a client needs to
    // migrate (RFC 9000 §9.5) and a server to follow it.
    c.set_active_connection_id_limit(4);
    Ok(())
}

/// With `Some(max)`, path MTU discovery up to `max` bytes of UDP payload
/// (datagrams up to `max` are also accepted); `None` keeps the fixed
/// [`MAX_DATAGRAM_SIZE`].
pub fn apply_pmtud(c: &mut tarte::Config, max: Option<usize>) {
    if let Some(max) = max {
        c.set_max_send_udp_payload_size(max);
        c.set_max_recv_udp_payload_size(max);
        c.discover_pmtu(true);
    }
}

/// Waits up to `wait` for a datagram, then drains up to a batch of queued
/// ones without waiting, handing each to `f`. Returns how many arrived.
pub fn recv_batch(
    socket: &UdpSocket,
    buf: &mut [u8],
    wait: Duration,
    mut f: impl FnMut(&mut [u8], SocketAddr),
) -> io::Result<usize> {
    // A zero read timeout means "block forever" to std: wait at least 1 ms.
    socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
    let (n, from) = match socket.recv_from(buf) {
        Ok(x) => x,
        Err(e) if is_wait_over(&e) => return Ok(0),
        Err(e) => return Err(e),
    };
    f(&mut buf[..n], from);
    let mut count = 1;
    socket.set_nonblocking(true)?;
    let res = loop {
        if count >= RECV_BATCH {
            break Ok(count);
        }
        match socket.recv_from(buf) {
            Ok((n, from)) => {
                f(&mut buf[..n], from);
                count += 1;
            }
            Err(e) if is_wait_over(&e) => break Ok(count),
            Err(e) => break Err(e),
        }
    };
    socket.set_nonblocking(false)?;
    res
}

fn is_wait_over(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Datagrams the examples take from the connection per call
/// (`send_batch`: the header-protection masks of a batch come from one
/// AES call).
const SEND_BATCH: usize = 16;

/// Sends every datagram the connection has ready, written in batches
/// (`send_batch`) and sent one `send_to` each. Pacing (`SendInfo::at`) is
/// ignored: the examples send at once. Returns the datagrams sent.
pub fn flush(
    socket: &UdpSocket,
    conn: &mut tarte::Connection,
    out: &mut [u8],
) -> anyhow::Result<usize> {
    flush_paths(socket, None, conn, out)
}

/// [`flush`] where datagrams from `other`'s address (a path being probed)
/// leave through `other`'s socket.
pub fn flush_paths(
    primary: &UdpSocket,
    other: Option<(&UdpSocket, SocketAddr)>,
    conn: &mut tarte::Connection,
    out: &mut [u8],
) -> anyhow::Result<usize> {
    let mut sent = 0;
    loop {
        let b = match conn.send_batch(out, SEND_BATCH) {
            Ok(b) => b,
            Err(tarte::Error::Done) => return Ok(sent),
            Err(e) => {
                // The connection is unusable; close it so that it ends.
                tracing::warn!(trace_id = conn.trace_id(), error = %e, "send failed");
                let _ = conn.close(false, 0x1, b"internal error");
                return Ok(sent);
            }
        };
        let socket = match other {
            Some((s, from)) if from == b.info.from => s,
            _ => primary,
        };
        for d in out[..b.len].chunks(b.segment_size) {
            match socket.send_to(d, b.info.to) {
                Ok(_) => sent += 1,
                // The kernel queue is full: the datagram is lost, recovery
                // will resend its frames.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tracing::debug!("send_to would block, datagram dropped");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A parsed `https://host[:port]/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port (443 when absent).
    pub port: u16,
    /// Path starting with `/`, query included.
    pub path: String,
}

impl Url {
    /// Parses an `https://` URL.
    pub fn parse(s: &str) -> anyhow::Result<Url> {
        let rest = s
            .strip_prefix("https://")
            .ok_or_else(|| anyhow::anyhow!("{s}: only https:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, p) = r
                .split_once(']')
                .ok_or_else(|| anyhow::anyhow!("{s}: unterminated IPv6 literal"))?;
            (h, p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            anyhow::bail!("{s}: empty host");
        }
        let port = match port {
            Some(p) => p
                .parse()
                .map_err(|_| anyhow::anyhow!("{s}: bad port {p:?}"))?,
            None => 443,
        };
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            anyhow::bail!("{s}: the path has spaces or control characters");
        }
        Ok(Url {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// The first address the host resolves to.
    pub fn socket_addr(&self) -> anyhow::Result<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{}: no address", self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::Url;

    #[test]
    fn parses_urls() {
        let u = Url::parse("https://127.0.0.1:4433/a/b.txt").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 4433, "/a/b.txt")
        );
        let u = Url::parse("https://[::1]:8443").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8443, "/")
        );
        let u = Url::parse("https://example.com/x").unwrap();
        assert_eq!(u.port, 443);
        assert!(Url::parse("http://a/b").is_err());
        assert!(Url::parse("https://a:99999/").is_err());
        assert!(Url::parse("https://a/b c").is_err());
    }
}
