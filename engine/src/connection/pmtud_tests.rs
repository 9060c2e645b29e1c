//! Path MTU discovery (RFC 8899, RFC 9000 §14.3) over the in-memory pipe,
//! whose links drop datagrams above their MTU.

use crate::testing::{test_config, LinkConfig, Pipe};
use crate::Config;

use super::tests::{pattern, transfer, transfer_on};

/// A client and server allowing `max`-byte datagrams both ways, with
/// discovery on or off, over links carrying `mtu` bytes of UDP payload.
fn pipe(max: usize, mtu: usize, discover: bool) -> Pipe {
    let configs = |server| -> Config {
        let mut c = test_config(server).unwrap();
        c.set_max_send_udp_payload_size(max);
        c.set_max_recv_udp_payload_size(max);
        c.discover_pmtu(discover);
        c
    };
    let link = LinkConfig {
        mtu,
        ..LinkConfig::default()
    };
    let mut p =
        Pipe::with_configs(&mut configs(false), &mut configs(true), link.clone(), link).unwrap();
    p.handshake().unwrap();
    p
}

/// Sends 2 MB client → server, then lets both searches finish; returns
/// the client's congestion events.
fn bulk(p: &mut Pipe) -> u64 {
    let data = pattern(2_000_000);
    assert_eq!(transfer(p, &data, 200_000), data);
    p.run_until(100_000, |p| {
        [&p.client, &p.server].iter().all(|c| c.pmtud.is_none())
    })
    .unwrap();
    p.client.recovery.stats().congestion_events
}

#[test]
fn discovery_finds_what_the_path_carries() {
    for (mtu, lowest) in [
        (1500, 1472),
        (1472, 1472),
        (1400, 1385),
        (1300, 1285),
        (1250, 1235),
    ] {
        let mut p = pipe(1472, mtu, true);
        // During the handshake and until it is confirmed: 1200.
        assert_eq!(p.client.max_send_udp_payload_size(), 1200);
        let events = bulk(&mut p);
        for (side, c) in [("client", &p.client), ("server", &p.server)] {
            let pmtu = c.max_send_udp_payload_size();
            assert!(
                (lowest..=mtu.min(1472)).contains(&pmtu),
                "{side}, mtu {mtu}: {pmtu}"
            );
            assert_eq!(c.path_stats().next().unwrap().pmtu, pmtu);
        }
        // Lost probes (three per size too large) are no congestion signal
        // (RFC 9000 §14.4): a loss-free link sees no window reduction.
        assert_eq!(events, 0, "mtu {mtu}");
        // A transfer now uses the size found: its packets average near it.
        let before = p.client.stats();
        let data = pattern(1_000_000);
        assert_eq!(transfer_on(&mut p, 4, &data, 100_000), data);
        let after = p.client.stats();
        let avg = (after.sent_bytes - before.sent_bytes) / (after.sent - before.sent) as u64;
        let pmtu = p.client.max_send_udp_payload_size() as u64;
        assert!(avg + 40 >= pmtu, "mtu {mtu}: average {avg} for {pmtu}");
    }
}

#[test]
fn a_path_of_1200_bytes_keeps_1200() {
    let mut p = pipe(1472, 1200, true);
    assert_eq!(bulk(&mut p), 0);
    assert_eq!(p.client.max_send_udp_payload_size(), 1200);
    // The search is over, its state freed.
    assert!(p.client.pmtud.is_none());
}

#[test]
fn without_discovery_the_configured_size_is_used() {
    // A path carrying it: every full packet at 1472.
    let mut p = pipe(1472, 1500, false);
    bulk(&mut p);
    assert_eq!(p.client.max_send_udp_payload_size(), 1472);
    assert!(p.client.pmtud.is_none());
    // The application vouched for a size the path does not carry: full
    // packets are lost, again and again (what discovery is for).
    let mut p = pipe(1472, 1400, false);
    p.client.stream_send(0, &pattern(100_000), true).unwrap();
    let _ = p.run_until(2_000, |p| p.server.stream_readable(0));
    assert!(!p.server.stream_readable(0));
}

#[test]
fn the_peers_limit_bounds_the_search() {
    let mut c = test_config(false).unwrap();
    c.set_max_send_udp_payload_size(1472);
    c.set_max_recv_udp_payload_size(1472);
    c.discover_pmtu(true);
    // The server takes at most 1300-byte datagrams.
    let mut s = test_config(true).unwrap();
    s.set_max_recv_udp_payload_size(1300);
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    p.handshake().unwrap();
    bulk(&mut p);
    assert_eq!(p.client.max_send_udp_payload_size(), 1300);
    assert!(p.client.pmtud.is_none());
}

