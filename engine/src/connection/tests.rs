//! Connection tests over the in-memory pipe.

use crate::testing::{test_config, LinkConfig, Pipe};
use crate::{Error, Shutdown};

#[test]
fn handshake_completes() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    assert!(p.client.is_established());
    assert!(p.server.is_established());
    assert_eq!(p.client.application_proto(), b"proto1");
    assert_eq!(p.server.application_proto(), b"proto1");
    assert_eq!(p.server.server_name(), Some("localhost"));
    // Handshake keys are gone on both sides once confirmed.
    assert!(p.client.spaces[0].discarded && p.client.spaces[1].discarded);
    assert!(p.server.spaces[0].discarded && p.server.spaces[1].discarded);
}

/// Sends `data` on stream 0 from client to server and returns what the
/// server read.
pub(super) fn transfer(p: &mut Pipe, data: &[u8], max_steps: usize) -> Vec<u8> {
    transfer_from(p, data, 0, max_steps)
}

/// Like [`transfer`] on another stream.
pub(super) fn transfer_on(p: &mut Pipe, stream: u64, data: &[u8], max_steps: usize) -> Vec<u8> {
    transfer_impl(p, stream, data, 0, max_steps)
}

/// Like [`transfer`] when the first `already` bytes were written already.
fn transfer_from(p: &mut Pipe, data: &[u8], already: usize, max_steps: usize) -> Vec<u8> {
    transfer_impl(p, 0, data, already, max_steps)
}

fn transfer_impl(
    p: &mut Pipe,
    stream: u64,
    data: &[u8],
    already: usize,
    max_steps: usize,
) -> Vec<u8> {
    let mut sent = already;
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 65_536];
    let mut fin_seen = false;
    for _ in 0..max_steps {
        if sent < data.len() {
            match p.client.stream_send(stream, &data[sent..], true) {
                Ok(n) => sent += n,
                Err(Error::Done) => (),
                Err(e) => panic!("stream_send: {e:?}"),
            }
        }
        let readable: Vec<u64> = p.server.readable().filter(|s| *s == stream).collect();
        for id in readable {
            loop {
                match p.server.stream_recv(id, &mut buf) {
                    Ok((n, fin)) => {
                        got.extend_from_slice(&buf[..n]);
                        fin_seen |= fin;
                    }
                    Err(Error::Done) => break,
                    Err(e) => panic!("stream_recv: {e:?}"),
                }
            }
        }
        if fin_seen {
            break;
        }
        if !p.advance().unwrap() {
            break;
        }
    }
    assert!(
        fin_seen,
        "transfer incomplete: {} of {} bytes",
        got.len(),
        data.len()
    );
    got
}

/// An established pair whose links both impair as `link`, the server's
/// direction with its own seed.
pub(super) fn established_over(link: LinkConfig, reverse_seed: u64) -> Pipe {
    let mut p = Pipe::with_configs(
        &mut test_config(false).unwrap(),
        &mut test_config(true).unwrap(),
        link.clone(),
        LinkConfig {
            seed: reverse_seed,
            ..link
        },
    )
    .unwrap();
    p.handshake().unwrap();
    p
}

/// A server's Retry for the client Initial `hdr`, with `token`: returns
/// the original DCID, the server's new SCID and the Retry packet.
pub(super) fn retry_for(
    hdr: &crate::Header<'_>,
    token: &[u8],
) -> (Vec<u8>, crate::ConnectionId<'static>, Vec<u8>) {
    let new_scid = crate::ConnectionId::from_vec(vec![0x5e; 8]);
    let mut retry = vec![0u8; 256];
    let n = crate::retry(
        &hdr.scid,
        &hdr.dcid,
        &new_scid,
        token,
        hdr.version,
        &mut retry,
    )
    .unwrap();
    retry.truncate(n);
    (hdr.dcid.to_vec(), new_scid, retry)
}

/// A pipe on clean default links around an existing pair.
pub(super) fn pipe_of(
    client: crate::Connection,
    server: crate::Connection,
    now: std::time::Instant,
) -> Pipe {
    Pipe::from_parts(
        client,
        server,
        now,
        LinkConfig::default(),
        LinkConfig::default(),
    )
    .unwrap()
}

pub(super) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn small_stream_transfer() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    let data = pattern(100_000);
    let got = transfer(&mut p, &data, 100_000);
    assert!(got == data);
    // Nothing was lost, so nothing was sent twice.
    let s = p.client.stats();
    assert_eq!((s.lost, s.retrans, s.stream_retrans_bytes), (0, 0, 0));
}

#[test]
fn ten_megabytes_with_loss_and_reordering() {
    let link = LinkConfig {
        loss: 0.10,
        reorder: 0.10,
        seed: 7,
        ..LinkConfig::default()
    };
    let mut p = established_over(link, 9);
    let data = pattern(10 * 1024 * 1024);
    let got = transfer(&mut p, &data, 2_000_000);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "payload differs");
    let s = p.client.stats();
    eprintln!(
        "client stats: {s:?} link dropped {} of {}",
        p.c2s.dropped, p.c2s.sent
    );
    assert!(s.lost > 0, "the link lost packets and recovery saw it");
    // What was lost went out again, counted when sent.
    assert!(s.retrans > 0 && s.retrans <= s.sent, "{s:?}");
    assert!(
        s.stream_retrans_bytes > 0 && s.stream_retrans_bytes < data.len() as u64,
        "{s:?}"
    );
}

#[test]
fn server_closes_and_client_sees_error() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    p.server.close(true, 0x42, b"bye").unwrap();
    p.run_until(1000, |p| p.client.is_closed() && p.server.is_closed())
        .unwrap();
    let e = p.client.peer_error().unwrap();
    assert!(e.is_app);
    assert_eq!(e.error_code, 0x42);
    assert_eq!(e.reason, b"bye");
    assert_eq!(p.server.local_error().unwrap().error_code, 0x42);
}

