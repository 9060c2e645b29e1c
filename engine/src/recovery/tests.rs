//! Recovery tests: synthetic clocks (a base Instant plus offsets), no I/O.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use super::cubic::Cubic;
use super::hystart::Phase;
use super::*;

const MSS: usize = 1200;

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

fn cfg(cc: CongestionControlAlgorithm, hystart: bool, pacing: bool) -> RecoveryConfig {
    RecoveryConfig {
        max_datagram_size: MSS,
        cc,
        hystart,
        pacing,
        initial_rtt: ms(333),
        initial_window_packets: 10,
    }
}

/// A recovery instance driven on a synthetic clock in milliseconds.
struct Sim {
    r: Recovery<u64>,
    t0: Instant,
    next_pn: [u64; 3],
}

impl Sim {
    fn new(cfg: RecoveryConfig) -> Self {
        Sim {
            r: Recovery::new(&cfg),
            t0: Instant::now(),
            next_pn: [0; 3],
        }
    }

    fn reno() -> Self {
        Sim::new(cfg(CongestionControlAlgorithm::Reno, false, false))
    }

    fn at(&self, t_ms: u64) -> Instant {
        self.t0 + ms(t_ms)
    }

    fn send_pkt(&mut self, epoch: Epoch, t_ms: u64, ack_eliciting: bool) -> u64 {
        let pn = self.next_pn[epoch as usize];
        self.next_pn[epoch as usize] += 1;
        let now = self.at(t_ms);
        let pkt = SentPacket {
            pkt_num: pn,
            time_sent: now,
            size: MSS,
            ack_eliciting,
            in_flight: ack_eliciting,
            old_path: false,
            payload: pn * 10,
        };
        self.r.on_packet_sent(epoch, pkt, now);
        pn
    }

    fn send(&mut self, epoch: Epoch, t_ms: u64) -> u64 {
        self.send_pkt(epoch, t_ms, true)
    }

    fn send_n(&mut self, epoch: Epoch, t_ms: u64, n: usize) {
        for _ in 0..n {
            self.send(epoch, t_ms);
        }
    }

    fn ack_at(
        &mut self,
        epoch: Epoch,
        ranges: &[RangeInclusive<u64>],
        now: Instant,
    ) -> AckOutcome<u64> {
        self.r
            .on_ack_received(epoch, ranges.iter().cloned(), Duration::ZERO, true, now)
            .expect("valid ACK")
    }

    fn ack(&mut self, epoch: Epoch, ranges: &[RangeInclusive<u64>], t_ms: u64) -> AckOutcome<u64> {
        let now = self.at(t_ms);
        self.ack_at(epoch, ranges, now)
    }
}

fn pns(v: &[SentPacket<u64>]) -> Vec<u64> {
    v.iter().map(|p| p.pkt_num).collect()
}

fn acked_pns(v: &[Acked]) -> Vec<u64> {
    v.iter().map(|p| p.pkt_num).collect()
}

#[test]
fn rtt_estimator_follows_rfc9002_section5() {
    let mut s = Sim::reno();
    s.r.set_max_ack_delay(ms(25));
    assert_eq!(s.r.rtt().smoothed_rtt, ms(333));
    assert_eq!(s.r.rtt().rttvar, Duration::from_micros(166_500));

    // First sample initialises everything; its ack delay is not used.
    s.send(Epoch::Application, 0);
    let now = s.at(100);
    let o =
        s.r.on_ack_received(Epoch::Application, [0..=0].into_iter(), ms(30), false, now)
            .unwrap();
    assert!(o.rtt_updated);
    let rtt = s.r.rtt();
    assert_eq!(
        (rtt.latest_rtt, rtt.smoothed_rtt, rtt.rttvar, rtt.min_rtt),
        (ms(100), ms(100), ms(50), ms(100))
    );

    // Before confirmation the full ack delay (40 ms > max_ack_delay) is
    // subtracted: adjusted = 160 ms.
    s.send(Epoch::Application, 100);
    let now = s.at(300);
    s.r.on_ack_received(Epoch::Application, [1..=1].into_iter(), ms(40), false, now)
        .unwrap();
    let rtt = s.r.rtt();
    assert_eq!(rtt.latest_rtt, ms(200));
    assert_eq!(rtt.min_rtt, ms(100));
    assert_eq!(rtt.rttvar, Duration::from_micros(52_500));
    assert_eq!(rtt.smoothed_rtt, Duration::from_micros(107_500));

    // After confirmation the delay is capped at max_ack_delay (25 ms):
    // adjusted = 150 - 25 = 125 ms.
    s.send(Epoch::Application, 300);
    let now = s.at(450);
    s.r.on_ack_received(Epoch::Application, [2..=2].into_iter(), ms(40), true, now)
        .unwrap();
    let rtt = s.r.rtt();
    assert_eq!(rtt.rttvar, Duration::from_micros(43_750));
    assert_eq!(rtt.smoothed_rtt, Duration::from_nanos(109_687_500));

    // A delay that would take the sample below min_rtt is not subtracted.
    let mut e = RttStats::new(ms(333));
    e.update(ms(100), Duration::ZERO, true, s.at(0));
    e.update(ms(110), ms(20), true, s.at(1));
    assert_eq!(e.smoothed_rtt, Duration::from_micros(101_250));

    // Initial ACKs ignore the ack delay.
    let mut s = Sim::reno();
    s.send(Epoch::Initial, 0);
    s.send(Epoch::Initial, 0);
    let now = s.at(100);
    s.r.on_ack_received(Epoch::Initial, [0..=0].into_iter(), ms(0), false, now)
        .unwrap();
    let now = s.at(200);
    s.r.on_ack_received(Epoch::Initial, [1..=1].into_iter(), ms(90), false, now)
        .unwrap();
    // Sample 200 ms unadjusted: srtt = (700 + 200) / 8.
    assert_eq!(s.r.rtt().smoothed_rtt, Duration::from_micros(112_500));
}

