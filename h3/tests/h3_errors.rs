//! Bad input from a raw peer (RFC 9114 §8, RFC 9204 §6): every case ends in
//! the error code the RFC names, sent in CONNECTION_CLOSE (or
//! RESET_STREAM for stream errors), never a panic.

use tarte::testing::Pipe;
use tarte_h3::testing::{quic_config, request};
use tarte_h3::{Config, Error, Event, Header};

/// A raw QUIC client (writes bytes by hand) against an HTTP/3 server, or
/// the other way round.
struct Raw {
    pipe: Pipe,
    h3: tarte_h3::Connection,
    /// Whether the HTTP/3 side is the server.
    h3_is_server: bool,
    /// Body bytes the HTTP/3 side read, all streams.
    body: Vec<u8>,
}

const CONTROL_SETTINGS: &[u8] = &[0x00, 0x04, 0x00];

fn varint(v: u64) -> Vec<u8> {
    let mut b = [0u8; 8];
    let mut o = tarte::octets::OctetsMut::with_slice(&mut b);
    o.put_varint(v).unwrap();
    let n = o.off();
    b[..n].to_vec()
}

fn frame(ty: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = varint(ty);
    v.extend(varint(payload.len() as u64));
    v.extend_from_slice(payload);
    v
}

/// A static-only QPACK section for `headers`.
fn section(headers: &[Header]) -> Vec<u8> {
    let mut e = tarte_h3::qpack::Encoder::new();
    let mut out = Vec::new();
    e.encode(0, headers, &mut out).unwrap();
    out
}

impl Raw {
    fn server(cfg: &Config) -> Raw {
        let mut pipe = Pipe::with_configs(
            &mut quic_config(false).unwrap(),
            &mut quic_config(true).unwrap(),
            Default::default(),
            Default::default(),
        )
        .unwrap();
        pipe.handshake().unwrap();
        let h3 = tarte_h3::Connection::with_transport(&mut pipe.server, cfg).unwrap();
        Raw {
            pipe,
            h3,
            h3_is_server: true,
            body: Vec::new(),
        }
    }

    fn client() -> Raw {
        let mut pipe = Pipe::with_configs(
            &mut quic_config(false).unwrap(),
            &mut quic_config(true).unwrap(),
            Default::default(),
            Default::default(),
        )
        .unwrap();
        pipe.handshake().unwrap();
        let h3 = tarte_h3::Connection::with_transport(&mut pipe.client, &Config::new().unwrap())
            .unwrap();
        Raw {
            pipe,
            h3,
            h3_is_server: false,
            body: Vec::new(),
        }
    }

    fn raw_conn(&mut self) -> &mut tarte::Connection {
        if self.h3_is_server {
            &mut self.pipe.client
        } else {
            &mut self.pipe.server
        }
    }

    fn h3_conn(&mut self) -> &mut tarte::Connection {
        if self.h3_is_server {
            &mut self.pipe.server
        } else {
            &mut self.pipe.client
        }
    }

    /// Writes raw bytes from the non-HTTP/3 side.
    fn send(&mut self, id: u64, bytes: &[u8], fin: bool) -> &mut Self {
        let n = self.raw_conn().stream_send(id, bytes, fin).unwrap();
        assert_eq!(n, bytes.len());
        self
    }

    /// Runs the pipe, polling the HTTP/3 side; returns its events and the
    /// first error `poll` gave.
    fn run(&mut self) -> (Vec<(u64, Event)>, Option<Error>) {
        let mut events = Vec::new();
        let mut err = None;
        for _ in 0..200 {
            let _ = self.pipe.advance();
            loop {
                let conn = if self.h3_is_server {
                    &mut self.pipe.server
                } else {
                    &mut self.pipe.client
                };
                match self.h3.poll(conn) {
                    Ok((id, Event::Data)) => {
                        // Drain bodies so that later frames get parsed.
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = self.h3.recv_body(conn, id, &mut buf) {
                            self.body.extend_from_slice(&buf[..n]);
                        }
                        events.push((id, Event::Data));
                    }
                    Ok(e) => events.push(e),
                    Err(Error::Done) => break,
                    Err(e) => {
                        err.get_or_insert(e);
                        break;
                    }
                }
            }
            self.pipe.flush().unwrap();
            if self.pipe.c2s.next_due().is_none() && self.pipe.s2c.next_due().is_none() {
                break;
            }
        }
        (events, err)
    }

