//! The receive side: [`Connection::poll`], the peer's unidirectional
//! streams (control, QPACK encoder/decoder, unknown types), request stream
//! framing, and [`Connection::recv_body`].

use crate::frame::{is_http2_frame_type, Frame, FrameHeader, FrameType};
use crate::priority::Priority;
use crate::qpack::{Decoded, Error as QpackError};
use crate::settings::Settings;
use crate::stream_type::StreamType;
use crate::{Error, Header, NameValue, Result};

use super::validate::{self, Section};
use super::{Connection, Event, RecvState, ReqStream, UniKind, UniStream, MAX_PRIORITY_UPDATES};

/// One stream read.
enum Read {
    Got(usize, bool),
    Nothing,
    Reset(u64),
}

fn read(conn: &mut tarte::Connection, id: u64, buf: &mut [u8]) -> Result<Read> {
    match conn.stream_recv(id, buf) {
        Ok((n, fin)) => Ok(Read::Got(n, fin)),
        Err(tarte::Error::Done) | Err(tarte::Error::InvalidStreamState(_)) => Ok(Read::Nothing),
        Err(tarte::Error::StreamReset(code)) => Ok(Read::Reset(code)),
        Err(e) => Err(Error::TransportError(e)),
    }
}

/// Result of reading a frame header off a request stream.
enum Hdr {
    Frame(FrameHeader),
    Wait,
    Reset(u64),
}

impl Connection {
    /// Processes what the transport received and returns the next event,
    /// `Err(Done)` when there is none. A connection error is returned once
    /// (after closing the connection with its code); later calls give
    /// `Done`.
    pub fn poll(&mut self, conn: &mut tarte::Connection) -> Result<(u64, Event)> {
        if self.error.is_some() {
            return Err(Error::Done);
        }
        if let Some(ev) = self.events.pop_front() {
            return Ok(ev);
        }
        self.flush_local(conn)?;
        let readable: Vec<u64> = conn.readable().collect();
        // Control and QPACK streams first: SETTINGS and inserts unblock the
        // request streams.
        for &id in readable.iter().filter(|&&id| id & 2 != 0) {
            self.process_uni(conn, id)?;
        }
        self.process_unblocked(conn)?;
        for &id in readable.iter().filter(|&&id| id & 2 == 0) {
            self.process_request(conn, id)?;
        }
        self.flush_local(conn)?;
        self.events.pop_front().ok_or(Error::Done)
    }

    /// Reads body bytes of `stream_id` into `out`, across DATA frames;
    /// `Err(Done)` when none are available.
    pub fn recv_body(
        &mut self,
        conn: &mut tarte::Connection,
        stream_id: u64,
        out: &mut [u8],
    ) -> Result<usize> {
        self.check_open()?;
        let mut total = 0;
        while let Some(st) = self.streams.get_mut(&stream_id) {
            match st.recv {
                RecvState::Data(0) | RecvState::Skip(0) => st.recv = RecvState::FrameHeader,
                RecvState::Data(_) | RecvState::Skip(_) if st.fin_pending => {
                    return Err(self.frame_error(conn));
                }
                RecvState::Data(rem) | RecvState::Skip(rem) => {
                    // DATA payload goes to `out`; a frame being skipped
                    // (unknown type) is read into scratch and dropped.
                    let skip = matches!(st.recv, RecvState::Skip(_));
                    let mut discard = [0u8; 1024];
                    let dst = if skip {
                        &mut discard[..]
                    } else if total == out.len() {
                        break;
                    } else {
                        &mut out[total..]
                    };
                    let n = dst.len().min(usize::try_from(rem).unwrap_or(usize::MAX));
                    match read(conn, stream_id, &mut dst[..n])? {
                        Read::Got(k, fin) => {
                            let rem = rem - k as u64;
                            if skip {
                                st.recv = RecvState::Skip(rem);
                            } else {
                                total += k;
                                st.recv = RecvState::Data(rem);
                            }
                            st.fin_pending |= fin;
                        }
                        Read::Nothing => {
                            st.data_event = false;
                            break;
                        }
                        Read::Reset(code) => {
                            self.on_reset(stream_id, code);
                            break;
                        }
                    }
                }
                RecvState::FrameHeader => match self.read_req_header(conn, stream_id)? {
                    Hdr::Wait => {
                        if let Some(st) = self.streams.get_mut(&stream_id) {
                            st.data_event = false;
                        }
                        break;
                    }
                    Hdr::Reset(code) => {
                        self.on_reset(stream_id, code);
                        break;
                    }
                    Hdr::Frame(h) => {
                        let is_data = h.frame_type == FrameType::Data.to_wire();
                        self.on_req_frame_header(conn, stream_id, h)?;
                        if !is_data {
                            // Trailers and other frames are poll's to handle.
                            if let Some(st) = self.streams.get_mut(&stream_id) {
                                st.data_event = false;
                            }
                            break;
                        }
                    }
                },
                _ => {
                    st.data_event = false;
                    break;
                }
            }
        }
        if total == 0 {
            return Err(Error::Done);
        }
        Ok(total)
    }

