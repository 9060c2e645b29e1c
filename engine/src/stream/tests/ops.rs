//! StreamMap connection-facing operations, with connection-level
//! accounting through FlowControl.

use std::time::{Duration, Instant};

use crate::stream::{FlowControl, StreamLimits, StreamMap};
use crate::transport_params::TransportParams;
use crate::Error;

fn params(bidi: u64, uni: u64, data: u64) -> TransportParams {
    TransportParams {
        initial_max_data: data,
        initial_max_stream_data_bidi_local: 100,
        initial_max_stream_data_bidi_remote: 200,
        initial_max_stream_data_uni: 300,
        initial_max_streams_bidi: bidi,
        initial_max_streams_uni: uni,
        ..TransportParams::default()
    }
}

/// A server map and connection flow control, peer params applied.
fn server() -> (StreamMap, FlowControl) {
    let local = params(10, 10, 10_000);
    let mut m = StreamMap::new(10, 10, &local, true, 1 << 20);
    m.apply_peer_params(&params(5, 5, 1000));
    let mut fc = FlowControl::new(local.initial_max_data, 1 << 20);
    fc.update_peer_max(1000);
    (m, fc)
}

#[test]
fn new_uses_transport_params() {
    let local = params(3, 4, 0);
    let mut m = StreamMap::new(7, 8, &local, false, 1 << 20);
    assert_eq!(m.max_streams_bidi(), 7, "explicit counts win");
    assert_eq!(m.max_streams_uni(), 8);
    m.apply_peer_params(&params(2, 1, 0));
    assert_eq!(m.peer_streams_left_bidi(), 2);
    assert_eq!(m.peer_streams_left_uni(), 1);
    // Client bidi 0: ours; we receive with our bidi_local (100) and send
    // with the peer's bidi_remote (200).
    let s = m.get_or_create(0, true).unwrap();
    assert_eq!(s.recv.as_ref().unwrap().max_data(), 100);
    assert_eq!(s.send.as_ref().unwrap().max_data(), 200);
    assert_eq!(
        StreamLimits::from(&local).max_stream_data_uni,
        300,
        "conversion keeps fields"
    );
}

#[test]
fn stream_frames_account_received_bytes() {
    let (mut m, mut fc) = server();
    let newly = m.on_stream_frame(0, 10, b"0123456789", false).unwrap();
    assert_eq!(newly, 20, "highest offset grew from 0 to 20");
    fc.on_recv(newly).unwrap();
    // Duplicate / lower data: nothing new.
    assert_eq!(m.on_stream_frame(0, 0, b"abcdefghij", false).unwrap(), 0);
    assert!(m.is_readable(0));
    assert_eq!(m.readable(), vec![0]);
    let mut out = [0u8; 64];
    let (n, fin) = m.recv(0, &mut out).unwrap();
    assert_eq!((n, fin), (20, false));
    assert_eq!(&out[..20], b"abcdefghij0123456789");
    fc.add_consumed(n as u64);
    assert_eq!(m.recv(0, &mut out), Err(Error::Done));
    // Stream flow control: our bidi_remote for peer streams is 200.
    assert_eq!(
        m.on_stream_frame(0, 150, &[0; 51], false),
        Err(Error::FlowControl)
    );
    // Our unidirectional stream: STREAM_STATE_ERROR.
    assert_eq!(
        m.on_stream_frame(3, 0, b"x", false),
        Err(Error::InvalidStreamState(3))
    );
    // Unknown stream for the application.
    assert_eq!(m.recv(4, &mut out), Err(Error::InvalidStreamState(4)));
}

#[test]
fn reset_and_stop_return_all_credit() {
    let (mut m, mut fc) = server();
    fc.on_recv(m.on_stream_frame(0, 0, &[1; 50], false).unwrap())
        .unwrap();
    fc.on_recv(m.on_stream_frame(0, 60, &[1; 10], false).unwrap())
        .unwrap();
    m.recv(0, &mut [0; 20]).unwrap();
    fc.add_consumed(20);
    // Reset with final size 100: 30 newly received; 50 unread dropped.
    let newly = m.on_reset_stream(0, 9, 100).unwrap();
    assert_eq!(newly, 30);
    fc.on_recv(newly).unwrap();
    fc.add_consumed(newly);
    fc.add_consumed(m.take_discarded());
    assert_eq!(fc.received(), 100);
    assert_eq!(fc.consumed(), 100, "every byte of credit back");
    assert_eq!(m.take_discarded(), 0);
    assert_eq!(m.recv(0, &mut [0; 4]), Err(Error::StreamReset(9)));
    assert!(m.is_finished(0));

    // STOP_SENDING by us: buffered and later data count as consumed.
    fc.on_recv(m.on_stream_frame(4, 0, &[2; 40], false).unwrap())
        .unwrap();
    assert!(!m.is_finished(4));
    assert!(m.shutdown_read(4, 5).unwrap());
    assert!(m.wants_stop_sending(4));
    assert!(!m.shutdown_read(4, 5).unwrap(), "already stopped");
    fc.on_recv(m.on_stream_frame(4, 40, &[2; 20], true).unwrap())
        .unwrap();
    fc.add_consumed(m.take_discarded());
    assert_eq!(fc.consumed(), fc.received());
    assert!(!m.wants_stop_sending(4), "final size known");
    assert!(m.is_finished(4));
    assert!(!m.is_readable(4));
}

