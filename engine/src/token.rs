//! Address-validation tokens for Retry (RFC 9000 §8.1.2).
//!
//! A token is `issued (u64 BE, seconds since the Unix epoch) || len(odcid)
//! || odcid || HMAC-SHA256(key, label || issued || len(odcid) || odcid ||
//! retry SCID || client IP (v6 or v4-mapped) || client port)`. It proves
//! the client received our Retry at its address (the MAC binds the
//! address), hands back the original DCID the server needs for its
//! transport parameters (RFC 9000 §7.3), and binds the Retry's SCID, which
//! the client must use as its new DCID. Stateless: any worker holding the
//! key can check it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cid::{ConnectionId, MAX_CONN_ID_LEN};

const LABEL: &[u8] = b"tarte retry token v1";
/// Domain separation of stateless reset tokens from the other derivations.
const RESET_LABEL: &[u8] = b"tarte stateless reset v1";
const TICKET_LABEL: &[u8] = b"tarte session ticket key v1";
const MAC_LEN: usize = 32;

/// How long a Retry token stays valid: a client answers a Retry within one
/// round trip, so a few seconds cover any sane path.
pub const RETRY_TOKEN_LIFETIME: Duration = Duration::from_secs(10);

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token of ours (wrong length or layout).
    Malformed,
    /// The MAC does not match: forged, another key, another client
    /// address, or another Retry SCID.
    Invalid,
    /// Older than the lifetime (or from the future).
    Expired,
    /// The key could not be made or used.
    Crypto,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "malformed token",
            TokenError::Invalid => "token does not authenticate",
            TokenError::Expired => "token expired",
            TokenError::Crypto => "token crypto failure",
        })
    }
}

impl std::error::Error for TokenError {}

/// A server secret for Retry tokens.
#[derive(Clone)]
pub struct TokenKey {
    key: [u8; 32],
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.write_str("TokenKey(..)")
    }
}

fn addr_bytes(a: SocketAddr) -> [u8; 18] {
    let ip = match a.ip() {
        IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
        IpAddr::V6(ip) => ip.octets(),
    };
    let mut out = [0u8; 18];
    out[..16].copy_from_slice(&ip);
    out[16..].copy_from_slice(&a.port().to_be_bytes());
    out
}

