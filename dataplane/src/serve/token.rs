//! Our connection IDs and Retry tokens (RFC 9000 §8.1.2).
//!
//! A connection ID is [`CID_LEN`] bytes: byte 0 is the owning worker's
//! index (QUIC-LB style, so any packet routes to its worker in O(1)), the
//! rest is random.
//!
//! Retry tokens are the engine's (`tarte::token`): a MAC binds the
//! client's address, the Retry SCID it must now use as its DCID, and the
//! original DCID the transport parameters need (RFC 9000 §7.3).

use std::net::SocketAddr;
use std::time::SystemTime;

/// Length of the connection IDs we issue.
pub const CID_LEN: usize = 16;

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
#[derive(Clone, Debug)]
pub struct TokenKey {
    inner: tarte::token::TokenKey,
}

impl TokenKey {
    /// A fresh random key.
    pub fn random() -> Result<TokenKey, tarte::token::TokenError> {
        Ok(TokenKey {
            inner: tarte::token::TokenKey::random()?,
        })
    }

    /// Mints the token of a Retry sent to `peer` from `retry_scid`, in
    /// answer to an Initial whose DCID was `odcid`.
    pub fn mint(
        &self,
        odcid: &[u8],
        retry_scid: &[u8],
        peer: SocketAddr,
        now: SystemTime,
    ) -> Option<Vec<u8>> {
        self.inner.mint_retry(odcid, retry_scid, peer, now).ok()
    }

    /// The original DCID of a valid token from `peer` sent to `dcid`.
    pub fn validate(
        &self,
        token: &[u8],
        dcid: &[u8],
        peer: SocketAddr,
        now: SystemTime,
    ) -> Option<Vec<u8>> {
        self.inner
            .validate_retry(token, dcid, peer, now)
            .ok()
            .map(|c| c.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let later = now + tarte::token::RETRY_TOKEN_LIFETIME + Duration::from_secs(2);
        assert!(k.validate(&t, b"retryscid", peer, later).is_none());
        assert!(TokenKey::random()
            .unwrap()
            .validate(&t, b"retryscid", peer, now)
            .is_none());
        assert!(k.validate(&t[..5], b"retryscid", peer, now).is_none());
    }
}
