//! The HTTP/3 application: a built-in document (`/`), synthetic bodies
//! (`/bytes/N`) and, with a document root, static files.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use tarte_h3::{Event, Header, NameValue};

/// Largest `/bytes/N` body served.
pub const MAX_SYNTHETIC: u64 = 1 << 30;
/// Largest static file served.
pub const MAX_FILE: u64 = 64 << 20;

/// The built-in page served at `/` without a document root.
pub const INDEX_HTML: &[u8] = b"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>tarte</title></head>\n<body><h1>tarte</h1><p>Hello from tarte serve over QUIC and HTTP/3.</p>\n<p><a href=\"/bytes/1000000\">/bytes/1000000</a> answers one million bytes.</p></body></html>\n";

/// The byte at offset `i` of a `/bytes/N` body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// What the application serves, shared by the workers.
#[derive(Debug)]
pub struct App {
    root: Option<PathBuf>,
    /// Shared by every response (`send_body_shared`): the transport holds
    /// references, not copies.
    pattern: Arc<[u8]>,
}

/// A response body being sent.
enum Body {
    Bytes(Arc<[u8]>, usize),
    Pattern { len: u64, off: u64 },
}

/// The HTTP/3 state of one connection.
#[derive(Default)]
pub struct H3State {
    h3: Option<tarte_h3::Connection>,
    requests: HashMap<u64, Vec<Header>>,
    sending: HashMap<u64, Body>,
}

impl H3State {
    /// Whether responses still wait for flow-control credit.
    pub fn is_sending(&self) -> bool {
        !self.sending.is_empty()
    }
}

fn header_value<'a>(list: &'a [Header], name: &[u8]) -> &'a [u8] {
    list.iter()
        .find(|h| h.name() == name)
        .map_or(&b""[..], |h| h.value())
}

impl App {
    /// An application serving `root` (static files) if given.
    pub fn new(root: Option<PathBuf>) -> App {
        App {
            root,
            // Whole periods of 251 so that any offset continues the pattern.
            pattern: (0..251 * 64).map(pattern_byte).collect::<Vec<u8>>().into(),
        }
    }

    /// Drives one connection's HTTP/3 layer: creates it once the handshake
    /// is done, answers finished requests and pushes pending bodies.
    /// Returns how many requests were answered.
    pub fn serve(
        &self,
        conn: &mut tarte::Connection,
        st: &mut H3State,
        h3_config: &tarte_h3::Config,
        scratch: &mut [u8],
    ) -> u64 {
        if st.h3.is_none() {
            if !(conn.is_established() || conn.is_in_early_data()) {
                return 0;
            }
            match tarte_h3::Connection::with_transport(conn, h3_config) {
                Ok(h3) => st.h3 = Some(h3),
                Err(e) => {
                    tracing::debug!(?e, "h3 set-up failed");
                    let _ = conn.close(true, 0x0101, b"h3 set-up");
                    return 0;
                }
            }
        }
        let Some(h3) = st.h3.as_mut() else { return 0 };
        let mut answered = 0;
        loop {
            match h3.poll(conn) {
                Ok((id, Event::Headers { list, .. })) => {
                    // A second HEADERS on a request stream is trailers:
                    // the first (the request) is kept.
                    st.requests.entry(id).or_insert(list);
                }
                Ok((id, Event::Data)) => {
                    // Request bodies are read and discarded.
                    while let Ok(n) = h3.recv_body(conn, id, scratch) {
                        if n == 0 {
                            break;
                        }
                    }
                }
                Ok((id, Event::Finished)) => {
                    if let Some(req) = st.requests.remove(&id) {
                        if let Some(body) = self.respond(h3, conn, id, &req) {
                            st.sending.insert(id, body);
                        }
                        answered += 1;
                    }
                }
                Ok((id, Event::Reset(_))) => {
                    st.requests.remove(&id);
                    st.sending.remove(&id);
                }
                Ok(_) => {}
                Err(tarte_h3::Error::Done) => break,
                Err(e) => {
                    tracing::debug!(?e, "h3 connection error");
                    break;
                }
            }
        }
        self.send_bodies(h3, conn, &mut st.sending);
        answered
    }

