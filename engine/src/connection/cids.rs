//! Connection ID management (RFC 9000 §5.1): the IDs we issue and the ones
//! the peer issued to us, with sequence numbers, retirement and stateless
//! reset tokens.

use std::collections::VecDeque;

use crate::cid::ConnectionId;
use crate::error::{Error, Result};

/// A connection ID with its sequence number and reset token.
#[derive(Clone, Debug)]
pub(crate) struct CidEntry {
    pub(crate) cid: ConnectionId<'static>,
    pub(crate) seq: u64,
    pub(crate) reset_token: Option<u128>,
}

/// Our IDs and the peer's.
pub(crate) struct Cids {
    /// IDs we issued, oldest first.
    pub(crate) scids: VecDeque<CidEntry>,
    /// Next sequence number we issue.
    next_scid_seq: u64,
    /// Our IDs the peer retired, for the application to unroute.
    pub(crate) retired_scids: VecDeque<ConnectionId<'static>>,
    /// Our IDs not yet announced in NEW_CONNECTION_ID.
    pub(crate) scids_to_advertise: VecDeque<u64>,
    /// Lowest sequence number of ours still valid (retire_prior_to we send).
    pub(crate) retire_prior_to: u64,

    /// IDs the peer issued, oldest first; the first is in use.
    pub(crate) dcids: VecDeque<CidEntry>,
    /// Peer sequence numbers to retire with RETIRE_CONNECTION_ID.
    pub(crate) dcids_to_retire: VecDeque<u64>,
    /// Largest retire_prior_to the peer sent.
    peer_retire_prior_to: u64,
    /// How many peer IDs we store (our active_connection_id_limit).
    local_limit: usize,
    /// How many of our IDs the peer stores.
    pub(crate) peer_limit: usize,
}

impl Cids {
    pub(crate) fn new(
        scid: ConnectionId<'static>,
        dcid: ConnectionId<'static>,
        local_limit: u64,
        reset_token: Option<u128>,
    ) -> Self {
        let mut scids = VecDeque::new();
        scids.push_back(CidEntry {
            cid: scid,
            seq: 0,
            reset_token,
        });
        let mut dcids = VecDeque::new();
        dcids.push_back(CidEntry {
            cid: dcid,
            seq: 0,
            reset_token: None,
        });
        Cids {
            scids,
            next_scid_seq: 1,
            retired_scids: VecDeque::new(),
            scids_to_advertise: VecDeque::new(),
            retire_prior_to: 0,
            dcids,
            dcids_to_retire: VecDeque::new(),
            peer_retire_prior_to: 0,
            local_limit: local_limit.clamp(2, 16) as usize,
            peer_limit: 2,
        }
    }

