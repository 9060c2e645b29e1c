#![no_main]
//! Arbitrary frames past packet protection: after a real handshake, each
//! piece of the input (split on 0xff 0xfe) is sealed as a 1-RTT packet from
//! the client and delivered to the server, whose application then reads
//! every readable stream. Stream reassembly, flow control and every frame
//! handler see hostile offsets, lengths and IDs; nothing may panic, and a
//! closed connection must stay closed. The client has given the server a
//! spare connection ID, and a piece's first byte picks the address it
//! comes from (the client's, or one of two others): migration, path
//! validation and answers on other paths are fuzzed too. With the top bit
//! of the input's first byte set the server's qlog writes every frame it
//! parses (frames then all take the general path); without, STREAM frames
//! take the receiver's fast paths. With bit 0x40 set both sides run path
//! MTU discovery (the server's probes are in flight while hostile ACK
//! frames arrive).

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use tarte::testing::{forge_1rtt, fuzz_pieces, LinkConfig, Pipe};
use tarte::ConnectionId;

fuzz_target!(|data: &[u8]| {
    // With bit 0x40 of the first byte both sides discover the path MTU:
    // the server's probes meet hostile ACK frames.
    let discover = data.first().is_some_and(|b| b & 0x40 != 0);
    let mut configs = [false, true].map(|server| {
        let mut c = tarte::testing::test_config(server).expect("config");
        c.set_max_send_udp_payload_size(1472);
        c.set_max_recv_udp_payload_size(1472);
        c.discover_pmtu(discover);
        c
    });
    let [client_config, server_config] = &mut configs;
    let mut p = Pipe::with_configs(
        client_config,
        server_config,
        LinkConfig::default(),
        LinkConfig::default(),
    )
    .expect("pipe");
    if data.first().is_some_and(|b| b & 0x80 != 0) {
        // The server's qlog (into a sink) serializes every hostile frame.
        p.server
            .set_qlog(Box::new(std::io::sink()), "fuzz".into(), String::new());
    }
    p.handshake().expect("handshake");
    let spare = ConnectionId::from_vec(vec![0xc2; 8]);
    let _ = p.client.new_scid(&spare, 0x1234, false);
    for _ in 0..4 {
        let _ = p.advance();
    }
    let others = [
        SocketAddr::from(([127, 0, 0, 1], 5001)),
        SocketAddr::from(([10, 1, 2, 3], 5002)),
    ];
    let mut buf = [0u8; 4096];
    for payload in fuzz_pieces(data, 16) {
        let Some(mut pkt) = forge_1rtt(&mut p.client, payload) else {
            break;
        };
        let mut info = p.c2s_info();
        match payload.first().map(|b| b % 4) {
            Some(1) => info.from = others[0],
            Some(2) => info.from = others[1],
            _ => (),
        }
        let now = p.now;
        let _ = p.server.recv_at(&mut pkt, info, now);
        for id in p.server.readable() {
            while let Ok((n, fin)) = p.server.stream_recv(id, &mut buf) {
                if n == 0 && !fin {
                    break;
                }
                if fin {
                    break;
                }
            }
        }
        let _ = p.advance();
        if p.server.is_closed() {
            assert!(p.server.stream_send(0, b"x", false).is_err());
            break;
        }
    }
});
