//! Configuration shared by many connections (quiche's `Config`).

use std::time::Duration;

use boring::pkey::{PKey, Private};
use boring::ssl::{AlpnError, SslContext, SslContextBuilder, SslMethod, SslVerifyMode, SslVersion};
use boring::x509::X509;

use crate::error::{Error, Result};
use crate::packet::version_is_supported;
use crate::recovery::CongestionControlAlgorithm;
use crate::transport_params::TransportParams;

/// Stores configuration shared between multiple connections.
pub struct Config {
    pub(crate) version: u32,
    pub(crate) local_params: TransportParams,
    pub(crate) cc_algorithm: CongestionControlAlgorithm,
    pub(crate) hystart: bool,
    pub(crate) pacing: bool,
    pub(crate) discover_pmtu: bool,
    pub(crate) max_pacing_rate: Option<u64>,
    pub(crate) grease: bool,
    pub(crate) max_send_udp_payload_size: usize,
    pub(crate) max_connection_window: u64,
    pub(crate) max_stream_window: u64,
    pub(crate) dgram_recv_max_queue_len: usize,
    pub(crate) dgram_send_max_queue_len: usize,
    pub(crate) initial_rtt: Duration,
    pub(crate) initial_congestion_window_packets: usize,
    tls: TlsSettings,
    /// Built TLS contexts, [client, server].
    ctx: [Option<SslContext>; 2],
}

#[derive(Clone, Default)]
struct TlsSettings {
    chain: Vec<X509>,
    key: Option<PKey<Private>>,
    verify_peer: Option<bool>,
    ca_file: Option<String>,
    ca_dir: Option<String>,
    alpn: Vec<Vec<u8>>,
    curves: Option<String>,
    grease: bool,
    ticket_key: Option<[u8; 48]>,
    no_tickets: bool,
    early_data: bool,
    log_keys: bool,
    /// The record of 0-RTT ClientHellos a server consults (its own unless
    /// the application shares one).
    replay_guard: crate::ReplayGuard,
}

impl Config {
    /// Creates a config object with the given version.
    pub fn new(version: u32) -> Result<Config> {
        if !version_is_supported(version) {
            return Err(Error::UnknownVersion);
        }
        let local_params = TransportParams {
            max_udp_payload_size: 65_527,
            ..TransportParams::default()
        };
        Ok(Config {
            version,
            local_params,
            cc_algorithm: CongestionControlAlgorithm::CUBIC,
            hystart: true,
            pacing: true,
            discover_pmtu: false,
            max_pacing_rate: None,
            grease: true,
            max_send_udp_payload_size: 1200,
            max_connection_window: 24 * 1024 * 1024,
            max_stream_window: 16 * 1024 * 1024,
            dgram_recv_max_queue_len: 0,
            dgram_send_max_queue_len: 0,
            initial_rtt: Duration::from_millis(333),
            initial_congestion_window_packets: 10,
            tls: TlsSettings {
                grease: true,
                ..TlsSettings::default()
            },
            ctx: [None, None],
        })
    }

    fn tls_changed(&mut self) {
        self.ctx = [None, None];
    }

    /// Configures the certificate chain from a PEM file.
    pub fn load_cert_chain_from_pem_file(&mut self, file: &str) -> Result<()> {
        let pem = std::fs::read(file).map_err(|e| {
            tracing::warn!(file, error = %e, "cannot read certificate chain");
            Error::TlsFail
        })?;
        let chain = X509::stack_from_pem(&pem).map_err(|_| Error::TlsFail)?;
        if chain.is_empty() {
            return Err(Error::TlsFail);
        }
        self.tls.chain = chain;
        self.tls_changed();
        Ok(())
    }

    /// Configures the certificate chain from PEM bytes.
    pub fn load_cert_chain_from_pem(&mut self, pem: &[u8]) -> Result<()> {
        let chain = X509::stack_from_pem(pem).map_err(|_| Error::TlsFail)?;
        if chain.is_empty() {
            return Err(Error::TlsFail);
        }
        self.tls.chain = chain;
        self.tls_changed();
        Ok(())
    }

    /// Configures the private key from PEM bytes.
    pub fn load_priv_key_from_pem(&mut self, pem: &[u8]) -> Result<()> {
        self.tls.key = Some(PKey::private_key_from_pem(pem).map_err(|_| Error::TlsFail)?);
        self.tls_changed();
        Ok(())
    }