#[test]
fn idle_timeout_closes_both() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    p.run_until(10_000, |p| p.client.is_closed() && p.server.is_closed())
        .unwrap();
    assert!(p.client.is_timed_out());
    assert!(p.server.is_timed_out());
}

#[test]
fn stream_reset_and_stop_sending() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    p.client.stream_send(4, b"hello", false).unwrap();
    p.run_until(100, |p| p.server.stream_readable(4)).unwrap();
    p.client.stream_shutdown(4, Shutdown::Write, 77).unwrap();
    p.run_until(100, |p| {
        let mut b = [0u8; 16];
        matches!(p.server.stream_recv(4, &mut b), Err(Error::StreamReset(77)))
    })
    .unwrap();
    // STOP_SENDING from the server makes the client's writes fail.
    p.client.stream_send(8, b"more", false).unwrap();
    p.run_until(100, |p| p.server.stream_readable(8)).unwrap();
    p.server.stream_shutdown(8, Shutdown::Read, 99).unwrap();
    p.run_until(100, |p| {
        matches!(
            p.client.stream_send(8, b"x", false),
            Err(Error::StreamStopped(99))
        )
    })
    .unwrap();
}

/// Addressing of a datagram the server sent to the client.
fn to_client() -> crate::RecvInfo {
    let (c, s) = Pipe::addrs();
    crate::RecvInfo { from: s, to: c }
}

/// Addressing of a datagram the client sent to the server.
fn to_server() -> crate::RecvInfo {
    let (c, s) = Pipe::addrs();
    crate::RecvInfo { from: c, to: s }
}

pub(super) fn forge_1rtt(from: &mut crate::Connection, payload: &[u8]) -> Vec<u8> {
    crate::testing::forge_1rtt(from, payload).expect("1-RTT keys")
}

fn deliver_to_server(p: &mut Pipe, mut pkt: Vec<u8>) -> crate::Result<usize> {
    p.server.recv_at(&mut pkt, to_server(), p.now)
}

#[test]
fn malformed_frames_close_with_the_right_code() {
    let cases: &[(&[u8], u64)] = &[
        // Unknown frame type: FRAME_ENCODING_ERROR.
        (&[0x21], 0x07),
        // Truncated STREAM: FRAME_ENCODING_ERROR.
        (&[0x0a, 0x00, 0x10, 0x61], 0x07),
        // HANDSHAKE_DONE to a server: PROTOCOL_VIOLATION.
        (&[0x1e], 0x0a),
        // NEW_TOKEN to a server: PROTOCOL_VIOLATION.
        (&[0x07, 0x01, 0x61], 0x0a),
        // Stream data on the server's own unidirectional stream (3):
        // STREAM_STATE_ERROR.
        (&[0x08, 0x03, 0x61], 0x05),
        // Opening stream 400 (the 101st client bidi stream): STREAM_LIMIT_ERROR.
        (&[0x08, 0x80, 0x00, 0x01, 0x90, 0x61], 0x04),
        // Data beyond the stream window: FLOW_CONTROL_ERROR.
        (&[0x0c, 0x00, 0x80, 0x10, 0x00, 0x00, 0x61], 0x03),
        // ACK of a packet never sent: PROTOCOL_VIOLATION.
        (&[0x02, 0x3f, 0x00, 0x00, 0x00], 0x0a),
        // RETIRE_CONNECTION_ID of a sequence never issued: PROTOCOL_VIOLATION.
        (&[0x19, 0x05], 0x0a),
        // DATAGRAM without having enabled it: PROTOCOL_VIOLATION.
        (&[0x30, 0x61], 0x0a),
        // A good STREAM frame first, then an unknown frame: the frames
        // after a leading STREAM frame are checked too.
        (&[0x0a, 0x00, 0x01, 0x61, 0x21], 0x07),
        // ... then a STREAM frame on the server's own unidirectional
        // stream: STREAM_STATE_ERROR.
        (&[0x0a, 0x00, 0x01, 0x61, 0x08, 0x03, 0x61], 0x05),
        // ... then a truncated STREAM frame: FRAME_ENCODING_ERROR.
        (&[0x0a, 0x00, 0x01, 0x61, 0x0e, 0x00, 0x01, 0x05], 0x07),
    ];
    for (payload, code) in cases {
        let mut p = Pipe::new().unwrap();
        p.handshake().unwrap();
        let pkt = forge_1rtt(&mut p.client, payload);
        let _ = deliver_to_server(&mut p, pkt);
        let e = p
            .server
            .local_error()
            .unwrap_or_else(|| panic!("{payload:02x?} did not close"));
        assert!(!e.is_app);
        assert_eq!(e.error_code, *code, "{payload:02x?}");
        // The client receives the CONNECTION_CLOSE with that code.
        p.run_until(100, |p| p.client.peer_error().is_some())
            .unwrap();
        assert_eq!(p.client.peer_error().unwrap().error_code, *code);
    }
}

#[test]
fn stream_frames_share_a_packet_with_other_frames() {
    // A leading STREAM frame (handled before the frame loop), a PING, a
    // MAX_DATA and a second STREAM frame with the FIN: all of it counts.
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    let payload = [
        0x0a, 0x00, 0x03, b'a', b'b', b'c', // STREAM 0, len 3
        0x01, // PING
        0x10, 0x80, 0x10, 0x00, 0x00, // MAX_DATA 1 MiB
        0x0d, 0x00, 0x03, b'd', b'e', // STREAM 0, off 3, to the end, FIN
    ];
    let pkt = forge_1rtt(&mut p.client, &payload);
    deliver_to_server(&mut p, pkt).unwrap();
    assert!(p.server.local_error().is_none());
    let mut buf = [0u8; 16];
    assert_eq!(p.server.stream_recv(0, &mut buf), Ok((5, true)));
    assert_eq!(&buf[..5], b"abcde");
    // The packet was ack-eliciting: the server acknowledges it at once
    // (the PING and the STREAM frames both elicit).
    let sent = p.server.stats().sent;
    p.run_until(10, |p| p.server.stats().sent > sent).unwrap();
}

