//! Congestion control and pacing seen from a connection (RFC 9002 §7),
//! over the in-memory pipe: pacing, an application-limited sender,
//! reordering, the configured pacing cap and initial window.

use crate::testing::{test_config, LinkConfig, Pipe};

use super::tests::{established_over, pattern, transfer, transfer_on};

#[test]
fn pacing_spreads_datagrams_over_time() {
    let mut p = Pipe::new().unwrap();
    p.handshake().unwrap();
    p.client.stream_send(0, &pattern(500_000), true).unwrap();
    let mut buf = [0u8; 1500];
    let mut ats = Vec::new();
    while let Ok((_, info)) = p.client.send_at(&mut buf, p.now) {
        ats.push(info.at);
        if ats.len() > 200 {
            break;
        }
    }
    // The initial window: 10 datagrams (RFC 9002 §7.2; the handshake did
    // not fill the window, so it did not grow it, §7.8).
    assert!(ats.len() >= 10, "{} datagrams", ats.len());
    // With pacing on, later datagrams are scheduled after earlier ones and
    // not all at once.
    assert!(ats.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        *ats.last().unwrap() > ats[0],
        "all {} datagrams due at once",
        ats.len()
    );
}

#[test]
fn application_limited_sender_keeps_its_window() {
    // RFC 9002 §7.8: a sender whose application writes 2,000 bytes per
    // round trip never fills its window, so the window must not grow
    // however many of those rounds are acknowledged (and the send buffer
    // sized from it stays small).
    let link = LinkConfig {
        delay: std::time::Duration::ZERO,
        ..LinkConfig::default()
    };
    let mut p = Pipe::with_configs(
        &mut test_config(false).unwrap(),
        &mut test_config(true).unwrap(),
        link.clone(),
        link,
    )
    .unwrap();
    p.handshake().unwrap();
    let cwnd0 = p.client.path_stats().next().unwrap().cwnd;
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    for round in 0..300u64 {
        let chunk = pattern(2000);
        assert_eq!(p.client.stream_send(0, &chunk, false), Ok(2000));
        // One round trip: data out, ACK back (no virtual time passes, so
        // no timer fires).
        for _ in 0..2 {
            p.flush().unwrap();
            p.deliver().unwrap();
        }
        while let Ok((n, _)) = p.server.stream_recv(0, &mut buf) {
            got += n;
        }
        assert_eq!(got as u64, (round + 1) * 2000, "round {round}");
    }
    let cwnd = p.client.path_stats().next().unwrap().cwnd;
    assert_eq!(
        cwnd, cwnd0,
        "window grew from {cwnd0} to {cwnd} without being used"
    );
    // A sender that fills it grows it.
    let data = pattern(3_000_000);
    assert!(transfer_on(&mut p, 4, &data, 100_000) == data);
    assert!(p.client.path_stats().next().unwrap().cwnd > cwnd0);
}

// Reordering without loss: the first packets a reordering overtakes look
// lost, but once they are acknowledged after all the thresholds adapt
// (RFC 9002 §6.1), so the rest of the transfer is not taken for loss.
// With the fixed kPacketThreshold this run declared 126 packets lost.
#[test]
fn reordering_is_not_taken_for_loss() {
    let link = LinkConfig {
        reorder: 0.05,
        delay: std::time::Duration::from_millis(10),
        seed: 3,
        ..LinkConfig::default()
    };
    let mut p = established_over(link, 4);
    let data = pattern(4 * 1024 * 1024);
    let got = transfer(&mut p, &data, 4_000_000);
    assert!(got == data, "payload differs");
    let s = p.client.stats();
    assert_eq!(p.c2s.dropped, 0);
    assert!(s.lost <= 20, "{s:?}");
}

/// quiche's `set_max_pacing_rate`: `SendInfo::at` spaces packets at no
/// more than the cap, whatever the window allows; `None` lifts it.
#[test]
fn max_pacing_rate_caps_the_send_times() {
    const CAP: u64 = 100_000; // bytes per second
                              // The span of `SendInfo::at` over 40 full packets sent back to back,
                              // and their bytes.
    fn span(p: &mut Pipe) -> (std::time::Duration, usize) {
        p.client.stream_send(0, &pattern(200_000), false).unwrap();
        let mut out = [0u8; 1500];
        let (mut first, mut last, mut bytes) = (None, None, 0);
        for _ in 0..40 {
            let (n, info) = p.client.send_at(&mut out, p.now).unwrap();
            first.get_or_insert(info.at);
            last = Some(info.at);
            bytes += n;
        }
        (last.unwrap() - first.unwrap(), bytes)
    }
    // A window of 100 packets: pacing, not the window, spaces them.
    let pipe = |cap: Option<u64>| {
        let mut c = test_config(false).unwrap();
        c.set_initial_congestion_window_packets(100);
        if let Some(cap) = cap {
            c.set_max_pacing_rate(cap);
        }
        let mut p = Pipe::with_configs(
            &mut c,
            &mut test_config(true).unwrap(),
            LinkConfig::default(),
            LinkConfig::default(),
        )
        .unwrap();
        p.handshake().unwrap();
        p
    };
    let mut p = pipe(Some(CAP));
    let (capped, bytes) = span(&mut p);
    // The pacer's first burst (10 packets) goes at once; the rest at most
    // CAP bytes per second.
    let floor = std::time::Duration::from_secs_f64((bytes - 15_000) as f64 / CAP as f64);
    assert!(capped >= floor, "{capped:?} for {bytes} bytes");
    // Without the cap the same packets go far faster (the window's rate);
    // lifting it on a live connection does the same.
    let (free, _) = span(&mut pipe(None));
    assert!(free * 4 < capped, "{free:?} vs {capped:?}");
    p.client.set_max_pacing_rate(None);
    let (lifted, _) = span(&mut p);
    assert!(lifted * 4 < capped, "{lifted:?} vs {capped:?}");
}

/// quiche's `set_initial_congestion_window_packets` sets the window a
/// connection starts with (it used to be accepted and ignored).
#[test]
fn initial_congestion_window_is_configurable() {
    for (packets, want) in [(None, 13_500), (Some(32), 43_200), (Some(1), 2_700)] {
        let mut c = test_config(false).unwrap();
        if let Some(n) = packets {
            c.set_initial_congestion_window_packets(n);
        }
        let p = Pipe::with_configs(
            &mut c,
            &mut test_config(true).unwrap(),
            LinkConfig::default(),
            LinkConfig::default(),
        )
        .unwrap();
        // 1350-byte datagrams (the test config's maximum); at least two.
        assert_eq!(
            p.client.path_stats().next().unwrap().cwnd,
            want,
            "{packets:?}"
        );
    }
}
