//! Errors: the seed-shaped [`Error`] and the transport error-code registry.

use std::fmt;

/// A specialized `Result` for tarte operations.
pub type Result<T> = std::result::Result<T, Error>;

/// A QUIC error, shaped like quiche's so that a quiche program ports by
/// renaming the crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// There is no more work to do.
    Done,
    /// The provided buffer is too short.
    BufferTooShort,
    /// The provided packet cannot be parsed because its version is unknown.
    UnknownVersion,
    /// The provided packet cannot be parsed because it contains an invalid
    /// frame.
    InvalidFrame,
    /// The provided packet cannot be parsed.
    InvalidPacket,
    /// The operation cannot be completed because the connection is in an
    /// invalid state.
    InvalidState,
    /// The operation cannot be completed because the stream is in an invalid
    /// state. The stream ID is provided as associated data.
    InvalidStreamState(u64),
    /// The peer's transport params cannot be parsed.
    InvalidTransportParam,
    /// A cryptographic operation failed.
    CryptoFail,
    /// The TLS handshake failed.
    TlsFail,
    /// The peer violated the local flow control limits.
    FlowControl,
    /// The peer violated the local stream limits.
    StreamLimit,
    /// The specified stream was stopped by the peer. The error code sent as
    /// part of the STOP_SENDING frame is provided as associated data.
    StreamStopped(u64),
    /// The specified stream was reset by the peer. The error code sent as
    /// part of the RESET_STREAM frame is provided as associated data.
    StreamReset(u64),
    /// The received data exceeds the stream's final size.
    FinalSize,
    /// Error in congestion control.
    CongestionControl,
    /// Too many identifiers were provided.
    IdLimit,
    /// Not enough available identifiers.
    OutOfIdentifiers,
    /// Error in key update.
    KeyUpdate,
    /// The peer sent more data in CRYPTO frames than we can buffer.
    CryptoBufferExceeded,
    /// The peer sent an ACK frame with an invalid range.
    InvalidAckRange,
    /// The peer sent an ACK frame for a skipped packet number.
    OptimisticAckDetected,
    /// An invalid DCID was used when connecting to a remote peer.
    InvalidDcidInitialization,
}

impl Error {
    /// The transport error code (RFC 9000 §20.1) a connection closes with
    /// when this error is raised while processing the peer's input.
    pub fn to_wire(self) -> u64 {
        let code = match self {
            Error::Done => TransportErrorCode::NoError,
            Error::InvalidFrame => TransportErrorCode::FrameEncodingError,
            Error::InvalidStreamState(_) => TransportErrorCode::StreamStateError,
            Error::InvalidTransportParam => TransportErrorCode::TransportParameterError,
            Error::FlowControl => TransportErrorCode::FlowControlError,
            Error::StreamLimit => TransportErrorCode::StreamLimitError,
            Error::IdLimit => TransportErrorCode::ConnectionIdLimitError,
            Error::FinalSize => TransportErrorCode::FinalSizeError,
            Error::CryptoBufferExceeded => TransportErrorCode::CryptoBufferExceeded,
            Error::KeyUpdate => TransportErrorCode::KeyUpdateError,
            Error::InvalidPacket
            | Error::InvalidAckRange
            | Error::OptimisticAckDetected
            | Error::InvalidState
            | Error::UnknownVersion => TransportErrorCode::ProtocolViolation,
            Error::TlsFail => TransportErrorCode::CryptoError,
            _ => TransportErrorCode::InternalError,
        };
        code.to_wire()
    }