#[test]
fn no_rtt_sample_without_new_largest_or_ack_eliciting() {
    let mut s = Sim::reno();
    s.send(Epoch::Application, 0);
    s.send(Epoch::Application, 0);
    let o = s.ack(Epoch::Application, &[1..=1], 50);
    assert!(o.rtt_updated && o.largest_newly_acked_ack_eliciting);
    // Largest (1) is not newly acknowledged: no sample.
    let o = s.ack(Epoch::Application, &[0..=1], 80);
    assert_eq!(acked_pns(&o.acked), vec![0]);
    assert!(!o.rtt_updated);
    assert_eq!(s.r.rtt().latest_rtt, ms(50));
    // Only a non-ack-eliciting packet newly acknowledged: no sample.
    s.send_pkt(Epoch::Application, 100, false);
    let o = s.ack(Epoch::Application, &[2..=2], 300);
    assert!(!o.rtt_updated && !o.largest_newly_acked_ack_eliciting);
    assert_eq!(s.r.rtt().latest_rtt, ms(50));
}

#[test]
fn ack_ranges_take_exactly_the_acked_packets() {
    let mut s = Sim::reno();
    s.send_n(Epoch::Application, 0, 10);
    // The visitor sees each acknowledged packet, payload included, in the
    // outcome's order.
    let mut seen = Vec::new();
    let mut o = AckOutcome::new();
    let r = (Epoch::Application, ms(0), true, s.at(10));
    s.r.on_ack_received_into(r, [8..=9, 2..=4].into_iter(), &mut o, |p| {
        seen.push((p.pkt_num, p.payload))
    })
    .unwrap();
    assert_eq!(acked_pns(&o.acked), vec![8, 9, 2, 3, 4]);
    assert_eq!(seen, vec![(8, 80), (9, 90), (2, 20), (3, 30), (4, 40)]);
    // 0, 1, 5 and 6 are at least 3 below 9; 7 survives.
    assert_eq!(pns(&o.lost), vec![0, 1, 5, 6]);
    assert_eq!(s.r.bytes_in_flight(), MSS);
    // A repeated ACK acknowledges nothing new.
    let o = s.ack(Epoch::Application, &[8..=9, 2..=4], 20);
    assert!(o.acked.is_empty() && o.lost.is_empty());
    let o = s.ack(Epoch::Application, &[6..=9], 30);
    assert_eq!(acked_pns(&o.acked), vec![7]);
    assert_eq!(s.r.bytes_in_flight(), 0);
    let st = s.r.stats();
    assert_eq!((st.acked_count, st.lost_count, st.sent_count), (6, 4, 10));
    assert_eq!(st.lost_bytes, 4 * MSS as u64);
    assert_eq!(st.spurious_lost_count, 1);

    // The reusable-outcome form clears and refills the caller's buffers.
    let mut out = AckOutcome::new();
    s.send_n(Epoch::Application, 40, 2);
    let now = s.at(50);
    let r = (Epoch::Application, ms(0), true, now);
    s.r.on_ack_received_into(r, [10..=11].into_iter(), &mut out, |_| ())
        .unwrap();
    assert_eq!(acked_pns(&out.acked), vec![10, 11]);
    let r = (Epoch::Application, ms(0), true, now);
    s.r.on_ack_received_into(r, [10..=11].into_iter(), &mut out, |_| ())
        .unwrap();
    assert!(out.acked.is_empty());
}

#[test]
fn invalid_ack_ranges_are_protocol_violations() {
    let mut s = Sim::reno();
    let now = s.at(10);
    // Nothing sent in the space.
    let e =
        s.r.on_ack_received(Epoch::Handshake, [0..=0].into_iter(), ms(0), false, now);
    assert_eq!(e.unwrap_err(), Error::InvalidAckRange);
    s.send_n(Epoch::Application, 0, 3);
    // Beyond the largest sent.
    let e =
        s.r.on_ack_received(Epoch::Application, [0..=3].into_iter(), ms(0), false, now);
    assert_eq!(e.unwrap_err(), Error::InvalidAckRange);
    assert_eq!(s.r.bytes_in_flight(), 3 * MSS, "nothing applied");
    // Not descending.
    let e = s.r.on_ack_received(
        Epoch::Application,
        [0..=0, 2..=2].into_iter(),
        ms(0),
        false,
        now,
    );
    assert_eq!(e.unwrap_err(), Error::InvalidAckRange);
    // Overlapping.
    let e = s.r.on_ack_received(
        Epoch::Application,
        [1..=2, 0..=1].into_iter(),
        ms(0),
        false,
        now,
    );
    assert_eq!(e.unwrap_err(), Error::InvalidAckRange);
    // Another space's numbers do not count.
    s.send(Epoch::Initial, 0);
    let e =
        s.r.on_ack_received(Epoch::Initial, [1..=1].into_iter(), ms(0), false, now);
    assert_eq!(e.unwrap_err(), Error::InvalidAckRange);
    assert!(s
        .r
        .on_ack_received(Epoch::Initial, [0..=0].into_iter(), ms(0), false, now)
        .is_ok());
}

