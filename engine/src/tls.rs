//! TLS 1.3 for QUIC (RFC 9001 §4) through BoringSSL's QUIC API:
//! `SSL_set_quic_method`, `SSL_provide_quic_data`, and the transport
//! parameters extension.
//!
//! The handshake is driven synchronously: every call into BoringSSL that
//! may invoke a QUIC-method callback first points the SSL's ex-data slot at
//! this connection's [`Events`], and clears it afterwards, so callbacks
//! never outlive the state they write to.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Arc, OnceLock};

use boring::ssl::{Ssl, SslContext, SslRef};
use boring_sys as ffi;
use foreign_types::ForeignTypeRef;

use crate::crypto::{Algorithm, MAX_SECRET_LEN};
use crate::error::{Error, Result};

/// An encryption level (RFC 9001 §4.1.4); also indexes the crypto streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Initial keys.
    Initial = 0,
    /// 0-RTT keys.
    ZeroRtt = 1,
    /// Handshake keys.
    Handshake = 2,
    /// 1-RTT keys.
    OneRtt = 3,
}

impl Level {
    fn from_ffi(level: ffi::ssl_encryption_level_t) -> Option<Level> {
        match level {
            ffi::ssl_encryption_level_t::ssl_encryption_initial => Some(Level::Initial),
            ffi::ssl_encryption_level_t::ssl_encryption_early_data => Some(Level::ZeroRtt),
            ffi::ssl_encryption_level_t::ssl_encryption_handshake => Some(Level::Handshake),
            ffi::ssl_encryption_level_t::ssl_encryption_application => Some(Level::OneRtt),
            _ => None,
        }
    }

    fn to_ffi(self) -> ffi::ssl_encryption_level_t {
        match self {
            Level::Initial => ffi::ssl_encryption_level_t::ssl_encryption_initial,
            Level::ZeroRtt => ffi::ssl_encryption_level_t::ssl_encryption_early_data,
            Level::Handshake => ffi::ssl_encryption_level_t::ssl_encryption_handshake,
            Level::OneRtt => ffi::ssl_encryption_level_t::ssl_encryption_application,
        }
    }
}

/// A traffic secret BoringSSL installed.
#[derive(Clone, Copy)]
pub struct Secret {
    /// Encryption level.
    pub level: Level,
    /// Whether it protects what we send (write) or what we receive.
    pub write: bool,
    /// The negotiated AEAD.
    pub alg: Algorithm,
    /// The secret; `len` bytes are valid.
    pub secret: [u8; MAX_SECRET_LEN],
    /// Length of the secret.
    pub len: usize,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(
            f,
            "Secret({:?}, write={}, {:?})",
            self.level, self.write, self.alg
        )
    }
}

/// What the QUIC-method callbacks produced during one call into TLS.
#[derive(Default)]
pub struct Events {
    /// New secrets, in the order TLS installed them.
    pub secrets: Vec<Secret>,
    /// Handshake bytes to send, per level (indexed by `Level as usize`).
    pub out: [Vec<u8>; 4],
    /// A fatal alert TLS wants to send (RFC 9001 §4.8: becomes a
    /// CRYPTO_ERROR 0x100 + alert).
    pub alert: Option<u8>,
    /// A session the server's NewSessionTicket made resumable, serialized
    /// (client only; the latest one wins).
    pub session: Option<Vec<u8>>,
    /// The server rejected our 0-RTT (client; RFC 9001 §4.6.2).
    pub early_data_rejected: bool,
    /// Where key log lines go (`Config::log_keys`); kept across
    /// [`Handshake::take_events`].
    keylog: Option<Box<dyn std::io::Write + Send + Sync>>,
}

/// The process-wide ex-data index that carries `*mut Events`.
fn events_index() -> c_int {
    static INDEX: OnceLock<c_int> = OnceLock::new();
    *INDEX.get_or_init(|| {
        // SAFETY: registering an ex-data index with no callbacks is always
        // safe; the returned index is valid for the process lifetime.
        unsafe {
            ffi::SSL_get_ex_new_index(0, std::ptr::null_mut(), std::ptr::null_mut(), None, None)
        }
    })
}

