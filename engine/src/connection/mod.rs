//! The QUIC connection state machine.
//!
//! # Calling contract
//!
//! A [`Connection`] owns no socket, thread or clock. The application:
//! 1. feeds every datagram for this connection to [`Connection::recv`];
//! 2. calls [`Connection::send`] until it returns [`Error::Done`], sending
//!    each datagram to `SendInfo::to` no earlier than `SendInfo::at`;
//! 3. arms a timer for [`Connection::timeout`] and calls
//!    [`Connection::on_timeout`] when it fires, then goes back to 2;
//! 4. reads and writes streams between those calls.
//!
//! The `*_at` variants take the current time explicitly; the plain ones
//! read `Instant::now()`. Internally, inputs are `handle_*` and outputs
//! `poll_*`.

mod batch;
mod cids;
mod dgram;
mod handshake;
mod paths;
mod pmtud;
mod qlog;
mod recv;
mod send;
mod space;

pub use batch::BatchInfo;
pub(crate) use dgram::DatagramQueues;
use handshake::{early_data_context, EarlyData, EarlyPacket, TlsInfo};
pub(crate) use paths::{same_address, PathProbe, PathResponse, PathValidation};
pub use paths::{PathEvent, SocketAddrIter};
pub use qlog::QlogLevel;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::cid::{ConnectionId, MAX_CONN_ID_LEN};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::recovery::{Epoch, Recovery, RecoveryConfig};
use crate::stream::{FlowControl, StreamMap};
use crate::tls::Handshake;
use crate::transport_params::TransportParams;

use self::cids::Cids;
use self::space::{KeyUpdate, PacketSpace};

/// Ancillary information about incoming packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvInfo {
    /// The remote address the packet was received from.
    pub from: SocketAddr,
    /// The local address the packet was received on: the same value as
    /// the `local` given to `connect`/`accept` (or `migrate`) for packets
    /// of the connection's path. Paths are told apart by these addresses
    /// (a PATH_RESPONSE goes back on the path its challenge came on).
    pub to: SocketAddr,
}

/// Ancillary information about outgoing packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendInfo {
    /// The local address the packet should be sent from.
    pub from: SocketAddr,
    /// The remote address the packet should be sent to.
    pub to: SocketAddr,
    /// The time to send the packet out (pacing).
    pub at: Instant,
}

/// The side of the stream to be shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Stop receiving stream data.
    Read = 0,
    /// Stop sending stream data.
    Write = 1,
}

/// An error the connection was closed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionError {
    /// Whether the error came from the application or the transport.
    pub is_app: bool,
    /// The error code.
    pub error_code: u64,
    /// The reason phrase.
    pub reason: Vec<u8>,
}

/// `transport error 0x130: certificate verify failed: …` (the reason
/// phrase as text, invalid UTF-8 replaced; RFC 9000 §19.19 makes it
/// UTF-8). Transport codes 0x100-0x1ff carry a TLS alert (RFC 9001 §4.8).
impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_app {
            "application"
        } else {
            "transport"
        };
        write!(f, "{kind} error {:#x}", self.error_code)?;
        if !self.reason.is_empty() {
            write!(f, ": {}", String::from_utf8_lossy(&self.reason))?;
        }
        Ok(())
    }
}

/// Statistics about the connection.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Packets received.
    pub recv: usize,
    /// Packets sent.
    pub sent: usize,
    /// Packets declared lost.
    pub lost: usize,
    /// Packets sent that carry stream or CRYPTO data sent before (a
    /// retransmission of lost or probed data).
    pub retrans: usize,
    /// Bytes sent (UDP payloads).
    pub sent_bytes: u64,
    /// Bytes received (UDP payloads).
    pub recv_bytes: u64,
    /// Bytes of lost packets.
    pub lost_bytes: u64,
    /// Stream bytes sent again (counted when sent, not when lost).
    pub stream_retrans_bytes: u64,
    /// Number of known paths.
    pub paths_count: usize,
    /// Packets dropped as undecryptable, duplicate or malformed.
    pub dropped: usize,
    /// Whether the peer's stateless reset closed the connection.
    pub reset_stream_count_local: u64,
    /// Key updates done.
    pub key_updates: u64,
}

/// Statistics about a path.
#[derive(Clone, Debug)]
pub struct PathStats {
    /// Local address.
    pub local_addr: SocketAddr,
    /// Peer address.
    pub peer_addr: SocketAddr,
    /// Whether the path is validated.
    pub validated: bool,
    /// Latest RTT estimate.
    pub rtt: Duration,
    /// Minimum RTT.
    pub min_rtt: Option<Duration>,
    /// RTT variation.
    pub rttvar: Duration,
    /// Congestion window in bytes.
    pub cwnd: usize,
    /// Bytes in flight.
    pub bytes_in_flight: usize,
    /// Packets sent on the path.
    pub sent: usize,
    /// Packets received on the path.
    pub recv: usize,
    /// Packets lost on the path.
    pub lost: usize,
    /// Maximum datagram size used on the path.
    pub pmtu: usize,
}

/// What a sent packet carried that may need retransmission or cleanup
/// when it is acknowledged or lost.
#[derive(Clone, Debug)]
pub(crate) enum SentFrame {
    Ack {
        largest: u64,
    },
    Crypto {
        offset: u64,
        len: usize,
    },
    Stream {
        id: u64,
        offset: u64,
        len: usize,
        fin: bool,
    },
    ResetStream {
        id: u64,
        error_code: u64,
        final_size: u64,
    },
    StopSending {
        id: u64,
        error_code: u64,
    },
    MaxData,
    MaxStreamData {
        id: u64,
    },
    MaxStreams {
        bidi: bool,
    },
    DataBlocked,
    StreamDataBlocked,
    StreamsBlocked,
    NewConnectionId {
        seq: u64,
    },
    RetireConnectionId {
        seq: u64,
    },
    HandshakeDone,
    Ping,
    /// A path MTU probe (PING + PADDING) of this many bytes of UDP payload.
    PmtuProbe {
        size: usize,
    },
    PathChallenge,
    Datagram,
    Close,
}

