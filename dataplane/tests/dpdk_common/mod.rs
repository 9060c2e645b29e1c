//! Shared by the DPDK netns tests: a veth pair between two namespaces the
//! test creates (198.18.0.0/15, names with the pid), removed on drop with
//! any DPDK runtime files, and child processes that re-execute the test
//! binary inside a namespace (EAL initialises once per process).

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable that selects a child's role.
pub const ROLE: &str = "TARTE_DPDK_ROLE";
/// MAC of the DPDK end of every link.
pub const DPDK_MAC: &str = "02:74:61:72:74:01";

/// Runs a command, returning its stderr on failure.
pub fn run(cmd: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces joined by a veth pair; deleted on drop (which deletes the
/// veth too), with `/var/run/dpdk/<prefix>`. The DPDK end is `198.18.<net>.1`
/// and the peer end `198.18.<net>.2`.
pub struct Link {
    /// Namespace of the DPDK (or measured) end.
    pub ns_dpdk: String,
    /// Namespace of the kernel peer.
    pub ns_peer: String,
    /// Interface of the DPDK end.
    pub if_dpdk: String,
    /// Interface of the peer end.
    pub if_peer: String,
    /// EAL file prefix for the child on this link.
    pub prefix: String,
}

impl Link {
    /// Creates the link. `kernel_ip` puts `198.18.<net>.1` on the DPDK end
    /// in the kernel too (for a kernel-socket receiver); otherwise DPDK owns
    /// that address alone. `static_neigh` gives the peer a permanent
    /// neighbour entry for it (no ARP needed).
    pub fn new(tag: char, net: u8, kernel_ip: bool, static_neigh: bool) -> Link {
        let pid = std::process::id();
        let link = Link {
            ns_dpdk: format!("tarte-dpdk{tag}{pid}a"),
            ns_peer: format!("tarte-dpdk{tag}{pid}b"),
            if_dpdk: format!("td{tag}{pid}a"),
            if_peer: format!("td{tag}{pid}b"),
            prefix: format!("tarte-test-{tag}{pid}"),
        };
        let (a, b) = (link.ns_dpdk.as_str(), link.ns_peer.as_str());
        let (ia, ib) = (link.if_dpdk.as_str(), link.if_peer.as_str());
        let local = format!("198.18.{net}.1");
        let peer = format!("198.18.{net}.2/24");
        let mut steps: Vec<Vec<&str>> = vec![
            vec!["ip", "netns", "add", a],
            vec!["ip", "netns", "add", b],
            vec![
                "ip", "link", "add", ia, "address", DPDK_MAC, "netns", a, "type", "veth", "peer",
                "name", ib, "netns", b,
            ],
        ];
        // No IPv6 chatter (router solicitations, MLD) on the link.
        for ns in [a, b] {
            steps.push(vec![
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ]);
        }
        steps.extend([
            vec!["ip", "-n", a, "link", "set", ia, "up"],
            vec!["ip", "-n", b, "link", "set", ib, "up"],
            vec!["ip", "-n", b, "addr", "add", &peer, "dev", ib],
            // veth offloads the UDP checksum of the peer's kernel sockets
            // (CHECKSUM_PARTIAL: only the pseudo-header sum is in the
            // field); a NIC would fill it in. DPDK sees the raw frame, so
            // make the kernel compute it.
            vec!["ip", "netns", "exec", b, "ethtool", "-K", ib, "tx", "off"],
        ]);
        let local_cidr = format!("{local}/24");
        if kernel_ip {
            steps.push(vec!["ip", "-n", a, "addr", "add", &local_cidr, "dev", ia]);
        }
        if static_neigh {
            steps.push(vec![
                "ip",
                "-n",
                b,
                "neigh",
                "replace",
                &local,
                "lladdr",
                DPDK_MAC,
                "dev",
                ib,
                "nud",
                "permanent",
            ]);
        }
        for s in steps {
            // `link` is dropped on panic, deleting what exists so far.
            run(&s).unwrap_or_else(|e| panic!("netns set-up: {e}"));
        }
        link
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in [&self.ns_dpdk, &self.ns_peer] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        // The child removes its runtime dir; this covers a crashed child.
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

/// A child process killed on drop (a failed case never leaves one behind).
pub struct Kid(pub Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Re-executes this test binary as `case` with `ROLE=role` inside `ns`,
/// optionally pinned to `cpu`.
pub fn spawn_role(
    ns: &str,
    case: &str,
    role: &str,
    cpu: Option<usize>,
    envs: &[(&str, &str)],
) -> Kid {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]);
    if let Some(c) = cpu {
        cmd.args(["taskset", "-c", &c.to_string()]);
    }
    cmd.arg(exe)
        .args([
            case,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Kid(cmd.spawn().expect("spawning child"))
}

/// Reads the child's stdout until a line containing `marker`; returns the
/// line from the marker on (libtest prints "test NAME ... " in front).
pub fn wait_line(kid: &mut Kid, marker: &str) -> String {
    let out = kid.0.stdout.as_mut().expect("piped stdout");
    let mut lines = BufReader::new(out).lines();
    for line in lines.by_ref() {
        let line = line.expect("reading child stdout");
        if let Some(at) = line.find(marker) {
            return line[at..].to_string();
        }
    }
    panic!("child exited without printing {marker:?}");
}

/// Waits for the child to exit successfully before `deadline`.
pub fn wait_exit(kid: &mut Kid, what: &str, deadline: Instant) {
    loop {
        match kid.0.try_wait().expect("waiting for child") {
            Some(st) => {
                assert!(st.success(), "{what} child failed: {st}");
                return;
            }
            None if Instant::now() > deadline => panic!("{what} child still running at deadline"),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A value the parent passed to a child.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set by the parent"))
}