    /// The application close code the HTTP/3 side sent, as the raw peer
    /// received it.
    fn close_code(&mut self) -> Option<u64> {
        let local = self
            .h3_conn()
            .local_error()
            .map(|e| (e.is_app, e.error_code));
        let seen = self
            .raw_conn()
            .peer_error()
            .map(|e| (e.is_app, e.error_code));
        assert_eq!(local, seen, "the peer saw the close");
        local.map(|(app, code)| {
            assert!(app);
            code
        })
    }
}

/// Sends `bytes` on the raw client's control stream (after its type and
/// an empty SETTINGS) and expects the server to close with `code`.
fn control_case(extra: &[u8], code: u64, err: Error) {
    let mut r = Raw::server(&Config::new().unwrap());
    let mut b = CONTROL_SETTINGS.to_vec();
    b.extend_from_slice(extra);
    r.send(2, &b, false);
    let (_, e) = r.run();
    assert_eq!(e, Some(err));
    assert_eq!(r.close_code(), Some(code));
}

#[test]
fn data_before_headers() {
    let mut r = Raw::server(&Config::new().unwrap());
    r.send(2, CONTROL_SETTINGS, false)
        .send(0, &frame(0x00, b"abc"), false);
    let (_, e) = r.run();
    assert_eq!(e, Some(Error::FrameUnexpected));
    assert_eq!(r.close_code(), Some(0x105));
}

#[test]
fn data_after_trailers_and_headers_after_trailers() {
    for late in [
        frame(0x00, b"x"),
        frame(0x01, &section(&[Header::new(b"a", b"b")])),
    ] {
        let mut r = Raw::server(&Config::new().unwrap());
        let mut b = frame(0x01, &section(&request("POST", "/")));
        b.extend(frame(0x00, b"body"));
        b.extend(frame(0x01, &section(&[Header::new(b"x-t", b"1")])));
        b.extend(late);
        r.send(2, CONTROL_SETTINGS, false).send(0, &b, false);
        let (ev, e) = r.run();
        assert_eq!(e, Some(Error::FrameUnexpected), "{ev:?}");
        assert_eq!(r.close_code(), Some(0x105));
    }
}

#[test]
fn second_settings() {
    control_case(&[0x04, 0x00], 0x105, Error::FrameUnexpected);
}

#[test]
fn missing_settings() {
    let mut r = Raw::server(&Config::new().unwrap());
    r.send(2, &[0x00, 0x07, 0x01, 0x00], false);
    let (_, e) = r.run();
    assert_eq!(e, Some(Error::MissingSettings));
    assert_eq!(r.close_code(), Some(0x10a));
}

#[test]
fn request_frames_on_the_control_stream() {
    control_case(&frame(0x00, b"x"), 0x105, Error::FrameUnexpected);
    control_case(&frame(0x01, b"x"), 0x105, Error::FrameUnexpected);
    control_case(&frame(0x05, b"\x00x"), 0x105, Error::FrameUnexpected);
    // HTTP/2 PING (§7.2.8).
    control_case(&frame(0x06, b""), 0x105, Error::FrameUnexpected);
}

#[test]
fn malformed_control_frames() {
    // GOAWAY with a trailing byte (§7.1: exactly the fields).
    control_case(&frame(0x07, &[0x00, 0x00]), 0x106, Error::FrameError);
    // PRIORITY_UPDATE without its ID.
    control_case(&frame(0xf0700, &[]), 0x106, Error::FrameError);
    // A frame bigger than we buffer.
    control_case(&[0x07, 0x80, 0x01, 0x00, 0x00], 0x107, Error::ExcessiveLoad);
    // PRIORITY_UPDATE for a unidirectional stream.
    control_case(&frame(0xf0700, b"\x02u=1"), 0x108, Error::IdError);
    // GOAWAY IDs may not grow.
    let mut two = frame(0x07, &[0x00]);
    two.extend(frame(0x07, &[0x04]));
    control_case(&two, 0x108, Error::IdError);
}

#[test]
fn bad_settings() {
    let mut r = Raw::server(&Config::new().unwrap());
    // HTTP/2 SETTINGS_ENABLE_PUSH (§7.2.4.1).
    r.send(2, &[0x00, 0x04, 0x02, 0x02, 0x01], false);
    assert_eq!(r.run().1, Some(Error::SettingsError));
    assert_eq!(r.close_code(), Some(0x109));
    // Duplicate identifier.
    let mut r = Raw::server(&Config::new().unwrap());
    r.send(2, &[0x00, 0x04, 0x04, 0x06, 0x01, 0x06, 0x02], false);
    assert_eq!(r.run().1, Some(Error::SettingsError));
    assert_eq!(r.close_code(), Some(0x109));
    // H3_DATAGRAM without QUIC datagrams (RFC 9297 §2.1.1).
    let mut r = Raw::server(&Config::new().unwrap());
    r.send(2, &[0x00, 0x04, 0x02, 0x33, 0x01], false);
    assert_eq!(r.run().1, Some(Error::SettingsError));
    assert_eq!(r.close_code(), Some(0x109));
}

