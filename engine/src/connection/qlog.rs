//! qlog: a connection's events as a JSON Text Sequence (RFC 7464) in the
//! qlog "sequential" file schema (draft-ietf-quic-qlog-main-schema) with
//! the QUIC event definitions of draft-ietf-quic-qlog-quic-events, which
//! qvis and other qlog tools read. [`Connection::set_qlog`] turns it on;
//! off, it costs one `Option` check where an event could be logged.
//!
//! Logged: `quic:connection_started`, `quic:parameters_set` (ours when
//! logging starts, the peer's when they arrive), `quic:packet_sent` and
//! `quic:packet_received` with their frames (Core level), `quic:packet_lost`,
//! `quic:recovery_metrics_updated` after each ACK that changed a metric,
//! and `quic:connection_closed` (Base level: any level but Core). A sent
//! packet lists its frames as the connection tracks them for loss
//! recovery: ACK frames by their largest acknowledged, PADDING not at all.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::{Connection, SentFrame};
use crate::frame::Frame;
use crate::recovery::Epoch;
use crate::transport_params::TransportParams;

/// How much a qlog holds (the importance levels of the qlog main schema):
/// each level adds to the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum QlogLevel {
    /// Packets sent and received, losses, recovery metrics, parameters.
    Core,
    /// And the connection's start and end.
    Base,
    /// Everything tarte logs (the same as `Base` for now).
    Extra,
}

/// The event schema this log follows: draft 12 of the QUIC events (a
/// draft's schema URI carries its number, as the draft requires).
const QUIC_EVENTS: &str = "urn:ietf:params:qlog:events:quic-12";

/// An open qlog of one connection.
pub(crate) struct Qlog {
    writer: Box<dyn Write + Send + Sync>,
    /// Time zero of the log's "time" fields (milliseconds).
    start: Instant,
    level: QlogLevel,
    /// The last recovery metrics logged, to log only changes.
    metrics: [u64; 6],
    /// Set when a write failed: nothing more is written.
    failed: bool,
    /// The file header, until written: a server learns the group ID (the
    /// client's original destination connection ID) from its first
    /// Initial.
    header: Option<Value>,
}

/// A peer-visible name of a packet of `epoch` (`zero_rtt`: a 0-RTT one).
pub(crate) fn packet_type(epoch: Epoch, zero_rtt: bool) -> &'static str {
    match epoch {
        Epoch::Initial => "initial",
        Epoch::Handshake => "handshake",
        Epoch::Application if zero_rtt => "0RTT",
        Epoch::Application => "1RTT",
    }
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(2 * b.len());
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn endpoint(a: SocketAddr) -> Value {
    match a {
        SocketAddr::V4(v) => json!({"ip_v4": v.ip().to_string(), "port_v4": v.port()}),
        SocketAddr::V6(v) => json!({"ip_v6": v.ip().to_string(), "port_v6": v.port()}),
    }
}

fn stream_type(bidi: bool) -> &'static str {
    if bidi {
        "bidirectional"
    } else {
        "unidirectional"
    }
}