#[test]
fn empty_payload_and_garbage_are_handled() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    // Random bytes with our DCID: undecryptable, dropped, connection lives.
    let mut junk = vec![0x41u8; 60];
    junk[1..9].copy_from_slice(&[0x5e; 8]);
    deliver_to_server(&mut p, junk).unwrap();
    assert!(p.server.local_error().is_none());
    assert!(p.server.stats().dropped >= 1);
    // A short datagram with no DCID match is dropped as well.
    deliver_to_server(&mut p, vec![0x40, 1, 2]).unwrap();
    assert!(p.server.local_error().is_none());
    let data = pattern(5000);
    assert!(transfer(&mut p, &data, 10_000) == data);
}

#[test]
fn key_update_both_ways_keeps_data_flowing() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    let data = pattern(300_000);
    p.client.initiate_key_update().unwrap();
    // A second update before an ACK in the new phase is refused.
    assert_eq!(p.client.initiate_key_update(), Err(Error::KeyUpdate));
    assert!(transfer(&mut p, &data, 100_000) == data);
    assert_eq!(p.client.stats().key_updates, 1);
    assert_eq!(p.server.stats().key_updates, 1);
    // Now the server updates.
    p.server.initiate_key_update().unwrap();
    p.server
        .stream_send(1, b"after the server's update", true)
        .unwrap();
    p.run_until(10_000, |p| p.client.stats().key_updates == 2)
        .unwrap();
    let more = pattern(50_000);
    let mut q = transfer_on(&mut p, 8, &more, 100_000);
    q.truncate(more.len());
    assert!(q == more);
    assert_eq!(p.server.stats().key_updates, 2);
    assert!(p.client.local_error().is_none() && p.server.local_error().is_none());
}

#[test]
fn retry_round_trip() {
    let (caddr, saddr) = Pipe::addrs();
    let mut ccfg = test_config(false).unwrap();
    let mut scfg = test_config(true).unwrap();
    let cscid = crate::ConnectionId::from_vec(vec![0xc1; 8]);
    let mut client = crate::connect(Some("localhost"), &cscid, caddr, saddr, &mut ccfg).unwrap();
    let now = std::time::Instant::now();
    let mut out = vec![0u8; 1500];
    let (n, _) = client.send_at(&mut out, now).unwrap();
    assert!(n >= 1200, "client Initial datagram padded to 1200, got {n}");
    // The server answers with Retry.
    let hdr = crate::Header::from_slice(&mut out[..n], 8).unwrap();
    assert_eq!(hdr.ty, crate::Type::Initial);
    let (odcid, new_scid, mut retry) = retry_for(&hdr, b"opaque-token");
    let rn = retry.len();
    client.recv_at(&mut retry[..rn], to_client(), now).unwrap();
    assert!(client.did_retry);
    // The client's next Initial carries the token and the new DCID.
    let (n, _) = client.send_at(&mut out, now).unwrap();
    let hdr = crate::Header::from_slice(&mut out[..n], 8).unwrap();
    assert_eq!(hdr.token.as_deref(), Some(&b"opaque-token"[..]));
    assert_eq!(&hdr.dcid[..], &new_scid[..]);
    let mut server = crate::accept(
        &new_scid,
        Some(&crate::ConnectionId::from_ref(&odcid)),
        saddr,
        caddr,
        &mut scfg,
    )
    .unwrap();
    server.recv_at(&mut out[..n], to_server(), now).unwrap();
    let mut p = pipe_of(client, server, now);
    p.handshake().unwrap();
    let data = pattern(20_000);
    assert!(transfer(&mut p, &data, 10_000) == data);

    // A second Retry is ignored, and a Retry with a bad tag too.
    let mut retry2 = retry.clone();
    assert!(p
        .client
        .recv_at(&mut retry2[..rn], to_client(), p.now)
        .is_ok());
    assert!(p.client.is_established() && p.client.local_error().is_none());
}

#[test]
fn server_rejects_retry_transport_parameter_mismatch() {
    // The server claims a Retry happened (odcid given) but the client never
    // saw one: the client must close with TRANSPORT_PARAMETER_ERROR.
    let (caddr, saddr) = Pipe::addrs();
    let mut ccfg = test_config(false).unwrap();
    let mut scfg = test_config(true).unwrap();
    let client = crate::connect(
        Some("localhost"),
        &crate::ConnectionId::from_vec(vec![1; 8]),
        caddr,
        saddr,
        &mut ccfg,
    )
    .unwrap();
    let server = crate::accept(
        &crate::ConnectionId::from_vec(vec![2; 8]),
        Some(&crate::ConnectionId::from_vec(vec![3; 8])),
        saddr,
        caddr,
        &mut scfg,
    )
    .unwrap();
    let mut p = pipe_of(client, server, std::time::Instant::now());
    let _ = p.run_until(1000, |p| p.client.local_error().is_some());
    assert_eq!(p.client.local_error().map(|e| e.error_code), Some(0x08));
    assert!(!p.client.is_established() || p.client.local_error().is_some());
}

