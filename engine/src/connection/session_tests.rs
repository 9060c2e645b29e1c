//! Session resumption (RFC 9001 §4.5) over the in-memory pipe.

use crate::testing::{test_config, LinkConfig, Pipe};
use crate::{Config, Error};

use super::tests::transfer;

/// A full handshake with `server`; returns the session the client got.
fn first_session(client: &mut Config, server: &mut Config) -> Vec<u8> {
    let mut p =
        Pipe::with_configs(client, server, LinkConfig::default(), LinkConfig::default()).unwrap();
    p.handshake().unwrap();
    assert!(!p.client.is_resumed() && !p.server.is_resumed());
    // The ticket follows HANDSHAKE_DONE.
    p.run_until(100, |p| p.client.session().is_some()).unwrap();
    // Both sides have freed their TLS state: the server once confirmed,
    // the client once the ticket came.
    assert!(p.server.tls.is_none());
    assert!(p.client.tls.is_none());
    p.client.session().unwrap().to_vec()
}

fn resumed_pipe(client: &mut Config, server: &mut Config, session: &[u8]) -> Pipe {
    let mut p =
        Pipe::with_configs(client, server, LinkConfig::default(), LinkConfig::default()).unwrap();
    p.client.set_session(session).unwrap();
    p.handshake().unwrap();
    p
}

#[test]
fn sessions_resume() {
    let (mut c, mut s) = (test_config(false).unwrap(), test_config(true).unwrap());
    let session = first_session(&mut c, &mut s);
    let mut p = resumed_pipe(&mut c, &mut s, &session);
    assert!(p.client.is_resumed() && p.server.is_resumed());
    assert_eq!(p.client.application_proto(), b"proto1");
    // The resumed connection works, and keeps saying it was resumed once
    // its TLS state is gone.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(transfer(&mut p, &data, 10_000), data);
    assert!(p.server.tls.is_none());
    assert!(p.server.is_resumed());
    // The resumed connection got a fresh ticket of its own (RFC 9001 §4.5:
    // clients should not reuse tickets).
    p.run_until(100, |p| p.client.session().is_some()).unwrap();
    assert_ne!(p.client.session().unwrap(), &session[..]);
    assert!(p.client.is_resumed());
}

#[test]
fn ticket_keys_resume_across_configs() {
    let key = [0x42u8; 48];
    let mut c = test_config(false).unwrap();
    let mut s1 = test_config(true).unwrap();
    s1.set_ticket_key(&key).unwrap();
    let session = first_session(&mut c, &mut s1);
    // Another server (another process, another worker) with the same key.
    let mut s2 = test_config(true).unwrap();
    s2.set_ticket_key(&key).unwrap();
    let p = resumed_pipe(&mut c, &mut s2, &session);
    assert!(p.client.is_resumed() && p.server.is_resumed());
    // One with another key cannot open the ticket: a full handshake.
    let mut s3 = test_config(true).unwrap();
    s3.set_ticket_key(&[0x43u8; 48]).unwrap();
    let p = resumed_pipe(&mut c, &mut s3, &session);
    assert!(p.client.is_established() && p.server.is_established());
    assert!(!p.client.is_resumed() && !p.server.is_resumed());
    // Keys are 48 bytes.
    assert_eq!(s3.set_ticket_key(&[0u8; 32]), Err(Error::TlsFail));
}

#[test]
fn bad_sessions_are_refused() {
    let (mut c, mut s) = (test_config(false).unwrap(), test_config(true).unwrap());
    let session = first_session(&mut c, &mut s);
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    for bad in [
        &b""[..],
        b"\x01",
        b"\x02\x00\x00",
        &session[..session.len() - 1],
        &[&session[..], b"\x00"].concat(),
        &[&[1u8, 3, 1, 2, 3][..], &[0u8]].concat(),
    ] {
        assert_eq!(p.client.set_session(bad), Err(Error::TlsFail), "{bad:?}");
    }
    // Servers do not take sessions.
    assert_eq!(p.server.set_session(&session), Err(Error::InvalidState));
    // A refused session leaves a full handshake possible.
    p.handshake().unwrap();
    assert!(!p.client.is_resumed());
    // Once the ClientHello has gone it is too late.
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    let mut out = [0u8; 1500];
    p.client.send(&mut out).unwrap();
    assert_eq!(p.client.set_session(&session), Err(Error::InvalidState));
}

#[test]
fn corrupted_sessions_never_break_the_client() {
    let (mut c, mut s) = (test_config(false).unwrap(), test_config(true).unwrap());
    let mut session = first_session(&mut c, &mut s);
    let (mut refused, mut resumed, mut full, mut failed) = (0, 0, 0, 0);
    for i in (0..session.len()).step_by(5) {
        session[i] ^= 0x55;
        let mut p =
            Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default())
                .unwrap();
        if p.client.set_session(&session).is_err() {
            refused += 1;
        } else {
            // A damaged ticket makes the server fall back to a full
            // handshake; a damaged secret fails the PSK binder, and TLS
            // closes the connection with an alert. Neither hangs.
            match p.handshake() {
                Ok(()) if p.client.is_resumed() => resumed += 1,
                Ok(()) => full += 1,
                Err(_) => {
                    // The server refused the handshake (the pipe hands its
                    // error up); its CONNECTION_CLOSE reaches the client.
                    let _ = p.run_until(100, |p| p.client.peer_error().is_some());
                    let e = p.client.peer_error().expect("the client learns why");
                    assert!(!e.is_app && (0x100..0x200).contains(&e.error_code), "{e:?}");
                    failed += 1;
                }
            }
        }
        session[i] ^= 0x55;
    }
    // Every outcome occurs (with this session's layout: 34 refused, 75
    // resumed, 37 full, 7 failed when written).
    let all = [refused, resumed, full, failed];
    assert!(all.iter().all(|&n| n > 0), "{all:?}");
}

#[test]
fn client_frees_tls_when_no_ticket_comes() {
    let mut c = test_config(false).unwrap();
    let mut s = test_config(true).unwrap();
    s.set_session_tickets(false);
    let mut p =
        Pipe::with_configs(&mut c, &mut s, LinkConfig::default(), LinkConfig::default()).unwrap();
    p.handshake().unwrap();
    // Waiting for a ticket: TLS kept, for three PTOs at most.
    assert!(p.client.tls.is_some());
    let deadline = p.client.tls.as_ref().unwrap().linger_until.unwrap();
    let pto = p.client.recovery.pto();
    assert!(deadline <= p.now + 3 * pto);
    p.now = deadline;
    p.client.on_timeout_at(p.now);
    assert!(p.client.tls.is_none());
    assert!(p.client.session().is_none());
    assert!(p.client.is_established());
    let data = vec![7u8; 10_000];
    assert_eq!(transfer(&mut p, &data, 1_000), data);
}
