//! Connection migration (RFC 9000 §9) over the in-memory pipe: a client
//! that moves or probes, a server that follows a peer (a NAT rebinding,
//! spoofed addresses) and pads its path responses.

use std::net::SocketAddr;
use std::time::Duration;

use super::tests::{forge_1rtt, pattern, transfer, transfer_on};
use crate::testing::{test_config, LinkConfig, Pipe};
use crate::{ConnectionId, Error, PathEvent};

/// Both sides issue every connection ID the other accepts, and the
/// NEW_CONNECTION_ID frames are delivered.
pub(super) fn issue_spare_ids(p: &mut Pipe) {
    for (conn, tag) in [(&mut p.client, 0xc0u8), (&mut p.server, 0x50)] {
        let mut i = 1u8;
        while conn.scids_left() > 0 {
            let cid = ConnectionId::from_vec(vec![tag, i, 1, 2, 3, 4, 5, 6]);
            conn.new_scid(&cid, u128::from(tag) << 8 | u128::from(i), false)
                .unwrap();
            i += 1;
        }
    }
    p.run_until(100, |p| {
        p.client.available_dcids() >= 1 && p.server.available_dcids() >= 1
    })
    .unwrap();
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn client_migrates_to_a_new_local_address() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    issue_spare_ids(&mut p);
    let data = pattern(400_000);
    assert!(transfer(&mut p, &data[..200_000], 1_000_000) == data[..200_000]);
    let client_dcid = p.client.destination_id().into_owned();
    let server_dcid = p.server.destination_id().into_owned();
    let measured_rtt = p.client.path_stats().next().unwrap().rtt;

    let new = addr(6000);
    let seq = p.client.migrate_source(new).unwrap();
    assert_eq!(seq, 1);
    // §9.5: a new local address, a connection ID not used before.
    assert_ne!(p.client.destination_id(), client_dcid);
    let s = p.client.path_stats().next().unwrap();
    assert_eq!((s.local_addr, s.validated), (new, false));
    // §9.4: the RTT estimate starts over.
    assert_ne!(s.rtt, measured_rtt);
    assert_eq!(s.rtt, Duration::from_millis(333));
    // The next datagram leaves from the new address with a challenge,
    // padded to 1200 bytes (§8.2.1).
    let mut out = vec![0u8; 1500];
    let (n, info) = p.client.send_at(&mut out, p.now).unwrap();
    assert_eq!((info.from, n), (new, 1200));
    p.rebind_client(new);
    p.c2s.push(out[..n].to_vec(), p.now);

    let got = transfer_on(&mut p, 4, &data[200_000..], 1_000_000);
    assert!(got[..] == data[200_000..]);
    p.run_until(100, |p| {
        p.server.path_stats().next().is_some_and(|s| s.validated)
            && p.client.path_stats().next().is_some_and(|s| s.validated)
    })
    .unwrap();
    // The server followed, validated the new address and, the client
    // having changed its ID, changed its own (§9.5).
    let s = p.server.path_stats().next().unwrap();
    assert_eq!((s.peer_addr, s.validated), (new, true));
    assert_ne!(p.server.destination_id(), server_dcid);
    // The client's own validation of the path succeeded too.
    assert!(p.client.path_stats().next().unwrap().validated);
    // Each side retired the ID it stopped using, and the other learned it.
    assert_eq!(p.server.retired_scid_next(), Some(client_dcid));
    assert_eq!(p.client.retired_scid_next(), Some(server_dcid));
    assert!(!p.client.is_closed() && !p.server.is_closed());
}

#[test]
fn migration_follows_the_rules() {
    let new = addr(6001);
    // §9: not before the handshake is confirmed.
    let mut p = Pipe::new().unwrap();
    assert_eq!(p.client.migrate_source(new), Err(Error::InvalidState));
    p.handshake().unwrap();
    // §9.5: not without a connection ID of the server's not used yet.
    assert_eq!(p.client.available_dcids(), 0);
    assert_eq!(p.client.migrate_source(new), Err(Error::OutOfIdentifiers));
    issue_spare_ids(&mut p);
    // Servers do not migrate; the peer address is the server's.
    assert_eq!(p.server.migrate_source(new), Err(Error::InvalidState));
    let local = p.client.path_stats().next().unwrap().local_addr;
    assert_eq!(p.client.migrate(new, addr(7)), Err(Error::InvalidState));
    // Staying put is no migration.
    assert_eq!(p.client.migrate_source(local), Ok(0));
    assert_eq!(p.client.available_dcids(), 1);

    // §9: "If the peer sent the disable_active_migration transport
    // parameter, an endpoint also MUST NOT send packets ... from a
    // different local address".
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    s.set_disable_active_migration(true);
    let link = LinkConfig::default();
    let mut p = Pipe::with_configs(&mut c, &mut s, link.clone(), link).unwrap();
    p.handshake().unwrap();
    issue_spare_ids(&mut p);
    assert_eq!(p.client.migrate_source(new), Err(Error::InvalidState));
}