#[test]
fn closed_critical_streams() {
    // Control stream FIN.
    let mut r = Raw::server(&Config::new().unwrap());
    r.send(2, CONTROL_SETTINGS, true);
    assert_eq!(r.run().1, Some(Error::ClosedCriticalStream));
    assert_eq!(r.close_code(), Some(0x104));
    // QPACK encoder stream FIN.
    let mut r = Raw::server(&Config::new().unwrap());
    r.send(2, CONTROL_SETTINGS, false).send(6, &[0x02], true);
    assert_eq!(r.run().1, Some(Error::ClosedCriticalStream));
    assert_eq!(r.close_code(), Some(0x104));
    // QPACK decoder stream reset.
    let mut r = Raw::server(&Config::new().unwrap());
    r.send(2, CONTROL_SETTINGS, false).send(10, &[0x03], false);
    r.run();
    r.pipe
        .client
        .stream_shutdown(10, tarte::Shutdown::Write, 0x100)
        .unwrap();
    assert_eq!(r.run().1, Some(Error::ClosedCriticalStream));
    assert_eq!(r.close_code(), Some(0x104));
}

#[test]
fn second_critical_stream_and_client_push() {
    for (ty, code, err) in [
        (0x00, 0x103, Error::StreamCreationError),
        (0x01, 0x103, Error::StreamCreationError),
    ] {
        let mut r = Raw::server(&Config::new().unwrap());
        r.send(2, CONTROL_SETTINGS, false).send(6, &[ty], false);
        assert_eq!(r.run().1, Some(err));
        assert_eq!(r.close_code(), Some(code));
    }
    let mut r = Raw::server(&Config::new().unwrap());
    r.send(2, CONTROL_SETTINGS, false)
        .send(6, &[0x02], false)
        .send(10, &[0x02], false);
    assert_eq!(r.run().1, Some(Error::StreamCreationError));
    assert_eq!(r.close_code(), Some(0x103));
}

#[test]
fn qpack_encoder_instruction_outside_the_table() {
    let mut r = Raw::server(&Config::new().unwrap());
    // Insert With Name Reference to dynamic entry 5 of an empty table.
    r.send(2, CONTROL_SETTINGS, false)
        .send(6, &[0x02, 0x85, 0x00], false);
    assert_eq!(r.run().1, Some(Error::QpackEncoderStreamError));
    assert_eq!(r.close_code(), Some(0x201));
    // Set Dynamic Table Capacity above our maximum.
    let mut r = Raw::server(&Config::new().unwrap());
    r.send(2, CONTROL_SETTINGS, false)
        .send(6, &[0x02, 0x3f, 0xe1, 0x3f], false);
    assert_eq!(r.run().1, Some(Error::QpackEncoderStreamError));
    assert_eq!(r.close_code(), Some(0x201));
}

#[test]
fn qpack_decoder_instruction_without_section() {
    let mut r = Raw::server(&Config::new().unwrap());
    // Section Acknowledgment for stream 0, which we never encoded.
    r.send(2, CONTROL_SETTINGS, false)
        .send(6, &[0x03, 0x80], false);
    assert_eq!(r.run().1, Some(Error::QpackDecoderStreamError));
    assert_eq!(r.close_code(), Some(0x202));
}

#[test]
fn field_section_references_outside_the_table() {
    for block in [
        // RIC 0, indexed dynamic field line, relative index 0.
        vec![0x00, 0x00, 0x80],
        // Static index 163 (the table has 99 entries).
        vec![0x00, 0x00, 0xff, 0x64],
        // Encoded Required Insert Count beyond 2 * MaxEntries.
        vec![0xff, 0x10, 0x00, 0xd1],
    ] {
        let mut r = Raw::server(&Config::new().unwrap());
        r.send(2, CONTROL_SETTINGS, false)
            .send(0, &frame(0x01, &block), true);
        assert_eq!(
            r.run().1,
            Some(Error::QpackDecompressionFailed),
            "{block:02x?}"
        );
        assert_eq!(r.close_code(), Some(0x200));
    }
}