#[test]
fn packet_threshold_loss() {
    let mut s = Sim::reno();
    for i in 0..6 {
        s.send(Epoch::Application, i);
    }
    let o = s.ack(Epoch::Application, &[3..=3], 50);
    assert_eq!(pns(&o.lost), vec![0]);
    assert_eq!(o.lost[0].payload, 0);
    // 1 and 2 are within the threshold and not old enough: the loss timer
    // is armed for 1 at time_sent + 9/8 * 47 ms.
    let loss_delay = ms(47) * 9 / 8;
    assert_eq!(s.r.loss_detection_timer(), Some(s.at(1) + loss_delay));
    let o = s.ack(Epoch::Application, &[4..=4, 3..=3], 52);
    assert_eq!(pns(&o.lost), vec![1]);
    assert_eq!(s.r.stats().lost_count, 2);
}

#[test]
fn time_threshold_loss() {
    let mut s = Sim::reno();
    s.send(Epoch::Application, 0);
    s.send(Epoch::Application, 1);
    let o = s.ack(Epoch::Application, &[1..=1], 100);
    assert!(o.lost.is_empty());
    // latest = smoothed = 99 ms; loss delay 111.375 ms after packet 0.
    let deadline = s.at(0) + Duration::from_micros(111_375);
    assert_eq!(s.r.loss_detection_timer(), Some(deadline));
    let early = deadline - Duration::from_nanos(1);
    assert!(matches!(
        s.r.on_loss_detection_timeout(true, true, early),
        TimeoutOutcome::None
    ));
    match s.r.on_loss_detection_timeout(true, true, deadline) {
        TimeoutOutcome::Lost { epoch, lost } => {
            assert_eq!(epoch, Epoch::Application);
            assert_eq!(pns(&lost), vec![0]);
        }
        other => panic!("expected loss, got {other:?}"),
    }
    assert_eq!(s.r.bytes_in_flight(), 0);
    assert_eq!(s.r.loss_detection_timer(), None);
}

#[test]
fn pto_application_waits_for_confirmation_and_backs_off() {
    let mut s = Sim::reno();
    s.r.set_max_ack_delay(ms(25));
    s.r.set_peer_completed_address_validation(); // a server
    s.send(Epoch::Application, 0);
    // RFC 9002 §6.2.1: no Application PTO before confirmation.
    assert_eq!(s.r.loss_detection_timer(), None);
    s.r.set_handshake_confirmed();
    // 333 + 4 * 166.5 + 25 = 1024 ms.
    assert_eq!(s.r.pto(), ms(1024));
    assert_eq!(s.r.pto_for(Epoch::Handshake), ms(999));
    assert_eq!(s.r.loss_detection_timer(), Some(s.at(1024)));
    assert!(matches!(
        s.r.on_loss_detection_timeout(true, true, s.at(1023)),
        TimeoutOutcome::None
    ));
    match s.r.on_loss_detection_timeout(true, true, s.at(1024)) {
        TimeoutOutcome::Probe { epoch, count } => {
            assert_eq!((epoch, count), (Epoch::Application, 2));
        }
        other => panic!("expected probe, got {other:?}"),
    }
    assert_eq!(s.r.pto_count(), 1);
    assert_eq!(s.r.loss_detection_timer(), Some(s.at(2048)));
    // The probes are sent; the timer is based on the last one.
    s.send(Epoch::Application, 1024);
    assert_eq!(s.r.loss_detection_timer(), Some(s.at(1024 + 2048)));
    assert!(matches!(
        s.r.on_loss_detection_timeout(true, true, s.at(3072)),
        TimeoutOutcome::Probe { .. }
    ));
    assert_eq!(s.r.pto_count(), 2);
    assert_eq!(s.r.loss_detection_timer(), Some(s.at(1024 + 4096)));
    assert_eq!(s.r.stats().pto_count, 2);
    // An ACK resets the backoff.
    s.ack(Epoch::Application, &[1..=1], 1100);
    assert_eq!(s.r.pto_count(), 0);
}

#[test]
fn pto_takes_the_earliest_handshake_space() {
    let mut s = Sim::reno();
    s.r.set_peer_completed_address_validation();
    s.send(Epoch::Initial, 0);
    s.send(Epoch::Handshake, 10);
    s.send(Epoch::Application, 10); // 0-RTT: no PTO yet
    assert_eq!(s.r.loss_detection_timer(), Some(s.at(999)));
    match s.r.on_loss_detection_timeout(false, true, s.at(999)) {
        TimeoutOutcome::Probe { epoch, .. } => assert_eq!(epoch, Epoch::Initial),
        other => panic!("expected probe, got {other:?}"),
    }
    // Backoff 2: Initial at 0 + 1998, Handshake at 10 + 1998.
    assert_eq!(s.r.loss_detection_timer(), Some(s.at(1998)));
    s.r.on_pkt_num_space_discarded(Epoch::Initial);
    assert_eq!(s.r.pto_count(), 0);
    assert_eq!(s.r.loss_detection_timer(), Some(s.at(1009)));
    match s.r.on_loss_detection_timeout(false, true, s.at(1009)) {
        TimeoutOutcome::Probe { epoch, .. } => assert_eq!(epoch, Epoch::Handshake),
        other => panic!("expected probe, got {other:?}"),
    }
}

