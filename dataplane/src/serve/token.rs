//! Our connection IDs and Retry tokens (RFC 9000 §8.1.2).
//!
//! A connection ID is [`CID_LEN`] bytes: byte 0 is the owning worker's
//! index (QUIC-LB style, so any packet routes to its worker in O(1)), the
//! rest is random.
//!
//! A Retry token is `issued (u64 BE, Unix seconds) || len(odcid) || odcid ||
//! HMAC-SHA256(key, label || issued || len || odcid || retry SCID || client
//! address)`: the MAC binds the client's address (it proves the client got
//! our Retry there), the Retry SCID it must now use as its DCID, and carries
//! the original DCID the transport parameters need (RFC 9000 §7.3).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of the connection IDs we issue.
pub const CID_LEN: usize = 16;
/// How long a Retry token is accepted: the client answers within a round
/// trip, so a few seconds cover any sane path.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(10);

const LABEL: &[u8] = b"tarte serve retry v1";
const MAC_LEN: usize = 32;

/// The worker that owns a connection ID we issued.
pub fn cid_worker(cid: &[u8]) -> Option<usize> {
    (cid.len() == CID_LEN).then(|| usize::from(cid[0]))
}

/// A fresh connection ID owned by `worker` (< 256).
pub fn new_cid(worker: usize) -> Result<[u8; CID_LEN], boring::error::ErrorStack> {
    let mut cid = [0u8; CID_LEN];
    boring::rand::rand_bytes(&mut cid)?;
    cid[0] = worker as u8;
    Ok(cid)
}

/// The server's secret for Retry tokens, shared by all workers.
#[derive(Clone)]
pub struct TokenKey {
    key: [u8; 32],
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

fn addr_bytes(a: SocketAddr) -> [u8; 18] {
    let ip = match a.ip() {
        std::net::IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(ip) => ip.octets(),
    };
    let mut out = [0u8; 18];
    out[..16].copy_from_slice(&ip);
    out[16..].copy_from_slice(&a.port().to_be_bytes());
    out
}

impl TokenKey {
    /// A fresh random key.
    pub fn random() -> Result<TokenKey, boring::error::ErrorStack> {
        let mut key = [0u8; 32];
        boring::rand::rand_bytes(&mut key)?;
        Ok(TokenKey { key })
    }

    fn mac(
        &self,
        issued: &[u8; 8],
        odcid: &[u8],
        scid: &[u8],
        peer: SocketAddr,
    ) -> Option<[u8; MAC_LEN]> {
        let odcid_len = u8::try_from(odcid.len()).ok()?;
        let mut data = Vec::with_capacity(LABEL.len() + 8 + 1 + odcid.len() + scid.len() + 18);
        data.extend_from_slice(LABEL);
        data.extend_from_slice(issued);
        data.push(odcid_len);
        data.extend_from_slice(odcid);
        data.extend_from_slice(scid);
        data.extend_from_slice(&addr_bytes(peer));
        boring::hash::hmac_sha256(&self.key, &data).ok()
    }

    /// A token for a Retry sent to `peer` from `retry_scid` in answer to an
    /// Initial whose DCID was `odcid`; `None` if `odcid` is over 255 bytes.
    pub fn mint(
        &self,
        odcid: &[u8],
        retry_scid: &[u8],
        peer: SocketAddr,
        now: SystemTime,
    ) -> Option<Vec<u8>> {
        let issued = now.duration_since(UNIX_EPOCH).ok()?.as_secs().to_be_bytes();
        let mac = self.mac(&issued, odcid, retry_scid, peer)?;
        let mut t = Vec::with_capacity(8 + 1 + odcid.len() + MAC_LEN);
        t.extend_from_slice(&issued);
        t.push(odcid.len() as u8);
        t.extend_from_slice(odcid);
        t.extend_from_slice(&mac);
        Some(t)
    }

    /// Checks a token that came from `peer` in an Initial with DCID `dcid`
    /// (our Retry's SCID). Returns the original DCID, or `None` when the
    /// token is forged, expired, or minted for another address or SCID.
    pub fn validate(
        &self,
        token: &[u8],
        dcid: &[u8],
        peer: SocketAddr,
        now: SystemTime,
    ) -> Option<Vec<u8>> {
        let issued: [u8; 8] = token.get(..8)?.try_into().ok()?;
        let odcid_len = usize::from(*token.get(8)?);
        let odcid = token.get(9..9 + odcid_len)?;
        let mac = token.get(9 + odcid_len..)?;
        if mac.len() != MAC_LEN {
            return None;
        }
        let expect = self.mac(&issued, odcid, dcid, peer)?;
        if !boring::memcmp::eq(&expect, mac) {
            return None;
        }
        let issued = UNIX_EPOCH + Duration::from_secs(u64::from_be_bytes(issued));
        // A token from the future (clock step) or past its lifetime is refused.
        let age = now.duration_since(issued).ok()?;
        (age <= TOKEN_LIFETIME).then(|| odcid.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cids_carry_the_worker() {
        let c = new_cid(7).unwrap();
        assert_eq!(cid_worker(&c), Some(7));
        assert_ne!(new_cid(7).unwrap(), c);
        assert_eq!(cid_worker(&c[..8]), None);
    }

    #[test]
    fn token_round_trip_and_rejections() {
        let k = TokenKey::random().unwrap();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let now = SystemTime::now();
        let t = k.mint(b"original", b"retryscid", peer, now).unwrap();
        assert_eq!(
            k.validate(&t, b"retryscid", peer, now).as_deref(),
            Some(&b"original"[..])
        );
        let other: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        assert!(k.validate(&t, b"retryscid", other, now).is_none());
        assert!(k.validate(&t, b"retryscid2", peer, now).is_none());
        let mut bad = t.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(k.validate(&bad, b"retryscid", peer, now).is_none());
        let later = now + TOKEN_LIFETIME + Duration::from_secs(2);
        assert!(k.validate(&t, b"retryscid", peer, later).is_none());
        assert!(TokenKey::random()
            .unwrap()
            .validate(&t, b"retryscid", peer, now)
            .is_none());
        assert!(k.validate(&t[..5], b"retryscid", peer, now).is_none());
    }
}