    /// Configures the private key from a PEM file.
    pub fn load_priv_key_from_pem_file(&mut self, file: &str) -> Result<()> {
        let pem = std::fs::read(file).map_err(|e| {
            tracing::warn!(file, error = %e, "cannot read private key");
            Error::TlsFail
        })?;
        self.tls.key = Some(PKey::private_key_from_pem(&pem).map_err(|_| Error::TlsFail)?);
        self.tls_changed();
        Ok(())
    }

    /// Specifies a file of trusted CA certificates in PEM.
    pub fn load_verify_locations_from_file(&mut self, file: &str) -> Result<()> {
        std::fs::metadata(file).map_err(|_| Error::TlsFail)?;
        self.tls.ca_file = Some(file.to_string());
        self.tls_changed();
        Ok(())
    }

    /// Specifies a directory of trusted CA certificates.
    pub fn load_verify_locations_from_directory(&mut self, dir: &str) -> Result<()> {
        std::fs::metadata(dir).map_err(|_| Error::TlsFail)?;
        self.tls.ca_dir = Some(dir.to_string());
        self.tls_changed();
        Ok(())
    }

    /// Configures whether to verify the peer's certificate. By default a
    /// client verifies the server and a server does not ask for client
    /// certificates.
    pub fn verify_peer(&mut self, verify: bool) {
        self.tls.verify_peer = Some(verify);
        self.tls_changed();
    }

    /// Configures whether to send GREASE values (TLS, transport parameters,
    /// QUIC bit-independent values). Enabled by default.
    pub fn grease(&mut self, grease: bool) {
        self.grease = grease;
        self.tls.grease = grease;
        self.tls_changed();
    }

    /// Configures the list of supported application protocols, in order of
    /// preference.
    pub fn set_application_protos(&mut self, protos_list: &[&[u8]]) -> Result<()> {
        if protos_list.iter().any(|p| p.is_empty() || p.len() > 255) {
            return Err(Error::InvalidState);
        }
        self.tls.alpn = protos_list.iter().map(|p| p.to_vec()).collect();
        self.tls_changed();
        Ok(())
    }

    /// Configures the application protocols from their wire format (each
    /// prefixed by its one-byte length).
    pub fn set_application_protos_wire_format(&mut self, protos: &[u8]) -> Result<()> {
        let mut list = Vec::new();
        let mut b = crate::octets::Octets::with_slice(protos);
        while b.cap() > 0 {
            let p = b
                .get_bytes_with_u8_length()
                .map_err(|_| Error::BufferTooShort)?;
            list.push(p);
        }
        self.set_application_protos(&list)
    }

    /// Sets the TLS key-exchange groups, e.g. `"X25519"` or
    /// `"X25519MLKEM768:X25519:P-256"`.
    pub fn set_curves_list(&mut self, curves: &str) -> Result<()> {
        // Validate now so that a typo fails here, not at connect().
        let mut b = SslContextBuilder::new(SslMethod::tls()).map_err(|_| Error::TlsFail)?;
        b.set_curves_list(curves).map_err(|_| Error::TlsFail)?;
        self.tls.curves = Some(curves.to_string());
        self.tls_changed();
        Ok(())
    }

    /// Sets the `max_idle_timeout` transport parameter, in milliseconds.
    pub fn set_max_idle_timeout(&mut self, v: u64) {
        self.local_params.max_idle_timeout = v;
    }

    /// Sets the `max_udp_payload_size` transport parameter.
    pub fn set_max_recv_udp_payload_size(&mut self, v: usize) {
        self.local_params.max_udp_payload_size = v as u64;
    }

    /// Sets the maximum outgoing UDP payload size (at least 1200). With
    /// [`Config::discover_pmtu`] it is the largest size the search tries.
    pub fn set_max_send_udp_payload_size(&mut self, v: usize) {
        self.max_send_udp_payload_size = v.max(1200);
    }

    /// Sets the `initial_max_data` transport parameter.
    pub fn set_initial_max_data(&mut self, v: u64) {
        self.local_params.initial_max_data = v;
    }

    /// Sets the `initial_max_stream_data_bidi_local` transport parameter.
    pub fn set_initial_max_stream_data_bidi_local(&mut self, v: u64) {
        self.local_params.initial_max_stream_data_bidi_local = v;
    }

