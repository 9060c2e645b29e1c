//! Shared Ethernet/IP/UDP handling for the frame backends (afxdp, dpdk, mem).
//!
//! Receive: [`L2Endpoint::parse_rx`] classifies a frame (our UDP datagram,
//! an ARP request for our address, or something to drop), verifies the IPv4
//! header and UDP checksums and keeps the rx counters of [`BackendStats`].
//!
//! Transmit: the caller writes the UDP payload at `frame[headroom()..]`, then
//! [`L2Endpoint::build_tx`] writes Ethernet, IPv4 or IPv6 and UDP headers into
//! `frame[..headroom()]`. The destination MAC is static (config) or looked up
//! once in the neighbour table of the current network namespace and cached.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use super::{BackendError, BackendStats, DgramMeta};
use crate::wire::{
    self, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpPacket, UdpRepr,
};

/// Largest header stack we build: Ethernet + 802.1Q + IPv6 + UDP.
pub const MAX_HEADROOM: usize = 18 + 40 + 8;
const TTL: u8 = 64;
/// How long a failed neighbour lookup is remembered before trying again, so
/// that a missing entry costs one lookup per interval, not one per packet.
const NEGATIVE_TTL: Duration = Duration::from_secs(1);

/// What a received frame is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RxVerdict {
    /// A UDP datagram for us: its payload is `frame[payload]`.
    Deliver {
        /// Payload range within the frame.
        payload: Range<usize>,
        /// Its addresses.
        meta: DgramMeta,
    },
    /// An ARP request for our IPv4 address (backends that own the port
    /// answer it with [`L2Endpoint::build_arp_reply`]).
    ArpRequest(ArpRepr),
    /// Not for us, or bad: already counted.
    Drop,
}

#[derive(Debug, Clone)]
struct Neighbour {
    ip: IpAddr,
    mac: Option<EthernetAddress>,
    checked: Instant,
}

/// One endpoint's L2/L3 identity and counters.
#[derive(Debug, Clone)]
pub struct L2Endpoint {
    local_mac: EthernetAddress,
    local: SocketAddr,
    static_peer_mac: Option<EthernetAddress>,
    vlan_tci: Option<u16>,
    verify_checksums: bool,
    ident: u16,
    neighbours: Vec<Neighbour>,
    interface: Option<String>,
    stats: BackendStats,
}

impl L2Endpoint {
    /// An endpoint with MAC `local_mac` and address `local`. `peer_mac`, if
    /// given, is the destination MAC of every frame (a static neighbour).
    pub fn new(
        local_mac: EthernetAddress,
        local: SocketAddr,
        peer_mac: Option<EthernetAddress>,
    ) -> Self {
        L2Endpoint {
            local_mac,
            local,
            static_peer_mac: peer_mac,
            vlan_tci: None,
            verify_checksums: true,
            ident: 0,
            neighbours: Vec::new(),
            interface: None,
            stats: BackendStats::default(),
        }
    }

    /// Tags transmitted frames with this 802.1Q TCI.
    pub fn with_vlan(mut self, tci: Option<u16>) -> Self {
        self.vlan_tci = tci;
        self
    }

    /// Restricts neighbour lookups to entries of this interface.
    pub fn with_interface(mut self, iface: Option<String>) -> Self {
        self.interface = iface;
        self
    }

    /// Turns checksum verification on receive off (benches of the raw path).
    pub fn with_checksum_verification(mut self, on: bool) -> Self {
        self.verify_checksums = on;
        self
    }

    /// Pre-seeds the neighbour cache (tests, or entries learnt elsewhere).
    pub fn add_neighbour(&mut self, ip: IpAddr, mac: EthernetAddress) {
        self.neighbours.retain(|n| n.ip != ip);
        self.neighbours.push(Neighbour {
            ip,
            mac: Some(mac),
            checked: Instant::now(),
        });
    }

    /// Our MAC address.
    pub fn local_mac(&self) -> EthernetAddress {
        self.local_mac
    }

    /// Our IP address and UDP port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Bytes of headers in front of the payload for our address family.
    pub fn headroom(&self) -> usize {
        let ip = if self.local.is_ipv4() { 20 } else { 40 };
        let eth = if self.vlan_tci.is_some() { 18 } else { 14 };
        eth + ip + 8
    }

