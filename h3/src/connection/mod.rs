//! The HTTP/3 connection (RFC 9114) over a `tarte::Connection`, with
//! quiche's `h3::Connection` API.
//!
//! Calling order, as with quiche: create it with
//! [`Connection::with_transport`] once the QUIC handshake is under way (it
//! opens the control and QPACK streams and queues SETTINGS), then after
//! every batch of received packets call [`Connection::poll`] until it
//! returns [`Error::Done`]. Requests and responses go out with
//! `send_request`/`send_response`/`send_body`; bodies come in through
//! [`Event::Data`] and [`Connection::recv_body`].
//!
//! Every connection error closes the QUIC connection with its H3 code
//! (`conn.close(true, code, reason)`) and is returned once; stream errors
//! reset the stream with their code and leave the connection up.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};

use tarte::octets::{varint_len, OctetsMut};

use crate::codepoint::reserved;
use crate::config::Config;
use crate::frame::{self, Frame, FrameHeaderReader, FrameType};
use crate::priority::Priority;
use crate::qpack::{Decoder, DynamicTable, Encoder};
use crate::settings::Settings;
use crate::stream_type::StreamType;
use crate::{Error, Header, NameValue, Result};

mod recv;
mod validate;

/// Largest control-stream frame payload we buffer (SETTINGS, GOAWAY,
/// PRIORITY_UPDATE…); a larger one is H3_EXCESSIVE_LOAD.
pub const MAX_CONTROL_FRAME: u64 = 16 * 1024;
/// Most PRIORITY_UPDATE values kept for [`Connection::take_last_priority_update`].
const MAX_PRIORITY_UPDATES: usize = 4096;

/// What [`Connection::poll`] reports, with a stream ID (or the GOAWAY ID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A field section (request/response headers, or trailers).
    Headers {
        /// The fields.
        list: Vec<Header>,
        /// Whether more frames (body, trailers) may follow on the stream.
        more_frames: bool,
    },
    /// Body data is ready for [`Connection::recv_body`]; reported again
    /// only after `recv_body` has drained what was there.
    Data,
    /// The peer finished the stream and everything was read.
    Finished,
    /// The peer reset the stream with this error code.
    Reset(u64),
    /// A PRIORITY_UPDATE arrived for this stream; read it with
    /// [`Connection::take_last_priority_update`].
    PriorityUpdate,
    /// The peer sent GOAWAY with this ID.
    GoAway,
}

/// Where reading a request stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecvState {
    /// Reading a frame header.
    FrameHeader,
    /// Reading a HEADERS payload of this many more bytes.
    Headers(u64),
    /// Inside a DATA payload with this many bytes left.
    Data(u64),
    /// Skipping an unknown frame's payload.
    Skip(u64),
    /// The field section waits for QPACK inserts.
    QpackBlocked,
    /// FIN read (or the stream failed): nothing more to read.
    Done,
}

/// A request stream (ours or the peer's).
#[derive(Debug)]
struct ReqStream {
    recv: RecvState,
    hdr: FrameHeaderReader,
    /// HEADERS payload being collected.
    buf: Vec<u8>,
    /// Field sections received: 1 after the headers, 2 after trailers.
    sections: u8,
    /// The FIN was read; what is left to parse is in our state.
    fin_pending: bool,
    /// A Data event was reported and `recv_body` has not drained it.
    data_event: bool,
    /// Frames waiting for stream capacity (HEADERS and trailers).
    out: Vec<u8>,
    /// Send FIN after `out`.
    out_fin: bool,
    /// Our side sent FIN (or reset).
    local_done: bool,
    /// Finished was reported.
    finished: bool,
    /// Headers were sent on it by us.
    headers_sent: bool,
}

impl ReqStream {
    fn new() -> Self {
        ReqStream {
            recv: RecvState::FrameHeader,
            hdr: FrameHeaderReader::default(),
            buf: Vec::new(),
            sections: 0,
            fin_pending: false,
            data_event: false,
            out: Vec::new(),
            out_fin: false,
            local_done: false,
            finished: false,
            headers_sent: false,
        }
    }
}