// §9: "If a client receives packets from an unknown server address, the
// client MUST discard these packets."
#[test]
fn client_discards_packets_from_unknown_server_addresses() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    p.server.stream_send(1, b"hello", true).unwrap_or_else(|e| {
        panic!("stream_send: {e:?}");
    });
    let mut out = vec![0u8; 1500];
    let (n, _) = p.server.send_at(&mut out, p.now).unwrap();
    let dropped = p.client.stats().dropped;
    let mut copy = out[..n].to_vec();
    let info = crate::RecvInfo {
        from: addr(9999),
        to: p.s2c_info().to,
    };
    assert_eq!(p.client.recv_at(&mut copy, info, p.now), Ok(n));
    assert_eq!(p.client.stats().dropped, dropped + 1);
    assert!(!p.client.stream_readable(1));

    // The same datagram from the server's address is taken, and an
    // IPv4-mapped IPv6 form of that address is the same address.
    let server = p.s2c_info().from;
    let SocketAddr::V4(v4) = server else {
        panic!("the pipe's server address is IPv4");
    };
    let mapped = SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port()));
    let info = crate::RecvInfo {
        from: mapped,
        to: p.s2c_info().to,
    };
    p.client.recv_at(&mut out[..n], info, p.now).unwrap();
    assert_eq!(p.client.stats().dropped, dropped + 1);
    assert!(p.client.stream_readable(1));
}

// The same through 5% loss and 5% reordering each way, several seeds: lost
// challenges or responses are asked again, and every byte arrives.
#[test]
fn client_migrates_under_loss() {
    for seed in 1..=6 {
        let link = LinkConfig {
            loss: 0.05,
            reorder: 0.05,
            seed,
            ..LinkConfig::default()
        };
        let back = LinkConfig {
            seed: seed + 100,
            ..link.clone()
        };
        let mut c = test_config(false).unwrap();
        let mut s = test_config(true).unwrap();
        let mut p = Pipe::with_configs(&mut c, &mut s, link, back).unwrap();
        p.handshake().unwrap();
        issue_spare_ids(&mut p);
        let data = pattern(600_000);
        assert!(transfer(&mut p, &data[..200_000], 1_000_000) == data[..200_000]);
        let new = addr(6100 + seed as u16);
        p.client.migrate_source(new).unwrap();
        p.rebind_client(new);
        let got = transfer_on(&mut p, 4, &data[200_000..], 1_000_000);
        assert!(got[..] == data[200_000..], "seed {seed}");
        p.run_until(10_000, |p| {
            p.server.path_stats().next().is_some_and(|s| s.validated)
                && p.client.path_stats().next().is_some_and(|s| s.validated)
        })
        .unwrap_or_else(|_| panic!("seed {seed}: a path stayed unvalidated"));
        assert_eq!(p.server.path_stats().next().unwrap().peer_addr, new);
    }
}

