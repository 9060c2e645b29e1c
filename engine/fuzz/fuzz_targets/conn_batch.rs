#![no_main]
//! Batched receive (`recv_batch`) of hostile GRO buffers: after a real
//! handshake, each piece of the input (split on 0xff 0xfe) is sealed as a
//! 1-RTT packet from the client; a batch lays several of them out back to
//! back with a segment size from the input: either padded so that each
//! fills a segment (the real layout, masks precomputed for all), or
//! concatenated as they are and cut wherever the segment size falls (what
//! a confused or hostile peer could make GRO merge). Nothing may panic;
//! the server's answers go back through `send_batch`/`recv_batch`.

use libfuzzer_sys::fuzz_target;
use tarte::testing::{forge_1rtt, fuzz_pieces, Pipe};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((&seg_byte, rest)) = rest.split_first() else {
        return;
    };
    let mut p = Pipe::new().expect("pipe");
    p.handshake().expect("handshake");
    let aligned = mode & 1 == 0;
    // 1..=1350 bytes, most often a full-size datagram.
    let seg = if seg_byte < 128 {
        1350
    } else {
        1 + (usize::from(seg_byte) * 11) % 1350
    };
    let mut gro = Vec::new();
    let mut buf = [0u8; 4096];
    let mut out = vec![0u8; 8 * 1500];
    for payload in fuzz_pieces(rest, 16) {
        let pkt = if aligned {
            // Pad the payload so that the sealed packet fills a segment.
            let Some(probe) = forge_1rtt(&mut p.client, payload) else {
                break;
            };
            let mut padded = payload.to_vec();
            padded.resize(payload.len() + seg.saturating_sub(probe.len()), 0);
            let Some(pkt) = forge_1rtt(&mut p.client, &padded) else {
                break;
            };
            pkt
        } else {
            let Some(pkt) = forge_1rtt(&mut p.client, payload) else {
                break;
            };
            pkt
        };
        gro.extend_from_slice(&pkt);
        if mode & 2 == 0 && gro.len() < 4 * seg {
            continue;
        }
        let info = p.c2s_info();
        let now = p.now;
        let _ = p.server.recv_batch_at(&mut gro, seg, info, now);
        gro.clear();
        for id in p.server.readable() {
            while let Ok((n, fin)) = p.server.stream_recv(id, &mut buf) {
                if n == 0 || fin {
                    break;
                }
            }
        }
        let now = p.now;
        let back = p.s2c_info();
        while let Ok(b) = p
            .server
            .send_batch_at(&mut out, 1 + usize::from(mode >> 4), now)
        {
            assert!(b.len <= b.segments * b.segment_size);
            let _ = p
                .client
                .recv_batch_at(&mut out[..b.len], b.segment_size, back, now);
        }
        if p.server.is_closed() {
            assert!(p.server.stream_send(0, b"x", false).is_err());
            break;
        }
    }
});