/// What a peer unidirectional stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UniKind {
    /// The type varint is not complete yet.
    Pending,
    Control,
    QpackEncoder,
    QpackDecoder,
    /// An unknown or reserved type: reading was stopped.
    Ignored,
}

/// A unidirectional stream the peer opened.
#[derive(Debug)]
struct UniStream {
    kind: UniKind,
    ty: frame::VarintReader,
    hdr: FrameHeaderReader,
    /// The control frame being collected: type, remaining bytes.
    frame: Option<(u64, u64)>,
    buf: Vec<u8>,
}

/// One of our unidirectional streams, with bytes not yet accepted by the
/// transport.
#[derive(Debug)]
struct LocalUni {
    id: u64,
    out: Vec<u8>,
    fin: bool,
}

impl LocalUni {
    fn flush(&mut self, conn: &mut tarte::Connection) -> Result<()> {
        if self.out.is_empty() && !self.fin {
            return Ok(());
        }
        match conn.stream_send(self.id, &self.out, self.fin) {
            Ok(n) => {
                self.out.drain(..n);
                if self.out.is_empty() {
                    self.fin = false;
                }
                Ok(())
            }
            Err(tarte::Error::Done) => Ok(()),
            Err(e) => Err(Error::TransportError(e)),
        }
    }
}

/// QPACK statistics (the dynamic table on both sides).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QpackStats {
    /// Entries our decoder has inserted (from the peer's encoder stream).
    pub decoder_insert_count: u64,
    /// Our decoder's dynamic table capacity, as set by the peer's encoder.
    pub decoder_capacity: u64,
    /// Entries our encoder has inserted.
    pub encoder_insert_count: u64,
    /// Our encoder's dynamic table capacity.
    pub encoder_capacity: u64,
    /// Inserts the peer's decoder has acknowledged.
    pub encoder_known_received_count: u64,
}

/// An HTTP/3 connection.
pub struct Connection {
    is_server: bool,
    max_field_section_size: Option<u64>,
    extended_connect: bool,
    h3_datagram: bool,
    next_request_id: u64,
    control: LocalUni,
    enc: LocalUni,
    dec: LocalUni,
    grease_stream: Option<LocalUni>,
    peer_control: Option<u64>,
    peer_encoder: Option<u64>,
    peer_decoder: Option<u64>,
    uni: HashMap<u64, UniStream>,
    streams: HashMap<u64, ReqStream>,
    /// Streams with frames in `out`.
    pending_out: Vec<u64>,
    encoder: Encoder,
    decoder: Decoder,
    peer_settings: Option<Settings>,
    peer_settings_raw: Option<Vec<(u64, u64)>>,
    local_goaway: Option<u64>,
    peer_goaway: Option<u64>,
    events: VecDeque<(u64, Event)>,
    priority_updates: HashMap<u64, Vec<u8>>,
    error: Option<Error>,
    scratch: Vec<u8>,
}

fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