// A server that cannot validate its client's new address goes back to the
// old one (RFC 9000 §9.3.2). When the client really moved, only a
// non-probing packet from the new address brings the server back (§9.3);
// a client waiting for a response with nothing in flight sends none by
// itself, so both sides would wait for the idle timeout. The client's
// stall probe (a PING after a PTO of silence while a request is open) is
// that packet.
#[test]
fn a_silent_client_brings_a_reverted_server_back() {
    use std::cell::Cell;
    use std::rc::Rc;

    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    // The request, acknowledged; the server answers with a first part.
    p.client.stream_send(0, b"GET /big\r\n", true).unwrap();
    p.run_until(1000, |p| p.server.stream_readable(0)).unwrap();
    let body = pattern(300_000);
    let mut sent = p.server.stream_send(0, &body[..1000], false).unwrap();
    let (old, _) = Pipe::addrs();
    let new = addr(6200);
    // The client's address changes under it (a NAT rebinding): its ACK of
    // that part, non-probing, moves the server to `new`, where nothing the
    // server sends arrives until the server gives up on the new address
    // and reverts; from then on it is the old address that is gone.
    p.rebind_client(new);
    let reverted = Rc::new(Cell::new(false));
    let r = reverted.clone();
    p.drop_server_datagrams(Some(Box::new(move |to, _| {
        to == if r.get() { old } else { new }
    })));
    p.run_until(10_000, |p| {
        p.server
            .path_stats()
            .next()
            .is_some_and(|s| s.peer_addr == new)
    })
    .unwrap();
    p.run_until(10_000, |p| {
        p.server
            .path_stats()
            .next()
            .is_some_and(|s| s.peer_addr == old)
    })
    .unwrap();
    reverted.set(true);

    // The server writes the rest of the response to the old address; the
    // client must bring it back for any of it to arrive.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    for _ in 0..100_000 {
        if sent < body.len() {
            sent += p.server.stream_send(0, &body[sent..], true).unwrap_or(0);
        }
        while let Ok((n, _)) = p.client.stream_recv(0, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() == body.len() || p.client.is_closed() {
            break;
        }
        p.advance().unwrap();
    }
    assert!(!p.client.is_timed_out(), "the connection idled out");
    assert!(got == body);
    let s = p.server.path_stats().next().unwrap();
    assert_eq!((s.peer_addr, s.validated), (new, true));
}

// The stall probe costs a slow server little: with a request open and the
// server silent but alive (it acknowledges each PING), the client probes
// after one PTO of silence, then after two, four... A response resets it.
#[test]
fn stall_probes_back_off() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    p.client.stream_send(0, b"GET /slow\r\n", true).unwrap();
    p.run_until(1000, |p| p.server.stream_readable(0)).unwrap();
    let sent = p.client.stats().sent;
    let start = p.now;
    while p.now < start + Duration::from_secs(10) {
        p.advance().unwrap();
    }
    let probes = p.client.stats().sent - sent;
    // PTO here is ~100 ms: 100 ms x (1 + 2 + ... + 64) is 12.7 s.
    assert!((4..=8).contains(&probes), "{probes} packets in 10 s");
    eprintln!("a silent server got {probes} PINGs in 10 s");
    assert!(!p.client.is_closed());
    assert!(p.client.stall_probes >= 4);
    // The response comes: the count starts over.
    p.server.stream_send(0, b"done", true).unwrap();
    p.run_until(1000, |p| p.client.stream_readable(0)).unwrap();
    assert_eq!(p.client.stall_probes, 0);
}

// RFC 9000 §8.2.2: "A PATH_RESPONSE frame MUST be sent on the network path
// where the PATH_CHALLENGE frame was received", padded to 1200 bytes within
// the anti-amplification limit, with a connection ID not used on another
// path (§9.5). A probe moves nothing; without a spare ID it goes
// unanswered.
#[test]
fn path_challenges_are_answered_on_their_path() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    let probe_from = addr(6300);
    let mut probe = vec![0x1a, 1, 2, 3, 4, 5, 6, 7, 8];
    probe.resize(1200, 0); // PADDING: the prober expands it (§8.2.1)
    let info = crate::RecvInfo {
        from: probe_from,
        to: p.c2s_info().to,
    };
    // No spare connection ID yet: nothing goes to the probing address.
    let mut pkt = crate::testing::forge_1rtt(&mut p.client, &probe).unwrap();
    p.server.recv_at(&mut pkt, info, p.now).unwrap();
    let mut out = vec![0u8; 1500];
    while let Ok((_, i)) = p.server.send_at(&mut out, p.now) {
        assert_ne!(i.to, probe_from);
    }

    issue_spare_ids(&mut p);
    let server_dcid = p.server.destination_id().into_owned();
    let mut pkt = crate::testing::forge_1rtt(&mut p.client, &probe).unwrap();
    p.server.recv_at(&mut pkt, info, p.now).unwrap();
    let (n, i) = p.server.send_at(&mut out, p.now).unwrap();
    assert_eq!((i.to, i.from, n), (probe_from, info.to, 1200));
    // Sent with one of the client's spare IDs, not the one in use.
    let spare = &out[1..9];
    assert_ne!(spare, &server_dcid[..]);
    assert!(p.client.source_ids().any(|c| &c[..] == spare));
    // The client opens it (the packet is a real 1-RTT packet of this
    // connection) when it arrives on the probed path.
    let recv = p.client.stats().recv;
    let mut d = out[..n].to_vec();
    let to_probe = crate::RecvInfo {
        from: p.s2c_info().from,
        to: probe_from,
    };
    p.client.recv_at(&mut d, to_probe, p.now).unwrap();
    assert_eq!(p.client.stats().recv, recv + 1);
    // The probe moved nothing; the spare is retired once used.
    let s = p.server.path_stats().next().unwrap();
    assert_eq!(s.peer_addr, p.c2s_info().from);
    assert_eq!(p.server.destination_id(), server_dcid);
    p.run_until(100, |p| {
        p.client
            .retired_scid_next()
            .is_some_and(|c| &c[..] == spare)
    })
    .unwrap();
}