#[test]
fn client_anti_deadlock_pto_and_server_amplification_limit() {
    // Client: Initial acknowledged, nothing in flight, server has not
    // validated the address yet: PTO stays armed.
    let mut c = Sim::reno();
    c.send(Epoch::Initial, 0);
    c.ack(Epoch::Initial, &[0..=0], 100);
    assert_eq!(c.r.bytes_in_flight(), 0);
    // From now (100) + pto(srtt 100, rttvar 50) = 100 + 300.
    assert_eq!(c.r.loss_detection_timer(), Some(c.at(400)));
    match c.r.on_loss_detection_timeout(false, false, c.at(400)) {
        TimeoutOutcome::Probe { epoch, count } => assert_eq!((epoch, count), (Epoch::Initial, 1)),
        other => panic!("expected probe, got {other:?}"),
    }
    assert_eq!(c.r.pto_count(), 1);
    assert_eq!(c.r.loss_detection_timer(), Some(c.at(400 + 600)));
    c.r.set_handshake_keys_available();
    match c.r.on_loss_detection_timeout(false, false, c.at(1000)) {
        TimeoutOutcome::Probe { epoch, .. } => assert_eq!(epoch, Epoch::Handshake),
        other => panic!("expected probe, got {other:?}"),
    }
    // An ACK does not reset the backoff while unvalidated.
    c.send(Epoch::Handshake, 1000);
    c.ack(Epoch::Handshake, &[0..=0], 1100);
    assert_eq!(c.r.pto_count(), 2);
    // Validation (Handshake ACK) disarms the anti-deadlock timer.
    c.r.set_peer_completed_address_validation();
    assert_eq!(c.r.loss_detection_timer(), None);

    // Server blocked by the amplification limit arms no PTO.
    let mut srv = Sim::reno();
    srv.r.set_peer_completed_address_validation();
    srv.send(Epoch::Initial, 0);
    assert!(srv.r.loss_detection_timer().is_some());
    srv.r.set_amplification_blocked(true);
    assert_eq!(srv.r.loss_detection_timer(), None);
    assert!(matches!(
        srv.r.on_loss_detection_timeout(false, true, srv.at(5000)),
        TimeoutOutcome::None
    ));
    srv.r.set_amplification_blocked(false);
    assert_eq!(srv.r.loss_detection_timer(), Some(srv.at(999)));
}

/// RTT 100 ms from packet 0; then packets 1..=8 200 ms apart, packet 9 at
/// 1700 ms acknowledged at 1800 ms (with `extra` ranges).
fn persistent_congestion_run(extra: &[RangeInclusive<u64>]) -> (Sim, AckOutcome<u64>) {
    let mut s = Sim::reno();
    s.r.set_max_ack_delay(ms(25));
    s.r.set_peer_completed_address_validation();
    s.r.set_handshake_confirmed();
    s.send(Epoch::Application, 0);
    s.ack(Epoch::Application, &[0..=0], 100);
    for i in 1..=8 {
        s.send(Epoch::Application, 200 * i);
    }
    s.send(Epoch::Application, 1700);
    let mut ranges = vec![9..=9];
    ranges.extend_from_slice(extra);
    let o = s.ack(Epoch::Application, &ranges, 1800);
    (s, o)
}

#[test]
fn persistent_congestion_collapses_the_window() {
    // Duration (100 + 4 * 50 + 25) * 3 = 975 ms < 1600 - 200.
    let (s, o) = persistent_congestion_run(&[]);
    assert_eq!(pns(&o.lost), (1..=8).collect::<Vec<_>>());
    // Collapsed to 2 * mss; packet 9, acknowledged by the same ACK and no
    // longer inside a recovery period (RFC 9002 B.8 clears it), then
    // grows it in slow start. (Packet 0 alone did not use the window, so
    // it did not grow it: RFC 9002 §7.8.)
    assert_eq!(s.r.cwnd(), 3 * MSS);
    assert_eq!(s.r.ssthresh(), 12000 / 2);
    let st = s.r.stats();
    assert_eq!(
        (st.persistent_congestion_events, st.congestion_events),
        (1, 1)
    );
}

#[test]
fn acknowledged_packet_in_between_prevents_persistent_congestion() {
    // Packet 5 acknowledged splits the losses into 200..800 and
    // 1200..1600 ms: both shorter than 975 ms.
    let (s, o) = persistent_congestion_run(&[5..=5]);
    assert_eq!(pns(&o.lost), vec![1, 2, 3, 4, 6, 7, 8]);
    // Packet 0 alone did not use the window (no growth, RFC 9002 §7.8);
    // then halved.
    assert_eq!(s.r.cwnd(), 12000 / 2);
    assert_eq!(s.r.stats().persistent_congestion_events, 0);
}

