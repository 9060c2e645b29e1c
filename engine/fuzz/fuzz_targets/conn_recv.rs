#![no_main]
//! Whole datagrams into a server connection (before and after its first
//! Initial) and into a client: errors close the connection, nothing
//! panics, and whatever the connection then sends is well-formed enough
//! to be written.

use std::net::SocketAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tarte::testing::test_config;
use tarte::{ConnectionId, RecvInfo};

fn addrs() -> (SocketAddr, SocketAddr) {
    static A: OnceLock<(SocketAddr, SocketAddr)> = OnceLock::new();
    *A.get_or_init(|| {
        (
            "127.0.0.1:4444".parse().unwrap(),
            "127.0.0.1:4433".parse().unwrap(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (c, s) = addrs();
    let mut scfg = test_config(true).expect("server config");
    let mut ccfg = test_config(false).expect("client config");
    let mut server =
        tarte::accept(&ConnectionId::from_ref(&[0x5e; 8]), None, s, c, &mut scfg).expect("accept");
    let mut client = tarte::connect(
        Some("localhost"),
        &ConnectionId::from_ref(&[0xc1; 8]),
        c,
        s,
        &mut ccfg,
    )
    .expect("connect");
    let mut out = [0u8; 1500];
    // Split the input into up to 4 datagrams on 0xff 0xff markers.
    for d in data.split(|b| *b == 0xff).take(4) {
        let mut d1 = d.to_vec();
        let _ = server.recv(&mut d1, RecvInfo { from: c, to: s });
        let mut d2 = d.to_vec();
        let _ = client.recv(&mut d2, RecvInfo { from: s, to: c });
        while server.send(&mut out).is_ok() {}
        while client.send(&mut out).is_ok() {}
    }
});
