//! The TLS side of a connection: driving BoringSSL's handshake and
//! applying what it produces (keys, the peer's transport parameters),
//! handshake completion and confirmation, and session resumption and 0-RTT
//! (RFC 9001 §4.5, §4.6): sessions kept and offered, remembered transport
//! parameters, 0-RTT packets kept until their keys are known.

use std::time::{Duration, Instant};

use super::{CloseState, Connection, RecvInfo};
use crate::error::{Error, Result};
use crate::recovery::Epoch;
use crate::tls::Level;
use crate::transport_params::TransportParams;

/// TLS facts kept after the handshake state is freed.
#[derive(Default)]
pub(crate) struct TlsInfo {
    pub(crate) alpn: Vec<u8>,
    pub(crate) server_name: Option<String>,
    pub(crate) peer_cert: Option<Vec<u8>>,
    pub(crate) alert: Option<u8>,
    pub(crate) resumed: bool,
    /// Client: the latest resumable session (see [`Connection::session`]).
    pub(crate) session: Option<Box<[u8]>>,
}

/// A 0-RTT packet kept until its keys are known: its bytes, how it came,
/// and the length of its datagram.
pub(crate) type EarlyPacket = (Vec<u8>, RecvInfo, usize);

/// Where a connection stands with 0-RTT (RFC 9001 §4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EarlyData {
    /// Not enabled in the config.
    Off,
    /// Enabled; nothing offered (client) or accepted (server) yet.
    Enabled,
    /// Client: a session allowing 0-RTT goes into the ClientHello; the
    /// server's remembered transport parameters apply (RFC 9000 §7.4.1).
    Offered,
    /// Client: 0-RTT keys installed, sending 0-RTT packets.
    Sending,
    /// The server accepted 0-RTT (both roles).
    Accepted,
    /// The server rejected it (client: what was sent goes again in 1-RTT).
    Rejected,
}