    /// Sets the `initial_max_stream_data_bidi_remote` transport parameter.
    pub fn set_initial_max_stream_data_bidi_remote(&mut self, v: u64) {
        self.local_params.initial_max_stream_data_bidi_remote = v;
    }

    /// Sets the `initial_max_stream_data_uni` transport parameter.
    pub fn set_initial_max_stream_data_uni(&mut self, v: u64) {
        self.local_params.initial_max_stream_data_uni = v;
    }

    /// Sets the `initial_max_streams_bidi` transport parameter.
    pub fn set_initial_max_streams_bidi(&mut self, v: u64) {
        self.local_params.initial_max_streams_bidi = v;
    }

    /// Sets the `initial_max_streams_uni` transport parameter.
    pub fn set_initial_max_streams_uni(&mut self, v: u64) {
        self.local_params.initial_max_streams_uni = v;
    }

    /// Sets the `ack_delay_exponent` transport parameter (at most 20).
    pub fn set_ack_delay_exponent(&mut self, v: u64) {
        self.local_params.ack_delay_exponent = v.min(20);
    }

    /// Sets the `max_ack_delay` transport parameter, in milliseconds.
    pub fn set_max_ack_delay(&mut self, v: u64) {
        self.local_params.max_ack_delay = v.min((1 << 14) - 1);
    }

    /// Sets the `active_connection_id_limit` transport parameter (at least 2).
    pub fn set_active_connection_id_limit(&mut self, v: u64) {
        self.local_params.active_conn_id_limit = v.max(2);
    }

    /// Sets the `disable_active_migration` transport parameter.
    pub fn set_disable_active_migration(&mut self, v: bool) {
        self.local_params.disable_active_migration = v;
    }

    /// Sets the stateless reset token a server sends.
    pub fn set_stateless_reset_token(&mut self, v: Option<u128>) {
        self.local_params.stateless_reset_token = v;
    }

    /// Sets the congestion control algorithm.
    pub fn set_cc_algorithm(&mut self, algo: CongestionControlAlgorithm) {
        self.cc_algorithm = algo;
    }

    /// Sets the congestion control algorithm by name ("reno", "cubic").
    pub fn set_cc_algorithm_name(&mut self, name: &str) -> Result<()> {
        self.cc_algorithm = name.parse().map_err(|_| Error::CongestionControl)?;
        Ok(())
    }

    /// Sets the initial congestion window, in packets (RFC 9002 §7.2: 10 by
    /// default; at least 2): min(packets × mss, max(packets × 1472, 2 ×
    /// mss)) bytes.
    pub fn set_initial_congestion_window_packets(&mut self, packets: usize) {
        self.initial_congestion_window_packets = packets.max(2);
    }

    /// Configures whether to use HyStart++ (RFC 9406).
    pub fn enable_hystart(&mut self, v: bool) {
        self.hystart = v;
    }

    /// Configures whether to pace outgoing packets (`SendInfo::at`).
    pub fn enable_pacing(&mut self, v: bool) {
        self.pacing = v;
    }

    /// Caps the pacing rate of every connection at `v` bytes per second
    /// (quiche's name): `SendInfo::at` spaces packets so that no more
    /// leave, whatever the congestion window allows. Only with pacing on
    /// ([`Config::enable_pacing`], the default).
    pub fn set_max_pacing_rate(&mut self, v: u64) {
        self.max_pacing_rate = Some(v);
    }

    /// Configures path MTU discovery (DPLPMTUD, RFC 8899 and RFC 9000
    /// §14.3; off by default). On, a connection sends 1200-byte datagrams
    /// (the size every QUIC path carries) until the handshake is
    /// confirmed, then probes larger ones with PING + PADDING packets up to
    /// the smaller of [`Config::set_max_send_udp_payload_size`] and the
    /// peer's max_udp_payload_size, and sends at the largest size
    /// acknowledged (`PathStats::pmtu`). Probes are not retransmitted and
    /// their loss is no congestion signal (RFC 9000 §14.4). A new path
    /// (migration to another address) starts again from 1200, and so does
    /// a path on which three PTOs pass with nothing acknowledged after the
    /// size was raised (RFC 8899 §4.3: its MTU may have shrunk); a search
    /// that stopped below the maximum looks for more after 600 s (RFC 8899
    /// §5.1.1's PMTU_RAISE_TIMER: routes change). Off, every
    /// datagram after the handshake may be as large as configured, as the
    /// application then knows its paths carry that.
    pub fn discover_pmtu(&mut self, discover: bool) {
        self.discover_pmtu = discover;
    }