// The boxed queues of rare frames (NEW_CONNECTION_ID here) and of
// datagrams are freed once empty and the sender idle: an idle connection
// pays only for what it holds.
#[test]
fn idle_connections_free_their_frame_queues() {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    c.enable_dgram(true, 10, 10);
    s.enable_dgram(true, 10, 10);
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    p.handshake().unwrap();
    assert!(p.server.pending.queues.is_none() && p.server.dgrams.is_none());
    issue_spare_ids(&mut p);
    p.client.dgram_send(b"unreliable").unwrap();
    assert!(p.client.dgrams.is_some());
    p.run_until(100, |p| p.server.dgram_recv_queue_len() == 1)
        .unwrap();
    let mut b = [0u8; 64];
    assert_eq!(p.server.dgram_recv(&mut b), Ok(10));
    let freed = |c: &crate::Connection| c.pending.queues.is_none() && c.dgrams.is_none();
    for _ in 0..50 {
        p.advance().unwrap();
        if freed(&p.server) && freed(&p.client) {
            break;
        }
    }
    assert!(freed(&p.server) && freed(&p.client));
}

// Two migrations in a row (A → B → C) with data flowing both ways and a
// key update in between: after each move the server follows, the client
// retires the ID it used, and once the server issued a replacement the
// client can move again.
#[test]
fn client_migrates_twice_with_uploads_and_a_key_update() {
    let link = LinkConfig {
        loss: 0.02,
        reorder: 0.02,
        seed: 5,
        ..LinkConfig::default()
    };
    let back = LinkConfig {
        seed: 6,
        ..link.clone()
    };
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    let mut p = Pipe::with_configs(&mut c, &mut s, link, back).unwrap();
    p.handshake().unwrap();
    let data = pattern(300_000);
    let mut next_stream = 0;
    for (i, port) in [6400u16, 6401].into_iter().enumerate() {
        issue_spare_ids(&mut p);
        // An upload on a fresh stream before and after each move.
        assert!(transfer_on(&mut p, next_stream, &data, 1_000_000) == data);
        next_stream += 4;
        let seq = p.client.migrate_source(addr(port)).unwrap();
        assert_eq!(seq, i as u64 + 1);
        p.rebind_client(addr(port));
        if i == 0 {
            p.client.initiate_key_update().unwrap();
        }
        assert!(transfer_on(&mut p, next_stream, &data, 1_000_000) == data);
        next_stream += 4;
        p.run_until(10_000, |p| {
            p.server
                .path_stats()
                .next()
                .is_some_and(|s| s.peer_addr == addr(port) && s.validated)
                && p.client.path_stats().next().is_some_and(|s| s.validated)
        })
        .unwrap();
    }
    // Server-initiated data after the last move reaches the client.
    p.server
        .stream_send(1, b"pushed after two moves", true)
        .unwrap();
    p.run_until(1000, |p| p.client.stream_readable(1)).unwrap();
    let mut b = [0u8; 64];
    let (n, fin) = p.client.stream_recv(1, &mut b).unwrap();
    assert_eq!((&b[..n], fin), (&b"pushed after two moves"[..], true));
    assert!(p.client.stats().key_updates >= 1);
    assert!(!p.client.is_closed() && !p.server.is_closed());
}