    fn frame_error(&mut self, conn: &mut tarte::Connection) -> Error {
        // RFC 9114 §7.1: "When a stream terminates cleanly, if the last frame
        // on the stream was truncated, this MUST be treated as a connection
        // error of type H3_FRAME_ERROR."
        self.conn_error(conn, Error::FrameError, "stream ended inside a frame")
    }

    /// Reads a frame header byte by byte (never past it). Handles a FIN
    /// at a frame boundary itself (Finished), and reports `Wait` then.
    fn read_req_header(&mut self, conn: &mut tarte::Connection, id: u64) -> Result<Hdr> {
        loop {
            let Some(st) = self.streams.get_mut(&id) else {
                return Ok(Hdr::Wait);
            };
            if st.fin_pending {
                if st.hdr.is_partial() {
                    return Err(self.frame_error(conn));
                }
                self.on_fin(conn, id);
                return Ok(Hdr::Wait);
            }
            let mut b = [0u8; 1];
            match read(conn, id, &mut b)? {
                Read::Got(n, fin) => {
                    st.fin_pending |= fin;
                    if n == 1 {
                        if let (_, Some(h)) = st.hdr.feed(&b) {
                            return Ok(Hdr::Frame(h));
                        }
                    }
                }
                Read::Nothing => return Ok(Hdr::Wait),
                Read::Reset(code) => return Ok(Hdr::Reset(code)),
            }
        }
    }