/// # Safety
/// Only called by BoringSSL from within a call that [`Handshake::with_events`]
/// wrapped, so the ex-data slot points at a live, exclusively borrowed
/// `Events` (or is null).
unsafe fn events<'a>(ssl: *mut ffi::SSL) -> Option<&'a mut Events> {
    // SAFETY: see the function's contract.
    let p = unsafe { ffi::SSL_get_ex_data(ssl, events_index()) } as *mut Events;
    // SAFETY: non-null only while `with_events` holds the exclusive borrow.
    unsafe { p.as_mut() }
}

unsafe extern "C" fn set_secret(
    ssl: *mut ffi::SSL,
    level: ffi::ssl_encryption_level_t,
    cipher: *const ffi::SSL_CIPHER,
    secret: *const u8,
    secret_len: usize,
    write: bool,
) -> c_int {
    // SAFETY: called by BoringSSL within `with_events` (see `events`).
    let Some(ev) = (unsafe { events(ssl) }) else {
        return 0;
    };
    let Some(level) = Level::from_ffi(level) else {
        return 0;
    };
    // SAFETY: `cipher` is the negotiated suite BoringSSL passes us.
    let id = unsafe { ffi::SSL_CIPHER_get_protocol_id(cipher) };
    let Some(alg) = Algorithm::from_tls_cipher_suite(id) else {
        return 0;
    };
    if secret_len != alg.secret_len() || secret_len > MAX_SECRET_LEN {
        return 0;
    }
    let mut s = Secret {
        level,
        write,
        alg,
        secret: [0u8; MAX_SECRET_LEN],
        len: secret_len,
    };
    // SAFETY: BoringSSL passes `secret_len` readable bytes at `secret`.
    s.secret[..secret_len]
        .copy_from_slice(unsafe { std::slice::from_raw_parts(secret, secret_len) });
    ev.secrets.push(s);
    1
}

unsafe extern "C" fn set_read_secret(
    ssl: *mut ffi::SSL,
    level: ffi::ssl_encryption_level_t,
    cipher: *const ffi::SSL_CIPHER,
    secret: *const u8,
    secret_len: usize,
) -> c_int {
    // SAFETY: forwarding BoringSSL's own arguments.
    unsafe { set_secret(ssl, level, cipher, secret, secret_len, false) }
}

unsafe extern "C" fn set_write_secret(
    ssl: *mut ffi::SSL,
    level: ffi::ssl_encryption_level_t,
    cipher: *const ffi::SSL_CIPHER,
    secret: *const u8,
    secret_len: usize,
) -> c_int {
    // SAFETY: forwarding BoringSSL's own arguments.
    unsafe { set_secret(ssl, level, cipher, secret, secret_len, true) }
}

unsafe extern "C" fn add_handshake_data(
    ssl: *mut ffi::SSL,
    level: ffi::ssl_encryption_level_t,
    data: *const u8,
    len: usize,
) -> c_int {
    // SAFETY: called by BoringSSL within `with_events`.
    let Some(ev) = (unsafe { events(ssl) }) else {
        return 0;
    };
    let Some(level) = Level::from_ffi(level) else {
        return 0;
    };
    // SAFETY: BoringSSL passes `len` readable bytes at `data`.
    ev.out[level as usize].extend_from_slice(unsafe { std::slice::from_raw_parts(data, len) });
    1
}

unsafe extern "C" fn flush_flight(_ssl: *mut ffi::SSL) -> c_int {
    // Data is sent when the application calls send(); nothing to flush.
    1
}

unsafe extern "C" fn send_alert(
    ssl: *mut ffi::SSL,
    _level: ffi::ssl_encryption_level_t,
    alert: u8,
) -> c_int {
    // SAFETY: called by BoringSSL within `with_events`.
    if let Some(ev) = unsafe { events(ssl) } {
        ev.alert = Some(alert);
    }
    1
}

