//! Writing pcap files (the classic libpcap format, LINKTYPE_ETHERNET), and a
//! middleware that records every datagram of any [`Backend`].

use std::io::Write;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Backend, BackendError, BackendStats, DgramMeta};
use crate::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr, UdpPacket, UdpRepr,
};

/// Magic of a microsecond-resolution pcap file.
pub const MAGIC: u32 = 0xa1b2_c3d4;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
const SNAPLEN: u32 = 65_535;

/// Writes pcap records to `W`.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header and returns the writer.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC.to_ne_bytes());
        h[4..6].copy_from_slice(&2u16.to_ne_bytes());
        h[6..8].copy_from_slice(&4u16.to_ne_bytes());
        // thiszone and sigfigs stay 0.
        h[16..20].copy_from_slice(&SNAPLEN.to_ne_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out })
    }

    /// Writes one frame stamped with the current time.
    pub fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.write_frame_at(now.as_secs() as u32, now.subsec_micros(), frame)
    }

    /// Writes one frame with an explicit timestamp (deterministic captures).
    pub fn write_frame_at(&mut self, secs: u32, micros: u32, frame: &[u8]) -> std::io::Result<()> {
        let incl = frame.len().min(SNAPLEN as usize);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_ne_bytes());
        h[4..8].copy_from_slice(&micros.to_ne_bytes());
        h[8..12].copy_from_slice(&(incl as u32).to_ne_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&frame[..incl])
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Gives the output back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Builds an Ethernet/IP/UDP frame around `payload` for a capture (MACs are
/// placeholders: kernel-socket backends never see them).
pub fn synth_frame(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let v4 = src.is_ipv4() && dst.is_ipv4();
    let ip_len = if v4 { 20 } else { 40 };
    let mut f = vec![0u8; 14 + ip_len + 8 + payload.len()];
    let eth = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
        vlan_tci: None,
        ethertype: if v4 { EtherType::Ipv4 } else { EtherType::Ipv6 },
    };
    let l4 = 14 + ip_len;
    f[l4 + 8..].copy_from_slice(payload);
    let udp = UdpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
    };
    let udp_len = 8 + payload.len();
    // Sizes are computed above, so emits cannot fail but for datagrams over
    // 64 KiB, which no backend delivers; such records keep zero headers.
    let _ = eth.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    let _ = udp.emit(
        &mut UdpPacket::new_unchecked(&mut f[l4..]),
        payload.len(),
        src.ip(),
        dst.ip(),
    );
    match (src.ip(), dst.ip()) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            let r = Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                protocol: IpProtocol::Udp,
                payload_len: udp_len,
                ttl: 64,
                dscp_ecn: 0,
                dont_frag: true,
                ident: 0,
            };
            let _ = r.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]));
        }
        (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => {
            let r = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Udp,
                payload_len: udp_len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            };
            let _ = r.emit(&mut Ipv6Packet::new_unchecked(&mut f[14..]));
        }
        _ => {}
    }
    f
}

/// Middleware: records every datagram received and sent by the inner backend
/// into a pcap stream (synthesised headers around the real payloads).
pub struct PcapBackend<B: Backend, W: Write + Send> {
    inner: B,
    pcap: PcapWriter<W>,
    write_errors: u64,
}

impl<B: Backend, W: Write + Send> PcapBackend<B, W> {
    /// Wraps `inner`, writing to `out`.
    pub fn new(inner: B, out: W) -> Result<Self, BackendError> {
        let pcap = PcapWriter::new(out).map_err(|e| BackendError::io("writing pcap header", e))?;
        Ok(PcapBackend {
            inner,
            pcap,
            write_errors: 0,
        })
    }

    /// Flushes the capture and returns the inner backend and the output.
    pub fn finish(mut self) -> Result<(B, W), BackendError> {
        self.pcap
            .flush()
            .map_err(|e| BackendError::io("flushing pcap", e))?;
        Ok((self.inner, self.pcap.into_inner()))
    }

    /// Records that could not be written.
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    fn record(&mut self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        if self
            .pcap
            .write_frame(&synth_frame(src, dst, payload))
            .is_err()
        {
            self.write_errors += 1;
        }
    }
}

impl<B: Backend, W: Write + Send> Backend for PcapBackend<B, W> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn rx_burst(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(&mut [u8], &DgramMeta),
    ) -> Result<usize, BackendError> {
        let mut seen: Vec<(DgramMeta, Vec<u8>)> = Vec::new();
        let n = self.inner.rx_burst(max, &mut |p, m| {
            seen.push((*m, p.to_vec()));
            f(p, m)
        })?;
        for (m, p) in seen {
            self.record(m.src, m.dst, &p);
        }
        Ok(n)
    }

    fn tx_burst(
        &mut self,
        n: usize,
        f: &mut dyn FnMut(usize, &mut [u8]) -> Option<(usize, SocketAddr)>,
    ) -> Result<usize, BackendError> {
        let mut sent: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let queued = self.inner.tx_burst(n, &mut |i, buf| {
            let r = f(i, buf);
            if let Some((len, dst)) = r {
                sent.push((dst, buf[..len.min(buf.len())].to_vec()));
            }
            r
        })?;
        let local = self.inner.local_addr();
        for (dst, p) in sent.into_iter().take(queued) {
            self.record(local, dst, &p);
        }
        Ok(queued)
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    fn stats(&self) -> BackendStats {
        self.inner.stats()
    }
}
