//! An impairing UDP relay on loopback, for interop tests against real peers
//! under loss, reordering and duplication (the engine's own `Pipe` tests
//! these against itself only).
//!
//! Two sockets on 127.0.0.1: clients send to one (and get the server's
//! datagrams from it, for the last client address seen); the other talks
//! to the server, and can be replaced by one on a new port mid-run, as a
//! NAT rebinding. Each direction drops, holds back (reorders) and duplicates
//! datagrams independently, from a seeded generator so that a failure
//! can be replayed. A held datagram goes out right after the next one in
//! its direction, or after [`RelayConfig::hold`] when none follows. The
//! relay thread ends when stopped, and in any case after
//! [`RelayConfig::lifetime`].

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the relay does to each datagram, per direction.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Probability that a datagram is held back behind the next one.
    pub reorder: f64,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Longest a held datagram waits for a successor.
    pub hold: Duration,
    /// Seed of the generator.
    pub seed: u64,
    /// The relay stops by itself after this long.
    pub lifetime: Duration,
    /// After this many client datagrams, the relay talks to the server
    /// from a new port, as a NAT whose mapping changed: the server sees
    /// its client move (RFC 9000 §9.3) and what it still sends to the old
    /// port is lost.
    pub rebind_after: Option<u64>,
    /// When the client's datagrams start coming from a new address (it
    /// migrated), the relay talks to the server from a new port too, so
    /// that the server sees the migration; what it still sends to the old
    /// port is lost, as on an interface gone.
    pub follow_client_moves: bool,
    /// The path's MTU: larger datagrams are dropped (and counted as
    /// `oversize`), as a link with a smaller MTU would.
    pub max_datagram: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            loss: 0.0,
            reorder: 0.0,
            duplicate: 0.0,
            hold: Duration::from_millis(5),
            seed: 1,
            lifetime: Duration::from_secs(300),
            rebind_after: None,
            follow_client_moves: false,
            max_datagram: usize::MAX,
        }
    }
}

/// Counts of one direction.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirStats {
    /// Datagrams received from the sender.
    pub received: u64,
    /// Datagrams dropped.
    pub dropped: u64,
    /// Datagrams dropped for being larger than `max_datagram`.
    pub oversize: u64,
    /// Datagrams sent out of order (behind their successor).
    pub reordered: u64,
    /// Datagrams held back that no successor overtook within the hold
    /// time: sent late but in order.
    pub delayed: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams sent (copies included).
    pub forwarded: u64,
}

/// Counts of both directions.
#[derive(Clone, Copy, Debug, Default)]
pub struct RelayStats {
    /// Client to server.
    pub c2s: DirStats,
    /// Server to client.
    pub s2c: DirStats,
    /// Times the server-facing port changed.
    pub rebinds: u64,
}

impl RelayStats {
    /// Whether each direction saw a drop, a reordered or delayed datagram
    /// and a duplicate: the peers really crossed an impaired path.
    pub fn impaired_both_ways(&self) -> bool {
        [self.c2s, self.s2c]
            .iter()
            .all(|d| d.dropped > 0 && d.reordered + d.delayed > 0 && d.duplicated > 0)
    }
}

/// The impairment of the interop tests: 5% loss, 5% reordering and 1%
/// duplication in each direction.
pub fn lossy(seed: u64) -> RelayConfig {
    RelayConfig {
        loss: 0.05,
        reorder: 0.05,
        duplicate: 0.01,
        seed,
        ..Default::default()
    }
}

/// A running relay; stopped on drop.
pub struct Relay {
    /// Where clients send to.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<RelayStats>>>,
}

/// splitmix64: small, seedable, good enough to pick impairments.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Direction {
    stats: DirStats,
    held: Option<(Vec<u8>, Instant)>,
}

