//! HTTP/3 errors: the application-facing [`Error`] (shaped like quiche's
//! `h3::Error`) and the wire error-code registry (RFC 9114 §8.1, RFC 9204
//! §6, RFC 9297 §5.2).

use crate::codepoint::codepoints;

codepoints! {
    /// HTTP/3 and QPACK error codes as sent in CONNECTION_CLOSE and
    /// RESET_STREAM/STOP_SENDING (RFC 9114 §8.1, RFC 9204 §6).
    pub enum ErrorCode {
        /// H3_NO_ERROR.
        NoError = 0x100,
        /// H3_GENERAL_PROTOCOL_ERROR.
        GeneralProtocolError = 0x101,
        /// H3_INTERNAL_ERROR.
        InternalError = 0x102,
        /// H3_STREAM_CREATION_ERROR.
        StreamCreationError = 0x103,
        /// H3_CLOSED_CRITICAL_STREAM.
        ClosedCriticalStream = 0x104,
        /// H3_FRAME_UNEXPECTED.
        FrameUnexpected = 0x105,
        /// H3_FRAME_ERROR.
        FrameError = 0x106,
        /// H3_EXCESSIVE_LOAD.
        ExcessiveLoad = 0x107,
        /// H3_ID_ERROR.
        IdError = 0x108,
        /// H3_SETTINGS_ERROR.
        SettingsError = 0x109,
        /// H3_MISSING_SETTINGS.
        MissingSettings = 0x10a,
        /// H3_REQUEST_REJECTED.
        RequestRejected = 0x10b,
        /// H3_REQUEST_CANCELLED.
        RequestCancelled = 0x10c,
        /// H3_REQUEST_INCOMPLETE.
        RequestIncomplete = 0x10d,
        /// H3_MESSAGE_ERROR.
        MessageError = 0x10e,
        /// H3_CONNECT_ERROR.
        ConnectError = 0x10f,
        /// H3_VERSION_FALLBACK.
        VersionFallback = 0x110,
        /// QPACK_DECOMPRESSION_FAILED.
        QpackDecompressionFailed = 0x200,
        /// QPACK_ENCODER_STREAM_ERROR.
        QpackEncoderStreamError = 0x201,
        /// QPACK_DECODER_STREAM_ERROR.
        QpackDecoderStreamError = 0x202,
        /// H3_DATAGRAM_ERROR (RFC 9297 §5.2).
        DatagramError = 0x33,
    }
}

/// An HTTP/3 error, as quiche's `h3::Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// There is no more work to do.
    #[error("done")]
    Done,
    /// The provided buffer is too short.
    #[error("buffer too short")]
    BufferTooShort,
    /// Internal error in the HTTP/3 stack.
    #[error("internal error")]
    InternalError,
    /// The peer created too much work (H3_EXCESSIVE_LOAD).
    #[error("excessive load")]
    ExcessiveLoad,
    /// A stream or push ID was used incorrectly (H3_ID_ERROR).
    #[error("ID error")]
    IdError,
    /// A stream was created that the peer may not create
    /// (H3_STREAM_CREATION_ERROR).
    #[error("stream creation error")]
    StreamCreationError,
    /// A critical stream was closed (H3_CLOSED_CRITICAL_STREAM).
    #[error("closed critical stream")]
    ClosedCriticalStream,
    /// The first frame on the control stream was not SETTINGS
    /// (H3_MISSING_SETTINGS).
    #[error("missing settings")]
    MissingSettings,
    /// A frame was received where it is not allowed (H3_FRAME_UNEXPECTED).
    #[error("frame unexpected")]
    FrameUnexpected,
    /// A frame was malformed (H3_FRAME_ERROR).
    #[error("frame error")]
    FrameError,
    /// A field section could not be decompressed
    /// (QPACK_DECOMPRESSION_FAILED).
    #[error("QPACK decompression failed")]
    QpackDecompressionFailed,
    /// The peer's QPACK encoder stream was malformed
    /// (QPACK_ENCODER_STREAM_ERROR).
    #[error("QPACK encoder stream error")]
    QpackEncoderStreamError,
    /// The peer's QPACK decoder stream was malformed
    /// (QPACK_DECODER_STREAM_ERROR).
    #[error("QPACK decoder stream error")]
    QpackDecoderStreamError,
    /// The QUIC transport failed.
    #[error("transport error: {0:?}")]
    TransportError(tarte::Error),
    /// The underlying stream has no room for the data now.
    #[error("stream blocked")]
    StreamBlocked,
    /// SETTINGS were malformed or invalid (H3_SETTINGS_ERROR).
    #[error("settings error")]
    SettingsError,
    /// The request was rejected before any processing (H3_REQUEST_REJECTED).
    #[error("request rejected")]
    RequestRejected,
    /// The request or response was cancelled (H3_REQUEST_CANCELLED).
    #[error("request cancelled")]
    RequestCancelled,
    /// The stream ended before the request was complete
    /// (H3_REQUEST_INCOMPLETE).
    #[error("request incomplete")]
    RequestIncomplete,
    /// A message was malformed (H3_MESSAGE_ERROR).
    #[error("message error")]
    MessageError,
    /// A CONNECT tunnel failed (H3_CONNECT_ERROR).
    #[error("connect error")]
    ConnectError,
    /// The request should be retried over HTTP/1.1 (H3_VERSION_FALLBACK).
    #[error("version fallback")]
    VersionFallback,
    /// An HTTP datagram was malformed (H3_DATAGRAM_ERROR, RFC 9297 §2.1).
    #[error("datagram error")]
    DatagramError,
}