/// The frames of one sent packet: most carry one or two (an ACK and a
/// STREAM frame), kept inline so sending allocates nothing.
pub(crate) type SentFrames = smallvec::SmallVec<[SentFrame; 2]>;

/// Control frames waiting to be sent (or re-sent after loss).
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) max_data: bool,
    pub(crate) max_stream_data: Vec<u64>,
    pub(crate) max_streams_bidi: bool,
    pub(crate) max_streams_uni: bool,
    pub(crate) data_blocked: Option<u64>,
    pub(crate) handshake_done: bool,
    pub(crate) ping: bool,
    /// The queues of rarer frames, boxed: most connections, idle ones
    /// above all, have none queued (memory per connection matters at the
    /// edge); freed again once all are empty and the sender is idle.
    queues: Option<Box<PendingQueues>>,
}

/// Frames that wait in queues (see [`Pending`]), and the path events the
/// application has not read yet.
#[derive(Default)]
pub(crate) struct PendingQueues {
    pub(crate) reset_stream: VecDeque<(u64, u64, u64)>,
    pub(crate) stop_sending: VecDeque<(u64, u64)>,
    pub(crate) new_cids: VecDeque<u64>,
    pub(crate) retire_cids: VecDeque<u64>,
    pub(crate) path_responses: VecDeque<PathResponse>,
    pub(crate) path_events: VecDeque<PathEvent>,
}

impl PendingQueues {
    const EMPTY: PendingQueues = PendingQueues {
        reset_stream: VecDeque::new(),
        stop_sending: VecDeque::new(),
        new_cids: VecDeque::new(),
        retire_cids: VecDeque::new(),
        path_responses: VecDeque::new(),
        path_events: VecDeque::new(),
    };

    /// Whether no frame waits (path events are not frames).
    fn no_frames(&self) -> bool {
        self.reset_stream.is_empty()
            && self.stop_sending.is_empty()
            && self.new_cids.is_empty()
            && self.retire_cids.is_empty()
            && self.path_responses.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.no_frames() && self.path_events.is_empty()
    }
}

static NO_QUEUES: PendingQueues = PendingQueues::EMPTY;

impl Pending {
    /// The queues, empty ones when none were ever needed.
    pub(crate) fn q(&self) -> &PendingQueues {
        self.queues.as_deref().unwrap_or(&NO_QUEUES)
    }

    /// The queues, to add to (allocated on first use).
    pub(crate) fn q_mut(&mut self) -> &mut PendingQueues {
        self.queues.get_or_insert_with(Box::default)
    }

    /// The queues if any were allocated (taking from them, or changing
    /// entries, needs no allocation).
    pub(crate) fn q_existing(&mut self) -> Option<&mut PendingQueues> {
        self.queues.as_deref_mut()
    }

    /// Whether any queue holds a frame.
    pub(crate) fn any_queued(&self) -> bool {
        self.queues.as_ref().is_some_and(|q| !q.no_frames())
    }

    /// Frees the queues once all are empty.
    pub(crate) fn release_idle(&mut self) {
        if self.queues.as_ref().is_some_and(|q| q.is_empty()) {
            self.queues = None;
        }
    }
}

/// Whether and how we are closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseState {
    /// Open.
    Open,
    /// We sent (or must send) CONNECTION_CLOSE (RFC 9000 §10.2.1).
    Closing { until: Instant },
    /// The peer closed; we send nothing (RFC 9000 §10.2.2).
    Draining { until: Instant },
    /// Done.
    Closed,
}

/// A QUIC connection.
pub struct Connection {
    pub(crate) is_server: bool,
    pub(crate) version: u32,
    pub(crate) trace_id: Box<str>,

    pub(crate) cids: Cids,
    /// The DCID of the client's first Initial (sets Initial keys, and is
    /// the original_destination_connection_id).
    pub(crate) odcid: ConnectionId<'static>,
    /// The DCID the Initial keys derive from (client: ODCID, then the
    /// Retry's SCID; server: the DCID of the client's first Initial).
    pub(crate) initial_dcid: ConnectionId<'static>,
    /// The SCID of the Retry (client: received; server: from `accept`).
    pub(crate) rscid: Option<ConnectionId<'static>>,
    /// Token to echo in Initial packets (client, after Retry).
    pub(crate) token: Vec<u8>,
    pub(crate) did_retry: bool,
    /// Client: whether any packet from the server was processed.
    pub(crate) got_peer_packet: bool,
    /// Whether a Version Negotiation packet was processed or ignored.
    pub(crate) did_version_negotiation: bool,

    /// The TLS handshake; a server drops it once the handshake is done
    /// (nothing after it needs TLS), keeping what the API reports.
    pub(crate) tls: Option<Handshake>,
    /// What the API reports about TLS after it is dropped.
    pub(crate) tls_info: TlsInfo,
    pub(crate) handshake_complete: bool,
    pub(crate) handshake_confirmed: bool,
    pub(crate) spaces: [PacketSpace; 3],
    pub(crate) key_update: KeyUpdate,
    pub(crate) recovery: Recovery<SentFrames>,

    pub(crate) streams: StreamMap,
    pub(crate) flow: FlowControl,
    pub(crate) local_params: TransportParams,
    pub(crate) peer_params: TransportParams,
    pub(crate) peer_params_parsed: bool,