/// One datagram from `from`'s `send_at` (None: nothing to send).
fn next_datagram(
    c: &mut crate::Connection,
    now: std::time::Instant,
) -> Option<(Vec<u8>, crate::SendInfo)> {
    let mut out = vec![0u8; 1500];
    let (n, info) = c.send_at(&mut out, now).ok()?;
    out.truncate(n);
    Some((out, info))
}

// RFC 9000 §9.1: the client validates a new path before moving to it. The
// probe leaves from the new address with a connection ID of its own,
// padded to 1200 bytes; the server answers on that path without moving;
// `migrate` then moves onto the validated path with that ID and no second
// validation, and the server follows.
#[test]
fn client_probes_then_migrates() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    // Without a spare connection ID no path can be probed.
    let new = addr(6500);
    assert_eq!(
        p.client.probe_path(new, p.s2c_info().from),
        Err(Error::OutOfIdentifiers)
    );
    issue_spare_ids(&mut p);
    let server = p.s2c_info().from;
    let old_dcid = p.client.destination_id().into_owned();
    let seq = p.client.probe_path(new, server).unwrap();
    assert_eq!(p.client.is_path_validated(new, server), Ok(false));
    assert_eq!(
        p.client.is_path_validated(addr(1), server),
        Err(Error::InvalidState)
    );
    // The probe: from `new`, 1200 bytes, a connection ID not in use.
    let (mut d, info) = next_datagram(&mut p.client, p.now).unwrap();
    assert_eq!((info.from, info.to, d.len()), (new, server, 1200));
    assert_ne!(&d[1..1 + old_dcid.len()], &old_dcid[..]);
    // The server answers on the probed path and stays where it is.
    let from_new = crate::RecvInfo {
        from: new,
        to: server,
    };
    p.server.recv_at(&mut d, from_new, p.now).unwrap();
    let (mut r, rinfo) = next_datagram(&mut p.server, p.now).unwrap();
    assert_eq!(rinfo.to, new);
    assert_eq!(
        p.server.path_stats().next().unwrap().peer_addr,
        p.c2s_info().from
    );
    let to_new = crate::RecvInfo {
        from: server,
        to: new,
    };
    p.client.recv_at(&mut r, to_new, p.now).unwrap();
    assert_eq!(p.client.is_path_validated(new, server), Ok(true));
    assert_eq!(
        p.client.path_event_next(),
        Some(PathEvent::Validated(new, server))
    );
    assert_eq!(p.client.path_event_next(), None);
    // The server saw a probe, no migration: no event there.
    assert_eq!(p.server.path_event_next(), None);
    // The old path is untouched meanwhile.
    assert_eq!(p.client.destination_id(), old_dcid);

    // Move: the probe's ID, no new challenge needed.
    let old = p.c2s_info().from;
    assert_eq!(p.client.migrate(new, server), Ok(seq));
    assert_eq!(
        p.client.path_event_next(),
        Some(PathEvent::Closed(old, server))
    );
    assert_eq!(p.client.is_path_validated(new, server), Ok(true));
    assert!(p.client.path_validation.is_none());
    p.rebind_client(new);
    let data = pattern(200_000);
    assert!(transfer(&mut p, &data, 1_000_000) == data);
    p.run_until(1000, |p| {
        p.server
            .path_stats()
            .next()
            .is_some_and(|s| s.peer_addr == new && s.validated)
    })
    .unwrap();
    // The server followed the peer (§9.3) and validated its address.
    let events: Vec<PathEvent> = std::iter::from_fn(|| p.server.path_event_next()).collect();
    assert_eq!(
        events,
        [
            PathEvent::New(server, new),
            PathEvent::Validated(server, new),
            PathEvent::PeerMigrated(server, new)
        ]
    );
    // The ID used before the move is retired.
    p.run_until(1000, |p| {
        p.server.retired_scid_next().is_some_and(|c| c == old_dcid)
    })
    .unwrap();
}

