//! Transport parameters (RFC 9000 §7.4, §18): encoding, decoding and the
//! validation that turns a bad parameter set into TRANSPORT_PARAMETER_ERROR.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use crate::cid::{ConnectionId, MAX_CONN_ID_LEN};
use crate::error::{Error, Result};
use crate::frame::{MAX_STREAMS_LIMIT, RESET_TOKEN_LEN};
use crate::octets::{varint_len, Octets, OctetsMut};

/// Transport parameter IDs (RFC 9000 §18.2, RFC 9221 §3).
pub mod ids {
    /// original_destination_connection_id
    pub const ORIGINAL_DESTINATION_CONNECTION_ID: u64 = 0x00;
    /// max_idle_timeout
    pub const MAX_IDLE_TIMEOUT: u64 = 0x01;
    /// stateless_reset_token
    pub const STATELESS_RESET_TOKEN: u64 = 0x02;
    /// max_udp_payload_size
    pub const MAX_UDP_PAYLOAD_SIZE: u64 = 0x03;
    /// initial_max_data
    pub const INITIAL_MAX_DATA: u64 = 0x04;
    /// initial_max_stream_data_bidi_local
    pub const INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: u64 = 0x05;
    /// initial_max_stream_data_bidi_remote
    pub const INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: u64 = 0x06;
    /// initial_max_stream_data_uni
    pub const INITIAL_MAX_STREAM_DATA_UNI: u64 = 0x07;
    /// initial_max_streams_bidi
    pub const INITIAL_MAX_STREAMS_BIDI: u64 = 0x08;
    /// initial_max_streams_uni
    pub const INITIAL_MAX_STREAMS_UNI: u64 = 0x09;
    /// ack_delay_exponent
    pub const ACK_DELAY_EXPONENT: u64 = 0x0a;
    /// max_ack_delay
    pub const MAX_ACK_DELAY: u64 = 0x0b;
    /// disable_active_migration
    pub const DISABLE_ACTIVE_MIGRATION: u64 = 0x0c;
    /// preferred_address
    pub const PREFERRED_ADDRESS: u64 = 0x0d;
    /// active_connection_id_limit
    pub const ACTIVE_CONNECTION_ID_LIMIT: u64 = 0x0e;
    /// initial_source_connection_id
    pub const INITIAL_SOURCE_CONNECTION_ID: u64 = 0x0f;
    /// retry_source_connection_id
    pub const RETRY_SOURCE_CONNECTION_ID: u64 = 0x10;
    /// max_datagram_frame_size (RFC 9221)
    pub const MAX_DATAGRAM_FRAME_SIZE: u64 = 0x20;
}

/// A server's preferred address (RFC 9000 §18.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferredAddress {
    /// IPv4 address and port (unspecified if absent).
    pub v4: SocketAddrV4,
    /// IPv6 address and port (unspecified if absent).
    pub v6: SocketAddrV6,
    /// Connection ID to use at that address.
    pub cid: ConnectionId<'static>,
    /// Its stateless reset token.
    pub reset_token: [u8; RESET_TOKEN_LEN],
}

/// QUIC transport parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportParams {
    /// The original destination connection ID (server only).
    pub original_destination_connection_id: Option<ConnectionId<'static>>,
    /// Idle timeout in milliseconds; 0 disables it.
    pub max_idle_timeout: u64,
    /// Stateless reset token (server only).
    pub stateless_reset_token: Option<u128>,
    /// Largest UDP payload the endpoint is willing to receive.
    pub max_udp_payload_size: u64,
    /// Initial connection flow-control limit.
    pub initial_max_data: u64,
    /// Initial limit for bidi streams this endpoint opens.
    pub initial_max_stream_data_bidi_local: u64,
    /// Initial limit for bidi streams the peer opens.
    pub initial_max_stream_data_bidi_remote: u64,
    /// Initial limit for uni streams the peer opens.
    pub initial_max_stream_data_uni: u64,
    /// Initial number of bidi streams the peer may open.
    pub initial_max_streams_bidi: u64,
    /// Initial number of uni streams the peer may open.
    pub initial_max_streams_uni: u64,
    /// Exponent for decoding ACK Delay.
    pub ack_delay_exponent: u64,
    /// Maximum ack delay in milliseconds.
    pub max_ack_delay: u64,
    /// Whether active migration is disabled.
    pub disable_active_migration: bool,
    /// The server's preferred address (server only).
    pub preferred_address: Option<PreferredAddress>,
    /// Maximum number of connection IDs the endpoint stores.
    pub active_conn_id_limit: u64,
    /// The SCID of the endpoint's first Initial packet.
    pub initial_source_connection_id: Option<ConnectionId<'static>>,
    /// The SCID of the server's Retry packet (server only).
    pub retry_source_connection_id: Option<ConnectionId<'static>>,
    /// Largest DATAGRAM frame accepted (RFC 9221); `None`: no datagrams.
    pub max_datagram_frame_size: Option<u64>,
}