    /// Counters so far (rx side kept here; tx side by [`Self::count_tx`]).
    pub fn stats(&self) -> &BackendStats {
        &self.stats
    }

    /// Counters, mutable (for backend-specific events such as tx errors).
    pub fn stats_mut(&mut self) -> &mut BackendStats {
        &mut self.stats
    }

    /// Counts one sent datagram of `payload_len` bytes.
    pub fn count_tx(&mut self, payload_len: usize) {
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += payload_len as u64;
    }

    /// Classifies `frame` and updates the counters. Deliveries are counted in
    /// `rx_packets`/`rx_bytes`.
    pub fn parse_rx(&mut self, frame: &[u8]) -> RxVerdict {
        match self.classify(frame) {
            Ok(v) => {
                match &v {
                    RxVerdict::Deliver { payload, .. } => {
                        self.stats.rx_packets += 1;
                        self.stats.rx_bytes += payload.len() as u64;
                    }
                    RxVerdict::ArpRequest(_) | RxVerdict::Drop => self.stats.rx_dropped += 1,
                }
                v
            }
            Err(e) => {
                match e {
                    wire::Error::BadChecksum => self.stats.rx_bad_checksum += 1,
                    wire::Error::Fragment => self.stats.rx_fragments += 1,
                    wire::Error::Unsupported => self.stats.rx_dropped += 1,
                    wire::Error::Truncated
                    | wire::Error::BadVersion
                    | wire::Error::BadHeaderLen
                    | wire::Error::BadLength => self.stats.rx_malformed += 1,
                }
                RxVerdict::Drop
            }
        }
    }

    fn classify(&self, frame: &[u8]) -> wire::Result<RxVerdict> {
        let eth = EthernetFrame::new_checked(frame)?;
        let dst_mac = eth.dst_addr();
        if dst_mac != self.local_mac && !dst_mac.is_multicast() {
            return Ok(RxVerdict::Drop);
        }
        let l3 = eth.header_len();
        let (src_ip, dst_ip, l4_start, l4_len) = match eth.ethertype() {
            EtherType::Ipv4 => {
                let ip = Ipv4Packet::new_checked(eth.payload())?;
                let r = Ipv4Repr::parse(&ip, self.verify_checksums)?;
                if r.protocol != IpProtocol::Udp {
                    return Ok(RxVerdict::Drop);
                }
                (
                    IpAddr::V4(r.src_addr),
                    IpAddr::V4(r.dst_addr),
                    l3 + ip.header_len(),
                    r.payload_len,
                )
            }
            EtherType::Ipv6 => {
                let ip = Ipv6Packet::new_checked(eth.payload())?;
                let (r, off) = Ipv6Repr::parse(&ip)?;
                if r.next_header != IpProtocol::Udp {
                    return Ok(RxVerdict::Drop);
                }
                (
                    IpAddr::V6(r.src_addr),
                    IpAddr::V6(r.dst_addr),
                    l3 + 40 + off,
                    r.payload_len,
                )
            }
            EtherType::Arp => return Ok(self.classify_arp(eth.payload())),
            _ => return Ok(RxVerdict::Drop),
        };
        if !self.is_local_ip(dst_ip) {
            return Ok(RxVerdict::Drop);
        }
        let l4 = &frame[l4_start..l4_start + l4_len];
        let udp = UdpPacket::new_checked(l4)?;
        if udp.dst_port() != self.local.port() && self.local.port() != 0 {
            return Ok(RxVerdict::Drop);
        }
        let r = UdpRepr::parse(&udp, src_ip, dst_ip, self.verify_checksums)?;
        let start = l4_start + wire::udp::HEADER_LEN;
        Ok(RxVerdict::Deliver {
            payload: start..l4_start + udp.len() as usize,
            meta: DgramMeta {
                src: SocketAddr::new(src_ip, r.src_port),
                dst: SocketAddr::new(dst_ip, r.dst_port),
            },
        })
    }

    fn classify_arp(&self, payload: &[u8]) -> RxVerdict {
        let Ok(p) = ArpPacket::new_checked(payload) else {
            return RxVerdict::Drop;
        };
        let Ok(r) = ArpRepr::parse(&p) else {
            return RxVerdict::Drop;
        };
        if r.operation == ArpOperation::Request
            && IpAddr::V4(r.target_protocol_addr) == self.local.ip()
        {
            RxVerdict::ArpRequest(r)
        } else {
            RxVerdict::Drop
        }
    }

