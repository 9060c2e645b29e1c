//! Kernel UDP sockets: the embedded default that runs anywhere without root.
//!
//! One socket per worker with `SO_REUSEPORT` (the kernel spreads flows over
//! the workers' sockets), batches through `recvmmsg`/`sendmmsg`, and UDP GSO
//! (`UDP_SEGMENT`, Linux ≥ 4.18) and GRO (`UDP_GRO`, Linux ≥ 5.0) when the
//! kernel has them: probed at open, and GSO is switched off at the first
//! send the kernel refuses with it.
//!
//! This is one of the two places with `unsafe` in the dataplane (FFI to
//! libc); every block says why it is sound.

use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{Backend, BackendConfig, BackendError, BackendStats, DgramMeta};

/// `UDP_SEGMENT` from linux/udp.h (GSO segment size, per socket or per cmsg).
const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` from linux/udp.h.
const UDP_GRO: libc::c_int = 104;
/// Messages per `recvmmsg`/`sendmmsg`.
const BATCH: usize = 64;
/// Most segments the kernel accepts in one GSO send (UDP_MAX_SEGMENTS).
const MAX_GSO_SEGMENTS: usize = 64;
/// Most bytes in one GSO send (an IP datagram's payload, minus margin).
const MAX_GSO_BYTES: usize = 65_000;
/// Receive buffer per message with GRO: one coalesced super-datagram.
const GRO_BUF: usize = 65_536;
/// Control buffer per received message, in u64 words: a UDP_GRO cmsg
/// (CMSG_SPACE(4) = 24) and an IPV6_PKTINFO one (CMSG_SPACE(20) = 40) with
/// room to spare.
const CMSG_WORDS: usize = 12;
/// Receive buffer per message without GRO, and the payload buffer handed to
/// tx callers.
const DGRAM_BUF: usize = 2048;

/// A sockaddr big enough for IPv4 and IPv6, and its length.
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

fn to_raw(addr: SocketAddr) -> RawAddr {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in (that is its purpose); we write one value into it.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    RawAddr {
        storage,
        len: len as libc::socklen_t,
    }
}

fn from_raw(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is aligned for it.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn setsockopt_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> bool {
    // SAFETY: fd is an open socket; the option value is a c_int on our stack
    // whose size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// Where `rx_burst` is in the messages of the last `recvmmsg`.
#[derive(Debug, Default, Clone, Copy)]
struct RxMsg {
    len: usize,
    seg: usize,
    src: Option<SocketAddr>,
    /// The destination the kernel reported (IP_PKTINFO/IPV6_PKTINFO), on a
    /// socket bound to an unspecified address.
    dst: Option<SocketAddr>,
}

/// A kernel UDP socket backend.
pub struct UdpBackend {
    fd: OwnedFd,
    local: SocketAddr,
    gso: bool,
    /// This burst goes without GSO grouping: one of its datagrams was too
    /// large for the path (EMSGSIZE), which fails its whole GSO message.
    ungrouped: bool,
    gro: bool,
    rx_slot: usize,
    rx_buf: Vec<u8>,
    rx_msgs: [RxMsg; BATCH],
    rx_count: usize,
    rx_cursor: (usize, usize),
    tx_buf: Vec<u8>,
    tx_items: Vec<(usize, SocketAddr)>,
    stats: BackendStats,
}

impl UdpBackend {
    /// Opens a non-blocking socket bound to `config.local` with
    /// `SO_REUSEPORT`, probing GSO and GRO when `config.offloads`.
    pub fn open(config: &BackendConfig) -> Result<Self, BackendError> {
        let local = config.local;
        let family = if local.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                family,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(BackendError::last_os("socket(SOCK_DGRAM)"));
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if !setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1) {
            return Err(BackendError::last_os("setsockopt(SO_REUSEPORT)"));
        }
        // RFC 9000 §14: "UDP datagrams MUST NOT be fragmented at the IP
        // layer. In IPv4, the Don't Fragment (DF) bit MUST be set if
        // possible". PMTUDISC_PROBE sets DF and lets datagrams up to the
        // interface's MTU go whatever the route's cached path MTU says (the
        // engine finds the path's own, RFC 8899); a larger one fails with
        // EMSGSIZE rather than leaving in fragments. (On an IPv6 socket the
        // IPv4 option covers v4-mapped peers.)
        let v4_df = setsockopt_int(
            &fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        );
        let df = if local.is_ipv4() {
            v4_df
        } else {
            setsockopt_int(
                &fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_PROBE,
            )
        };
        if !df {
            tracing::warn!(%local, error = %std::io::Error::last_os_error(), "udp: cannot set Don't Fragment; datagrams may be fragmented");
        }
        // Bigger socket buffers absorb bursts (room for `ring_size` full
        // datagrams, at least 4 MiB); the FORCE variants pass rmem_max /
        // wmem_max with CAP_NET_ADMIN. Failure only costs drops.
        let buf = (config.ring_size as usize * DGRAM_BUF).clamp(4 << 20, 256 << 20) as libc::c_int;
        for (force, opt) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if !setsockopt_int(&fd, libc::SOL_SOCKET, force, buf) {
                let _ = setsockopt_int(&fd, libc::SOL_SOCKET, opt, buf);
            }
        }
        if local.ip().is_unspecified() {
            // Bound to a wildcard address: ask for each datagram's real
            // destination, which the engine needs (RecvInfo::to, paths).
            let ok = if local.is_ipv4() {
                setsockopt_int(&fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
            } else {
                // IPv4 datagrams on a dual-stack socket report IP_PKTINFO.
                let _ = setsockopt_int(&fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1);
                setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
            };
            if !ok {
                return Err(BackendError::last_os("setsockopt(IP_PKTINFO)"));
            }
        }
        let raw_addr = to_raw(local);
        // SAFETY: raw_addr holds a valid sockaddr of length raw_addr.len.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw_addr.storage as *const libc::sockaddr_storage).cast(),
                raw_addr.len,
            )
        };
        if rc != 0 {
            return Err(BackendError::last_os(format!("bind {local}")));
        }
        let local = sockname(&fd)?;
        let gro = config.offloads && setsockopt_int(&fd, libc::SOL_UDP, UDP_GRO, 1);
        let gso = config.offloads && probe_gso(&fd);
        tracing::debug!(%local, gso, gro, "udp backend open");
        let rx_slot = if gro { GRO_BUF } else { DGRAM_BUF };
        Ok(UdpBackend {
            fd,
            local,
            gso,
            ungrouped: false,
            gro,
            rx_slot,
            rx_buf: vec![0u8; rx_slot * BATCH],
            rx_msgs: [RxMsg::default(); BATCH],
            rx_count: 0,
            rx_cursor: (0, 0),
            tx_buf: vec![0u8; DGRAM_BUF * BATCH],
            tx_items: Vec::with_capacity(BATCH),
            stats: BackendStats::default(),
        })
    }

    /// Whether UDP GSO is in use.
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Whether UDP GRO is in use.
    pub fn gro(&self) -> bool {
        self.gro
    }

    /// Delivers datagrams left from the last `recvmmsg` (GRO segments).
    fn drain(&mut self, max: usize, f: &mut dyn FnMut(&mut [u8], &DgramMeta)) -> usize {
        let mut delivered = 0;
        while self.rx_cursor.0 < self.rx_count && delivered < max {
            let (i, off) = self.rx_cursor;
            let m = self.rx_msgs[i];
            let end = (off + m.seg).min(m.len);
            if let Some(src) = m.src {
                let base = i * self.rx_slot;
                let meta = DgramMeta {
                    src,
                    dst: m.dst.unwrap_or(self.local),
                };
                f(&mut self.rx_buf[base + off..base + end], &meta);
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += (end - off) as u64;
                delivered += 1;
            }
            self.rx_cursor = if end >= m.len { (i + 1, 0) } else { (i, end) };
        }
        delivered
    }

    /// One `recvmmsg` of up to `want` messages; returns how many arrived.
    fn recv_batch(&mut self, want: usize) -> Result<usize, BackendError> {
        let want = want.clamp(1, BATCH);
        // SAFETY: these are plain C structs for which all-zero is valid.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut cmsgs = [[0u64; CMSG_WORDS]; BATCH];
        let base = self.rx_buf.as_mut_ptr();
        for i in 0..want {
            // SAFETY: i * rx_slot + rx_slot <= rx_buf.len() by construction.
            iovs[i].iov_base = unsafe { base.add(i * self.rx_slot) }.cast();
            iovs[i].iov_len = self.rx_slot;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = cmsgs[i].as_mut_ptr().cast();
            h.msg_controllen = size_of::<[u64; CMSG_WORDS]>();
        }
        // SAFETY: every header points at live buffers of the stated sizes
        // (rx_buf slots, addrs, cmsgs) that outlive the call; MSG_DONTWAIT
        // makes it return at once when nothing is queued.
        let n = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                want as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(0),
                _ => Err(BackendError::io("recvmmsg", e)),
            };
        }
        let n = n as usize;
        for i in 0..n {
            let len = hdrs[i].msg_len as usize;
            let h = &hdrs[i].msg_hdr;
            let mut seg = len;
            if h.msg_flags & libc::MSG_TRUNC != 0 {
                self.stats.rx_malformed += 1;
                self.rx_msgs[i] = RxMsg {
                    len: 0,
                    seg: 1,
                    src: None,
                    dst: None,
                };
                continue;
            }
            let mut dst_ip = None;
            // SAFETY: the kernel filled msg_control up to msg_controllen
            // within cmsgs[i]; CMSG_* walk only inside that range, and each
            // payload is read unaligned with the type its (level, type) pair
            // names in udp(7)/ip(7)/ipv6(7).
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(h);
                while !c.is_null() {
                    let data = libc::CMSG_DATA(c);
                    match ((*c).cmsg_level, (*c).cmsg_type) {
                        (libc::SOL_UDP, UDP_GRO) => {
                            let v = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                            if v > 0 {
                                seg = v as usize;
                            }
                        }
                        (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                            let pi = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                            let v4 = Ipv4Addr::from(pi.ipi_addr.s_addr.to_ne_bytes());
                            // On a dual-stack IPv6 socket, keep the socket's
                            // family (IPv4-mapped) like the source address.
                            dst_ip = Some(if self.local.is_ipv6() {
                                IpAddr::V6(v4.to_ipv6_mapped())
                            } else {
                                IpAddr::V4(v4)
                            });
                        }
                        (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                            let pi = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                            dst_ip = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
                        }
                        _ => {}
                    }
                    c = libc::CMSG_NXTHDR(h, c);
                }
            }
            self.rx_msgs[i] = RxMsg {
                len,
                seg: seg.max(1),
                src: from_raw(&addrs[i]),
                dst: dst_ip.map(|ip| SocketAddr::new(ip, self.local.port())),
            };
            if len == 0 {
                // An empty datagram is still a datagram.
                self.rx_msgs[i].len = 0;
            }
        }
        self.rx_count = n;
        self.rx_cursor = (0, 0);
        Ok(n)
    }

    /// Sends `tx_items`; returns how many datagrams were queued (and counts
    /// them).
    fn send_items(&mut self) -> usize {
        let mut pos = 0;
        let mut queued = 0;
        let mut retried_full = false;
        self.ungrouped = false;
        while pos < self.tx_items.len() {
            match self.send_some(pos) {
                Ok(sent) => {
                    for &(len, _) in &self.tx_items[pos..pos + sent] {
                        self.stats.tx_packets += 1;
                        self.stats.tx_bytes += len as u64;
                    }
                    pos += sent;
                    queued += sent;
                    retried_full = false;
                }
                Err(e) => {
                    let code = e.raw_os_error().unwrap_or(0);
                    if (code == libc::EAGAIN || code == libc::ENOBUFS) && !retried_full {
                        retried_full = true;
                        self.wait_writable();
                        continue;
                    }
                    if self.gso && (code == libc::EIO || code == libc::EINVAL) {
                        tracing::warn!(error = %e, "udp: kernel refused GSO send, GSO off");
                        self.gso = false;
                        continue;
                    }
                    if code == libc::EAGAIN || code == libc::ENOBUFS {
                        break;
                    }
                    // A datagram too large for the path (a path MTU probe,
                    // RFC 8899) fails its whole GSO message: send the rest
                    // of the burst one datagram per message, so that only
                    // it is lost (a lost data packet would count as
                    // congestion).
                    if code == libc::EMSGSIZE && self.group_len(pos) > 1 {
                        self.ungrouped = true;
                        continue;
                    }
                    // Skip the message that failed (EMSGSIZE, EHOSTUNREACH...)
                    // and go on with the rest.
                    let skip = self.group_len(pos);
                    tracing::debug!(error = %e, skipped = skip, "udp: send failed");
                    self.stats.tx_errors += skip as u64;
                    pos += skip;
                }
            }
        }
        queued
    }

    /// Datagrams in the message that starts at `pos`: consecutive items with
    /// the same destination and size (the last may be shorter) under GSO.
    fn group_len(&self, pos: usize) -> usize {
        if !self.gso || self.ungrouped {
            return 1;
        }
        let (seg, dst) = self.tx_items[pos];
        let mut n = 1;
        let mut bytes = seg;
        while pos + n < self.tx_items.len() && n < MAX_GSO_SEGMENTS {
            let (len, d) = self.tx_items[pos + n];
            if d != dst || len > seg || len == 0 || bytes + len > MAX_GSO_BYTES {
                break;
            }
            n += 1;
            bytes += len;
            if len < seg {
                break;
            }
        }
        n
    }

    /// One `sendmmsg` from item `pos`; returns datagrams queued.
    fn send_some(&mut self, pos: usize) -> std::io::Result<usize> {
        // SAFETY: plain C structs for which all-zero is valid.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut addrs: Vec<RawAddr> = Vec::new();
        let mut cmsgs = [[0u64; 4]; BATCH];
        let mut groups = [0usize; BATCH];
        let mut nmsg = 0;
        let mut at = pos;
        while at < self.tx_items.len() && nmsg < BATCH {
            let n = self.group_len(at);
            groups[nmsg] = n;
            addrs.push(to_raw(self.tx_items[at].1));
            nmsg += 1;
            at += n;
        }
        let base = self.tx_buf.as_mut_ptr();
        let mut item = pos;
        let mut iov_at = 0;
        for m in 0..nmsg {
            let n = groups[m];
            let iov_start = iov_at;
            for k in 0..n {
                if iov_at == BATCH {
                    break;
                }
                let slot = item + k;
                // SAFETY: slot < BATCH so the slot lies inside tx_buf.
                iovs[iov_at].iov_base = unsafe { base.add(slot * DGRAM_BUF) }.cast();
                iovs[iov_at].iov_len = self.tx_items[slot].0;
                iov_at += 1;
            }
            let h = &mut hdrs[m].msg_hdr;
            h.msg_name = (&mut addrs[m].storage as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = addrs[m].len;
            h.msg_iov = &mut iovs[iov_start];
            h.msg_iovlen = iov_at - iov_start;
            if n > 1 {
                let seg = self.tx_items[item].0 as u16;
                h.msg_control = cmsgs[m].as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE is a pure size computation.
                h.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
                // SAFETY: msg_control points at cmsgs[m] (32 bytes, 8-aligned),
                // enough for one header and a u16 (CMSG_SPACE(2) = 24).
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
                }
            }
            item += n;
        }
        // One iovec per datagram and at most BATCH datagrams per call (items
        // never exceed BATCH), so every message got all of its iovecs.
        // SAFETY: headers point at addrs, iovs (into tx_buf) and cmsgs, all
        // alive for the call.
        let rc = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                nmsg as libc::c_uint,
                0,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(groups[..rc as usize].iter().sum())
    }

    fn wait_writable(&self) {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one pollfd on our stack; 1 ms timeout.
        unsafe { libc::poll(&mut p, 1, 1) };
    }
}

fn sockname(fd: &OwnedFd) -> Result<SocketAddr, BackendError> {
    // SAFETY: plain C struct; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are valid out-parameters of the stated size.
    let rc = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(BackendError::last_os("getsockname"));
    }
    from_raw(&storage).ok_or_else(|| BackendError::Config("socket has no IP address".into()))
}

fn probe_gso(fd: &OwnedFd) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid out-parameters of the stated size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0
}

impl Backend for UdpBackend {
    fn name(&self) -> &'static str {
        "udp"
    }

    fn rx_burst(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(&mut [u8], &DgramMeta),
    ) -> Result<usize, BackendError> {
        let mut delivered = self.drain(max, f);
        if delivered < max && self.recv_batch(max - delivered)? > 0 {
            delivered += self.drain(max - delivered, f);
        }
        Ok(delivered)
    }

    fn tx_burst(
        &mut self,
        n: usize,
        f: &mut dyn FnMut(usize, &mut [u8]) -> Option<(usize, SocketAddr)>,
    ) -> Result<usize, BackendError> {
        self.tx_items.clear();
        for i in 0..n.min(BATCH) {
            let slot = &mut self.tx_buf[i * DGRAM_BUF..(i + 1) * DGRAM_BUF];
            let Some((len, dst)) = f(i, slot) else { break };
            if len > DGRAM_BUF || dst.is_ipv4() != self.local.is_ipv4() {
                self.stats.tx_errors += 1;
                if self.tx_items.is_empty() {
                    return Err(BackendError::Config(format!(
                        "datagram of {len} bytes to {dst} cannot be sent from {}",
                        self.local
                    )));
                }
                break;
            }
            self.tx_items.push((len, dst));
        }
        Ok(self.send_items())
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn stats(&self) -> BackendStats {
        self.stats.clone()
    }
}
