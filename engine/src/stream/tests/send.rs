//! SendBuf: capacity, emission order, retransmission, ack release, reset.

use super::{pattern, Rng};
use crate::stream::SendBuf;
use crate::Error;

/// Emits everything currently sendable in frames of at most `max`;
/// returns the frames with their bytes.
fn drain(b: &mut SendBuf, max: usize) -> Vec<(u64, Vec<u8>, bool)> {
    let mut frames = Vec::new();
    let mut out = vec![0u8; max];
    while let Some((off, len, fin)) = b.emit_into(&mut out) {
        frames.push((off, out[..len].to_vec(), fin));
    }
    frames
}

#[test]
fn write_respects_stream_limit_and_cap() {
    let mut b = SendBuf::new(100, 1000);
    assert_eq!(b.capacity(), 100);
    assert_eq!(b.write(&pattern(0, 150), true).unwrap(), 100);
    assert!(!b.is_fin(), "FIN dropped with the truncated data");
    assert_eq!(b.blocked_at(), Some(100));
    b.blocked_sent();
    assert_eq!(b.blocked_at(), None, "reported once per limit");
    assert_eq!(b.write(b"x", false), Err(Error::Done));
    b.update_max_data(50); // decrease ignored
    assert_eq!(b.max_data(), 100);
    b.update_max_data(300);
    assert_eq!(b.blocked_at(), None);
    // Buffer cap: 1000 held bytes at most.
    let mut b = SendBuf::new(u64::MAX, 1000);
    assert_eq!(b.write(&pattern(0, 1500), false).unwrap(), 1000);
    assert_eq!(b.blocked_at(), None, "cap is not flow control");
    let frames = drain(&mut b, 400);
    assert_eq!(frames.len(), 3);
    assert_eq!(b.capacity(), 0, "sent but unacked still held");
    b.on_ack(0, 400, false);
    assert_eq!(b.capacity(), 400);
}

#[test]
fn emits_in_order_with_fin() {
    let mut b = SendBuf::new(1 << 20, 1 << 20);
    for i in 0..10 {
        b.write(&pattern(i * 3, 3), false).unwrap();
    }
    b.write(b"", true).unwrap();
    assert_eq!(b.write(b"more", false), Err(Error::FinalSize));
    assert_eq!(b.next_chunk(1000), Some((0, 30, true)));
    let frames = drain(&mut b, 12);
    let offs: Vec<_> = frames.iter().map(|f| (f.0, f.1.len(), f.2)).collect();
    assert_eq!(offs, vec![(0, 12, false), (12, 12, false), (24, 6, true)]);
    let all: Vec<u8> = frames.iter().flat_map(|f| f.1.clone()).collect();
    assert_eq!(all, pattern(0, 30));
    assert!(!b.is_flushable());
    assert_eq!(b.off_front(), 30);
}

#[test]
fn bare_fin_after_data() {
    let mut b = SendBuf::new(100, 100);
    b.write(b"abc", false).unwrap();
    assert_eq!(drain(&mut b, 10).len(), 1);
    b.write(b"", true).unwrap();
    assert!(b.is_flushable());
    assert_eq!(b.next_chunk(10), Some((3, 0, true)));
    drain(&mut b, 10);
    b.on_ack(0, 3, false);
    assert!(!b.is_complete());
    // The bare FIN is lost, then retransmitted on its own.
    b.on_lost(3, 0, true);
    assert_eq!(b.next_chunk(10), Some((3, 0, true)));
    drain(&mut b, 10);
    b.on_ack(3, 0, true);
    assert!(b.is_complete());
}

#[test]
fn retransmits_lost_ranges_but_not_acked_bytes() {
    let mut b = SendBuf::new(1 << 20, 1 << 20);
    b.write(&pattern(0, 100), true).unwrap();
    let frames = drain(&mut b, 25); // 0..25, 25..50, 50..75, 75..100+fin
    assert_eq!(frames.len(), 4);
    // 25..50 acked; then the frames 0..25 and 25..75 (a coalesced view)
    // are declared lost: only 0..25 and 50..75 may be resent.
    b.on_ack(25, 25, false);
    b.on_lost(0, 25, false);
    b.on_lost(25, 50, false);
    assert!(b.is_flushable());
    let re = drain(&mut b, 1000);
    assert_eq!(
        re,
        vec![(0, pattern(0, 25), false), (50, pattern(50, 25), false)]
    );
    // The last frame (with FIN) lost: resent with FIN.
    b.on_lost(75, 25, true);
    let re = drain(&mut b, 10);
    assert_eq!(re.len(), 3);
    assert_eq!(re[2], (95, pattern(95, 5), true));
    assert!(re[..2].iter().all(|f| !f.2));
    // Loss reported after the ack of the same range: nothing to resend.
    b.on_ack(0, 25, false);
    b.on_lost(0, 25, false);
    assert!(!b.is_flushable());
}