    /// Checks a request-stream frame type against what may come next
    /// (RFC 9114 §4.1, §7.2) and enters its state.
    fn on_req_frame_header(
        &mut self,
        conn: &mut tarte::Connection,
        id: u64,
        h: FrameHeader,
    ) -> Result<()> {
        let is_server = self.is_server;
        let header_cap = self.header_block_cap();
        let Some(st) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        let unexpected = match FrameType::from_wire(h.frame_type) {
            // §4.1: DATA before HEADERS, or after trailers, is an invalid
            // sequence: "MUST be treated as a connection error of type
            // H3_FRAME_UNEXPECTED".
            FrameType::Data if st.sections == 0 || st.sections >= 2 => {
                Some((Error::FrameUnexpected, "DATA outside a message body"))
            }
            FrameType::Data => {
                st.recv = RecvState::Data(h.payload_len);
                None
            }
            FrameType::Headers if st.sections >= 2 => {
                Some((Error::FrameUnexpected, "HEADERS after trailers"))
            }
            FrameType::Headers => {
                if h.payload_len > header_cap {
                    // The field section is bigger than we accept; the
                    // stream, not the connection, is at fault (§4.2.2).
                    self.stream_error(conn, id, Error::ExcessiveLoad);
                    return Ok(());
                }
                st.buf.clear();
                st.recv = RecvState::Headers(h.payload_len);
                None
            }
            // §7.2.5: a server receiving PUSH_PROMISE "MUST" treat it as
            // H3_FRAME_UNEXPECTED; a client never allowed a push (no
            // MAX_PUSH_ID), so any push ID is an H3_ID_ERROR (§4.6).
            FrameType::PushPromise if is_server => {
                Some((Error::FrameUnexpected, "PUSH_PROMISE from a client"))
            }
            FrameType::PushPromise => Some((Error::IdError, "PUSH_PROMISE without MAX_PUSH_ID")),
            // §7.2.3, §7.2.4, §7.2.6, §7.2.7, RFC 9218 §7: control-stream
            // frames on a request stream are H3_FRAME_UNEXPECTED.
            FrameType::CancelPush
            | FrameType::Settings
            | FrameType::GoAway
            | FrameType::MaxPushId
            | FrameType::PriorityUpdateRequest
            | FrameType::PriorityUpdatePush => {
                Some((Error::FrameUnexpected, "control frame on a request stream"))
            }
            // §7.2.8: HTTP/2 frame types are H3_FRAME_UNEXPECTED.
            FrameType::Unknown(t) if is_http2_frame_type(t) => {
                Some((Error::FrameUnexpected, "HTTP/2 frame type"))
            }
            // §9: unknown and reserved frame types are skipped.
            FrameType::Unknown(_) => {
                st.recv = RecvState::Skip(h.payload_len);
                None
            }
        };
        match unexpected {
            Some((e, reason)) => Err(self.conn_error(conn, e, reason)),
            None => Ok(()),
        }
    }

    /// The largest HEADERS payload we collect: a few times the field
    /// section limit (Huffman can make literals longer), or a fixed cap.
    fn header_block_cap(&self) -> u64 {
        match self.max_field_section_size {
            Some(l) => l.saturating_mul(4).saturating_add(64),
            None => crate::config::DEFAULT_MAX_HEADER_BLOCK,
        }
    }

    /// Reads a bidirectional stream as far as it goes without the
    /// application.
    fn process_request(&mut self, conn: &mut tarte::Connection, id: u64) -> Result<()> {
        if !self.streams.contains_key(&id) {
            // §6.1: "Clients MUST treat receipt of a server-initiated
            // bidirectional stream as a connection error of type
            // H3_STREAM_CREATION_ERROR".
            if !self.is_server && id & 1 == 1 {
                return Err(self.conn_error(
                    conn,
                    Error::StreamCreationError,
                    "server-initiated bidirectional stream",
                ));
            }
            if !self.is_server || id & 1 == 1 {
                // One of ours that is already forgotten.
                return Ok(());
            }
            // §5.2: requests at or above our GOAWAY ID are not processed.
            if self.local_goaway.is_some_and(|g| id >= g) {
                self.stream_error(conn, id, Error::RequestRejected);
                return Ok(());
            }
            self.streams.insert(id, ReqStream::new());
        }
        self.advance_request(conn, id)
    }

