//! HTTP/3 connection configuration (quiche's `h3::Config`).

use crate::settings::{is_http2_setting, SettingId};
use crate::{Error, Result};

/// Our default SETTINGS_QPACK_MAX_TABLE_CAPACITY: unlike quiche (0), the
/// dynamic table is on by default.
pub const DEFAULT_QPACK_MAX_TABLE_CAPACITY: u64 = 4096;
/// Our default SETTINGS_QPACK_BLOCKED_STREAMS.
pub const DEFAULT_QPACK_BLOCKED_STREAMS: u64 = 16;
/// Cap on an encoded field section (a HEADERS payload) when no
/// SETTINGS_MAX_FIELD_SECTION_SIZE is configured.
pub const DEFAULT_MAX_HEADER_BLOCK: u64 = 256 * 1024;

/// HTTP/3 configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) max_field_section_size: Option<u64>,
    pub(crate) qpack_max_table_capacity: u64,
    pub(crate) qpack_blocked_streams: u64,
    pub(crate) connect_protocol_enabled: bool,
    pub(crate) h3_datagram: bool,
    pub(crate) additional_settings: Vec<(u64, u64)>,
    pub(crate) grease: bool,
    pub(crate) qpack_encoder_capacity_limit: u64,
}

impl Config {
    /// A configuration with the defaults: no field section size limit, a
    /// 4 KiB QPACK dynamic table with 16 blocked streams, grease on,
    /// extended CONNECT and datagrams off.
    pub fn new() -> Result<Config> {
        Ok(Config {
            max_field_section_size: None,
            qpack_max_table_capacity: DEFAULT_QPACK_MAX_TABLE_CAPACITY,
            qpack_blocked_streams: DEFAULT_QPACK_BLOCKED_STREAMS,
            connect_protocol_enabled: false,
            h3_datagram: false,
            additional_settings: Vec::new(),
            grease: true,
            qpack_encoder_capacity_limit: crate::qpack::DEFAULT_CAPACITY_LIMIT,
        })
    }

    /// SETTINGS_MAX_FIELD_SECTION_SIZE: the largest field section (RFC 9114
    /// §4.2.2 size) we accept; larger ones reset the stream with
    /// H3_EXCESSIVE_LOAD.
    pub fn set_max_field_section_size(&mut self, v: u64) {
        self.max_field_section_size = Some(v);
    }

    /// SETTINGS_QPACK_MAX_TABLE_CAPACITY: the dynamic table the peer's
    /// encoder may use for us (0 disables it).
    pub fn set_qpack_max_table_capacity(&mut self, v: u64) {
        self.qpack_max_table_capacity = v;
    }

    /// SETTINGS_QPACK_BLOCKED_STREAMS: how many streams may wait for
    /// dynamic table inserts at once.
    pub fn set_qpack_blocked_streams(&mut self, v: u64) {
        self.qpack_blocked_streams = v;
    }

    /// The largest dynamic table our encoder uses, whatever the peer
    /// allows (default 4096; 0 keeps our encoder static-only).
    pub fn set_qpack_encoder_capacity_limit(&mut self, v: u64) {
        self.qpack_encoder_capacity_limit = v;
    }

    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 9220): accept extended
    /// CONNECT requests (`:protocol`).
    pub fn enable_extended_connect(&mut self, enabled: bool) {
        self.connect_protocol_enabled = enabled;
    }

    /// SETTINGS_H3_DATAGRAM (RFC 9297): HTTP datagrams. The QUIC config
    /// must enable DATAGRAM frames too (RFC 9297 §2.1.1).
    pub fn enable_dgram(&mut self, enabled: bool) {
        self.h3_datagram = enabled;
    }

    /// Whether reserved frame types, settings and stream types are sent
    /// (RFC 9114 §7.2.8, §7.2.4.1, §6.2.3); default on.
    pub fn grease(&mut self, enabled: bool) {
        self.grease = enabled;
    }

    /// Extra settings to send. Identifiers this stack sets itself, HTTP/2
    /// identifiers and duplicates are H3_SETTINGS_ERROR.
    pub fn set_additional_settings(&mut self, settings: Vec<(u64, u64)>) -> Result<()> {
        let mut seen = Vec::with_capacity(settings.len());
        for &(id, _) in &settings {
            if is_http2_setting(id)
                || !matches!(SettingId::from_wire(id), SettingId::Unknown(_))
                || seen.contains(&id)
            {
                return Err(Error::SettingsError);
            }
            seen.push(id);
        }
        self.additional_settings = settings;
        Ok(())
    }
}