#[test]
fn version_negotiation_ends_the_attempt() {
    let (caddr, saddr) = Pipe::addrs();
    let mut ccfg = test_config(false).unwrap();
    let mut client = crate::connect(
        None,
        &crate::ConnectionId::from_vec(vec![1; 8]),
        caddr,
        saddr,
        &mut ccfg,
    )
    .unwrap();
    let now = std::time::Instant::now();
    let mut out = vec![0u8; 1500];
    let (n, _) = client.send_at(&mut out, now).unwrap();
    let hdr = crate::Header::from_slice(&mut out[..n], 8).unwrap();
    // A VN listing only versions we do not speak.
    let mut vn = vec![0xc0, 0, 0, 0, 0];
    vn.push(hdr.scid.len() as u8);
    vn.extend_from_slice(&hdr.scid);
    vn.push(hdr.dcid.len() as u8);
    vn.extend_from_slice(&hdr.dcid);
    vn.extend_from_slice(&0x1a2a_3a4au32.to_be_bytes());
    assert_eq!(
        client.recv_at(&mut vn, to_client(), now),
        Err(Error::UnknownVersion)
    );
    assert!(client.is_closed());
    // A VN that lists our version is ignored (RFC 9000 §6.2).
    let mut client = crate::connect(
        None,
        &crate::ConnectionId::from_vec(vec![1; 8]),
        caddr,
        saddr,
        &mut ccfg,
    )
    .unwrap();
    let (n, _) = client.send_at(&mut out, now).unwrap();
    let hdr = crate::Header::from_slice(&mut out[..n], 8).unwrap();
    let mut vn2 = vec![0u8; 128];
    let vlen = crate::negotiate_version(&hdr.scid, &hdr.dcid, &mut vn2).unwrap();
    client.recv_at(&mut vn2[..vlen], to_client(), now).unwrap();
    assert!(!client.is_closed());
}

#[test]
fn server_respects_amplification_limit() {
    let (caddr, saddr) = Pipe::addrs();
    let mut ccfg = test_config(false).unwrap();
    let mut scfg = test_config(true).unwrap();
    let mut client = crate::connect(
        Some("localhost"),
        &crate::ConnectionId::from_vec(vec![1; 8]),
        caddr,
        saddr,
        &mut ccfg,
    )
    .unwrap();
    let mut server = crate::accept(
        &crate::ConnectionId::from_vec(vec![2; 8]),
        None,
        saddr,
        caddr,
        &mut scfg,
    )
    .unwrap();
    let now = std::time::Instant::now();
    let mut out = vec![0u8; 1500];
    // Only the client's first flight reaches the server; it never answers.
    let mut received = 0;
    while let Ok((n, _)) = client.send_at(&mut out, now) {
        received += n;
        server.recv_at(&mut out[..n], to_server(), now).unwrap();
    }
    let mut sent = 0;
    let mut t = now;
    for _ in 0..50 {
        while let Ok((n, _)) = server.send_at(&mut out, t) {
            sent += n;
        }
        t += std::time::Duration::from_secs(1);
        server.on_timeout_at(t);
    }
    assert!(sent > 0);
    assert!(sent <= 3 * received, "sent {sent} > 3 x {received}");
}

#[test]
fn stream_limits_and_max_streams_credit() {
    let mut ccfg = test_config(false).unwrap();
    let mut scfg = test_config(true).unwrap();
    scfg.set_initial_max_streams_bidi(3);
    let mut p = Pipe::with_configs(
        &mut ccfg,
        &mut scfg,
        LinkConfig::default(),
        LinkConfig::default(),
    )
    .unwrap();
    p.handshake().unwrap();
    assert_eq!(p.client.peer_streams_left_bidi(), 3);
    for id in [0u64, 4, 8] {
        p.client.stream_send(id, b"x", true).unwrap();
    }
    // The fourth stream is beyond the limit.
    assert_eq!(
        p.client.stream_send(12, b"x", true),
        Err(Error::StreamLimit)
    );
    // The server reads and answers all three; MAX_STREAMS gives credit.
    p.run_until(1000, |p| p.server.readable().count() == 3)
        .unwrap();
    let mut b = [0u8; 8];
    for id in [0u64, 4, 8] {
        assert_eq!(p.server.stream_recv(id, &mut b).unwrap(), (1, true));
        p.server.stream_send(id, b"y", true).unwrap();
    }
    p.run_until(1000, |p| p.client.readable().count() == 3)
        .unwrap();
    for id in [0u64, 4, 8] {
        assert_eq!(p.client.stream_recv(id, &mut b).unwrap(), (1, true));
    }
    p.run_until(1000, |p| p.client.peer_streams_left_bidi() > 0)
        .unwrap();
    p.client.stream_send(12, b"x", true).unwrap();
}

#[test]
fn connection_flow_control_blocks_and_resumes() {
    let mut ccfg = test_config(false).unwrap();
    let mut scfg = test_config(true).unwrap();
    scfg.set_initial_max_data(20_000);
    scfg.set_max_connection_window(20_000);
    let mut p = Pipe::with_configs(
        &mut ccfg,
        &mut scfg,
        LinkConfig::default(),
        LinkConfig::default(),
    )
    .unwrap();
    p.handshake().unwrap();
    // Only 20 kB are accepted before the server reads.
    let data = pattern(200_000);
    let n = p.client.stream_send(0, &data, true).unwrap();
    assert_eq!(n, 20_000);
    assert!(transfer_from(&mut p, &data, n, 100_000) == data);
}

#[test]
fn new_connection_ids_and_retirement() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    // The client allows 2 active IDs by default: one more fits.
    assert_eq!(p.server.scids_left(), 1);
    let seq = p
        .server
        .new_scid(&crate::ConnectionId::from_vec(vec![0x77; 8]), 0x1234, false)
        .unwrap();
    assert_eq!(seq, 1);
    assert_eq!(
        p.server
            .new_scid(&crate::ConnectionId::from_vec(vec![0x78; 8]), 0x1235, false),
        Err(Error::IdLimit)
    );
    p.run_until(100, |p| p.client.cids.dcids.len() == 2)
        .unwrap();
    // Issuing with retire_if_needed asks the client to retire the oldest.
    p.server
        .new_scid(&crate::ConnectionId::from_vec(vec![0x79; 8]), 0x1236, true)
        .unwrap();
    p.run_until(1000, |p| p.server.retired_scid_next().is_some())
        .unwrap();
    // Traffic still flows on the remaining IDs.
    let data = pattern(10_000);
    assert!(transfer(&mut p, &data, 10_000) == data);
}