static QUIC_METHOD: ffi::SSL_QUIC_METHOD = ffi::SSL_QUIC_METHOD {
    set_read_secret: Some(set_read_secret),
    set_write_secret: Some(set_write_secret),
    add_handshake_data: Some(add_handshake_data),
    flush_flight: Some(flush_flight),
    send_alert: Some(send_alert),
};

/// BoringSSL's new-session callback (client): keeps the serialized session
/// for [`Events::session`]. Returns 0: BoringSSL keeps ownership.
unsafe extern "C" fn new_session(ssl: *mut ffi::SSL, session: *mut ffi::SSL_SESSION) -> c_int {
    // SAFETY: called by BoringSSL within `with_events` (the post-handshake
    // processing of a NewSessionTicket).
    let Some(ev) = (unsafe { events(ssl) }) else {
        return 0;
    };
    let mut out: *mut u8 = std::ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: `session` is live for the callback; on success BoringSSL
    // allocates `len` bytes at `out`, which we copy and free.
    if unsafe { ffi::SSL_SESSION_to_bytes(session, &mut out, &mut len) } == 1 && !out.is_null() {
        // SAFETY: as above.
        ev.session = Some(unsafe { std::slice::from_raw_parts(out, len) }.to_vec());
        // SAFETY: `out` came from BoringSSL's allocator.
        unsafe { ffi::OPENSSL_free(out.cast()) };
    }
    0
}

/// BoringSSL's key-log callback: one line of the NSS key log format
/// (without its newline) for each secret TLS derives.
unsafe extern "C" fn keylog_line(ssl: *const ffi::SSL, line: *const c_char) {
    // SAFETY: called by BoringSSL from within a `with_events` call (every
    // secret is derived inside a handshake call we wrap), so `events`'
    // contract holds; BoringSSL does not use the SSL in a way that
    // conflicts with reading its ex-data here.
    let Some(ev) = (unsafe { events(ssl.cast_mut()) }) else {
        return;
    };
    let Some(w) = ev.keylog.as_mut() else {
        return;
    };
    if line.is_null() {
        return;
    }
    // SAFETY: BoringSSL passes a NUL-terminated string live for the call.
    let line = unsafe { CStr::from_ptr(line) }.to_bytes();
    // One write per line: connections sharing a file (opened to append)
    // do not interleave their lines.
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line);
    buf.push(b'\n');
    if let Err(e) = w.write_all(&buf) {
        tracing::debug!(error = %e, "key log write failed");
    }
}

/// Makes a context report its secrets to [`keylog_line`].
pub(crate) fn install_keylog(ctx: *mut ffi::SSL_CTX) {
    // SAFETY: `ctx` comes from a live SslContextBuilder; the callback is a
    // plain function.
    unsafe { ffi::SSL_CTX_set_keylog_callback(ctx, Some(keylog_line)) };
}

/// Makes a client context report the sessions that NewSessionTickets
/// create (RFC 9001 §4.5): the callback runs only with client-side
/// caching on; nothing is cached inside BoringSSL.
pub(crate) fn install_client_session_callback(ctx: *mut ffi::SSL_CTX) {
    // SAFETY: `ctx` comes from a live SslContextBuilder; the callback is a
    // plain function.
    unsafe {
        ffi::SSL_CTX_set_session_cache_mode(
            ctx,
            ffi::SSL_SESS_CACHE_CLIENT | ffi::SSL_SESS_CACHE_NO_INTERNAL,
        );
        ffi::SSL_CTX_sess_set_new_cb(ctx, Some(new_session));
    }
}

