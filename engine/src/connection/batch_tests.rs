//! Batched send and receive (`batch.rs`): GSO-shaped batches, deferred
//! and precomputed header protection, the rules that end a batch.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::migration_tests::issue_spare_ids;
use super::tests::pattern;
use crate::testing::{test_config, LinkConfig, Pipe};
use crate::{Error, RecvInfo};

/// How the client sends and the server receives in [`run`].
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `send_batch`, the server takes each batch with `recv_batch`.
    Batches,
    /// `send_batch`, the server takes the datagrams one by one (`recv`).
    BatchesOneByOne,
    /// `send` per datagram, laid out as a GRO buffer for `recv_batch`.
    GroOnly,
}

/// What [`run`] saw.
struct Run {
    got: Vec<u8>,
    /// Segments of each batch the client sent.
    segments: Vec<usize>,
    /// Segment sizes of batches with more than one datagram.
    sizes: Vec<usize>,
}

/// A pipe on zero-delay links, pacing as asked.
fn pipe(pacing: bool) -> Pipe {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    c.enable_pacing(pacing);
    s.enable_pacing(pacing);
    let link = LinkConfig {
        delay: Duration::ZERO,
        ..LinkConfig::default()
    };
    let mut p = Pipe::with_configs(&mut c, &mut s, link.clone(), link).unwrap();
    p.handshake().unwrap();
    p
}

/// Moves `data` client → server on stream 0 by batches of at most `max`
/// datagrams; `tamper(batch number, buffer, segment size)` may change a
/// batch on its way. The server's datagrams go back one by one. The clock
/// moves to each batch's send time, on by `delay` each way, and to timers
/// when nothing moves. Checks the GSO layout of every batch.
#[allow(clippy::too_many_arguments)]
fn run(
    p: &mut Pipe,
    data: &[u8],
    max: usize,
    mode: Mode,
    delay: Duration,
    mut tamper: impl FnMut(usize, &mut [u8], usize),
    mut between: impl FnMut(usize, &mut Pipe),
) -> Run {
    let (ca, sa) = (p.c2s_info(), p.s2c_info());
    let mut gso = vec![0u8; max * 1500];
    let mut dgram = vec![0u8; 1500];
    let mut buf = vec![0u8; 1 << 16];
    let mut r = Run {
        got: Vec::new(),
        segments: Vec::new(),
        sizes: Vec::new(),
    };
    let mut sent = 0;
    for step in 0..200_000 {
        if r.got.len() == data.len() {
            return r;
        }
        between(step, p);
        if sent < data.len() {
            match p.client.stream_send(0, &data[sent..], true) {
                Ok(n) => sent += n,
                Err(Error::Done) => (),
                Err(e) => panic!("stream_send: {e:?}"),
            }
        }
        let mut progress = false;
        let batch = match mode {
            Mode::Batches | Mode::BatchesOneByOne => {
                match p.client.send_batch_at(&mut gso, max, p.now) {
                    Ok(b) => {
                        assert_eq!(b.info.to, ca.to);
                        assert!(b.len > (b.segments - 1) * b.segment_size);
                        assert!(b.len <= b.segments * b.segment_size);
                        p.now = p.now.max(b.info.at);
                        Some((b.len, b.segment_size, b.segments))
                    }
                    Err(Error::Done) => None,
                    Err(e) => panic!("send_batch: {e:?}"),
                }
            }
            Mode::GroOnly => {
                // Datagrams of one size back to back, as GRO would merge
                // them: a shorter one ends the buffer.
                let (mut len, mut seg, mut n) = (0, 0, 0);
                while n < max {
                    match p.client.send_at(&mut dgram, p.now) {
                        Ok((k, _)) => {
                            gso[len..len + k].copy_from_slice(&dgram[..k]);
                            len += k;
                            n += 1;
                            if seg == 0 {
                                seg = k;
                            }
                            if k != seg {
                                break;
                            }
                        }
                        Err(Error::Done) => break,
                        Err(e) => panic!("send: {e:?}"),
                    }
                }
                (n > 0).then_some((len, seg, n))
            }
        };
        if let Some((len, seg, n)) = batch {
            progress = true;
            r.segments.push(n);
            if n > 1 {
                r.sizes.push(seg);
            }
            tamper(r.segments.len(), &mut gso[..len], seg);
            p.now += delay;
            if mode == Mode::BatchesOneByOne {
                for d in gso[..len].chunks_mut(seg) {
                    p.server.recv_at(d, ca, p.now).unwrap();
                }
            } else {
                let got = p.server.recv_batch_at(&mut gso[..len], seg, ca, p.now);
                assert_eq!(got, Ok(len));
            }
        }
        while let Ok((n, _)) = p.server.stream_recv(0, &mut buf) {
            r.got.extend_from_slice(&buf[..n]);
        }
        let mut acks = Vec::new();
        while let Ok((n, _)) = p.server.send_at(&mut dgram, p.now) {
            progress = true;
            acks.push(dgram[..n].to_vec());
        }
        if !acks.is_empty() {
            p.now += delay;
        }
        for mut d in acks {
            p.client.recv_at(&mut d, sa, p.now).unwrap();
        }
        if !progress {
            let t = [p.client.timeout_instant(), p.server.timeout_instant()]
                .into_iter()
                .flatten()
                .min()
                .expect("stuck with no timer");
            p.now = p.now.max(t);
            p.client.on_timeout_at(p.now);
            p.server.on_timeout_at(p.now);
        }
        assert!(!p.client.is_closed() && !p.server.is_closed());
    }
    panic!("transfer did not finish: {} of {}", r.got.len(), data.len());
}

