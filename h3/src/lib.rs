//! HTTP/3 (RFC 9114) and QPACK (RFC 9204) over `tarte::Connection`.
//!
//! The API mirrors quiche's `h3` module. This crate currently provides the
//! connection-independent layers: QPACK ([`qpack`]), HTTP/3 frames
//! ([`frame`]), SETTINGS ([`settings`]), unidirectional stream types
//! ([`stream_type`]), RFC 9218 priorities ([`priority`]) and errors.
#![forbid(unsafe_code)]

mod codepoint;
mod error;
mod header;

pub mod frame;
pub mod priority;
pub mod qpack;
pub mod settings;
pub mod stream_type;

pub use codepoint::{is_reserved, reserved};
pub use error::{Error, ErrorCode, Result};
pub use frame::{Frame, FrameType};
pub use header::{Header, HeaderRef, NameValue};
pub use priority::Priority;
pub use settings::{SettingId, Settings};
pub use stream_type::StreamType;