/// Server context: one ticket per handshake (BoringSSL sends two by
/// default; a client resumes with one, and each costs an encryption), and
/// the ticket key if the application chose one (48 bytes: name, HMAC and
/// AES keys), so that every context and process sharing it resumes the
/// others' sessions.
pub(crate) fn set_server_tickets(ctx: *mut ffi::SSL_CTX, key: Option<&[u8; 48]>) -> Result<()> {
    // SAFETY: `ctx` comes from a live SslContextBuilder; BoringSSL copies
    // the 48 key bytes.
    unsafe {
        if ffi::SSL_CTX_set_num_tickets(ctx, 1) != 1 {
            return Err(Error::TlsFail);
        }
        if let Some(key) = key {
            if ffi::SSL_CTX_set_tlsext_ticket_keys(ctx, key.as_ptr().cast(), key.len()) != 1 {
                return Err(Error::TlsFail);
            }
        }
    }
    Ok(())
}

/// Lets a context offer (client) or accept (server) 0-RTT; a server also
/// needs [`Handshake::set_early_data_context`] per connection.
pub(crate) fn enable_early_data(ctx: *mut ffi::SSL_CTX) {
    // SAFETY: `ctx` comes from a live SslContextBuilder.
    unsafe { ffi::SSL_CTX_set_early_data_enabled(ctx, 1) };
}

/// The process-wide ex-data index of a server context's replay guard (an
/// `Arc<Guard>` turned raw, given back when the context is freed).
fn guard_index() -> c_int {
    static INDEX: OnceLock<c_int> = OnceLock::new();
    *INDEX.get_or_init(|| {
        // SAFETY: registering an ex-data index whose free callback is
        // `free_guard`, which only takes back what `install_replay_guard`
        // stored; the index is valid for the process lifetime.
        unsafe {
            ffi::SSL_CTX_get_ex_new_index(
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                None,
                Some(free_guard),
            )
        }
    })
}

unsafe extern "C" fn free_guard(
    _parent: *mut c_void,
    ptr: *mut c_void,
    _ad: *mut ffi::CRYPTO_EX_DATA,
    _index: c_int,
    _argl: std::os::raw::c_long,
    _argp: *mut c_void,
) {
    if !ptr.is_null() {
        // SAFETY: the slot holds only what `install_replay_guard` stored,
        // `Arc::into_raw` of an `Arc<Guard>`, and BoringSSL calls this once
        // when the context is freed.
        drop(unsafe { Arc::from_raw(ptr as *const crate::replay::Guard) });
    }
}

/// Makes a server context refuse 0-RTT to a ClientHello that `guard` has
/// seen (RFC 8446 §8): `check_replay` runs on every ClientHello, before
/// BoringSSL decides on early data.
pub(crate) fn install_replay_guard(
    ctx: *mut ffi::SSL_CTX,
    guard: &crate::ReplayGuard,
) -> Result<()> {
    let raw = Arc::into_raw(guard.shared()) as *mut c_void;
    // SAFETY: `ctx` comes from a live SslContextBuilder, freshly made (its
    // slot is empty); the slot owns `raw` from here on and `free_guard`
    // gives it back; the callback is a plain function.
    unsafe {
        if ffi::SSL_CTX_set_ex_data(ctx, guard_index(), raw) != 1 {
            drop(Arc::from_raw(raw as *const crate::replay::Guard));
            return Err(Error::TlsFail);
        }
        ffi::SSL_CTX_set_select_certificate_cb(ctx, Some(check_replay));
    }
    Ok(())
}

/// TLS extension numbers (RFC 8446 §4.2).
const EXT_PRE_SHARED_KEY: u16 = 41;
const EXT_EARLY_DATA: u16 = 42;