#[test]
fn send_respects_connection_credit() {
    let (mut m, mut fc) = server();
    // Our bidi 1: the peer's bidi_remote is 200; connection credit 1000.
    let cap = fc.send_capacity();
    let n = m.send(1, &[7; 150], true, cap).unwrap();
    assert_eq!(n, 150);
    fc.add_sent(n as u64);
    assert_eq!(m.capacity(1).unwrap(), 50);
    // Connection credit smaller than the data: FIN is not applied.
    let n = m.send(5, &[7; 100], true, 60).unwrap();
    assert_eq!(n, 60);
    assert!(!m.get(5).unwrap().send.as_ref().unwrap().is_fin());
    assert_eq!(m.send(5, &[7; 10], false, 0).unwrap(), 0);
    // Stream limit hit: STREAM_DATA_BLOCKED once.
    assert_eq!(
        m.send(1, &[7; 100], false, 1000).unwrap_err(),
        Error::FinalSize
    );
    m.send(9, &[7; 250], false, 1000).unwrap();
    assert_eq!(m.take_blocked(), vec![(9, 200)]);
    assert!(m.take_blocked().is_empty());
    m.on_max_stream_data(9, 400).unwrap();
    assert_eq!(m.capacity(9).unwrap(), 200);
    // The peer's uni stream cannot be written; nor can unopened peer ones.
    m.on_stream_frame(2, 0, b"x", false).unwrap();
    assert_eq!(
        m.send(2, b"x", false, 100),
        Err(Error::InvalidStreamState(2))
    );
    assert_eq!(
        m.send(8, b"x", false, 100),
        Err(Error::InvalidStreamState(8))
    );
    assert_eq!(m.capacity(2), Err(Error::InvalidStreamState(2)));
}

#[test]
fn stop_sending_reset_and_collection() {
    let (mut m, _fc) = server();
    m.send(1, &[1; 80], false, 1000).unwrap();
    let mut buf = [0u8; 100];
    let (off, len, fin) = m
        .get_mut(1)
        .unwrap()
        .send_mut()
        .unwrap()
        .emit_into(&mut buf)
        .unwrap();
    m.on_flushed(1);
    // STOP_SENDING: answer with RESET_STREAM, final size 80.
    assert_eq!(m.on_stop_sending(1, 4).unwrap(), Some(80));
    assert_eq!(m.capacity(1), Err(Error::StreamStopped(4)));
    assert_eq!(m.on_stop_sending(1, 4).unwrap(), None);
    assert!(!m.has_flushable());
    m.on_stream_lost(1, off, len, fin);
    assert!(!m.has_flushable(), "no retransmission after reset");
    // The receive half: the peer finishes its side.
    m.on_stream_frame(1, 0, b"", true).unwrap();
    m.recv(1, &mut buf).unwrap();
    assert!(!m.collect_if_complete(1), "reset not acknowledged yet");
    m.on_reset_acked(1);
    assert!(m.collect_if_complete(1));
    assert!(m.is_collected(1));
    // Late frames on the collected stream are ignored.
    assert_eq!(m.on_stream_frame(1, 0, b"", true).unwrap(), 0);
    assert_eq!(m.on_stop_sending(1, 4).unwrap(), None);
    m.on_max_stream_data(1, 1000).unwrap();
    assert!(m.is_finished(1));

    // Application reset of its own stream.
    m.send(5, &[1; 10], false, 1000).unwrap();
    assert_eq!(m.shutdown_write(5, 3).unwrap(), Some(10));
    assert_eq!(m.shutdown_write(5, 3).unwrap(), None);
    assert_eq!(m.shutdown_write(77, 3), Err(Error::InvalidStreamState(77)));
}

#[test]
fn peer_frames_on_invalid_streams() {
    let (mut m, _fc) = server();
    // RFC 9000 §19.5: STOP_SENDING for a receive-only stream.
    assert_eq!(m.on_stop_sending(2, 0), Err(Error::InvalidStreamState(2)));
    // §19.10: MAX_STREAM_DATA for our stream never opened.
    assert_eq!(
        m.on_max_stream_data(5, 10),
        Err(Error::InvalidStreamState(5))
    );
    // §19.13: STREAM_DATA_BLOCKED for a send-only stream.
    assert_eq!(
        m.on_stream_data_blocked(3),
        Err(Error::InvalidStreamState(3))
    );
    // §19.4: RESET_STREAM for a send-only stream.
    assert_eq!(
        m.on_reset_stream(7, 0, 0),
        Err(Error::InvalidStreamState(7))
    );
    // Beyond our limit of 10 bidi streams.
    assert_eq!(m.on_stream_data_blocked(40), Err(Error::StreamLimit));
    m.on_stream_data_blocked(36).unwrap();
    assert!(m.get(36).is_some());
    // MAX_STREAMS from the peer.
    m.on_max_streams(true, 9);
    assert_eq!(m.peer_streams_left_bidi(), 9);
    m.on_max_streams(false, 2); // decrease ignored
    assert_eq!(m.peer_streams_left_uni(), 5);
}

#[test]
fn max_stream_data_updates() {
    let (mut m, _fc) = server();
    let now = Instant::now();
    let rtt = Duration::from_millis(10);
    m.on_stream_frame(0, 0, &[0; 150], false).unwrap();
    assert!(!m.should_update_max_stream_data(0));
    m.recv(0, &mut [0; 150]).unwrap();
    assert!(m.should_update_max_stream_data(0));
    assert_eq!(m.almost_full().collect::<Vec<_>>(), vec![0]);
    assert_eq!(m.update_max_stream_data(0, now, rtt), Some(350));
    assert!(!m.should_update_max_stream_data(0));
    assert!(m.almost_full().next().is_none());
    // After the FIN no more credit is given.
    m.on_stream_frame(0, 150, b"", true).unwrap();
    assert_eq!(m.update_max_stream_data(0, now, rtt), None);
    assert_eq!(m.update_max_stream_data(400, now, rtt), None);
}