    /// The peer's ID we send to.
    pub(crate) fn dcid(&self) -> &ConnectionId<'static> {
        // Invariant: `dcids` is never empty (we only replace, never drain).
        &self.dcids[0].cid
    }

    /// Our first ID.
    pub(crate) fn scid(&self) -> &ConnectionId<'static> {
        &self.scids[0].cid
    }

    /// Replaces the peer's initial ID (client: the server's SCID from its
    /// first packet; after Retry: the Retry's SCID).
    pub(crate) fn set_initial_dcid(
        &mut self,
        cid: ConnectionId<'static>,
        reset_token: Option<u128>,
    ) {
        self.dcids[0] = CidEntry {
            cid,
            seq: 0,
            reset_token,
        };
    }

    /// Sets the reset token of the peer's initial ID (from the server's
    /// transport parameters).
    pub(crate) fn set_initial_dcid_reset_token(&mut self, token: Option<u128>) {
        if let Some(e) = self.dcids.iter_mut().find(|e| e.seq == 0) {
            e.reset_token = token;
        }
    }

    /// Issues a new ID of ours (quiche's `new_scid`). Returns its sequence
    /// number.
    pub(crate) fn new_scid(
        &mut self,
        cid: ConnectionId<'static>,
        reset_token: u128,
        retire_if_needed: bool,
    ) -> Result<u64> {
        if let Some(e) = self.scids.iter().find(|e| e.cid == cid) {
            return Ok(e.seq);
        }
        if self.scids.len() >= self.peer_limit {
            if !retire_if_needed {
                return Err(Error::IdLimit);
            }
            // Ask the peer to retire the oldest (RFC 9000 §5.1.2).
            self.retire_prior_to = self.scids[1.min(self.scids.len() - 1)]
                .seq
                .max(self.retire_prior_to);
        }
        let seq = self.next_scid_seq;
        self.next_scid_seq += 1;
        self.scids.push_back(CidEntry {
            cid,
            seq,
            reset_token: Some(reset_token),
        });
        self.scids_to_advertise.push_back(seq);
        Ok(seq)
    }

    /// How many more IDs of ours the peer would accept.
    pub(crate) fn scids_left(&self) -> usize {
        self.peer_limit.saturating_sub(self.scids.len())
    }

    /// The peer retired our ID `seq` (RFC 9000 §19.16). `recv_dcid` is the
    /// DCID of the packet carrying the frame.
    pub(crate) fn on_retire(&mut self, seq: u64, recv_dcid: &[u8]) -> Result<()> {
        // "Receipt of a RETIRE_CONNECTION_ID frame containing a sequence
        // number greater than any previously sent to the peer MUST be
        // treated as a connection error of type PROTOCOL_VIOLATION."
        if seq >= self.next_scid_seq {
            return Err(Error::InvalidPacket);
        }
        let Some(pos) = self.scids.iter().position(|e| e.seq == seq) else {
            // Already retired: nothing to do.
            return Ok(());
        };
        // "The sequence number specified in a RETIRE_CONNECTION_ID frame
        // MUST NOT refer to the Destination Connection ID field of the
        // packet in which the frame is contained. The peer MAY treat this
        // as a connection error of type PROTOCOL_VIOLATION."
        if &self.scids[pos].cid[..] == recv_dcid {
            return Err(Error::InvalidPacket);
        }
        if self.scids.len() == 1 {
            return Err(Error::InvalidPacket);
        }
        if let Some(e) = self.scids.remove(pos) {
            self.retired_scids.push_back(e.cid);
        }
        self.scids_to_advertise.retain(|s| *s != seq);
        Ok(())
    }

    /// The peer issued an ID (RFC 9000 §19.15).
    pub(crate) fn on_new_dcid(
        &mut self,
        cid: &[u8],
        seq: u64,
        retire_prior_to: u64,
        reset_token: u128,
    ) -> Result<()> {
        // A zero-length DCID cannot be changed (RFC 9000 §19.15: "An
        // endpoint that is sending packets with a zero-length Destination
        // Connection ID MUST treat receipt of a NEW_CONNECTION_ID frame as
        // a connection error of type PROTOCOL_VIOLATION").
        if self.dcid().is_empty() {
            return Err(Error::InvalidPacket);
        }
        if let Some(e) = self.dcids.iter().find(|e| e.seq == seq) {
            // A repeat must be identical (RFC 9000 §19.15).
            if &e.cid[..] != cid || e.reset_token.is_some_and(|t| t != reset_token) {
                return Err(Error::InvalidPacket);
            }
            return Ok(());
        }
        // "a sequence number smaller than the Retire Prior To field of a
        // previously received NEW_CONNECTION_ID frame ... MUST send a
        // corresponding RETIRE_CONNECTION_ID frame".
        if seq < self.peer_retire_prior_to {
            self.dcids_to_retire.push_back(seq);
            return Ok(());
        }
        if retire_prior_to > self.peer_retire_prior_to {
            self.peer_retire_prior_to = retire_prior_to;
            let mut kept = VecDeque::new();
            for e in self.dcids.drain(..) {
                if e.seq < retire_prior_to {
                    self.dcids_to_retire.push_back(e.seq);
                } else {
                    kept.push_back(e);
                }
            }
            self.dcids = kept;
        }
        self.dcids.push_back(CidEntry {
            cid: ConnectionId::from_vec(cid.to_vec()),
            seq,
            reset_token: Some(reset_token),
        });
        // RFC 9000 §5.1.1: "After processing a NEW_CONNECTION_ID frame and
        // adding and retiring active connection IDs, if the number of active
        // connection IDs exceeds the value advertised in its
        // active_connection_id_limit transport parameter, an endpoint MUST
        // close the connection with an error of type
        // CONNECTION_ID_LIMIT_ERROR."
        if self.dcids.len() > self.local_limit {
            return Err(Error::IdLimit);
        }
        // Bound what we keep queued for retirement.
        if self.dcids_to_retire.len() > 4 * self.local_limit {
            return Err(Error::IdLimit);
        }
        Ok(())
    }

    /// Moves to the peer's next ID, queueing the one in use for retirement
    /// (a new path needs an unused ID, RFC 9000 §9.5). Returns the new
    /// ID's sequence number; None when the peer issued no spare or uses
    /// zero-length IDs (nothing to change).
    pub(crate) fn switch_dcid(&mut self) -> Option<u64> {
        if self.dcids.len() < 2 || self.dcid().is_empty() {
            return None;
        }
        let old = self.dcids.pop_front()?;
        self.dcids_to_retire.push_back(old.seq);
        Some(self.dcids[0].seq)
    }

    /// Takes one of the peer's unused IDs for a single use on another path
    /// (a PATH_RESPONSE there, RFC 9000 §8.2.2), queueing its retirement:
    /// no other path may use it after (§9.5).
    pub(crate) fn take_spare_dcid(&mut self) -> Option<ConnectionId<'static>> {
        if self.dcids.len() < 2 || self.dcid().is_empty() {
            return None;
        }
        let e = self.dcids.remove(1)?;
        self.dcids_to_retire.push_back(e.seq);
        Some(e.cid)
    }

    /// Takes one of the peer's unused IDs out of the pool for a probed
    /// path (its owner retires it or installs it with `install_dcid`).
    pub(crate) fn reserve_spare_dcid(&mut self) -> Option<CidEntry> {
        if self.dcids.len() < 2 || self.dcid().is_empty() {
            return None;
        }
        self.dcids.remove(1)
    }

    /// Makes `e` (a reserved ID) the one in use, queueing the current one
    /// for retirement.
    pub(crate) fn install_dcid(&mut self, e: CidEntry) {
        if let Some(old) = self.dcids.pop_front() {
            self.dcids_to_retire.push_back(old.seq);
        }
        self.dcids.push_front(e);
    }

    /// The largest Retire Prior To the peer sent.
    pub(crate) fn peer_retire_prior_to(&self) -> u64 {
        self.peer_retire_prior_to
    }

    /// How many of the peer's IDs are unused (beyond the one in use).
    pub(crate) fn spare_dcids(&self) -> usize {
        if self.dcid().is_empty() {
            return 0;
        }
        self.dcids.len() - 1
    }

    /// The sequence number of the peer's ID in use.
    pub(crate) fn dcid_seq(&self) -> u64 {
        self.dcids[0].seq
    }

    /// Whether `token` is the stateless reset token of one of the peer's
    /// IDs (RFC 9000 §10.3.1).
    pub(crate) fn is_stateless_reset(&self, token: &[u8]) -> bool {
        let Ok(t) = <[u8; 16]>::try_from(token) else {
            return false;
        };
        let t = u128::from_be_bytes(t);
        // Constant-time-ish: compare against every token without early
        // exit on the bytes themselves.
        self.dcids
            .iter()
            .filter_map(|e| e.reset_token)
            .fold(false, |acc, x| acc | (x == t))
    }

    /// The entry for our ID `seq`, for NEW_CONNECTION_ID.
    pub(crate) fn scid_entry(&self, seq: u64) -> Option<&CidEntry> {
        self.scids.iter().find(|e| e.seq == seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(b: u8) -> ConnectionId<'static> {
        ConnectionId::from_vec(vec![b; 8])
    }

    #[test]
    fn peer_ids_respect_limit_and_retire_prior_to() {
        let mut c = Cids::new(cid(1), cid(2), 3, None);
        c.on_new_dcid(&[3; 8], 1, 0, 11).unwrap();
        c.on_new_dcid(&[4; 8], 2, 0, 12).unwrap();
        // A repeat is fine; a conflicting repeat is not.
        c.on_new_dcid(&[4; 8], 2, 0, 12).unwrap();
        assert!(c.on_new_dcid(&[5; 8], 2, 0, 12).is_err());
        // Over the limit of 3.
        assert_eq!(c.on_new_dcid(&[6; 8], 3, 0, 13), Err(Error::IdLimit));

        let mut c = Cids::new(cid(1), cid(2), 3, None);
        c.on_new_dcid(&[3; 8], 1, 0, 11).unwrap();
        c.on_new_dcid(&[4; 8], 2, 2, 12).unwrap();
        assert_eq!(
            c.dcids_to_retire.iter().copied().collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(&c.dcid()[..], &[4; 8]);
        assert!(c.is_stateless_reset(&12u128.to_be_bytes()));
        assert!(!c.is_stateless_reset(&11u128.to_be_bytes()));
        // Below the retire_prior_to: retired at once.
        c.on_new_dcid(&[9; 8], 1, 0, 19).unwrap_or(());
    }

    #[test]
    fn our_ids_and_retirement() {
        let mut c = Cids::new(cid(1), cid(2), 2, None);
        c.peer_limit = 3;
        assert_eq!(c.new_scid(cid(7), 77, false).unwrap(), 1);
        assert_eq!(c.new_scid(cid(8), 88, false).unwrap(), 2);
        assert_eq!(c.new_scid(cid(9), 99, false), Err(Error::IdLimit));
        assert_eq!(c.scids_left(), 0);
        // Retiring a never-issued sequence number is a violation.
        assert_eq!(c.on_retire(5, &[1; 8]), Err(Error::InvalidPacket));
        // Retiring the ID the packet was sent to is a violation.
        assert_eq!(c.on_retire(1, &[7; 8]), Err(Error::InvalidPacket));
        c.on_retire(1, &[1; 8]).unwrap();
        assert_eq!(c.retired_scids.pop_front(), Some(cid(7)));
        assert_eq!(c.scids_left(), 1);
    }
}
