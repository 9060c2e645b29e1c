//! Test helpers (feature `testutil`): a veth pair between two network
//! namespaces that is removed on drop, also when a test panics, and running
//! closures inside a namespace on a thread of their own (`setns`).
//!
//! Follows the project's network-safety rule: both veth ends inside
//! namespaces created here, addresses from 198.18.0.0/15, unique names per
//! pair (pid + counter) so tests can run in parallel.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::wire::EthernetAddress;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One side of a [`VethPair`].
#[derive(Debug, Clone)]
pub struct Side {
    /// Namespace name (under /var/run/netns).
    pub ns: String,
    /// Interface name inside it.
    pub iface: String,
    /// IPv4 address (/30).
    pub ip: Ipv4Addr,
    /// MAC address.
    pub mac: EthernetAddress,
}

/// Two namespaces `a` and `b` joined by a veth pair with static neighbours.
#[derive(Debug)]
pub struct VethPair {
    /// First side (198.18.0.1).
    pub a: Side,
    /// Second side (198.18.0.2).
    pub b: Side,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl VethPair {
    /// Creates the namespaces and the pair with `queues` rx/tx queues per
    /// end. Names start with `tag` (≤ 5 chars) so leftovers are attributable.
    pub fn new(tag: &str, queues: u32) -> Result<VethPair, String> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{}{}x{}",
            &tag[..tag.len().min(5)],
            std::process::id() % 100_000,
            n
        );
        let side = |s: char, last: u8| Side {
            ns: format!("{id}{s}"),
            iface: format!("{id}{s}"),
            ip: Ipv4Addr::new(198, 18, 0, last),
            mac: EthernetAddress([0x02, 0x74, 0x74, (n >> 8) as u8, n as u8, last]),
        };
        let pair = VethPair {
            a: side('a', 1),
            b: side('b', 2),
        };
        // From here on Drop removes whatever was created.
        pair.create(queues)?;
        Ok(pair)
    }

    fn create(&self, queues: u32) -> Result<(), String> {
        let (a, b) = (&self.a, &self.b);
        let q = queues.max(1).to_string();
        ip(&["netns", "add", &a.ns])?;
        ip(&["netns", "add", &b.ns])?;
        let (mac_a, mac_b) = (a.mac.to_string(), b.mac.to_string());
        ip(&[
            "-n",
            &a.ns,
            "link",
            "add",
            &a.iface,
            "address",
            &mac_a,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &b.iface,
            "address",
            &mac_b,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &b.ns,
        ])?;
        for (me, peer) in [(a, b), (b, a)] {
            ip(&["-n", &me.ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &me.ns,
                "addr",
                "add",
                &format!("{}/30", me.ip),
                "dev",
                &me.iface,
            ])?;
            ip(&["-n", &me.ns, "link", "set", &me.iface, "up"])?;
            no_tx_checksum_offload(&me.ns, &me.iface)?;
            ip(&[
                "-n",
                &me.ns,
                "neigh",
                "replace",
                &peer.ip.to_string(),
                "lladdr",
                &peer.mac.to_string(),
                "dev",
                &me.iface,
                "nud",
                "permanent",
            ])?;
        }
        Ok(())
    }

    /// Runs `f` on a new thread that first enters namespace `ns`; returns
    /// its result, or re-raises its panic.
    pub fn run_in<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
        let path = format!("/var/run/netns/{ns}");
        let h = std::thread::spawn(move || {
            enter_netns(&path);
            f()
        });
        match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// Like [`Self::run_in`] but returns the handle, for sides that run
    /// at the same time.
    pub fn spawn_in<R: Send + 'static>(
        ns: &str,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> std::thread::JoinHandle<R> {
        let path = format!("/var/run/netns/{ns}");
        std::thread::spawn(move || {
            enter_netns(&path);
            f()
        })
    }
}

/// Moves the calling thread into the network namespace at `path`.
///
/// # Panics
/// When the namespace cannot be entered (tests want to fail loudly).
pub fn enter_netns(path: &str) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    use std::os::fd::AsRawFd;
    // SAFETY: file is an open netns file; setns only changes the calling
    // thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// Turns off tx checksum offload on `iface`: veth otherwise hands frames
/// from kernel sockets to the peer with only a partial UDP checksum
/// (CHECKSUM_PARTIAL), which a frame backend reading the raw bytes rightly
/// rejects. Real NICs fill the checksum in before the wire.
fn no_tx_checksum_offload(ns: &str, iface: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ethtool", "-K", iface, "tx", "off"])
        .output()
        .map_err(|e| format!("running ethtool: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ethtool -K {iface} tx off (is ethtool installed?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace destroys its veth end, and with it the peer
        // and any XDP program attached to them.
        for ns in [&self.a.ns, &self.b.ns] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}