impl Connection {
    /// Starts HTTP/3 on `conn`: opens the control stream (SETTINGS first),
    /// the QPACK encoder and decoder streams, and, with grease on, a
    /// reserved stream type (RFC 9114 §6.2.1, §6.2.3; RFC 9204 §4.2).
    pub fn with_transport(conn: &mut tarte::Connection, config: &Config) -> Result<Connection> {
        let is_server = conn.is_server();
        let uni = |n: u64| (n << 2) | 2 | u64::from(is_server);
        let mut decoder = Decoder::new(
            config.qpack_max_table_capacity,
            config.qpack_blocked_streams,
        );
        decoder.set_max_field_section_size(config.max_field_section_size);
        let mut encoder = Encoder::new();
        encoder.set_capacity_limit(config.qpack_encoder_capacity_limit);
        let rnd = random_u64();
        let mut h3 = Connection {
            is_server,
            max_field_section_size: config.max_field_section_size,
            extended_connect: config.connect_protocol_enabled,
            h3_datagram: config.h3_datagram,
            next_request_id: 0,
            control: LocalUni {
                id: uni(0),
                out: Vec::new(),
                fin: false,
            },
            enc: LocalUni {
                id: uni(1),
                out: Vec::new(),
                fin: false,
            },
            dec: LocalUni {
                id: uni(2),
                out: Vec::new(),
                fin: false,
            },
            grease_stream: None,
            peer_control: None,
            peer_encoder: None,
            peer_decoder: None,
            uni: HashMap::new(),
            streams: HashMap::new(),
            pending_out: Vec::new(),
            encoder,
            decoder,
            peer_settings: None,
            peer_settings_raw: None,
            local_goaway: None,
            peer_goaway: None,
            events: VecDeque::new(),
            priority_updates: HashMap::new(),
            error: None,
            scratch: vec![0; 16 * 1024],
        };
        let settings = Settings {
            max_field_section_size: config.max_field_section_size,
            qpack_max_table_capacity: Some(config.qpack_max_table_capacity),
            qpack_blocked_streams: Some(config.qpack_blocked_streams),
            connect_protocol_enabled: config.connect_protocol_enabled.then_some(1),
            h3_datagram: config.h3_datagram.then_some(1),
            additional: {
                let mut a = config.additional_settings.clone();
                if config.grease {
                    // §7.2.4.1: reserved identifiers "SHOULD" be sent to
                    // exercise the peer's handling of unknown settings.
                    a.push((reserved(rnd % 1000), rnd >> 40));
                }
                a
            },
        };
        // §6.2.1: "Each side MUST initiate a single control stream at the
        // beginning of the connection and send its SETTINGS frame as the
        // first frame on this stream."
        put_varint(&mut h3.control.out, StreamType::Control.to_wire());
        put_frame(&mut h3.control.out, &Frame::Settings(settings))?;
        if config.grease {
            // §7.2.8: frames of reserved types exercise the peer's skipping.
            let ty = reserved((rnd >> 10) % 1000);
            put_frame(
                &mut h3.control.out,
                &Frame::Unknown {
                    raw_type: ty,
                    payload_length: 4,
                },
            )?;
            let mut out = Vec::new();
            put_varint(&mut out, reserved((rnd >> 20) % 1000));
            out.extend_from_slice(b"GREASE is the word");
            h3.grease_stream = Some(LocalUni {
                id: uni(3),
                out,
                fin: true,
            });
        }
        put_varint(&mut h3.enc.out, StreamType::QpackEncoder.to_wire());
        put_varint(&mut h3.dec.out, StreamType::QpackDecoder.to_wire());
        h3.flush_local(conn)?;
        // The control and QPACK streams go before any request data: a
        // stalled encoder stream blocks every request.
        for id in [h3.control.id, h3.enc.id, h3.dec.id] {
            let _ = conn.stream_priority(id, 0, false);
        }
        Ok(h3)
    }

    /// Sends a request on a new stream; returns its ID.
    pub fn send_request<T: NameValue>(
        &mut self,
        conn: &mut tarte::Connection,
        headers: &[T],
        fin: bool,
    ) -> Result<u64> {
        self.check_open()?;
        if self.is_server {
            return Err(Error::FrameUnexpected);
        }
        let id = self.next_request_id;
        // §5.2: after GOAWAY, no new requests on this connection.
        if self.peer_goaway.is_some_and(|g| id >= g) {
            return Err(Error::FrameUnexpected);
        }
        if conn.peer_streams_left_bidi() == 0 {
            return Err(Error::TransportError(tarte::Error::StreamLimit));
        }
        self.streams.insert(id, ReqStream::new());
        self.send_headers(conn, id, headers, fin)?;
        self.next_request_id += 4;
        Ok(id)
    }

