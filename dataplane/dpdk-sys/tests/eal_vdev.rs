//! Initialises EAL without a NIC or hugepages (`--no-pci --no-huge`) on a
//! `net_ring` port (tx loops back into rx) and a `net_null` port, and checks
//! that bursts move the right counts and bytes through the bindings and the
//! C shim. EAL initialises once per process: this file holds one test.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use tarte_dpdk_sys as sys;

struct RuntimeDir(String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        // SAFETY: EAL was initialised by the test; cleanup is allowed once,
        // after every port is closed.
        unsafe { sys::rte_eal_cleanup() };
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.0));
    }
}

fn eal_init(args: &[String]) -> i32 {
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap())
        .collect();
    let mut argv: Vec<*mut c_char> = cargs.iter().map(|a| a.as_ptr().cast_mut()).collect();
    // SAFETY: argv holds valid NUL-terminated strings that outlive the call
    // (EAL keeps pointers into them; `cargs` is leaked below for that).
    let ret = unsafe { sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
    std::mem::forget(cargs);
    ret
}

fn port_id(name: &str) -> u16 {
    let cname = CString::new(name).unwrap();
    let mut port = 0u16;
    // SAFETY: valid C string and out pointer.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut port) };
    assert_eq!(ret, 0, "port {name} not found");
    port
}

fn setup_port(port: u16, pool: *mut sys::rte_mempool) {
    let conf = sys::rte_eth_conf::default();
    // SAFETY: EAL is up, `port` exists, pointers are valid for the calls.
    unsafe {
        assert_eq!(sys::rte_eth_dev_configure(port, 1, 1, &conf), 0);
        let socket = sys::rte_eth_dev_socket_id(port) as u32;
        assert_eq!(
            sys::rte_eth_rx_queue_setup(port, 0, 256, socket, ptr::null(), pool),
            0
        );
        assert_eq!(
            sys::rte_eth_tx_queue_setup(port, 0, 256, socket, ptr::null()),
            0
        );
        assert_eq!(sys::rte_eth_dev_start(port), 0);
    }
}

