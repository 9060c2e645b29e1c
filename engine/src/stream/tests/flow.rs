//! Connection-level FlowControl.

use std::time::{Duration, Instant};

use crate::stream::FlowControl;
use crate::Error;

#[test]
fn receive_side_limit_and_update() {
    let mut fc = FlowControl::new(1000, 4000);
    fc.on_recv(600).unwrap();
    fc.on_recv(400).unwrap();
    // RFC 9000 §4.1: one byte over the advertised limit.
    assert_eq!(fc.on_recv(1), Err(Error::FlowControl));
    assert_eq!(fc.received(), 1000);
    assert!(!fc.should_update());
    fc.add_consumed(400);
    assert!(!fc.should_update(), "600 left of a 1000 window");
    fc.add_consumed(200);
    assert!(fc.should_update());
    let t0 = Instant::now();
    let rtt = Duration::from_millis(50);
    assert_eq!(fc.update_max_data(t0, rtt), 1600);
    assert!(!fc.should_update());
    // Fast consumption: next update within 2 RTT doubles the window.
    fc.on_recv(600).unwrap();
    fc.add_consumed(600);
    assert_eq!(fc.update_max_data(t0 + rtt, rtt), 1200 + 2000);
    assert_eq!(fc.window(), 2000);
    fc.ensure_window_lower_bound(10_000);
    assert_eq!(fc.window(), 4000, "bounded by max_window");
    // Consumed can never exceed received.
    fc.add_consumed(1 << 40);
    assert_eq!(fc.consumed(), fc.received());
}

#[test]
fn send_side_credit_and_blocked() {
    let mut fc = FlowControl::new(0, 0);
    assert_eq!(
        fc.send_capacity(),
        0,
        "nothing before the peer's parameters"
    );
    fc.update_peer_max(100);
    assert_eq!(fc.send_capacity(), 100);
    assert_eq!(fc.blocked_at(), None);
    fc.add_sent(100);
    assert_eq!(fc.send_capacity(), 0);
    assert!(fc.blocked());
    assert_eq!(fc.blocked_at(), Some(100));
    fc.blocked_sent();
    assert_eq!(fc.blocked_at(), None, "once per limit");
    assert!(fc.blocked());
    fc.update_peer_max(50); // RFC 9000 §4.1: decreases ignored
    assert_eq!(fc.peer_max_data(), 100);
    fc.update_peer_max(250);
    assert_eq!(fc.send_capacity(), 150);
    assert!(!fc.blocked());
    fc.add_sent(150);
    assert_eq!(fc.blocked_at(), Some(250));
    assert_eq!(fc.sent(), 250);
}
