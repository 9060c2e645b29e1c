//! Session resumption (RFC 9001 §4.5) over the in-memory pipe.

use crate::testing::{test_config, LinkConfig, Pipe, SharedLog};
use crate::{Config, Error};

use super::tests::{pattern, pipe_of, retry_for, transfer};

/// A full handshake with `server`; returns the session the client got.
fn first_session(client: &mut Config, server: &mut Config) -> Vec<u8> {
    let mut p =
        Pipe::with_configs(client, server, LinkConfig::default(), LinkConfig::default()).unwrap();
    p.handshake().unwrap();
    assert!(!p.client.is_resumed() && !p.server.is_resumed());
    // The ticket follows HANDSHAKE_DONE.
    p.run_until(100, |p| p.client.session().is_some()).unwrap();
    // Both sides have freed their TLS state: the server once confirmed,
    // the client once the ticket came.
    assert!(p.server.tls.is_none());
    assert!(p.client.tls.is_none());
    p.client.session().unwrap().to_vec()
}

/// A pipe whose client offers `session` (nothing sent yet).
fn offering_pipe(client: &mut Config, server: &mut Config, session: &[u8]) -> Pipe {
    let mut p =
        Pipe::with_configs(client, server, LinkConfig::default(), LinkConfig::default()).unwrap();
    p.client.set_session(session).unwrap();
    p
}

fn resumed_pipe(client: &mut Config, server: &mut Config, session: &[u8]) -> Pipe {
    let mut p = offering_pipe(client, server, session);
    p.handshake().unwrap();
    p
}

#[test]
fn sessions_resume() {
    let (mut c, mut s) = (test_config(false).unwrap(), test_config(true).unwrap());
    let session = first_session(&mut c, &mut s);
    let mut p = resumed_pipe(&mut c, &mut s, &session);
    assert!(p.client.is_resumed() && p.server.is_resumed());
    assert_eq!(p.client.application_proto(), b"proto1");
    // The resumed connection works, and keeps saying it was resumed once
    // its TLS state is gone.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(transfer(&mut p, &data, 10_000), data);
    assert!(p.server.tls.is_none());
    assert!(p.server.is_resumed());
    // The resumed connection got a fresh ticket of its own (RFC 9001 §4.5:
    // clients should not reuse tickets).
    p.run_until(100, |p| p.client.session().is_some()).unwrap();
    assert_ne!(p.client.session().unwrap(), &session[..]);
    assert!(p.client.is_resumed());
}

#[test]
fn ticket_keys_resume_across_configs() {
    let key = [0x42u8; 48];
    let mut c = test_config(false).unwrap();
    let mut s1 = test_config(true).unwrap();
    s1.set_ticket_key(&key).unwrap();
    let session = first_session(&mut c, &mut s1);
    // Another server (another process, another worker) with the same key.
    let mut s2 = test_config(true).unwrap();
    s2.set_ticket_key(&key).unwrap();
    let p = resumed_pipe(&mut c, &mut s2, &session);
    assert!(p.client.is_resumed() && p.server.is_resumed());
    // One with another key cannot open the ticket: a full handshake.
    let mut s3 = test_config(true).unwrap();
    s3.set_ticket_key(&[0x43u8; 48]).unwrap();
    let p = resumed_pipe(&mut c, &mut s3, &session);
    assert!(p.client.is_established() && p.server.is_established());
    assert!(!p.client.is_resumed() && !p.server.is_resumed());
    // Keys are 48 bytes.
    assert_eq!(s3.set_ticket_key(&[0u8; 32]), Err(Error::TlsFail));
}

#[test]
fn bad_sessions_are_refused() {
    let (mut c, mut s) = (test_config(false).unwrap(), test_config(true).unwrap());
    let session = first_session(&mut c, &mut s);
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    for bad in [
        &b""[..],
        b"\x01",
        b"\x02\x00\x00",
        &session[..session.len() - 1],
        &[&session[..], b"\x00"].concat(),
        &[&[1u8, 3, 1, 2, 3][..], &[0u8]].concat(),
    ] {
        assert_eq!(p.client.set_session(bad), Err(Error::TlsFail), "{bad:?}");
    }
    // Servers do not take sessions.
    assert_eq!(p.server.set_session(&session), Err(Error::InvalidState));
    // A refused session leaves a full handshake possible.
    p.handshake().unwrap();
    assert!(!p.client.is_resumed());
    // Once the ClientHello has gone it is too late.
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    let mut out = [0u8; 1500];
    p.client.send(&mut out).unwrap();
    assert_eq!(p.client.set_session(&session), Err(Error::InvalidState));
}

