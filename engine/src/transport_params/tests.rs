//! Transport parameter tests: round trips, every validation rule, and
//! truncated or corrupted input.

use super::*;

fn full_server_params() -> TransportParams {
    TransportParams {
        original_destination_connection_id: Some(ConnectionId::from_vec(vec![
            1, 2, 3, 4, 5, 6, 7, 8,
        ])),
        max_idle_timeout: 30_000,
        stateless_reset_token: Some(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
        max_udp_payload_size: 1350,
        initial_max_data: 10_000_000,
        initial_max_stream_data_bidi_local: 1_000_000,
        initial_max_stream_data_bidi_remote: 1_000_001,
        initial_max_stream_data_uni: 1_000_002,
        initial_max_streams_bidi: 100,
        initial_max_streams_uni: 3,
        ack_delay_exponent: 10,
        max_ack_delay: 50,
        disable_active_migration: true,
        preferred_address: Some(PreferredAddress {
            v4: "198.18.0.1:4433".parse().unwrap(),
            v6: "[2001:db8::1]:4434".parse().unwrap(),
            cid: ConnectionId::from_vec(vec![9; 16]),
            reset_token: [7; 16],
        }),
        active_conn_id_limit: 8,
        initial_source_connection_id: Some(ConnectionId::from_vec(vec![0xaa; 20])),
        retry_source_connection_id: Some(ConnectionId::from_vec(vec![0xbb; 4])),
        max_datagram_frame_size: Some(65_535),
    }
}

#[test]
fn server_params_round_trip() {
    let tp = full_server_params();
    let mut buf = [0xa5u8; 512];
    let n = tp.encode(true, true, &mut buf).unwrap();
    // Decoded by the client (we are not the server).
    assert_eq!(TransportParams::decode(&buf[..n], false).unwrap(), tp);
    // The same bytes from a client are rejected by a server.
    assert_eq!(
        TransportParams::decode(&buf[..n], true),
        Err(Error::InvalidTransportParam)
    );
}

#[test]
fn client_params_omit_server_only_fields() {
    let tp = full_server_params();
    let mut buf = [0u8; 512];
    let n = tp.encode(false, false, &mut buf).unwrap();
    let got = TransportParams::decode(&buf[..n], true).unwrap();
    assert_eq!(got.original_destination_connection_id, None);
    assert_eq!(got.stateless_reset_token, None);
    assert_eq!(got.preferred_address, None);
    assert_eq!(got.retry_source_connection_id, None);
    assert_eq!(got.initial_max_data, tp.initial_max_data);
    assert_eq!(
        got.initial_source_connection_id,
        tp.initial_source_connection_id
    );
}

#[test]
fn defaults_are_omitted_and_restored() {
    let tp = TransportParams::default();
    let mut buf = [0u8; 64];
    assert_eq!(tp.encode(false, false, &mut buf).unwrap(), 0);
    assert_eq!(TransportParams::decode(&[], true).unwrap(), tp);
    assert_eq!(tp.ack_delay_exponent, 3);
    assert_eq!(tp.max_ack_delay, 25);
    assert_eq!(tp.active_conn_id_limit, 2);
}

/// Encodes one parameter with a raw value.
fn param(id: u64, val: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 16 + val.len()];
    let mut b = OctetsMut::with_slice(&mut out);
    b.put_varint(id).unwrap();
    b.put_varint(val.len() as u64).unwrap();
    b.put_bytes(val).unwrap();
    let n = b.off();
    out.truncate(n);
    out
}

fn varint(v: u64) -> Vec<u8> {
    let mut out = [0u8; 8];
    let mut b = OctetsMut::with_slice(&mut out);
    b.put_varint(v).unwrap();
    let n = b.off();
    out[..n].to_vec()
}