    pub(crate) local_addr: SocketAddr,
    pub(crate) peer_addr: SocketAddr,
    /// Server: whether the client's address is validated (RFC 9000 §8.1).
    pub(crate) address_validated: bool,
    /// Validation of the address the peer migrated to, if under way.
    pub(crate) path_validation: Option<Box<PathValidation>>,
    /// Client: a path probed for a later migration, if any.
    pub(crate) probe: Option<Box<PathProbe>>,
    /// Client: whether the server validated our address (we got a
    /// Handshake or 1-RTT packet: RFC 9002 §6.2.2.1).
    pub(crate) peer_validated_address: bool,
    pub(crate) bytes_recv_unvalidated: u32,
    pub(crate) bytes_sent_unvalidated: u32,

    pub(crate) idle_timeout: Option<Duration>,
    /// When the idle timer last restarted; the deadline is computed when
    /// asked (see `idle_deadline`), not on every packet.
    pub(crate) idle_since: Option<Instant>,
    /// Whether an ack-eliciting packet was sent since the last received
    /// packet (restarts the idle timer once, RFC 9000 §10.1).
    pub(crate) ack_eliciting_sent_since_recv: bool,
    pub(crate) close: CloseState,
    pub(crate) local_error: Option<ConnectionError>,
    pub(crate) peer_error: Option<ConnectionError>,
    pub(crate) timed_out: bool,
    /// Client: PINGs sent to a silent server since it last sent anything
    /// ack-eliciting (see `stall_probe_deadline`).
    pub(crate) stall_probes: u8,
    /// Client: the ClientHello is still to be made (on the first send).
    pub(crate) hello_pending: bool,
    /// Client: keep the sessions NewSessionTickets make.
    pub(crate) keep_session: bool,
    /// Where the connection stands with 0-RTT.
    pub(crate) early: EarlyData,
    /// 0-RTT packet keys: a client's to seal, a server's to open; gone
    /// once 1-RTT takes over (RFC 9001 §4.9.3).
    pub(crate) zero_rtt_keys: Option<Box<crate::crypto::DirectionalKeys>>,
    /// Server: 0-RTT packets that came before the ClientHello was whole
    /// (the keys to open them come with it), with how they came.
    /// (Boxed: one pointer in every connection instead of a Vec's three,
    /// for what only a reordered 0-RTT flight ever uses.)
    #[allow(clippy::box_collection)]
    pub(crate) early_packets: Option<Box<Vec<EarlyPacket>>>,
    /// Whether a CONNECTION_CLOSE should be (re)sent now.
    pub(crate) send_close: bool,

    pub(crate) pending: Pending,
    /// DATAGRAM frames received and to send (RFC 9221), boxed: few
    /// connections use them.
    pub(crate) dgrams: Option<Box<DatagramQueues>>,
    pub(crate) dgram_recv_max: usize,
    pub(crate) dgram_send_max: usize,

    pub(crate) max_send_udp_payload: usize,
    /// Path MTU discovery is on ([`Config::discover_pmtu`]).
    pub(crate) discover_pmtu: bool,
    /// Its search on the current path, from handshake confirmation until
    /// it is over (boxed and then freed: per-connection memory).
    pub(crate) pmtud: Option<Box<pmtud::Pmtud>>,
    /// The largest UDP payload the current path was seen to carry (with
    /// discovery on).
    pub(crate) pmtu: usize,
    /// When a search that stopped below the maximum looks for more.
    pub(crate) pmtu_raise_at: Option<Instant>,
    pub(crate) grease: bool,
    pub(crate) stats: Stats,
    /// Scratch for ACK ranges (reused, no allocation per ACK).
    pub(crate) ack_scratch: Vec<std::ops::RangeInclusive<u64>>,
    /// Scratch for ACK processing outcomes (reused).
    pub(crate) ack_outcome: Option<Box<crate::recovery::AckOutcome<SentFrames>>>,
    /// State of batched sends and receives (`batch.rs`), while in use.
    pub(crate) batch: Option<Box<batch::Batch>>,
    /// The qlog, when the application asked for one (`qlog.rs`).
    pub(crate) qlog: Option<Box<qlog::Qlog>>,
}

/// Creates a new client-side connection.
pub fn connect(
    server_name: Option<&str>,
    scid: &ConnectionId<'_>,
    local: SocketAddr,
    peer: SocketAddr,
    config: &mut Config,
) -> Result<Connection> {
    // The client's first DCID is random, at least 8 bytes (RFC 9000 §7.2).
    let mut dcid = [0u8; 16];
    boring::rand::rand_bytes(&mut dcid).map_err(|_| Error::CryptoFail)?;
    connect_with_dcid(
        server_name,
        scid,
        &ConnectionId::from_ref(&dcid),
        local,
        peer,
        config,
    )
}

/// Creates a new client-side connection with a chosen initial DCID.
pub fn connect_with_dcid(
    server_name: Option<&str>,
    scid: &ConnectionId<'_>,
    dcid: &ConnectionId<'_>,
    local: SocketAddr,
    peer: SocketAddr,
    config: &mut Config,
) -> Result<Connection> {
    if dcid.len() < 8 || dcid.len() > MAX_CONN_ID_LEN {
        return Err(Error::InvalidDcidInitialization);
    }
    Connection::new(
        scid,
        None,
        None,
        server_name,
        local,
        peer,
        config,
        false,
        Some(dcid),
    )
}

/// Creates a new server-side connection. `odcid` is the original DCID
/// when the client's address was validated with Retry (then `scid` must
/// be the Retry's SCID).
pub fn accept(
    scid: &ConnectionId<'_>,
    odcid: Option<&ConnectionId<'_>>,
    local: SocketAddr,
    peer: SocketAddr,
    config: &mut Config,
) -> Result<Connection> {
    Connection::new(scid, odcid, None, None, local, peer, config, true, None)
}

/// Whether the connection is in an early stage where `recv` must be given
/// whole datagrams (always true: tarte never needs anything else).
pub const fn datagram_boundaries_required() -> bool {
    true
}