    fn is_local_ip(&self, ip: IpAddr) -> bool {
        let l = self.local.ip();
        (l.is_unspecified() && l.is_ipv4() == ip.is_ipv4()) || l == ip
    }

    /// Writes the ARP reply to `req` into `frame`; returns its length (60:
    /// padded to the Ethernet minimum).
    pub fn build_arp_reply(&self, req: &ArpRepr, frame: &mut [u8]) -> Result<usize, BackendError> {
        const LEN: usize = 60;
        if frame.len() < LEN {
            return Err(BackendError::Config("frame buffer under 60 bytes".into()));
        }
        let eth = EthernetRepr {
            src_addr: self.local_mac,
            dst_addr: req.source_hardware_addr,
            vlan_tci: self.vlan_tci,
            ethertype: EtherType::Arp,
        };
        let hl = eth.buffer_len();
        frame[..LEN].fill(0);
        let res = eth
            .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]))
            .and_then(|()| {
                req.reply(self.local_mac)
                    .emit(&mut ArpPacket::new_unchecked(&mut frame[hl..]))
            });
        res.map_err(|e| BackendError::Config(format!("building ARP reply: {e}")))?;
        Ok(LEN)
    }

    /// Writes Ethernet/IP/UDP headers into `frame[..headroom()]` for the
    /// `payload_len` bytes already at `frame[headroom()..]` going to `dst`;
    /// returns the frame length. Counts nothing (see [`Self::count_tx`]).
    pub fn build_tx(
        &mut self,
        frame: &mut [u8],
        payload_len: usize,
        dst: SocketAddr,
    ) -> Result<usize, BackendError> {
        let hr = self.headroom();
        let total = hr + payload_len;
        if frame.len() < total {
            return Err(BackendError::Config(format!(
                "payload of {payload_len} bytes does not fit a {}-byte frame",
                frame.len()
            )));
        }
        let dst_mac = self.resolve(dst.ip())?;
        let eth = EthernetRepr {
            src_addr: self.local_mac,
            dst_addr: dst_mac,
            vlan_tci: self.vlan_tci,
            ethertype: if dst.is_ipv4() {
                EtherType::Ipv4
            } else {
                EtherType::Ipv6
            },
        };
        let l3 = eth.buffer_len();
        let udp_len = wire::udp::HEADER_LEN + payload_len;
        let udp = UdpRepr {
            src_port: self.local.port(),
            dst_port: dst.port(),
        };
        let frame = &mut frame[..total];
        let res = match (self.local.ip(), dst.ip()) {
            (IpAddr::V4(src), IpAddr::V4(d)) => {
                let ip = Ipv4Repr {
                    src_addr: src,
                    dst_addr: d,
                    protocol: IpProtocol::Udp,
                    payload_len: udp_len,
                    ttl: TTL,
                    dscp_ecn: 0,
                    // RFC 9000 §14: "UDP datagrams MUST NOT be fragmented at
                    // the IP layer. In IPv4, the DF bit MUST be set if possible".
                    dont_frag: true,
                    ident: self.ident,
                };
                self.ident = self.ident.wrapping_add(1);
                udp.emit(
                    &mut UdpPacket::new_unchecked(&mut frame[l3 + 20..]),
                    payload_len,
                    src.into(),
                    d.into(),
                )
                .and_then(|()| ip.emit(&mut Ipv4Packet::new_unchecked(&mut frame[l3..])))
            }
            (IpAddr::V6(src), IpAddr::V6(d)) => {
                let ip = Ipv6Repr {
                    src_addr: src,
                    dst_addr: d,
                    next_header: IpProtocol::Udp,
                    payload_len: udp_len,
                    hop_limit: TTL,
                    traffic_class: 0,
                    flow_label: 0,
                };
                udp.emit(
                    &mut UdpPacket::new_unchecked(&mut frame[l3 + 40..]),
                    payload_len,
                    src.into(),
                    d.into(),
                )
                .and_then(|()| ip.emit(&mut Ipv6Packet::new_unchecked(&mut frame[l3..])))
            }
            _ => {
                return Err(BackendError::Config(format!(
                    "destination {dst} is not of the family of local address {}",
                    self.local
                )))
            }
        };
        res.and_then(|()| eth.emit(&mut EthernetFrame::new_unchecked(&mut frame[..])))
            .map_err(|e| BackendError::Config(format!("building headers for {dst}: {e}")))?;
        Ok(total)
    }

    /// The MAC to send to for `ip`: static, cached, or looked up.
    pub fn resolve(&mut self, ip: IpAddr) -> Result<EthernetAddress, BackendError> {
        if let Some(m) = self.static_peer_mac {
            return Ok(m);
        }
        if let Some(n) = self.neighbours.iter().find(|n| n.ip == ip) {
            if let Some(m) = n.mac {
                return Ok(m);
            }
            if n.checked.elapsed() < NEGATIVE_TTL {
                return Err(BackendError::NoNeighbour(ip));
            }
        }
        let mac = lookup_neighbour(ip, self.interface.as_deref());
        self.neighbours.retain(|n| n.ip != ip);
        self.neighbours.push(Neighbour {
            ip,
            mac,
            checked: Instant::now(),
        });
        mac.ok_or(BackendError::NoNeighbour(ip))
    }
}