#[test]
fn bounds_and_shapes_are_validated() {
    use ids::*;
    let bad: Vec<Vec<u8>> = vec![
        param(MAX_UDP_PAYLOAD_SIZE, &varint(1199)),
        param(ACK_DELAY_EXPONENT, &varint(21)),
        param(MAX_ACK_DELAY, &varint(1 << 14)),
        param(ACTIVE_CONNECTION_ID_LIMIT, &varint(1)),
        param(INITIAL_MAX_STREAMS_BIDI, &varint((1 << 60) + 1)),
        param(INITIAL_MAX_STREAMS_UNI, &varint((1 << 60) + 1)),
        param(DISABLE_ACTIVE_MIGRATION, &[0]),
        // A varint that does not fill the value, or overruns it.
        param(INITIAL_MAX_DATA, &[0x01, 0x02]),
        param(INITIAL_MAX_DATA, &[0x40]),
        param(INITIAL_MAX_DATA, &[]),
        param(INITIAL_SOURCE_CONNECTION_ID, &[0; 21]),
        // Duplicates.
        [
            param(INITIAL_MAX_DATA, &varint(5)),
            param(INITIAL_MAX_DATA, &varint(5)),
        ]
        .concat(),
        // Length past the end.
        vec![0x04, 0x05, 0x01],
        vec![0x04],
    ];
    for b in &bad {
        assert_eq!(
            TransportParams::decode(b, true),
            Err(Error::InvalidTransportParam),
            "{b:02x?}"
        );
        assert_eq!(
            TransportParams::decode(b, false),
            Err(Error::InvalidTransportParam),
            "{b:02x?}"
        );
    }
    // Server-side shapes, decoded by a client.
    let client_bad: Vec<Vec<u8>> = vec![
        param(STATELESS_RESET_TOKEN, &[0; 15]),
        param(PREFERRED_ADDRESS, &[0; 10]),
        // Preferred address with a zero-length CID.
        param(
            PREFERRED_ADDRESS,
            &[[0u8; 24].as_slice(), &[0], &[0; 16]].concat(),
        ),
        param(ORIGINAL_DESTINATION_CONNECTION_ID, &[0; 21]),
    ];
    for b in &client_bad {
        assert_eq!(
            TransportParams::decode(b, false),
            Err(Error::InvalidTransportParam),
            "{b:02x?}"
        );
    }
    // Each server-only parameter from a client.
    for id in [
        ORIGINAL_DESTINATION_CONNECTION_ID,
        STATELESS_RESET_TOKEN,
        RETRY_SOURCE_CONNECTION_ID,
    ] {
        let val = if id == STATELESS_RESET_TOKEN {
            vec![0; 16]
        } else {
            vec![1; 8]
        };
        assert_eq!(
            TransportParams::decode(&param(id, &val), true),
            Err(Error::InvalidTransportParam)
        );
        assert!(TransportParams::decode(&param(id, &val), false).is_ok());
    }
    assert_eq!(Error::InvalidTransportParam.to_wire(), 0x08);
}

#[test]
fn unknown_and_grease_parameters_are_ignored() {
    let b = [
        param(31 * 5 + 27, b"whatever"),
        param(0x4000, &[]),
        param(ids::INITIAL_MAX_DATA, &varint(77)),
    ]
    .concat();
    let tp = TransportParams::decode(&b, true).unwrap();
    assert_eq!(tp.initial_max_data, 77);
}

#[test]
fn truncated_and_corrupted_input_never_panics() {
    let tp = full_server_params();
    let mut buf = [0u8; 512];
    let n = tp.encode(true, true, &mut buf).unwrap();
    for cut in 0..n {
        // Some prefixes end on a parameter boundary and decode; none panic.
        let _ = TransportParams::decode(&buf[..cut], false);
    }
    let mut seed = 0xdead_beefu32;
    for _ in 0..5000 {
        let mut p = buf[..n].to_vec();
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let i = (seed as usize) % p.len();
        p[i] ^= (seed >> 9) as u8 | 1;
        let _ = TransportParams::decode(&p, false);
        let _ = TransportParams::decode(&p, true);
    }
    // Too small an output buffer.
    assert_eq!(
        tp.encode(true, false, &mut [0u8; 20]),
        Err(Error::BufferTooShort)
    );
}