#[test]
fn corrupted_sessions_never_break_the_client() {
    let (mut c, mut s) = (test_config(false).unwrap(), test_config(true).unwrap());
    let mut session = first_session(&mut c, &mut s);
    let (mut refused, mut resumed, mut full, mut failed) = (0, 0, 0, 0);
    for i in (0..session.len()).step_by(5) {
        session[i] ^= 0x55;
        let mut p =
            Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default())
                .unwrap();
        if p.client.set_session(&session).is_err() {
            refused += 1;
        } else {
            // A damaged ticket makes the server fall back to a full
            // handshake; a damaged secret fails the PSK binder, and TLS
            // closes the connection with an alert. Neither hangs.
            match p.handshake() {
                Ok(()) if p.client.is_resumed() => resumed += 1,
                Ok(()) => full += 1,
                Err(_) => {
                    // The server refused the handshake (the pipe hands its
                    // error up); its CONNECTION_CLOSE reaches the client.
                    let _ = p.run_until(100, |p| p.client.peer_error().is_some());
                    let e = p.client.peer_error().expect("the client learns why");
                    assert!(!e.is_app && (0x100..0x200).contains(&e.error_code), "{e:?}");
                    failed += 1;
                }
            }
        }
        session[i] ^= 0x55;
    }
    // Every outcome occurs (with this session's layout: 34 refused, 75
    // resumed, 37 full, 7 failed when written).
    let all = [refused, resumed, full, failed];
    assert!(all.iter().all(|&n| n > 0), "{all:?}");
}

#[test]
fn client_frees_tls_when_no_ticket_comes() {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    s.set_session_tickets(false);
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    p.handshake().unwrap();
    // Waiting for a ticket: TLS kept, for three PTOs at most.
    assert!(p.client.tls.is_some());
    let deadline = p.client.tls.as_ref().unwrap().linger_until.unwrap();
    let pto = p.client.recovery.pto();
    assert!(deadline <= p.now + 3 * pto);
    p.now = deadline;
    p.client.on_timeout_at(p.now);
    assert!(p.client.tls.is_none());
    assert!(p.client.session().is_none());
    assert!(p.client.is_established());
    let data = vec![7u8; 10_000];
    assert_eq!(transfer(&mut p, &data, 1_000), data);
}

fn early_configs() -> (Config, Config) {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    c.enable_early_data();
    s.enable_early_data();
    (c, s)
}

/// Reads everything readable on `stream` of `conn`.
fn read_all(conn: &mut crate::Connection, stream: u64, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    let mut fin = false;
    while let Ok((n, f)) = conn.stream_recv(stream, &mut buf) {
        into.extend_from_slice(&buf[..n]);
        fin |= f;
        if n == 0 {
            break;
        }
    }
    fin
}

/// Sends what both sides have and delivers it after the link's delay.
fn one_way(p: &mut Pipe) {
    p.flush().unwrap();
    p.now += LinkConfig::default().delay;
    p.deliver().unwrap();
}

/// A request in 0-RTT and its answer in 0.5-RTT: the server reads the
/// request before its handshake completes and answers at once, so the
/// response arrives one round trip after the client's first flight.
#[test]
fn zero_rtt_request_gets_an_answer_in_one_round_trip() {
    let (mut c, mut s) = early_configs();
    let session = first_session(&mut c, &mut s);
    let mut p = offering_pipe(&mut c, &mut s, &session);
    // The remembered limits allow the request before anything was sent.
    assert_eq!(p.client.stream_send(0, b"GET /index\r\n", true), Ok(12));
    assert!(!p.client.is_in_early_data());
    // First flight: ClientHello and a 0-RTT packet with the request.
    one_way(&mut p);
    assert!(p.client.is_in_early_data());
    assert!(p.server.is_in_early_data() && !p.server.is_established());
    let mut req = Vec::new();
    assert!(read_all(&mut p.server, 0, &mut req));
    assert_eq!(req, b"GET /index\r\n");
    // The answer goes in 1-RTT packets with the server's first flight.
    let body: Vec<u8> = (0..3000u32).map(|i| (i % 241) as u8).collect();
    assert_eq!(p.server.stream_send(0, &body, true), Ok(body.len()));
    one_way(&mut p);
    assert!(p.client.is_established() && p.client.is_resumed());
    let mut got = Vec::new();
    assert!(read_all(&mut p.client, 0, &mut got));
    assert_eq!(got, body);
    assert_eq!(p.client.early, super::EarlyData::Accepted);
    assert!(p.client.zero_rtt_keys.is_none());
    // The rest of the handshake; nothing was sent twice.
    p.handshake().unwrap();
    assert_eq!(p.client.stats().retrans, 0);
    assert!(p.server.zero_rtt_keys.is_none() && p.server.early == super::EarlyData::Accepted);
}