#[test]
fn ring_loopback_and_null_bursts() {
    let prefix = format!("tarte-test-{}", std::process::id());
    let args: Vec<String> = [
        "tarte-dpdk-sys-test",
        "-l",
        "0",
        "--no-pci",
        "--no-huge",
        "-m",
        "256",
        "--file-prefix",
        &prefix,
        "--vdev=net_ring0",
        "--vdev=net_null0",
        "--log-level=lib.eal:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ret = eal_init(&args);
    let _guard = RuntimeDir(prefix);
    // SAFETY: rte_strerror returns a static string for any errno value.
    let err = unsafe { CStr::from_ptr(sys::rte_strerror(sys::rte_errno())) };
    assert!(ret >= 0, "rte_eal_init failed: {err:?}");
    // SAFETY: EAL is initialised.
    assert_eq!(unsafe { sys::rte_eth_dev_count_avail() }, 2);

    let name = CString::new("tarte_test_pool").unwrap();
    // SAFETY: EAL is up; arguments are in range.
    let pool = unsafe {
        sys::rte_pktmbuf_pool_create(
            name.as_ptr(),
            1023,
            32,
            0,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            sys::rte_socket_id() as i32,
        )
    };
    assert!(!pool.is_null(), "mempool: errno {}", sys::rte_errno());

    let ring = port_id("net_ring0");
    let null = port_id("net_null0");
    setup_port(ring, pool);
    setup_port(null, pool);

    // Build 32 frames with distinct contents through the shim.
    const N: usize = 32;
    let mut tx: [*mut sys::rte_mbuf; N] = [ptr::null_mut(); N];
    // SAFETY: `tx` has room for N pointers.
    let ret = unsafe { sys::tarte_rte_pktmbuf_alloc_bulk(pool, tx.as_mut_ptr(), N as u32) };
    assert_eq!(ret, 0);
    for (i, &m) in tx.iter().enumerate() {
        let len = 60 + i as u16;
        // SAFETY: `m` is a freshly allocated mbuf with default headroom.
        unsafe {
            assert_eq!(
                sys::tarte_rte_pktmbuf_headroom(m),
                sys::RTE_PKTMBUF_HEADROOM as u16
            );
            let room = sys::tarte_rte_pktmbuf_tailroom(m);
            let data = sys::tarte_rte_pktmbuf_append(m, len).cast::<u8>();
            assert!(!data.is_null());
            assert_eq!(sys::tarte_rte_pktmbuf_tailroom(m), room - len);
            assert_eq!(data, sys::tarte_rte_pktmbuf_mtod(m).cast::<u8>());
            assert_eq!(data, sys::pktmbuf_mtod(m));
            for j in 0..usize::from(len) {
                *data.add(j) = (i * 7 + j) as u8;
            }
            // Prepend a 2-byte tag in the headroom, then strip it again.
            let tag = sys::tarte_rte_pktmbuf_prepend(m, 2).cast::<u8>();
            assert_eq!(tag, data.sub(2));
            assert_eq!(sys::tarte_rte_pktmbuf_data_len(m), len + 2);
            assert_eq!(sys::tarte_rte_pktmbuf_adj(m, 2).cast::<u8>(), data);
            assert_eq!(sys::pktmbuf_data_len(m), len);
            assert_eq!(sys::tarte_rte_pktmbuf_pkt_len(m), u32::from(len));
        }
    }
    // SAFETY: `tx` holds N valid mbufs; the PMD takes ownership of those sent.
    let sent = unsafe { sys::tarte_rte_eth_tx_burst(ring, 0, tx.as_mut_ptr(), N as u16) };
    assert_eq!(sent as usize, N);

    let mut rx: [*mut sys::rte_mbuf; 64] = [ptr::null_mut(); 64];
    // SAFETY: `rx` has room for 64 pointers.
    let got = unsafe { sys::tarte_rte_eth_rx_burst(ring, 0, rx.as_mut_ptr(), 64) };
    assert_eq!(got as usize, N, "net_ring loops tx back to rx");
    for (i, &m) in rx[..N].iter().enumerate() {
        // SAFETY: the PMD returned `got` valid mbufs that we now own.
        unsafe {
            let len = usize::from(sys::pktmbuf_data_len(m));
            assert_eq!(len, 60 + i);
            let data = std::slice::from_raw_parts(sys::pktmbuf_mtod(m), len);
            assert!(data
                .iter()
                .enumerate()
                .all(|(j, &b)| b == (i * 7 + j) as u8));
        }
    }
    // SAFETY: we own these mbufs.
    unsafe { sys::tarte_rte_pktmbuf_free_bulk(rx.as_mut_ptr(), u32::from(got)) };

    // net_null: rx makes up packets, tx swallows them.
    // SAFETY: `rx` has room for 64 pointers; the results are ours to free.
    unsafe {
        let got = sys::tarte_rte_eth_rx_burst(null, 0, rx.as_mut_ptr(), 16);
        assert_eq!(got, 16);
        let sent = sys::tarte_rte_eth_tx_burst(null, 0, rx.as_mut_ptr(), got);
        assert_eq!(sent, 16);
        let mut stats = sys::rte_eth_stats::default();
        assert_eq!(sys::rte_eth_stats_get(null, &mut stats), 0);
        assert_eq!((stats.ipackets, stats.opackets), (16, 16));
        let mut stats = sys::rte_eth_stats::default();
        assert_eq!(sys::rte_eth_stats_get(ring, &mut stats), 0);
        assert_eq!((stats.ipackets, stats.opackets), (N as u64, N as u64));
    }

    // rte_errno round-trips through the shim's thread-local accessor.
    // SAFETY: plain thread-local write.
    unsafe { sys::tarte_rte_set_errno(42) };
    assert_eq!(sys::rte_errno(), 42);

    // SAFETY: ports are started; stop/close then free the pool.
    unsafe {
        for p in [ring, null] {
            assert_eq!(sys::rte_eth_dev_stop(p), 0);
            assert_eq!(sys::rte_eth_dev_close(p), 0);
        }
        sys::rte_mempool_free(pool);
    }
}