    /// Sends a response's headers on `stream_id`.
    pub fn send_response<T: NameValue>(
        &mut self,
        conn: &mut tarte::Connection,
        stream_id: u64,
        headers: &[T],
        fin: bool,
    ) -> Result<()> {
        self.check_open()?;
        let st = self.streams.get(&stream_id).ok_or(Error::FrameUnexpected)?;
        if st.headers_sent || st.local_done {
            return Err(Error::FrameUnexpected);
        }
        self.send_headers(conn, stream_id, headers, fin)
    }

    /// Sends a response and sets the stream's priority (RFC 9218).
    pub fn send_response_with_priority<T: NameValue>(
        &mut self,
        conn: &mut tarte::Connection,
        stream_id: u64,
        headers: &[T],
        priority: &Priority,
        fin: bool,
    ) -> Result<()> {
        conn.stream_priority(stream_id, priority.urgency, priority.incremental)?;
        self.send_response(conn, stream_id, headers, fin)
    }

    /// Sends another field section on a stream whose headers were sent:
    /// trailers when `is_trailer_section` (RFC 9114 §4.1).
    pub fn send_additional_headers<T: NameValue>(
        &mut self,
        conn: &mut tarte::Connection,
        stream_id: u64,
        headers: &[T],
        is_trailer_section: bool,
        fin: bool,
    ) -> Result<()> {
        self.check_open()?;
        let st = self.streams.get(&stream_id).ok_or(Error::FrameUnexpected)?;
        if !st.headers_sent || st.local_done || (is_trailer_section && !fin) {
            return Err(Error::FrameUnexpected);
        }
        self.send_headers(conn, stream_id, headers, fin)
    }

    /// Encodes `headers` and queues the HEADERS frame (and the encoder
    /// instructions it needs); frames are buffered when the stream has no
    /// room, so a field section is never half-sent.
    fn send_headers<T: NameValue>(
        &mut self,
        conn: &mut tarte::Connection,
        stream_id: u64,
        headers: &[T],
        fin: bool,
    ) -> Result<()> {
        // RFC 9114 §4.2.2: do not exceed the peer's
        // SETTINGS_MAX_FIELD_SECTION_SIZE.
        if let Some(limit) = self
            .peer_settings
            .as_ref()
            .and_then(|s| s.max_field_section_size)
        {
            let size: u64 = headers
                .iter()
                .map(|h| crate::qpack::entry_size(h.name(), h.value()))
                .sum();
            if size > limit {
                return Err(Error::ExcessiveLoad);
            }
        }
        let mut block = Vec::new();
        self.encoder.encode(stream_id, headers, &mut block)?;
        self.encoder.emit_encoder_stream(&mut self.enc.out);
        let st = self
            .streams
            .get_mut(&stream_id)
            .ok_or(Error::InternalError)?;
        put_varint(&mut st.out, FrameType::Headers.to_wire());
        put_varint(&mut st.out, block.len() as u64);
        st.out.extend_from_slice(&block);
        st.out_fin = fin;
        st.headers_sent = true;
        if !self.pending_out.contains(&stream_id) {
            self.pending_out.push(stream_id);
        }
        self.flush_local(conn)
    }

    /// Sends body bytes as one DATA frame sized to the stream's capacity;
    /// returns how many body bytes were taken. `Err(Done)` when there is no
    /// room now (wait for the stream to be writable again).
    pub fn send_body(
        &mut self,
        conn: &mut tarte::Connection,
        stream_id: u64,
        body: &[u8],
        fin: bool,
    ) -> Result<usize> {
        self.send_body_with(conn, stream_id, body.len(), fin, |conn, n, fin| {
            conn.stream_send(stream_id, &body[..n], fin)
        })
    }

    /// [`Connection::send_body`] of `body[range]` without copying it: the
    /// transport references the shared buffer until the peer acknowledged
    /// the bytes (`tarte::Connection::stream_send_shared`), so responses
    /// of one cached object to many clients share one copy.
    pub fn send_body_shared(
        &mut self,
        conn: &mut tarte::Connection,
        stream_id: u64,
        body: &std::sync::Arc<[u8]>,
        range: std::ops::Range<usize>,
        fin: bool,
    ) -> Result<usize> {
        if range.start > range.end || range.end > body.len() {
            return Err(Error::BufferTooShort);
        }
        let start = range.start;
        self.send_body_with(conn, stream_id, range.len(), fin, |conn, n, fin| {
            conn.stream_send_shared(stream_id, body, start..start + n, fin)
        })
    }