impl Connection {
    #[allow(clippy::too_many_arguments)]
    fn new(
        scid: &ConnectionId<'_>,
        odcid: Option<&ConnectionId<'_>>,
        _unused: Option<()>,
        server_name: Option<&str>,
        local: SocketAddr,
        peer: SocketAddr,
        config: &mut Config,
        is_server: bool,
        client_dcid: Option<&[u8]>,
    ) -> Result<Connection> {
        if scid.len() > MAX_CONN_ID_LEN {
            return Err(Error::InvalidState);
        }
        let scid = ConnectionId::from_vec(scid.to_vec());
        let mut local_params = config.local_params.clone();
        local_params.initial_source_connection_id = Some(scid.clone());
        let (odcid_v, rscid, dcid) = if is_server {
            // The Initial keys and ODCID are fixed on the first packet; a
            // server with Retry knows the ODCID from its token.
            let o = odcid.map(|o| ConnectionId::from_vec(o.to_vec()));
            let rscid = o.as_ref().map(|_| scid.clone());
            (o.unwrap_or_default(), rscid, ConnectionId::default())
        } else {
            let d = ConnectionId::from_vec(client_dcid.unwrap_or_default().to_vec());
            (d.clone(), None, d)
        };
        if is_server {
            local_params.original_destination_connection_id = if odcid_v.is_empty() {
                None
            } else {
                Some(odcid_v.clone())
            };
            local_params.retry_source_connection_id = rscid.clone();
            if local_params.stateless_reset_token.is_none() {
                let mut t = [0u8; 16];
                boring::rand::rand_bytes(&mut t).map_err(|_| Error::CryptoFail)?;
                local_params.stateless_reset_token = Some(u128::from_be_bytes(t));
            }
        } else {
            local_params.original_destination_connection_id = None;
            local_params.stateless_reset_token = None;
            local_params.retry_source_connection_id = None;
            local_params.preferred_address = None;
        }

        let ctx = config.ssl_ctx(is_server)?;
        let mut tp_buf = [0u8; 512];
        let tp_len = local_params.encode(is_server, config.grease, &mut tp_buf)?;
        // A server encodes its parameters once the ODCID is known (on the
        // first Initial); the client's are final now.
        let mut tls = Handshake::new(
            &ctx,
            is_server,
            server_name,
            config.verifies_peer(is_server),
            &tp_buf[..tp_len],
        )?;
        if is_server && config.early_data() {
            tls.set_early_data_context(&early_data_context(&local_params))?;
        }

        let mut recovery = Recovery::new(&RecoveryConfig {
            max_datagram_size: config.max_send_udp_payload_size,
            cc: config.cc_algorithm,
            hystart: config.hystart,
            pacing: config.pacing,
            initial_rtt: config.initial_rtt,
            initial_window_packets: config.initial_congestion_window_packets,
        });
        recovery.set_max_pacing_rate(config.max_pacing_rate);

        let streams = StreamMap::new(
            local_params.initial_max_streams_bidi,
            local_params.initial_max_streams_uni,
            &local_params,
            is_server,
            config.max_stream_window,
        );
        let flow = FlowControl::new(local_params.initial_max_data, config.max_connection_window);
        let trace_id = format!("{scid}").into_boxed_str();
        let reset_token = local_params.stateless_reset_token;
        let mut conn = Connection {
            is_server,
            version: config.version,
            trace_id,
            cids: Cids::new(scid, dcid, local_params.active_conn_id_limit, reset_token),
            initial_dcid: if is_server {
                ConnectionId::default()
            } else {
                odcid_v.clone()
            },
            odcid: odcid_v,
            rscid,
            token: Vec::new(),
            did_retry: false,
            got_peer_packet: false,
            did_version_negotiation: false,
            tls: Some(tls),
            tls_info: TlsInfo::default(),
            handshake_complete: false,
            handshake_confirmed: false,
            spaces: [
                PacketSpace::new(Epoch::Initial),
                PacketSpace::new(Epoch::Handshake),
                PacketSpace::new(Epoch::Application),
            ],
            key_update: KeyUpdate::new(),
            recovery,
            streams,
            flow,
            idle_timeout: None,
            local_params,
            peer_params: TransportParams::default(),
            peer_params_parsed: false,
            local_addr: local,
            peer_addr: peer,
            address_validated: !is_server || odcid.is_some(),
            path_validation: None,
            probe: None,
            peer_validated_address: is_server,
            bytes_recv_unvalidated: 0,
            bytes_sent_unvalidated: 0,
            idle_since: None,
            ack_eliciting_sent_since_recv: false,
            close: CloseState::Open,
            local_error: None,
            peer_error: None,
            timed_out: false,
            stall_probes: 0,
            hello_pending: false,
            keep_session: !is_server && config.session_tickets(),
            early: if config.early_data() {
                EarlyData::Enabled
            } else {
                EarlyData::Off
            },
            zero_rtt_keys: None,
            early_packets: None,
            send_close: false,
            pending: Pending::default(),
            dgrams: None,
            dgram_recv_max: config.dgram_recv_max_queue_len,
            dgram_send_max: config.dgram_send_max_queue_len,
            max_send_udp_payload: config.max_send_udp_payload_size,
            discover_pmtu: config.discover_pmtu,
            pmtud: None,
            pmtu: pmtud::BASE_PLPMTU,
            pmtu_raise_at: None,
            grease: config.grease,
            stats: Stats::default(),
            ack_scratch: Vec::new(),
            ack_outcome: None,
            batch: None,
            qlog: None,
        };
        if is_server {
            // RFC 9002 §6.2.2.1: the client's address validation concerns
            // the client only; a server never arms a client-style PTO.
            conn.recovery.set_peer_completed_address_validation();
        } else {
            let dcid = conn.odcid.clone();
            conn.install_initial_keys(&dcid)?;
            // The ClientHello is made on the first send (or receive), so
            // that `set_session` can still offer a session for it.
            conn.hello_pending = true;
        }
        Ok(conn)
    }