#[test]
fn handshake_and_transfer_survive_loss_duplication_and_corruption_with_reno() {
    let link = LinkConfig {
        loss: 0.15,
        duplicate: 0.05,
        corrupt: 0.05,
        reorder: 0.05,
        seed: 42,
        ..LinkConfig::default()
    };
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    c.set_cc_algorithm(crate::CongestionControlAlgorithm::Reno);
    s.set_cc_algorithm_name("reno").unwrap();
    let mut p = Pipe::with_configs(
        &mut c,
        &mut s,
        link.clone(),
        LinkConfig { seed: 43, ..link },
    )
    .unwrap();
    // The handshake itself crosses the lossy link (PTO and CRYPTO
    // retransmission).
    p.handshake().unwrap();
    let data = pattern(2 * 1024 * 1024);
    let got = transfer(&mut p, &data, 1_000_000);
    assert!(got == data, "payload differs");
    let cs = p.client.stats();
    // Corrupted packets fail authentication and are dropped, never
    // delivered; duplicates are detected.
    assert!(p.server.stats().dropped > 0);
    assert!(cs.lost > 0);
    assert!(p.client.local_error().is_none() && p.server.local_error().is_none());
}

#[test]
fn datagram_sizes_respect_the_peers_limit() {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    // The server accepts at most 1200-byte datagrams; the link drops
    // anything larger, so a client that ignored the limit would stall.
    s.set_max_recv_udp_payload_size(1200);
    let strict = LinkConfig {
        mtu: 1200,
        ..LinkConfig::default()
    };
    let mut p = Pipe::with_configs(&mut c, &mut s, strict, LinkConfig::default()).unwrap();
    p.handshake().unwrap();
    assert_eq!(p.client.max_send_udp_payload_size(), 1200);
    let data = pattern(300_000);
    assert!(transfer(&mut p, &data, 100_000) == data);
    assert_eq!(p.c2s.dropped, 0, "no datagram exceeded the peer's limit");
}

#[test]
fn datagrams_round_trip_when_enabled() {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    c.enable_dgram(true, 10, 10);
    s.enable_dgram(true, 10, 10);
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    p.handshake().unwrap();
    assert!(p.client.dgram_max_writable_len().unwrap() > 1000);
    p.client.dgram_send(b"unreliable hello").unwrap();
    p.run_until(100, |p| p.server.dgram_recv_queue_len() == 1)
        .unwrap();
    let mut b = [0u8; 64];
    let n = p.server.dgram_recv(&mut b).unwrap();
    assert_eq!(&b[..n], b"unreliable hello");
    assert_eq!(p.server.dgram_recv(&mut b), Err(Error::Done));
    assert_eq!(
        p.client.dgram_send(&vec![0u8; 70_000]),
        Err(Error::BufferTooShort)
    );
}

#[test]
fn random_and_mutated_datagrams_never_panic() {
    let mut p = Pipe::new().unwrap();
    // Capture real datagrams of both sides during a handshake and a
    // transfer, then replay mutated copies into fresh connections.
    let mut captured: Vec<Vec<u8>> = Vec::new();
    let mut buf = [0u8; 1500];
    for _ in 0..50 {
        while let Ok((n, _)) = p.client.send_at(&mut buf, p.now) {
            captured.push(buf[..n].to_vec());
            let mut d = buf[..n].to_vec();
            let _ = p.server.recv_at(&mut d, to_server(), p.now);
        }
        while let Ok((n, _)) = p.server.send_at(&mut buf, p.now) {
            captured.push(buf[..n].to_vec());
            let mut d = buf[..n].to_vec();
            let _ = p.client.recv_at(&mut d, to_client(), p.now);
        }
        if p.client.is_established() {
            let _ = p.client.stream_send(0, &pattern(3000), false);
        }
        p.now += std::time::Duration::from_millis(5);
    }
    assert!(captured.len() > 5);
    let mut seed = 0x1357_9bdfu64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let mut q = Pipe::new().unwrap();
        if round % 2 == 0 {
            q.handshake().unwrap();
        }
        for _ in 0..8 {
            let mut d = captured[(rnd() as usize) % captured.len()].clone();
            match rnd() % 4 {
                0 => {
                    let i = (rnd() as usize) % d.len();
                    d[i] ^= (rnd() as u8) | 1;
                }
                1 => d.truncate((rnd() as usize) % d.len() + 1),
                2 => {
                    let i = (rnd() as usize) % d.len();
                    d[i..].iter_mut().for_each(|b| *b = rnd() as u8);
                }
                _ => d = (0..(rnd() % 1400 + 1)).map(|_| rnd() as u8).collect(),
            }
            let _ = q.server.recv_at(&mut d.clone(), to_server(), q.now);
            let _ = q.client.recv_at(&mut d, to_client(), q.now);
            let _ = q.flush();
            let _ = q.deliver();
        }
    }
}