impl Error {
    /// The registry code for this error. A transport error has no HTTP/3
    /// code; it maps to H3_INTERNAL_ERROR here and [`Error::to_wire`] gives
    /// the transport's own code.
    ///
    /// `Done`, `BufferTooShort` and `StreamBlocked` are local conditions,
    /// never sent to the peer by this stack; they map to H3_NO_ERROR and
    /// H3_INTERNAL_ERROR so that a caller that closes with them anyway sends
    /// a valid code (quiche uses the unregistered values 0x999 and 0xff).
    pub const fn code(self) -> ErrorCode {
        match self {
            Error::Done => ErrorCode::NoError,
            Error::BufferTooShort
            | Error::InternalError
            | Error::StreamBlocked
            | Error::TransportError(_) => ErrorCode::InternalError,
            Error::ExcessiveLoad => ErrorCode::ExcessiveLoad,
            Error::IdError => ErrorCode::IdError,
            Error::StreamCreationError => ErrorCode::StreamCreationError,
            Error::ClosedCriticalStream => ErrorCode::ClosedCriticalStream,
            Error::MissingSettings => ErrorCode::MissingSettings,
            Error::FrameUnexpected => ErrorCode::FrameUnexpected,
            Error::FrameError => ErrorCode::FrameError,
            Error::QpackDecompressionFailed => ErrorCode::QpackDecompressionFailed,
            Error::QpackEncoderStreamError => ErrorCode::QpackEncoderStreamError,
            Error::QpackDecoderStreamError => ErrorCode::QpackDecoderStreamError,
            Error::SettingsError => ErrorCode::SettingsError,
            Error::RequestRejected => ErrorCode::RequestRejected,
            Error::RequestCancelled => ErrorCode::RequestCancelled,
            Error::RequestIncomplete => ErrorCode::RequestIncomplete,
            Error::MessageError => ErrorCode::MessageError,
            Error::ConnectError => ErrorCode::ConnectError,
            Error::VersionFallback => ErrorCode::VersionFallback,
            Error::DatagramError => ErrorCode::DatagramError,
        }
    }

    /// The wire value of [`Error::code`], or the transport error's own
    /// code for [`Error::TransportError`].
    pub fn to_wire(self) -> u64 {
        match self {
            Error::TransportError(e) => e.to_wire(),
            e => e.code().to_wire(),
        }
    }
}

impl From<tarte::octets::BufferTooShort> for Error {
    fn from(_: tarte::octets::BufferTooShort) -> Self {
        Error::BufferTooShort
    }
}

