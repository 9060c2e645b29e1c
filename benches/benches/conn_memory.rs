//! Resident memory per established idle connection: 10,000 client/server
//! pairs handshaken in memory, then idle; the server sides are kept (then,
//! in a second pass, the client sides). Reports the heap bytes held per
//! connection: Rust allocations counted by a wrapping allocator, and all
//! of malloc (Rust + BoringSSL) measured by mallinfo2. The connections are
//! kept in a Vec, so their inline size is part of both figures; it is also
//! reported on its own. Clients are measured keeping the session the
//! server's ticket made (the default, for resumption) and keeping none
//! (`set_session_tickets(false)`).
//!
//! Then the same for connections idle after a transfer (1,000 pairs, the
//! server answering a one-byte request on stream 0 with 1 MiB): what a
//! finished burst leaves behind. The thread's pool of stream buffer blocks
//! (at most 4 MiB, shared by all its connections) is subtracted.
//!
//! Last, servers with a 1 MiB response queued and not yet sent (1,000
//! connections): written with `stream_send` (each connection buffers what
//! its send allowance takes, a copy) and with `stream_send_shared` (all
//! reference one buffer), as an edge serving one cached object.
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use tarte::testing::{test_config, LinkConfig, Pipe};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn malloc_in_use() -> usize {
    // SAFETY: mallinfo2 only reads allocator statistics.
    let mi = unsafe { libc::mallinfo2() };
    mi.uordblks + mi.hblkhd
}

/// Bytes of the response in the after-a-transfer pass.
const RESPONSE: usize = 1 << 20;