#[test]
fn reno_slow_start_halving_and_one_reduction_per_recovery() {
    let mut s = Sim::reno();
    assert_eq!(s.r.cwnd(), 10 * MSS);
    s.send_n(Epoch::Application, 0, 10);
    s.ack(Epoch::Application, &[0..=9], 100);
    // Slow start: + bytes acknowledged.
    assert_eq!(s.r.cwnd(), 20 * MSS);
    assert!(s.r.in_slow_start());

    s.send_n(Epoch::Application, 100, 20); // 10..=29
    let o = s.ack(Epoch::Application, &[20..=20], 200);
    assert_eq!(pns(&o.lost), (10..=17).collect::<Vec<_>>());
    assert_eq!(s.r.cwnd(), 10 * MSS);
    assert_eq!(s.r.ssthresh(), 10 * MSS);
    // More losses of packets sent before recovery began: no new reduction.
    let o = s.ack(Epoch::Application, &[21..=29, 20..=20], 210);
    assert_eq!(pns(&o.lost), vec![18, 19]);
    assert_eq!(s.r.cwnd(), 10 * MSS);
    assert_eq!(s.r.stats().congestion_events, 1);

    // Congestion avoidance: one mss per window acknowledged.
    s.send_n(Epoch::Application, 220, 10); // 30..=39
    s.ack(Epoch::Application, &[30..=38], 320);
    assert_eq!(s.r.cwnd(), 10 * MSS);
    s.ack(Epoch::Application, &[30..=39], 321);
    assert_eq!(s.r.cwnd(), 11 * MSS);

    // A loss of a packet sent after recovery began reduces again.
    s.send_n(Epoch::Application, 330, 10); // 40..=49
    s.ack(Epoch::Application, &[44..=49], 430);
    assert_eq!(s.r.cwnd(), 11 * MSS / 2);
    assert_eq!(s.r.stats().congestion_events, 2);
    assert_eq!(s.r.stats().max_cwnd, 20 * MSS);

    // Never below the minimum window.
    for round in 0..6u64 {
        let t = 500 + round * 100;
        let first = s.next_pn[2];
        s.send_n(Epoch::Application, t, 4);
        s.ack(Epoch::Application, &[first + 3..=first + 3], t + 50);
    }
    assert_eq!(s.r.cwnd(), 2 * MSS);
}

#[test]
fn app_limited_sender_does_not_grow() {
    let mut s = Sim::reno();
    s.send_n(Epoch::Application, 0, 2);
    s.r.on_app_limited(s.at(1));
    assert!(s.r.is_app_limited());
    s.ack(Epoch::Application, &[0..=1], 100);
    assert_eq!(s.r.cwnd(), 10 * MSS);
    // Filling the window ends the app-limited period.
    s.send_n(Epoch::Application, 100, 10);
    assert!(!s.r.is_app_limited());
    s.ack(Epoch::Application, &[2..=11], 200);
    assert_eq!(s.r.cwnd(), 20 * MSS);
}

#[test]
fn unused_window_does_not_grow() {
    // A sender that never has more than 2 packets in flight (held back by
    // a pacer or its caller, not by the window) keeps its initial window.
    let mut s = Sim::reno();
    let mut pn = 0;
    for round in 0..20u64 {
        s.send_n(Epoch::Application, round * 10, 2);
        s.ack(Epoch::Application, &[pn..=pn + 1], round * 10 + 5);
        pn += 2;
    }
    assert_eq!(s.r.cwnd(), 10 * MSS);
    // Filling it again grows it.
    s.send_n(Epoch::Application, 300, 10);
    s.ack(Epoch::Application, &[pn..=pn + 9], 400);
    assert_eq!(s.r.cwnd(), 20 * MSS);
}

#[test]
fn cubic_curve_matches_hand_computed_values() {
    let mss = 1000;
    let t0 = Instant::now();
    let mut c = Cubic::default();
    // Reduction from 100 segments: ssthresh 70, W_max 100.
    assert_eq!(c.on_congestion_event(100_000, 2 * mss), 70_000);
    // First ACK starts the epoch: K = cbrt((100 - 70) / 0.4) = cbrt(75).
    // W_cubic(0) = 70000 < W_est = 70000 + 0.5294 * 1000 * 1000 / 70000
    // = 70007.56: Reno-friendly region, cwnd = W_est.
    let cwnd = c.on_ack(70_000, 1000, mss, ms(100), t0);
    assert!((c.k - 4.217_163_326_508_746).abs() < 1e-9);
    assert!((c.w_cubic(0.0, mss) - 70_000.0).abs() < 1e-6);
    assert!((c.w_cubic(c.k, mss) - 100_000.0).abs() < 1e-6);
    assert!((c.w_cubic(0.1, mss) - 72_083.930_022_776).abs() < 1e-6);
    assert_eq!(cwnd, 70_007);
    // One second in: W_cubic(1) = 86680.76 > W_est, concave region.
    // target = W_cubic(1.1) = 87884.57; cwnd += (target - cwnd) / cwnd *
    // 1000 = 255.37.
    let cwnd = c.on_ack(cwnd, 1000, mss, ms(100), t0 + Duration::from_secs(1));
    assert!((c.w_cubic(1.0, mss) - 86_680.763_835).abs() < 1e-3);
    assert_eq!(cwnd, 70_262);
    // Beyond K: convex, and never more than 1.5 * cwnd as target.
    let cwnd2 = c.on_ack(cwnd, 1000, mss, ms(100), t0 + Duration::from_secs(20));
    assert_eq!(cwnd2, cwnd + 500);

    // Fast convergence: a reduction below W_max lowers W_max further.
    assert_eq!(c.on_congestion_event(90_000, 2 * mss), 63_000);
    assert!((c.w_max - 76_500.0).abs() < 1e-9);
    c.on_ack(63_000, 1000, mss, ms(100), t0);
    assert!((c.k - 33.75f64.cbrt()).abs() < 1e-9);
}