    fn advance_request(&mut self, conn: &mut tarte::Connection, id: u64) -> Result<()> {
        loop {
            let Some(st) = self.streams.get_mut(&id) else {
                return Ok(());
            };
            match st.recv {
                RecvState::FrameHeader => match self.read_req_header(conn, id)? {
                    Hdr::Wait => return Ok(()),
                    Hdr::Reset(code) => {
                        self.on_reset(id, code);
                        return Ok(());
                    }
                    Hdr::Frame(h) => self.on_req_frame_header(conn, id, h)?,
                },
                RecvState::Headers(0) => self.decode_headers(conn, id)?,
                RecvState::Data(0) | RecvState::Skip(0) => st.recv = RecvState::FrameHeader,
                RecvState::Headers(_) | RecvState::Data(_) | RecvState::Skip(_)
                    if st.fin_pending =>
                {
                    return Err(self.frame_error(conn));
                }
                RecvState::Headers(rem) => {
                    let old = st.buf.len();
                    let n = usize::try_from(rem).unwrap_or(usize::MAX).min(16 * 1024);
                    st.buf.resize(old + n, 0);
                    match read(conn, id, &mut st.buf[old..])? {
                        Read::Got(k, fin) => {
                            st.buf.truncate(old + k);
                            st.recv = RecvState::Headers(rem - k as u64);
                            st.fin_pending |= fin;
                        }
                        Read::Nothing => {
                            st.buf.truncate(old);
                            return Ok(());
                        }
                        Read::Reset(code) => {
                            self.on_reset(id, code);
                            return Ok(());
                        }
                    }
                }
                RecvState::Data(_) => {
                    if !st.data_event {
                        st.data_event = true;
                        self.events.push_back((id, Event::Data));
                    }
                    return Ok(());
                }
                RecvState::Skip(rem) => {
                    let mut discard = [0u8; 1024];
                    let n = discard
                        .len()
                        .min(usize::try_from(rem).unwrap_or(usize::MAX));
                    match read(conn, id, &mut discard[..n])? {
                        Read::Got(k, fin) => {
                            st.recv = RecvState::Skip(rem - k as u64);
                            st.fin_pending |= fin;
                        }
                        Read::Nothing => return Ok(()),
                        Read::Reset(code) => {
                            self.on_reset(id, code);
                            return Ok(());
                        }
                    }
                }
                RecvState::QpackBlocked | RecvState::Done => return Ok(()),
            }
        }
    }

    /// A complete HEADERS payload: decode it (or park it until the QPACK
    /// inserts it needs arrive).
    fn decode_headers(&mut self, conn: &mut tarte::Connection, id: u64) -> Result<()> {
        let Some(st) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        let block = std::mem::take(&mut st.buf);
        let r = self.decoder.decode(id, &block);
        if let Some(st) = self.streams.get_mut(&id) {
            st.buf = block;
            st.buf.clear();
        }
        match r {
            Ok(Decoded::Headers(list)) => self.on_headers(conn, id, list),
            Ok(Decoded::Blocked) => {
                if let Some(st) = self.streams.get_mut(&id) {
                    st.recv = RecvState::QpackBlocked;
                }
                Ok(())
            }
            Err(e) => self.on_decode_error(conn, id, e),
        }
    }

    fn on_decode_error(
        &mut self,
        conn: &mut tarte::Connection,
        id: u64,
        e: QpackError,
    ) -> Result<()> {
        if let QpackError::FieldSectionTooLarge { .. } = e {
            self.stream_error(conn, id, Error::ExcessiveLoad);
            return Ok(());
        }
        // RFC 9204 §2.2.3, §6: a bad reference or encoding is a connection
        // error of type QPACK_DECOMPRESSION_FAILED.
        let reason = match e {
            QpackError::DecompressionFailed(r) | QpackError::Internal(r) => r,
            _ => "field section",
        };
        Err(self.conn_error(conn, e.into(), reason))
    }

    /// Sections whose inserts arrived.
    fn process_unblocked(&mut self, conn: &mut tarte::Connection) -> Result<()> {
        while let Some((id, r)) = self.decoder.poll_unblocked() {
            match r {
                Ok(list) => {
                    if let Some(st) = self.streams.get_mut(&id) {
                        st.recv = RecvState::FrameHeader;
                        self.on_headers(conn, id, list)?;
                        self.advance_request(conn, id)?;
                    }
                }
                Err(e) => self.on_decode_error(conn, id, e)?,
            }
        }
        Ok(())
    }