/// What a server's 0-RTT depends on, for its tickets (RFC 9000 §7.4.1:
/// the limits 0-RTT data must respect, and the values a server may keep).
/// A ticket issued under other values gets its 0-RTT rejected.
pub(super) fn early_data_context(p: &TransportParams) -> Vec<u8> {
    let mut out = b"tarte 0-RTT v1".to_vec();
    for v in [
        p.initial_max_data,
        p.initial_max_stream_data_bidi_local,
        p.initial_max_stream_data_bidi_remote,
        p.initial_max_stream_data_uni,
        p.initial_max_streams_bidi,
        p.initial_max_streams_uni,
        p.active_conn_id_limit,
        p.max_datagram_frame_size.unwrap_or(u64::MAX),
        p.max_idle_timeout,
        p.max_udp_payload_size,
        u64::from(p.disable_active_migration),
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

/// The format of [`Connection::session`]: a format byte, then the TLS
/// session and the server's transport parameters, each with a varint
/// length.
const SESSION_FORMAT: u8 = 1;

fn encode_session(tls_session: &[u8], params: &[u8]) -> Box<[u8]> {
    let mut out = vec![0u8; 1 + 8 + tls_session.len() + 8 + params.len()];
    let mut b = crate::octets::OctetsMut::with_slice(&mut out);
    // The buffer is sized for the worst case: none of these can fail.
    let ok = b.put_u8(SESSION_FORMAT).is_ok()
        && b.put_varint(tls_session.len() as u64).is_ok()
        && b.put_bytes(tls_session).is_ok()
        && b.put_varint(params.len() as u64).is_ok()
        && b.put_bytes(params).is_ok();
    debug_assert!(ok);
    let n = b.off();
    out.truncate(n);
    out.into_boxed_slice()
}

/// The TLS session and transport parameters of a stored session.
fn decode_session(session: &[u8]) -> Result<(&[u8], &[u8])> {
    let mut b = crate::octets::Octets::with_slice(session);
    let bad = |_| Error::TlsFail;
    if b.get_u8().map_err(bad)? != SESSION_FORMAT {
        return Err(Error::TlsFail);
    }
    let tls = b.get_bytes_with_varint_length().map_err(bad)?;
    let params = b.get_bytes_with_varint_length().map_err(bad)?;
    if b.cap() != 0 {
        return Err(Error::TlsFail);
    }
    Ok((tls, params))
}

/// 0-RTT packets a server keeps while it waits for the rest of a
/// ClientHello (a few datagrams' worth: what reordering brings early).
pub(super) const MAX_EARLY_PACKETS: usize = 8;

impl Connection {
    /// The application protocol negotiated by ALPN.
    pub fn application_proto(&self) -> &[u8] {
        match &self.tls {
            Some(t) => t.alpn(),
            None => &self.tls_info.alpn,
        }
    }

    /// The server name the client asked for (SNI).
    pub fn server_name(&self) -> Option<&str> {
        match &self.tls {
            Some(t) => t.server_name(),
            None => self.tls_info.server_name.as_deref(),
        }
    }

    /// Sets where this connection writes its TLS secrets, in the NSS key
    /// log format, when its config has [`Config::log_keys`](crate::Config::log_keys) on. Call it
    /// right after `connect`/`accept`: secrets derived before are not
    /// logged. QUIC key updates (RFC 9001 §6) make no TLS secrets and
    /// are not logged; a key log reader derives them from the first.
    pub fn set_keylog(&mut self, writer: Box<dyn std::io::Write + Send + Sync>) {
        if let Some(tls) = self.tls.as_mut() {
            tls.set_keylog(writer);
        }
    }

    /// The peer's leaf certificate in DER.
    pub fn peer_cert(&self) -> Option<Vec<u8>> {
        match &self.tls {
            Some(t) => t.peer_cert_der(),
            None => self.tls_info.peer_cert.clone(),
        }
    }

    /// Whether the handshake resumed an earlier session (RFC 9001 §4.5).
    pub fn is_resumed(&self) -> bool {
        match &self.tls {
            Some(t) => t.is_resumed(),
            None => self.tls_info.resumed,
        }
    }

    /// The latest session the server made resumable (client only): store
    /// it, and hand it to [`Connection::set_session`] of a later
    /// connection to the same server. It holds the TLS session (with its
    /// ticket) and the server's transport parameters. `None` until a
    /// NewSessionTicket has arrived (shortly after the handshake).
    pub fn session(&self) -> Option<&[u8]> {
        self.tls_info.session.as_deref()
    }

    /// Offers a session from [`Connection::session`] of an earlier
    /// connection for resumption. Only a client, and only before it has
    /// sent or received anything (the session goes into its ClientHello):
    /// `InvalidState` otherwise; `TlsFail` for bytes that are not such a
    /// session. If the server refuses it the handshake falls back to a
    /// full one.
    pub fn set_session(&mut self, session: &[u8]) -> Result<()> {
        if self.is_server || !self.hello_pending {
            return Err(Error::InvalidState);
        }
        let (tls_session, params) = decode_session(session)?;
        let tls = self.tls.as_mut().ok_or(Error::InvalidState)?;
        tls.set_session(tls_session)?;
        if self.early == EarlyData::Enabled && tls.session_allows_early_data() {
            // RFC 9000 §7.4.1: 0-RTT data keeps to the server's remembered
            // parameters; those it must not reuse are left out, and the
            // handshake's values replace the rest for 1-RTT.
            let tp =
                TransportParams::decode(params, false).map_err(|_| Error::InvalidTransportParam)?;
            self.streams.apply_peer_params(&tp);
            self.flow.update_peer_max(tp.initial_max_data);
            self.cids.peer_limit = tp.active_conn_id_limit.min(16) as usize;
            self.peer_params = TransportParams {
                initial_source_connection_id: None,
                original_destination_connection_id: None,
                retry_source_connection_id: None,
                stateless_reset_token: None,
                preferred_address: None,
                ack_delay_exponent: TransportParams::default().ack_delay_exponent,
                max_ack_delay: TransportParams::default().max_ack_delay,
                ..tp
            };
            self.early = EarlyData::Offered;
        }
        Ok(())
    }

    /// Whether the connection is in the early-data (0-RTT) stage: a
    /// client may send stream data (it goes in 0-RTT packets), a server
    /// has accepted 0-RTT and may read it (and answer in 1-RTT packets
    /// before the handshake completes). Until the handshake completes.
    pub fn is_in_early_data(&self) -> bool {
        !self.handshake_complete && self.zero_rtt_keys.is_some()
    }

    /// 0-RTT packets kept from before the ClientHello was whole: opened
    /// once the server accepted 0-RTT, dropped once it is clear it did not.
    pub(super) fn recv_early_packets(&mut self, now: Instant) -> Result<()> {
        let accepted = self.zero_rtt_keys.is_some();
        let undecided = self.early == EarlyData::Enabled
            && self.spaces[Epoch::Handshake as usize].open.is_none()
            && !self.spaces[Epoch::Handshake as usize].discarded;
        if undecided && !accepted {
            return Ok(());
        }
        let Some(q) = self.early_packets.take() else {
            return Ok(());
        };
        for (mut pkt, info, datagram_len) in q.into_iter() {
            if !accepted || self.close != CloseState::Open {
                self.stats.dropped += 1;
                continue;
            }
            match self.handle_packet(&mut pkt, info, datagram_len, now) {
                Ok(_) | Err(Error::Done) => (),
                Err(e) => {
                    self.close_with_error(e, 0, "protocol error", now);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// CRYPTO data: reassemble, then feed TLS at its current read level.
    pub(super) fn handle_crypto(
        &mut self,
        epoch: Epoch,
        offset: u64,
        data: &[u8],
        now: Instant,
    ) -> Result<()> {
        self.spaces[epoch as usize]
            .crypto
            .recv
            .write(offset, data, false)?;
        self.drive_handshake(now)
    }

    /// Feeds buffered CRYPTO data to TLS, advances the handshake and
    /// applies what it produced.
    pub(crate) fn drive_handshake(&mut self, now: Instant) -> Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            let Some(tls) = self.tls.as_mut() else {
                // TLS was freed after the handshake: nothing after it
                // concerns us (no post-handshake messages in QUIC for a
                // server); drain and ignore.
                let sp = &mut self.spaces[Epoch::Application as usize];
                while let Ok((n, _)) = sp.crypto.recv.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
                return Ok(());
            };
            let level = tls.read_level();
            let epoch = match level {
                Level::Initial => Epoch::Initial,
                Level::Handshake => Epoch::Handshake,
                _ => Epoch::Application,
            };
            let mut fed = false;
            while let Ok((n, _)) = self.spaces[epoch as usize].crypto.recv.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tls.provide_data(level, &buf[..n])?;
                fed = true;
            }
            if !self.handshake_complete {
                let done = tls.do_handshake();
                let applied = self.apply_tls_events(now);
                let done = done?;
                applied?;
                if done {
                    self.on_handshake_complete(now)?;
                }
            } else if fed {
                tls.process_post_handshake()?;
                self.apply_tls_events(now)?;
            }
            // TLS may have moved to a new read level with data already
            // buffered for it.
            let same_level = self.tls.as_ref().is_none_or(|t| t.read_level() == level);
            if same_level || !fed && self.handshake_complete {
                break;
            }
        }
        self.release_lingering_tls(now);
        Ok(())
    }

    /// Installs new keys and queues handshake bytes TLS produced.
    fn apply_tls_events(&mut self, now: Instant) -> Result<()> {
        use crate::crypto::DirectionalKeys;
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        let ev = tls.take_events();
        let peer_params = if self.peer_params_parsed {
            None
        } else {
            tls.peer_transport_params().map(<[u8]>::to_vec)
        };
        for (level, data) in ev.out.iter().enumerate() {
            if data.is_empty() {
                continue;
            }
            let epoch = match level {
                0 => Epoch::Initial,
                2 => Epoch::Handshake,
                _ => Epoch::Application,
            };
            self.spaces[epoch as usize].crypto.send.write(data, false)?;
        }
        for s in &ev.secrets {
            let epoch = match s.level {
                Level::Initial => Epoch::Initial,
                Level::Handshake => Epoch::Handshake,
                Level::ZeroRtt => {
                    // A client's to seal, a server's to open: the only
                    // direction 0-RTT has (RFC 9001 §4.6.1).
                    if s.write == self.is_server || self.early == EarlyData::Off {
                        continue;
                    }
                    let keys = DirectionalKeys::from_secret(s.alg, &s.secret[..s.len])?;
                    self.zero_rtt_keys = Some(Box::new(keys));
                    self.early = if self.is_server {
                        EarlyData::Accepted
                    } else {
                        EarlyData::Sending
                    };
                    continue;
                }
                Level::OneRtt => Epoch::Application,
            };
            let keys = DirectionalKeys::from_secret(s.alg, &s.secret[..s.len])?;
            let sp = &mut self.spaces[epoch as usize];
            if s.write {
                sp.seal = Some(Box::new(keys));
            } else {
                sp.open = Some(Box::new(keys));
            }
        }
        if let Some(alert) = ev.alert {
            self.tls_info.alert = Some(alert);
        }
        if let Some(tls_session) = ev.session {
            // The server's transport parameters go with the session
            // (RFC 9000 §7.4.1: 0-RTT must respect the remembered ones).
            let params = tls.peer_transport_params().unwrap_or_default();
            self.tls_info.session = Some(encode_session(&tls_session, params));
        }
        if ev.early_data_rejected {
            self.on_early_data_rejected();
        }
        if let Some(raw) = peer_params {
            self.apply_peer_transport_params(&raw, now)?;
        }
        Ok(())
    }

    /// Validates and applies the peer's transport parameters (RFC 9000
    /// §7.3, §7.4).
    fn apply_peer_transport_params(&mut self, raw: &[u8], now: Instant) -> Result<()> {
        let tp = TransportParams::decode(raw, self.is_server)?;
        // RFC 9000 §7.3: authenticate the connection IDs. "An endpoint MUST
        // treat the absence of the initial_source_connection_id transport
        // parameter from either endpoint or the absence of the
        // original_destination_connection_id transport parameter from the
        // server as a connection error of type TRANSPORT_PARAMETER_ERROR",
        // and mismatches likewise.
        let peer_scid = self.cids.dcid().clone();
        if tp.initial_source_connection_id.as_ref() != Some(&peer_scid) {
            return Err(Error::InvalidTransportParam);
        }
        if !self.is_server {
            if tp.original_destination_connection_id.as_ref() != Some(&self.odcid) {
                return Err(Error::InvalidTransportParam);
            }
            if tp.retry_source_connection_id.as_ref() != self.rscid.as_ref() {
                return Err(Error::InvalidTransportParam);
            }
            self.cids
                .set_initial_dcid_reset_token(tp.stateless_reset_token);
        }
        self.streams.apply_peer_params(&tp);
        self.flow.update_peer_max(tp.initial_max_data);
        self.cids.peer_limit = tp.active_conn_id_limit.min(16) as usize;
        self.recovery
            .set_max_ack_delay(Duration::from_millis(tp.max_ack_delay));
        // RFC 9000 §10.1: the idle timeout is the minimum of both sides',
        // ignoring zeros.
        let local = self.local_params.max_idle_timeout;
        let peer = tp.max_idle_timeout;
        let idle = match (local, peer) {
            (0, 0) => None,
            (0, p) => Some(p),
            (l, 0) => Some(l),
            (l, p) => Some(l.min(p)),
        };
        self.idle_timeout = idle.map(Duration::from_millis);
        let mtu = (tp.max_udp_payload_size as usize).min(self.max_send_udp_payload);
        self.recovery.update_max_datagram_size(mtu.max(1200));
        let mut tp = tp;
        // Validated above; nothing reads them again, so free them.
        tp.initial_source_connection_id = None;
        tp.original_destination_connection_id = None;
        tp.retry_source_connection_id = None;
        self.peer_params = tp;
        self.peer_params_parsed = true;
        if let Some(q) = self.qlog.as_deref_mut() {
            q.parameters_set(now, &self.peer_params, "remote");
        }
        Ok(())
    }

    /// The server rejected 0-RTT (RFC 9001 §4.6.2): the 0-RTT keys go,
    /// and everything sent in 0-RTT packets (all the application space
    /// holds at this point) leaves flight without a congestion signal
    /// (RFC 9002 §6.4... recovery state "is discarded") and is queued
    /// again for 1-RTT. Stream state stays: the data is the application's,
    /// sent again under the handshake's parameters (the application
    /// protocol cannot have changed: TLS only offers 0-RTT for the
    /// session's).
    fn on_early_data_rejected(&mut self) {
        tracing::debug!(trace_id = %self.trace_id, "0-RTT rejected");
        self.early = EarlyData::Rejected;
        self.zero_rtt_keys = None;
        let lost = self.recovery.drain_unacked(Epoch::Application);
        for p in lost {
            self.requeue_frames(Epoch::Application, &p.payload);
        }
    }

    fn on_handshake_complete(&mut self, now: Instant) -> Result<()> {
        self.handshake_complete = true;
        if let Some(tls) = self.tls.as_ref() {
            tracing::debug!(trace_id = %self.trace_id, resumed = tls.is_resumed(), early_data = tls.early_data_reason(), "TLS handshake done");
        }
        if !self.is_server {
            if self.early == EarlyData::Sending {
                let accepted = self.tls.as_ref().is_some_and(|t| t.early_data_accepted());
                if accepted {
                    self.early = EarlyData::Accepted;
                } else {
                    self.on_early_data_rejected();
                }
            }
            // RFC 9001 §4.9.3: a client SHOULD discard 0-RTT keys as soon
            // as it installs 1-RTT keys.
            self.zero_rtt_keys = None;
        }
        // Our parameters went out in the handshake; their IDs are not needed
        // again (the CID manager has its own copies).
        self.local_params.initial_source_connection_id = None;
        self.local_params.original_destination_connection_id = None;
        self.local_params.retry_source_connection_id = None;
        if !self.peer_params_parsed {
            return Err(Error::InvalidTransportParam);
        }
        tracing::debug!(trace_id = %self.trace_id, alpn = ?String::from_utf8_lossy(self.application_proto()), "handshake complete");
        if self.is_server {
            // RFC 9001 §4.1.2: the server confirms the handshake when it
            // completes, and sends HANDSHAKE_DONE.
            self.pending.handshake_done = true;
            self.confirm_handshake(now);
        }
        self.restart_idle_timer(now);
        Ok(())
    }

    /// The handshake is confirmed: discard Handshake keys (RFC 9001 §4.9.2).
    pub(crate) fn confirm_handshake(&mut self, now: Instant) {
        if self.handshake_confirmed {
            return;
        }
        self.handshake_confirmed = true;
        // RFC 8899 §5.2: the search starts once the path is confirmed.
        self.start_pmtud();
        if self.keep_session && self.tls_info.session.is_none() {
            // A server sends its NewSessionTicket with or soon after its
            // HANDSHAKE_DONE (RFC 9001 §4.5): TLS stays until it comes, or
            // for three PTOs if none does.
            let linger = 3 * self.recovery.pto();
            if let Some(tls) = self.tls.as_mut() {
                tls.linger_until = Some(now + linger);
            }
        } else {
            self.free_tls();
        }
        self.peer_validated_address = true;
        self.recovery.set_peer_completed_address_validation();
        self.recovery.set_handshake_confirmed();
        self.discard_space(Epoch::Initial);
        self.discard_space(Epoch::Handshake);
    }

    /// Frees the TLS state once the handshake is confirmed (a client:
    /// and a session ticket has come, or waiting for one timed out):
    /// everything TLS produced is in our crypto buffers, and QUIC needs no
    /// TLS after the handshake. It is most of a connection's memory
    /// otherwise.
    fn free_tls(&mut self) {
        if !self.handshake_complete {
            return;
        }
        if let Some(tls) = self.tls.take() {
            self.tls_info = TlsInfo {
                alpn: tls.alpn().to_vec(),
                server_name: tls.server_name().map(str::to_string),
                peer_cert: tls.peer_cert_der(),
                alert: self.tls_info.alert,
                resumed: tls.is_resumed(),
                session: self.tls_info.session.take(),
            };
        }
    }

    /// A client's TLS kept for a session ticket goes once the ticket has
    /// come or the wait is over.
    pub(crate) fn release_lingering_tls(&mut self, now: Instant) {
        let Some(tls) = &self.tls else {
            return;
        };
        let due = tls.linger_until.is_some_and(|t| now >= t);
        if due || self.handshake_confirmed && self.tls_info.session.is_some() {
            self.free_tls();
        }
    }

    /// Makes the ClientHello (deferred from `connect` so that a session
    /// can be offered in it).
    pub(crate) fn send_client_hello(&mut self, now: Instant) -> Result<()> {
        self.hello_pending = false;
        let r = self.drive_handshake(now);
        if let Err(e) = r {
            // No ClientHello (a config TLS refuses, e.g. without ALPN, which
            // QUIC requires: RFC 9001 §8.1): nothing reached the server,
            // so the connection ends here, with the error and TLS's reason,
            // and without a closing period (there is no one to tell).
            self.close_with_error(e, 0, "no ClientHello", now);
            self.close = CloseState::Closed;
            self.send_close = false;
        }
        r
    }
}