#[test]
fn probes_go_alone_in_batches_and_batches_take_the_new_size() {
    let mut p = pipe(1472, 1500, true);
    let info = p.c2s_info();
    let (local, peer) = (info.from, info.to);
    let mut out = vec![0u8; 64 * 1500];
    p.client.stream_send(0, &pattern(500_000), true).unwrap();
    // The first batch after confirmation is the probe, alone.
    let b = p.client.send_batch_at(&mut out, 64, p.now).unwrap();
    assert_eq!((b.segments, b.len), (1, 1472));
    assert_eq!((b.info.from, b.info.to), (local, peer));
    // Until it is acknowledged, batches keep the confirmed size.
    let b = p.client.send_batch_at(&mut out, 4, p.now).unwrap();
    assert_eq!(b.segment_size, 1200);
    // Once it is, full ones use the new size.
    p.run_until(1_000, |p| p.client.max_send_udp_payload_size() == 1472)
        .unwrap();
    let b = p.client.send_batch_at(&mut out, 4, p.now).unwrap();
    assert_eq!(b.segment_size, 1472);
}

#[test]
fn a_new_path_searches_again() {
    let mut p = pipe(1472, 1500, true);
    super::migration_tests::issue_spare_ids(&mut p);
    bulk(&mut p);
    assert_eq!(p.client.max_send_udp_payload_size(), 1472);
    // The client moves to another address (RFC 9000 §9.2): its new path
    // starts again from 1200, and finds 1472 again.
    let new: std::net::SocketAddr = "127.0.0.1:6000".parse().unwrap();
    p.client.migrate_source(new).unwrap();
    assert_eq!(p.client.max_send_udp_payload_size(), 1200);
    p.rebind_client(new);
    let data = pattern(300_000);
    assert_eq!(transfer_on(&mut p, 4, &data, 50_000), data);
    p.run_until(10_000, |p| p.client.pmtud.is_none()).unwrap();
    assert_eq!(p.client.max_send_udp_payload_size(), 1472);
}

#[test]
fn a_path_whose_mtu_shrinks_is_found_again() {
    let mut p = pipe(1472, 1500, true);
    bulk(&mut p);
    assert_eq!(p.client.max_send_udp_payload_size(), 1472);
    // The route changes: the path now carries 1300 bytes. Full packets
    // vanish; after three PTOs the client searches again from 1200
    // (RFC 8899 §4.3) and the transfer completes.
    let small = LinkConfig {
        mtu: 1300,
        ..LinkConfig::default()
    };
    p.c2s = crate::testing::Link::new(small.clone());
    p.s2c = crate::testing::Link::new(small);
    let data = pattern(500_000);
    assert_eq!(transfer_on(&mut p, 4, &data, 200_000), data);
    p.run_until(100_000, |p| p.client.pmtud.is_none()).unwrap();
    let pmtu = p.client.max_send_udp_payload_size();
    assert!((1285..=1300).contains(&pmtu), "{pmtu}");
}

#[test]
fn a_search_that_stopped_short_looks_for_more_later() {
    // No idle timeout: the connection waits out the raise timer.
    let configs = |server| -> Config {
        let mut c = test_config(server).unwrap();
        c.set_max_send_udp_payload_size(1472);
        c.set_max_recv_udp_payload_size(1472);
        c.set_max_idle_timeout(0);
        c.discover_pmtu(true);
        c
    };
    let small = LinkConfig {
        mtu: 1300,
        ..LinkConfig::default()
    };
    let mut p = Pipe::with_configs(
        &mut configs(false),
        &mut configs(true),
        small.clone(),
        small,
    )
    .unwrap();
    p.handshake().unwrap();
    bulk(&mut p);
    let found = p.client.max_send_udp_payload_size();
    assert!((1285..=1300).contains(&found), "{found}");
    // The route changes to carry 1500 bytes. Before the raise timer
    // (RFC 8899 §5.1.1: 600 s) the size stays; after it, a new search
    // from what passed finds 1472.
    p.c2s = crate::testing::Link::new(LinkConfig::default());
    p.s2c = crate::testing::Link::new(LinkConfig::default());
    let data = pattern(200_000);
    assert_eq!(transfer_on(&mut p, 4, &data, 50_000), data);
    assert_eq!(p.client.max_send_udp_payload_size(), found);
    p.now += super::pmtud::PMTU_RAISE_TIMER;
    assert_eq!(transfer_on(&mut p, 8, &data, 50_000), data);
    p.run_until(10_000, |p| p.client.pmtud.is_none()).unwrap();
    assert_eq!(p.client.max_send_udp_payload_size(), 1472);
}