    /// Enables DATAGRAM frames (RFC 9221) with the given queue lengths.
    pub fn enable_dgram(&mut self, enabled: bool, recv_queue_len: usize, send_queue_len: usize) {
        self.local_params.max_datagram_frame_size = if enabled { Some(65_536) } else { None };
        self.dgram_recv_max_queue_len = recv_queue_len;
        self.dgram_send_max_queue_len = send_queue_len;
    }

    /// Sets the largest connection flow-control window auto-tuning may reach.
    pub fn set_max_connection_window(&mut self, v: u64) {
        self.max_connection_window = v;
    }

    /// Sets the largest stream flow-control window auto-tuning may reach.
    pub fn set_max_stream_window(&mut self, v: u64) {
        self.max_stream_window = v;
    }

    /// Sets the key that seals and opens the server's session tickets:
    /// 48 bytes (a 16-byte key name, a 16-byte HMAC key, a 16-byte AES
    /// key). Servers sharing it resume each other's sessions; without it
    /// each config makes a random key of its own.
    pub fn set_ticket_key(&mut self, key: &[u8]) -> Result<()> {
        let key: [u8; 48] = key.try_into().map_err(|_| Error::TlsFail)?;
        self.tls.ticket_key = Some(key);
        self.tls_changed();
        Ok(())
    }

    /// Enables 0-RTT (RFC 9001 §4.6): a client resuming a session that
    /// allows it sends stream data before the handshake completes
    /// (`is_in_early_data`); a server issues tickets that allow it and
    /// accepts such data. 0-RTT data can be replayed by an attacker
    /// (RFC 8446 §8): a server refuses 0-RTT to a ClientHello it has seen
    /// (see [`Config::set_replay_guard`]), but servers that do not share
    /// that record, and the client retrying a rejected request, still
    /// repeat requests: act on 0-RTT data only where that is harmless,
    /// like idempotent requests.
    pub fn enable_early_data(&mut self) {
        self.tls.early_data = true;
        self.tls_changed();
    }

    /// Makes a server that accepts 0-RTT consult `guard`, a record of the
    /// ClientHellos that offered it, shared with every config given the
    /// same guard: a ClientHello seen again (an attacker replaying a
    /// client's first flight to this or another server sharing the guard)
    /// gets no 0-RTT and completes its handshake in 1-RTT (RFC 8446 §8;
    /// see [`ReplayGuard`](crate::ReplayGuard)). Without it each config
    /// keeps a record of its own. Servers accepting the same session
    /// tickets should share one guard (the workers of one process do so
    /// through this call; other processes or machines are not covered).
    pub fn set_replay_guard(&mut self, guard: &crate::ReplayGuard) {
        self.tls.replay_guard = guard.clone();
        self.tls_changed();
    }

    /// Enables logging of TLS secrets: a connection given a writer with
    /// [`Connection::set_keylog`](crate::Connection::set_keylog) writes
    /// them there in the NSS key log format (what `SSLKEYLOGFILE` files
    /// hold; Wireshark decrypts QUIC captures with them). Anyone holding
    /// the log can read the traffic: for debugging only.
    pub fn log_keys(&mut self) {
        self.tls.log_keys = true;
        self.tls_changed();
    }

    /// Whether 0-RTT is enabled.
    pub(crate) fn early_data(&self) -> bool {
        self.tls.early_data
    }

    /// Whether session tickets are on (see `set_session_tickets`).
    pub(crate) fn session_tickets(&self) -> bool {
        !self.tls.no_tickets
    }

    /// Session tickets (default on). A server without them issues none:
    /// clients cannot resume, and each handshake saves sealing one. A
    /// client without them keeps no session (`Connection::session` stays
    /// `None`) and frees its TLS state as soon as the handshake is
    /// confirmed: a load generator's thousands of connections need none.
    pub fn set_session_tickets(&mut self, enabled: bool) {
        self.tls.no_tickets = !enabled;
        self.tls_changed();
    }

    /// Sets the RTT assumed before the first sample (default 333 ms).
    pub fn set_initial_rtt(&mut self, v: Duration) {
        self.initial_rtt = v;
    }