/// A client config with a session of a server allowing 0-RTT, and a
/// server config with the same ticket key but `change` applied: it
/// resumes the session and (another early-data context) rejects 0-RTT.
fn session_then_changed_server(change: impl FnOnce(&mut Config)) -> (Config, Vec<u8>, Config) {
    let key = [9u8; 48];
    let (mut c, mut s) = early_configs();
    s.set_ticket_key(&key).unwrap();
    let session = first_session(&mut c, &mut s);
    let mut s2 = test_config(true).unwrap();
    s2.enable_early_data();
    s2.set_ticket_key(&key).unwrap();
    change(&mut s2);
    (c, session, s2)
}

/// A server whose 0-RTT context changed (another flow-control limit)
/// resumes but rejects 0-RTT: the client sends the request again in
/// 1-RTT, and it arrives once, whole.
#[test]
fn rejected_zero_rtt_is_sent_again_in_one_rtt() {
    let (mut c, session, mut s2) =
        session_then_changed_server(|s| s.set_initial_max_data(20_000_000));
    let mut p = offering_pipe(&mut c, &mut s2, &session);
    let req: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(p.client.stream_send(0, &req, true), Ok(req.len()));
    one_way(&mut p);
    assert!(p.client.is_in_early_data());
    // Rejected: the server does not process 0-RTT packets.
    assert!(!p.server.is_in_early_data());
    assert!(p.server.readable().next().is_none());
    p.handshake().unwrap();
    assert!(p.client.is_resumed() && p.server.is_resumed());
    assert_eq!(p.client.early, super::EarlyData::Rejected);
    let mut got = Vec::new();
    p.run_until(1000, |p| read_all(&mut p.server, 0, &mut got))
        .unwrap();
    assert_eq!(got, req);
}

/// The client's first flight (ClientHello and 0-RTT request), as an
/// attacker on the path captures it.
fn first_flight(p: &mut Pipe) -> Vec<Vec<u8>> {
    let mut flight = Vec::new();
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = p.client.send_at(&mut buf, p.now) {
        flight.push(buf[..n].to_vec());
    }
    assert!(flight.len() >= 2, "ClientHello and 0-RTT");
    flight
}

/// Delivers `flight` to `p`'s server; returns what the server read of
/// stream 0 in 0-RTT.
fn replay_into(p: &mut Pipe, flight: &[Vec<u8>]) -> Vec<u8> {
    for d in flight {
        let mut d = d.clone();
        let _ = p.server.recv_at(&mut d, p.c2s_info(), p.now);
    }
    let mut got = Vec::new();
    read_all(&mut p.server, 0, &mut got);
    got
}