#[test]
fn blocked_streams_limit() {
    let mut cfg = Config::new().unwrap();
    cfg.set_qpack_blocked_streams(1);
    let mut r = Raw::server(&cfg);
    // Two sections needing insert 1 (encoded RIC 2), which never comes.
    let block = [0x02, 0x00, 0x80];
    r.send(2, CONTROL_SETTINGS, false)
        .send(0, &frame(0x01, &block), true);
    let (ev, e) = r.run();
    assert!(ev.is_empty() && e.is_none(), "one blocked stream is fine");
    r.send(4, &frame(0x01, &block), true);
    assert_eq!(r.run().1, Some(Error::QpackDecompressionFailed));
    assert_eq!(r.close_code(), Some(0x200));
}

#[test]
fn blocked_section_decodes_when_inserts_arrive() {
    let mut r = Raw::server(&Config::new().unwrap());
    // Section: RIC 1 (encoded 2), base 1, indexed dynamic relative 0.
    r.send(2, CONTROL_SETTINGS, false)
        .send(0, &frame(0x01, &[0x02, 0x00, 0x80]), true);
    let (ev, e) = r.run();
    assert!(ev.is_empty() && e.is_none());
    // Now the insert: capacity 100, then a literal-name insert of
    // ":method: GET"... but a full request needs more; insert "x: y" and
    // send a complete request referencing it.
    let mut enc = vec![0x02, 0x3f, 0x45]; // Set Dynamic Table Capacity 100
    enc.extend([0x40 | 0x07]);
    enc.extend(b":method");
    enc.extend([0x03]);
    enc.extend(b"GET");
    r.send(6, &enc, false);
    let (ev, e) = r.run();
    assert!(e.is_none(), "{e:?}");
    // The section decodes to just ":method: GET", a malformed request:
    // reset with H3_MESSAGE_ERROR, connection up, and the section was
    // acknowledged to the peer's encoder.
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(r.h3.qpack_stats().decoder_insert_count, 1);
    let mut buf = [0u8; 10];
    assert_eq!(
        r.pipe.client.stream_recv(0, &mut buf),
        Err(tarte::Error::StreamReset(0x10e))
    );
    assert_eq!(r.close_code(), None);
}

#[test]
fn header_block_over_the_limit_resets_the_stream() {
    let mut cfg = Config::new().unwrap();
    cfg.set_max_field_section_size(200);
    // Decoded size over the limit (encoded size under the HEADERS cap).
    let mut req = request("GET", "/");
    req.push(Header::new(b"x-big", &[b'a'; 250]));
    let mut r = Raw::server(&cfg);
    r.send(2, CONTROL_SETTINGS, false)
        .send(0, &frame(0x01, &section(&req)), true);
    let (ev, e) = r.run();
    assert!(ev.is_empty() && e.is_none(), "{ev:?} {e:?}");
    let mut buf = [0u8; 10];
    assert_eq!(
        r.pipe.client.stream_recv(0, &mut buf),
        Err(tarte::Error::StreamReset(0x107))
    );
    // HEADERS frame length over the cap: rejected before buffering.
    r.send(4, &[0x01, 0x80, 0x10, 0x00, 0x00], false);
    let (ev, e) = r.run();
    assert!(ev.is_empty() && e.is_none(), "{ev:?} {e:?}");
    assert_eq!(
        r.pipe.client.stream_recv(4, &mut buf),
        Err(tarte::Error::StreamReset(0x107))
    );
    assert_eq!(r.close_code(), None);
    // A small request still works (request() alone is 232 bytes by the
    // RFC 9114 §4.2.2 count).
    let small = &request("GET", "/ok")[..4];
    r.send(8, &frame(0x01, &section(small)), true);
    let (ev, e) = r.run();
    assert!(
        ev.iter()
            .any(|(i, e)| *i == 8 && matches!(e, Event::Headers { .. })),
        "{ev:?} {e:?}"
    );
}

#[test]
fn truncated_frame_at_stream_end() {
    let mut r = Raw::server(&Config::new().unwrap());
    // HEADERS claiming 10 bytes, 2 sent, then FIN.
    r.send(2, CONTROL_SETTINGS, false)
        .send(0, &[0x01, 0x0a, 0x00, 0x00], true);
    assert_eq!(r.run().1, Some(Error::FrameError));
    assert_eq!(r.close_code(), Some(0x106));
    // A frame header cut in the middle.
    let mut r = Raw::server(&Config::new().unwrap());
    let mut b = frame(0x01, &section(&request("POST", "/")));
    b.extend([0x00, 0x80]);
    r.send(2, CONTROL_SETTINGS, false).send(0, &b, true);
    assert_eq!(r.run().1, Some(Error::FrameError));
    assert_eq!(r.close_code(), Some(0x106));
}