    /// A decoded field section: check it, apply the request's priority,
    /// and report it.
    fn on_headers(
        &mut self,
        conn: &mut tarte::Connection,
        id: u64,
        list: Vec<Header>,
    ) -> Result<()> {
        let is_server = self.is_server;
        let extended_connect = self.extended_connect;
        let Some(st) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        st.recv = RecvState::FrameHeader;
        let kind = match (st.sections, is_server) {
            (0, true) => Section::Request,
            (0, false) => Section::Response,
            _ => Section::Trailers,
        };
        // §4.1: interim (1xx) responses precede the final one.
        let interim = kind == Section::Response
            && list
                .iter()
                .any(|h| h.name() == b":status" && h.value().first() == Some(&b'1'));
        if !interim {
            st.sections += 1;
        }
        if let Some(why) = validate::check(&list, kind, extended_connect) {
            tracing::debug!(id, why, "h3: malformed message");
            // §4.1.2: a malformed message is a stream error of type
            // H3_MESSAGE_ERROR.
            self.stream_error(conn, id, Error::MessageError);
            return Ok(());
        }
        // Peek at the next byte to learn whether the stream ends here.
        if !st.fin_pending {
            let mut b = [0u8; 1];
            match read(conn, id, &mut b)? {
                Read::Got(n, fin) => {
                    st.fin_pending = fin;
                    if n == 1 {
                        // The first byte of the next frame header: no frame
                        // can complete from one byte, so nothing is lost.
                        let _ = st.hdr.feed(&b);
                    }
                }
                Read::Nothing | Read::Reset(_) => {}
            }
        }
        let more_frames = !st.fin_pending || st.hdr.is_partial();
        if kind == Section::Request {
            // RFC 9218 §4, §7: the latest PRIORITY_UPDATE wins over the
            // header field.
            let p = match self.priority_updates.get(&id) {
                Some(v) => Priority::parse(v),
                None => list
                    .iter()
                    .find(|h| h.name() == b"priority")
                    .map(|h| Priority::parse(h.value()))
                    .unwrap_or_default(),
            };
            let _ = conn.stream_priority(id, p.urgency, p.incremental);
        }
        self.events
            .push_back((id, Event::Headers { list, more_frames }));
        Ok(())
    }

    fn on_fin(&mut self, conn: &mut tarte::Connection, id: u64) {
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        st.recv = RecvState::Done;
        // §4.1.2: a request stream that ends before its HEADERS is an
        // incomplete request.
        if self.is_server && st.sections == 0 {
            self.stream_error(conn, id, Error::RequestIncomplete);
            return;
        }
        if !st.finished {
            st.finished = true;
            self.events.push_back((id, Event::Finished));
        }
        self.maybe_collect(id);
    }

    fn on_reset(&mut self, id: u64, code: u64) {
        self.decoder.cancel_stream(id);
        if let Some(st) = self.streams.get_mut(&id) {
            st.recv = RecvState::Done;
            st.finished = true;
            st.data_event = false;
        }
        self.events.push_back((id, Event::Reset(code)));
        self.maybe_collect(id);
    }

    /// Reads a peer unidirectional stream.
    fn process_uni(&mut self, conn: &mut tarte::Connection, id: u64) -> Result<()> {
        let uni = self.uni.entry(id).or_insert_with(|| UniStream {
            kind: UniKind::Pending,
            ty: Default::default(),
            hdr: Default::default(),
            frame: None,
            buf: Vec::new(),
        });
        if uni.kind == UniKind::Pending {
            let (ty, fin) = loop {
                let mut b = [0u8; 1];
                match read(conn, id, &mut b)? {
                    Read::Got(1, fin) => {
                        if let (_, Some(t)) = uni.ty.feed(&b) {
                            break (t, fin);
                        }
                        if fin {
                            self.uni.remove(&id);
                            return Ok(());
                        }
                    }
                    Read::Got(..) | Read::Reset(_) => {
                        // Ended before its type: nothing to do with it.
                        self.uni.remove(&id);
                        return Ok(());
                    }
                    Read::Nothing => return Ok(()),
                }
            };
            self.on_uni_type(conn, id, ty)?;
            let critical = self.uni.get(&id).is_some_and(|u| {
                matches!(
                    u.kind,
                    UniKind::Control | UniKind::QpackEncoder | UniKind::QpackDecoder
                )
            });
            if fin && critical {
                return Err(self.closed_critical(conn));
            }
        }
        let kind = self.uni.get(&id).map(|u| u.kind);
        match kind {
            Some(UniKind::Control) => self.read_control(conn, id),
            Some(UniKind::QpackEncoder) | Some(UniKind::QpackDecoder) => self.read_qpack(conn, id),
            _ => Ok(()),
        }
    }