    /// Derives Initial keys from the ODCID (RFC 9001 §5.2).
    pub(crate) fn install_initial_keys(&mut self, dcid: &[u8]) -> Result<()> {
        use crate::crypto::DirectionalKeys;
        let sp = &mut self.spaces[Epoch::Initial as usize];
        let (open, seal) = DirectionalKeys::initial_pair(dcid, self.is_server)?;
        sp.open = Some(Box::new(open));
        sp.seal = Some(Box::new(seal));
        Ok(())
    }

    /// Processes QUIC packets received from the peer.
    pub fn recv(&mut self, buf: &mut [u8], info: RecvInfo) -> Result<usize> {
        self.recv_at(buf, info, Instant::now())
    }

    /// Writes a single QUIC datagram to be sent to the peer.
    pub fn send(&mut self, out: &mut [u8]) -> Result<(usize, SendInfo)> {
        self.send_at(out, Instant::now())
    }

    /// Returns the amount of time until the next timeout event.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_instant()
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Processes a timeout event.
    pub fn on_timeout(&mut self) {
        self.on_timeout_at(Instant::now())
    }

    /// Reads contiguous data from a stream into `out`. Returns the bytes
    /// read and whether the stream is finished.
    pub fn stream_recv(&mut self, stream_id: u64, out: &mut [u8]) -> Result<(usize, bool)> {
        let (n, fin) = match self.streams.recv(stream_id, out) {
            Ok(v) => v,
            Err(e) => {
                if matches!(e, Error::StreamReset(_)) {
                    self.collect_stream_if_done(stream_id);
                }
                return Err(e);
            }
        };
        self.flow.add_consumed(n as u64);
        if self.flow.should_update() {
            self.pending.max_data = true;
        }
        if self.streams.should_update_max_stream_data(stream_id) {
            self.pending.max_stream_data.push(stream_id);
        }
        self.collect_stream_if_done(stream_id);
        Ok((n, fin))
    }

    /// Writes data to a stream. Returns how many bytes were accepted.
    pub fn stream_send(&mut self, stream_id: u64, buf: &[u8], fin: bool) -> Result<usize> {
        self.stream_write(stream_id, buf.len(), |streams, cap| {
            streams.send(stream_id, buf, fin, cap)
        })
    }

    /// Like [`Connection::stream_send`] for `buf[range]`, without copying
    /// it: the stream keeps a reference to `buf` until the peer
    /// acknowledged those bytes, and they are copied only into the packets.
    /// Connections sending one object (a cached file, say) share one copy
    /// of it. Returns how many bytes were accepted (from the start of
    /// `range`; `fin` applies only if all were); a range outside `buf` is
    /// `BufferTooShort`.
    pub fn stream_send_shared(
        &mut self,
        stream_id: u64,
        buf: &std::sync::Arc<[u8]>,
        range: std::ops::Range<usize>,
        fin: bool,
    ) -> Result<usize> {
        if range.start > range.end || range.end > buf.len() {
            return Err(Error::BufferTooShort);
        }
        self.stream_write(stream_id, range.len(), |streams, cap| {
            streams.send_shared(stream_id, buf, range, fin, cap)
        })
    }

    /// A write of `len` bytes through `write(streams, credit)`: the
    /// connection's flow-control credit and the send allowance apply.
    fn stream_write(
        &mut self,
        stream_id: u64,
        len: usize,
        write: impl FnOnce(&mut StreamMap, usize) -> Result<usize>,
    ) -> Result<usize> {
        if self.close != CloseState::Open {
            return Err(Error::InvalidState);
        }
        let cap = self.flow.send_capacity();
        let allowed = cap.min(self.send_allowance(stream_id));
        let n = write(&mut self.streams, allowed)?;
        self.flow.add_sent(n as u64);
        if n < len && cap == n {
            if let Some(limit) = self.flow.blocked_at() {
                self.pending.data_blocked = Some(limit);
            }
        }
        if n == 0 && len > 0 {
            return Err(Error::Done);
        }
        Ok(n)
    }

    /// Sets the priority of a stream (RFC 9218: lower urgency first).
    pub fn stream_priority(
        &mut self,
        stream_id: u64,
        urgency: u8,
        incremental: bool,
    ) -> Result<()> {
        self.streams.set_priority(stream_id, urgency, incremental)
    }

    /// Shuts down reading or writing from/to a stream: STOP_SENDING or
    /// RESET_STREAM with `err`.
    pub fn stream_shutdown(&mut self, stream_id: u64, direction: Shutdown, err: u64) -> Result<()> {
        match direction {
            Shutdown::Read => {
                if self.streams.shutdown_read(stream_id, err)? {
                    self.pending
                        .q_mut()
                        .stop_sending
                        .push_back((stream_id, err));
                }
                self.credit_discarded();
            }
            Shutdown::Write => {
                if let Some(final_size) = self.streams.shutdown_write(stream_id, err)? {
                    self.pending
                        .q_mut()
                        .reset_stream
                        .push_back((stream_id, err, final_size));
                }
            }
        }
        self.collect_stream_if_done(stream_id);
        Ok(())
    }

    /// How many bytes can be written to a stream now.
    pub fn stream_capacity(&self, stream_id: u64) -> Result<usize> {
        let cap = self.streams.capacity(stream_id)?;
        Ok(cap
            .min(self.flow.send_capacity())
            .min(self.send_allowance(stream_id)))
    }

    /// How much more a stream may buffer for sending: about two congestion
    /// windows (at least 256 KiB) beyond what is unacknowledged. Flow
    /// control alone would let an application queue megabytes that then
    /// sit in memory, cold in cache by the time they are sent.
    fn send_allowance(&self, stream_id: u64) -> usize {
        const MIN_SEND_BUFFER: usize = 256 * 1024;
        let limit = (2 * self.recovery.cwnd()).max(MIN_SEND_BUFFER);
        let buffered = self
            .streams
            .get(stream_id)
            .and_then(|s| s.send.as_ref())
            .map_or(0, |b| (b.off_back() - b.acked_front()) as usize);
        limit.saturating_sub(buffered)
    }