/// RFC 8446 §8: a client's first flight replayed to a server that already
/// took it (here a second connection of the same config, as an attacker
/// sending the captured datagrams again gets) has its ClientHello refused
/// 0-RTT: the replayed request is not read. Servers sharing a guard refuse
/// each other's replays; a fresh ClientHello with the same session still
/// gets 0-RTT.
#[test]
fn replayed_zero_rtt_is_refused() {
    let (mut c, mut s) = early_configs();
    let session = first_session(&mut c, &mut s);
    let req = b"POST /transfer?amount=100\r\n";
    let mut p = offering_pipe(&mut c, &mut s, &session);
    assert_eq!(p.client.stream_send(0, req, true), Ok(req.len()));
    let flight = first_flight(&mut p);
    // The genuine delivery: 0-RTT accepted, the request read.
    assert_eq!(replay_into(&mut p, &flight), req);
    assert!(p.server.is_in_early_data());
    // The replay, to another connection of the same server config.
    let mut replayed = offering_pipe(&mut test_config(false).unwrap(), &mut s, &session);
    assert!(replay_into(&mut replayed, &flight).is_empty());
    assert!(!replayed.server.is_in_early_data());
    assert!(replayed.server.zero_rtt_keys.is_none());
    assert_ne!(replayed.server.early, super::EarlyData::Accepted);
    // Refused by the guard (early data disabled for this handshake), not
    // for another reason of TLS's.
    let tls = replayed.server.tls.as_ref().unwrap();
    assert_eq!(tls.early_data_reason(), "disabled");
    // A fresh ClientHello resuming the same session: 0-RTT again (and the
    // genuine connection completes).
    let mut fresh = offering_pipe(&mut c, &mut s, &session);
    assert_eq!(fresh.client.stream_send(0, b"GET /\r\n", true), Ok(7));
    let flight2 = first_flight(&mut fresh);
    assert_eq!(replay_into(&mut fresh, &flight2), b"GET /\r\n");
    p.handshake().unwrap();
    assert!(p.client.is_resumed());

    // Two server configs sharing one guard (the workers of one server):
    // a replay to the other is refused too; a third config with a guard
    // of its own accepts it (not shared: not covered).
    let key = [7u8; 48];
    let guard = crate::ReplayGuard::default();
    let mut servers: Vec<Config> = (0..3)
        .map(|i| {
            let mut s = test_config(true).unwrap();
            s.enable_early_data();
            s.set_ticket_key(&key).unwrap();
            if i < 2 {
                s.set_replay_guard(&guard);
            }
            s
        })
        .collect();
    let session = first_session(&mut c, &mut servers[0]);
    let mut p = offering_pipe(&mut c, &mut servers[0], &session);
    p.client.stream_send(0, req, true).unwrap();
    let flight = first_flight(&mut p);
    assert_eq!(replay_into(&mut p, &flight), req);
    let mut other = offering_pipe(&mut c, &mut servers[1], &session);
    assert!(replay_into(&mut other, &flight).is_empty());
    let mut unshared = offering_pipe(&mut c, &mut servers[2], &session);
    assert_eq!(replay_into(&mut unshared, &flight), req);
    assert_eq!((guard.len(), guard.refused()), (1, 1));
}

/// 0-RTT data keeps to the remembered stream limits (RFC 9000 §7.4.1);
/// the handshake's larger ones apply afterwards.
#[test]
fn zero_rtt_keeps_to_remembered_limits() {
    let (mut c, mut s) = early_configs();
    s.set_initial_max_stream_data_bidi_remote(1000);
    let session = first_session(&mut c, &mut s);
    let mut p = offering_pipe(&mut c, &mut s, &session);
    let data = vec![0x61u8; 4000];
    assert_eq!(p.client.stream_send(0, &data, true), Ok(1000));
    // Only bidi streams were granted: a unidirectional one is refused.
    p.handshake().unwrap();
    let mut got = Vec::new();
    read_all(&mut p.server, 0, &mut got);
    assert_eq!(got.len(), 1000);
}

#[test]
fn no_zero_rtt_without_the_servers_consent() {
    // The server issues tickets without 0-RTT: the client resumes, but
    // sends nothing before the handshake.
    let mut c = test_config(false).unwrap();
    c.enable_early_data();
    let mut s = test_config(true).unwrap();
    let session = first_session(&mut c, &mut s);
    let mut p = offering_pipe(&mut c, &mut s, &session);
    assert_eq!(p.client.stream_send(0, b"x", true), Err(Error::StreamLimit));
    p.flush().unwrap();
    assert!(!p.client.is_in_early_data());
    p.handshake().unwrap();
    assert!(p.client.is_resumed());
    // And a client without 0-RTT enabled never offers it.
    let (_, mut s) = early_configs();
    let mut c = test_config(false).unwrap();
    let session = first_session(&mut c, &mut s);
    let mut p = offering_pipe(&mut c, &mut s, &session);
    p.flush().unwrap();
    assert!(!p.client.is_in_early_data());
    p.handshake().unwrap();
    assert!(p.client.is_resumed() && !p.server.is_in_early_data());
}

