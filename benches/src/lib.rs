//! Benchmarks for tarte; see `benches/` (run `cargo bench -p tarte-benches`).
//! This library holds the workloads the connection benchmarks share: the
//! criterion benches (`conn`) and the one-shot ratio report (`conn_ratios`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use boring::aead::{AeadCtx, Algorithm as BoringAead};
use boring::derive::Deriver;
use boring::ec::EcKey;
use boring::ecdsa::EcdsaSig;
use boring::pkey::{Id, PKey};
use tarte::testing::{test_config, LinkConfig, Pipe};

/// A link with no delay and no impairment.
pub fn zero_delay() -> LinkConfig {
    LinkConfig {
        delay: Duration::ZERO,
        ..LinkConfig::default()
    }
}

/// Configs built once, as a server reuses its Config for every
/// connection.
pub fn configs(curves: Option<&str>) -> (tarte::Config, tarte::Config) {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    if let Some(curves) = curves {
        c.set_curves_list(curves).unwrap();
        s.set_curves_list(curves).unwrap();
    }
    (c, s)
}

/// One handshake between a fresh client and server in memory.
pub fn handshake_once(c: &mut tarte::Config, s: &mut tarte::Config) {
    let mut p = Pipe::with_configs(c, s, zero_delay(), zero_delay()).unwrap();
    p.handshake().unwrap();
    black_box(p.client.is_established());
}

/// A session of `s`'s server for [`resumed_handshake_once`]: one full
/// handshake, run until the NewSessionTicket arrived.
pub fn session_of(c: &mut tarte::Config, s: &mut tarte::Config) -> Vec<u8> {
    let mut p = Pipe::with_configs(c, s, zero_delay(), zero_delay()).unwrap();
    p.handshake().unwrap();
    p.run_until(100, |p| p.client.session().is_some()).unwrap();
    p.client.session().unwrap().to_vec()
}

/// One resumed handshake (PSK with X25519, RFC 8446 §2.2: no certificate,
/// no signature) between a fresh client and server in memory.
pub fn resumed_handshake_once(c: &mut tarte::Config, s: &mut tarte::Config, session: &[u8]) {
    let mut p = Pipe::with_configs(c, s, zero_delay(), zero_delay()).unwrap();
    p.client.set_session(session).unwrap();
    p.handshake().unwrap();
    assert!(p.client.is_resumed());
}

/// The crypto a resumed handshake cannot avoid: two X25519 key
/// generations and two derivations.
pub fn resumption_ceiling_once() {
    let a = PKey::generate(Id::X25519).unwrap();
    let b = PKey::generate(Id::X25519).unwrap();
    let mut d = Deriver::new(&a).unwrap();
    d.set_peer(&b).unwrap();
    black_box(d.derive_to_vec().unwrap());
    let mut d = Deriver::new(&b).unwrap();
    d.set_peer(&a).unwrap();
    black_box(d.derive_to_vec().unwrap());
}

/// The crypto a handshake cannot avoid: two X25519 key generations, two
/// derivations, one ECDSA P-256 signature and its verification.
pub fn crypto_ceiling_once(ec: &EcKey<boring::pkey::Private>, digest: &[u8; 32]) {
    resumption_ceiling_once();
    let sig = EcdsaSig::sign(digest, ec).unwrap();
    assert!(sig.verify(digest, ec).unwrap());
}

/// Bytes moved by the bulk runs.
pub const BULK: usize = 256 * 1024 * 1024;

/// An established pair for the bulk runs: CUBIC, no pacing, windows large
/// enough that flow control never limits.
pub fn bulk_pipe() -> Pipe {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    for cfg in [&mut c, &mut s] {
        cfg.set_cc_algorithm(tarte::CongestionControlAlgorithm::CUBIC);
        cfg.enable_pacing(false);
        cfg.set_initial_max_data(64 << 20);
        cfg.set_initial_max_stream_data_bidi_local(32 << 20);
        cfg.set_initial_max_stream_data_bidi_remote(32 << 20);
        cfg.set_max_connection_window(64 << 20);
        cfg.set_max_stream_window(32 << 20);
    }
    let mut p = Pipe::with_configs(&mut c, &mut s, zero_delay(), zero_delay()).unwrap();
    p.handshake().unwrap();
    p
}