    /// The DATA frame logic of both `send_body` kinds: `write(conn, n,
    /// fin)` queues the first `n` of the `len` body bytes.
    fn send_body_with(
        &mut self,
        conn: &mut tarte::Connection,
        stream_id: u64,
        len: usize,
        fin: bool,
        write: impl FnOnce(&mut tarte::Connection, usize, bool) -> tarte::Result<usize>,
    ) -> Result<usize> {
        self.check_open()?;
        self.flush_local(conn)?;
        let st = self
            .streams
            .get_mut(&stream_id)
            .ok_or(Error::FrameUnexpected)?;
        if !st.headers_sent || st.local_done {
            return Err(Error::FrameUnexpected);
        }
        if !st.out.is_empty() {
            return Err(Error::Done);
        }
        if len == 0 && !fin {
            return Err(Error::Done);
        }
        let cap = conn.stream_capacity(stream_id)?;
        // The largest payload whose frame fits `cap`.
        let mut n = len.min(cap);
        while n > 0 && frame::header_len(0, n as u64) + n > cap {
            n = cap.saturating_sub(frame::header_len(0, n as u64));
        }
        if n == 0 && len > 0 {
            return Err(Error::Done);
        }
        if len == 0 {
            // A bare FIN.
            conn.stream_send(stream_id, &[], true)?;
            st.local_done = true;
            self.maybe_collect(stream_id);
            return Ok(0);
        }
        let mut hdr = [0u8; 16];
        let hlen = {
            let mut b = OctetsMut::with_slice(&mut hdr);
            frame::encode_header(FrameType::Data.to_wire(), n as u64, &mut b)?;
            b.off()
        };
        let fin = fin && n == len;
        let sent = conn.stream_send(stream_id, &hdr[..hlen], false)?;
        let sent_body = write(conn, n, fin)?;
        if sent != hlen || sent_body != n {
            // Capacity was checked; a short write would corrupt framing.
            return Err(self.conn_error(conn, Error::InternalError, "short stream write"));
        }
        if fin {
            st.local_done = true;
            self.maybe_collect(stream_id);
        }
        Ok(n)
    }

    /// Sends GOAWAY: from a server, the first request stream ID it will
    /// not process; from a client, a push ID (RFC 9114 §5.2).
    pub fn send_goaway(&mut self, conn: &mut tarte::Connection, id: u64) -> Result<()> {
        self.check_open()?;
        // §5.2: a server's ID is a client-initiated bidirectional stream ID,
        // and "An endpoint MUST NOT send a GOAWAY with a greater identifier
        // than it has already sent".
        if (self.is_server && id % 4 != 0) || self.local_goaway.is_some_and(|g| id > g) {
            return Err(Error::IdError);
        }
        self.local_goaway = Some(id);
        put_frame(&mut self.control.out, &Frame::GoAway { id })?;
        self.flush_local(conn)
    }

    /// Sends PRIORITY_UPDATE for a request stream (client only, RFC 9218
    /// §7.2).
    pub fn send_priority_update_for_request(
        &mut self,
        conn: &mut tarte::Connection,
        stream_id: u64,
        priority: &Priority,
    ) -> Result<()> {
        self.check_open()?;
        if self.is_server || stream_id % 4 != 0 {
            return Err(Error::FrameUnexpected);
        }
        let frame = Frame::PriorityUpdateRequest {
            prioritized_element_id: stream_id,
            priority_field_value: priority.to_field_value().into_bytes(),
        };
        put_frame(&mut self.control.out, &frame)?;
        self.flush_local(conn)
    }