impl Default for TransportParams {
    /// The values an absent parameter takes (RFC 9000 §18.2).
    fn default() -> Self {
        TransportParams {
            original_destination_connection_id: None,
            max_idle_timeout: 0,
            stateless_reset_token: None,
            max_udp_payload_size: 65_527,
            initial_max_data: 0,
            initial_max_stream_data_bidi_local: 0,
            initial_max_stream_data_bidi_remote: 0,
            initial_max_stream_data_uni: 0,
            initial_max_streams_bidi: 0,
            initial_max_streams_uni: 0,
            ack_delay_exponent: 3,
            max_ack_delay: 25,
            disable_active_migration: false,
            preferred_address: None,
            active_conn_id_limit: 2,
            initial_source_connection_id: None,
            retry_source_connection_id: None,
            max_datagram_frame_size: None,
        }
    }
}

/// A reserved parameter ID (31 * N + 27, RFC 9000 §18.1) sent when
/// greasing, so that peers keep ignoring unknown parameters.
const GREASE_ID: u64 = 31 * 1337 + 27;

impl TransportParams {
    /// Decodes the peer's transport parameters. `is_server` says whether
    /// *we* are the server, i.e. whether the parameters came from a client,
    /// which must not send server-only parameters.
    pub fn decode(buf: &[u8], is_server: bool) -> Result<TransportParams> {
        use ids::*;
        let mut tp = TransportParams::default();
        let mut seen: u64 = 0;
        let mut b = Octets::with_slice(buf);
        while b.cap() > 0 {
            let id = b.get_varint().map_err(|_| Error::InvalidTransportParam)?;
            let val = b
                .get_bytes_with_varint_length()
                .map_err(|_| Error::InvalidTransportParam)?;

            if id < 64 {
                // RFC 9000 §7.4: "An endpoint SHOULD treat receipt of
                // duplicate transport parameters as a connection error of
                // type TRANSPORT_PARAMETER_ERROR."
                if seen & (1 << id) != 0 {
                    return Err(Error::InvalidTransportParam);
                }
                seen |= 1 << id;
            }

            // RFC 9000 §18.2: "A client MUST NOT include any server-only
            // transport parameter ... A server MUST treat receipt of any of
            // these transport parameters as a connection error of type
            // TRANSPORT_PARAMETER_ERROR."
            let server_only = matches!(
                id,
                ORIGINAL_DESTINATION_CONNECTION_ID
                    | STATELESS_RESET_TOKEN
                    | PREFERRED_ADDRESS
                    | RETRY_SOURCE_CONNECTION_ID
            );
            if server_only && is_server {
                return Err(Error::InvalidTransportParam);
            }

            let mut v = Octets::with_slice(val);
            match id {
                ORIGINAL_DESTINATION_CONNECTION_ID => {
                    tp.original_destination_connection_id = Some(cid(val)?);
                }
                MAX_IDLE_TIMEOUT => tp.max_idle_timeout = exact_varint(&mut v)?,
                STATELESS_RESET_TOKEN => {
                    let token: [u8; RESET_TOKEN_LEN] =
                        val.try_into().map_err(|_| Error::InvalidTransportParam)?;
                    tp.stateless_reset_token = Some(u128::from_be_bytes(token));
                }
                MAX_UDP_PAYLOAD_SIZE => {
                    tp.max_udp_payload_size = exact_varint(&mut v)?;
                    // RFC 9000 §18.2: "Values below 1200 are invalid."
                    if tp.max_udp_payload_size < 1200 {
                        return Err(Error::InvalidTransportParam);
                    }
                }
                INITIAL_MAX_DATA => tp.initial_max_data = exact_varint(&mut v)?,
                INITIAL_MAX_STREAM_DATA_BIDI_LOCAL => {
                    tp.initial_max_stream_data_bidi_local = exact_varint(&mut v)?;
                }
                INITIAL_MAX_STREAM_DATA_BIDI_REMOTE => {
                    tp.initial_max_stream_data_bidi_remote = exact_varint(&mut v)?;
                }
                INITIAL_MAX_STREAM_DATA_UNI => {
                    tp.initial_max_stream_data_uni = exact_varint(&mut v)?
                }
                INITIAL_MAX_STREAMS_BIDI | INITIAL_MAX_STREAMS_UNI => {
                    let n = exact_varint(&mut v)?;
                    // RFC 9000 §4.6: "If a max_streams transport parameter
                    // ... is received with a value greater than 2^60 ... the
                    // connection MUST be closed immediately with a
                    // connection error of type TRANSPORT_PARAMETER_ERROR".
                    if n > MAX_STREAMS_LIMIT {
                        return Err(Error::InvalidTransportParam);
                    }
                    if id == INITIAL_MAX_STREAMS_BIDI {
                        tp.initial_max_streams_bidi = n;
                    } else {
                        tp.initial_max_streams_uni = n;
                    }
                }
                ACK_DELAY_EXPONENT => {
                    tp.ack_delay_exponent = exact_varint(&mut v)?;
                    // RFC 9000 §18.2: "Values above 20 are invalid."
                    if tp.ack_delay_exponent > 20 {
                        return Err(Error::InvalidTransportParam);
                    }
                }
                MAX_ACK_DELAY => {
                    tp.max_ack_delay = exact_varint(&mut v)?;
                    // RFC 9000 §18.2: "Values of 2^14 or greater are
                    // invalid."
                    if tp.max_ack_delay >= 1 << 14 {
                        return Err(Error::InvalidTransportParam);
                    }
                }
                DISABLE_ACTIVE_MIGRATION => {
                    // A zero-length value (RFC 9000 §18.2).
                    if !val.is_empty() {
                        return Err(Error::InvalidTransportParam);
                    }
                    tp.disable_active_migration = true;
                }
                PREFERRED_ADDRESS => tp.preferred_address = Some(decode_preferred_address(val)?),
                ACTIVE_CONNECTION_ID_LIMIT => {
                    tp.active_conn_id_limit = exact_varint(&mut v)?;
                    // RFC 9000 §18.2: "The value of the
                    // active_connection_id_limit parameter MUST be at least
                    // 2. An endpoint that receives a value less than 2 MUST
                    // close the connection with an error of type
                    // TRANSPORT_PARAMETER_ERROR."
                    if tp.active_conn_id_limit < 2 {
                        return Err(Error::InvalidTransportParam);
                    }
                }
                INITIAL_SOURCE_CONNECTION_ID => tp.initial_source_connection_id = Some(cid(val)?),
                RETRY_SOURCE_CONNECTION_ID => tp.retry_source_connection_id = Some(cid(val)?),
                MAX_DATAGRAM_FRAME_SIZE => tp.max_datagram_frame_size = Some(exact_varint(&mut v)?),
                // RFC 9000 §7.4.2: "An endpoint MUST ignore transport
                // parameters that it does not support."
                _ => (),
            }
        }
        Ok(tp)
    }

