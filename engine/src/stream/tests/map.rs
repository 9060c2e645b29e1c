//! StreamMap: ID rules, limits, implicit opening, credit, sets, priority.

use crate::stream::{
    is_bidi, is_client_initiated, is_local, RecvState, SendState, StreamLimits, StreamMap,
};
use crate::Error;

fn limits(bidi: u64, uni: u64) -> StreamLimits {
    StreamLimits {
        max_stream_data_bidi_local: 1000,
        max_stream_data_bidi_remote: 2000,
        max_stream_data_uni: 3000,
        max_streams_bidi: bidi,
        max_streams_uni: uni,
    }
}

fn server() -> StreamMap {
    let mut m = StreamMap::with_limits(true, limits(4, 2), 1 << 20, 1 << 20);
    m.set_peer_limits(StreamLimits {
        max_stream_data_bidi_local: 10,
        max_stream_data_bidi_remote: 20,
        max_stream_data_uni: 30,
        max_streams_bidi: 2,
        max_streams_uni: 1,
    });
    m
}

/// Drives a peer bidi stream to completion on both halves.
fn finish(m: &mut StreamMap, id: u64) {
    let s = m.get_or_create(id, false).unwrap();
    s.recv_mut().unwrap().write(0, b"", true).unwrap();
    s.recv_mut().unwrap().read(&mut [0; 1]).unwrap();
    if let Some(send) = s.send.as_mut() {
        send.write(b"", true).unwrap();
        let (off, len, fin) = send.emit_into(&mut [0; 10]).unwrap();
        send.on_ack(off, len, fin);
    }
    assert!(m.get(id).unwrap().is_complete());
}

#[test]
fn id_bits() {
    // RFC 9000 §2.1 Table 1.
    assert!(is_client_initiated(0) && is_bidi(0));
    assert!(!is_client_initiated(1) && is_bidi(1));
    assert!(is_client_initiated(2) && !is_bidi(2));
    assert!(!is_client_initiated(3) && !is_bidi(3));
    assert!(is_local(4, false) && !is_local(4, true));
    assert!(is_local(7, true) && !is_local(7, false));
}

#[test]
fn per_stream_initial_limits_follow_18_2() {
    let mut m = server();
    // Peer (client) bidi 0: we receive with our bidi_remote, send with the
    // peer's bidi_local.
    let s = m.get_or_create(0, false).unwrap();
    assert_eq!(s.recv.as_ref().unwrap().max_data(), 2000);
    assert_eq!(s.send.as_ref().unwrap().max_data(), 10);
    // Our bidi 1: our bidi_local, the peer's bidi_remote.
    let s = m.get_or_create(1, true).unwrap();
    assert_eq!(s.recv.as_ref().unwrap().max_data(), 1000);
    assert_eq!(s.send.as_ref().unwrap().max_data(), 20);
    // Peer uni 2: receive only, our uni.
    let s = m.get_or_create(2, false).unwrap();
    assert_eq!(s.recv.as_ref().unwrap().max_data(), 3000);
    assert!(s.send.is_none());
    // Our uni 3: send only, the peer's uni.
    let s = m.get_or_create(3, true).unwrap();
    assert!(s.recv.is_none());
    assert_eq!(s.send.as_ref().unwrap().max_data(), 30);
    assert_eq!(s.send_state(), Some(SendState::Ready));
    assert_eq!(s.recv_state(), None);
}

#[test]
fn peer_frames_on_wrong_streams() {
    let mut m = server();
    // STREAM on our uni stream: send-only for us (RFC 9000 §19.8).
    assert_eq!(
        m.get_or_create_recv(3).err(),
        Some(Error::InvalidStreamState(3))
    );
    // MAX_STREAM_DATA/STOP_SENDING on the peer's uni stream.
    assert_eq!(
        m.get_or_create_send(2).err(),
        Some(Error::InvalidStreamState(2))
    );
    // Any frame for our bidi stream we never opened.
    assert_eq!(
        m.get_or_create_send(5).err(),
        Some(Error::InvalidStreamState(5))
    );
    assert_eq!(
        m.get_or_create(1, false).err(),
        Some(Error::InvalidStreamState(1))
    );
    // After we open 5, 1 (implicitly opened) is accepted too.
    m.get_or_create(5, true).unwrap();
    assert!(m.get_or_create_send(1).unwrap().is_some());
    // The application cannot open peer streams.
    assert_eq!(
        m.get_or_create(8, true).err(),
        Some(Error::InvalidStreamState(8))
    );
    // Our uni stream: the recv half is absent.
    let s = m.get_or_create(3, true).unwrap();
    assert_eq!(s.recv_mut().err(), Some(Error::InvalidStreamState(3)));
}