// What a transfer grew goes back once both sides are idle: the sender's
// sent-packet queue (2,048 entries of some 120 bytes after this 4 MB
// response, before the fix), and the stream tables once the stream is
// collected. Memory per idle connection matters at the edge.
#[test]
fn idle_after_a_transfer_holds_no_burst_memory() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    let body = pattern(4 * 1024 * 1024);
    p.client.stream_send(0, b"GET", true).unwrap();
    let (mut sent, mut got, mut fin) = (0, 0, false);
    let mut buf = vec![0u8; 65_536];
    for _ in 0..1_000_000 {
        while let Ok((n, _)) = p.server.stream_recv(0, &mut buf) {
            assert_eq!(&buf[..n], b"GET");
        }
        if sent < body.len() {
            if let Ok(n) = p.server.stream_send(0, &body[sent..], true) {
                sent += n;
            }
        }
        while let Ok((n, f)) = p.client.stream_recv(0, &mut buf) {
            assert_eq!(&buf[..n], &body[got..got + n]);
            got += n;
            fin |= f;
        }
        if !p.advance().unwrap() && fin {
            break;
        }
    }
    assert!(fin && got == body.len());
    // Both idle: every ack-eliciting packet acknowledged, nothing to send.
    assert_eq!(p.server.recovery.bytes_in_flight(), 0);
    assert_eq!(p.client.recovery.bytes_in_flight(), 0);
    let (server_sent, server_lost) = p.server.recovery.retained_capacity();
    assert_eq!((server_sent, server_lost), (0, 0));
    // The client may still track its last ACK-only packets, exactly.
    assert!(p.client.recovery.retained_capacity().0 <= 2);
    assert_eq!(p.client.streams.table_capacity(), 0);
    assert_eq!(p.server.streams.table_capacity(), 0);
}

// RFC 9000 §13.2.1: one ack-eliciting packet in order may wait for a
// second or for max_ack_delay, but one that arrives after a gap is
// acknowledged without delay, and so is the one that fills the gap.
#[test]
fn out_of_order_packets_are_acknowledged_at_once() {
    let mut p = Pipe::with_configs(
        &mut test_config(false).unwrap(),
        &mut test_config(true).unwrap(),
        LinkConfig {
            delay: std::time::Duration::ZERO,
            ..LinkConfig::default()
        },
        LinkConfig::default(),
    )
    .unwrap();
    p.handshake().unwrap();
    // Settle HANDSHAKE_DONE and the last ACKs without moving the clock.
    for _ in 0..4 {
        p.flush().unwrap();
        p.deliver().unwrap();
    }
    let info = p.c2s_info();
    let now = p.now;
    let mut out = vec![0u8; 1500];
    let mut next_packet = |p: &mut Pipe| -> Vec<u8> {
        let (n, _) = p.client.send_at(&mut out, now).unwrap();
        out[..n].to_vec()
    };
    p.client.stream_send(0, &[7u8; 4000], false).unwrap();
    let mut first = next_packet(&mut p);
    let mut second = next_packet(&mut p);
    let mut third = next_packet(&mut p);
    // In order: the first packet alone waits (delayed ACK).
    p.server.recv_at(&mut first, info, now).unwrap();
    assert!(matches!(p.server.send_at(&mut out, now), Err(Error::Done)));
    // The third, with the second missing: an ACK right away.
    p.server.recv_at(&mut third, info, now).unwrap();
    assert!(p.server.send_at(&mut out, now).is_ok());
    // The second, filling the gap: again right away.
    p.server.recv_at(&mut second, info, now).unwrap();
    assert!(p.server.send_at(&mut out, now).is_ok());
}

// RFC 9000 §10.3.1: a datagram that ends in the reset token the peer gave
// for the connection ID in use closes the connection (draining, no more
// packets); the same datagram with another token is just undecryptable.
#[test]
fn stateless_reset_closes_the_connection() {
    let token = 0x5e5e_0000_1111_2222_3333_4444_5555_6666u128;
    let mut server_config = test_config(true).unwrap();
    server_config.set_stateless_reset_token(Some(token));
    let mut p = Pipe::with_configs(
        &mut test_config(false).unwrap(),
        &mut server_config,
        LinkConfig::default(),
        LinkConfig::default(),
    )
    .unwrap();
    p.handshake().unwrap();
    let (info, now) = (p.s2c_info(), p.now);
    let mut reset = [0u8; 64];
    let n = crate::stateless_reset(token ^ 1, 1200, &mut reset).unwrap();
    p.client.recv_at(&mut reset[..n], info, now).unwrap();
    assert!(!p.client.is_closed() && !p.client.is_draining());
    let n = crate::stateless_reset(token, 1200, &mut reset).unwrap();
    p.client.recv_at(&mut reset[..n], info, now).unwrap();
    assert!(p.client.is_draining() || p.client.is_closed());
    let e = p.client.peer_error().unwrap();
    assert_eq!(e.reason, b"stateless reset");
    let mut out = [0u8; 1500];
    assert_eq!(p.client.send_at(&mut out, now), Err(Error::Done));
}

// `stream_send_shared`: one buffer sent on two streams through 10% loss
// and reordering arrives byte-exact on both, each stream holding a
// reference instead of a copy; once everything is acknowledged the
// connection holds none.
#[test]
fn shared_buffers_go_out_byte_exact_through_loss() {
    use std::sync::Arc;

    let link = LinkConfig {
        loss: 0.10,
        reorder: 0.10,
        seed: 21,
        ..LinkConfig::default()
    };
    let mut p = established_over(link, 22);
    let data = pattern(2_000_000);
    let shared: Arc<[u8]> = Arc::from(&data[..]);
    let mut sent = [0usize; 2];
    let mut got = [Vec::new(), Vec::new()];
    let mut buf = vec![0u8; 65_536];
    for _ in 0..200_000 {
        for (i, id) in [0u64, 4].into_iter().enumerate() {
            if sent[i] < data.len() {
                match p
                    .client
                    .stream_send_shared(id, &shared, sent[i]..data.len(), true)
                {
                    Ok(n) => sent[i] += n,
                    Err(Error::Done) => (),
                    Err(e) => panic!("{e:?}"),
                }
            }
            while let Ok((n, _)) = p.server.stream_recv(id, &mut buf) {
                got[i].extend_from_slice(&buf[..n]);
            }
        }
        if got.iter().all(|g| g.len() == data.len()) && Arc::strong_count(&shared) == 1 {
            break;
        }
        p.advance().unwrap();
    }
    assert!(got[0] == data && got[1] == data);
    assert!(p.client.stats().lost > 0);
    assert_eq!(
        Arc::strong_count(&shared),
        1,
        "a reference outlived the acks"
    );
    // Out of range: a clear error, nothing buffered.
    for bad in [data.len() + 1..data.len() + 2, 0..data.len() + 1] {
        assert_eq!(
            p.client.stream_send_shared(8, &shared, bad, false),
            Err(Error::BufferTooShort)
        );
    }
}