#[test]
fn cubic_reduces_by_beta_and_grows_in_avoidance() {
    let mut s = Sim::new(cfg(CongestionControlAlgorithm::CUBIC, false, false));
    s.send_n(Epoch::Application, 0, 10);
    s.ack(Epoch::Application, &[0..=9], 100);
    assert_eq!(s.r.cwnd(), 20 * MSS);
    s.send_n(Epoch::Application, 100, 10); // 10..=19
    s.ack(Epoch::Application, &[19..=19], 200);
    // β = 0.7.
    assert_eq!(s.r.cwnd(), 16_800);
    assert_eq!(s.r.ssthresh(), 16_800);
    // Congestion avoidance grows it again, less than slow start would.
    let mut t = 300;
    for _ in 0..20 {
        let first = s.next_pn[2];
        s.send_n(Epoch::Application, t, 14);
        s.ack(Epoch::Application, &[first..=first + 13], t + 100);
        t += 100;
    }
    let cwnd = s.r.cwnd();
    assert!(cwnd > 16_800 && cwnd < 24_000 * 2, "cwnd {cwnd}");
    assert!(!s.r.in_slow_start());
}

#[test]
fn hystart_enters_css_on_rtt_increase_then_avoidance() {
    let mut s = Sim::new(cfg(CongestionControlAlgorithm::Reno, true, true));
    let app = Epoch::Application;
    // Round 1: 10 samples at about 100 ms.
    s.send_n(app, 0, 10);
    for pn in 0..10 {
        s.ack(app, &[pn..=pn], 100 + pn);
    }
    assert_eq!(s.r.cc.hystart.phase(), Phase::SlowStart);
    // Round 2: samples at 120 ms >= 100 + max(4, min(100 / 8, 16)).
    s.send_n(app, 110, 10); // 10..=19
    for (i, pn) in (10..17).enumerate() {
        s.ack(app, &[pn..=pn], 230 + i as u64);
        assert_eq!(s.r.cc.hystart.phase(), Phase::SlowStart);
    }
    let before = s.r.cwnd();
    s.ack(app, &[17..=17], 237);
    assert_eq!(s.r.cc.hystart.phase(), Phase::Css);
    // The ACK that moved to CSS already grows at a quarter.
    assert_eq!(s.r.cwnd(), before + MSS / 4);
    let before = s.r.cwnd();
    s.ack(app, &[18..=19], 238);
    assert_eq!(s.r.cwnd(), before + 2 * MSS / 4);
    // CSS_ROUNDS rounds later: congestion avoidance with ssthresh = cwnd.
    let mut t = 300;
    for _ in 0..5 {
        assert!(s.r.in_slow_start());
        let pn = s.send(app, t);
        s.ack(app, &[pn..=pn], t + 120);
        t += 130;
    }
    assert_eq!(s.r.cc.hystart.phase(), Phase::Done);
    assert!(!s.r.in_slow_start());
    assert_eq!(s.r.ssthresh(), s.r.cwnd());
}

#[test]
fn hystart_css_returns_to_slow_start_when_rtt_drops() {
    let mut s = Sim::new(cfg(CongestionControlAlgorithm::CUBIC, true, true));
    let app = Epoch::Application;
    s.send_n(app, 0, 8);
    for pn in 0..8 {
        s.ack(app, &[pn..=pn], 100);
    }
    s.send_n(app, 110, 8); // 8..=15
    for pn in 8..16 {
        s.ack(app, &[pn..=pn], 240);
    }
    assert_eq!(s.r.cc.hystart.phase(), Phase::Css);
    // Next round: samples below the CSS baseline (130 ms).
    s.send_n(app, 250, 8); // 16..=23
    for pn in 16..24 {
        s.ack(app, &[pn..=pn], 350);
    }
    assert_eq!(s.r.cc.hystart.phase(), Phase::SlowStart);
    // A loss ends HyStart++ for good.
    s.send_n(app, 360, 4); // 24..=27
    s.ack(app, &[27..=27], 460);
    assert_eq!(s.r.cc.hystart.phase(), Phase::Done);
}

#[test]
fn pacing_rate_and_next_send_time() {
    let mut s = Sim::new(cfg(CongestionControlAlgorithm::Reno, false, true));
    // 1.25 * 12000 / 0.333 s.
    assert_eq!(s.r.pacing_rate(), 45_045);
    s.send_n(Epoch::Application, 0, 10);
    s.ack(Epoch::Application, &[0..=9], 100);
    // The window was filled: slow start doubled it. cwnd 24000, srtt
    // 100 ms.
    assert_eq!(s.r.pacing_rate(), 300_000);
    let now = s.at(100);
    // The bucket refilled to the burst of 10 packets.
    assert!(s.r.can_send(now));
    s.send_n(Epoch::Application, 100, 10);
    assert!(!s.r.can_send(now));
    // 1200 bytes at 300000 B/s: 4 ms.
    let next = s.r.next_send_time(now);
    let wait = next - now;
    assert!(
        wait >= Duration::from_nanos(3_999_999) && wait <= Duration::from_nanos(4_000_001),
        "{wait:?}"
    );
    assert_eq!(s.r.next_send_time(next), next);
    assert!(s.r.cwnd_available() > 0);
    assert!(s.r.can_send(next));

    // Disabled pacing: always now.
    let mut s = Sim::reno();
    s.send_n(Epoch::Application, 0, 30);
    assert_eq!(s.r.next_send_time(s.at(0)), s.at(0));
}

