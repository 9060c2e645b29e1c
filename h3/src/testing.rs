//! An HTTP/3 client and server over tarte's in-memory [`Pipe`] (feature
//! `testing`): the base of the HTTP/3 tests and benches.

use tarte::testing::{LinkConfig, Pipe};

use crate::{Config, Connection, Event, Header, NameValue, Result};

/// ALPN for HTTP/3 (RFC 9114 §3.1).
pub const ALPN: &[u8] = b"h3";

/// A QUIC config for tests: tarte's test config with ALPN `h3`.
pub fn quic_config(is_server: bool) -> Result<tarte::Config> {
    let mut c = tarte::testing::test_config(is_server)?;
    c.set_application_protos(&[ALPN])?;
    Ok(c)
}

/// Request headers for `method` on `path` (authority `localhost`).
pub fn request(method: &str, path: &str) -> Vec<Header> {
    vec![
        Header::new(b":method", method.as_bytes()),
        Header::new(b":scheme", b"https"),
        Header::new(b":authority", b"localhost"),
        Header::new(b":path", path.as_bytes()),
        Header::new(b"user-agent", b"tarte-h3-test"),
    ]
}

/// Response headers with `status`.
pub fn response(status: u16) -> Vec<Header> {
    vec![
        Header::new(b":status", status.to_string().as_bytes()),
        Header::new(b"server", b"tarte-h3-test"),
    ]
}

/// The value of header `name` in `list`.
pub fn header<'a, T: NameValue>(list: &'a [T], name: &str) -> Option<&'a [u8]> {
    list.iter()
        .find(|h| h.name() == name.as_bytes())
        .map(|h| h.value())
}

/// A client and a server HTTP/3 connection over one [`Pipe`].
pub struct Session {
    /// The QUIC pair.
    pub pipe: Pipe,
    /// The client's HTTP/3 connection.
    pub client: Connection,
    /// The server's HTTP/3 connection.
    pub server: Connection,
}

impl Session {
    /// Default configs on both sides, a clean 10 ms link.
    pub fn new() -> Result<Session> {
        let h3 = Config::new()?;
        Session::with_configs(
            &mut quic_config(false)?,
            &mut quic_config(true)?,
            &h3,
            &h3,
            LinkConfig::default(),
        )
    }

    /// A session with the given configs; the link config applies to both
    /// directions. Runs the handshake and the SETTINGS exchange.
    pub fn with_configs(
        client_quic: &mut tarte::Config,
        server_quic: &mut tarte::Config,
        client_h3: &Config,
        server_h3: &Config,
        link: LinkConfig,
    ) -> Result<Session> {
        let mut pipe = Pipe::with_configs(client_quic, server_quic, link.clone(), link)?;
        pipe.handshake()?;
        let client = Connection::with_transport(&mut pipe.client, client_h3)?;
        let server = Connection::with_transport(&mut pipe.server, server_h3)?;
        let mut s = Session {
            pipe,
            client,
            server,
        };
        // Exchange SETTINGS (and drain nothing else).
        for _ in 0..100 {
            s.pipe.advance()?;
            let _ = s.poll_client();
            let _ = s.poll_server();
            if s.client.peer_settings_raw().is_some() && s.server.peer_settings_raw().is_some() {
                break;
            }
        }
        Ok(s)
    }

    /// Whether no datagram is in flight either way (after sending what is
    /// ready): advancing further would only fire timers.
    pub fn quiet(&mut self) -> Result<bool> {
        self.pipe.flush()?;
        Ok(self.pipe.c2s.next_due().is_none() && self.pipe.s2c.next_due().is_none())
    }

    /// One pipe step.
    pub fn advance(&mut self) -> Result<bool> {
        Ok(self.pipe.advance()?)
    }

    /// The client's next event.
    pub fn poll_client(&mut self) -> Result<(u64, Event)> {
        self.client.poll(&mut self.pipe.client)
    }

    /// The server's next event.
    pub fn poll_server(&mut self) -> Result<(u64, Event)> {
        self.server.poll(&mut self.pipe.server)
    }

    /// Sends a request from the client.
    pub fn send_request<T: NameValue>(&mut self, headers: &[T], fin: bool) -> Result<u64> {
        self.client
            .send_request(&mut self.pipe.client, headers, fin)
    }

    /// Sends a response from the server.
    pub fn send_response<T: NameValue>(&mut self, id: u64, headers: &[T], fin: bool) -> Result<()> {
        self.server
            .send_response(&mut self.pipe.server, id, headers, fin)
    }

    /// Sends body bytes from the client.
    pub fn client_send_body(&mut self, id: u64, body: &[u8], fin: bool) -> Result<usize> {
        self.client.send_body(&mut self.pipe.client, id, body, fin)
    }

    /// Sends body bytes from the server.
    pub fn server_send_body(&mut self, id: u64, body: &[u8], fin: bool) -> Result<usize> {
        self.server.send_body(&mut self.pipe.server, id, body, fin)
    }