// The smaller quiche calls: send_ack_eliciting, stream_writable_next,
// the datagram queue sizes, active_scids, send_quantum.
#[test]
fn quiche_queue_and_probe_calls() {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    for cfg in [&mut c, &mut s] {
        cfg.enable_dgram(true, 4, 3);
        cfg.enable_pacing(false);
    }
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    p.handshake().unwrap();
    p.run_until(1000, |p| {
        p.client.send_at(&mut [0; 1500], p.now) == Err(Error::Done)
    })
    .unwrap();

    // A PING on demand: one ack-eliciting packet, which the server
    // acknowledges.
    let before = (p.client.stats().sent, p.server.stats().recv);
    p.client.send_ack_eliciting().unwrap();
    let mut out = [0u8; 1500];
    let (n, _) = p.client.send_at(&mut out, p.now).unwrap();
    // (A call that finds nothing may still scribble on its buffer.)
    assert_eq!(p.client.send_at(&mut [0u8; 1500], p.now), Err(Error::Done));
    let info = p.c2s_info();
    p.server.recv_at(&mut out[..n], info, p.now).unwrap();
    assert_eq!(p.client.stats().sent, before.0 + 1);
    assert_eq!(p.server.stats().recv, before.1 + 1);
    assert!(p.server.spaces[2].ack_elicited);

    // Writable streams: the ones opened, none before.
    assert_eq!(p.client.stream_writable_next(), None);
    p.client.stream_send(4, b"x", false).unwrap();
    assert_eq!(p.client.stream_writable_next(), Some(4));

    // Datagram queues: lengths, bytes, full at the configured length.
    for (i, len) in [10usize, 20, 30].into_iter().enumerate() {
        assert!(!p.client.is_dgram_send_queue_full());
        p.client.dgram_send(&vec![7u8; len]).unwrap();
        assert_eq!(p.client.dgram_send_queue_len(), i + 1);
    }
    assert_eq!(p.client.dgram_send_queue_byte_size(), 60);
    assert!(p.client.is_dgram_send_queue_full());
    assert_eq!(p.client.dgram_send(b"y"), Err(Error::Done));
    p.run_until(1000, |p| p.server.dgram_recv_queue_len() == 3)
        .unwrap();
    assert_eq!(p.client.dgram_send_queue_len(), 0);
    assert_eq!(p.server.dgram_recv_queue_byte_size(), 60);
    assert!(!p.server.is_dgram_recv_queue_full());
    // Reading them: peek, front length, by vector.
    assert!(p.server.is_readable());
    assert_eq!(p.server.dgram_recv_front_len(), Some(10));
    let mut peek = [0u8; 4];
    assert_eq!(p.server.dgram_recv_peek(&mut peek, 3), Ok(3));
    assert_eq!(p.server.dgram_recv_queue_len(), 3);
    assert_eq!(p.server.dgram_recv_vec(), Ok(vec![7u8; 10]));
    assert_eq!(p.server.dgram_recv_front_len(), Some(20));
    // Queued datagrams can be taken back before they go.
    p.client.dgram_send_vec(vec![1; 5]).unwrap();
    p.client.dgram_send_vec(vec![2; 6]).unwrap();
    p.client.dgram_purge_outgoing(|d| d[0] == 1);
    assert_eq!(p.client.dgram_send_queue_byte_size(), 6);
    assert_eq!(
        p.client.dgram_send_vec(vec![0; 70_000]),
        Err(Error::BufferTooShort)
    );

    // One connection ID each after the handshake, two once another is
    // issued.
    assert_eq!(p.server.active_scids(), 1);
    let cid = crate::ConnectionId::from_vec(vec![0x77; 8]);
    p.server.new_scid(&cid, 0x99, false).unwrap();
    assert_eq!(p.server.active_scids(), 2);

    // Unpaced: the window's room in whole datagrams, less once some of
    // it is in flight.
    let room = p.client.recovery.cwnd_available();
    assert_eq!(p.client.send_quantum(), room / 1350 * 1350);
    p.client.stream_send(4, &[1u8; 5000], false).unwrap();
    while p.client.send_at(&mut out, p.now).is_ok() {}
    assert!(p.client.send_quantum() < room / 1350 * 1350);
    assert!(p.client.send_quantum() >= 1350);
}

/// The records of a JSON-SEQ qlog: each starts with RS and ends with LF.
fn qlog_records(log: &crate::testing::SharedLog) -> Vec<serde_json::Value> {
    let bytes = log.bytes();
    assert_eq!(bytes.first(), Some(&0x1e));
    bytes
        .split(|b| *b == 0x1e)
        .skip(1)
        .map(|r| {
            assert_eq!(r.last(), Some(&b'\n'));
            serde_json::from_slice(r).unwrap()
        })
        .collect()
}

fn qlog_events<'a>(records: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    records
        .iter()
        .filter(|r| r["name"] == name)
        .map(|r| &r["data"])
        .collect()
}