/// 0-RTT through loss, reordering and duplication: whatever of the
/// request went in 0-RTT packets that were lost, or arrived before the
/// server could read them, is sent again; the server reads it once,
/// byte-exact, and so does the client the response.
#[test]
fn zero_rtt_through_a_lossy_link() {
    for seed in 1..=12u64 {
        let (mut c, mut s) = early_configs();
        let session = first_session(&mut c, &mut s);
        let link = LinkConfig {
            loss: 0.1,
            reorder: 0.1,
            duplicate: 0.05,
            seed,
            ..LinkConfig::default()
        };
        let mut p = Pipe::with_configs(&mut c, &mut s, link.clone(), link).unwrap();
        p.client.set_session(&session).unwrap();
        let req: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let n = p.client.stream_send(0, &req, true).unwrap();
        let (mut got, mut sent) = (Vec::new(), n);
        let mut response = Vec::new();
        let body = vec![0x42u8; 50_000];
        let mut answered = 0;
        p.run_until(20_000, |p| {
            if sent < req.len() {
                sent += p.client.stream_send(0, &req[sent..], true).unwrap_or(0);
            }
            let fin = read_all(&mut p.server, 0, &mut got);
            if fin && answered < body.len() {
                answered += p.server.stream_send(0, &body[answered..], true).unwrap_or(0);
            }
            read_all(&mut p.client, 0, &mut response)
        })
        .unwrap_or_else(|e| {
            panic!(
                "seed {seed}: {e:?}: server read {} of the request, client {} of the response; client {:?} server {:?}",
                got.len(),
                response.len(),
                p.client.stats(),
                p.server.stats()
            )
        });
        assert_eq!(got, req, "seed {seed}");
        assert_eq!(response, body, "seed {seed}");
        assert!(p.client.is_resumed(), "seed {seed}");
    }
}

/// RFC 9000 §12.4/§12.5: ACK, CRYPTO, HANDSHAKE_DONE, NEW_TOKEN and
/// PATH_RESPONSE are not allowed in 0-RTT packets: a server that
/// accepted 0-RTT closes with PROTOCOL_VIOLATION; allowed frames work.
#[test]
fn frames_not_allowed_in_zero_rtt_close_the_connection() {
    use crate::testing::forge_0rtt;
    let forbidden: [&[u8]; 5] = [
        &[0x02, 0x00, 0x00, 0x00, 0x00], // ACK
        &[0x06, 0x00, 0x01, 0x00],       // CRYPTO
        &[0x1e],                         // HANDSHAKE_DONE
        &[0x07, 0x01, 0xaa],             // NEW_TOKEN
        &[0x1b, 1, 2, 3, 4, 5, 6, 7, 8], // PATH_RESPONSE
    ];
    let (mut c, mut s) = early_configs();
    let session = first_session(&mut c, &mut s);
    for frame in forbidden.into_iter().map(Some).chain([None]) {
        let mut p =
            Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default())
                .unwrap();
        p.client.set_session(&session).unwrap();
        one_way(&mut p);
        assert!(p.server.is_in_early_data());
        // A STREAM frame (stream 0, FIN) with or without a forbidden one.
        let mut payload = vec![0x0b, 0x00, 0x02, b'h', b'i'];
        if let Some(f) = frame {
            payload.extend_from_slice(f);
        }
        let mut pkt = forge_0rtt(&mut p.client, &payload).unwrap();
        let info = p.c2s_info();
        let r = p.server.recv(&mut pkt, info);
        match frame {
            Some(f) => {
                assert!(r.is_err(), "{f:?}");
                let e = p.server.local_error().unwrap();
                assert_eq!(e.error_code, 0x0a, "{f:?}");
            }
            None => {
                assert!(r.is_ok());
                let mut got = Vec::new();
                assert!(read_all(&mut p.server, 0, &mut got));
                assert_eq!(got, b"hi");
            }
        }
    }
}