/// Looks `ip` up in the neighbour table of the current network namespace:
/// `/proc/net/arp` for IPv4, `ip -6 neigh` for IPv6. Incomplete entries do
/// not count.
pub fn lookup_neighbour(ip: IpAddr, iface: Option<&str>) -> Option<EthernetAddress> {
    match ip {
        IpAddr::V4(v4) => {
            // /proc/net follows the thread group leader's namespace; a thread
            // that entered another one (setns) sees its own here.
            let text = std::fs::read_to_string("/proc/thread-self/net/arp")
                .or_else(|_| std::fs::read_to_string("/proc/net/arp"))
                .ok()?;
            parse_proc_net_arp(&text, v4, iface)
        }
        IpAddr::V6(v6) => {
            let out = std::process::Command::new("ip")
                .args(["-6", "neigh", "show", &v6.to_string()])
                .output()
                .ok()?;
            parse_ip_neigh(&String::from_utf8_lossy(&out.stdout), v6, iface)
        }
    }
}

/// Finds `ip` in the text of `/proc/net/arp` (flags 0x2 = complete).
pub fn parse_proc_net_arp(
    text: &str,
    ip: Ipv4Addr,
    iface: Option<&str>,
) -> Option<EthernetAddress> {
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[0].parse::<Ipv4Addr>().ok()? != ip {
            return None;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        if flags & 0x2 == 0 || iface.is_some_and(|i| i != f[5]) {
            return None;
        }
        EthernetAddress::parse(f[3])
    })
}

/// Finds `ip` in `ip neigh show` output ("ADDR dev IF lladdr MAC STATE").
pub fn parse_ip_neigh(text: &str, ip: Ipv6Addr, iface: Option<&str>) -> Option<EthernetAddress> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first()?.parse::<Ipv6Addr>().ok()? != ip {
            return None;
        }
        let field = |name: &str| f.iter().position(|x| *x == name).and_then(|i| f.get(i + 1));
        if let (Some(want), Some(dev)) = (iface, field("dev")) {
            if want != *dev {
                return None;
            }
        }
        if f.iter().any(|s| matches!(*s, "FAILED" | "INCOMPLETE")) {
            return None;
        }
        EthernetAddress::parse(field("lladdr")?)
    })
}

/// The MAC address of interface `iface` in the network namespace of the
/// calling thread (`SIOCGIFHWADDR`; sysfs would show the namespace that
/// mounted it instead).
pub fn interface_mac(iface: &str) -> Result<EthernetAddress, BackendError> {
    let bad = |reason: String| BackendError::Interface {
        iface: iface.into(),
        reason,
    };
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ || iface.contains('\0') {
        return Err(bad("bad interface name".into()));
    }
    // SAFETY: plain socket(2); the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(bad(format!("socket: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: raw is a fresh descriptor nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: req is a valid ifreq with a NUL-terminated name (zeroed and
    // shorter than IFNAMSIZ); the kernel writes the hardware address into it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if rc != 0 {
        return Err(bad(format!(
            "SIOCGIFHWADDR: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: SIOCGIFHWADDR filled the ifru_hwaddr member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    Ok(EthernetAddress(mac))
}