// qlog (JSON-SEQ, the sequential schema): every packet sent, received and
// lost is there with its frames, as many as the stats count; the peer's
// parameters, RTT metrics and both ends of the close too.
#[test]
fn qlog_records_the_connection() {
    use crate::testing::SharedLog;
    let lossy = LinkConfig {
        loss: 0.05,
        seed: 7,
        ..LinkConfig::default()
    };
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    let mut p = Pipe::with_configs(&mut c, &mut s, lossy.clone(), lossy).unwrap();
    let (clog, slog) = (SharedLog::default(), SharedLog::default());
    p.client
        .set_qlog(Box::new(clog.clone()), "client".into(), "a test".into());
    p.server
        .set_qlog(Box::new(slog.clone()), "server".into(), "a test".into());
    p.handshake().unwrap();
    let data = pattern(300_000);
    assert!(transfer(&mut p, &data, 1_000_000) == data);
    p.client.close(true, 7, b"bye").unwrap();
    p.run_until(10_000, |p| p.server.is_draining() || p.server.is_closed())
        .unwrap();

    let (cr, sr) = (qlog_records(&clog), qlog_records(&slog));
    assert_eq!(cr[0]["file_schema"], "urn:ietf:params:qlog:file:sequential");
    assert_eq!(cr[0]["trace"]["vantage_point"]["type"], "client");
    assert_eq!(sr[0]["trace"]["vantage_point"]["type"], "server");
    assert_eq!(
        cr[0]["trace"]["common_fields"]["group_id"],
        sr[0]["trace"]["common_fields"]["group_id"]
    );
    let (cs, ss) = (p.client.stats(), p.server.stats());
    assert_eq!(qlog_events(&cr, "quic:packet_sent").len(), cs.sent);
    assert_eq!(qlog_events(&sr, "quic:packet_received").len(), ss.recv);
    let lost = qlog_events(&cr, "quic:packet_lost");
    assert!(cs.lost > 0);
    assert_eq!(lost.len(), cs.lost);
    // Every byte of the stream arrived in logged STREAM frames.
    let stream_bytes: u64 = qlog_events(&sr, "quic:packet_received")
        .iter()
        .flat_map(|d| d["frames"].as_array().unwrap().iter())
        .filter(|f| f["frame_type"] == "stream" && f["stream_id"] == 0)
        .map(|f| f["raw"]["payload_length"].as_u64().unwrap())
        .sum();
    assert!(stream_bytes >= data.len() as u64, "{stream_bytes}");
    // The first packets: the client's Initial, number 0, with CRYPTO.
    let first = qlog_events(&cr, "quic:packet_sent")[0];
    assert_eq!(first["header"]["packet_type"], "initial");
    assert_eq!(first["header"]["packet_number"], 0);
    assert_eq!(first["frames"][0]["frame_type"], "crypto");
    // The peer's parameters as they came.
    let remote: Vec<_> = qlog_events(&cr, "quic:parameters_set")
        .into_iter()
        .filter(|d| d["initiator"] == "remote")
        .collect();
    assert_eq!(remote.len(), 1);
    assert_eq!(remote[0]["initial_max_data"], 10_000_000);
    let metrics = qlog_events(&cr, "quic:recovery_metrics_updated");
    assert!(metrics
        .iter()
        .any(|m| m["smoothed_rtt"].as_f64().is_some_and(|r| r > 0.0)));
    // Both ends of the close.
    let closed = qlog_events(&cr, "quic:connection_closed");
    assert_eq!(closed.len(), 1);
    assert_eq!(
        (&closed[0]["initiator"], &closed[0]["error_code"]),
        (&serde_json::json!("local"), &serde_json::json!(7))
    );
    let closed = qlog_events(&sr, "quic:connection_closed");
    assert_eq!(closed[0]["initiator"], "remote");
    assert_eq!(closed[0]["reason"], "bye");
}

/// STOP_SENDING makes the sender drop what it still had queued for the
/// stream (RFC 9000 §3.5: it answers with RESET_STREAM and stops sending
/// STREAM frames): a client that stops reading a 16 MB response after
/// 1 MB does not get the rest sent anyway.
#[test]
fn stop_sending_drops_the_queued_response() {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    for cfg in [&mut c, &mut s] {
        cfg.set_initial_max_data(64 << 20);
        cfg.set_initial_max_stream_data_bidi_local(32 << 20);
        cfg.set_initial_max_stream_data_bidi_remote(32 << 20);
    }
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    p.handshake().unwrap();
    p.client.stream_send(0, b"GET /big\r\n", true).unwrap();
    p.run_until(100, |p| p.server.stream_readable(0)).unwrap();
    let body = vec![7u8; 16 << 20];
    let (mut off, mut got) = (0, 0);
    let mut buf = vec![0u8; 1 << 16];
    // The server's application queues all it may; the client's reads.
    p.run_until(100_000, |p| {
        if let Ok(n) = p.server.stream_send(0, &body[off..], true) {
            off += n;
        }
        while let Ok((n, _)) = p.client.stream_recv(0, &mut buf) {
            got += n;
        }
        got >= 1 << 20
    })
    .unwrap();
    p.client.stream_shutdown(0, Shutdown::Read, 5).unwrap();
    let sent_at_stop = p.server.stats().sent_bytes;
    // The server learns of it: its writes fail with the client's code.
    p.run_until(1_000, |p| {
        matches!(
            p.server.stream_send(0, &body[off..], true),
            Err(Error::StreamStopped(5))
        )
    })
    .unwrap();
    // Once quiet, the server sent little more than what was in flight
    // (not the ~15 MB left of the body).
    p.run_until(10_000, |p| {
        p.server.stats().sent_bytes == {
            let before = p.server.stats().sent_bytes;
            let _ = p.advance();
            before
        }
    })
    .unwrap();
    let after = p.server.stats().sent_bytes - sent_at_stop;
    assert!(after < 2 << 20, "{after} bytes sent after STOP_SENDING");
    assert!(off < body.len(), "the whole body was accepted: {off}");
}