/// Server: a ClientHello that offers 0-RTT with a PSK binder the context's
/// replay guard has seen gets early data disabled (the handshake goes on,
/// in 1-RTT).
unsafe extern "C" fn check_replay(
    ch: *const ffi::SSL_CLIENT_HELLO,
) -> ffi::ssl_select_cert_result_t {
    let ok = ffi::ssl_select_cert_result_t::ssl_select_cert_success;
    // SAFETY: BoringSSL passes a ClientHello live for the call, whose `ssl`
    // is the connection being handshaken.
    let ssl = unsafe { (*ch).ssl };
    let ext = |ty: u16| {
        let (mut p, mut n) = (std::ptr::null(), 0usize);
        // SAFETY: `ch` is live for the call; on success BoringSSL points
        // `p` at `n` bytes inside the ClientHello.
        let found = unsafe { ffi::SSL_early_callback_ctx_extension_get(ch, ty, &mut p, &mut n) };
        // SAFETY: as above, the bytes live as long as the ClientHello.
        (found == 1 && !p.is_null()).then(|| unsafe { std::slice::from_raw_parts(p, n) })
    };
    if ext(EXT_EARLY_DATA).is_none() {
        return ok;
    }
    let Some(binder) = ext(EXT_PRE_SHARED_KEY).and_then(crate::replay::first_binder) else {
        return ok;
    };
    // SAFETY: the context of a live SSL; its slot holds a live `Guard`
    // (see `install_replay_guard`) or nothing.
    let guard = unsafe {
        let ctx = ffi::SSL_get_SSL_CTX(ssl);
        ffi::SSL_CTX_get_ex_data(ctx, guard_index()) as *const crate::replay::Guard
    };
    // SAFETY: non-null only as `install_replay_guard` stored it, alive
    // while the context is.
    let Some(guard) = (unsafe { guard.as_ref() }) else {
        return ok;
    };
    if !guard.first_use(binder, std::time::Instant::now()) {
        tracing::debug!("0-RTT refused: ClientHello seen before (replay) or replay record full");
        // SAFETY: a live SSL, before BoringSSL decides on early data.
        unsafe { ffi::SSL_set_early_data_enabled(ssl, 0) };
    }
    ok
}

/// Installs the QUIC method on a context under construction.
pub(crate) fn install_quic_method(ctx: *mut ffi::SSL_CTX) -> Result<()> {
    // SAFETY: `ctx` comes from a live SslContextBuilder and QUIC_METHOD is a
    // static that outlives every SSL made from it.
    let rc = unsafe { ffi::SSL_CTX_set_quic_method(ctx, &QUIC_METHOD) };
    if rc != 1 {
        return Err(Error::TlsFail);
    }
    Ok(())
}

/// One connection's TLS handshake.
pub struct Handshake {
    ssl: Ssl,
    events: Box<Events>,
    /// Client, handshake confirmed: when to stop waiting for a session
    /// ticket and free the TLS state.
    pub(crate) linger_until: Option<std::time::Instant>,
    /// Why the handshake failed, for the CONNECTION_CLOSE's reason phrase
    /// and the application (see [`Handshake::failure`]).
    failure: Option<Box<str>>,
}

impl Handshake {
    /// A handshake in the client or server role with our encoded transport
    /// parameters; `server_name` sets SNI and the name verified against the
    /// server's certificate.
    pub fn new(
        ctx: &SslContext,
        is_server: bool,
        server_name: Option<&str>,
        verify_host: bool,
        params: &[u8],
    ) -> Result<Self> {
        let mut ssl = Ssl::new(ctx).map_err(|_| Error::TlsFail)?;
        if is_server {
            // SAFETY: `ssl` is a live SSL we own.
            unsafe { ffi::SSL_set_accept_state(ssl.as_ptr()) };
        } else {
            // SAFETY: as above.
            unsafe { ffi::SSL_set_connect_state(ssl.as_ptr()) };
            if let Some(name) = server_name {
                // An IP literal is not a valid SNI host name (RFC 6066 §3).
                if name.parse::<std::net::IpAddr>().is_err() {
                    ssl.set_hostname(name).map_err(|_| Error::TlsFail)?;
                }
                if verify_host {
                    // An IP literal is checked against the certificate's
                    // IP addresses, a name against its DNS names.
                    match name.parse::<std::net::IpAddr>() {
                        Ok(ip) => ssl.param_mut().set_ip(ip).map_err(|_| Error::TlsFail)?,
                        Err(_) => ssl.param_mut().set_host(name).map_err(|_| Error::TlsFail)?,
                    }
                }
            }
        }
        let raw = ssl.as_ptr();
        // SAFETY: `raw` is a live SSL; BoringSSL copies the parameters.
        let rc = unsafe { ffi::SSL_set_quic_transport_params(raw, params.as_ptr(), params.len()) };
        if rc != 1 {
            return Err(Error::TlsFail);
        }
        Ok(Handshake {
            ssl,
            events: Box::default(),
            linger_until: None,
            failure: None,
        })
    }