#[test]
fn discarding_a_space_and_draining_unacked() {
    let mut s = Sim::reno();
    s.r.set_peer_completed_address_validation();
    s.send_n(Epoch::Initial, 0, 2);
    s.send(Epoch::Handshake, 5);
    s.send_pkt(Epoch::Handshake, 6, false);
    assert_eq!(s.r.bytes_in_flight(), 3 * MSS);
    s.r.on_pkt_num_space_discarded(Epoch::Initial);
    assert_eq!(s.r.bytes_in_flight(), MSS);
    assert!(!s.r.has_ack_eliciting_in_flight(Epoch::Initial));
    assert_eq!(s.r.loss_detection_timer(), Some(s.at(5 + 999)));
    // Packets sent in a discarded space are not tracked.
    s.send(Epoch::Initial, 7);
    assert_eq!(s.r.bytes_in_flight(), MSS);

    let drained = s.r.drain_unacked(Epoch::Handshake);
    assert_eq!(pns(&drained), vec![0, 1]);
    assert_eq!(s.r.bytes_in_flight(), 0);
    assert_eq!(s.r.loss_detection_timer(), None);
    // The space continues with fresh numbers.
    s.send(Epoch::Handshake, 10);
    assert_eq!(s.r.bytes_in_flight(), MSS);
    assert!(s
        .r
        .on_ack_received(
            Epoch::Handshake,
            [2..=2].into_iter(),
            ms(0),
            false,
            s.at(20)
        )
        .is_ok());
}

#[test]
fn spurious_losses_are_counted() {
    let mut s = Sim::reno();
    s.send_n(Epoch::Application, 0, 5);
    let o = s.ack(Epoch::Application, &[4..=4], 50);
    assert_eq!(pns(&o.lost), vec![0, 1]);
    let o = s.ack(Epoch::Application, &[4..=4, 0..=2], 60);
    assert_eq!(acked_pns(&o.acked), vec![2]);
    assert_eq!(s.r.stats().spurious_lost_count, 2);
}

// A packet the packet threshold declared lost that is acknowledged after
// all raises the threshold past its reordering distance (RFC 9002
// §6.1.1), so the same reordering is not taken for loss again.
#[test]
fn spurious_loss_raises_the_packet_threshold() {
    let mut s = Sim::reno();
    s.send_n(Epoch::Application, 0, 5);
    let o = s.ack(Epoch::Application, &[4..=4], 50);
    // Distances 4 and 3 from the largest acknowledged.
    assert_eq!(pns(&o.lost), vec![0, 1]);
    let o = s.ack(Epoch::Application, &[0..=4], 51);
    assert_eq!(acked_pns(&o.acked), vec![2, 3]);
    assert_eq!(s.r.stats().spurious_lost_count, 2);
    // Threshold now 5: with 10 acknowledged, 5 (distance 5) is lost but
    // 6 and 7 (distances 4 and 3, lost under kPacketThreshold) are not.
    s.send_n(Epoch::Application, 52, 6);
    let o = s.ack(Epoch::Application, &[10..=10], 60);
    assert_eq!(pns(&o.lost), vec![5]);
}

// A packet the time threshold declared lost that is acknowledged after
// all lengthens the time threshold by a quarter RTT (RFC 9002 §6.1.2).
#[test]
fn spurious_loss_raises_the_time_threshold() {
    let mut s = Sim::reno();
    s.send(Epoch::Application, 0);
    s.send(Epoch::Application, 1);
    s.ack(Epoch::Application, &[1..=1], 100);
    // latest = smoothed = 99 ms: 9/8 of it after packet 0.
    let deadline = s.at(0) + Duration::from_micros(111_375);
    assert_eq!(s.r.loss_detection_timer(), Some(deadline));
    assert!(matches!(
        s.r.on_loss_detection_timeout(true, true, deadline),
        TimeoutOutcome::Lost { .. }
    ));
    s.ack(Epoch::Application, &[0..=1], 120);
    assert_eq!(s.r.stats().spurious_lost_count, 1);
    // Same RTT (the late ACK gave no sample): now 11/8 of it.
    s.send(Epoch::Application, 200);
    s.send(Epoch::Application, 200);
    s.ack(Epoch::Application, &[3..=3], 299);
    let rtt = s.r.rtt().latest_rtt.max(s.r.rtt().smoothed_rtt);
    assert_eq!(s.r.loss_detection_timer(), Some(s.at(200) + rtt * 11 / 8));
}

#[test]
fn datagram_size_change_recomputes_initial_window() {
    let mut s = Sim::reno();
    assert_eq!(s.r.cwnd(), 12_000);
    s.r.update_max_datagram_size(1500);
    assert_eq!(s.r.cwnd(), 14_720);
    // 10 * 1000 < 14720.
    s.r.update_max_datagram_size(1000);
    assert_eq!(s.r.cwnd(), 10_000);
}

#[test]
fn algorithm_from_str() {
    assert_eq!(
        "reno".parse::<CongestionControlAlgorithm>(),
        Ok(CongestionControlAlgorithm::Reno)
    );
    assert_eq!(
        "CUBIC".parse::<CongestionControlAlgorithm>(),
        Ok(CongestionControlAlgorithm::CUBIC)
    );
    assert_eq!(
        "bbr".parse::<CongestionControlAlgorithm>(),
        Err(Error::CongestionControl)
    );
}

#[test]
fn initial_and_minimum_windows() {
    assert_eq!(cc::initial_window(1200, 10), 12_000);
    assert_eq!(cc::initial_window(1472, 10), 14_720);
    assert_eq!(cc::initial_window(9000, 10), 18_000);
    // A configured window of 32 datagrams (quiche's
    // set_initial_congestion_window_packets).
    assert_eq!(cc::initial_window(1350, 32), 43_200);
    assert_eq!(cc::minimum_window(1200), 2_400);
}