#[test]
fn memory_released_on_ack() {
    let mut b = SendBuf::new(1 << 30, 1 << 30);
    let total = 200 * 1024;
    b.write(&pattern(0, total), true).unwrap();
    assert_eq!(b.buffered(), total);
    drain(&mut b, 1200);
    // Acks out of order: nothing released until the prefix is acked.
    b.on_ack(64 * 1024, 64 * 1024, false);
    assert_eq!(b.buffered(), total);
    b.on_ack(0, 64 * 1024, false);
    assert_eq!(b.acked_front(), 128 * 1024);
    assert_eq!(b.buffered(), total - 128 * 1024);
    b.on_ack(128 * 1024, total - 128 * 1024, true);
    assert_eq!(b.buffered(), 0);
    assert!(b.is_complete());
}

#[test]
fn reset_and_stop() {
    let mut b = SendBuf::new(1000, 1000);
    b.write(&pattern(0, 300), false).unwrap();
    drain(&mut b, 100);
    b.write(&pattern(300, 50), false).unwrap();
    // Final size covers all written bytes (what flow control was charged).
    assert_eq!(b.reset(), 350);
    assert_eq!(b.reset(), 350, "idempotent");
    assert_eq!(b.buffered(), 0);
    assert!(!b.is_flushable());
    b.on_lost(0, 100, false);
    assert!(!b.is_flushable(), "no retransmission after reset");
    assert!(!b.is_complete());
    b.on_reset_acked();
    assert!(b.is_complete());

    let mut b = SendBuf::new(1000, 1000);
    b.write(&pattern(0, 10), false).unwrap();
    assert_eq!(b.stop(77), Some(10));
    assert_eq!(b.write(b"x", false), Err(Error::StreamStopped(77)));
    assert_eq!(b.stop(77), None, "already reset");

    // STOP_SENDING after everything was acknowledged: no reset needed.
    let mut b = SendBuf::new(1000, 1000);
    b.write(b"abc", true).unwrap();
    drain(&mut b, 100);
    b.on_ack(0, 3, true);
    assert_eq!(b.stop(1), None);
}

#[test]
fn crypto_buffer_has_no_limits() {
    let mut b = SendBuf::new_crypto();
    assert_eq!(b.write(&pattern(0, 100_000), false).unwrap(), 100_000);
    let frames = drain(&mut b, 1100);
    assert_eq!(frames.iter().map(|f| f.1.len()).sum::<usize>(), 100_000);
}

#[test]
fn emit_checks_ranges() {
    let mut b = SendBuf::new(100, 100);
    b.write(b"hello", false).unwrap();
    let mut out = [0u8; 3];
    assert_eq!(b.emit(0, 5, false, &mut out), Err(Error::BufferTooShort));
    assert_eq!(b.emit(3, 5, false, &mut [0; 8]), Err(Error::InvalidState));
    assert_eq!(b.emit(0, 5, true, &mut [0; 8]), Err(Error::InvalidState));
    // The caller may shrink the chunk next_chunk proposed.
    assert_eq!(b.next_chunk(100), Some((0, 5, false)));
    b.emit(0, 2, false, &mut out).unwrap();
    assert_eq!(&out[..2], b"he");
    assert_eq!(b.next_chunk(100), Some((2, 3, false)));
}