#[test]
fn control_frames_on_a_request_stream() {
    for f in [
        frame(0x04, b""),
        frame(0x07, b"\x00"),
        frame(0x0d, b"\x00"),
        frame(0x03, b"\x00"),
    ] {
        let mut r = Raw::server(&Config::new().unwrap());
        let mut b = frame(0x01, &section(&request("GET", "/")));
        b.extend(f);
        r.send(2, CONTROL_SETTINGS, false).send(0, &b, false);
        assert_eq!(r.run().1, Some(Error::FrameUnexpected));
        assert_eq!(r.close_code(), Some(0x105));
    }
}

#[test]
fn unknown_frames_and_stream_types_are_ignored() {
    let mut r = Raw::server(&Config::new().unwrap());
    let mut ctrl = CONTROL_SETTINGS.to_vec();
    ctrl.extend(frame(0x21, b"grease"));
    ctrl.extend(frame(0x1234, &[0u8; 3000]));
    let mut req = frame(0x21 + 0x1f * 7, b"xyz");
    req.extend(frame(0x01, &section(&request("POST", "/u"))));
    req.extend(frame(0x2f, b""));
    req.extend(frame(0x00, b"body"));
    req.extend(frame(0x40, b"more grease"));
    r.send(2, &ctrl, false)
        .send(6, &[0x21, 1, 2, 3], true)
        .send(10, &[0x54, 9, 9], false)
        .send(0, &req, true);
    let (ev, e) = r.run();
    assert_eq!(e, None);
    assert!(
        matches!(
            &ev[0],
            (
                0,
                Event::Headers {
                    more_frames: true,
                    ..
                }
            )
        ),
        "{ev:?}"
    );
    assert_eq!(ev[1..], [(0, Event::Data), (0, Event::Finished)]);
    // The unknown frames around the DATA frame were skipped, not read as
    // body.
    assert_eq!(r.body, b"body");
    assert_eq!(r.close_code(), None);
}

#[test]
fn server_initiated_bidi_and_push_at_the_client() {
    let mut r = Raw::client();
    r.send(3, CONTROL_SETTINGS, false)
        .send(1, &frame(0x01, b""), false);
    assert_eq!(r.run().1, Some(Error::StreamCreationError));
    assert_eq!(r.close_code(), Some(0x103));
    // A push stream although we never sent MAX_PUSH_ID.
    let mut r = Raw::client();
    r.send(3, CONTROL_SETTINGS, false)
        .send(7, &[0x01, 0x00], false);
    assert_eq!(r.run().1, Some(Error::IdError));
    assert_eq!(r.close_code(), Some(0x108));
    // MAX_PUSH_ID and PRIORITY_UPDATE are client-to-server only.
    for f in [frame(0x0d, b"\x00"), frame(0xf0700, b"\x00u=1")] {
        let mut r = Raw::client();
        let mut b = CONTROL_SETTINGS.to_vec();
        b.extend(f);
        r.send(3, &b, false);
        assert_eq!(r.run().1, Some(Error::FrameUnexpected));
        assert_eq!(r.close_code(), Some(0x105));
    }
    // GOAWAY with a stream ID that is not a client request stream.
    let mut r = Raw::client();
    let mut b = CONTROL_SETTINGS.to_vec();
    b.extend(frame(0x07, b"\x02"));
    r.send(3, &b, false);
    assert_eq!(r.run().1, Some(Error::IdError));
    assert_eq!(r.close_code(), Some(0x108));
}

#[test]
fn push_promise_on_a_response() {
    let mut r = Raw::client();
    let id =
        r.h3.send_request(&mut r.pipe.client, &request("GET", "/"), true)
            .unwrap();
    r.run();
    r.send(3, CONTROL_SETTINGS, false)
        .send(id, &frame(0x05, b"\x00\x00\x00"), false);
    assert_eq!(r.run().1, Some(Error::IdError));
    assert_eq!(r.close_code(), Some(0x108));
}

#[test]
fn random_control_and_request_bytes_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut closed = 0;
    for i in 0..60 {
        let mut r = Raw::server(&Config::new().unwrap());
        let len = (next() % 64) as usize;
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let stream = [2u64, 0, 6][i % 3];
        let mut b = match stream {
            2 => CONTROL_SETTINGS.to_vec(),
            6 => vec![0x02],
            _ => Vec::new(),
        };
        if stream == 6 {
            r.send(2, CONTROL_SETTINGS, false);
        }
        b.extend(junk);
        r.send(stream, &b, i % 2 == 0);
        r.run();
        if let Some(code) = r.close_code() {
            assert!(
                (0x100..=0x110).contains(&code) || (0x200..=0x202).contains(&code),
                "{code:#x}"
            );
            closed += 1;
        }
    }
    assert!(closed > 10, "{closed}");
}