/// A received frame, as qlog's `$QuicFrame`.
pub(crate) fn frame(f: &Frame<'_>) -> Value {
    match f {
        Frame::Padding { len } => json!({"frame_type": "padding", "raw": {"length": len}}),
        Frame::Ping => json!({"frame_type": "ping"}),
        Frame::Ack {
            ack_delay, ranges, ..
        } => {
            let acked: Vec<[u64; 2]> = ranges.iter().map(|r| [*r.start(), *r.end()]).collect();
            json!({"frame_type": "ack", "ack_delay_raw": ack_delay, "acked_ranges": acked})
        }
        Frame::ResetStream {
            stream_id,
            error_code,
            final_size,
        } => json!({"frame_type": "reset_stream", "stream_id": stream_id,
                "error": "unknown", "error_code": error_code, "final_size": final_size}),
        Frame::StopSending {
            stream_id,
            error_code,
        } => json!({"frame_type": "stop_sending", "stream_id": stream_id,
                "error": "unknown", "error_code": error_code}),
        Frame::Crypto { offset, data } => {
            json!({"frame_type": "crypto", "offset": offset, "raw": {"payload_length": data.len()}})
        }
        Frame::NewToken { token } => {
            json!({"frame_type": "new_token", "token": {"raw": {"length": token.len()}}})
        }
        Frame::Stream {
            stream_id,
            offset,
            data,
            fin,
        } => json!({"frame_type": "stream", "stream_id": stream_id, "offset": offset,
                "fin": fin, "raw": {"payload_length": data.len()}}),
        Frame::MaxData { max } => json!({"frame_type": "max_data", "maximum": max}),
        Frame::MaxStreamData { stream_id, max } => {
            json!({"frame_type": "max_stream_data", "stream_id": stream_id, "maximum": max})
        }
        Frame::MaxStreams { bidi, max } => json!({"frame_type": "max_streams",
                "stream_type": stream_type(*bidi), "maximum": max}),
        Frame::DataBlocked { limit } => json!({"frame_type": "data_blocked", "limit": limit}),
        Frame::StreamDataBlocked { stream_id, limit } => {
            json!({"frame_type": "stream_data_blocked", "stream_id": stream_id, "limit": limit})
        }
        Frame::StreamsBlocked { bidi, limit } => json!({"frame_type": "streams_blocked",
                "stream_type": stream_type(*bidi), "limit": limit}),
        Frame::NewConnectionId {
            seq_num,
            retire_prior_to,
            conn_id,
            reset_token,
        } => json!({"frame_type": "new_connection_id", "sequence_number": seq_num,
                "retire_prior_to": retire_prior_to, "connection_id": hex(conn_id),
                "stateless_reset_token": hex(reset_token)}),
        Frame::RetireConnectionId { seq_num } => {
            json!({"frame_type": "retire_connection_id", "sequence_number": seq_num})
        }
        Frame::PathChallenge { data } => {
            json!({"frame_type": "path_challenge", "data": hex(data)})
        }
        Frame::PathResponse { data } => json!({"frame_type": "path_response", "data": hex(data)}),
        Frame::ConnectionClose {
            error_code,
            frame_type,
            reason,
        } => json!({"frame_type": "connection_close", "error_space": "transport",
                "error_code": error_code, "trigger_frame_type": frame_type,
                "reason": String::from_utf8_lossy(reason)}),
        Frame::ApplicationClose { error_code, reason } => json!({"frame_type": "connection_close",
                "error_space": "application", "error_code": error_code,
                "reason": String::from_utf8_lossy(reason)}),
        Frame::HandshakeDone => json!({"frame_type": "handshake_done"}),
        Frame::Datagram { data, .. } => {
            json!({"frame_type": "datagram", "raw": {"payload_length": data.len()}})
        }
    }
}

/// A sent frame as the connection tracks it, as qlog's `$QuicFrame`.
fn sent_frame(f: &SentFrame) -> Value {
    match *f {
        SentFrame::Ack { largest } => {
            json!({"frame_type": "ack", "largest_acknowledged": largest})
        }
        SentFrame::Crypto { offset, len } => {
            json!({"frame_type": "crypto", "offset": offset, "raw": {"payload_length": len}})
        }
        SentFrame::Stream {
            id,
            offset,
            len,
            fin,
        } => json!({"frame_type": "stream", "stream_id": id, "offset": offset, "fin": fin,
                "raw": {"payload_length": len}}),
        SentFrame::ResetStream {
            id,
            error_code,
            final_size,
        } => json!({"frame_type": "reset_stream", "stream_id": id, "error": "unknown",
                "error_code": error_code, "final_size": final_size}),
        SentFrame::StopSending { id, error_code } => json!({"frame_type": "stop_sending",
                "stream_id": id, "error": "unknown", "error_code": error_code}),
        SentFrame::MaxData => json!({"frame_type": "max_data"}),
        SentFrame::MaxStreamData { id } => {
            json!({"frame_type": "max_stream_data", "stream_id": id})
        }
        SentFrame::MaxStreams { bidi } => {
            json!({"frame_type": "max_streams", "stream_type": stream_type(bidi)})
        }
        SentFrame::DataBlocked => json!({"frame_type": "data_blocked"}),
        SentFrame::StreamDataBlocked => json!({"frame_type": "stream_data_blocked"}),
        SentFrame::StreamsBlocked => json!({"frame_type": "streams_blocked"}),
        SentFrame::NewConnectionId { seq } => {
            json!({"frame_type": "new_connection_id", "sequence_number": seq})
        }
        SentFrame::RetireConnectionId { seq } => {
            json!({"frame_type": "retire_connection_id", "sequence_number": seq})
        }
        SentFrame::HandshakeDone => json!({"frame_type": "handshake_done"}),
        SentFrame::Ping => json!({"frame_type": "ping"}),
        // The PADDING of a probe is not listed (as for other packets).
        SentFrame::PmtuProbe { .. } => json!({"frame_type": "ping"}),
        SentFrame::PathChallenge => json!({"frame_type": "path_challenge"}),
        SentFrame::Datagram => json!({"frame_type": "datagram"}),
        SentFrame::Close => json!({"frame_type": "connection_close"}),
    }
}