impl From<tarte::Error> for Error {
    fn from(e: tarte::Error) -> Self {
        match e {
            tarte::Error::Done => Error::Done,
            e => Error::TransportError(e),
        }
    }
}

impl From<crate::qpack::Error> for Error {
    fn from(e: crate::qpack::Error) -> Self {
        use crate::qpack::Error as Q;
        match e {
            Q::DecompressionFailed(_) => Error::QpackDecompressionFailed,
            Q::EncoderStream(_) => Error::QpackEncoderStreamError,
            Q::DecoderStream(_) => Error::QpackDecoderStreamError,
            Q::FieldSectionTooLarge { .. } => Error::ExcessiveLoad,
            Q::Internal(_) => Error::InternalError,
        }
    }
}

/// Result of HTTP/3 operations.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_round_trips() {
        for v in [0x33, 0x100, 0x101, 0x10a, 0x110, 0x200, 0x201, 0x202] {
            let c = ErrorCode::from_wire(v);
            assert!(!matches!(c, ErrorCode::Unknown(_)), "{v:#x}");
            assert_eq!(c.to_wire(), v);
        }
        assert_eq!(ErrorCode::from_wire(0x111), ErrorCode::Unknown(0x111));
        assert_eq!(ErrorCode::Unknown(0x111).to_wire(), 0x111);
        assert_eq!(ErrorCode::from_wire(0x21), ErrorCode::Unknown(0x21));
    }

    #[test]
    fn errors_map_to_rfc_codes() {
        assert_eq!(Error::Done.to_wire(), 0x100);
        assert_eq!(Error::InternalError.to_wire(), 0x102);
        assert_eq!(Error::StreamCreationError.to_wire(), 0x103);
        assert_eq!(Error::ClosedCriticalStream.to_wire(), 0x104);
        assert_eq!(Error::FrameUnexpected.to_wire(), 0x105);
        assert_eq!(Error::FrameError.to_wire(), 0x106);
        assert_eq!(Error::ExcessiveLoad.to_wire(), 0x107);
        assert_eq!(Error::IdError.to_wire(), 0x108);
        assert_eq!(Error::SettingsError.to_wire(), 0x109);
        assert_eq!(Error::MissingSettings.to_wire(), 0x10a);
        assert_eq!(Error::RequestRejected.to_wire(), 0x10b);
        assert_eq!(Error::RequestCancelled.to_wire(), 0x10c);
        assert_eq!(Error::RequestIncomplete.to_wire(), 0x10d);
        assert_eq!(Error::MessageError.to_wire(), 0x10e);
        assert_eq!(Error::ConnectError.to_wire(), 0x10f);
        assert_eq!(Error::VersionFallback.to_wire(), 0x110);
        assert_eq!(Error::QpackDecompressionFailed.to_wire(), 0x200);
        assert_eq!(Error::QpackEncoderStreamError.to_wire(), 0x201);
        assert_eq!(Error::QpackDecoderStreamError.to_wire(), 0x202);
        assert_eq!(
            Error::from(crate::qpack::Error::EncoderStream("x")).to_wire(),
            0x201
        );
    }

    #[test]
    fn transport_errors_keep_their_code() {
        let e = Error::from(tarte::Error::FlowControl);
        assert_eq!(e, Error::TransportError(tarte::Error::FlowControl));
        // RFC 9000 §20.1: FLOW_CONTROL_ERROR is 0x03.
        assert_eq!(e.to_wire(), 0x03);
        assert_eq!(e.code(), ErrorCode::InternalError);
        assert_eq!(Error::from(tarte::Error::Done), Error::Done);
    }

    #[test]
    fn reserved_values() {
        use crate::codepoint::{is_reserved, reserved};
        assert!(is_reserved(0x21));
        assert!(is_reserved(0x40));
        assert!(!is_reserved(0x20));
        assert!(!is_reserved(0x41));
        for n in [0, 1, 7, 1000, u64::MAX] {
            assert!(is_reserved(reserved(n)));
            assert!(reserved(n) <= tarte::octets::MAX_VARINT);
        }
    }
}