    fn on_uni_type(&mut self, conn: &mut tarte::Connection, id: u64, ty: u64) -> Result<()> {
        let t = StreamType::from_wire(ty);
        let slot = match t {
            StreamType::Control => Some((&mut self.peer_control, UniKind::Control)),
            StreamType::QpackEncoder => Some((&mut self.peer_encoder, UniKind::QpackEncoder)),
            StreamType::QpackDecoder => Some((&mut self.peer_decoder, UniKind::QpackDecoder)),
            _ => None,
        };
        if let Some((slot, kind)) = slot {
            // §6.2.1, RFC 9204 §4.2: a second control, encoder or decoder
            // stream "MUST be treated as a connection error of type
            // H3_STREAM_CREATION_ERROR".
            if slot.is_some() {
                return Err(self.conn_error(
                    conn,
                    Error::StreamCreationError,
                    "second critical stream",
                ));
            }
            *slot = Some(id);
            if let Some(u) = self.uni.get_mut(&id) {
                u.kind = kind;
            }
            return Ok(());
        }
        if t == StreamType::Push {
            // §6.2.2: only servers push; a client never sent MAX_PUSH_ID so
            // any push is beyond its limit (§4.6).
            let (e, why) = if self.is_server {
                (Error::StreamCreationError, "push stream from a client")
            } else {
                (Error::IdError, "push stream without MAX_PUSH_ID")
            };
            return Err(self.conn_error(conn, e, why));
        }
        // §6.2: "Recipients of unknown stream types MUST either abort
        // reading of the stream or discard incoming data without further
        // processing"; we abort with H3_STREAM_CREATION_ERROR.
        let _ = conn.stream_shutdown(
            id,
            tarte::Shutdown::Read,
            Error::StreamCreationError.to_wire(),
        );
        if let Some(u) = self.uni.get_mut(&id) {
            u.kind = UniKind::Ignored;
        }
        Ok(())
    }

    fn closed_critical(&mut self, conn: &mut tarte::Connection) -> Error {
        // §6.2.1, RFC 9204 §4.2: closing a control or QPACK stream "MUST be
        // treated as a connection error of type H3_CLOSED_CRITICAL_STREAM".
        self.conn_error(conn, Error::ClosedCriticalStream, "critical stream closed")
    }

    /// QPACK encoder or decoder stream bytes go straight to QPACK.
    fn read_qpack(&mut self, conn: &mut tarte::Connection, id: u64) -> Result<()> {
        let is_encoder = self.peer_encoder == Some(id);
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = loop {
            match read(conn, id, &mut scratch) {
                Ok(Read::Got(n, fin)) => {
                    let fed = if is_encoder {
                        self.decoder.feed_encoder_stream(&scratch[..n])
                    } else {
                        self.encoder.feed_decoder_stream(&scratch[..n])
                    };
                    if let Err(e) = fed {
                        let reason = match e {
                            QpackError::EncoderStream(r) | QpackError::DecoderStream(r) => r,
                            _ => "qpack stream",
                        };
                        break Err(self.conn_error(conn, e.into(), reason));
                    }
                    if fin {
                        break Err(self.closed_critical(conn));
                    }
                }
                Ok(Read::Nothing) => break Ok(()),
                Ok(Read::Reset(_)) => break Err(self.closed_critical(conn)),
                Err(e) => break Err(e),
            }
        };
        self.scratch = scratch;
        r
    }