/// A Retry after 0-RTT: the server dropped the 0-RTT packets with the
/// first attempt; the client sends their data again in 0-RTT behind the
/// Initial with the token, and the server accepts it.
#[test]
fn zero_rtt_goes_again_after_a_retry() {
    let (caddr, saddr) = Pipe::addrs();
    let (mut c, mut s) = early_configs();
    let session = first_session(&mut c, &mut s);
    let cscid = crate::ConnectionId::from_vec(vec![0xc1; 8]);
    let mut client = crate::connect(Some("localhost"), &cscid, caddr, saddr, &mut c).unwrap();
    client.set_session(&session).unwrap();
    let now = std::time::Instant::now();
    let mut out = vec![0u8; 1500];
    let mut first = Vec::new();
    while let Ok((n, _)) = client.send_at(&mut out, now) {
        first.push(out[..n].to_vec());
        if client.is_in_early_data() && client.stream_send(0, b"GET /z\r\n", true).is_ok() {
            // Sent with the next datagram.
        }
    }
    let sent_before = client.stats().sent;
    assert!(first.len() >= 2, "ClientHello and 0-RTT");
    let hdr = crate::Header::from_slice(&mut first[0], 8).unwrap();
    let (odcid, new_scid, mut retry) = retry_for(&hdr, b"tok");
    let rn = retry.len();
    let to_client = crate::RecvInfo {
        from: saddr,
        to: caddr,
    };
    client.recv_at(&mut retry[..rn], to_client, now).unwrap();
    let mut server = crate::accept(
        &new_scid,
        Some(&crate::ConnectionId::from_ref(&odcid)),
        saddr,
        caddr,
        &mut s,
    )
    .unwrap();
    let to_server = crate::RecvInfo {
        from: caddr,
        to: saddr,
    };
    while let Ok((n, _)) = client.send_at(&mut out, now) {
        server.recv_at(&mut out[..n], to_server, now).unwrap();
    }
    assert!(client.stats().sent > sent_before);
    assert!(server.is_in_early_data());
    let mut got = Vec::new();
    assert!(read_all(&mut server, 0, &mut got));
    assert_eq!(got, b"GET /z\r\n");
    let mut p = pipe_of(client, server, now);
    p.handshake().unwrap();
    assert!(p.client.is_resumed());
    assert_eq!(p.client.early, super::EarlyData::Accepted);
}

/// The datagram with the end of the ClientHello and the 0-RTT request
/// arrives before the one with its start: the server keeps the 0-RTT
/// packet until the ClientHello is whole, then reads the request, and
/// nothing is sent twice.
#[test]
fn zero_rtt_before_the_whole_client_hello_is_kept() {
    let (mut c, mut s) = early_configs();
    let session = first_session(&mut c, &mut s);
    let mut p = offering_pipe(&mut c, &mut s, &session);
    let now = p.now;
    let mut out = [0u8; 1500];
    let mut flight = Vec::new();
    while let Ok((n, _)) = p.client.send_at(&mut out, now) {
        flight.push(out[..n].to_vec());
        if p.client.is_in_early_data() && p.client.stream_send(0, b"GET /x\r\n", true).is_ok() {
            // Goes out with the next datagram.
        }
    }
    assert!(
        flight.len() >= 3,
        "a ClientHello in two datagrams, then 0-RTT"
    );
    let info = p.c2s_info();
    // The end of the ClientHello and the 0-RTT packet first, its start
    // last.
    flight.rotate_left(1);
    for d in flight.iter_mut() {
        p.server.recv_at(d, info, now).unwrap();
    }
    assert!(p.server.is_in_early_data());
    let mut got = Vec::new();
    assert!(read_all(&mut p.server, 0, &mut got));
    assert_eq!(got, b"GET /x\r\n");
    assert!(p.server.early_packets.is_none());
    p.handshake().unwrap();
    assert_eq!(p.client.stats().retrans, 0);
}