    /// The error as the negative integer quiche's C API uses.
    pub fn to_c(self) -> libc::ssize_t {
        match self {
            Error::Done => -1,
            Error::BufferTooShort => -2,
            Error::UnknownVersion => -3,
            Error::InvalidFrame => -4,
            Error::InvalidPacket => -5,
            Error::InvalidState => -6,
            Error::InvalidStreamState(_) => -7,
            Error::InvalidTransportParam => -8,
            Error::CryptoFail => -9,
            Error::TlsFail => -10,
            Error::FlowControl => -11,
            Error::StreamLimit => -12,
            Error::FinalSize => -13,
            Error::CongestionControl => -14,
            Error::StreamStopped(_) => -15,
            Error::StreamReset(_) => -16,
            Error::IdLimit => -17,
            Error::OutOfIdentifiers => -18,
            Error::KeyUpdate => -19,
            Error::CryptoBufferExceeded => -20,
            Error::InvalidAckRange => -21,
            Error::OptimisticAckDetected => -22,
            Error::InvalidDcidInitialization => -23,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Error {}

impl From<crate::octets::BufferTooShort> for Error {
    fn from(_: crate::octets::BufferTooShort) -> Self {
        Error::BufferTooShort
    }
}

/// Declares a codepoint registry: an enum whose discriminants are the wire
/// values, with an `Unknown` fallback that keeps the raw value.
macro_rules! codepoints {
    ($(#[$meta:meta])* $vis:vis enum $name:ident : $repr:ty {
        $($(#[$vmeta:meta])* $variant:ident = $value:expr,)*
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this registry does not name.
            Unknown($repr),
        }

        impl $name {
            /// The registry entry for a wire value.
            pub fn from_wire(v: $repr) -> Self {
                match v {
                    $($value => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }

            /// The wire value.
            pub fn to_wire(self) -> $repr {
                match self {
                    $($name::$variant => $value,)*
                    $name::Unknown(v) => v,
                }
            }
        }
    };
}
#[allow(unused_imports)] // used by later registries (stream states, h3)
pub(crate) use codepoints;

codepoints! {
    /// Transport error codes (RFC 9000 §20.1). CRYPTO_ERROR codes
    /// (0x0100-0x01ff) carry a TLS alert and come back as `Unknown`; see
    /// [`TransportErrorCode::crypto`].
    pub enum TransportErrorCode: u64 {
        /// NO_ERROR
        NoError = 0x00,
        /// INTERNAL_ERROR
        InternalError = 0x01,
        /// CONNECTION_REFUSED
        ConnectionRefused = 0x02,
        /// FLOW_CONTROL_ERROR
        FlowControlError = 0x03,
        /// STREAM_LIMIT_ERROR
        StreamLimitError = 0x04,
        /// STREAM_STATE_ERROR
        StreamStateError = 0x05,
        /// FINAL_SIZE_ERROR
        FinalSizeError = 0x06,
        /// FRAME_ENCODING_ERROR
        FrameEncodingError = 0x07,
        /// TRANSPORT_PARAMETER_ERROR
        TransportParameterError = 0x08,
        /// CONNECTION_ID_LIMIT_ERROR
        ConnectionIdLimitError = 0x09,
        /// PROTOCOL_VIOLATION
        ProtocolViolation = 0x0a,
        /// INVALID_TOKEN
        InvalidToken = 0x0b,
        /// APPLICATION_ERROR
        ApplicationError = 0x0c,
        /// CRYPTO_BUFFER_EXCEEDED
        CryptoBufferExceeded = 0x0d,
        /// KEY_UPDATE_ERROR
        KeyUpdateError = 0x0e,
        /// AEAD_LIMIT_REACHED
        AeadLimitReached = 0x0f,
        /// NO_VIABLE_PATH
        NoViablePath = 0x10,
        /// CRYPTO_ERROR with no specific alert (handshake_failure, 40).
        CryptoError = 0x0128,
    }
}

impl TransportErrorCode {
    /// The CRYPTO_ERROR code carrying TLS alert `alert` (RFC 9001 §4.8).
    pub fn crypto(alert: u8) -> Self {
        TransportErrorCode::from_wire(0x0100 + u64::from(alert))
    }
}

/// A transport error with the context to report it: its code, the frame
/// type that triggered it, and a static reason phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportError {
    /// The error code sent in CONNECTION_CLOSE.
    pub code: TransportErrorCode,
    /// The frame type that triggered the error, 0 when none.
    pub frame_type: u64,
    /// A reason phrase for the peer and the logs.
    pub reason: &'static str,
}

impl TransportError {
    /// A new transport error.
    pub const fn new(code: TransportErrorCode, frame_type: u64, reason: &'static str) -> Self {
        TransportError {
            code,
            frame_type,
            reason,
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} (0x{:x}) in frame 0x{:x}: {}",
            self.code,
            self.code.to_wire(),
            self.frame_type,
            self.reason
        )
    }
}

impl std::error::Error for TransportError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_round_trips() {
        for v in 0..=0x10u64 {
            assert_eq!(TransportErrorCode::from_wire(v).to_wire(), v);
            assert!(!matches!(
                TransportErrorCode::from_wire(v),
                TransportErrorCode::Unknown(_)
            ));
        }
        assert_eq!(
            TransportErrorCode::from_wire(0x1234),
            TransportErrorCode::Unknown(0x1234)
        );
        assert_eq!(
            TransportErrorCode::crypto(40),
            TransportErrorCode::CryptoError
        );
        assert_eq!(TransportErrorCode::crypto(42).to_wire(), 0x12a);
    }

    #[test]
    fn error_wire_codes() {
        assert_eq!(Error::InvalidFrame.to_wire(), 0x7);
        assert_eq!(Error::FlowControl.to_wire(), 0x3);
        assert_eq!(Error::InvalidTransportParam.to_wire(), 0x8);
        assert_eq!(Error::CryptoBufferExceeded.to_wire(), 0xd);
        assert_eq!(Error::Done.to_c(), -1);
    }
}