    fn respond(
        &self,
        h3: &mut tarte_h3::Connection,
        conn: &mut tarte::Connection,
        id: u64,
        req: &[Header],
    ) -> Option<Body> {
        let method = header_value(req, b":method");
        let path = header_value(req, b":path");
        let path = String::from_utf8_lossy(path);
        let path = path.split(['?', '#']).next().unwrap_or("/");
        let (status, ctype, body) = if method != b"GET" && method != b"HEAD" {
            (
                405,
                "text/plain",
                Body::Bytes(Arc::from(&b"method not allowed\n"[..]), 0),
            )
        } else if let Some(n) = path.strip_prefix("/bytes/") {
            match n.parse::<u64>() {
                Ok(n) if n <= MAX_SYNTHETIC => (
                    200,
                    "application/octet-stream",
                    Body::Pattern { len: n, off: 0 },
                ),
                _ => (
                    400,
                    "text/plain",
                    Body::Bytes(Arc::from(&b"N must be a number up to 1073741824\n"[..]), 0),
                ),
            }
        } else if let Some(root) = &self.root {
            match read_file(root, path) {
                Some(b) => (200, content_type(path), Body::Bytes(Arc::from(b), 0)),
                None => (
                    404,
                    "text/plain",
                    Body::Bytes(Arc::from(&b"not found\n"[..]), 0),
                ),
            }
        } else if path == "/" || path == "/index.html" {
            (
                200,
                "text/html; charset=utf-8",
                Body::Bytes(Arc::from(INDEX_HTML), 0),
            )
        } else {
            (
                404,
                "text/plain",
                Body::Bytes(Arc::from(&b"not found\n"[..]), 0),
            )
        };
        let len = match &body {
            Body::Bytes(b, _) => b.len() as u64,
            Body::Pattern { len, .. } => *len,
        };
        let head_only = method == b"HEAD";
        let list = [
            Header::new(b":status", status.to_string().as_bytes()),
            Header::new(b"server", b"tarte"),
            Header::new(b"content-type", ctype.as_bytes()),
            Header::new(b"content-length", len.to_string().as_bytes()),
        ];
        let fin = head_only || len == 0;
        match h3.send_response(conn, id, &list, fin) {
            Ok(()) if !fin => Some(body),
            Ok(()) => None,
            Err(e) => {
                tracing::debug!(id, ?e, "send_response failed");
                None
            }
        }
    }

    fn send_bodies(
        &self,
        h3: &mut tarte_h3::Connection,
        conn: &mut tarte::Connection,
        sending: &mut HashMap<u64, Body>,
    ) {
        // Bodies are sent by reference (the file read once per request, the
        // synthetic pattern once per worker): the transport copies them
        // only into packets.
        sending.retain(|&id, body| loop {
            let (buf, range, left): (&Arc<[u8]>, std::ops::Range<usize>, u64) = match body {
                Body::Bytes(b, off) => (b, *off..b.len(), (b.len() - *off) as u64),
                Body::Pattern { len, off } => {
                    let start = (*off % 251) as usize;
                    let n = (*len - *off).min((self.pattern.len() - start) as u64) as usize;
                    (&self.pattern, start..start + n, *len - *off)
                }
            };
            let last = range.len() as u64 == left;
            match h3.send_body_shared(conn, id, buf, range, last) {
                Ok(n) => {
                    match body {
                        Body::Bytes(_, off) => *off += n,
                        Body::Pattern { off, .. } => *off += n as u64,
                    }
                    if n as u64 == left {
                        return false;
                    }
                    if n == 0 {
                        return true;
                    }
                }
                Err(tarte_h3::Error::Done) => return true,
                Err(e) => {
                    tracing::debug!(id, ?e, "send_body failed");
                    return false;
                }
            }
        });
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// The file under `root` for a request path; `None` for anything that is
/// not a plain relative path (`..`, absolute, prefixes), is missing, or
/// leaves the root through a symbolic link.
pub fn read_file(root: &Path, path: &str) -> Option<Vec<u8>> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let mut p = root.join(rel);
    if p.is_dir() {
        p = p.join("index.html");
    }
    // Symbolic links inside the root must not lead out of it.
    let real = p.canonicalize().ok()?;
    let real_root = root.canonicalize().ok()?;
    if !real.starts_with(&real_root) {
        return None;
    }
    let meta = std::fs::metadata(&real).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    std::fs::read(real).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_file_refuses_traversal() {
        let dir = std::env::temp_dir().join(format!("tarte-serve-app-{}", std::process::id()));
        let root = dir.join("www");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a.txt"), b"inside").unwrap();
        std::fs::write(dir.join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(dir.join("secret"), root.join("link")).unwrap();
        assert_eq!(read_file(&root, "/a.txt").as_deref(), Some(&b"inside"[..]));
        assert_eq!(read_file(&root, "/../secret"), None);
        assert_eq!(read_file(&root, "/a/../../secret"), None);
        assert_eq!(read_file(&root, "/link"), None);
        assert_eq!(read_file(&root, "//etc/passwd"), None);
        assert_eq!(read_file(&root, "/missing"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