/// A server that does not accept 0-RTT drops what it kept.
#[test]
fn kept_zero_rtt_is_dropped_when_refused() {
    let (mut c, mut s) = early_configs();
    let session = first_session(&mut c, &mut s);
    // Another early-data context: the server resumes but refuses 0-RTT.
    let mut s2 = test_config(true).unwrap();
    s2.enable_early_data();
    s2.set_initial_max_streams_bidi(7);
    let mut p = offering_pipe(&mut c, &mut s2, &session);
    let now = p.now;
    let mut out = [0u8; 1500];
    let mut flight = Vec::new();
    while let Ok((n, _)) = p.client.send_at(&mut out, now) {
        flight.push(out[..n].to_vec());
        if p.client.is_in_early_data() {
            let _ = p.client.stream_send(0, b"GET /x\r\n", true);
        }
    }
    let info = p.c2s_info();
    let dropped = p.server.stats().dropped;
    flight.rotate_left(1);
    let n = flight.len();
    for (i, d) in flight.iter_mut().enumerate() {
        p.server.recv_at(d, info, now).unwrap();
        if i + 2 == n {
            // Kept while the ClientHello is not whole.
            assert!(p.server.early_packets.is_some());
        }
    }
    assert!(!p.server.is_in_early_data());
    assert!(p.server.early_packets.is_none());
    assert!(p.server.stats().dropped > dropped);
    assert!(p.server.readable().next().is_none());
    // The request comes again in 1-RTT.
    p.handshake().unwrap();
    let mut got = Vec::new();
    p.run_until(1000, |p| read_all(&mut p.server, 0, &mut got))
        .unwrap();
    assert_eq!(got, b"GET /x\r\n");
}

/// A server that rejects 0-RTT may lower the limits the client used for it
/// (RFC 9000 §7.4.1 forbids that only when accepting). The client does
/// not take back what it queued under the remembered limits: sent again
/// in 1-RTT, it exceeds the new ones and the server closes with
/// FLOW_CONTROL_ERROR — a clear end, not a hang (the application opens
/// its streams again on a new connection).
#[test]
fn lower_limits_after_a_rejection_end_the_connection_cleanly() {
    let (mut c, session, mut s2) =
        session_then_changed_server(|s| s.set_initial_max_stream_data_bidi_remote(1000));
    let mut p = offering_pipe(&mut c, &mut s2, &session);
    let req = vec![0x61u8; 5000];
    assert_eq!(p.client.stream_send(0, &req, true), Ok(5000));
    // The pipe hands the server's error up; the CONNECTION_CLOSE follows.
    for _ in 0..200 {
        if p.client.peer_error().is_some() {
            break;
        }
        let _ = p.advance();
    }
    let e = p.client.peer_error().unwrap_or_else(|| {
        panic!(
            "no close: server {:?} client {:?} est {} {}",
            p.server.local_error(),
            p.client.local_error(),
            p.client.is_established(),
            p.server.is_established()
        )
    });
    assert_eq!(e.error_code, 0x03, "FLOW_CONTROL_ERROR: {e:?}");
    assert_eq!(p.client.early, super::EarlyData::Rejected);
}

/// (label, client random, secret) of every key log line.
trait KeyLogLines {
    fn lines(&self) -> Vec<(String, String, String)>;
}

impl KeyLogLines for SharedLog {
    fn lines(&self) -> Vec<(String, String, String)> {
        let text = String::from_utf8(self.bytes()).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                assert_eq!(f.len(), 3, "{l}");
                (f[0].to_string(), f[1].to_string(), f[2].to_string())
            })
            .collect()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// `Config::log_keys` + `set_keylog`: the NSS key log lines of both sides
// name the same ClientHello and hold the very secrets the 1-RTT keys come
// from (what Wireshark needs to decrypt a capture).
#[test]
fn key_log_holds_the_secrets_in_use() {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    c.log_keys();
    s.log_keys();
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    let (clog, slog) = (SharedLog::default(), SharedLog::default());
    p.client.set_keylog(Box::new(clog.clone()));
    p.server.set_keylog(Box::new(slog.clone()));
    p.handshake().unwrap();
    let (cl, sl) = (clog.lines(), slog.lines());
    let labels = |l: &[(String, String, String)]| {
        let mut v: Vec<String> = l.iter().map(|x| x.0.clone()).collect();
        v.sort();
        v
    };
    for want in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        assert!(labels(&cl).iter().any(|l| l == want), "{want} in {cl:?}");
    }
    assert_eq!(labels(&cl), labels(&sl));
    let random = &cl[0].1;
    assert_eq!(random.len(), 64);
    assert!(cl.iter().chain(&sl).all(|l| &l.1 == random));
    let secret = |l: &[(String, String, String)], label: &str| {
        l.iter().find(|x| x.0 == label).unwrap().2.clone()
    };
    let app = &p.client.spaces[2];
    assert_eq!(
        secret(&cl, "CLIENT_TRAFFIC_SECRET_0"),
        hex(app.seal.as_ref().unwrap().secret())
    );
    assert_eq!(
        secret(&cl, "SERVER_TRAFFIC_SECRET_0"),
        hex(app.open.as_ref().unwrap().secret())
    );
    assert_eq!(
        secret(&sl, "CLIENT_TRAFFIC_SECRET_0"),
        secret(&cl, "CLIENT_TRAFFIC_SECRET_0")
    );
    // Without `log_keys` a writer gets nothing.
    let mut p = Pipe::new().unwrap();
    let quiet = SharedLog::default();
    p.client.set_keylog(Box::new(quiet.clone()));
    p.handshake().unwrap();
    assert!(quiet.lines().is_empty());
}

