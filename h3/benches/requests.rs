//! HTTP/3 request rate on one connection in memory: 10,000 GET requests
//! with 1 KiB response bodies, 100 in flight, over tarte's Pipe with zero
//! link delay. Criterion reports requests/s (throughput in elements).
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tarte::testing::LinkConfig;
use tarte_h3::testing::{quic_config, request, response, Session};
use tarte_h3::{Config, Error, Event};

const REQUESTS: usize = 10_000;
const IN_FLIGHT: u64 = 100;

fn session() -> Session {
    let link = LinkConfig {
        delay: Duration::ZERO,
        ..Default::default()
    };
    let mut cq = quic_config(false).unwrap();
    let mut sq = quic_config(true).unwrap();
    for c in [&mut cq, &mut sq] {
        c.set_initial_max_streams_bidi(IN_FLIGHT);
        c.set_initial_max_data(100_000_000);
    }
    let h3 = Config::new().unwrap();
    Session::with_configs(&mut cq, &mut sq, &h3, &h3, link).unwrap()
}

/// Runs `REQUESTS` requests; returns how many completed with the right
/// body length.
fn run(s: &mut Session) -> usize {
    let req = request("GET", "/bytes/1024");
    let resp = response(200);
    let body = vec![0x5a; 1024];
    let (mut sent, mut done, mut inflight) = (0, 0, 0u64);
    let mut got = vec![0usize; REQUESTS];
    let mut buf = vec![0u8; 16 * 1024];
    for _ in 0..1_000_000 {
        while inflight < IN_FLIGHT && sent < REQUESTS {
            match s.send_request(&req, true) {
                Ok(_) => {
                    sent += 1;
                    inflight += 1;
                }
                Err(Error::TransportError(tarte::Error::StreamLimit)) => break,
                Err(e) => panic!("send_request: {e:?}"),
            }
        }
        s.advance().unwrap();
        while let Ok((id, ev)) = s.poll_server() {
            if let Event::Headers { .. } = ev {
                s.send_response(id, &resp, false).unwrap();
                assert_eq!(s.server_send_body(id, &body, true).unwrap(), body.len());
            }
        }
        s.advance().unwrap();
        while let Ok((id, ev)) = s.poll_client() {
            match ev {
                Event::Data => {
                    while let Ok(n) = s.client_recv_body(id, &mut buf) {
                        got[(id / 4) as usize] += n;
                    }
                }
                Event::Finished => {
                    assert_eq!(got[(id / 4) as usize], 1024);
                    done += 1;
                    inflight -= 1;
                }
                _ => {}
            }
        }
        if done == REQUESTS {
            break;
        }
    }
    done
}

fn requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("h3");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(REQUESTS as u64));
    g.bench_function("10k_get_1KiB_100_in_flight", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut s = session();
                let t = Instant::now();
                assert_eq!(run(&mut s), REQUESTS);
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