    /// Whether all data of a stream was read, or the stream was reset.
    pub fn stream_finished(&self, stream_id: u64) -> bool {
        self.streams.is_finished(stream_id)
    }

    /// Whether a stream has data to read.
    pub fn stream_readable(&self, stream_id: u64) -> bool {
        self.streams.is_readable(stream_id)
    }

    /// Whether a stream has capacity to write `len` bytes.
    pub fn stream_writable(&mut self, stream_id: u64, len: usize) -> Result<bool> {
        Ok(self.stream_capacity(stream_id)? >= len)
    }

    /// Streams with data to read.
    pub fn readable(&self) -> StreamIter {
        StreamIter::new(self.streams.readable())
    }

    /// Streams with capacity to write.
    pub fn writable(&self) -> StreamIter {
        if self.flow.send_capacity() == 0 {
            return StreamIter::new(Vec::new());
        }
        StreamIter::new(self.streams.writable())
    }

    /// Whether the application has anything to read: stream data or a
    /// datagram.
    pub fn is_readable(&self) -> bool {
        self.streams.has_readable() || self.dgram_recv_queue_len() > 0
    }

    /// The next readable stream, if any.
    pub fn stream_readable_next(&mut self) -> Option<u64> {
        self.streams.readable().into_iter().next()
    }

    /// The next stream with room to write, if any (none while the
    /// connection's flow-control credit is spent).
    pub fn stream_writable_next(&mut self) -> Option<u64> {
        self.writable().next()
    }

    /// Makes the next packet ack-eliciting (a PING if it has nothing else
    /// that is), e.g. to keep a path alive or to get an RTT sample. Does
    /// nothing on a closing or closed connection.
    pub fn send_ack_eliciting(&mut self) -> Result<()> {
        if self.close == CloseState::Open {
            self.pending.ping = true;
        }
        Ok(())
    }

    /// How many bytes the connection may send in one burst now: what the
    /// congestion window leaves, bounded by the pacer's burst when pacing
    /// is on, in whole datagrams and at least one (the size to give a GSO
    /// batch, as quiche's `send_quantum`).
    pub fn send_quantum(&self) -> usize {
        let mss = self.max_send_udp_payload_size();
        let quantum = self.recovery.send_quantum(Instant::now());
        (quantum / mss).max(1) * mss
    }

    /// How many bidirectional streams the peer still lets us open.
    pub fn peer_streams_left_bidi(&self) -> u64 {
        self.streams.peer_streams_left_bidi()
    }

    /// How many unidirectional streams the peer still lets us open.
    pub fn peer_streams_left_uni(&self) -> u64 {
        self.streams.peer_streams_left_uni()
    }

    fn collect_stream_if_done(&mut self, stream_id: u64) {
        if self.streams.collect_if_complete(stream_id) {
            if self.streams.should_update_max_streams_bidi() {
                self.pending.max_streams_bidi = true;
            }
            if self.streams.should_update_max_streams_uni() {
                self.pending.max_streams_uni = true;
            }
        }
    }

    /// Closes the connection with the given error and reason.
    pub fn close(&mut self, app: bool, err: u64, reason: &[u8]) -> Result<()> {
        if matches!(self.close, CloseState::Closed | CloseState::Draining { .. })
            || self.local_error.is_some()
        {
            return Err(Error::Done);
        }
        self.local_error = Some(ConnectionError {
            is_app: app,
            error_code: err,
            reason: reason.to_vec(),
        });
        let now = Instant::now();
        self.qlog_closed(now, "local", app, err, reason, "application");
        self.enter_closing(now);
        Ok(())
    }