// The server's session ticket (CRYPTO data in 1-RTT packets) is lost
// while a large response streams out: it goes again at once, not after
// the response (stream data must not starve CRYPTO data; the client
// keeps its TLS state for the ticket only a few PTOs).
#[test]
fn a_lost_ticket_is_resent_during_a_long_response() {
    use std::cell::Cell;
    use std::rc::Rc;

    let mut p = Pipe::new().unwrap();
    // The server's first datagrams after its handshake completes carry
    // HANDSHAKE_DONE and the ticket: they are lost.
    let dropped = Rc::new(Cell::new(0u32));
    let d = dropped.clone();
    let server_done = Rc::new(Cell::new(false));
    let sd = server_done.clone();
    p.drop_server_datagrams(Some(Box::new(move |_, _| {
        if sd.get() && d.get() < 2 {
            d.set(d.get() + 1);
            return true;
        }
        false
    })));
    p.run_until(1000, |p| {
        server_done.set(p.server.is_established());
        p.client.is_established()
    })
    .unwrap();
    p.client.stream_send(0, b"GET /big\r\n", true).unwrap();
    p.run_until(1000, |p| {
        server_done.set(p.server.is_established());
        p.server.stream_readable(0)
    })
    .unwrap();
    let body = pattern(3_000_000);
    let mut sent = 0;
    let mut got = 0;
    let mut buf = vec![0u8; 65_536];
    let mut session_at = None;
    for _ in 0..200_000 {
        if sent < body.len() {
            sent += p.server.stream_send(0, &body[sent..], true).unwrap_or(0);
        }
        while let Ok((n, _)) = p.client.stream_recv(0, &mut buf) {
            got += n;
        }
        if session_at.is_none() && p.client.session().is_some() {
            session_at = Some(got);
        }
        if got == body.len() {
            break;
        }
        p.advance().unwrap();
    }
    assert_eq!(got, body.len());
    assert_eq!(dropped.get(), 2);
    let at = session_at.expect("no session ticket arrived");
    assert!(
        at < body.len() / 2,
        "ticket only after {at} of {} bytes",
        body.len()
    );
}

// CRYPTO data due in 1-RTT packets (a ticket, or a lost one to send again)
// goes before more stream data: the packet builder's stream-only fast path
// must not skip it. (Checked on the wire the server writes, via its qlog.)
#[test]
fn crypto_data_is_not_starved_by_stream_data() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    p.run_until(1000, |p| {
        p.server.send_at(&mut [0; 1500], p.now) == Err(Error::Done)
    })
    .unwrap();
    let log = SharedLog::default();
    p.server
        .set_qlog(Box::new(log.clone()), "server".into(), String::new());
    p.client.stream_send(0, b"GET /\r\n", true).unwrap();
    p.run_until(1000, |p| p.server.stream_readable(0)).unwrap();
    // Everything acknowledged both ways: nothing but the response is due.
    p.run_until(1000, |p| {
        !p.server.spaces[2].ack_elicited
            && p.server.send_at(&mut [0; 1500], p.now) == Err(Error::Done)
    })
    .unwrap();
    // A post-handshake TLS message waits in the 1-RTT CRYPTO stream while
    // the application has a response to send.
    p.server.spaces[2]
        .crypto
        .send
        .write(&[0x04; 300], false)
        .unwrap();
    p.server.stream_send(0, &[7u8; 20_000], true).unwrap();
    let mut out = [0u8; 1500];
    p.server.send_at(&mut out, p.now).unwrap();
    let text = String::from_utf8(log.bytes()).unwrap();
    let last = text.split('\x1e').next_back().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["name"], "quic:packet_sent");
    let kinds: Vec<&str> = v["data"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["frame_type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"crypto"), "{kinds:?}");
}
