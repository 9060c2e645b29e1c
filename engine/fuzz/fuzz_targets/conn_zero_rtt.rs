#![no_main]
//! Arbitrary frames in 0-RTT packets: a client resumes a session with
//! 0-RTT, its first flight reaches the server (which accepts 0-RTT), then
//! each piece of the input (split on 0xff 0xfe) is sealed as a 0-RTT
//! packet from the client and delivered to the server, whose application
//! reads every readable stream and answers (0.5-RTT). Frames 0-RTT may not
//! carry, stream limits from remembered parameters, and 0-RTT data
//! before the handshake completes are fuzzed; nothing may panic, and a
//! closed connection must stay closed. The handshake then runs on.

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use tarte::testing::{forge_0rtt, fuzz_pieces, test_config, LinkConfig, Pipe};
use tarte::Config;

/// Configs with 0-RTT on both sides, and a session of that server.
fn setup() -> &'static Mutex<(Config, Config, Vec<u8>)> {
    static S: OnceLock<Mutex<(Config, Config, Vec<u8>)>> = OnceLock::new();
    S.get_or_init(|| {
        let mut c = test_config(false).expect("client config");
        let mut s = test_config(true).expect("server config");
        c.enable_early_data();
        s.enable_early_data();
        let mut p =
            Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default())
                .expect("pipe");
        p.handshake().expect("handshake");
        p.run_until(100, |p| p.client.session().is_some())
            .expect("ticket");
        let session = p.client.session().expect("session").to_vec();
        Mutex::new((c, s, session))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut guard = setup().lock().unwrap_or_else(|e| e.into_inner());
    let (c, s, session) = &mut *guard;
    let mut p =
        Pipe::with_configs(c, s, LinkConfig::default(), LinkConfig::default()).expect("pipe");
    p.client.set_session(session).expect("session");
    // The ClientHello; the server accepts 0-RTT on it.
    p.flush().expect("flush");
    p.now += LinkConfig::default().delay;
    let _ = p.deliver();
    if !p.server.is_in_early_data() {
        return;
    }
    let info = p.c2s_info();
    let mut buf = [0u8; 4096];
    let mut out = [0u8; 1500];
    for payload in fuzz_pieces(data, 16) {
        let Some(mut pkt) = forge_0rtt(&mut p.client, payload) else {
            break;
        };
        let was_closed = p.server.is_closed();
        let _ = p.server.recv(&mut pkt, info);
        assert!(!was_closed || p.server.is_closed());
        let readable: Vec<u64> = p.server.readable().collect();
        for id in readable {
            while let Ok((n, _)) = p.server.stream_recv(id, &mut buf) {
                if n == 0 {
                    break;
                }
            }
            let _ = p.server.stream_send(id, b"answer", true);
        }
        while p.server.send(&mut out).is_ok() {}
    }
    for _ in 0..50 {
        if p.advance().is_err() {
            break;
        }
    }
});
