//! HTTP/3 over tarte's in-memory pipe: requests, bodies, trailers, many
//! streams, GOAWAY, the QPACK dynamic table both ways.

use tarte_h3::testing::{header, request, response, Session};
use tarte_h3::{Error, Event, Header};

fn headers_of(ev: &[(u64, Event)], id: u64) -> Vec<Header> {
    ev.iter()
        .find_map(|(s, e)| match e {
            Event::Headers { list, .. } if *s == id => Some(list.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no headers for stream {id} in {ev:?}"))
}

#[test]
fn get_with_body() {
    let mut s = Session::new().unwrap();
    let id = s.send_request(&request("GET", "/hello"), true).unwrap();
    assert_eq!(id, 0);
    let ev = s.server_events(50).unwrap();
    assert!(
        ev.iter().any(|(i, e)| *i == id
            && matches!(
                e,
                Event::Headers {
                    more_frames: false,
                    ..
                }
            )),
        "{ev:?}"
    );
    assert!(ev.contains(&(id, Event::Finished)), "{ev:?}");
    let h = headers_of(&ev, id);
    assert_eq!(header(&h, ":path"), Some(&b"/hello"[..]));
    assert_eq!(header(&h, ":method"), Some(&b"GET"[..]));
    s.send_response(id, &response(200), false).unwrap();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    s.send_all(false, id, &body, 1000).unwrap();
    let ev = s.client_events(5).unwrap();
    let h = headers_of(&ev, id);
    assert_eq!(header(&h, ":status"), Some(&b"200"[..]));
    let (got, trailers) = s.recv_all(true, id, 1000).unwrap();
    assert_eq!(got, body);
    assert!(trailers.is_none());
}

fn quic_with_streams(is_server: bool, bidi: u64) -> tarte::Config {
    let mut c = tarte_h3::testing::quic_config(is_server).unwrap();
    c.set_initial_max_streams_bidi(bidi);
    c.set_initial_max_data(100_000_000);
    c
}

#[test]
fn post_echo_1mb() {
    let mut s = Session::new().unwrap();
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut req = request("POST", "/echo");
    req.push(Header::new(
        b"content-length",
        body.len().to_string().as_bytes(),
    ));
    let id = s.send_request(&req, false).unwrap();
    let (got, trailers) = s.transfer(true, id, &body, 10_000).unwrap();
    assert_eq!(got.len(), body.len());
    assert_eq!(got, body);
    assert!(trailers.is_none());
    s.send_response(id, &response(200), false).unwrap();
    let (echo, _) = s.transfer(false, id, &got, 10_000).unwrap();
    assert_eq!(echo, body);
    // Both sides are done with the stream and forgot it.
    s.client_events(10).unwrap();
    assert_eq!(s.client.open_streams(), 0);
    assert_eq!(s.server.open_streams(), 0);
}

#[test]
fn trailers_both_ways() {
    let mut s = Session::new().unwrap();
    let id = s.send_request(&request("POST", "/t"), false).unwrap();
    s.client_send_body(id, b"request body", false).unwrap();
    let t = [Header::new(b"x-checksum", b"abc123")];
    s.client
        .send_additional_headers(&mut s.pipe.client, id, &t, true, true)
        .unwrap();
    let (body, trailers) = s.recv_all(false, id, 1000).unwrap();
    assert_eq!(body, b"request body");
    assert_eq!(trailers.unwrap(), t.to_vec());
    s.send_response(id, &response(200), false).unwrap();
    s.server_send_body(id, b"response body", false).unwrap();
    let rt = [Header::new(b"grpc-status", b"0"), Header::new(b"x-n", b"2")];
    s.server
        .send_additional_headers(&mut s.pipe.server, id, &rt, true, true)
        .unwrap();
    let (body, trailers) = s.recv_all(true, id, 1000).unwrap();
    assert_eq!(body, b"response body");
    assert_eq!(trailers.unwrap(), rt.to_vec());
    // A trailer section must end the stream.
    let id2 = s.send_request(&request("POST", "/t2"), false).unwrap();
    assert_eq!(
        s.client
            .send_additional_headers(&mut s.pipe.client, id2, &t, true, false),
        Err(Error::FrameUnexpected)
    );
}

#[test]
fn two_hundred_concurrent_requests() {
    let h3 = tarte_h3::Config::new().unwrap();
    let mut s = Session::with_configs(
        &mut quic_with_streams(false, 300),
        &mut quic_with_streams(true, 300),
        &h3,
        &h3,
        Default::default(),
    )
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..200 {
        let mut req = request("GET", &format!("/item/{i}"));
        req.push(Header::new(b"x-request", i.to_string().as_bytes()));
        ids.push(s.send_request(&req, true).unwrap());
    }
    let ev = s.server_events(1000).unwrap();
    let mut seen = 0;
    for (id, e) in &ev {
        if let Event::Headers { list, more_frames } = e {
            assert!(!more_frames);
            let i = (id / 4).to_string();
            assert_eq!(
                header(list, ":path").unwrap(),
                format!("/item/{i}").as_bytes()
            );
            assert_eq!(header(list, "x-request").unwrap(), i.as_bytes());
            seen += 1;
        }
    }
    assert_eq!(seen, 200);
    for &id in &ids {
        s.send_response(id, &response(200), false).unwrap();
        let body = format!("body of {id}").repeat(10);
        assert_eq!(
            s.server_send_body(id, body.as_bytes(), true).unwrap(),
            body.len()
        );
    }
    let mut done = std::collections::HashMap::new();
    let mut buf = vec![0u8; 4096];
    for _ in 0..1000 {
        while let Ok((id, e)) = s.poll_client() {
            match e {
                Event::Data => {
                    while let Ok(n) = s.client_recv_body(id, &mut buf) {
                        done.entry(id)
                            .or_insert_with(Vec::new)
                            .extend_from_slice(&buf[..n]);
                    }
                }
                Event::Finished => {
                    let b = done.get(&id).unwrap();
                    assert_eq!(b, format!("body of {id}").repeat(10).as_bytes());
                    done.insert(id + 1_000_000, Vec::new());
                }
                _ => {}
            }
        }
        if done.len() == 400 {
            break;
        }
        s.advance().unwrap();
    }
    assert_eq!(done.len(), 400, "all 200 responses finished");
    // Both dynamic tables were used.
    assert!(s.server.qpack_stats().decoder_insert_count > 0);
    assert!(s.client.qpack_stats().decoder_insert_count > 0);
}

#[test]
fn dynamic_table_both_ways() {
    let mut s = Session::new().unwrap();
    let mut last = (0, 0);
    for i in 0..5 {
        let mut req = request("GET", "/dyn");
        req.push(Header::new(
            b"x-custom-token",
            b"a-long-value-that-compresses-well",
        ));
        req.push(Header::new(b"x-seq", i.to_string().as_bytes()));
        let id = s.send_request(&req, true).unwrap();
        let ev = s.server_events(100).unwrap();
        assert_eq!(headers_of(&ev, id), req);
        let mut resp = response(200);
        resp.push(Header::new(b"x-served-by", b"tarte-edge-node-0001"));
        s.send_response(id, &resp, true).unwrap();
        let ev = s.client_events(100).unwrap();
        assert_eq!(headers_of(&ev, id), resp);
        let st = (
            s.server.qpack_stats().decoder_insert_count,
            s.client.qpack_stats().decoder_insert_count,
        );
        assert!(st.0 > 0 && st.1 > 0, "{st:?}");
        last = st;
    }
    // Repeated fields are referenced, not inserted again.
    assert!(last.0 < 10, "{last:?}");
    // The encoders learned that their inserts arrived.
    assert!(s.client.qpack_stats().encoder_known_received_count > 0);
    assert!(s.server.qpack_stats().encoder_known_received_count > 0);
}

#[test]
fn static_only_when_table_disabled() {
    let mut h3 = tarte_h3::Config::new().unwrap();
    h3.set_qpack_max_table_capacity(0);
    let mut s = Session::with_configs(
        &mut tarte_h3::testing::quic_config(false).unwrap(),
        &mut tarte_h3::testing::quic_config(true).unwrap(),
        &h3,
        &h3,
        Default::default(),
    )
    .unwrap();
    let mut req = request("GET", "/");
    req.push(Header::new(b"x-custom", b"v"));
    let id = s.send_request(&req, true).unwrap();
    let ev = s.server_events(100).unwrap();
    assert_eq!(headers_of(&ev, id), req);
    assert_eq!(s.server.qpack_stats().decoder_insert_count, 0);
    assert_eq!(s.client.qpack_stats().encoder_capacity, 0);
}

#[test]
fn goaway_from_server_rejects_later_requests() {
    let mut s = Session::new().unwrap();
    let a = s.send_request(&request("GET", "/a"), true).unwrap();
    let b = s.send_request(&request("GET", "/b"), true).unwrap();
    assert_eq!((a, b), (0, 4));
    // The server will process stream 0 only.
    s.server.send_goaway(&mut s.pipe.server, 4).unwrap();
    assert_eq!(
        s.server.send_goaway(&mut s.pipe.server, 8),
        Err(Error::IdError)
    );
    assert_eq!(
        s.server.send_goaway(&mut s.pipe.server, 2),
        Err(Error::IdError)
    );
    let ev = s.server_events(100).unwrap();
    assert!(ev
        .iter()
        .any(|(i, e)| *i == 0 && matches!(e, Event::Headers { .. })));
    assert!(!ev.iter().any(|(i, _)| *i == 4), "{ev:?}");
    s.send_response(0, &response(200), true).unwrap();
    let ev = s.client_events(100).unwrap();
    assert!(ev.contains(&(4, Event::GoAway)), "{ev:?}");
    assert!(ev.contains(&(4, Event::Reset(0x10b))), "{ev:?}");
    assert!(ev
        .iter()
        .any(|(i, e)| *i == 0 && matches!(e, Event::Headers { .. })));
    assert_eq!(
        s.send_request(&request("GET", "/c"), true),
        Err(Error::FrameUnexpected)
    );
    // A lower GOAWAY is fine, and the connection stays up.
    s.server.send_goaway(&mut s.pipe.server, 0).unwrap();
    let ev = s.client_events(100).unwrap();
    assert!(ev.contains(&(0, Event::GoAway)), "{ev:?}");
    assert!(!s.pipe.client.is_closed());
}

#[test]
fn goaway_from_client() {
    let mut s = Session::new().unwrap();
    s.client.send_goaway(&mut s.pipe.client, 0).unwrap();
    let ev = s.server_events(100).unwrap();
    assert_eq!(ev, vec![(0, Event::GoAway)]);
    assert!(!s.pipe.server.is_closed());
}

#[test]
fn priorities_order_response_bodies() {
    let mut s = Session::new().unwrap();
    let mut ids = Vec::new();
    for u in [5, 1, 3] {
        let mut req = request("GET", "/p");
        req.push(Header::new(b"priority", format!("u={u}").as_bytes()));
        ids.push((u, s.send_request(&req, true).unwrap()));
    }
    s.server_events(100).unwrap();
    let body = vec![7u8; 200_000];
    for &(_, id) in &ids {
        s.send_response(id, &response(200), false).unwrap();
        assert_eq!(s.server_send_body(id, &body, true).unwrap(), body.len());
    }
    let mut order = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..10_000 {
        while let Ok((id, e)) = s.poll_client() {
            match e {
                Event::Data => while s.client_recv_body(id, &mut buf).is_ok() {},
                Event::Finished => order.push(id),
                _ => {}
            }
        }
        if order.len() == 3 {
            break;
        }
        s.advance().unwrap();
    }
    // u=1 (stream 4), then u=3 (stream 8), then u=5 (stream 0).
    assert_eq!(order, vec![4, 8, 0]);
}

#[test]
fn priority_update_reaches_server() {
    let mut s = Session::new().unwrap();
    let id = s.send_request(&request("GET", "/x"), true).unwrap();
    s.server_events(100).unwrap();
    let p = tarte_h3::Priority::new(0, true);
    s.client
        .send_priority_update_for_request(&mut s.pipe.client, id, &p)
        .unwrap();
    let ev = s.server_events(100).unwrap();
    assert_eq!(ev, vec![(id, Event::PriorityUpdate)]);
    assert_eq!(s.server.take_last_priority_update(id).unwrap(), b"u=0, i");
    assert_eq!(s.server.take_last_priority_update(id), Err(Error::Done));
    // Servers do not send PRIORITY_UPDATE.
    assert_eq!(
        s.server
            .send_priority_update_for_request(&mut s.pipe.server, id, &p),
        Err(Error::FrameUnexpected)
    );
}

#[test]
fn grease_and_settings() {
    let mut h3 = tarte_h3::Config::new().unwrap();
    h3.set_max_field_section_size(8192);
    h3.set_additional_settings(vec![(0x4242, 7)]).unwrap();
    assert_eq!(
        h3.clone().set_additional_settings(vec![(0x02, 1)]),
        Err(Error::SettingsError)
    );
    assert_eq!(
        h3.clone()
            .set_additional_settings(vec![(0x4242, 1), (0x4242, 2)]),
        Err(Error::SettingsError)
    );
    let mut plain = tarte_h3::Config::new().unwrap();
    plain.grease(false);
    let mut s = Session::with_configs(
        &mut tarte_h3::testing::quic_config(false).unwrap(),
        &mut tarte_h3::testing::quic_config(true).unwrap(),
        &h3,
        &plain,
        Default::default(),
    )
    .unwrap();
    let from_client = s.server.peer_settings_raw().unwrap().to_vec();
    assert!(from_client.contains(&(0x06, 8192)), "{from_client:?}");
    assert!(from_client.contains(&(0x4242, 7)));
    assert!(from_client.contains(&(0x01, 4096)));
    assert!(from_client.iter().any(|&(id, _)| tarte_h3::is_reserved(id)));
    let from_server = s.client.peer_settings_raw().unwrap().to_vec();
    assert!(!from_server.iter().any(|&(id, _)| tarte_h3::is_reserved(id)));
    // The client's grease stream and frame were ignored: requests work.
    let id = s.send_request(&request("GET", "/"), true).unwrap();
    let ev = s.server_events(100).unwrap();
    assert!(ev
        .iter()
        .any(|(i, e)| *i == id && matches!(e, Event::Headers { .. })));
    assert!(!s.pipe.server.is_closed());
}

#[test]
fn extended_connect() {
    let mut on = tarte_h3::Config::new().unwrap();
    on.enable_extended_connect(true);
    let off = tarte_h3::Config::new().unwrap();
    let ws = |path: &str| {
        vec![
            Header::new(b":method", b"CONNECT"),
            Header::new(b":protocol", b"websocket"),
            Header::new(b":scheme", b"https"),
            Header::new(b":authority", b"localhost"),
            Header::new(b":path", path.as_bytes()),
        ]
    };
    let mut s = Session::with_configs(
        &mut tarte_h3::testing::quic_config(false).unwrap(),
        &mut tarte_h3::testing::quic_config(true).unwrap(),
        &off,
        &on,
        Default::default(),
    )
    .unwrap();
    assert!(s.client.extended_connect_enabled_by_peer());
    assert!(!s.server.extended_connect_enabled_by_peer());
    let id = s.send_request(&ws("/chat"), false).unwrap();
    let ev = s.server_events(100).unwrap();
    assert_eq!(headers_of(&ev, id), ws("/chat"));
    // Without the setting, :protocol makes the request malformed.
    let mut s = Session::new().unwrap();
    let id = s.send_request(&ws("/chat"), false).unwrap();
    let ev = s.server_events(100).unwrap();
    assert!(ev.is_empty(), "{ev:?}");
    let ev = s.client_events(100).unwrap();
    assert!(ev.contains(&(id, Event::Reset(0x10e))), "{ev:?}");
}

#[test]
fn http_datagrams() {
    let mut h3 = tarte_h3::Config::new().unwrap();
    h3.enable_dgram(true);
    let mut cq = tarte_h3::testing::quic_config(false).unwrap();
    let mut sq = tarte_h3::testing::quic_config(true).unwrap();
    cq.enable_dgram(true, 10, 10);
    sq.enable_dgram(true, 10, 10);
    let mut s = Session::with_configs(&mut cq, &mut sq, &h3, &h3, Default::default()).unwrap();
    assert!(s.client.dgram_enabled_by_peer(&s.pipe.client));
    let id = s.send_request(&request("CONNECT", "/"), false);
    assert!(id.is_ok());
    s.client
        .dgram_send(&mut s.pipe.client, 4, b"hello datagram")
        .unwrap();
    s.advance().unwrap();
    s.advance().unwrap();
    let mut buf = [0u8; 100];
    let (n, sid) = s.server.dgram_recv(&mut s.pipe.server, &mut buf).unwrap();
    assert_eq!((&buf[..n], sid), (&b"hello datagram"[..], 4));
    // Without the H3 setting, no HTTP datagrams.
    let mut s = Session::new().unwrap();
    assert_eq!(
        s.client.dgram_send(&mut s.pipe.client, 0, b"x"),
        Err(Error::FrameUnexpected)
    );
}

#[test]
fn peer_field_section_limit_is_honoured() {
    let mut small = tarte_h3::Config::new().unwrap();
    small.set_max_field_section_size(200);
    let big = tarte_h3::Config::new().unwrap();
    let mut s = Session::with_configs(
        &mut tarte_h3::testing::quic_config(false).unwrap(),
        &mut tarte_h3::testing::quic_config(true).unwrap(),
        &big,
        &small,
        Default::default(),
    )
    .unwrap();
    let mut req = request("GET", "/");
    req.push(Header::new(b"x-big", &[b'a'; 300]));
    // The client honours the server's limit (the raw-bytes case is in
    // h3_errors.rs).
    assert_eq!(s.send_request(&req, true), Err(Error::ExcessiveLoad));
    assert!(!s.pipe.client.is_closed());
}

// `send_body_shared`: a response body sent from a shared buffer in DATA
// frames sized to the stream's room arrives byte-exact; the transport lets
// go of the buffer once all is acknowledged; a range outside it is a
// clear error.
#[test]
fn shared_response_body() {
    use std::sync::Arc;

    let mut s = Session::new().unwrap();
    let id = s.send_request(&request("GET", "/object"), true).unwrap();
    s.server_events(50).unwrap();
    s.send_response(id, &response(200), false).unwrap();
    let body: Arc<[u8]> = (0..1_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    assert_eq!(
        s.server
            .send_body_shared(&mut s.pipe.server, id, &body, 10..2_000_000, true),
        Err(Error::BufferTooShort)
    );
    let (mut off, mut got, mut buf) = (0, Vec::new(), vec![0u8; 65_536]);
    for _ in 0..100_000 {
        if off < body.len() {
            match s
                .server
                .send_body_shared(&mut s.pipe.server, id, &body, off..body.len(), true)
            {
                Ok(n) => off += n,
                Err(Error::Done) => (),
                Err(e) => panic!("{e:?}"),
            }
        }
        while let Ok(n) = s.client_recv_body(id, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let _ = s.poll_client();
        if got.len() == body.len() && Arc::strong_count(&body) == 1 {
            break;
        }
        s.advance().unwrap();
    }
    assert!(got[..] == body[..]);
    assert_eq!(Arc::strong_count(&body), 1);
}