    /// Reads body bytes on the client.
    pub fn client_recv_body(&mut self, id: u64, out: &mut [u8]) -> Result<usize> {
        self.client.recv_body(&mut self.pipe.client, id, out)
    }

    /// Reads body bytes on the server.
    pub fn server_recv_body(&mut self, id: u64, out: &mut [u8]) -> Result<usize> {
        self.server.recv_body(&mut self.pipe.server, id, out)
    }

    /// Advances up to `steps` times, collecting every server event, until
    /// a step brings no event and nothing is in flight. Bodies are left unread.
    pub fn server_events(&mut self, steps: usize) -> Result<Vec<(u64, Event)>> {
        collect(self, steps, false)
    }

    /// As [`Self::server_events`], for the client.
    pub fn client_events(&mut self, steps: usize) -> Result<Vec<(u64, Event)>> {
        collect(self, steps, true)
    }

    /// Sends body bytes from one side until all of `body` is taken (with
    /// FIN), advancing the pipe while the stream is blocked.
    pub fn send_all(&mut self, client: bool, id: u64, body: &[u8], steps: usize) -> Result<()> {
        let mut off = 0;
        for _ in 0..steps {
            let r = if client {
                self.client_send_body(id, &body[off..], true)
            } else {
                self.server_send_body(id, &body[off..], true)
            };
            match r {
                Ok(n) => {
                    off += n;
                    if off == body.len() {
                        return Ok(());
                    }
                }
                Err(crate::Error::Done) => {}
                Err(e) => return Err(e),
            }
            self.advance()?;
        }
        Err(crate::Error::Done)
    }

    /// Reads a whole body on one side: advances and reads until Finished;
    /// returns the body and any trailers.
    pub fn recv_all(
        &mut self,
        client: bool,
        id: u64,
        steps: usize,
    ) -> Result<(Vec<u8>, Option<Vec<Header>>)> {
        self.transfer(!client, id, &[], steps)
    }

    /// Sends `body` (with FIN) from one side while the other side reads it,
    /// until the reader sees Finished; returns what the reader got and any
    /// trailers. An empty `body` sends nothing (the sender already did).
    pub fn transfer(
        &mut self,
        from_client: bool,
        id: u64,
        body: &[u8],
        steps: usize,
    ) -> Result<(Vec<u8>, Option<Vec<Header>>)> {
        let mut got = Vec::new();
        let mut trailers = None;
        let mut buf = vec![0u8; 65_536];
        let mut off = 0;
        let reader_is_client = !from_client;
        for _ in 0..steps {
            while off < body.len() {
                let r = if from_client {
                    self.client_send_body(id, &body[off..], true)
                } else {
                    self.server_send_body(id, &body[off..], true)
                };
                match r {
                    Ok(n) => off += n,
                    Err(crate::Error::Done) => break,
                    Err(e) => return Err(e),
                }
            }
            if self.read_step(reader_is_client, id, &mut buf, &mut got, &mut trailers)? {
                return Ok((got, trailers));
            }
            self.advance()?;
        }
        Err(crate::Error::Done)
    }

    /// Reads what is there for `id` and polls; true once Finished.
    fn read_step(
        &mut self,
        client: bool,
        id: u64,
        buf: &mut [u8],
        got: &mut Vec<u8>,
        trailers: &mut Option<Vec<Header>>,
    ) -> Result<bool> {
        loop {
            // Read whatever is there, even if an earlier poll took the Data
            // event.
            loop {
                let r = if client {
                    self.client_recv_body(id, buf)
                } else {
                    self.server_recv_body(id, buf)
                };
                match r {
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(crate::Error::Done) => break,
                    Err(e) => return Err(e),
                }
            }
            let ev = if client {
                self.poll_client()
            } else {
                self.poll_server()
            };
            match ev {
                // Trailers carry no pseudo-header fields.
                Ok((sid, Event::Headers { list, .. }))
                    if sid == id && !list.iter().any(|h| h.name().starts_with(b":")) =>
                {
                    *trailers = Some(list)
                }
                Ok((sid, Event::Finished)) if sid == id => return Ok(true),
                Ok((sid, Event::Reset(code))) if sid == id => {
                    tracing::debug!(sid, code, "stream reset");
                    return Err(crate::Error::RequestCancelled);
                }
                Ok(_) => {}
                Err(crate::Error::Done) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }
}

fn collect(s: &mut Session, steps: usize, client: bool) -> Result<Vec<(u64, Event)>> {
    let mut out = Vec::new();
    for _ in 0..steps {
        let before = out.len();
        loop {
            let ev = if client {
                s.poll_client()
            } else {
                s.poll_server()
            };
            match ev {
                Ok(e) => out.push(e),
                Err(crate::Error::Done) => break,
                Err(e) => return Err(e),
            }
        }
        // Nothing in flight: only timers are left (and the idle timeout
        // would close the connection).
        if out.len() == before && s.quiet()? {
            break;
        }
        if !s.advance()? {
            break;
        }
    }
    Ok(out)
}