    /// Offers a serialized session for resumption (client, before the
    /// ClientHello). `Err(TlsFail)` if BoringSSL cannot parse it.
    pub fn set_session(&mut self, der: &[u8]) -> Result<()> {
        let raw = self.ssl.as_ptr();
        // SAFETY: `raw` is live; BoringSSL parses `der` (copying what it
        // keeps) against the SSL's context and returns an owned session or
        // null.
        let sess = unsafe {
            ffi::SSL_SESSION_from_bytes(der.as_ptr(), der.len(), ffi::SSL_get_SSL_CTX(raw))
        };
        if sess.is_null() {
            clear_errors();
            return Err(Error::TlsFail);
        }
        // SAFETY: `sess` is owned by us; SSL_set_session takes its own
        // reference, so we release ours either way.
        let rc = unsafe { ffi::SSL_set_session(raw, sess) };
        // SAFETY: as above.
        unsafe { ffi::SSL_SESSION_free(sess) };
        if rc != 1 {
            self.note_failure();
            return Err(Error::TlsFail);
        }
        Ok(())
    }

    /// Why the handshake failed, once it did: the certificate check's
    /// verdict, or BoringSSL's first error.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Records why the handshake failed (before the error queue, which
    /// holds BoringSSL's reason, is cleared).
    fn note_failure(&mut self) {
        if self.failure.is_none() {
            // INVALID_CALL: no certificate was checked (none came).
            let verdict = self
                .ssl
                .verify_result()
                .err()
                .filter(|v| v.as_raw() != ffi::X509_V_ERR_INVALID_CALL);
            self.failure = Some(if let Some(verdict) = verdict {
                format!("certificate verify failed: {}", verdict.error_string()).into()
            } else {
                let errors = boring::error::ErrorStack::get();
                match errors.errors().first().and_then(|e| e.reason()) {
                    Some(r) => format!("TLS handshake failed: {r}").into(),
                    None => "TLS handshake failed".into(),
                }
            });
        }
        clear_errors();
    }

    /// Server: what 0-RTT depends on (RFC 9001 §4.6.3), stored in the
    /// tickets it issues; a ticket with another context gets its 0-RTT
    /// rejected.
    pub fn set_early_data_context(&mut self, context: &[u8]) -> Result<()> {
        // SAFETY: the SSL is live; BoringSSL copies the context.
        let rc = unsafe {
            ffi::SSL_set_quic_early_data_context(self.ssl.as_ptr(), context.as_ptr(), context.len())
        };
        if rc != 1 {
            clear_errors();
            return Err(Error::TlsFail);
        }
        Ok(())
    }

    /// Whether the offered session allows 0-RTT (client, after
    /// [`Handshake::set_session`]).
    pub fn session_allows_early_data(&self) -> bool {
        // SAFETY: the SSL is live; the session pointer, if any, is owned
        // by it for the duration of the call.
        unsafe {
            let sess = ffi::SSL_get_session(self.ssl.as_ptr());
            !sess.is_null() && ffi::SSL_SESSION_early_data_capable(sess) == 1
        }
    }

    /// Whether the handshake is at the stage of sending (client) or
    /// receiving (server) 0-RTT data.
    pub fn in_early_data(&self) -> bool {
        // SAFETY: the SSL is live.
        unsafe { ffi::SSL_in_early_data(self.ssl.as_ptr()) == 1 }
    }

