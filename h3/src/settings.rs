//! The SETTINGS frame payload (RFC 9114 §7.2.4) and the setting identifier
//! registry (RFC 9114 §11.2.2, RFC 9204 §8.1, RFC 9220 §5, RFC 9297 §5.1).

use tarte::octets::{varint_len, Octets, OctetsMut};

use crate::codepoint::codepoints;
use crate::{Error, Result};

codepoints! {
    /// Setting identifiers.
    pub enum SettingId {
        /// SETTINGS_QPACK_MAX_TABLE_CAPACITY (RFC 9204 §5).
        QpackMaxTableCapacity = 0x01,
        /// SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 §7.2.4.1).
        MaxFieldSectionSize = 0x06,
        /// SETTINGS_QPACK_BLOCKED_STREAMS (RFC 9204 §5).
        QpackBlockedStreams = 0x07,
        /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 9220 §3).
        EnableConnectProtocol = 0x08,
        /// SETTINGS_H3_DATAGRAM (RFC 9297 §2.1.1).
        H3Datagram = 0x33,
    }
}

/// HTTP/2 setting identifiers with no HTTP/3 meaning (RFC 9114 §7.2.4.1,
/// §11.2.2): 0x00 (reserved), 0x02 ENABLE_PUSH, 0x03
/// MAX_CONCURRENT_STREAMS, 0x04 INITIAL_WINDOW_SIZE, 0x05 MAX_FRAME_SIZE.
pub fn is_http2_setting(id: u64) -> bool {
    matches!(id, 0x00 | 0x02..=0x05)
}

/// The parameters of one SETTINGS frame. `None` means "not sent" (the
/// RFC default applies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// SETTINGS_MAX_FIELD_SECTION_SIZE; default unlimited.
    pub max_field_section_size: Option<u64>,
    /// SETTINGS_QPACK_MAX_TABLE_CAPACITY; default 0.
    pub qpack_max_table_capacity: Option<u64>,
    /// SETTINGS_QPACK_BLOCKED_STREAMS; default 0.
    pub qpack_blocked_streams: Option<u64>,
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (0 or 1); default 0.
    pub connect_protocol_enabled: Option<u64>,
    /// SETTINGS_H3_DATAGRAM (0 or 1); default 0.
    pub h3_datagram: Option<u64>,
    /// Any other setting, in wire order: unknown and reserved (grease)
    /// identifiers, which carry no meaning (RFC 9114 §7.2.4: "An
    /// implementation MUST ignore any parameter with an identifier it does
    /// not understand").
    pub additional: Vec<(u64, u64)>,
}

impl Settings {
    fn known(&self) -> [(SettingId, Option<u64>); 5] {
        [
            (
                SettingId::QpackMaxTableCapacity,
                self.qpack_max_table_capacity,
            ),
            (SettingId::MaxFieldSectionSize, self.max_field_section_size),
            (SettingId::QpackBlockedStreams, self.qpack_blocked_streams),
            (
                SettingId::EnableConnectProtocol,
                self.connect_protocol_enabled,
            ),
            (SettingId::H3Datagram, self.h3_datagram),
        ]
    }

    /// Iterates `(identifier, value)` in the order [`Self::encode`] writes.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.known()
            .into_iter()
            .filter_map(|(id, v)| v.map(|v| (id.to_wire(), v)))
            .chain(self.additional.iter().copied())
    }

    /// Parses a SETTINGS frame payload.
    ///
    /// Errors: a truncated parameter is H3_FRAME_ERROR; an HTTP/2 setting, a
    /// duplicate identifier, or a boolean setting other than 0 or 1 is
    /// H3_SETTINGS_ERROR.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let mut b = Octets::with_slice(payload);
        let mut s = Settings::default();
        let mut seen: Vec<u64> = Vec::new();
        while b.cap() > 0 {
            let id = b.get_varint().map_err(|_| Error::FrameError)?;
            let value = b.get_varint().map_err(|_| Error::FrameError)?;
            // §7.2.4.1: HTTP/2 settings' "receipt MUST be treated as a
            // connection error of type H3_SETTINGS_ERROR".
            if is_http2_setting(id) {
                return Err(Error::SettingsError);
            }
            seen.push(id);
            match SettingId::from_wire(id) {
                SettingId::QpackMaxTableCapacity => s.qpack_max_table_capacity = Some(value),
                SettingId::MaxFieldSectionSize => s.max_field_section_size = Some(value),
                SettingId::QpackBlockedStreams => s.qpack_blocked_streams = Some(value),
                // RFC 8441 §3 / RFC 9220 §3 and RFC 9297 §2.1.1: the value
                // is 0 or 1; anything else is H3_SETTINGS_ERROR.
                SettingId::EnableConnectProtocol if value <= 1 => {
                    s.connect_protocol_enabled = Some(value)
                }
                SettingId::H3Datagram if value <= 1 => s.h3_datagram = Some(value),
                SettingId::EnableConnectProtocol | SettingId::H3Datagram => {
                    return Err(Error::SettingsError)
                }
                SettingId::Unknown(_) => s.additional.push((id, value)),
            }
        }
        // §7.2.4: "The same setting identifier MUST NOT occur more than once
        // in the SETTINGS frame. A receiver MAY treat the presence of
        // duplicate setting identifiers as a connection error of type
        // H3_SETTINGS_ERROR."
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::SettingsError);
        }
        Ok(s)
    }

    /// Length of the payload [`Self::encode`] writes.
    pub fn payload_len(&self) -> usize {
        self.iter()
            .map(|(id, v)| varint_len(id) + varint_len(v))
            .sum()
    }

    /// Writes the payload (no frame header).
    pub fn encode(&self, out: &mut OctetsMut<'_>) -> Result<()> {
        for (id, v) in self.iter() {
            out.put_varint(id)?;
            out.put_varint(v)?;
        }
        Ok(())
    }
}