    /// The last PRIORITY_UPDATE value received for a stream (removing it).
    pub fn take_last_priority_update(&mut self, prioritized_element_id: u64) -> Result<Vec<u8>> {
        self.priority_updates
            .remove(&prioritized_element_id)
            .ok_or(Error::Done)
    }

    /// The peer's SETTINGS as `(identifier, value)` pairs, once received.
    pub fn peer_settings_raw(&self) -> Option<&[(u64, u64)]> {
        self.peer_settings_raw.as_deref()
    }

    /// Whether the peer enabled extended CONNECT (RFC 9220).
    pub fn extended_connect_enabled_by_peer(&self) -> bool {
        self.peer_settings
            .as_ref()
            .is_some_and(|s| s.connect_protocol_enabled == Some(1))
    }

    /// Whether the peer enabled HTTP datagrams (RFC 9297).
    pub fn dgram_enabled_by_peer(&self, conn: &tarte::Connection) -> bool {
        self.peer_settings
            .as_ref()
            .is_some_and(|s| s.h3_datagram == Some(1))
            && conn.dgram_max_writable_len().is_some()
    }

    /// Sends an HTTP datagram for request stream `stream_id`: the Quarter
    /// Stream ID then the payload (RFC 9297 §2.1).
    pub fn dgram_send(
        &mut self,
        conn: &mut tarte::Connection,
        stream_id: u64,
        payload: &[u8],
    ) -> Result<()> {
        if !self.h3_datagram || !self.dgram_enabled_by_peer(conn) || stream_id % 4 != 0 {
            return Err(Error::FrameUnexpected);
        }
        let q = stream_id / 4;
        let mut d = Vec::with_capacity(varint_len(q) + payload.len());
        put_varint(&mut d, q);
        d.extend_from_slice(payload);
        conn.dgram_send(&d)?;
        Ok(())
    }

    /// Receives an HTTP datagram: writes its payload to the front of `buf`
    /// and returns its length and the request stream ID.
    pub fn dgram_recv(
        &mut self,
        conn: &mut tarte::Connection,
        buf: &mut [u8],
    ) -> Result<(usize, u64)> {
        let len = conn.dgram_recv(buf)?;
        let mut b = tarte::octets::Octets::with_slice(&buf[..len]);
        let Ok(q) = b.get_varint() else {
            // RFC 9297 §2.1: a datagram too short for its Quarter Stream ID
            // is H3_DATAGRAM_ERROR.
            return Err(self.conn_error(conn, Error::DatagramError, "truncated HTTP datagram"));
        };
        let off = b.off();
        // §2.1: a Quarter Stream ID larger than any client bidirectional
        // stream ID can be "MUST be treated as ... H3_DATAGRAM_ERROR".
        let Some(stream_id) = q.checked_mul(4).filter(|&s| s <= tarte::octets::MAX_VARINT) else {
            return Err(self.conn_error(conn, Error::DatagramError, "bad Quarter Stream ID"));
        };
        buf.copy_within(off..len, 0);
        Ok((len - off, stream_id))
    }

    /// QPACK dynamic table statistics.
    pub fn qpack_stats(&self) -> QpackStats {
        QpackStats {
            decoder_insert_count: self.decoder.table().insert_count(),
            decoder_capacity: self.decoder.table().capacity(),
            encoder_insert_count: self.encoder.table().insert_count(),
            encoder_capacity: self.encoder.table().capacity(),
            encoder_known_received_count: self.encoder.known_received_count(),
        }
    }

    /// Our decoder's dynamic table.
    pub fn decoder_table(&self) -> &DynamicTable {
        self.decoder.table()
    }