/// The client sends a one-byte request on stream 0; the server answers
/// `len` bytes and FIN; the client reads it all.
fn respond(p: &mut Pipe, len: usize) {
    p.client.stream_send(0, b"x", true).unwrap();
    let body = vec![0x42u8; 64 * 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let (mut sent, mut got, mut fin) = (0usize, 0usize, false);
    for _ in 0..100_000 {
        if !p.advance().unwrap() && fin {
            break;
        }
        while let Ok((n, _)) = p.server.stream_recv(0, &mut buf) {
            assert_eq!(n, 1);
        }
        while sent < len {
            let k = (len - sent).min(body.len());
            match p.server.stream_send(0, &body[..k], sent + k == len) {
                Ok(w) => sent += w,
                Err(tarte::Error::Done) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        while let Ok((n, f)) = p.client.stream_recv(0, &mut buf) {
            got += n;
            fin |= f;
        }
    }
    assert!(fin && got == len, "response incomplete: {got} of {len}");
}

/// The server queues a `RESPONSE`-byte response on stream 0 (as much as
/// the stream takes), copied or shared; nothing is sent.
fn queue_response(p: &mut Pipe, object: &std::sync::Arc<[u8]>, shared: bool) {
    p.client.stream_send(0, b"x", true).unwrap();
    for _ in 0..4 {
        p.flush().unwrap();
        p.deliver().unwrap();
    }
    let mut buf = [0u8; 16];
    while let Ok((n, _)) = p.server.stream_recv(0, &mut buf) {
        assert_eq!(n, 1);
    }
    let r = if shared {
        p.server
            .stream_send_shared(0, object, 0..object.len(), true)
    } else {
        p.server.stream_send(0, object, true)
    };
    assert!(r.unwrap() > 0);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` too: keep it
    // short when not benchmarking.
    let n: usize = if std::env::args().any(|a| a == "--bench") {
        10_000
    } else {
        200
    };
    let zero = LinkConfig {
        delay: Duration::ZERO,
        ..LinkConfig::default()
    };
    let mut cc = test_config(false).unwrap();
    let mut sc = test_config(true).unwrap();
    cc.set_curves_list("X25519").unwrap();
    sc.set_curves_list("X25519").unwrap();
    // A client that keeps no session (a load generator's).
    let mut cc_bare = test_config(false).unwrap();
    cc_bare.set_curves_list("X25519").unwrap();
    cc_bare.set_session_tickets(false);
    // Both sides discovering the path MTU up to 1472 bytes (as `tarte
    // serve` does).
    let (mut cc_pm, mut sc_pm) = (test_config(false).unwrap(), test_config(true).unwrap());
    for c in [&mut cc_pm, &mut sc_pm] {
        c.set_curves_list("X25519").unwrap();
        c.set_max_send_udp_payload_size(1472);
        c.set_max_recv_udp_payload_size(1472);
        c.discover_pmtu(true);
    }
    // Warm the lazily built TLS contexts and the test certificate.
    for pair in [0, 1, 2] {
        let (c, s) = match pair {
            0 => (&mut cc, &mut sc),
            1 => (&mut cc_bare, &mut sc),
            _ => (&mut cc_pm, &mut sc_pm),
        };
        let mut warm = Pipe::with_configs(c, s, zero.clone(), zero.clone()).unwrap();
        warm.handshake().unwrap();
    }

    let object: std::sync::Arc<[u8]> = vec![0x42u8; RESPONSE].into();
    // (side, after a transfer, response queued: None, copied, shared,
    // client keeps its session, path MTU discovery).
    for (side, transfer, queued, session, pmtud) in [
        ("server", false, None, true, false),
        ("client", false, None, true, false),
        ("client", false, None, false, false),
        ("server", true, None, true, false),
        ("client", true, None, true, false),
        ("server", false, Some(false), true, false),
        ("server", false, Some(true), true, false),
        ("server", false, None, true, true),
    ] {
        let n = if transfer || queued.is_some() {
            (n / 10).max(1)
        } else {
            n
        };
        let rust0 = LIVE.load(Ordering::Relaxed);
        let pool0 = tarte::testing::stream_pool_bytes();
        let malloc0 = malloc_in_use();
        let mut kept = Vec::with_capacity(n);
        for _ in 0..n {
            let (c, s) = match (session, pmtud) {
                (_, true) => (&mut cc_pm, &mut sc_pm),
                (true, false) => (&mut cc, &mut sc),
                (false, false) => (&mut cc_bare, &mut sc),
            };
            let mut p = Pipe::with_configs(c, s, zero.clone(), zero.clone()).unwrap();
            p.handshake().unwrap();
            if pmtud {
                // The search (one probe: the link carries 1472 bytes) ends
                // and its state is freed.
                p.run_until(1_000, |p| {
                    [&p.client, &p.server]
                        .iter()
                        .all(|c| c.path_stats().next().is_some_and(|s| s.pmtu == 1472))
                })
                .unwrap();
            }
            if transfer {
                respond(&mut p, RESPONSE);
            }
            if let Some(shared) = queued {
                queue_response(&mut p, &object, shared);
            } else {
                // Let the last ACKs settle so both sides are idle: the
                // session ticket that follows the handshake is
                // acknowledged after the client's ACK delay.
                for _ in 0..6 {
                    p.flush().unwrap();
                    p.deliver().unwrap();
                    p.now += Duration::from_millis(30);
                    let now = p.now;
                    for conn in [&mut p.client, &mut p.server] {
                        if conn.timeout_instant().is_some_and(|t| t <= now) {
                            conn.on_timeout_at(now);
                        }
                    }
                }
            }
            let (client, server) = p.into_parts();
            kept.push(if side == "server" { server } else { client });
        }
        let pool = tarte::testing::stream_pool_bytes().saturating_sub(pool0) as isize;
        let rust = (LIVE.load(Ordering::Relaxed) - rust0 - pool).max(0) as usize;
        let heap = malloc_in_use()
            .saturating_sub(malloc0)
            .saturating_sub(pool as usize);
        if let Some(shared) = queued {
            println!(
                "{side}: {n} connections with a {} KiB response queued, {}",
                RESPONSE / 1024,
                if shared {
                    "shared (stream_send_shared)"
                } else {
                    "copied (stream_send)"
                }
            );
        } else if transfer {
            println!(
                "{side}: {n} connections idle after a {} KiB response",
                RESPONSE / 1024
            );
        } else if side == "client" && !session {
            println!("{side}: {n} established idle connections, keeping no session");
        } else if side == "client" {
            println!("{side}: {n} established idle connections, each keeping its session");
        } else if pmtud {
            println!("{side}: {n} established idle connections, path MTU discovered (1472)");
        } else {
            println!("{side}: {n} established idle connections");
        }
        println!(
            "  heap per connection (Rust + BoringSSL): {} bytes",
            heap / n
        );
        println!("  of which Rust allocations:          {} bytes", rust / n);
        println!(
            "  inline size of Connection:          {} bytes",
            size_of::<tarte::Connection>()
        );
        std::hint::black_box(&kept);
    }
}