    /// The TLS context for `is_server`, built on first use.
    pub(crate) fn ssl_ctx(&mut self, is_server: bool) -> Result<SslContext> {
        let slot = &mut self.ctx[usize::from(is_server)];
        if let Some(ctx) = slot {
            return Ok(ctx.clone());
        }
        let ctx = build_ctx(&self.tls, is_server)?;
        *slot = Some(ctx.clone());
        Ok(ctx)
    }

    /// Whether the client verifies the server (or the server the client).
    pub(crate) fn verifies_peer(&self, is_server: bool) -> bool {
        self.tls.verify_peer.unwrap_or(!is_server)
    }
}

fn build_ctx(tls: &TlsSettings, is_server: bool) -> Result<SslContext> {
    let tls_err = |e: boring::error::ErrorStack| {
        tracing::warn!(error = %e, "TLS context setup failed");
        Error::TlsFail
    };
    let mut b = SslContextBuilder::new(SslMethod::tls()).map_err(tls_err)?;
    // RFC 9001 §4.2: "Clients MUST NOT offer TLS versions older than 1.3."
    b.set_min_proto_version(Some(SslVersion::TLS1_3))
        .map_err(tls_err)?;
    b.set_max_proto_version(Some(SslVersion::TLS1_3))
        .map_err(tls_err)?;
    crate::tls::install_quic_method(b.as_ptr())?;
    if let Some((leaf, rest)) = tls.chain.split_first() {
        b.set_certificate(leaf).map_err(tls_err)?;
        for c in rest {
            b.add_extra_chain_cert(c.clone()).map_err(tls_err)?;
        }
    }
    if let Some(key) = &tls.key {
        b.set_private_key(key).map_err(tls_err)?;
        if !tls.chain.is_empty() {
            b.check_private_key().map_err(tls_err)?;
        }
    }
    let verify = tls.verify_peer.unwrap_or(!is_server);
    if verify {
        if tls.ca_file.is_some() || tls.ca_dir.is_some() {
            b.load_verify_locations(
                tls.ca_file.as_deref().map(std::path::Path::new),
                tls.ca_dir.as_deref().map(std::path::Path::new),
            )
            .map_err(tls_err)?;
        } else {
            b.set_default_verify_paths().map_err(tls_err)?;
        }
        let mode = if is_server {
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT
        } else {
            SslVerifyMode::PEER
        };
        b.set_verify(mode);
    } else {
        b.set_verify(SslVerifyMode::NONE);
    }
    if let Some(curves) = &tls.curves {
        b.set_curves_list(curves).map_err(tls_err)?;
    }
    b.set_grease_enabled(tls.grease);
    if is_server {
        // Resumption is stateless (RFC 9001 §4.5: the session travels in
        // the ticket): a server-side session cache would only hold memory
        // for every connection ever made.
        b.set_session_cache_mode(boring::ssl::SslSessionCacheMode::OFF);
        crate::tls::set_server_tickets(b.as_ptr(), tls.ticket_key.as_ref())?;
        if tls.no_tickets {
            b.set_options(boring::ssl::SslOptions::NO_TICKET);
        }
    } else if !tls.no_tickets {
        crate::tls::install_client_session_callback(b.as_ptr());
    }
    if tls.early_data {
        crate::tls::enable_early_data(b.as_ptr());
        if is_server {
            crate::tls::install_replay_guard(b.as_ptr(), &tls.replay_guard)?;
        }
    }
    if tls.log_keys {
        crate::tls::install_keylog(b.as_ptr());
    }
    let mut wire = Vec::new();
    for p in &tls.alpn {
        wire.push(p.len() as u8);
        wire.extend_from_slice(p);
    }
    if is_server {
        // RFC 9001 §8.1: without a common protocol the server fails the
        // handshake with no_application_protocol.
        let prefs = tls.alpn.clone();
        b.set_alpn_select_callback(move |_, client| {
            select_alpn(&prefs, client).ok_or(AlpnError::ALERT_FATAL)
        });
    } else if !wire.is_empty() {
        b.set_alpn_protos(&wire).map_err(tls_err)?;
    }
    Ok(b.build())
}

/// The first of our protocols (in our order of preference) that the client
/// offered, as a slice of the client's list.
fn select_alpn<'a>(prefs: &[Vec<u8>], client: &'a [u8]) -> Option<&'a [u8]> {
    for p in prefs {
        let mut b = crate::octets::Octets::with_slice(client);
        while let Ok(offered) = b.get_bytes_with_u8_length() {
            if offered == &p[..] {
                return Some(offered);
            }
        }
    }
    None
}