    /// Number of request streams this connection still tracks.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    fn check_open(&self) -> Result<()> {
        match self.error {
            Some(_) => Err(Error::Done),
            None => Ok(()),
        }
    }

    /// Closes the connection with `e`'s H3 code (once) and returns `e`.
    fn conn_error(&mut self, conn: &mut tarte::Connection, e: Error, reason: &str) -> Error {
        if self.error.is_none() {
            tracing::debug!(error = ?e, reason, "h3: connection error");
            let _ = conn.close(true, e.to_wire(), reason.as_bytes());
            self.error = Some(e);
        }
        e
    }

    /// A stream error: reset both directions with `e`'s code and forget the
    /// stream (RFC 9114 §8).
    fn stream_error(&mut self, conn: &mut tarte::Connection, stream_id: u64, e: Error) {
        tracing::debug!(stream_id, error = ?e, "h3: stream error");
        let code = e.to_wire();
        let _ = conn.stream_shutdown(stream_id, tarte::Shutdown::Read, code);
        let _ = conn.stream_shutdown(stream_id, tarte::Shutdown::Write, code);
        self.decoder.cancel_stream(stream_id);
        self.streams.remove(&stream_id);
        self.pending_out.retain(|&s| s != stream_id);
    }

    /// Forgets a stream both sides are done with.
    fn maybe_collect(&mut self, stream_id: u64) {
        if self
            .streams
            .get(&stream_id)
            .is_some_and(|s| s.local_done && s.finished)
        {
            self.streams.remove(&stream_id);
        }
    }

    /// Pushes buffered bytes of our unidirectional and request streams into
    /// the transport.
    fn flush_local(&mut self, conn: &mut tarte::Connection) -> Result<()> {
        if self.encoder.has_encoder_stream_data() {
            self.encoder.emit_encoder_stream(&mut self.enc.out);
        }
        if self.decoder.has_decoder_stream_data() {
            self.decoder.emit_decoder_stream(&mut self.dec.out);
        }
        self.control.flush(conn)?;
        // Encoder instructions before the sections that need them.
        self.enc.flush(conn)?;
        self.dec.flush(conn)?;
        if let Some(g) = &mut self.grease_stream {
            // Best effort: a grease stream the peer's limits refuse is
            // simply dropped.
            if g.flush(conn).is_err() || g.out.is_empty() {
                self.grease_stream = None;
            }
        }
        let mut i = 0;
        while i < self.pending_out.len() {
            let id = self.pending_out[i];
            let Some(st) = self.streams.get_mut(&id) else {
                self.pending_out.swap_remove(i);
                continue;
            };
            let n = match conn.stream_send(id, &st.out, st.out_fin) {
                Ok(n) => n,
                Err(tarte::Error::Done) => 0,
                Err(tarte::Error::StreamLimit) => {
                    return Err(Error::TransportError(tarte::Error::StreamLimit))
                }
                Err(e) => {
                    // The peer stopped the stream: drop what we had.
                    tracing::debug!(id, ?e, "h3: request stream send failed");
                    st.out.clear();
                    st.local_done = true;
                    0
                }
            };
            st.out.drain(..n);
            if st.out.is_empty() {
                if st.out_fin {
                    st.local_done = true;
                }
                self.pending_out.swap_remove(i);
                self.maybe_collect(id);
            } else {
                i += 1;
            }
        }
        Ok(())
    }
}

fn put_varint(out: &mut Vec<u8>, v: u64) {
    let mut b = [0u8; 8];
    let n = {
        let mut o = OctetsMut::with_slice(&mut b);
        // A value above the varint range is an invariant violation by the
        // caller; encode nothing rather than panic.
        if o.put_varint(v).is_err() {
            return;
        }
        o.off()
    };
    out.extend_from_slice(&b[..n]);
}

fn put_frame(out: &mut Vec<u8>, f: &Frame) -> Result<()> {
    let start = out.len();
    out.resize(start + f.wire_len(), 0);
    let mut b = OctetsMut::with_slice(&mut out[start..]);
    f.encode(&mut b)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_helpers() {
        let mut v = Vec::new();
        put_varint(&mut v, 0x3fff);
        assert_eq!(v, [0x7f, 0xff]);
        let mut f = Vec::new();
        put_frame(&mut f, &Frame::GoAway { id: 4 }).unwrap();
        assert_eq!(f, [0x07, 0x01, 0x04]);
    }
}