    /// A string identifying the connection in logs.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// Our first source connection ID.
    pub fn source_id(&self) -> ConnectionId<'_> {
        ConnectionId::from_ref(self.cids.scid())
    }

    /// All source connection IDs in use.
    pub fn source_ids(&self) -> impl Iterator<Item = &ConnectionId<'static>> {
        self.cids.scids.iter().map(|e| &e.cid)
    }

    /// The destination connection ID we send to.
    pub fn destination_id(&self) -> ConnectionId<'_> {
        ConnectionId::from_ref(self.cids.dcid())
    }

    /// Issues a new source connection ID to the peer.
    pub fn new_scid(
        &mut self,
        scid: &ConnectionId<'_>,
        reset_token: u128,
        retire_if_needed: bool,
    ) -> Result<u64> {
        if scid.is_empty() || scid.len() > MAX_CONN_ID_LEN || self.cids.scid().is_empty() {
            return Err(Error::InvalidState);
        }
        let seq = self.cids.new_scid(
            ConnectionId::from_vec(scid.to_vec()),
            reset_token,
            retire_if_needed,
        )?;
        self.pending.q_mut().new_cids.push_back(seq);
        Ok(seq)
    }

    /// How many more source connection IDs the peer accepts.
    pub fn scids_left(&self) -> usize {
        self.cids.scids_left()
    }

    /// How many of our connection IDs the peer may use now (not retired).
    pub fn active_scids(&self) -> usize {
        self.cids.scids.len()
    }

    /// The next source connection ID the peer retired, for unrouting.
    pub fn retired_scid_next(&mut self) -> Option<ConnectionId<'static>> {
        self.cids.retired_scids.pop_front()
    }

    /// How many connection IDs of the peer's are unused: each lets the
    /// client migrate once (see [`Connection::migrate`]).
    pub fn available_dcids(&self) -> usize {
        self.cids.spare_dcids()
    }

    /// Whether the handshake completed.
    pub fn is_established(&self) -> bool {
        self.handshake_complete
    }

    /// Whether the connection is closed (and can be freed).
    pub fn is_closed(&self) -> bool {
        self.close == CloseState::Closed
    }

    /// Whether the connection is draining (the peer closed it).
    pub fn is_draining(&self) -> bool {
        matches!(self.close, CloseState::Draining { .. })
    }

    /// Whether the connection closed because of the idle timeout.
    pub fn is_timed_out(&self) -> bool {
        self.timed_out
    }

    /// Whether this is the server side.
    pub fn is_server(&self) -> bool {
        self.is_server
    }

    /// The error the peer closed the connection with.
    pub fn peer_error(&self) -> Option<&ConnectionError> {
        self.peer_error.as_ref()
    }

    /// The error we closed the connection with.
    pub fn local_error(&self) -> Option<&ConnectionError> {
        self.local_error.as_ref()
    }

    /// Connection statistics.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.paths_count = 1;
        s
    }

    /// Statistics of every path.
    pub fn path_stats(&self) -> impl Iterator<Item = PathStats> {
        let rtt = self.recovery.rtt();
        std::iter::once(PathStats {
            local_addr: self.local_addr,
            peer_addr: self.peer_addr,
            validated: self.address_validated,
            rtt: rtt.smoothed_rtt,
            min_rtt: rtt.first_sample_time.map(|_| rtt.min_rtt),
            rttvar: rtt.rttvar,
            cwnd: self.recovery.cwnd(),
            bytes_in_flight: self.recovery.bytes_in_flight(),
            sent: self.stats.sent,
            recv: self.stats.recv,
            lost: self.stats.lost,
            pmtu: self.max_send_udp_payload_size(),
        })
    }

    /// The peer's transport parameters, once received.
    pub fn peer_transport_params(&self) -> Option<&TransportParams> {
        self.peer_params_parsed.then_some(&self.peer_params)
    }

    /// The largest UDP payload we send: 1200 during the handshake, then
    /// the configured size within the peer's max_udp_payload_size — or,
    /// with path MTU discovery, the largest size the path was seen to carry.
    pub fn max_send_udp_payload_size(&self) -> usize {
        if !self.handshake_complete {
            return pmtud::BASE_PLPMTU;
        }
        let allowed = self.allowed_send_udp_payload();
        if self.discover_pmtu {
            return allowed.min(self.pmtu);
        }
        allowed
    }

    /// Caps this connection's pacing rate at `v` bytes per second (`None`
    /// lifts the cap), as [`Config::set_max_pacing_rate`] does for new
    /// connections: an edge can slow one client down live.
    pub fn set_max_pacing_rate(&mut self, v: Option<u64>) {
        self.recovery.set_max_pacing_rate(v);
    }

    /// Starts (or, on a new path, restarts) path MTU discovery, if on:
    /// from 1200 bytes up to what we and the peer allow.
    pub(crate) fn start_pmtud(&mut self) {
        if self.discover_pmtu {
            self.pmtu = pmtud::BASE_PLPMTU;
            self.pmtu_raise_at = None;
            self.search_pmtu(pmtud::Pmtud::new(self.allowed_send_udp_payload()));
        }
    }

    /// Keeps `search` unless it is over already (nothing to try).
    fn search_pmtu(&mut self, search: pmtud::Pmtud) {
        self.pmtud = (!search.done()).then(|| Box::new(search));
    }

    /// The largest UDP payload we and the peer allow (what path MTU
    /// discovery may find, what is sent without it).
    fn allowed_send_udp_payload(&self) -> usize {
        self.max_send_udp_payload
            .min(self.peer_params.max_udp_payload_size as usize)
    }

    /// Once [`pmtud::PMTU_RAISE_TIMER`] has passed since a search stopped
    /// below the maximum, a new one looks for more (RFC 8899 §5.1.1).
    pub(crate) fn maybe_raise_pmtu(&mut self, now: Instant) {
        if self.pmtu_raise_at.is_some_and(|t| now >= t) {
            self.pmtu_raise_at = None;
            let allowed = self.allowed_send_udp_payload();
            self.search_pmtu(pmtud::Pmtud::resume(self.pmtu, allowed));
        }
    }

    /// The search learned something about a probe of `size` (acknowledged
    /// or lost): the size in use follows it, and a finished search frees
    /// its state.
    pub(crate) fn on_pmtu_probe(&mut self, size: usize, acked: bool) {
        let Some(p) = self.pmtud.as_mut() else {
            return;
        };
        if acked {
            p.on_acked(size);
        } else {
            p.on_lost(size);
        }
        self.pmtu = p.current();
        if acked {
            tracing::debug!(trace_id = %self.trace_id, size, pmtu = self.pmtu, "path MTU probe acknowledged");
        }
        if p.done() {
            self.pmtud = None;
            if self.pmtu < self.allowed_send_udp_payload() {
                self.pmtu_raise_at = Some(self.now_hint() + pmtud::PMTU_RAISE_TIMER);
            }
        }
    }

    /// Moves to the closing state (RFC 9000 §10.2.1) for three PTOs.
    pub(crate) fn enter_closing(&mut self, now: Instant) {
        if matches!(self.close, CloseState::Open) {
            let until = now + 3 * self.recovery.pto();
            self.close = CloseState::Closing { until };
            self.send_close = true;
        }
    }

    /// Moves to the draining state (RFC 9000 §10.2.2).
    pub(crate) fn enter_draining(&mut self, now: Instant) {
        if !matches!(self.close, CloseState::Closed) {
            let until = now + 3 * self.recovery.pto();
            self.close = CloseState::Draining { until };
            self.send_close = false;
        }
    }

    /// Closes the connection because of a local transport error.
    pub(crate) fn close_with_error(
        &mut self,
        e: Error,
        frame_type: u64,
        reason: &str,
        now: Instant,
    ) {
        tracing::debug!(trace_id = %self.trace_id, error = ?e, frame_type, reason, "closing on transport error");
        if self.local_error.is_none() && matches!(self.close, CloseState::Open) {
            let code = match e {
                Error::TlsFail => self.tls_info.alert.map_or(0x128, |a| 0x100 + u64::from(a)),
                e => e.to_wire(),
            };
            // A failed handshake says why (an untrusted certificate, no
            // common ALPN) rather than where it was noticed.
            let reason = match (e, self.tls.as_ref().and_then(|t| t.failure())) {
                (Error::TlsFail, Some(why)) => why.as_bytes().to_vec(),
                _ => reason.as_bytes().to_vec(),
            };
            self.qlog_closed(now, "local", false, code, &reason, "error");
            self.local_error = Some(ConnectionError {
                is_app: false,
                error_code: code,
                reason,
            });
            self.enter_closing(now);
        }
    }

    /// The absolute time of the next timeout event.
    pub fn timeout_instant(&self) -> Option<Instant> {
        match self.close {
            CloseState::Closed => return None,
            CloseState::Closing { until } | CloseState::Draining { until } => return Some(until),
            CloseState::Open => (),
        }
        let mut t = self.idle_deadline();
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        min(self.recovery.loss_detection_timer());
        min(self.ack_deadline());
        min(self.key_update.prev_open.as_ref().map(|(_, t)| *t));
        min(self.path_validation.as_ref().map(|v| v.deadline));
        min(self.stall_probe_deadline());
        if let Some(p) = self.probe.as_ref().filter(|p| !p.validated) {
            min(Some(p.deadline));
            if !p.send {
                min(Some(p.retry_at));
            }
        }
        t
    }

    /// Client: when to PING a server that went silent while a request of
    /// ours is open and nothing of ours awaits acknowledgement (so no PTO
    /// runs): a PTO after the last packet received, doubling with each
    /// probe. A server that moved back to an old path after a migration or
    /// NAT rebinding of ours (RFC 9000 §9.3.2 makes it revert when it
    /// could not validate the new one) sends into the void and waits for a
    /// non-probing packet from us (§9.3) that a client only receiving data
    /// would never send: the PING is one, and brings the server back. A
    /// server that is just slow answers it with an ACK.
    fn stall_probe_deadline(&self) -> Option<Instant> {
        if self.is_server
            || !self.handshake_confirmed
            || self.pending.ping
            || self
                .recovery
                .has_ack_eliciting_in_flight(Epoch::Application)
            || !self.streams.has_open_local_bidi()
        {
            return None;
        }
        let (_, last) = self.spaces[Epoch::Application as usize].largest_rx?;
        let backoff = 1u32 << self.stall_probes.min(16);
        Some(last + self.recovery.pto() * backoff)
    }

    /// When the idle timeout expires: the negotiated period, but at least
    /// three current PTOs (RFC 9000 §10.1), after the last restart.
    pub(crate) fn idle_deadline(&self) -> Option<Instant> {
        let t = self.idle_timeout?;
        Some(self.idle_since? + t.max(3 * self.recovery.pto()))
    }

    /// When a delayed ACK for the application space is due (RFC 9000
    /// §13.2.1: within max_ack_delay).
    pub(crate) fn ack_deadline(&self) -> Option<Instant> {
        let sp = &self.spaces[Epoch::Application as usize];
        if !sp.ack_elicited {
            return None;
        }
        sp.first_unacked_at
            .map(|t| t + Duration::from_millis(self.local_params.max_ack_delay))
    }

    /// Processes timers due at `now`.
    pub fn on_timeout_at(&mut self, now: Instant) {
        self.release_lingering_tls(now);
        match self.close {
            CloseState::Closed => return,
            CloseState::Closing { until } | CloseState::Draining { until } => {
                if now >= until {
                    self.close = CloseState::Closed;
                }
                return;
            }
            CloseState::Open => (),
        }
        if self.idle_deadline().is_some_and(|t| now >= t) {
            // RFC 9000 §10.1: silently closed and its state discarded.
            self.timed_out = true;
            self.qlog_closed(now, "local", false, 0, b"", "idle_timeout");
            self.close = CloseState::Closed;
            return;
        }
        if self
            .key_update
            .prev_open
            .as_ref()
            .is_some_and(|(_, t)| now >= *t)
        {
            self.key_update.prev_open = None;
        }
        if self
            .path_validation
            .as_ref()
            .is_some_and(|v| now >= v.deadline)
        {
            self.abandon_path_validation();
        }
        if let Some(p) = self.probe.as_mut().filter(|p| !p.validated) {
            if now >= p.deadline {
                // §8.2.4: the probed path failed validation.
                let failed = PathEvent::FailedValidation(p.local, self.peer_addr);
                self.abandon_probe();
                self.push_path_event(failed);
            } else if now >= p.retry_at {
                p.send = true;
            }
        }
        if self.stall_probe_deadline().is_some_and(|t| now >= t) {
            tracing::debug!(trace_id = %self.trace_id, probes = self.stall_probes, "server silent: PING");
            self.pending.ping = true;
            self.stall_probes = self.stall_probes.saturating_add(1);
        }
        if self
            .recovery
            .loss_detection_timer()
            .is_some_and(|t| now >= t)
        {
            self.handle_loss_timeout(now);
        }
    }
}

/// An iterator over stream IDs.
pub struct StreamIter {
    streams: std::vec::IntoIter<u64>,
}

impl StreamIter {
    fn new(v: Vec<u64>) -> Self {
        StreamIter {
            streams: v.into_iter(),
        }
    }
}

impl Iterator for StreamIter {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        self.streams.next()
    }
}

impl ExactSizeIterator for StreamIter {
    fn len(&self) -> usize {
        self.streams.len()
    }
}

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod cc_tests;
#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod pmtud_tests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;
