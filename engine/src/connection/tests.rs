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
fn transfer(p: &mut Pipe, data: &[u8], max_steps: usize) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 65_536];
    let mut fin_seen = false;
    for _ in 0..max_steps {
        if sent < data.len() {
            match p.client.stream_send(0, &data[sent..], true) {
                Ok(n) => sent += n,
                Err(Error::Done) => (),
                Err(e) => panic!("stream_send: {e:?}"),
            }
        }
        let readable: Vec<u64> = p.server.readable().collect();
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

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn small_stream_transfer() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    let data = pattern(100_000);
    let got = transfer(&mut p, &data, 100_000);
    assert_eq!(got, data);
}

#[test]
fn ten_megabytes_with_loss_and_reordering() {
    let link = LinkConfig {
        loss: 0.10,
        reorder: 0.10,
        seed: 7,
        ..LinkConfig::default()
    };
    let mut p = Pipe::with_configs(
        &mut test_config(false).unwrap(),
        &mut test_config(true).unwrap(),
        link.clone(),
        LinkConfig { seed: 9, ..link },
    )
    .unwrap();
    p.handshake().unwrap();
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