/// A 32-byte secret written as 64 hex digits (surrounding whitespace
/// allowed), as servers keep it in a file so that restarts reuse it;
/// `None` for anything else.
pub fn secret_from_hex(text: &str) -> Option<[u8; 32]> {
    let hex = text.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (b, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *b = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

impl TokenKey {
    /// A fresh random key.
    pub fn random() -> Result<TokenKey, TokenError> {
        let mut key = [0u8; 32];
        boring::rand::rand_bytes(&mut key).map_err(|_| TokenError::Crypto)?;
        Ok(TokenKey { key })
    }

    /// A key from a secret shared by several servers (so any of them can
    /// validate the others' tokens).
    pub fn from_secret(key: [u8; 32]) -> TokenKey {
        TokenKey { key }
    }

    /// A keyed 32-byte digest of `parts` under this key (for deriving
    /// connection IDs and the like from the same secret).
    pub fn derive(&self, parts: &[&[u8]]) -> Result<[u8; MAC_LEN], TokenError> {
        boring::hash::hmac_sha256(&self.key, &parts.concat()).map_err(|_| TokenError::Crypto)
    }

    /// The stateless reset token of connection ID `cid` under this key
    /// (RFC 9000 §10.3.2: HMAC(static_key, connection_id) truncated to 16
    /// bytes), so that a server that lost a connection's state can still
    /// reset it. Use it for every connection ID the server issues (the
    /// first through [`crate::Config::set_stateless_reset_token`], later
    /// ones through `new_scid`), and never reuse a connection ID under the
    /// same key.
    pub fn reset_token(&self, cid: &[u8]) -> Result<u128, TokenError> {
        let d = self.derive(&[RESET_LABEL, cid])?;
        let mut t = [0u8; 16];
        t.copy_from_slice(&d[..16]);
        Ok(u128::from_be_bytes(t))
    }

    /// The key of the server's TLS session tickets under this secret
    /// (for [`crate::Config::set_ticket_key`]): servers sharing the secret
    /// resume each other's sessions, across restarts too.
    pub fn ticket_key(&self) -> Result<[u8; 48], TokenError> {
        let name = self.derive(&[TICKET_LABEL, b"name"])?;
        let keys = self.derive(&[TICKET_LABEL, b"keys"])?;
        let mut out = [0u8; 48];
        out[..16].copy_from_slice(&name[..16]);
        out[16..].copy_from_slice(&keys);
        Ok(out)
    }

    fn mac(
        &self,
        issued: &[u8; 8],
        odcid: &[u8],
        scid: &[u8],
        peer: SocketAddr,
    ) -> Result<[u8; MAC_LEN], TokenError> {
        let odcid_len = u8::try_from(odcid.len()).map_err(|_| TokenError::Malformed)?;
        self.derive(&[LABEL, issued, &[odcid_len], odcid, scid, &addr_bytes(peer)])
    }

    /// Mints the token of a Retry sent to `peer` from `retry_scid`, in
    /// answer to an Initial whose DCID was `odcid`.
    pub fn mint_retry(
        &self,
        odcid: &[u8],
        retry_scid: &[u8],
        peer: SocketAddr,
        now: SystemTime,
    ) -> Result<Vec<u8>, TokenError> {
        if odcid.len() > MAX_CONN_ID_LEN {
            return Err(TokenError::Malformed);
        }
        let issued = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| TokenError::Expired)?
            .as_secs()
            .to_be_bytes();
        let mac = self.mac(&issued, odcid, retry_scid, peer)?;
        let mut t = Vec::with_capacity(8 + 1 + odcid.len() + MAC_LEN);
        t.extend_from_slice(&issued);
        t.push(odcid.len() as u8);
        t.extend_from_slice(odcid);
        t.extend_from_slice(&mac);
        Ok(t)
    }

    /// Checks a token from an Initial sent by `peer` to `dcid` (which must
    /// be the Retry's SCID) and returns the original DCID it carries.
    pub fn validate_retry(
        &self,
        token: &[u8],
        dcid: &[u8],
        peer: SocketAddr,
        now: SystemTime,
    ) -> Result<ConnectionId<'static>, TokenError> {
        let issued: [u8; 8] = token
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(TokenError::Malformed)?;
        let odcid_len = usize::from(*token.get(8).ok_or(TokenError::Malformed)?);
        let odcid = token.get(9..9 + odcid_len).ok_or(TokenError::Malformed)?;
        let mac = token.get(9 + odcid_len..).ok_or(TokenError::Malformed)?;
        if mac.len() != MAC_LEN || odcid_len > MAX_CONN_ID_LEN {
            return Err(TokenError::Malformed);
        }
        let expect = self.mac(&issued, odcid, dcid, peer)?;
        // Constant time: the MAC is a secret-dependent value.
        if !boring::memcmp::eq(&expect, mac) {
            return Err(TokenError::Invalid);
        }
        let issued = UNIX_EPOCH + Duration::from_secs(u64::from_be_bytes(issued));
        match now.duration_since(issued) {
            Ok(age) if age <= RETRY_TOKEN_LIFETIME => Ok(ConnectionId::from_vec(odcid.to_vec())),
            _ => Err(TokenError::Expired),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_from_64_hex_digits_only() {
        let hex = format!("{}\n", "0f".repeat(32));
        assert_eq!(secret_from_hex(&hex), Some([0x0f; 32]));
        assert_eq!(secret_from_hex(&"AB".repeat(32)), Some([0xab; 32]));
        assert_eq!(secret_from_hex(&"0f".repeat(31)), None);
        assert_eq!(secret_from_hex(&"0f".repeat(33)), None);
        assert_eq!(secret_from_hex(&format!("{}zz", "0f".repeat(31))), None);
        assert_eq!(secret_from_hex(&"é".repeat(32)), None);
    }

    // RFC 9000 §10.3.2: a function of the static key and the connection ID,
    // the same after a restart, different for another ID or key.
    #[test]
    fn reset_tokens_follow_key_and_cid() {
        let k = TokenKey::from_secret([1; 32]);
        let t = k.reset_token(b"\x01\x02\x03\x04").unwrap();
        assert_eq!(
            TokenKey::from_secret([1; 32])
                .reset_token(b"\x01\x02\x03\x04")
                .unwrap(),
            t
        );
        assert_ne!(k.reset_token(b"\x01\x02\x03\x05").unwrap(), t);
        assert_ne!(
            TokenKey::from_secret([2; 32])
                .reset_token(b"\x01\x02\x03\x04")
                .unwrap(),
            t
        );
        // Not the Retry-token or CID derivations of the same key.
        assert_ne!(
            &k.derive(&[b"\x01\x02\x03\x04"]).unwrap()[..16],
            &t.to_be_bytes()
        );
    }

    #[test]
    fn token_round_trip_and_rejections() {
        let k = TokenKey::random().unwrap();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let now = SystemTime::now();
        let t = k.mint_retry(b"original", b"retryscid", peer, now).unwrap();
        assert_eq!(
            &k.validate_retry(&t, b"retryscid", peer, now).unwrap()[..],
            b"original"
        );
        let other: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        assert_eq!(
            k.validate_retry(&t, b"retryscid", other, now),
            Err(TokenError::Invalid)
        );
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(
            k.validate_retry(&t, b"retryscid", v6, now),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            k.validate_retry(&t, b"retryscid2", peer, now),
            Err(TokenError::Invalid)
        );
        let mut bad = t.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            k.validate_retry(&bad, b"retryscid", peer, now),
            Err(TokenError::Invalid)
        );
        let later = now + RETRY_TOKEN_LIFETIME + Duration::from_secs(2);
        assert_eq!(
            k.validate_retry(&t, b"retryscid", peer, later),
            Err(TokenError::Expired)
        );
        assert_eq!(
            TokenKey::random()
                .unwrap()
                .validate_retry(&t, b"retryscid", peer, now),
            Err(TokenError::Invalid)
        );
        for cut in 0..t.len() {
            assert!(k
                .validate_retry(&t[..cut], b"retryscid", peer, now)
                .is_err());
        }
        assert_eq!(
            k.mint_retry(&[0; 21], b"s", peer, now),
            Err(TokenError::Malformed)
        );
        // A shared secret validates across instances.
        let a = TokenKey::from_secret([7; 32]);
        let b = TokenKey::from_secret([7; 32]);
        let t = a.mint_retry(b"o", b"s", peer, now).unwrap();
        assert!(b.validate_retry(&t, b"s", peer, now).is_ok());
        assert_eq!(format!("{a:?}"), "TokenKey(..)");
    }
}