    /// Encodes the parameters this endpoint sends. `is_server` says whether
    /// we are the server (server-only parameters are written only then);
    /// `grease` adds a reserved parameter. Returns the bytes written.
    pub fn encode(&self, is_server: bool, grease: bool, out: &mut [u8]) -> Result<usize> {
        use ids::*;
        let d = TransportParams::default();
        let mut b = OctetsMut::with_slice(out);
        if is_server {
            if let Some(odcid) = &self.original_destination_connection_id {
                put_bytes_param(&mut b, ORIGINAL_DESTINATION_CONNECTION_ID, odcid)?;
            }
        }
        if self.max_idle_timeout != d.max_idle_timeout {
            put_varint_param(&mut b, MAX_IDLE_TIMEOUT, self.max_idle_timeout)?;
        }
        if is_server {
            if let Some(token) = self.stateless_reset_token {
                put_bytes_param(&mut b, STATELESS_RESET_TOKEN, &token.to_be_bytes())?;
            }
        }
        if self.max_udp_payload_size != d.max_udp_payload_size {
            put_varint_param(&mut b, MAX_UDP_PAYLOAD_SIZE, self.max_udp_payload_size)?;
        }
        for (id, v, dv) in [
            (INITIAL_MAX_DATA, self.initial_max_data, d.initial_max_data),
            (
                INITIAL_MAX_STREAM_DATA_BIDI_LOCAL,
                self.initial_max_stream_data_bidi_local,
                d.initial_max_stream_data_bidi_local,
            ),
            (
                INITIAL_MAX_STREAM_DATA_BIDI_REMOTE,
                self.initial_max_stream_data_bidi_remote,
                d.initial_max_stream_data_bidi_remote,
            ),
            (
                INITIAL_MAX_STREAM_DATA_UNI,
                self.initial_max_stream_data_uni,
                d.initial_max_stream_data_uni,
            ),
            (
                INITIAL_MAX_STREAMS_BIDI,
                self.initial_max_streams_bidi,
                d.initial_max_streams_bidi,
            ),
            (
                INITIAL_MAX_STREAMS_UNI,
                self.initial_max_streams_uni,
                d.initial_max_streams_uni,
            ),
            (
                ACK_DELAY_EXPONENT,
                self.ack_delay_exponent,
                d.ack_delay_exponent,
            ),
            (MAX_ACK_DELAY, self.max_ack_delay, d.max_ack_delay),
            (
                ACTIVE_CONNECTION_ID_LIMIT,
                self.active_conn_id_limit,
                d.active_conn_id_limit,
            ),
        ] {
            if v != dv {
                put_varint_param(&mut b, id, v)?;
            }
        }
        if self.disable_active_migration {
            put_bytes_param(&mut b, DISABLE_ACTIVE_MIGRATION, &[])?;
        }
        if is_server {
            if let Some(pa) = &self.preferred_address {
                let mut tmp = [0u8; 4 + 2 + 16 + 2 + 1 + MAX_CONN_ID_LEN + RESET_TOKEN_LEN];
                let n = encode_preferred_address(pa, &mut tmp)?;
                put_bytes_param(&mut b, PREFERRED_ADDRESS, &tmp[..n])?;
            }
        }
        if let Some(scid) = &self.initial_source_connection_id {
            put_bytes_param(&mut b, INITIAL_SOURCE_CONNECTION_ID, scid)?;
        }
        if is_server {
            if let Some(rscid) = &self.retry_source_connection_id {
                put_bytes_param(&mut b, RETRY_SOURCE_CONNECTION_ID, rscid)?;
            }
        }
        if let Some(max) = self.max_datagram_frame_size {
            put_varint_param(&mut b, MAX_DATAGRAM_FRAME_SIZE, max)?;
        }
        if grease {
            put_bytes_param(&mut b, GREASE_ID, b"tarte")?;
        }
        Ok(b.off())
    }
}