/// Transport parameters as `quic:parameters_set` data.
fn parameters(p: &TransportParams, initiator: &str) -> Value {
    let mut v = json!({
        "initiator": initiator,
        "max_idle_timeout": p.max_idle_timeout,
        "max_udp_payload_size": p.max_udp_payload_size,
        "ack_delay_exponent": p.ack_delay_exponent,
        "max_ack_delay": p.max_ack_delay,
        "active_connection_id_limit": p.active_conn_id_limit,
        "initial_max_data": p.initial_max_data,
        "initial_max_stream_data_bidi_local": p.initial_max_stream_data_bidi_local,
        "initial_max_stream_data_bidi_remote": p.initial_max_stream_data_bidi_remote,
        "initial_max_stream_data_uni": p.initial_max_stream_data_uni,
        "initial_max_streams_bidi": p.initial_max_streams_bidi,
        "initial_max_streams_uni": p.initial_max_streams_uni,
        "disable_active_migration": p.disable_active_migration,
    });
    if let Some(d) = p.max_datagram_frame_size {
        v["max_datagram_frame_size"] = json!(d);
    }
    v
}

impl Qlog {
    /// A log to start with [`Qlog::begin`]: its file header (title,
    /// description, our vantage point) waits for the group ID.
    fn new(
        writer: Box<dyn Write + Send + Sync>,
        level: QlogLevel,
        title: &str,
        description: &str,
        is_server: bool,
        start: Instant,
    ) -> Qlog {
        let header = json!({
            "file_schema": "urn:ietf:params:qlog:file:sequential",
            "serialization_format": "application/qlog+json-seq",
            "title": title,
            "description": description,
            "trace": {
                "common_fields": {
                    "time_format": "relative_to_epoch",
                    "reference_time": {"clock_type": "monotonic", "epoch": "unknown"},
                },
                "vantage_point": {"type": if is_server { "server" } else { "client" }},
                "event_schemas": [QUIC_EVENTS],
            }
        });
        Qlog {
            writer,
            start,
            level,
            metrics: [u64::MAX; 6],
            failed: false,
            header: Some(header),
        }
    }

    /// Whether the header is still to be written.
    pub(crate) fn pending(&self) -> bool {
        self.header.is_some()
    }

    /// Writes the file header, with the connection's original destination
    /// connection ID as the group ID (both ends log the same one).
    fn begin(&mut self, group: &[u8]) {
        if let Some(mut h) = self.header.take() {
            h["trace"]["common_fields"]["group_id"] = json!(hex(group));
            self.write_record(&h);
        }
    }

    /// Writes one JSON-SEQ record: RS, the JSON text, LF (nothing before
    /// the header is out).
    fn record(&mut self, v: &Value) {
        if self.header.is_some() {
            return;
        }
        self.write_record(v);
    }

    fn write_record(&mut self, v: &Value) {
        if self.failed {
            return;
        }
        let mut buf = Vec::with_capacity(256);
        buf.push(0x1e);
        if serde_json::to_writer(&mut buf, v).is_err() {
            return;
        }
        buf.push(b'\n');
        if let Err(e) = self.writer.write_all(&buf) {
            tracing::debug!(error = %e, "qlog write failed; logging stops");
            self.failed = true;
        }
    }

    fn event(&mut self, now: Instant, name: &str, data: Value) {
        let time = now.saturating_duration_since(self.start).as_secs_f64() * 1e3;
        self.record(&json!({"time": time, "name": name, "data": data}));
    }

    /// Whether events of `level` are logged.
    fn wants(&self, level: QlogLevel) -> bool {
        level <= self.level
    }

    pub(crate) fn packet_sent(
        &mut self,
        now: Instant,
        ty: &str,
        pn: u64,
        len: usize,
        frames: &[SentFrame],
    ) {
        let frames: Vec<Value> = frames.iter().map(sent_frame).collect();
        self.event(
            now,
            "quic:packet_sent",
            json!({"header": {"packet_type": ty, "packet_number": pn},
                "raw": {"length": len}, "frames": frames}),
        );
    }

    pub(crate) fn packet_received(
        &mut self,
        now: Instant,
        ty: &str,
        pn: u64,
        len: usize,
        frames: Vec<Value>,
    ) {
        self.event(
            now,
            "quic:packet_received",
            json!({"header": {"packet_type": ty, "packet_number": pn},
                "raw": {"length": len}, "frames": frames}),
        );
    }

    pub(crate) fn packet_lost(&mut self, now: Instant, ty: &str, pn: u64, frames: &[SentFrame]) {
        let frames: Vec<Value> = frames.iter().map(sent_frame).collect();
        self.event(
            now,
            "quic:packet_lost",
            json!({"header": {"packet_type": ty, "packet_number": pn}, "frames": frames}),
        );
    }

    pub(crate) fn parameters_set(&mut self, now: Instant, p: &TransportParams, initiator: &str) {
        self.event(now, "quic:parameters_set", parameters(p, initiator));
    }

