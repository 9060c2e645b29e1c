//! Unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2).

use crate::codepoint::{codepoints, is_reserved};

codepoints! {
    /// The type that opens every unidirectional stream.
    pub enum StreamType {
        /// Control stream (RFC 9114 §6.2.1).
        Control = 0x00,
        /// Push stream (RFC 9114 §6.2.2).
        Push = 0x01,
        /// QPACK encoder stream (RFC 9204 §4.2).
        QpackEncoder = 0x02,
        /// QPACK decoder stream (RFC 9204 §4.2).
        QpackDecoder = 0x03,
    }
}

impl StreamType {
    /// Whether this is a reserved (grease) type, `0x1f * N + 0x21`
    /// (RFC 9114 §6.2.3): such streams are read and discarded.
    pub const fn is_grease(self) -> bool {
        match self {
            StreamType::Unknown(v) => is_reserved(v),
            _ => false,
        }
    }

    /// Whether an endpoint may open only one stream of this type; a second
    /// is H3_STREAM_CREATION_ERROR (RFC 9114 §6.2.1, RFC 9204 §4.2).
    pub const fn is_critical(self) -> bool {
        matches!(
            self,
            StreamType::Control | StreamType::QpackEncoder | StreamType::QpackDecoder
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_types() {
        for (v, t) in [
            (0, StreamType::Control),
            (1, StreamType::Push),
            (2, StreamType::QpackEncoder),
            (3, StreamType::QpackDecoder),
        ] {
            assert_eq!(StreamType::from_wire(v), t);
            assert_eq!(t.to_wire(), v);
            assert!(!t.is_grease());
        }
        assert!(StreamType::from_wire(0x21).is_grease());
        assert!(StreamType::from_wire(0x1f * 1000 + 0x21).is_grease());
        assert!(!StreamType::from_wire(0x04).is_grease());
        assert_eq!(StreamType::from_wire(0x54), StreamType::Unknown(0x54));
        assert!(StreamType::Control.is_critical());
        assert!(!StreamType::Push.is_critical());
    }
}