/// The client application writes stream 0 until it is blocked or all
/// `BULK` bytes are in; returns the new total written.
pub fn write_stream(client: &mut tarte::Connection, chunk: &[u8], mut sent: usize) -> usize {
    while sent < BULK {
        let n = (BULK - sent).min(chunk.len());
        match client.stream_send(0, &chunk[..n], sent + n == BULK) {
            Ok(k) => sent += k,
            Err(tarte::Error::Done) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    sent
}

/// As [`write_stream`] with `stream_send_shared`: the application's data
/// (`chunk`, sent over and over) is referenced, not copied, until the
/// packets are built.
pub fn write_stream_shared(
    client: &mut tarte::Connection,
    chunk: &std::sync::Arc<[u8]>,
    mut sent: usize,
) -> usize {
    // Whole chunks add up to BULK: each write is the rest of one.
    assert_eq!(BULK % chunk.len(), 0);
    while sent < BULK {
        let start = sent % chunk.len();
        let fin = sent + (chunk.len() - start) == BULK;
        match client.stream_send_shared(0, chunk, start..chunk.len(), fin) {
            Ok(k) => sent += k,
            Err(tarte::Error::Done) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    sent
}

/// Moves `BULK` bytes client → server on stream 0; returns the time taken,
/// the number of datagrams the client sent and both sides' stats.
pub fn bulk_once() -> (Duration, u64, tarte::Stats, tarte::Stats) {
    let mut p = bulk_pipe();
    let chunk = vec![0x5au8; 1 << 20];
    let mut buf = vec![0u8; 1 << 20];
    let (mut sent, mut got) = (0usize, 0usize);
    let start = Instant::now();
    while got < BULK {
        sent = write_stream(&mut p.client, &chunk, sent);
        while let Ok((n, _)) = p.server.stream_recv(0, &mut buf) {
            got += n;
        }
        if !p.advance().unwrap() {
            break;
        }
    }
    assert_eq!(got, BULK);
    let elapsed = start.elapsed();
    (elapsed, p.c2s.sent, p.client.stats(), p.server.stats())
}

/// As [`bulk_once`], but each datagram goes to the server as soon as the
/// client sends it, in sends of at most `batch` datagrams (a GSO batch on
/// a zero-delay link); after each batch the server application reads and
/// the server's ACKs go back. Returns the time taken, the client's
/// datagrams and both sides' stats.
pub fn bulk_streaming_once(batch: usize) -> (Duration, u64, tarte::Stats, tarte::Stats) {
    bulk_streaming(batch, false)
}

/// [`bulk_streaming_once`], the client writing with `stream_send_shared`
/// when `shared` (no copy into the send buffer).
pub fn bulk_streaming(batch: usize, shared: bool) -> (Duration, u64, tarte::Stats, tarte::Stats) {
    let mut p = bulk_pipe();
    let ca = p.c2s_info();
    let now = p.now;
    let chunk = vec![0x5au8; 1 << 20];
    let shared_chunk: std::sync::Arc<[u8]> = std::sync::Arc::from(&chunk[..]);
    let mut buf = vec![0u8; 1 << 20];
    let mut dgram = vec![0u8; 1500];
    let (mut sent, mut got, mut packets) = (0usize, 0usize, 0u64);
    let start = Instant::now();
    while got < BULK {
        sent = if shared {
            write_stream_shared(&mut p.client, &shared_chunk, sent)
        } else {
            write_stream(&mut p.client, &chunk, sent)
        };
        let mut progress = false;
        for _ in 0..batch {
            match p.client.send_at(&mut dgram, now) {
                Ok((len, _)) => {
                    packets += 1;
                    progress = true;
                    p.server.recv_at(&mut dgram[..len], ca, now).unwrap();
                }
                Err(tarte::Error::Done) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        got += server_turn(&mut p, &mut buf, &mut dgram, progress);
    }
    assert_eq!(got, BULK);
    let elapsed = start.elapsed();
    (elapsed, packets, p.client.stats(), p.server.stats())
}

/// As [`bulk_streaming_once`], through the batch API: the client writes
/// each batch of at most `batch` datagrams with one `send_batch` (a GSO
/// buffer) and the server takes it with one `recv_batch` (a GRO buffer).
/// Returns the time taken, the client's datagrams and both sides' stats.
pub fn bulk_streaming_batched(batch: usize) -> (Duration, u64, tarte::Stats, tarte::Stats) {
    let mut p = bulk_pipe();
    let ca = p.c2s_info();
    let now = p.now;
    let chunk = vec![0x5au8; 1 << 20];
    let mut buf = vec![0u8; 1 << 20];
    let mut gso = vec![0u8; batch * 1500];
    let mut dgram = vec![0u8; 1500];
    let (mut sent, mut got, mut packets) = (0usize, 0usize, 0u64);
    let start = Instant::now();
    while got < BULK {
        sent = write_stream(&mut p.client, &chunk, sent);
        let mut progress = false;
        match p.client.send_batch_at(&mut gso, batch, now) {
            Ok(b) => {
                packets += b.segments as u64;
                progress = true;
                p.server
                    .recv_batch_at(&mut gso[..b.len], b.segment_size, ca, now)
                    .unwrap();
            }
            Err(tarte::Error::Done) => (),
            Err(e) => panic!("{e:?}"),
        }
        got += server_turn(&mut p, &mut buf, &mut dgram, progress);
    }
    assert_eq!(got, BULK);
    let elapsed = start.elapsed();
    (elapsed, packets, p.client.stats(), p.server.stats())
}

/// The server's turn in the streaming runs, after the client's batch:
/// its application reads stream 0 (returns how much), its ACKs go
/// straight to the client, and when nothing moved this round (`progress`
/// false and no ACK) the timers due at the fixed time fire.
fn server_turn(p: &mut Pipe, buf: &mut [u8], dgram: &mut [u8], mut progress: bool) -> usize {
    let mut got = 0;
    while let Ok((n, _)) = p.server.stream_recv(0, buf) {
        got += n;
    }
    let (sa, now) = (p.s2c_info(), p.now);
    loop {
        match p.server.send_at(dgram, now) {
            Ok((len, _)) => {
                progress = true;
                p.client.recv_at(&mut dgram[..len], sa, now).unwrap();
            }
            Err(tarte::Error::Done) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    if !progress {
        for conn in [&mut p.client, &mut p.server] {
            if conn.timeout_instant().is_some_and(|t| t <= now) {
                conn.on_timeout_at(now);
            }
        }
        assert!(!p.client.is_closed(), "client closed");
    }
    got
}

/// The AEAD ceiling: seal + open of `packets` 1350-byte packets.
pub fn aead_ceiling(packets: u64) -> Duration {
    let mut ctx = AeadCtx::new_default_tag(&BoringAead::aes_128_gcm(), &[9u8; 16]).unwrap();
    let mut payload = vec![0u8; 1350 - 13 - 16];
    let mut tag = [0u8; 16];
    let ad = [0u8; 13];
    let start = Instant::now();
    for pn in 0..packets {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&pn.to_be_bytes());
        ctx.seal_in_place_mut(&nonce, &mut payload, &mut tag, &ad)
            .unwrap();
        ctx.open_in_place_mut(&nonce, &mut payload, &tag, &ad)
            .unwrap();
    }
    black_box(&payload);
    start.elapsed()
}