fn nothing(_: usize, _: &mut [u8], _: usize) {}
fn no_op(_: usize, _: &mut Pipe) {}

/// Moves 1 MB (3 MB for full batches) by `mode`, batches of at most
/// `max`, on a clean zero-delay pipe: byte-exact, nothing dropped, and
/// some batch full.
fn clean_transfer(mode: Mode, max: usize) -> Pipe {
    let mut p = pipe(false);
    let data = pattern(if mode == Mode::Batches {
        3_000_000
    } else {
        1_000_000
    });
    let r = run(&mut p, &data, max, mode, Duration::ZERO, nothing, no_op);
    assert!(r.got == data);
    assert_eq!(r.segments.iter().max(), Some(&max));
    // All full-size datagrams.
    assert!(r.sizes.iter().all(|s| *s == 1350), "{:?}", r.sizes);
    assert_eq!(p.server.stats().dropped, 0);
    p
}

#[test]
fn batches_carry_a_transfer_byte_exact() {
    let p = clean_transfer(Mode::Batches, 16);
    let (c, s) = (p.client.stats(), p.server.stats());
    assert_eq!(c.lost, 0);
    assert_eq!(s.recv, c.sent);
}

// The deferred header protection makes packets any receiver opens alone.
#[test]
fn batch_datagrams_open_one_by_one() {
    clean_transfer(Mode::BatchesOneByOne, 8);
}

// Masks computed for a GRO buffer open packets sealed one at a time.
#[test]
fn recv_batch_takes_datagrams_sent_one_by_one() {
    clean_transfer(Mode::GroOnly, 16);
}

// A damaged datagram in a batch is dropped alone (its mask and its
// neighbours' are independent); loss recovery sends it again.
#[test]
fn recv_batch_drops_a_damaged_segment_and_keeps_the_rest() {
    let mut p = pipe(false);
    let data = pattern(1_000_000);
    let mut damaged = 0;
    let r = run(
        &mut p,
        &data,
        16,
        Mode::Batches,
        Duration::ZERO,
        |n, buf, seg| {
            let count = buf.len().div_ceil(seg);
            if n % 5 == 0 && count > 2 {
                // The payload of the second datagram, and the first byte
                // of the last (a long header now, of no version we know).
                buf[seg + 40] ^= 0x55;
                buf[(count - 1) * seg] |= 0x80;
                damaged += 2;
            }
        },
        no_op,
    );
    assert!(r.got == data);
    assert!(damaged > 10, "{damaged}");
    let s = p.server.stats();
    assert!(s.dropped >= damaged, "{} < {damaged}", s.dropped);
    assert!(p.client.stats().lost >= damaged);
}

#[test]
fn pacing_ends_a_batch() {
    // 10 ms of RTT: the pacer spreads the window over it.
    let delay = Duration::from_millis(5);
    let data = pattern(2_000_000);
    let mut p = pipe(true);
    let paced = run(&mut p, &data, 32, Mode::Batches, delay, nothing, no_op);
    assert!(paced.got == data);
    // At most the pacer's burst (10 datagrams) after the first.
    let most = *paced.segments.iter().max().unwrap();
    assert!(most <= 11, "{most}");
    let mut p = pipe(false);
    let free = run(&mut p, &data, 32, Mode::Batches, delay, nothing, no_op);
    assert!(free.got == data);
    assert_eq!(free.segments.iter().max(), Some(&32));
}

#[test]
fn key_updates_in_the_middle_of_batches() {
    let mut p = pipe(false);
    let data = pattern(2_000_000);
    let r = run(
        &mut p,
        &data,
        16,
        Mode::Batches,
        Duration::ZERO,
        nothing,
        |step, p| {
            // The client updates every 20 steps once allowed (an ACK of the
            // current phase arrived); the server follows.
            if step % 20 == 19 {
                let _ = p.client.initiate_key_update();
            }
        },
    );
    assert!(r.got == data);
    let (c, s) = (p.client.stats(), p.server.stats());
    assert!(c.key_updates >= 2, "{}", c.key_updates);
    assert_eq!(s.key_updates, c.key_updates);
    assert_eq!(s.dropped, 0);
}

