//! HTTP/3 (RFC 9114) and QPACK (RFC 9204) over `tarte::Connection`.
//!
//! The API mirrors quiche's `h3` module: [`Config`],
//! [`Connection::with_transport`], `send_request`, `send_response`,
//! `send_body`, `recv_body`, [`Connection::poll`] → [`Event`], GOAWAY,
//! priorities, extended CONNECT and HTTP datagrams. Below it: QPACK
//! ([`qpack`]), HTTP/3 frames ([`frame`]), SETTINGS ([`settings`]),
//! unidirectional stream types ([`stream_type`]), RFC 9218 priorities
//! ([`priority`]) and errors. [`testing`] (feature `testing`) runs a client
//! and a server over tarte's in-memory pipe.
#![forbid(unsafe_code)]

mod codepoint;
mod config;
mod connection;
mod error;
mod header;

pub mod frame;
pub mod priority;
pub mod qpack;
pub mod settings;
pub mod stream_type;

pub use codepoint::{is_reserved, reserved};
pub use config::{
    Config, DEFAULT_MAX_HEADER_BLOCK, DEFAULT_QPACK_BLOCKED_STREAMS,
    DEFAULT_QPACK_MAX_TABLE_CAPACITY,
};
pub use connection::{Connection, Event, QpackStats, MAX_CONTROL_FRAME};
pub use error::{Error, ErrorCode, Result};
pub use frame::{Frame, FrameType};
pub use header::{Header, HeaderRef, NameValue};
pub use priority::Priority;
pub use settings::{SettingId, Settings};
pub use stream_type::StreamType;
#[cfg(feature = "testing")]
pub mod testing;
