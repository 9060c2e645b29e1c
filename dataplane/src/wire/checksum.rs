//! The Internet checksum (RFC 1071): ones' complement sum of 16-bit words.
//!
//! [`data`] adds 64-bit native-endian words with end-around carry and folds
//! at the end; RFC 1071 §2(B) shows the sum is byte-order independent, so
//! only the folded result is swapped to network order. [`update16`] /
//! [`update32`] patch a checksum after a field changed (RFC 1624 eqn. 3).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Folds a 64-bit accumulator of ones' complement partial sums to 16 bits.
#[inline]
fn fold64(mut acc: u64) -> u16 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// Ones' complement sum of `data` (not complemented), as a network-order
/// value. An odd trailing byte is padded with a zero byte (RFC 1071 §4.1).
#[inline]
pub fn data(data: &[u8]) -> u16 {
    // 64-bit words are added with wrapping; every wrap is a carry out of bit
    // 63, worth 2^64 = 1 (mod 2^16 - 1), so carries are counted and added
    // back after folding (end-around carry).
    let mut acc: u64 = 0;
    let mut carries: u64 = 0;
    let mut add = |w: u64| {
        let (a, c) = acc.overflowing_add(w);
        acc = a;
        carries += c as u64;
    };
    let mut chunks = data.chunks_exact(32);
    for c in &mut chunks {
        for i in 0..4 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&c[i * 8..i * 8 + 8]);
            add(u64::from_ne_bytes(b));
        }
    }
    let mut words = chunks.remainder().chunks_exact(8);
    for c in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        add(u64::from_ne_bytes(b));
    }
    let tail = words.remainder();
    // Pad the tail (< 8 bytes) with zeros to one more 64-bit word: zero bytes
    // add nothing and an odd last byte lands in the high half of its 16-bit
    // word in memory order, exactly as RFC 1071 pads it.
    if !tail.is_empty() {
        let mut b = [0u8; 8];
        b[..tail.len()].copy_from_slice(tail);
        add(u64::from_ne_bytes(b));
    }
    let folded = fold64(fold64(acc) as u64 + carries);
    u16::from_be_bytes(folded.to_ne_bytes())
}

/// Ones' complement addition of two partial sums.
#[inline]
pub fn combine(a: u16, b: u16) -> u16 {
    let s = a as u32 + b as u32;
    ((s & 0xffff) + (s >> 16)) as u16
}

/// Partial sum of the IPv4 pseudo-header (RFC 768) for `protocol` and
/// `length` (UDP header + payload).
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let acc = u16::from_be_bytes([s[0], s[1]]) as u64
        + u16::from_be_bytes([s[2], s[3]]) as u64
        + u16::from_be_bytes([d[0], d[1]]) as u64
        + u16::from_be_bytes([d[2], d[3]]) as u64
        + protocol as u64
        + length as u64;
    fold64(acc)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1) for `next_header`
/// and the upper-layer packet `length`.
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let mut acc: u64 = 0;
    for seg in src.segments().iter().chain(dst.segments().iter()) {
        acc += *seg as u64;
    }
    acc += (length >> 16) as u64 + (length & 0xffff) as u64 + next_header as u64;
    fold64(acc)
}

/// The checksum field value for a header whose sum (with the checksum field
/// zeroed) is `sum`.
#[inline]
pub fn finish(sum: u16) -> u16 {
    !sum
}

/// Updates checksum `hc` after a 16-bit field changed from `old` to `new`
/// (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
#[inline]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    !combine(combine(!hc, !old), new)
}

/// Updates checksum `hc` after a 32-bit field (e.g. an IPv4 address) changed.
#[inline]
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let hc = update16(hc, (old >> 16) as u16, (new >> 16) as u16);
    update16(hc, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §4.1 done the slow, obvious way.
    fn naive(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            sum += u16::from_be_bytes([data[i], data[i + 1]]) as u32;
            i += 2;
        }
        if i < data.len() {
            sum += (data[i] as u32) << 8;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn matches_naive_for_all_lengths_and_offsets() {
        let mut x: u32 = 0x1234_5678;
        let buf: Vec<u8> = (0..2100)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for off in 0..9 {
            for len in 0..300 {
                assert_eq!(
                    data(&buf[off..off + len]),
                    naive(&buf[off..off + len]),
                    "{off} {len}"
                );
            }
        }
        assert_eq!(data(&buf[1..2051]), naive(&buf[1..2051]));
        // All-ones data stresses the carries.
        let ff = [0xffu8; 1501];
        assert_eq!(data(&ff), naive(&ff));
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut hdr = [
            0x45u8, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = finish(data(&hdr));
        assert_eq!(c, 0xb861);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        // Decrement TTL 0x40 -> 0x3f: the 16-bit word at 8 is TTL|proto.
        let c2 = update16(c, 0x4011, 0x3f11);
        hdr[8] = 0x3f;
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(c2, finish(data(&hdr)));
        // Rewrite the destination address.
        let c3 = update32(c2, 0xc0a8_00c7, 0xc612_0002);
        hdr[16..20].copy_from_slice(&[0xc6, 0x12, 0x00, 0x02]);
        assert_eq!(c3, finish(data(&hdr)));
    }
}
