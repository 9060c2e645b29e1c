//! DPDK backend without a network: EAL argument building (pure), and one
//! process-wide EAL life cycle on a `net_ring` port, whose tx ring loops back
//! into rx: a datagram round trip through mbufs and the L2 helper, the
//! once-per-process guard (a second, different init is refused with a clear
//! error, so is a second open of the same port and any open after cleanup),
//! and removal of the runtime directory on drop. Only
//! `eal_life_cycle_on_net_ring` initialises EAL in this binary.

#![cfg(feature = "dpdk")]

use std::net::SocketAddr;
use std::path::PathBuf;

use tarte_dataplane::backend::dpdk::{self, DpdkBackend, DpdkOptions, KernelPmd};
use tarte_dataplane::backend::{Backend, BackendConfig, BackendError, BackendKind};
use tarte_dataplane::wire::EthernetAddress;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn eal_args_for_af_xdp_without_hugepages() {
    let opts = DpdkOptions {
        interface: Some("veth0".into()),
        start_queue: 2,
        file_prefix: Some("p1".into()),
        core: 3,
        ..DpdkOptions::default()
    };
    let (args, prefix) = opts.eal_args(4).unwrap();
    assert_eq!(prefix, "p1");
    assert_eq!(
        args,
        s(&[
            "--no-pci",
            "--vdev=net_af_xdp0,iface=veth0,start_queue=2,queue_count=4",
            "--no-huge",
            "-m",
            "256",
            "-l",
            "3",
            "--file-prefix",
            "p1",
            "--no-telemetry",
            "--log-level=warning",
        ])
    );
}

#[test]
fn eal_args_for_af_packet_with_hugepages() {
    let opts = DpdkOptions {
        pmd: KernelPmd::AfPacket,
        interface: Some("veth1".into()),
        huge_dir: Some(PathBuf::from("/mnt/huge-tarte")),
        memory_mb: 128,
        file_prefix: Some("p2".into()),
        ..DpdkOptions::default()
    };
    let (args, _) = opts.eal_args(2).unwrap();
    assert_eq!(
        args,
        s(&[
            "--no-pci",
            "--vdev=net_af_packet0,iface=veth1,qpairs=2,blocksz=4096,framesz=2048,framecnt=1024",
            "--huge-dir",
            "/mnt/huge-tarte",
            "-m",
            "128",
            "--in-memory",
            "-l",
            "0",
            "--file-prefix",
            "p2",
            "--no-telemetry",
            "--log-level=warning",
        ])
    );
}

#[test]
fn verbatim_eal_args_for_a_real_nic_keep_their_choices() {
    let opts = DpdkOptions {
        interface: Some("ignored0".into()),
        eal_args: s(&[
            "-a",
            "0000:3b:00.0",
            "--socket-mem=1024",
            "--lcores=2",
            "--file-prefix",
            "nic",
        ]),
        ..DpdkOptions::default()
    };
    let (args, prefix) = opts.eal_args(1).unwrap();
    assert_eq!(prefix, "nic");
    assert_eq!(
        args,
        s(&[
            "-a",
            "0000:3b:00.0",
            "--socket-mem=1024",
            "--lcores=2",
            "--file-prefix",
            "nic",
            "--no-telemetry",
            "--log-level=warning",
        ])
    );
}

#[test]
fn default_prefixes_are_unique_and_pid_based() {
    let opts = DpdkOptions {
        interface: Some("veth0".into()),
        ..DpdkOptions::default()
    };
    let (_, a) = opts.eal_args(1).unwrap();
    let (_, b) = opts.eal_args(1).unwrap();
    assert_ne!(a, b);
    assert!(
        a.starts_with(&format!("tarte-{}-", std::process::id())),
        "{a}"
    );
}

#[test]
fn bad_or_missing_devices_are_config_errors() {
    let none = DpdkOptions::default();
    assert!(matches!(none.eal_args(1), Err(BackendError::Config(_))));
    for bad in ["", "veth0,iface=eth0", "a/b", "x y"] {
        let o = DpdkOptions {
            interface: Some(bad.into()),
            ..DpdkOptions::default()
        };
        assert!(
            matches!(o.eal_args(1), Err(BackendError::Interface { .. })),
            "{bad:?}"
        );
    }
    let dangling = DpdkOptions {
        eal_args: s(&["--vdev=net_null0", "--file-prefix"]),
        ..DpdkOptions::default()
    };
    assert!(matches!(dangling.eal_args(1), Err(BackendError::Config(_))));
    let eq_form = DpdkOptions {
        eal_args: s(&["--vdev=net_null0", "--file-prefix=mine"]),
        ..DpdkOptions::default()
    };
    let (args, prefix) = eq_form.eal_args(1).unwrap();
    assert_eq!(prefix, "mine");
    assert_eq!(
        args.iter()
            .filter(|a| a.starts_with("--file-prefix"))
            .count(),
        1
    );
}