    /// Control stream frames, collected whole (they are small) or skipped.
    fn read_control(&mut self, conn: &mut tarte::Connection, id: u64) -> Result<()> {
        loop {
            let Some(u) = self.uni.get_mut(&id) else {
                return Ok(());
            };
            match u.frame {
                None => {
                    let mut b = [0u8; 1];
                    match read(conn, id, &mut b)? {
                        Read::Got(n, fin) => {
                            if n == 1 {
                                if let (_, Some(h)) = u.hdr.feed(&b) {
                                    u.frame = Some((h.frame_type, h.payload_len));
                                    u.buf.clear();
                                    self.on_control_header(conn, h)?;
                                }
                            }
                            if fin {
                                return Err(self.closed_critical(conn));
                            }
                        }
                        Read::Nothing => return Ok(()),
                        Read::Reset(_) => return Err(self.closed_critical(conn)),
                    }
                }
                Some((ty, 0)) => {
                    u.frame = None;
                    let payload = std::mem::take(&mut u.buf);
                    self.on_control_frame(conn, ty, &payload)?;
                }
                Some((ty, rem)) => {
                    let keep = !matches!(FrameType::from_wire(ty), FrameType::Unknown(_));
                    let old = u.buf.len();
                    let n = usize::try_from(rem).unwrap_or(usize::MAX).min(4096);
                    u.buf.resize(old + n, 0);
                    match read(conn, id, &mut u.buf[old..])? {
                        Read::Got(k, fin) => {
                            u.buf.truncate(if keep { old + k } else { 0 });
                            u.frame = Some((ty, rem - k as u64));
                            if fin {
                                return Err(self.closed_critical(conn));
                            }
                        }
                        Read::Nothing => {
                            u.buf.truncate(old);
                            return Ok(());
                        }
                        Read::Reset(_) => return Err(self.closed_critical(conn)),
                    }
                }
            }
        }
    }

    /// Checks a control frame's type before its payload is read.
    fn on_control_header(&mut self, conn: &mut tarte::Connection, h: FrameHeader) -> Result<()> {
        let ty = FrameType::from_wire(h.frame_type);
        let first = self.peer_settings.is_none();
        let bad = match ty {
            // §6.2.1: "If the first frame of the control stream is any other
            // frame type, this MUST be treated as a connection error of type
            // H3_MISSING_SETTINGS."
            _ if first && ty != FrameType::Settings => Some((
                Error::MissingSettings,
                "first control frame is not SETTINGS",
            )),
            // §7.2.4: "If an endpoint receives a second SETTINGS frame on the
            // control stream, the endpoint MUST respond with a connection
            // error of type H3_FRAME_UNEXPECTED."
            FrameType::Settings if !first => Some((Error::FrameUnexpected, "second SETTINGS")),
            // §7.2.1, §7.2.2, §7.2.5: DATA, HEADERS, PUSH_PROMISE on the
            // control stream are H3_FRAME_UNEXPECTED.
            FrameType::Data | FrameType::Headers | FrameType::PushPromise => Some((
                Error::FrameUnexpected,
                "request frame on the control stream",
            )),
            FrameType::Unknown(t) if is_http2_frame_type(t) => {
                Some((Error::FrameUnexpected, "HTTP/2 frame type"))
            }
            FrameType::Unknown(_) => None,
            _ if h.payload_len > super::MAX_CONTROL_FRAME => {
                Some((Error::ExcessiveLoad, "control frame too large"))
            }
            _ => None,
        };
        match bad {
            Some((e, why)) => Err(self.conn_error(conn, e, why)),
            None => Ok(()),
        }
    }