/// Reads a varint that must fill the parameter value exactly.
fn exact_varint(v: &mut Octets<'_>) -> Result<u64> {
    let x = v.get_varint().map_err(|_| Error::InvalidTransportParam)?;
    if v.cap() != 0 {
        return Err(Error::InvalidTransportParam);
    }
    Ok(x)
}

fn cid(val: &[u8]) -> Result<ConnectionId<'static>> {
    if val.len() > MAX_CONN_ID_LEN {
        return Err(Error::InvalidTransportParam);
    }
    Ok(ConnectionId::from_vec(val.to_vec()))
}

fn put_varint_param(b: &mut OctetsMut<'_>, id: u64, v: u64) -> Result<()> {
    b.put_varint(id)?;
    b.put_varint(varint_len(v) as u64)?;
    b.put_varint(v)?;
    Ok(())
}

fn put_bytes_param(b: &mut OctetsMut<'_>, id: u64, v: &[u8]) -> Result<()> {
    b.put_varint(id)?;
    b.put_varint(v.len() as u64)?;
    b.put_bytes(v)?;
    Ok(())
}

fn decode_preferred_address(val: &[u8]) -> Result<PreferredAddress> {
    let bad = |_| Error::InvalidTransportParam;
    let mut b = Octets::with_slice(val);
    let v4: [u8; 4] = b
        .get_bytes(4)
        .map_err(bad)?
        .try_into()
        .map_err(|_| Error::InvalidTransportParam)?;
    let p4 = b.get_u16().map_err(bad)?;
    let v6: [u8; 16] = b
        .get_bytes(16)
        .map_err(bad)?
        .try_into()
        .map_err(|_| Error::InvalidTransportParam)?;
    let p6 = b.get_u16().map_err(bad)?;
    let cid_bytes = b.get_bytes_with_u8_length().map_err(bad)?;
    // RFC 9000 §18.2: a zero-length connection ID here is invalid ("A
    // server that chooses a zero-length connection ID MUST NOT provide a
    // preferred address").
    if cid_bytes.is_empty() || cid_bytes.len() > MAX_CONN_ID_LEN {
        return Err(Error::InvalidTransportParam);
    }
    let token: [u8; RESET_TOKEN_LEN] = b
        .get_bytes(RESET_TOKEN_LEN)
        .map_err(bad)?
        .try_into()
        .map_err(|_| Error::InvalidTransportParam)?;
    if b.cap() != 0 {
        return Err(Error::InvalidTransportParam);
    }
    Ok(PreferredAddress {
        v4: SocketAddrV4::new(Ipv4Addr::from(v4), p4),
        v6: SocketAddrV6::new(Ipv6Addr::from(v6), p6, 0, 0),
        cid: ConnectionId::from_vec(cid_bytes.to_vec()),
        reset_token: token,
    })
}

fn encode_preferred_address(pa: &PreferredAddress, out: &mut [u8]) -> Result<usize> {
    let mut b = OctetsMut::with_slice(out);
    b.put_bytes(&pa.v4.ip().octets())?;
    b.put_u16(pa.v4.port())?;
    b.put_bytes(&pa.v6.ip().octets())?;
    b.put_u16(pa.v6.port())?;
    b.put_u8(u8::try_from(pa.cid.len()).map_err(|_| Error::InvalidTransportParam)?)?;
    b.put_bytes(&pa.cid)?;
    b.put_bytes(&pa.reset_token)?;
    Ok(b.off())
}

#[cfg(test)]
mod tests;