#[test]
fn peer_limit_and_implicit_open() {
    let mut m = server(); // we allow 4 bidi, 2 uni
                          // Stream 12 (index 3) opens 0, 4, 8 implicitly.
    m.get_or_create(12, false).unwrap();
    assert_eq!(m.len(), 1);
    m.get_or_create(4, false).unwrap();
    assert_eq!(m.len(), 2);
    // RFC 9000 §4.6: index 4 exceeds the limit of 4.
    assert_eq!(m.get_or_create(16, false).err(), Some(Error::StreamLimit));
    // Uni limit 2: 2 and 6 are fine, 10 is not.
    m.get_or_create(6, false).unwrap();
    m.get_or_create(2, false).unwrap();
    assert_eq!(m.get_or_create(10, false).err(), Some(Error::StreamLimit));
}

#[test]
fn local_limit_and_streams_blocked() {
    let mut m = server(); // peer allows us 2 bidi, 1 uni
    assert_eq!(m.peer_streams_left_bidi(), 2);
    assert_eq!(m.next_local_id(true), 1);
    m.get_or_create(1, true).unwrap();
    assert_eq!(m.next_local_id(true), 5);
    m.get_or_create(5, true).unwrap();
    assert_eq!(m.peer_streams_left_bidi(), 0);
    assert_eq!(m.get_or_create(9, true).err(), Some(Error::StreamLimit));
    assert_eq!(m.streams_blocked_bidi(), Some(2));
    m.streams_blocked_bidi_sent();
    assert_eq!(m.streams_blocked_bidi(), None);
    m.update_peer_max_streams_bidi(1); // decrease ignored
    assert_eq!(m.peer_streams_left_bidi(), 0);
    m.update_peer_max_streams_bidi(3);
    assert_eq!(m.peer_streams_left_bidi(), 1);
    m.get_or_create(9, true).unwrap();
    // Uni.
    m.get_or_create(3, true).unwrap();
    assert_eq!(m.get_or_create(7, true).err(), Some(Error::StreamLimit));
    assert_eq!(m.streams_blocked_uni(), Some(1));
    assert_eq!(m.peer_streams_left_uni(), 0);
}

#[test]
fn collection_gives_max_streams_credit() {
    let mut m = server(); // 4 bidi: threshold 2
    for id in [0, 4, 8, 12] {
        m.get_or_create(id, false).unwrap();
    }
    assert_eq!(m.get_or_create(16, false).err(), Some(Error::StreamLimit));
    finish(&mut m, 0);
    assert!(m.collect(0));
    assert!(m.is_collected(0));
    assert!(!m.is_collected(4));
    assert!(
        !m.should_update_max_streams_bidi(),
        "one of a threshold of 2"
    );
    finish(&mut m, 4);
    m.collect(4);
    assert!(m.should_update_max_streams_bidi());
    assert_eq!(m.max_streams_bidi(), 4, "not advertised yet");
    assert_eq!(m.update_max_streams_bidi(), 6);
    assert!(!m.should_update_max_streams_bidi());
    m.get_or_create(16, false).unwrap();
    m.get_or_create(20, false).unwrap();
    assert_eq!(m.get_or_create(24, false).err(), Some(Error::StreamLimit));
    // Late frames on a collected stream are ignored, not errors.
    assert_eq!(m.get_or_create(0, false).err(), Some(Error::Done));
    assert!(m.get_or_create_recv(0).unwrap().is_none());
    // Collecting a local stream gives the peer no credit.
    m.get_or_create(1, true).unwrap();
    m.collect(1);
    assert_eq!(m.max_streams_bidi(), 6);
    assert!(!m.should_update_max_streams_bidi());
    assert!(!m.collect(1), "already collected");
}