// The handshake runs through batches as well: nothing is deferred before
// 1-RTT keys, and handshake datagrams end their batch.
#[test]
fn handshake_through_batches() {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    let (ca, sa) = Pipe::addrs();
    let mut client = crate::connect(Some("localhost"), &cid(1), ca, sa, &mut c).unwrap();
    let mut server = crate::accept(&cid(2), None, sa, ca, &mut s).unwrap();
    let now = Instant::now();
    let mut gso = vec![0u8; 8 * 1500];
    for _ in 0..20 {
        for client_sends in [true, false] {
            let (from, to, info) = if client_sends {
                (&mut client, &mut server, RecvInfo { from: ca, to: sa })
            } else {
                (&mut server, &mut client, RecvInfo { from: sa, to: ca })
            };
            while let Ok(b) = from.send_batch_at(&mut gso, 8, now) {
                assert!(b.len <= b.segments * b.segment_size);
                to.recv_batch_at(&mut gso[..b.len], b.segment_size, info, now)
                    .unwrap();
            }
        }
        if client.is_established() && server.is_established() && client.handshake_confirmed {
            break;
        }
    }
    assert!(client.is_established() && server.is_established());
    assert!(client.handshake_confirmed && server.handshake_confirmed);
    client
        .stream_send(0, b"after a batched handshake", true)
        .unwrap();
    let b = client.send_batch_at(&mut gso, 8, now).unwrap();
    let info = RecvInfo { from: ca, to: sa };
    server
        .recv_batch_at(&mut gso[..b.len], b.segment_size, info, now)
        .unwrap();
    let mut out = [0u8; 64];
    assert_eq!(
        server.stream_recv(0, &mut out),
        Ok((25, true)),
        "{:?}",
        &out[..25]
    );
    assert_eq!(&out[..25], b"after a batched handshake");
}

fn cid(tag: u8) -> crate::ConnectionId<'static> {
    crate::ConnectionId::from_vec(vec![tag; 16])
}

#[test]
fn bad_arguments_are_errors() {
    let mut p = pipe(false);
    let mut gso = vec![0u8; 4 * 1500];
    assert_eq!(
        p.client.send_batch_at(&mut gso, 0, p.now),
        Err(Error::BufferTooShort)
    );
    assert_eq!(
        p.client.send_batch_at(&mut [], 4, p.now),
        Err(Error::BufferTooShort)
    );
    let ca = p.c2s_info();
    assert_eq!(
        p.server.recv_batch_at(&mut gso, 0, ca, p.now),
        Err(Error::BufferTooShort)
    );
    assert_eq!(
        p.server.recv_batch_at(&mut [], 1350, ca, p.now),
        Err(Error::BufferTooShort)
    );
    // Nothing to send: Done, as `send`.
    p.run_until(100, |p| {
        p.client.send_at(&mut [0; 1500], p.now) == Err(Error::Done)
    })
    .unwrap();
    assert_eq!(p.client.send_batch_at(&mut gso, 4, p.now), Err(Error::Done));
    // Garbage of every segment size is dropped, not an error.
    let mut junk: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 256) as u8).collect();
    for seg in [1, 19, 20, 21, 1350] {
        assert_eq!(
            p.server.recv_batch_at(&mut junk, seg, ca, p.now),
            Ok(junk.len())
        );
    }
    assert!(!p.server.is_closed());
}

// A batch leaves the state it made when the connection goes idle.
#[test]
fn idle_connections_drop_their_batch_state() {
    let mut p = pipe(false);
    let data = pattern(300_000);
    let mut both_had = false;
    let r = run(
        &mut p,
        &data,
        16,
        Mode::Batches,
        Duration::ZERO,
        nothing,
        |_, p| {
            both_had |= p.client.batch.is_some() && p.server.batch.is_some();
        },
    );
    assert!(r.got == data);
    assert!(both_had);
    p.run_until(1000, |p| p.client.recovery.bytes_in_flight() == 0)
        .unwrap();
    // Idle once: kept (batches may come on); twice in a row: dropped.
    for conn in [&mut p.client, &mut p.server] {
        assert_eq!(conn.send_at(&mut [0; 1500], p.now), Err(Error::Done));
    }
    assert!(p.client.batch.is_some() || p.server.batch.is_some());
    for conn in [&mut p.client, &mut p.server] {
        assert_eq!(conn.send_at(&mut [0; 1500], p.now), Err(Error::Done));
    }
    assert!(p.client.batch.is_none() && p.server.batch.is_none());
}

// A path probe goes alone, from its own address; the batch after it is
// the current path's.
#[test]
fn a_path_probe_is_not_batched() {
    let mut p = pipe(false);
    issue_spare_ids(&mut p);
    let server = p.s2c_info().from;
    let here = p.c2s_info().from;
    let new = SocketAddr::from(([127, 0, 0, 1], 7777));
    p.client.probe_path(new, server).unwrap();
    p.client.stream_send(0, &pattern(20_000), false).unwrap();
    let mut gso = vec![0u8; 8 * 1500];
    let b = p.client.send_batch_at(&mut gso, 8, p.now).unwrap();
    assert_eq!((b.segments, b.info.from, b.len), (1, new, 1200));
    let b = p.client.send_batch_at(&mut gso, 8, p.now).unwrap();
    assert_eq!(b.info.from, here);
    assert!(b.segments > 1, "{b:?}");
}