#[test]
fn from_config_maps_the_backend_config() {
    let mut c = BackendConfig::new(BackendKind::Dpdk, "198.18.0.1:4433".parse().unwrap());
    c.interface = Some("veth9".into());
    c.queue = 1;
    c.dst_mac = Some([2, 0, 0, 0, 0, 9]);
    c.ring_size = 100_000;
    c.dpdk_args = s(&["--no-huge"]);
    let o = DpdkOptions::from_config(&c);
    assert_eq!(o.interface.as_deref(), Some("veth9"));
    assert_eq!(o.start_queue, 1);
    assert_eq!(o.dst_mac, Some(EthernetAddress([2, 0, 0, 0, 0, 9])));
    assert_eq!(o.ring_size, 4096);
    let (args, _) = o.eal_args(1).unwrap();
    assert!(
        args.contains(&"--vdev=net_af_xdp0,iface=veth9,start_queue=1,queue_count=1".to_string())
    );
    // The caller's `--no-huge` stands; no second memory option is added.
    assert_eq!(args.iter().filter(|a| *a == "--no-huge").count(), 1);
    assert!(!args.contains(&"-m".to_string()));
}

fn ring_opts(prefix: &str) -> DpdkOptions {
    DpdkOptions {
        eal_args: s(&["--no-pci", "--vdev=net_ring0"]),
        file_prefix: Some(prefix.into()),
        memory_mb: 128,
        // net_ring loops our frames back: address them to everyone.
        dst_mac: Some(EthernetAddress::BROADCAST),
        ..DpdkOptions::default()
    }
}

#[test]
fn eal_life_cycle_on_net_ring() {
    let prefix = format!("tarte-test-ring{}", std::process::id());
    let run_dir = PathBuf::from(format!("/var/run/dpdk/{prefix}"));
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(run_dir.clone());

    let local: SocketAddr = "198.18.7.1:4433".parse().unwrap();
    let mut be = DpdkBackend::open_queues(local, &ring_opts(&prefix), 1)
        .expect("open net_ring0")
        .pop()
        .unwrap();
    assert!(
        run_dir.exists(),
        "EAL runtime dir {run_dir:?} while running"
    );
    assert_eq!(be.name(), "dpdk");
    assert_eq!(be.max_payload(), 1472);

    // Loop 40 datagrams of different sizes to ourselves.
    let mut sent = 0;
    while sent < 40 {
        sent += be
            .tx_burst(40 - sent, &mut |i, buf| {
                let seq = sent + i;
                let len = 1 + seq * 36;
                buf[..len]
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, b)| *b = (seq + j) as u8);
                Some((len, local))
            })
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..100 {
        be.rx_burst(64, &mut |data, meta| {
            assert_eq!(meta.src, local);
            assert_eq!(meta.dst, local);
            got.push(data.to_vec());
        })
        .unwrap();
        if got.len() == 40 {
            break;
        }
    }
    assert_eq!(got.len(), 40);
    for (seq, d) in got.iter().enumerate() {
        assert_eq!(d.len(), 1 + seq * 36);
        assert!(
            d.iter().enumerate().all(|(j, &b)| b == (seq + j) as u8),
            "payload {seq}"
        );
    }
    let st = be.stats();
    assert_eq!(
        (
            st.tx_packets,
            st.rx_packets,
            st.tx_errors,
            st.rx_bad_checksum
        ),
        (40, 40, 0, 0)
    );
    assert_eq!(st.rx_bytes, (0..40).map(|s| 1 + s as u64 * 36).sum::<u64>());

    // A payload that does not fit is refused, not truncated.
    let err = be
        .tx_burst(1, &mut |_, buf| Some((buf.len() + 1, local)))
        .unwrap_err();
    assert!(matches!(err, BackendError::Config(_)), "{err}");

    // Once per process: a different EAL is refused and says why; the same
    // port cannot be opened twice.
    let other = DpdkOptions {
        eal_args: s(&["--no-pci", "--vdev=net_null0"]),
        ..ring_opts(&prefix)
    };
    let err = DpdkBackend::open_queues(local, &other, 1)
        .err()
        .expect("second EAL refused");
    assert!(err.to_string().contains("already initialised"), "{err}");
    let err = DpdkBackend::open_queues(local, &ring_opts(&prefix), 1)
        .err()
        .expect("port in use");
    assert!(err.to_string().contains("already open"), "{err}");

    drop(be);
    assert!(!run_dir.exists(), "runtime dir {run_dir:?} removed on drop");
    let mut c = BackendConfig::new(BackendKind::Dpdk, local);
    c.dpdk_args = ring_opts(&prefix).eal_args;
    let err = dpdk::open(&c).err().expect("no EAL after cleanup");
    assert!(
        err.to_string().contains("cannot initialise it again"),
        "{err}"
    );
}