    fn on_control_frame(
        &mut self,
        conn: &mut tarte::Connection,
        ty: u64,
        payload: &[u8],
    ) -> Result<()> {
        let frame = match Frame::decode(ty, payload) {
            Ok(f) => f,
            Err(e) => return Err(self.conn_error(conn, e, "malformed control frame")),
        };
        let client = !self.is_server;
        match frame {
            Frame::Settings(s) => self.on_settings(conn, s),
            Frame::GoAway { id } => {
                // §5.2: a server's GOAWAY carries a client-initiated
                // bidirectional stream ID, and "An endpoint MUST NOT
                // increase the value"; either violation is H3_ID_ERROR.
                if (client && id % 4 != 0) || self.peer_goaway.is_some_and(|g| id > g) {
                    return Err(self.conn_error(conn, Error::IdError, "bad GOAWAY ID"));
                }
                self.peer_goaway = Some(id);
                self.events.push_back((id, Event::GoAway));
                Ok(())
            }
            // §7.2.7: "A client MUST treat the receipt of a MAX_PUSH_ID
            // frame as a connection error of type H3_FRAME_UNEXPECTED."
            Frame::MaxPushId { .. } if client => {
                Err(self.conn_error(conn, Error::FrameUnexpected, "MAX_PUSH_ID from a server"))
            }
            // RFC 9218 §7.1: "A client MUST treat receipt of a
            // PRIORITY_UPDATE frame as a connection error of type
            // H3_FRAME_UNEXPECTED."
            Frame::PriorityUpdateRequest { .. } | Frame::PriorityUpdatePush { .. } if client => {
                Err(self.conn_error(
                    conn,
                    Error::FrameUnexpected,
                    "PRIORITY_UPDATE from a server",
                ))
            }
            // We never push, so every push ID is beyond the limit.
            Frame::PriorityUpdatePush { .. } => {
                Err(self.conn_error(conn, Error::IdError, "PRIORITY_UPDATE for a push"))
            }
            Frame::PriorityUpdateRequest {
                prioritized_element_id: id,
                priority_field_value: v,
            } => self.on_priority_update(conn, id, v),
            // MAX_PUSH_ID (server), CANCEL_PUSH: we do not push.
            _ => Ok(()),
        }
    }

    fn on_settings(&mut self, conn: &mut tarte::Connection, s: Settings) -> Result<()> {
        // RFC 9297 §2.1.1: SETTINGS_H3_DATAGRAM=1 without the
        // max_datagram_frame_size transport parameter "MUST" be
        // H3_SETTINGS_ERROR.
        if s.h3_datagram == Some(1)
            && conn
                .peer_transport_params()
                .and_then(|p| p.max_datagram_frame_size)
                .is_none()
        {
            return Err(self.conn_error(
                conn,
                Error::SettingsError,
                "H3_DATAGRAM without QUIC datagrams",
            ));
        }
        if let Err(e) = self.encoder.on_peer_settings(
            s.qpack_max_table_capacity.unwrap_or(0),
            s.qpack_blocked_streams.unwrap_or(0),
        ) {
            tracing::debug!(?e, "h3: qpack encoder settings");
            return Err(self.conn_error(conn, Error::InternalError, "qpack encoder"));
        }
        self.peer_settings_raw = Some(s.iter().collect());
        self.peer_settings = Some(s);
        Ok(())
    }

    fn on_priority_update(
        &mut self,
        conn: &mut tarte::Connection,
        id: u64,
        v: Vec<u8>,
    ) -> Result<()> {
        // RFC 9218 §7.1: an ID that is not a client-initiated bidirectional
        // stream "MUST" be H3_ID_ERROR.
        if id % 4 != 0 {
            return Err(self.conn_error(
                conn,
                Error::IdError,
                "PRIORITY_UPDATE for a non-request stream",
            ));
        }
        if self.streams.contains_key(&id) {
            let p = Priority::parse(&v);
            let _ = conn.stream_priority(id, p.urgency, p.incremental);
        }
        if !self.priority_updates.contains_key(&id) {
            if self.priority_updates.len() >= MAX_PRIORITY_UPDATES {
                return Err(self.conn_error(
                    conn,
                    Error::ExcessiveLoad,
                    "too many PRIORITY_UPDATEs",
                ));
            }
            self.events.push_back((id, Event::PriorityUpdate));
        }
        self.priority_updates.insert(id, v);
        Ok(())
    }
}