/// Random losses and acks: the receiver side (a byte map) must end up
/// with every byte exactly as written, and no acked byte is ever resent.
#[test]
fn randomized_loss_recovery() {
    for seed in 1..60u64 {
        let mut rng = Rng::new(seed * 7919);
        let total = 1 + rng.below(50_000) as usize;
        let mut b = SendBuf::new(u64::MAX, u64::MAX);
        let mut written = 0usize;
        let mut received = vec![false; total];
        let mut acked = vec![false; total];
        let mut in_flight: Vec<(u64, usize, bool)> = Vec::new();
        let mut fin_acked = false;
        let mut out = vec![0u8; 1500];
        for _ in 0..100_000 {
            if written < total && rng.below(4) == 0 {
                let n = (1 + rng.below(5000) as usize).min(total - written);
                let fin = written + n == total;
                assert_eq!(b.write(&pattern(written as u64, n), fin).unwrap(), n);
                written += n;
            }
            let max = 1 + rng.below(1500) as usize;
            if let Some((off, len, fin)) = b.emit_into(&mut out[..max]) {
                let o = off as usize;
                assert_eq!(&out[..len], &pattern(off, len)[..]);
                assert!(
                    !acked[o..o + len].iter().any(|&a| a),
                    "seed {seed}: resent acked bytes in {o}+{len}"
                );
                in_flight.push((off, len, fin));
            }
            // Resolve a random in-flight frame: 30% lost.
            if !in_flight.is_empty() && rng.below(2) == 0 {
                let i = rng.below(in_flight.len() as u64) as usize;
                let (off, len, fin) = in_flight.swap_remove(i);
                if rng.below(10) < 3 {
                    b.on_lost(off, len, fin);
                } else {
                    let o = off as usize;
                    received[o..o + len].fill(true);
                    acked[o..o + len].fill(true);
                    fin_acked |= fin;
                    b.on_ack(off, len, fin);
                }
            }
            if b.is_complete() {
                break;
            }
        }
        assert!(b.is_complete(), "seed {seed}");
        assert!(fin_acked && received.iter().all(|&r| r), "seed {seed}");
        assert_eq!(b.buffered(), 0);
    }
}

#[test]
fn retransmit_unacked_for_probes() {
    let mut b = SendBuf::new_crypto();
    b.write(&pattern(0, 300), false).unwrap();
    drain(&mut b, 100);
    b.on_ack(100, 100, false);
    assert!(!b.ready());
    b.retransmit_unacked();
    assert!(b.ready());
    let re = drain(&mut b, 1000);
    assert_eq!(
        re,
        vec![(0, pattern(0, 100), false), (200, pattern(200, 100), false)]
    );
    // With a FIN outstanding it comes back too.
    let mut b = SendBuf::new(100, 100);
    b.write(b"ab", true).unwrap();
    drain(&mut b, 10);
    b.on_ack(0, 2, false);
    b.retransmit_unacked();
    assert_eq!(b.next_chunk(10), Some((2, 0, true)));
}

// Shared buffers mixed with copied writes: the bytes come out in order
// across chunk kinds and boundaries, lost ranges are re-sent from the
// shared buffer, acknowledged chunks let go of it, and the limits, FIN
// and range checks are those of `write`.
#[test]
fn shared_buffers_mix_with_copies() {
    use std::sync::Arc;

    let data = pattern(0, 100_000);
    let shared: Arc<[u8]> = Arc::from(&data[10_000..90_000]);
    let mut b = SendBuf::new(95_000, 1 << 20);
    assert_eq!(b.write(&data[..10_000], false).unwrap(), 10_000);
    assert_eq!(
        b.write_shared_len(&shared, 0, shared.len(), false).unwrap(),
        80_000
    );
    assert_eq!(Arc::strong_count(&shared), 2);
    // Flow control cuts the last write (95,000): the FIN stays out.
    assert_eq!(b.write(&data[90_000..], true).unwrap(), 5_000);
    assert!(!b.is_fin());
    assert_eq!(
        b.write_shared_len(&shared, 79_000, 2_000, false),
        Err(Error::BufferTooShort)
    );
    let frames = drain(&mut b, 1_300);
    let all: Vec<u8> = frames.iter().flat_map(|f| f.1.clone()).collect();
    assert!(all == data[..95_000]);

    // A frame inside the shared part is lost, then re-sent from it.
    let (off, bytes, _) = frames[20].clone();
    assert!((10_000..90_000).contains(&off));
    b.on_lost(off, bytes.len(), false);
    let again = drain(&mut b, 1_300);
    assert_eq!(again, vec![(off, bytes, false)]);

    // Acknowledging everything lets go of the shared buffer.
    b.on_ack(0, 95_000, false);
    assert_eq!(Arc::strong_count(&shared), 1);
    assert_eq!(b.buffered(), 0);

    // FIN with a shared write that is taken whole.
    b.update_max_data(200_000);
    let tail: Arc<[u8]> = Arc::from(&data[95_000..]);
    assert_eq!(b.write_shared_len(&tail, 0, 5_000, true).unwrap(), 5_000);
    assert!(b.is_fin());
    let frames = drain(&mut b, 4_000);
    assert_eq!(frames.last().map(|f| f.2), Some(true));
    let all: Vec<u8> = frames.iter().flat_map(|f| f.1.clone()).collect();
    assert!(all == data[95_000..]);
}
