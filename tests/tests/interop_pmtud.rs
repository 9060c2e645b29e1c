//! Path MTU discovery (RFC 8899, RFC 9000 §14.3) against aioquic 1.7.2,
//! through a relay whose path drops datagrams above its MTU: our probes
//! must be PING + PADDING packets aioquic acknowledges, the size in use
//! must fit the path, and no data packet may exceed it.

use std::time::Duration;

use tarte_tests::hq::client::{fetch, ClientOptions};
use tarte_tests::interop::{
    aioquic_fetch, random_bytes, serial, server_options, sha256_hex, AioquicServer, TarteServer,
    TempDir,
};
use tarte_tests::relay::{Relay, RelayConfig};

const BODY: usize = 3 * 1024 * 1024;

fn path_of(mtu: usize) -> RelayConfig {
    RelayConfig {
        max_datagram: mtu,
        ..Default::default()
    }
}

/// The tarte client, discovering up to 1472 bytes, downloads 3 MiB from
/// aioquic's server over a path of 1400 bytes.
#[test]
fn tarte_client_finds_the_path_mtu_to_aioquic() {
    let _g = serial();
    let dir = TempDir::new("pmtud-aioq-srv");
    let root = dir.path().join("www");
    std::fs::create_dir(&root).unwrap();
    let body = random_bytes(BODY);
    std::fs::write(root.join("big.bin"), &body).unwrap();
    let server = AioquicServer::start(dir.path(), &root, &[]);
    let relay = Relay::start(server.addr, path_of(1400)).unwrap();
    let opts = ClientOptions {
        verify: false,
        timeout: Duration::from_secs(60),
        pmtud: Some(1472),
        ..Default::default()
    };
    // Three requests at once (9 MiB): time for the search, one probe in
    // flight at a time, to finish.
    let urls = vec![relay.url("/big.bin"); 3];
    let report = fetch(&urls, &opts).unwrap_or_else(|e| {
        panic!(
            "tarte client: {e:#}\naioquic server output:\n{}",
            server.proc.log()
        )
    });
    for r in &report.responses {
        let got = r.result.as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sha256_hex(got), sha256_hex(&body));
    }
    let stats = relay.stop().unwrap();
    // The size in use never exceeds the path, and the only datagrams too
    // large for it were probes (at most three per size tried). (Whether
    // the search has finished when the last response arrives depends on
    // timing: a client mostly sends ACKs, so its lost probes are found by
    // PTO; the pipe tests check where it converges.)
    assert!(
        (1200..=1400).contains(&report.pmtu),
        "pmtu {} ({stats:?})",
        report.pmtu
    );
    assert!((1..=12).contains(&stats.c2s.oversize), "{stats:?}");
    eprintln!(
        "tarte client -> aioquic over a 1400-byte path: pmtu {}, {} oversize probes dropped, {} packets sent",
        report.pmtu, stats.c2s.oversize, report.stats.sent
    );
}

/// aioquic's client downloads 3 MiB from the tarte server, which discovers
/// up to 1472 bytes, over a path of 1300 bytes: every byte arrives, and
/// only probes are too large for the path.
#[test]
fn aioquic_client_gets_data_from_a_discovering_tarte_server() {
    let _g = serial();
    let dir = TempDir::new("pmtud-aioq-cli");
    let body = random_bytes(BODY);
    let server = TarteServer::start(tarte_tests::hq::server::ServerOptions {
        pmtud: Some(1472),
        ..server_options(dir.path(), &[("big.bin", &body)])
    });
    let relay = Relay::start(server.addr, path_of(1300)).unwrap();
    let out = dir.path().join("out");
    aioquic_fetch(
        &out,
        &[relay.url("/big.bin"), relay.url("/big.bin")],
        &["--timeout", "60"],
        Duration::from_secs(90),
    );
    assert_eq!(
        sha256_hex(&std::fs::read(out.join("big.bin")).unwrap()),
        sha256_hex(&body)
    );
    let stats = relay.stop().unwrap();
    // Without discovery's bound the server would send 1472-byte packets
    // (its configured maximum) and thousands would be dropped.
    assert!((1..=18).contains(&stats.s2c.oversize), "{stats:?}");
    eprintln!(
        "aioquic client <- tarte server over a 1300-byte path: {} oversize probes dropped of {} datagrams",
        stats.s2c.oversize, stats.s2c.received
    );
}