// A probe that gets no answer is asked again after a PTO and given up
// after three (at least 3 s): the path is then unknown, its connection ID
// retired, and the connection carries on where it was.
#[test]
fn unanswered_probes_are_retried_then_dropped() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    issue_spare_ids(&mut p);
    let (new, server) = (addr(6501), p.s2c_info().from);
    p.client.probe_path(new, server).unwrap();
    let reserved = {
        let (d, _) = next_datagram(&mut p.client, p.now).unwrap();
        d[1..9].to_vec()
    };
    let start = p.now;
    let mut probes = 1;
    // Nothing comes back: run the client's timers alone.
    while p.client.is_path_validated(new, server).is_ok() {
        let t = p.client.timeout_instant().unwrap();
        assert!(t < start + Duration::from_secs(10), "the probe never ended");
        p.now = t;
        p.client.on_timeout_at(t);
        while let Some((d, info)) = next_datagram(&mut p.client, p.now) {
            if info.from == new {
                probes += 1;
                assert_eq!(&d[1..9], &reserved[..]);
            }
        }
    }
    assert!(probes >= 3, "{probes} probes");
    assert!(p.now >= start + Duration::from_secs(3));
    assert!(!p.client.is_closed());
    assert_eq!(
        p.client.path_event_next(),
        Some(PathEvent::FailedValidation(new, server))
    );
    // Its ID is retired; the connection still works on the old path.
    p.run_until(1000, |p| {
        p.server
            .retired_scid_next()
            .is_some_and(|c| c[..] == reserved[..])
    })
    .unwrap();
    let data = pattern(50_000);
    assert!(transfer(&mut p, &data, 100_000) == data);
}

/// quiche's path-scoped calls, as its migrating client uses them: for each
/// local address, `paths_iter` names the peers and `send_on_path` writes
/// only that path's datagrams (the probe's challenge from the new address,
/// everything else from the current one); `send_quantum_on_path` and
/// `send_ack_eliciting_on_path` answer per path.
#[test]
fn path_scoped_sends_as_quiche_clients_use_them() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    issue_spare_ids(&mut p);
    let (old, server) = (p.c2s_info().from, p.s2c_info().from);
    let new = addr(6600);
    assert_eq!(p.client.paths_iter(old).collect::<Vec<_>>(), [server]);
    assert_eq!(p.client.paths_iter(new).count(), 0);
    assert_eq!(p.client.send_quantum_on_path(new, server), 0);
    assert_eq!(
        p.client.send_ack_eliciting_on_path(new, server),
        Err(Error::InvalidState)
    );
    p.client.probe_path(new, server).unwrap();
    p.client.stream_send(0, b"on the old path", true).unwrap();
    assert_eq!(p.client.paths_iter(new).collect::<Vec<_>>(), [server]);
    assert_eq!(p.client.send_quantum_on_path(new, server), 1350);
    assert!(p.client.send_quantum_on_path(old, server) >= 1350);
    assert_eq!(p.client.send_ack_eliciting_on_path(new, server), Ok(()));

    // The current path first: its datagrams only (the stream data), none
    // for the probed path.
    let mut out = [0u8; 1500];
    let now = p.now;
    let (n, info) = p
        .client
        .send_on_path_at(&mut out, Some(old), Some(server), now)
        .unwrap();
    assert_eq!((info.from, info.to), (old, server));
    let mut d = out[..n].to_vec();
    p.server.recv_at(&mut d, p.c2s_info(), now).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(p.server.stream_recv(0, &mut buf), Ok((15, true)));
    assert_eq!(
        p.client
            .send_on_path_at(&mut out, Some(old), Some(server), now),
        Err(Error::Done)
    );
    // Then the probed path: its challenge, from the new address.
    let (n, info) = p
        .client
        .send_on_path_at(&mut out, Some(new), None, now)
        .unwrap();
    assert_eq!((info.from, info.to, n), (new, server, 1200));
    assert_eq!(
        p.client
            .send_on_path_at(&mut out, Some(new), Some(server), now),
        Err(Error::Done)
    );
    // The server answers on the path the challenge came on, through
    // `send_on_path` too: `paths_iter` of its address names the new peer.
    let mut d = out[..n].to_vec();
    let from_new = crate::RecvInfo {
        from: new,
        to: server,
    };
    p.server.recv_at(&mut d, from_new, now).unwrap();
    assert!(p.server.paths_iter(server).any(|a| a == new));
    // Not from an address of ours it did not come to.
    assert_eq!(
        p.server.send_on_path_at(&mut out, Some(addr(9)), None, now),
        Err(Error::Done)
    );
    let (n, info) = p
        .server
        .send_on_path_at(&mut out, Some(server), Some(new), now)
        .unwrap();
    assert_eq!(info.to, new);
    let mut r = out[..n].to_vec();
    let to_new = crate::RecvInfo {
        from: server,
        to: new,
    };
    p.client.recv_at(&mut r, to_new, now).unwrap();
    assert_eq!(p.client.is_path_validated(new, server), Ok(true));
    // A path nobody uses has nothing.
    assert_eq!(
        p.client.send_on_path_at(&mut out, Some(addr(1)), None, now),
        Err(Error::Done)
    );
}

