//! tarte: a QUIC transport (RFC 9000/9001/9002), sans-IO, over BoringSSL.
//!
//! The public API mirrors quiche's so that a quiche program ports by
//! renaming the crate. This crate owns no sockets, threads or clocks: the
//! application feeds received datagrams in, takes datagrams to send out,
//! and drives timers. See [`Connection`] for the calling contract.
#![deny(unsafe_code)]

pub mod cert;
pub mod cid;
pub mod config;
pub mod connection;
pub mod crypto;
pub mod error;
pub mod frame;
pub mod octets;
pub mod packet;
pub(crate) mod ranges;
pub(crate) mod recovery;
pub mod replay;
pub(crate) mod stream;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
pub mod token;
pub mod transport_params;

pub use crate::cid::{ConnectionId, MAX_CONN_ID_LEN};
pub use crate::config::Config;
pub use crate::connection::{
    accept, connect, connect_with_dcid, BatchInfo, Connection, ConnectionError, PathEvent,
    PathStats, QlogLevel, RecvInfo, SendInfo, Shutdown, SocketAddrIter, Stats, StreamIter,
};
pub use crate::error::{Error, Result, TransportError, TransportErrorCode};
pub use crate::packet::{
    negotiate_version, retry, stateless_reset, version_is_supported, Header, Type, PROTOCOL_VERSION,
};
pub use crate::recovery::CongestionControlAlgorithm;
pub use crate::replay::ReplayGuard;
pub use crate::transport_params::TransportParams;

/// `v` as a u32, at most `u32::MAX`: counters kept in u32 to save memory
/// per connection (bytes in flight, anti-amplification bytes) saturate
/// far above any value they are compared with.
pub(crate) fn saturating_u32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}
