//! Our connection IDs and Retry tokens (RFC 9000 §8.1.2).
//!
//! A connection ID is [`CID_LEN`] bytes: byte 0 is the owning worker's
//! index (QUIC-LB style, so any packet routes to its worker in O(1)), the
//! rest is random.
//!
//! Retry tokens are the engine's (`tarte::token`): a MAC binds the
//! client's address, the Retry SCID it must now use as its DCID, and the
//! original DCID the transport parameters need (RFC 9000 §7.3).

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
pub use tarte::token::TokenKey;

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
}