impl Relay {
    /// Starts a relay in front of `server`.
    pub fn start(server: SocketAddr, cfg: RelayConfig) -> std::io::Result<Relay> {
        let client_side = bound()?;
        let server_side = bound()?;
        let addr = client_side.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || run(client_side, server_side, server, cfg, &stop2))?;
        Ok(Relay {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:PORT{path}` through the relay.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Stops the relay and returns its counts.
    pub fn stop(mut self) -> std::io::Result<RelayStats> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> std::io::Result<RelayStats> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| std::io::Error::other("the relay thread panicked"))?,
            None => Ok(RelayStats::default()),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// A non-blocking socket on a free port of 127.0.0.1.
fn bound() -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// One datagram from `sock`, if any.
fn recv(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<Option<(usize, SocketAddr)>> {
    match sock.recv_from(buf) {
        Ok(x) => Ok(Some(x)),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
        // A peer that went away (ICMP unreachable) is not the relay's
        // failure.
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(None),
        Err(e) => Err(e),
    }
}

fn run(
    client_side: UdpSocket,
    mut server_side: UdpSocket,
    server: SocketAddr,
    cfg: RelayConfig,
    stop: &AtomicBool,
) -> std::io::Result<RelayStats> {
    let end = Instant::now() + cfg.lifetime;
    let mut rng = Rng(cfg.seed);
    let mut client: Option<SocketAddr> = None;
    let mut rebinds = 0;
    // 0: client to server, 1: server to client.
    let mut dirs = [
        Direction {
            stats: DirStats::default(),
            held: None,
        },
        Direction {
            stats: DirStats::default(),
            held: None,
        },
    ];
    let mut buf = vec![0u8; 65536];
    // Which side is read first alternates, so neither starves the other.
    let mut client_first = true;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        client_first = !client_first;
        let mut got = None;
        for side in [client_first, !client_first] {
            if side {
                if let Some((n, from)) = recv(&client_side, &mut buf)? {
                    if cfg.follow_client_moves && client.is_some_and(|c| c != from) {
                        server_side = bound()?;
                        rebinds += 1;
                    }
                    client = Some(from);
                    got = Some((0, n));
                    break;
                }
            } else if let Some((n, from)) = recv(&server_side, &mut buf)? {
                if from == server {
                    got = Some((1, n));
                    break;
                }
            }
        }
        let now = Instant::now();
        if let Some((d, n)) = got {
            if d == 0 && rebinds == 0 && cfg.rebind_after == Some(dirs[0].stats.received) {
                server_side = bound()?;
                rebinds += 1;
            }
            let (sock, to) = route(d, &client_side, &server_side, server, client);
            let dir = &mut dirs[d];
            dir.stats.received += 1;
            if let Some(to) = to {
                if n > cfg.max_datagram {
                    dir.stats.oversize += 1;
                } else if rng.next_f64() < cfg.loss {
                    dir.stats.dropped += 1;
                } else if dir.held.is_none() && rng.next_f64() < cfg.reorder {
                    dir.held = Some((buf[..n].to_vec(), now));
                } else {
                    let copies = if rng.next_f64() < cfg.duplicate {
                        dir.stats.duplicated += 1;
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        send(sock, &buf[..n], to, &mut dir.stats)?;
                    }
                    if let Some((held, _)) = dir.held.take() {
                        dir.stats.reordered += 1;
                        send(sock, &held, to, &mut dir.stats)?;
                    }
                }
            }
        }
        flush_held(
            &mut dirs,
            &client_side,
            &server_side,
            server,
            client,
            &cfg,
            now,
        )?;
        if got.is_none() {
            // Nothing to read: nap briefly.
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    Ok(RelayStats {
        c2s: dirs[0].stats,
        s2c: dirs[1].stats,
        rebinds,
    })
}

/// The socket a datagram of direction `d` (0: to the server, 1: to the
/// client) leaves from, and where it goes (no client seen yet: nowhere).
fn route<'a>(
    d: usize,
    client_side: &'a UdpSocket,
    server_side: &'a UdpSocket,
    server: SocketAddr,
    client: Option<SocketAddr>,
) -> (&'a UdpSocket, Option<SocketAddr>) {
    if d == 0 {
        (server_side, Some(server))
    } else {
        (client_side, client)
    }
}

/// Held datagrams with no successor within `hold` go out late.
fn flush_held(
    dirs: &mut [Direction; 2],
    client_side: &UdpSocket,
    server_side: &UdpSocket,
    server: SocketAddr,
    client: Option<SocketAddr>,
    cfg: &RelayConfig,
    now: Instant,
) -> std::io::Result<()> {
    for (d, dir) in dirs.iter_mut().enumerate() {
        let (sock, to) = route(d, client_side, server_side, server, client);
        if let (Some(to), Some((_, since))) = (to, &dir.held) {
            if now.duration_since(*since) >= cfg.hold {
                let (held, _) = dir.held.take().expect("checked above");
                dir.stats.delayed += 1;
                send(sock, &held, to, &mut dir.stats)?;
            }
        }
    }
    Ok(())
}

fn send(
    sock: &UdpSocket,
    data: &[u8],
    to: SocketAddr,
    stats: &mut DirStats,
) -> std::io::Result<()> {
    match sock.send_to(data, to) {
        Ok(_) => {
            stats.forwarded += 1;
            Ok(())
        }
        // A full socket buffer or a gone peer is loss on the path.
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::ConnectionRefused
            ) =>
        {
            stats.dropped += 1;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The relay forwards both ways, drops about the configured share, and
    // every datagram it does not drop arrives intact.
    #[test]
    fn forwards_both_ways_and_drops_its_share() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let relay = Relay::start(
            server.local_addr().unwrap(),
            RelayConfig {
                loss: 0.2,
                reorder: 0.1,
                seed: 7,
                ..Default::default()
            },
        )
        .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let n = 2000u32;
        // The server reads on its own thread, so that its socket buffer
        // never overflows (that would be loss the relay did not make).
        let reader = {
            let server = server.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut seen = vec![false; n as usize];
                let mut from = None;
                let mut buf = [0u8; 16];
                while let Ok((k, f)) = server.recv_from(&mut buf) {
                    assert_eq!(k, 4);
                    seen[u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize] = true;
                    from = Some(f);
                }
                (seen, from)
            })
        };
        for i in 0..n {
            client.send_to(&i.to_be_bytes(), relay.addr).unwrap();
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let (seen, from) = reader.join().unwrap();
        let mut buf = [0u8; 16];
        let arrived = seen.iter().filter(|s| **s).count();
        assert!((1400..1800).contains(&arrived), "{arrived} of {n} arrived");
        // The way back: the server answers the relay, which forwards to the
        // client.
        server.send_to(b"back", from.unwrap()).unwrap();
        let mut got = 0;
        while let Ok((k, _)) = client.recv_from(&mut buf) {
            assert_eq!(&buf[..k], b"back");
            got += 1;
        }
        let stats = relay.stop().unwrap();
        assert_eq!(stats.c2s.received, u64::from(n));
        assert_eq!(stats.c2s.forwarded, arrived as u64);
        assert!(stats.c2s.reordered > 0);
        assert_eq!(stats.s2c.received, 1);
        assert_eq!(got, stats.s2c.forwarded);
    }
}