// RFC 9000 §8.2.2: the datagram that carries a PATH_RESPONSE is padded to
// at least 1200 bytes; an ordinary ACK is not.
#[test]
fn path_response_datagrams_are_padded_to_1200_bytes() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    for _ in 0..4 {
        p.flush().unwrap();
        p.deliver().unwrap();
    }
    let (info, now) = (p.s2c_info(), p.now);
    let mut out = vec![0u8; 1500];
    // PING: answered by a small ACK-only datagram.
    let mut ping = forge_1rtt(&mut p.server, &[0x01]);
    p.client.recv_at(&mut ping, info, now).unwrap();
    p.client.on_timeout_at(now + Duration::from_millis(30));
    let (n, _) = p
        .client
        .send_at(&mut out, now + Duration::from_millis(30))
        .unwrap();
    assert!(n < 100, "{n}");
    // PATH_CHALLENGE: the PATH_RESPONSE comes in a padded datagram.
    let mut challenge = vec![0x1a];
    challenge.extend_from_slice(&[7u8; 8]);
    let mut pkt = forge_1rtt(&mut p.server, &challenge);
    p.client.recv_at(&mut pkt, info, now).unwrap();
    let (n, _) = p.client.send_at(&mut out, now).unwrap();
    assert!(n >= 1200, "{n}");
}

// RFC 9000 §9.3: a NAT rebinding on the client's side. The server follows
// the first non-probing packet from the new address, validates it with
// PATH_CHALLENGE (sending at most three times what it received there
// meanwhile), and the transfer carries on to the new address. A port-only
// change keeps the congestion window (§9.4).
#[test]
fn server_follows_a_nat_rebinding() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    let data = pattern(300_000);
    assert!(transfer(&mut p, &data[..100_000], 1_000_000) == data[..100_000]);
    let cwnd_before = p.server.path_stats().next().unwrap().cwnd;
    let (old, _) = Pipe::addrs();
    let new = SocketAddr::from(([127, 0, 0, 1], 5555));
    assert_eq!(p.server.path_stats().next().unwrap().peer_addr, old);

    p.rebind_client(new);
    p.client
        .stream_send(4, b"after the rebinding", false)
        .unwrap();
    for _ in 0..100 {
        if p.server.path_stats().next().unwrap().peer_addr == new {
            break;
        }
        p.advance().unwrap();
    }
    let s = p.server.path_stats().next().unwrap();
    assert_eq!((s.peer_addr, s.validated), (new, false));
    assert_eq!(s.cwnd, cwnd_before, "only the port changed");
    let mut out = vec![0u8; 1500];
    let (n, info) = p.server.send_at(&mut out, p.now).unwrap();
    assert_eq!(info.to, new);
    // The PATH_CHALLENGE, at most three times what came from there.
    assert!(n <= 3 * 100, "{n}");
    p.s2c.push(out[..n].to_vec(), p.now);

    // The client answers the challenge; the rest flows to the new address.
    let got = transfer_on(&mut p, 8, &data[100_000..], 1_000_000);
    assert!(got[..] == data[100_000..]);
    let s = p.server.path_stats().next().unwrap();
    assert_eq!((s.peer_addr, s.validated), (new, true));
}

