//! The server's Retry tokens and deterministic connection IDs, over the
//! engine's stateless tokens (`tarte::token`): a token binds the client
//! address, the original DCID and the Retry's SCID, and expires after
//! `tarte::token::RETRY_TOKEN_LIFETIME`.

use std::net::SocketAddr;
use std::time::SystemTime;

use super::CID_LEN;

/// A server secret for Retry tokens and connection IDs.
pub struct TokenKey {
    inner: tarte::token::TokenKey,
}

impl TokenKey {
    /// A fresh random key.
    pub fn random() -> anyhow::Result<TokenKey> {
        Ok(TokenKey {
            inner: tarte::token::TokenKey::random()?,
        })
    }

    /// A key from a 32-byte secret, the same across restarts (so that the
    /// server can reset the connections it lost: RFC 9000 §10.3).
    pub fn from_secret(secret: [u8; 32]) -> TokenKey {
        TokenKey {
            inner: tarte::token::TokenKey::from_secret(secret),
        }
    }

    /// The stateless reset token of one of our connection IDs.
    pub fn reset_token(&self, cid: &[u8]) -> anyhow::Result<u128> {
        Ok(self.inner.reset_token(cid)?)
    }

    /// The server's connection ID for a client's first DCID: the same for
    /// every Initial of one attempt, so that a ClientHello spread over
    /// several Initial packets reaches one connection.
    pub fn derive_cid(&self, client_dcid: &[u8]) -> anyhow::Result<[u8; CID_LEN]> {
        let m = self.inner.derive(&[b"cid", client_dcid])?;
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
        Ok(self.inner.mint_retry(odcid, retry_scid, peer, now)?)
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
        self.inner
            .validate_retry(token, dcid, peer, now)
            .ok()
            .map(|c| c.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_cids() {
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
        // The same client DCID always maps to the same server CID.
        assert_eq!(k.derive_cid(b"abc").unwrap(), k.derive_cid(b"abc").unwrap());
        assert_ne!(k.derive_cid(b"abc").unwrap(), k.derive_cid(b"abd").unwrap());
    }
}
