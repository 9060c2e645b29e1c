//! QPACK field compression for HTTP/3 (RFC 9204).
//!
//! [`Encoder`] turns header lists into encoded field sections and writes
//! encoder-stream instructions; [`Decoder`] reads encoder-stream
//! instructions, decodes field sections (holding back blocked ones) and
//! writes decoder-stream instructions. Both are sans-IO: stream bytes go in
//! through `feed_*` and come out through `emit_*`.

pub mod field_lines;
pub mod huffman;
pub mod instructions;
pub mod prefix_int;
pub mod static_table;

mod dynamic_table;

pub use dynamic_table::{entry_size, DynamicTable, ENTRY_OVERHEAD};

/// A QPACK error, with the reason it was raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// QPACK_DECOMPRESSION_FAILED (0x200): a field section cannot be
    /// interpreted (RFC 9204 §6).
    #[error("QPACK_DECOMPRESSION_FAILED: {0}")]
    DecompressionFailed(&'static str),
    /// QPACK_ENCODER_STREAM_ERROR (0x201): the peer's encoder stream is
    /// malformed or breaks a rule.
    #[error("QPACK_ENCODER_STREAM_ERROR: {0}")]
    EncoderStream(&'static str),
    /// QPACK_DECODER_STREAM_ERROR (0x202): the peer's decoder stream is
    /// malformed or breaks a rule.
    #[error("QPACK_DECODER_STREAM_ERROR: {0}")]
    DecoderStream(&'static str),
    /// The decoded field section is larger than our
    /// SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 §4.2.2); the stream, not
    /// the connection, is at fault.
    #[error("field section larger than the limit of {limit} bytes")]
    FieldSectionTooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// A local API misuse, e.g. decoding a second section on a stream that
    /// is still blocked.
    #[error("QPACK internal error: {0}")]
    Internal(&'static str),
}

impl Error {
    /// The wire error code (RFC 9204 §6; RFC 9114 §8.1 for the others).
    pub const fn to_wire(self) -> u64 {
        match self {
            Error::DecompressionFailed(_) => 0x200,
            Error::EncoderStream(_) => 0x201,
            Error::DecoderStream(_) => 0x202,
            Error::FieldSectionTooLarge { .. } => 0x107,
            Error::Internal(_) => 0x102,
        }
    }
}

/// Result of QPACK operations.
pub type Result<T> = std::result::Result<T, Error>;

mod decoder;
mod encoder;

pub use decoder::{Decoded, Decoder};
pub use encoder::{Encoder, DEFAULT_CAPACITY_LIMIT};

#[cfg(test)]
mod tests;