#[test]
fn sets_track_stream_state() {
    let mut m = server();
    let s = m.get_or_create(0, false).unwrap();
    s.recv_mut().unwrap().write(0, b"hello", false).unwrap();
    m.update(0);
    assert_eq!(m.readable(), vec![0]);
    assert_eq!(m.writable(), vec![0]);
    let s = m.get_mut(0).unwrap();
    s.recv_mut().unwrap().read(&mut [0; 16]).unwrap();
    // Peer's bidi_local is 10: writing 15 blocks at 10.
    assert_eq!(s.send_mut().unwrap().write(&[7; 15], false).unwrap(), 10);
    m.update(0);
    assert_eq!(m.readable().len(), 0);
    assert_eq!(m.writable().len(), 0);
    assert_eq!(m.flushable().collect::<Vec<_>>(), vec![0]);
    assert_eq!(m.blocked().collect::<Vec<_>>(), vec![(0, 10)]);
    let s = m.get_mut(0).unwrap();
    s.send_mut().unwrap().emit_into(&mut [0; 100]).unwrap();
    s.send_mut().unwrap().update_max_data(100);
    m.on_flushed(0);
    assert_eq!(m.flushable().count(), 0);
    assert_eq!(m.blocked().count(), 0);
    assert_eq!(m.writable(), vec![0]);
    // Almost full: our bidi_remote window is 2000; consume 1001.
    let s = m.get_mut(0).unwrap();
    s.recv_mut().unwrap().write(5, &[1; 1001], false).unwrap();
    s.recv_mut().unwrap().read(&mut [0; 2000]).unwrap();
    m.update(0);
    assert_eq!(m.almost_full().collect::<Vec<_>>(), vec![0]);
    assert_eq!(m.get(0).unwrap().recv_state(), Some(RecvState::Recv));
    assert_eq!(m.get(0).unwrap().send_state(), Some(SendState::Send));
    m.collect(0);
    assert_eq!(m.almost_full().count(), 0);
    assert_eq!(m.writable().len(), 0);
}

#[test]
fn recv_states() {
    let mut m = server();
    let s = m.get_or_create(2, false).unwrap();
    let r = s.recv_mut().unwrap();
    r.write(5, b"world", true).unwrap();
    assert_eq!(s.recv_state(), Some(RecvState::SizeKnown));
    s.recv_mut().unwrap().write(0, b"hello", false).unwrap();
    assert_eq!(s.recv_state(), Some(RecvState::DataRecvd));
    s.recv_mut().unwrap().read(&mut [0; 20]).unwrap();
    assert_eq!(s.recv_state(), Some(RecvState::DataRead));
    assert!(s.is_complete());
    let s = m.get_or_create(6, false).unwrap();
    s.recv_mut().unwrap().reset(3, 0).unwrap();
    assert_eq!(s.recv_state(), Some(RecvState::ResetRecvd));
    assert!(!s.is_complete());
    assert_eq!(
        s.recv_mut().unwrap().read(&mut [0; 1]),
        Err(Error::StreamReset(3))
    );
    assert_eq!(s.recv_state(), Some(RecvState::ResetRead));
    assert!(s.is_complete());
}

/// Writes one byte to each stream and returns the flush order.
fn flush_order(m: &mut StreamMap, rounds: usize) -> Vec<u64> {
    let mut order = Vec::new();
    for _ in 0..rounds {
        let Some(id) = m.peek_flushable() else { break };
        let s = m.get_mut(id).unwrap();
        s.send_mut().unwrap().emit_into(&mut [0; 1]).unwrap();
        m.on_flushed(id);
        order.push(id);
    }
    order
}

#[test]
fn priority_order() {
    let mut m = StreamMap::with_limits(false, limits(100, 100), 1 << 20, 1 << 20);
    m.set_peer_limits(limits(100, 100));
    // Client streams 0, 4, 8, 12, 16.
    for id in [0u64, 4, 8, 12, 16] {
        let s = m.get_or_create(id, true).unwrap();
        s.send_mut().unwrap().write(&[id as u8; 2], false).unwrap();
        m.update(id);
    }
    m.set_priority(16, 0, false).unwrap(); // most urgent
    m.set_priority(12, 3, false).unwrap(); // same urgency, non-incremental
    m.set_priority(4, 3, false).unwrap();
    m.set_priority(8, 5, true).unwrap(); // least urgent
    m.set_priority(0, 3, true).unwrap(); // urgency 3, incremental
    let order = flush_order(&mut m, 100);
    assert_eq!(
        order,
        vec![16, 16, 4, 4, 12, 12, 0, 0, 8, 8],
        "urgency first; non-incremental by ID before incremental"
    );
    // Round-robin among incremental streams of one urgency (the default
    // urgency, after all RFC 9218 urgencies).
    for id in [20u64, 24, 28] {
        let s = m.get_or_create(id, true).unwrap();
        s.send_mut().unwrap().write(&[0; 2], false).unwrap();
        m.update(id);
    }
    m.set_priority(12, 7, true).unwrap();
    let s = m.get_mut(12).unwrap();
    s.send_mut().unwrap().write(&[0; 1], false).unwrap();
    m.update(12);
    assert_eq!(flush_order(&mut m, 100), vec![12, 20, 24, 28, 20, 24, 28]);
    assert!(!m.has_flushable());
    // The peer's stream 1001 was never opened; our 1000 is over the limit.
    assert_eq!(
        m.set_priority(1001, 1, true),
        Err(Error::InvalidStreamState(1001))
    );
    assert_eq!(m.set_priority(1000, 1, true), Err(Error::StreamLimit));
}
