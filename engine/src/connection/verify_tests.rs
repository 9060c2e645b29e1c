//! Certificate verification through BoringSSL (RFC 9001 §4.4: QUIC relies
//! on TLS's peer authentication): a CA-signed chain is accepted for the
//! names and addresses it covers and refused otherwise; a server that
//! asks for client certificates gets and checks them.

use std::net::IpAddr;
use std::path::PathBuf;

use boring::asn1::Asn1Time;
use boring::bn::{BigNum, MsbOption};
use boring::ec::{EcGroup, EcKey};
use boring::hash::MessageDigest;
use boring::nid::Nid;
use boring::pkey::{PKey, Private};
use boring::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use boring::x509::{X509Builder, X509NameBuilder, X509};

use crate::testing::{test_config, LinkConfig, Pipe};
use crate::{Config, ConnectionId};

/// An issued certificate with its key.
struct Issued {
    cert: X509,
    key: PKey<Private>,
}

impl Issued {
    fn pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap()
    }

    fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().unwrap()
    }
}

/// What a certificate is for.
enum Role<'a> {
    Ca,
    Leaf {
        dns: &'a [&'a str],
        ips: &'a [IpAddr],
    },
}

/// A P-256 certificate named `cn`, signed by `issuer` (self-signed when
/// `None`), valid from `not_before` to `not_after` (Unix seconds).
fn issue(cn: &str, role: Role<'_>, issuer: Option<&Issued>, validity: (i64, i64)) -> Issued {
    let key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(63, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(validity.0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(validity.1).unwrap())
        .unwrap();
    match role {
        Role::Ca => {
            b.append_extension(&BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.append_extension(
                &KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        }
        Role::Leaf { dns, ips } => {
            let mut san = SubjectAlternativeName::new();
            for n in dns {
                san.dns(n);
            }
            for ip in ips {
                san.ip(&ip.to_string());
            }
            let ctx = b.x509v3_context(issuer.map(|i| &*i.cert), None);
            let san = san.build(&ctx).unwrap();
            b.append_extension(&san).unwrap();
        }
    }
    b.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())
        .unwrap();
    Issued {
        cert: b.build(),
        key,
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Valid from a day ago for a year.
fn current() -> (i64, i64) {
    let now = now_unix();
    (now - 86_400, now + 365 * 86_400)
}

/// A root CA, and a leaf for localhost and 127.0.0.1 signed by it.
fn root_and_leaf() -> (Issued, Issued) {
    let root = issue("tarte test root", Role::Ca, None, current());
    let leaf = issue(
        "localhost",
        Role::Leaf {
            dns: &["localhost"],
            ips: &[IpAddr::from([127, 0, 0, 1])],
        },
        Some(&root),
        current(),
    );
    (root, leaf)
}

/// Writes `pem` to a fresh file for the `*_from_file` loaders; removed
/// when dropped.
struct PemFile(PathBuf);

impl PemFile {
    fn new(tag: &str, pem: &[u8]) -> PemFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "tarte-verify-{}-{}-{tag}.pem",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, pem).unwrap();
        PemFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for PemFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A server config presenting `chain` (leaf first) with `key`.
fn server_with(chain: &[&Issued], key: &Issued) -> Config {
    let mut s = test_config(true).unwrap();
    let pem: Vec<u8> = chain.iter().flat_map(|c| c.pem()).collect();
    s.load_cert_chain_from_pem(&pem).unwrap();
    s.load_priv_key_from_pem(&key.key_pem()).unwrap();
    s
}

/// A client config that verifies the server against the roots in `ca`.
fn client_trusting(ca: &PemFile) -> Config {
    let mut c = test_config(false).unwrap();
    c.verify_peer(true);
    c.load_verify_locations_from_file(ca.path()).unwrap();
    c
}

/// A pipe whose client connects to `server_name`.
fn pipe_to(server_name: &str, client: &mut Config, server: &mut Config) -> Pipe {
    let (ca, sa) = (
        "127.0.0.1:4444".parse().unwrap(),
        "127.0.0.1:4433".parse().unwrap(),
    );
    let c = crate::connect(
        Some(server_name),
        &ConnectionId::from_vec(vec![0xc1; 8]),
        ca,
        sa,
        client,
    )
    .unwrap();
    let s = crate::accept(&ConnectionId::from_vec(vec![0x5e; 8]), None, sa, ca, server).unwrap();
    Pipe::from_parts(
        c,
        s,
        std::time::Instant::now(),
        LinkConfig::default(),
        LinkConfig::default(),
    )
    .unwrap()
}

/// RFC 9001 §4.8: a TLS alert closes the connection with CRYPTO_ERROR
/// 0x100 + the alert.
const BAD_CERTIFICATE: u64 = 0x100 + 42;
const UNKNOWN_CA: u64 = 0x100 + 48;
const CERTIFICATE_EXPIRED: u64 = 0x100 + 45;
const DECRYPT_ERROR: u64 = 0x100 + 51;
const CERTIFICATE_REQUIRED: u64 = 0x100 + 116;

/// Runs the handshake to its end; the client refused the server with
/// `alert`: it closed with that code, saying `why` (the certificate
/// check's verdict), and the server saw both.
fn assert_client_refuses(p: &mut Pipe, alert: u64, why: &str) {
    assert!(p.handshake().is_err(), "the handshake must fail");
    let _ = p.run_until(1_000, |p| p.server.is_closed() || p.server.is_draining());
    assert!(!p.client.is_established());
    let local = p.client.local_error().expect("the client closes");
    assert!(!local.is_app);
    assert_eq!(local.error_code, alert, "{local:?}");
    let reason = String::from_utf8_lossy(&local.reason);
    assert!(
        reason.starts_with("certificate verify failed: ") && reason.contains(why),
        "{reason}"
    );
    let seen = p.server.peer_error().expect("the server learns why");
    assert_eq!((seen.error_code, &seen.reason), (alert, &local.reason));
    assert!(!p.server.is_established());
}

#[test]
fn client_accepts_a_chain_from_its_root() {
    let (root, leaf) = root_and_leaf();
    let ca = PemFile::new("root", &root.pem());
    for name in ["localhost", "127.0.0.1"] {
        let (mut c, mut s) = (client_trusting(&ca), server_with(&[&leaf], &leaf));
        let mut p = pipe_to(name, &mut c, &mut s);
        p.handshake().unwrap();
        assert_eq!(p.client.peer_cert(), Some(leaf.cert.to_der().unwrap()));
        assert!(p.client.local_error().is_none());
    }
}

#[test]
fn client_accepts_a_chain_through_an_intermediate() {
    let root = issue("tarte test root", Role::Ca, None, current());
    let mid = issue("tarte test intermediate", Role::Ca, Some(&root), current());
    let leaf = issue(
        "localhost",
        Role::Leaf {
            dns: &["localhost"],
            ips: &[],
        },
        Some(&mid),
        current(),
    );
    let ca = PemFile::new("root", &root.pem());
    // The server sends leaf and intermediate; the client knows the root.
    let (mut c, mut s) = (client_trusting(&ca), server_with(&[&leaf, &mid], &leaf));
    let mut p = pipe_to("localhost", &mut c, &mut s);
    p.handshake().unwrap();
    assert_eq!(p.client.peer_cert(), Some(leaf.cert.to_der().unwrap()));

    // Without the intermediate the chain does not reach the root.
    let (mut c, mut s) = (client_trusting(&ca), server_with(&[&leaf], &leaf));
    let mut p = pipe_to("localhost", &mut c, &mut s);
    assert_client_refuses(&mut p, UNKNOWN_CA, "issuer");
}

#[test]
fn client_refuses_a_name_or_address_the_certificate_lacks() {
    let (root, leaf) = root_and_leaf();
    let ca = PemFile::new("root", &root.pem());
    for name in ["example.com", "localhost.example", "127.0.0.2"] {
        let (mut c, mut s) = (client_trusting(&ca), server_with(&[&leaf], &leaf));
        let mut p = pipe_to(name, &mut c, &mut s);
        assert_client_refuses(&mut p, BAD_CERTIFICATE, "mismatch");
    }
}

#[test]
fn client_refuses_another_roots_chain() {
    let (_, leaf) = root_and_leaf();
    // A root of another name: the chain leads nowhere the client trusts.
    let other = issue("another root", Role::Ca, None, current());
    let ca = PemFile::new("other", &other.pem());
    let (mut c, mut s) = (client_trusting(&ca), server_with(&[&leaf], &leaf));
    let mut p = pipe_to("localhost", &mut c, &mut s);
    assert_client_refuses(&mut p, UNKNOWN_CA, "issuer");

    // A root of the same name but another key: the leaf's signature does
    // not verify (decrypt_error, RFC 8446 §6.2).
    let (impostor, _) = root_and_leaf();
    let ca = PemFile::new("impostor", &impostor.pem());
    let (mut c, mut s) = (client_trusting(&ca), server_with(&[&leaf], &leaf));
    let mut p = pipe_to("localhost", &mut c, &mut s);
    assert_client_refuses(&mut p, DECRYPT_ERROR, "signature");
}

#[test]
fn client_refuses_an_expired_certificate() {
    let root = issue("tarte test root", Role::Ca, None, current());
    let now = now_unix();
    let leaf = issue(
        "localhost",
        Role::Leaf {
            dns: &["localhost"],
            ips: &[],
        },
        Some(&root),
        (now - 30 * 86_400, now - 86_400),
    );
    let ca = PemFile::new("root", &root.pem());
    let (mut c, mut s) = (client_trusting(&ca), server_with(&[&leaf], &leaf));
    let mut p = pipe_to("localhost", &mut c, &mut s);
    assert_client_refuses(&mut p, CERTIFICATE_EXPIRED, "expired");
}

#[test]
fn client_without_verification_accepts_any_certificate() {
    // The test server's self-signed certificate, for a name it lacks.
    let (mut c, mut s) = (test_config(false).unwrap(), test_config(true).unwrap());
    let mut p = pipe_to("example.com", &mut c, &mut s);
    p.handshake().unwrap();
    assert!(p.client.peer_cert().is_some());
}

#[test]
fn server_verifies_client_certificates_when_asked() {
    let (root, server_leaf) = root_and_leaf();
    let client_leaf = issue(
        "client",
        Role::Leaf {
            dns: &["client.test"],
            ips: &[],
        },
        Some(&root),
        current(),
    );
    let ca = PemFile::new("root", &root.pem());
    let asking_server = || {
        let mut s = server_with(&[&server_leaf], &server_leaf);
        s.verify_peer(true);
        s.load_verify_locations_from_file(ca.path()).unwrap();
        s
    };

    // A client with a certificate from the root gets in; the server sees
    // its certificate.
    let mut c = client_trusting(&ca);
    c.load_cert_chain_from_pem(&client_leaf.pem()).unwrap();
    c.load_priv_key_from_pem(&client_leaf.key_pem()).unwrap();
    let mut s = asking_server();
    let mut p = pipe_to("localhost", &mut c, &mut s);
    p.handshake().unwrap();
    assert_eq!(
        p.server.peer_cert(),
        Some(client_leaf.cert.to_der().unwrap())
    );

    // Without one it does not: the server closes with the TLS 1.3 alert.
    let mut c = client_trusting(&ca);
    let mut s = asking_server();
    let mut p = pipe_to("localhost", &mut c, &mut s);
    assert!(p.handshake().is_err());
    let _ = p.run_until(1_000, |p| p.client.is_closed() || p.client.is_draining());
    assert!(!p.server.is_established());
    let local = p.server.local_error().expect("the server closes");
    assert_eq!(local.error_code, CERTIFICATE_REQUIRED, "{local:?}");
    let reason = String::from_utf8_lossy(&local.reason);
    assert!(reason.starts_with("TLS handshake failed: "), "{reason}");
    assert_eq!(
        p.client.peer_error().map(|e| e.error_code),
        Some(CERTIFICATE_REQUIRED)
    );
}

/// RFC 9001 §8.1: a connection without a common application protocol
/// closes with no_application_protocol (0x0178), from the server, with
/// BoringSSL's reason; a common one is the server's pick among the
/// client's offers.
#[test]
fn alpn_is_negotiated_or_the_handshake_fails() {
    const NO_APPLICATION_PROTOCOL: u64 = 0x100 + 120;
    // The test server speaks `proto1` only.
    let mut c = test_config(false).unwrap();
    c.set_application_protos(&[b"h3", b"proto1"]).unwrap();
    let mut s = test_config(true).unwrap();
    let mut p = pipe_to("localhost", &mut c, &mut s);
    p.handshake().unwrap();
    assert_eq!(p.client.application_proto(), b"proto1");
    assert_eq!(p.server.application_proto(), b"proto1");

    let mut c = test_config(false).unwrap();
    c.set_application_protos(&[b"h3", b"hq-interop"]).unwrap();
    let mut s = test_config(true).unwrap();
    let mut p = pipe_to("localhost", &mut c, &mut s);
    assert!(p.handshake().is_err());
    let _ = p.run_until(1_000, |p| p.client.is_closed() || p.client.is_draining());
    let local = p.server.local_error().expect("the server closes");
    assert_eq!(local.error_code, NO_APPLICATION_PROTOCOL, "{local}");
    let reason = String::from_utf8_lossy(&local.reason);
    assert!(reason.starts_with("TLS handshake failed: "), "{reason}");
    assert_eq!(
        p.client.peer_error().map(|e| e.error_code),
        Some(NO_APPLICATION_PROTOCOL)
    );
    assert!(!p.client.is_established() && !p.server.is_established());

    // A client without any protocol cannot even start (BoringSSL's QUIC
    // mode requires ALPN): its first send fails and the connection is
    // closed at once, having sent nothing.
    let mut c = test_config(false).unwrap();
    c.set_application_protos(&[]).unwrap();
    let mut conn = crate::connect(
        Some("localhost"),
        &ConnectionId::from_vec(vec![0xc1; 8]),
        "127.0.0.1:4444".parse().unwrap(),
        "127.0.0.1:4433".parse().unwrap(),
        &mut c,
    )
    .unwrap();
    let mut out = [0u8; 1500];
    assert_eq!(conn.send(&mut out).unwrap_err(), crate::Error::TlsFail);
    assert!(conn.is_closed());
    let local = conn.local_error().expect("the client says why");
    assert!(!local.is_app);
    assert!(
        local.error_code >= 0x100 && local.error_code <= 0x1ff,
        "{local}"
    );
    assert!(
        String::from_utf8_lossy(&local.reason).starts_with("TLS handshake failed: "),
        "{local}"
    );
    assert_eq!(conn.send(&mut out), Err(crate::Error::Done));
    assert_eq!(conn.timeout(), None);
    assert_eq!(conn.stats().sent, 0);
}
