//! HTTP/3 (RFC 9114) and QPACK (RFC 9204) over `tarte::Connection`.
//!
//! The API mirrors quiche's `h3` module. This crate currently provides the
//! connection-independent layers: QPACK ([`qpack`]), HTTP/3 frames
//! ([`frame`]), settings, stream types, RFC 9218 priorities and errors.
#![forbid(unsafe_code)]

mod codepoint;
mod error;
mod header;

pub mod qpack;

pub use codepoint::{is_reserved, reserved};
pub use error::{Error, ErrorCode, Result};
pub use header::{Header, HeaderRef, NameValue};