#[test]
fn hystart_limits_unpaced_slow_start_growth_per_ack() {
    // RFC 9406 §4.3: L = 8 full-size datagrams per ACK when not paced.
    let mut s = Sim::new(cfg(CongestionControlAlgorithm::Reno, true, false));
    s.send_n(Epoch::Application, 0, 10);
    s.ack(Epoch::Application, &[0..=9], 100);
    assert_eq!(s.r.cwnd(), 10 * MSS + 8 * MSS);
    // Paced: no limit.
    let mut s = Sim::new(cfg(CongestionControlAlgorithm::Reno, true, true));
    s.send_n(Epoch::Application, 0, 10);
    s.ack(Epoch::Application, &[0..=9], 100);
    assert_eq!(s.r.cwnd(), 20 * MSS);
}

#[test]
fn cubic_app_limited_time_is_not_counted() {
    let mut s = Sim::new(cfg(CongestionControlAlgorithm::CUBIC, false, false));
    s.send_n(Epoch::Application, 0, 10);
    s.ack(Epoch::Application, &[9..=9], 100); // 0..=6 lost: 12000 -> 8400
    assert_eq!(s.r.cwnd(), 8400);
    s.send_n(Epoch::Application, 110, 7); // 10..=16
                                          // Packet 10 was sent after the reduction: avoidance starts, and grows.
    s.ack(Epoch::Application, &[10..=10], 210);
    assert!(s.r.cwnd() > 8400);
    let epoch = s.r.cc.cubic.epoch_start.expect("avoidance epoch started");
    assert_eq!(epoch, s.at(210));
    s.r.on_app_limited(s.at(220));
    let cwnd = s.r.cwnd();
    s.ack(Epoch::Application, &[11..=12], 300);
    assert_eq!(s.r.cwnd(), cwnd, "no growth while app-limited");
    // Filling the window at 1220 ms ends the period: the epoch moves by
    // the 1000 ms spent app-limited.
    while s.r.cwnd_available() > 0 {
        s.send(Epoch::Application, 1220);
    }
    assert!(!s.r.is_app_limited());
    assert_eq!(s.r.cc.cubic.epoch_start, Some(s.at(1210)));
}

// RFC 9000 §9.4: "Packets sent on the old path MUST NOT contribute to
// congestion control or RTT estimation for the new path": after the reset,
// acknowledging old packets neither grows the fresh window nor samples the
// RTT, and losing them is no congestion event; packets of the new path do
// all three.
#[test]
fn old_path_packets_do_not_feed_the_new_path() {
    let mut s = Sim::reno();
    for _ in 0..20 {
        s.send(Epoch::Application, 0);
    }
    s.r.reset_for_new_path(s.at(10));
    let initial = s.r.cwnd();
    let fresh_rtt = s.r.rtt().smoothed_rtt;

    // Old packets 10..=19 acknowledged: no growth, no RTT sample. Packets
    // 0..=9 are now lost by the packet threshold: no congestion event.
    let o = s.ack(Epoch::Application, &[10..=19], 50);
    assert!(!o.rtt_updated);
    assert_eq!(pns(&o.lost), (0..=9).collect::<Vec<_>>());
    assert_eq!(
        s.r.cwnd(),
        initial,
        "old-path acks grew or losses cut the window"
    );
    assert_eq!(s.r.rtt().smoothed_rtt, fresh_rtt);

    // A window of packets on the new path: an RTT sample and slow-start
    // growth.
    let pn = s.send(Epoch::Application, 60);
    s.send_n(Epoch::Application, 60, initial / MSS - 1);
    let o = s.ack(Epoch::Application, &[pn..=pn], 80);
    assert!(o.rtt_updated);
    assert_eq!(s.r.rtt().latest_rtt, ms(20));
    assert_eq!(s.r.cwnd(), initial + MSS);

    // Losing new-path packets is a congestion event again: pn + 1 and
    // pn + 2 are three below the newly acknowledged pn + 5.
    let o = s.ack(Epoch::Application, &[pn + 5..=pn + 5], 90);
    assert_eq!(pns(&o.lost), vec![pn + 1, pn + 2]);
    assert!(s.r.cwnd() < initial, "{}", s.r.cwnd());
}

/// An idle sender forgets the records of packets that elicit no
/// acknowledgement (a peer need never acknowledge an ACK-only packet):
/// they would stay for the connection's life, ~120 bytes each.
#[test]
fn idle_release_forgets_unacknowledged_ack_only_packets() {
    let mut s = Sim::reno();
    let pn = s.send(Epoch::Application, 0);
    s.ack(Epoch::Application, &[pn..=pn], 10);
    // Two ACK-only packets, never acknowledged.
    s.send_pkt(Epoch::Application, 20, false);
    s.send_pkt(Epoch::Application, 30, false);
    let space = &s.r.spaces[Epoch::Application.idx()];
    assert_eq!(space.sent.len(), 2);
    s.r.release_idle_memory();
    let space = &s.r.spaces[Epoch::Application.idx()];
    assert!(space.sent.is_empty() && space.sent.capacity() == 0);
    assert_eq!(space.live, 0);
    // With an ack-eliciting packet in flight nothing is forgotten.
    s.send_pkt(Epoch::Application, 40, false);
    s.send(Epoch::Application, 50);
    s.r.release_idle_memory();
    assert_eq!(s.r.spaces[Epoch::Application.idx()].sent.len(), 2);
    // Later numbers go on as before.
    let next = s.send(Epoch::Application, 60);
    assert_eq!(next, 5);
}