// A new IP address (not just a port) restarts congestion control and the
// RTT estimate (RFC 9000 §9.4); a probing-only packet from elsewhere, or an
// older one, moves nothing (§9.3: "only ... the highest-numbered
// non-probing packet").
#[test]
fn peer_address_changes_follow_the_rules() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    let data = pattern(200_000);
    assert!(transfer(&mut p, &data, 1_000_000) == data);
    let (old, _) = Pipe::addrs();
    let now = p.now;
    let elsewhere = SocketAddr::from(([10, 9, 8, 7], 4444));

    // PATH_CHALLENGE alone: a probe, not a migration.
    let mut probe = vec![0x1a];
    probe.extend_from_slice(&[1u8; 8]);
    let mut pkt = forge_1rtt(&mut p.client, &probe);
    let info = crate::RecvInfo {
        from: elsewhere,
        to: p.c2s_info().to,
    };
    p.server.recv_at(&mut pkt, info, now).unwrap();
    assert_eq!(p.server.path_stats().next().unwrap().peer_addr, old);

    // An older packet from elsewhere: ignored for the path.
    let mut older = forge_1rtt(&mut p.client, &[0x01]);
    let mut newer = forge_1rtt(&mut p.client, &[0x01]);
    p.server.recv_at(&mut newer, p.c2s_info(), now).unwrap();
    p.server.recv_at(&mut older, info, now).unwrap();
    assert_eq!(p.server.path_stats().next().unwrap().peer_addr, old);

    // A newer PING from another IP: the server moves, and starts over.
    let fresh = Pipe::new().unwrap().server.path_stats().next().unwrap();
    let measured = p.server.path_stats().next().unwrap().rtt;
    assert_ne!(measured, fresh.rtt);
    let mut ping = forge_1rtt(&mut p.client, &[0x01]);
    p.server.recv_at(&mut ping, info, now).unwrap();
    let s = p.server.path_stats().next().unwrap();
    assert_eq!((s.peer_addr, s.validated), (elsewhere, false));
    assert_eq!((s.cwnd, s.rtt), (fresh.cwnd, fresh.rtt));
}

// RFC 9000 §9.3.2: a spoofed packet moves the server away; when the real
// client's next packet comes from its validated address the server goes
// straight back (no validation needed), and if nothing answers the
// challenges the server reverts once validation times out (§8.2.4).
#[test]
fn spoofed_migrations_are_undone() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    let data = pattern(50_000);
    assert!(transfer(&mut p, &data, 1_000_000) == data);
    let (old, _) = Pipe::addrs();
    let spoofed = crate::RecvInfo {
        from: SocketAddr::from(([10, 6, 6, 6], 666)),
        to: p.c2s_info().to,
    };
    let now = p.now;

    // Moved by a spoofed copy, back with the next genuine packet.
    let mut copy = forge_1rtt(&mut p.client, &[0x01]);
    p.server.recv_at(&mut copy, spoofed, now).unwrap();
    assert_eq!(
        p.server.path_stats().next().unwrap().peer_addr,
        spoofed.from
    );
    let mut genuine = forge_1rtt(&mut p.client, &[0x01]);
    p.server.recv_at(&mut genuine, p.c2s_info(), now).unwrap();
    let s = p.server.path_stats().next().unwrap();
    assert_eq!((s.peer_addr, s.validated), (old, true));
    let here = p.c2s_info().to;
    let events: Vec<_> = std::iter::from_fn(|| p.server.path_event_next()).collect();
    assert_eq!(
        events,
        [
            PathEvent::New(here, spoofed.from),
            PathEvent::PeerMigrated(here, old)
        ]
    );

    // Moved again, and nobody answers: back when validation times out.
    let mut copy = forge_1rtt(&mut p.client, &[0x01]);
    p.server.recv_at(&mut copy, spoofed, now).unwrap();
    assert_eq!(
        p.server.path_stats().next().unwrap().peer_addr,
        spoofed.from
    );
    let mut out = vec![0u8; 1500];
    let mut t = now;
    for _ in 0..100 {
        while p.server.send_at(&mut out, t).is_ok() {}
        let Some(next) = p.server.timeout_instant() else {
            break;
        };
        t = next;
        p.server.on_timeout_at(t);
        if p.server.path_stats().next().unwrap().peer_addr == old {
            break;
        }
    }
    let s = p.server.path_stats().next().unwrap();
    assert_eq!((s.peer_addr, s.validated), (old, true));
    assert!(!p.server.is_closed());
    let events: Vec<_> = std::iter::from_fn(|| p.server.path_event_next()).collect();
    assert_eq!(
        events,
        [
            PathEvent::New(here, spoofed.from),
            PathEvent::FailedValidation(here, spoofed.from)
        ]
    );
    assert!(t - now >= Duration::from_secs(3), "{:?}", t - now);
}