    pub(crate) fn connection_started(&mut self, now: Instant, local: SocketAddr, peer: SocketAddr) {
        if self.wants(QlogLevel::Base) {
            self.event(
                now,
                "quic:connection_started",
                json!({"local": endpoint(local), "remote": endpoint(peer)}),
            );
        }
    }

    pub(crate) fn connection_closed(&mut self, now: Instant, data: Value) {
        if self.wants(QlogLevel::Base) {
            self.event(now, "quic:connection_closed", data);
        }
    }

    /// Logs the recovery metrics that changed since last logged: RTTs
    /// in milliseconds, sizes in bytes.
    pub(crate) fn metrics(&mut self, now: Instant, m: [u64; 6]) {
        const NAMES: [&str; 6] = [
            "min_rtt",
            "smoothed_rtt",
            "latest_rtt",
            "rtt_variance",
            "congestion_window",
            "bytes_in_flight",
        ];
        let mut data = Map::new();
        for (i, (v, name)) in m.iter().zip(NAMES).enumerate() {
            if *v != self.metrics[i] {
                // The first four are RTTs in microseconds.
                let value = if i < 4 {
                    json!(*v as f64 / 1e3)
                } else {
                    json!(v)
                };
                data.insert(name.into(), value);
            }
        }
        self.metrics = m;
        if !data.is_empty() {
            self.event(now, "quic:recovery_metrics_updated", Value::Object(data));
        }
    }
}

impl Connection {
    /// Writes this connection's qlog to `writer` (JSON-SEQ, the qlog
    /// "sequential" schema: what qvis reads) at the `Base` level. Call it
    /// right after `connect`/`accept`: what happened before is not
    /// logged. Logging costs time per packet (a JSON record each): for
    /// debugging and measurement runs.
    pub fn set_qlog(
        &mut self,
        writer: Box<dyn Write + Send + Sync>,
        title: String,
        description: String,
    ) {
        self.set_qlog_with_level(writer, title, description, QlogLevel::Base)
    }

    /// [`Connection::set_qlog`] at the given level.
    pub fn set_qlog_with_level(
        &mut self,
        writer: Box<dyn Write + Send + Sync>,
        title: String,
        description: String,
        level: QlogLevel,
    ) {
        let now = Instant::now();
        let q = Qlog::new(writer, level, &title, &description, self.is_server, now);
        self.qlog = Some(Box::new(q));
        // A server before the client's first Initial does not know the
        // group ID yet: it starts the log then (`qlog_begin`).
        if !(self.is_server && self.initial_dcid.is_empty() && self.odcid.is_empty()) {
            self.qlog_begin(now);
        }
    }

    /// Writes the qlog's header and the events of the connection's start.
    pub(super) fn qlog_begin(&mut self, now: Instant) {
        let group = if self.odcid.is_empty() {
            self.initial_dcid.to_vec()
        } else {
            self.odcid.to_vec()
        };
        let (local, peer) = (self.local_addr, self.peer_addr);
        let Some(q) = self.qlog.as_deref_mut().filter(|q| q.pending()) else {
            return;
        };
        q.begin(&group);
        q.connection_started(now, local, peer);
        q.parameters_set(now, &self.local_params, "local");
        if self.peer_params_parsed {
            q.parameters_set(now, &self.peer_params, "remote");
        }
    }

    /// Logs the recovery metrics after an ACK (those that changed).
    pub(super) fn qlog_metrics(&mut self, now: Instant) {
        if self.qlog.is_none() {
            return;
        }
        let rtt = self.recovery.rtt();
        let m = [
            rtt.min_rtt.as_micros() as u64,
            rtt.smoothed_rtt.as_micros() as u64,
            rtt.latest_rtt.as_micros() as u64,
            rtt.rttvar.as_micros() as u64,
            self.recovery.cwnd() as u64,
            self.recovery.bytes_in_flight() as u64,
        ];
        if let Some(q) = self.qlog.as_deref_mut() {
            q.metrics(now, m);
        }
    }

    /// Logs the connection's end: `initiator` "local" or "remote".
    pub(super) fn qlog_closed(
        &mut self,
        now: Instant,
        initiator: &str,
        is_app: bool,
        code: u64,
        reason: &[u8],
        trigger: &str,
    ) {
        if let Some(q) = self.qlog.as_deref_mut() {
            let mut data = json!({"initiator": initiator, "error_code": code,
                "reason": String::from_utf8_lossy(reason), "trigger": trigger});
            let key = if is_app {
                "application_error"
            } else {
                "connection_error"
            };
            data[key] = json!("unknown");
            q.connection_closed(now, data);
        }
    }
}