    /// Why 0-RTT was or was not used, in BoringSSL's words.
    pub fn early_data_reason(&self) -> &'static str {
        // SAFETY: the SSL is live; BoringSSL returns a static string or
        // null.
        unsafe {
            let r = ffi::SSL_get_early_data_reason(self.ssl.as_ptr());
            let p = ffi::SSL_early_data_reason_string(r);
            if p.is_null() {
                return "unknown";
            }
            CStr::from_ptr(p).to_str().unwrap_or("unknown")
        }
    }

    /// Whether the server accepted 0-RTT.
    pub fn early_data_accepted(&self) -> bool {
        // SAFETY: the SSL is live.
        unsafe { ffi::SSL_early_data_accepted(self.ssl.as_ptr()) == 1 }
    }

    /// Whether the handshake resumed a session.
    pub fn is_resumed(&self) -> bool {
        // SAFETY: `ssl` is live.
        unsafe { ffi::SSL_session_reused(self.ssl.as_ptr()) == 1 }
    }

    /// Replaces our transport parameters before the handshake sends them
    /// (a server learns its ODCID from the first Initial).
    pub fn set_transport_params(&mut self, params: &[u8]) -> Result<()> {
        // SAFETY: the SSL is live; BoringSSL copies the parameters.
        let rc = unsafe {
            ffi::SSL_set_quic_transport_params(self.ssl.as_ptr(), params.as_ptr(), params.len())
        };
        if rc != 1 {
            return Err(Error::TlsFail);
        }
        Ok(())
    }

    /// Runs `f` on the raw SSL with the callbacks' ex-data pointing at our
    /// events, then detaches it.
    fn with_events<R>(&mut self, f: impl FnOnce(*mut ffi::SSL) -> R) -> R {
        let raw = self.ssl.as_ptr();
        let ev: *mut Events = &mut *self.events;
        // SAFETY: `ev` points into our Box, alive and not otherwise
        // borrowed for the duration of `f`; we clear the slot afterwards.
        unsafe { ffi::SSL_set_ex_data(raw, events_index(), ev as *mut c_void) };
        let r = f(raw);
        // SAFETY: as above.
        unsafe { ffi::SSL_set_ex_data(raw, events_index(), std::ptr::null_mut()) };
        r
    }

    /// Feeds CRYPTO data received at `level`.
    ///
    /// BoringSSL accepts data only at its current read level; the caller
    /// buffers data of later levels until [`Handshake::read_level`] reaches
    /// them (RFC 9001 §4.1.3).
    pub fn provide_data(&mut self, level: Level, data: &[u8]) -> Result<()> {
        let rc = self.with_events(|raw| {
            // SAFETY: `raw` is live; BoringSSL copies `data`.
            unsafe { ffi::SSL_provide_quic_data(raw, level.to_ffi(), data.as_ptr(), data.len()) }
        });
        if rc != 1 {
            clear_errors();
            return Err(Error::TlsFail);
        }
        Ok(())
    }

    /// Advances the handshake. `Ok(true)` once it is complete; `Ok(false)`
    /// when it needs more data; `Err(TlsFail)` on a fatal error (see
    /// [`Events::alert`]).
    pub fn do_handshake(&mut self) -> Result<bool> {
        let (rc, err) = self.with_events(|raw| {
            // SAFETY: `raw` is live; callbacks write to our events.
            let rc = unsafe { ffi::SSL_do_handshake(raw) };
            // SAFETY: as above.
            let err = if rc == 1 {
                0
            } else {
                unsafe { ffi::SSL_get_error(raw, rc) }
            };
            (rc, err)
        });
        if rc == 1 {
            // With 0-RTT, BoringSSL returns early (client: ClientHello
            // sent; server: early data accepted), before the handshake is
            // complete.
            return Ok(!self.in_early_data());
        }
        match err {
            ffi::SSL_ERROR_WANT_READ | ffi::SSL_ERROR_WANT_WRITE => Ok(false),
            ffi::SSL_ERROR_EARLY_DATA_REJECTED => {
                // RFC 9001 §4.6.2: the handshake goes on without 0-RTT;
                // the connection takes back what it sent in it.
                self.events.early_data_rejected = true;
                // SAFETY: the SSL is live and reported this very state.
                unsafe { ffi::SSL_reset_early_data_reject(self.ssl.as_ptr()) };
                self.do_handshake()
            }
            _ => {
                self.note_failure();
                tracing::debug!(err, failure = self.failure(), "TLS handshake failed");
                Err(Error::TlsFail)
            }
        }
    }

    /// Processes post-handshake messages (NewSessionTicket).
    pub fn process_post_handshake(&mut self) -> Result<()> {
        let rc = self.with_events(|raw| {
            // SAFETY: `raw` is live.
            unsafe { ffi::SSL_process_quic_post_handshake(raw) }
        });
        if rc != 1 {
            clear_errors();
            return Err(Error::TlsFail);
        }
        Ok(())
    }

    /// The level TLS expects to read next.
    pub fn read_level(&self) -> Level {
        // SAFETY: `ssl` is live.
        let l = unsafe { ffi::SSL_quic_read_level(self.ssl.as_ptr()) };
        Level::from_ffi(l).unwrap_or(Level::OneRtt)
    }

    /// Takes the callbacks' output so far.
    pub fn take_events(&mut self) -> Events {
        let keylog = self.events.keylog.take();
        let ev = std::mem::take(&mut *self.events);
        self.events.keylog = keylog;
        ev
    }

    /// Sets where the key log lines of this handshake go (they are only
    /// made with `Config::log_keys`).
    pub fn set_keylog(&mut self, writer: Box<dyn std::io::Write + Send + Sync>) {
        self.events.keylog = Some(writer);
    }

    /// Mutable access to pending events without taking them.
    pub fn events_mut(&mut self) -> &mut Events {
        &mut self.events
    }

    /// The peer's encoded transport parameters, once received.
    pub fn peer_transport_params(&self) -> Option<&[u8]> {
        let mut ptr: *const u8 = std::ptr::null();
        let mut len = 0usize;
        // SAFETY: `ssl` is live; BoringSSL returns a pointer into memory it
        // owns for the SSL's lifetime, which `&self` bounds.
        unsafe { ffi::SSL_get_peer_quic_transport_params(self.ssl.as_ptr(), &mut ptr, &mut len) };
        if ptr.is_null() || len == 0 {
            return None;
        }
        // SAFETY: as above; `len` bytes are readable.
        Some(unsafe { std::slice::from_raw_parts(ptr, len) })
    }

    /// The negotiated ALPN protocol, empty if none.
    pub fn alpn(&self) -> &[u8] {
        self.ssl_ref().selected_alpn_protocol().unwrap_or_default()
    }

    /// The SNI the client sent (server side) or set (client side).
    pub fn server_name(&self) -> Option<&str> {
        self.ssl_ref().servername(boring::ssl::NameType::HOST_NAME)
    }

    /// The peer's leaf certificate in DER.
    pub fn peer_cert_der(&self) -> Option<Vec<u8>> {
        self.ssl_ref()
            .peer_certificate()
            .and_then(|c| c.to_der().ok())
    }

    /// Whether the handshake is complete.
    pub fn is_complete(&self) -> bool {
        // SAFETY: `ssl` is live.
        unsafe { ffi::SSL_in_init(self.ssl.as_ptr()) == 0 }
    }

    /// A description of the last verification failure, if any.
    pub fn verify_error(&self) -> Option<String> {
        self.ssl_ref()
            .verify_result()
            .err()
            .map(|e| e.error_string().to_string())
    }

    fn ssl_ref(&self) -> &SslRef {
        &self.ssl
    }
}

fn clear_errors() {
    // SAFETY: touches only this thread's error queue.
    unsafe { ffi::ERR_clear_error() };
}
