//! Address-validation tokens for Retry (RFC 9000 §8.1.2) and the
//! deterministic connection IDs of the server.
//!
//! A token is `issued (u64 BE, seconds since the Unix epoch) || len(odcid)
//! || odcid || HMAC-SHA256(key, label || issued || odcid || retry SCID ||
//! client IP || client port)`. It proves that the client received our
//! Retry at its address (the MAC binds the address), tells the server the
//! original DCID it needs for the transport parameters (RFC 9000 §7.3), and
//! binds the Retry's SCID, which the client must use as its new DCID.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::CID_LEN;

const LABEL: &[u8] = b"tarte hq retry token v1";
const MAC_LEN: usize = 32;

/// How long a Retry token stays valid: a client answers a Retry within one
/// round trip, so a few seconds cover any sane path.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(10);

/// A server secret for Retry tokens and connection IDs.
pub struct TokenKey {
    key: [u8; 32],
}

impl TokenKey {
    /// A fresh random key.
    pub fn random() -> anyhow::Result<TokenKey> {
        let mut key = [0u8; 32];
        boring::rand::rand_bytes(&mut key)?;
        Ok(TokenKey { key })
    }

    fn mac(&self, parts: &[&[u8]]) -> anyhow::Result<[u8; MAC_LEN]> {
        let data: Vec<u8> = parts.concat();
        Ok(boring::hash::hmac_sha256(&self.key, &data)?)
    }

    /// The server's connection ID for a client's first DCID: the same for
    /// every Initial of one attempt, so that a ClientHello spread over
    /// several Initial packets reaches one connection.
    pub fn derive_cid(&self, client_dcid: &[u8]) -> anyhow::Result<[u8; CID_LEN]> {
        let m = self.mac(&[b"cid", client_dcid])?;
        let mut cid = [0u8; CID_LEN];
        cid.copy_from_slice(&m[..CID_LEN]);
        Ok(cid)
    }

    /// Mints a token for a Retry sent to `peer` from `retry_scid`, in
    /// answer to an Initial whose DCID was `odcid`.
    pub fn mint(
        &self,
        odcid: &[u8],
        retry_scid: &[u8],
        peer: SocketAddr,
        now: SystemTime,
    ) -> anyhow::Result<Vec<u8>> {
        let issued = now.duration_since(UNIX_EPOCH)?.as_secs().to_be_bytes();
        let odcid_len = [u8::try_from(odcid.len())?];
        let mac = self.mac(&[
            LABEL,
            &issued,
            &odcid_len,
            odcid,
            retry_scid,
            &addr_bytes(peer),
        ])?;
        Ok([&issued[..], &odcid_len, odcid, &mac].concat())
    }

    /// Checks a token that came from `peer` in an Initial with DCID `dcid`
    /// (our Retry's SCID). Returns the original DCID, or `None` when the
    /// token is forged, expired, or from another address.
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
        let expect = self
            .mac(&[
                LABEL,
                &issued,
                &[odcid_len as u8],
                odcid,
                dcid,
                &addr_bytes(peer),
            ])
            .ok()?;
        if !boring::memcmp::eq(&expect, mac) {
            return None;
        }
        let issued = UNIX_EPOCH + Duration::from_secs(u64::from_be_bytes(issued));
        // A token from the future (clock step) or older than its lifetime
        // is refused.
        let age = now.duration_since(issued).ok()?;
        (age <= TOKEN_LIFETIME).then(|| odcid.to_vec())
    }
}

fn addr_bytes(a: SocketAddr) -> Vec<u8> {
    let mut v = match a.ip() {
        std::net::IpAddr::V4(ip) => ip.to_ipv6_mapped().octets().to_vec(),
        std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    v.extend_from_slice(&a.port().to_be_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Another address, another DCID, a flipped bit, an old token, and
        // another server key are all refused.
        let other: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        assert!(k.validate(&t, b"retryscid", other, now).is_none());
        assert!(k.validate(&t, b"retryscid2", peer, now).is_none());
        let mut bad = t.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(k.validate(&bad, b"retryscid", peer, now).is_none());
        let later = now + TOKEN_LIFETIME + Duration::from_secs(2);
        assert!(k.validate(&t, b"retryscid", peer, later).is_none());
        let k2 = TokenKey::random().unwrap();
        assert!(k2.validate(&t, b"retryscid", peer, now).is_none());
        assert!(k.validate(&t[..5], b"retryscid", peer, now).is_none());
    }
}
