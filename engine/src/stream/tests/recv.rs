//! RecvBuf: reassembly, final size, flow control, reset/stop, crypto cap.

use std::time::{Duration, Instant};

use super::{pattern, Rng};
use crate::stream::RecvBuf;
use crate::Error;

fn read_all(b: &mut RecvBuf) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 7]; // odd size: exercises partial chunk reads
    let mut fin = false;
    loop {
        match b.read(&mut buf) {
            Ok((n, f)) => {
                out.extend_from_slice(&buf[..n]);
                fin |= f;
                if f {
                    break;
                }
            }
            Err(Error::Done) => break,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    (out, fin)
}

#[test]
fn in_order_and_out_of_order() {
    let mut b = RecvBuf::new(1000, 1000);
    assert_eq!(b.read(&mut [0; 10]), Err(Error::Done));
    b.write(10, &pattern(10, 10), false).unwrap();
    assert!(!b.is_readable(), "gap at 0..10");
    assert_eq!(b.read(&mut [0; 10]), Err(Error::Done));
    b.write(0, &pattern(0, 10), false).unwrap();
    assert!(b.is_readable());
    // The gap fill merged both into one chunk.
    assert_eq!(b.chunk_count(), 1);
    b.write(20, &pattern(20, 5), true).unwrap();
    let (data, fin) = read_all(&mut b);
    assert_eq!(data, pattern(0, 25));
    assert!(fin);
    assert!(b.is_complete());
    assert_eq!(b.read(&mut [0; 4]), Err(Error::Done));
}

#[test]
fn overlaps_and_duplicates_are_deduplicated() {
    let mut b = RecvBuf::new(1000, 1000);
    b.write(5, &pattern(5, 10), false).unwrap(); // 5..15
    b.write(0, &pattern(0, 20), false).unwrap(); // covers it with gaps each side
    b.write(3, &pattern(3, 4), false).unwrap(); // duplicate
    b.write(18, &pattern(18, 12), false).unwrap(); // partial overlap
    assert_eq!(b.buffered(), 30);
    assert_eq!(b.highest_offset(), 30);
    let (data, fin) = read_all(&mut b);
    assert_eq!(data, pattern(0, 30));
    assert!(!fin);
    // Data below the read offset is ignored.
    b.write(0, &pattern(0, 30), false).unwrap();
    assert_eq!(b.buffered(), 0);
    assert_eq!(b.read(&mut [0; 4]), Err(Error::Done));
}

#[test]
fn empty_fin_is_delivered_once() {
    let mut b = RecvBuf::new(100, 100);
    b.write(0, b"abc", false).unwrap();
    b.write(3, b"", true).unwrap();
    let mut out = [0u8; 10];
    assert_eq!(b.read(&mut out).unwrap(), (3, true));
    assert_eq!(&out[..3], b"abc");
    assert!(b.is_complete());
    assert!(!b.is_readable());
    assert_eq!(b.read(&mut out), Err(Error::Done));

    let mut b = RecvBuf::new(100, 100);
    b.write(0, b"", true).unwrap();
    assert!(b.is_readable());
    assert_eq!(b.read(&mut out).unwrap(), (0, true));
    assert_eq!(b.read(&mut out), Err(Error::Done));
}

#[test]
fn final_size_rules() {
    // Data beyond a known final size.
    let mut b = RecvBuf::new(100, 100);
    b.write(0, &pattern(0, 10), true).unwrap();
    assert_eq!(b.write(5, &pattern(5, 6), false), Err(Error::FinalSize));
    // A different final size.
    assert_eq!(b.write(0, &pattern(0, 9), true), Err(Error::FinalSize));
    // Same final size again is fine (retransmission).
    b.write(4, &pattern(4, 6), true).unwrap();
    // FIN below data already received.
    let mut b = RecvBuf::new(100, 100);
    b.write(20, &pattern(20, 10), false).unwrap();
    assert_eq!(b.write(0, &pattern(0, 10), true), Err(Error::FinalSize));
    // RESET_STREAM with a final size below received data or changing it.
    assert_eq!(b.reset(7, 29), Err(Error::FinalSize));
    let mut b = RecvBuf::new(100, 100);
    b.write(0, &pattern(0, 10), true).unwrap();
    assert_eq!(b.reset(7, 11), Err(Error::FinalSize));
    assert_eq!(b.reset(7, 10), Ok(0));
}

#[test]
fn flow_control_violation() {
    let mut b = RecvBuf::new(16, 16);
    b.write(0, &pattern(0, 16), false).unwrap();
    assert_eq!(b.write(16, b"x", false), Err(Error::FlowControl));
    assert_eq!(b.write(10, &pattern(10, 7), false), Err(Error::FlowControl));
    assert_eq!(b.reset(0, 17), Err(Error::FlowControl));
    // A rejected frame changed nothing.
    assert_eq!(b.highest_offset(), 16);
}

#[test]
fn reset_counts_final_size_and_drops_data() {
    let mut b = RecvBuf::new(100, 100);
    b.write(0, &pattern(0, 10), false).unwrap();
    b.write(20, &pattern(20, 10), false).unwrap();
    assert_eq!(b.highest_offset(), 30);
    // 40 - 30: ten more bytes count toward connection flow control.
    assert_eq!(b.reset(42, 40), Ok(10));
    assert_eq!(b.highest_offset(), 40);
    assert_eq!(b.consumed(), 40, "all credit returned");
    assert_eq!(b.buffered(), 0);
    assert!(b.is_readable());
    assert!(!b.is_complete());
    assert_eq!(b.read(&mut [0; 4]), Err(Error::StreamReset(42)));
    assert!(b.is_complete());
    assert!(!b.is_readable());
    // Duplicate reset: nothing more counted; late data ignored.
    assert_eq!(b.reset(42, 40), Ok(0));
    b.write(30, &pattern(30, 10), false).unwrap();
    assert_eq!(b.write(35, &pattern(35, 10), false), Err(Error::FinalSize));
}

#[test]
fn stop_discards_and_credits() {
    let mut b = RecvBuf::new(100, 100);
    b.write(0, &pattern(0, 10), false).unwrap();
    b.stop(9);
    assert_eq!(b.buffered(), 0);
    assert_eq!(b.consumed(), 10);
    assert!(!b.is_readable());
    b.write(10, &pattern(10, 20), false).unwrap();
    assert_eq!(b.buffered(), 0);
    assert_eq!(b.consumed(), 30);
    assert_eq!(b.read(&mut [0; 4]), Err(Error::Done));
    assert!(!b.is_complete(), "final size not known yet");
    b.write(30, b"", true).unwrap();
    assert!(b.is_complete());
}

#[test]
fn crypto_cap() {
    let mut b = RecvBuf::new_crypto(100);
    b.write(0, &pattern(0, 100), false).unwrap();
    assert_eq!(b.write(100, b"x", false), Err(Error::CryptoBufferExceeded));
    let (data, _) = read_all(&mut b);
    assert_eq!(data.len(), 100);
    // The cap is relative to what was read.
    b.write(150, &pattern(150, 50), false).unwrap();
    assert_eq!(
        b.write(199, &pattern(199, 2), false),
        Err(Error::CryptoBufferExceeded)
    );
    assert!(!b.should_update_max_data());
}

#[test]
fn max_data_update_and_autotune() {
    let rtt = Duration::from_millis(100);
    let t0 = Instant::now();
    let mut b = RecvBuf::new(100, 400);
    assert!(!b.should_update_max_data());
    b.write(0, &pattern(0, 60), false).unwrap();
    assert!(!b.should_update_max_data(), "nothing consumed yet");
    let mut out = [0u8; 60];
    b.read(&mut out).unwrap();
    assert!(b.should_update_max_data());
    // First update: no history, window unchanged.
    assert_eq!(b.update_max_data(t0, rtt), 160);
    assert_eq!(b.window(), 100);
    assert!(!b.should_update_max_data());
    b.write(60, &pattern(60, 100), false).unwrap();
    b.read(&mut [0u8; 100]).unwrap();
    // Second update within 2 RTTs: the window doubles.
    assert_eq!(b.update_max_data(t0 + rtt, rtt), 160 + 200);
    assert_eq!(b.window(), 200);
    // ... up to the configured max.
    b.write(160, &pattern(160, 200), false).unwrap();
    b.read(&mut [0u8; 200]).unwrap();
    b.update_max_data(t0 + rtt * 2, rtt);
    b.write(360, &pattern(360, 400), false).unwrap();
    b.read(&mut [0u8; 400]).unwrap();
    b.update_max_data(t0 + rtt * 3, rtt);
    assert_eq!(b.window(), 400);
    // A slow reader (updates > 2 RTT apart) does not grow the window.
    let mut b = RecvBuf::new(100, 400);
    b.write(0, &pattern(0, 60), false).unwrap();
    b.read(&mut out).unwrap();
    b.update_max_data(t0, rtt);
    b.write(60, &pattern(60, 60), false).unwrap();
    b.read(&mut out).unwrap();
    b.update_max_data(t0 + rtt * 3, rtt);
    assert_eq!(b.window(), 100);
    // No update once the final size is known.
    b.write(120, b"", true).unwrap();
    assert!(!b.should_update_max_data());
}

#[test]
fn in_order_memory_stays_bounded() {
    // A partly read chunk is never appended to, so its read prefix is
    // released once the rest is read.
    let mut b = RecvBuf::new(1 << 20, 1 << 20);
    let mut off = 0u64;
    let mut out = [0u8; 700];
    for _ in 0..2000 {
        b.write(off, &pattern(off, 500), false).unwrap();
        off += 500;
        let _ = b.read(&mut out);
        assert!(b.buffered() <= 1000, "buffered {}", b.buffered());
        assert!(b.chunk_count() <= 3);
    }
}

#[test]
fn in_order_data_fills_whole_blocks() {
    // 100,000 in-order bytes in 1,200-byte frames, nothing read: they sit
    // in 16 KiB blocks, each filled (13 frames) before the next is
    // started, and read back exactly.
    let mut b = RecvBuf::new(1 << 20, 1 << 20);
    let mut off = 0u64;
    while off < 100_000 {
        let n = (100_000 - off).min(1200);
        b.write(off, &pattern(off, n as usize), false).unwrap();
        off += n;
    }
    assert_eq!(b.chunk_count(), 100_000usize.div_ceil(13 * 1200));
    let mut out = vec![0u8; 200_000];
    let (n, fin) = b.read(&mut out).unwrap();
    assert_eq!((n, fin), (100_000, false));
    assert_eq!(&out[..n], &pattern(0, 100_000)[..]);
    assert_eq!(b.chunk_count(), 0);
}

#[test]
fn small_unread_data_stays_small() {
    // A few bytes on each of many streams must not cost a block each.
    for _ in 0..100 {
        let mut b = RecvBuf::new(1 << 20, 1 << 20);
        b.write(0, b"x", false).unwrap();
        b.write(1, b"y", false).unwrap();
        assert_eq!(b.chunk_count(), 1);
        assert!(b.allocated() < 64, "{} bytes held for 2", b.allocated());
    }
}

#[test]
fn scattered_runs_allocate_at_most_twice_what_they_hold() {
    // A peer sending 9,000-byte runs with gaps (nothing readable): each
    // run outgrows a plain vector and moves into a block, at least half
    // full, so allocation stays within twice the data held.
    let mut b = RecvBuf::new(1 << 20, 1 << 20);
    for k in 0..20u64 {
        let base = 1 + k * 20_000;
        for i in 0..9u64 {
            let off = base + i * 1000;
            b.write(off, &pattern(off, 1000), false).unwrap();
        }
    }
    assert_eq!(b.buffered(), 20 * 9000);
    assert!(
        b.allocated() <= 2 * b.buffered(),
        "{} allocated for {}",
        b.allocated(),
        b.buffered()
    );
}

/// Differential test against a simple model: a byte array plus a bitmap of
/// received offsets. Random frames (overlapping, duplicated, out of order)
/// and random reads.
#[test]
fn randomized_differential() {
    for seed in 1..150u64 {
        let mut rng = Rng::new(seed * 0x9e37_79b9);
        let total = 1 + rng.below(3000) as usize;
        let max = total as u64 + rng.below(100);
        let mut b = RecvBuf::new(max, max);
        let mut have = vec![false; total];
        let mut model_off = 0usize;
        let mut got = Vec::new();
        let mut fin_seen = false;
        for _ in 0..400 {
            if rng.below(3) == 0 {
                let mut out = vec![0u8; 1 + rng.below(300) as usize];
                match b.read(&mut out) {
                    Ok((n, fin)) => {
                        got.extend_from_slice(&out[..n]);
                        model_off += n;
                        assert!(
                            have[model_off - n..model_off].iter().all(|&h| h),
                            "read unreceived bytes"
                        );
                        fin_seen |= fin;
                        assert_eq!(fin, model_off == total && have[total - 1]);
                    }
                    Err(Error::Done) => {
                        // Nothing contiguous: the model agrees.
                        assert!(model_off == total || !have[model_off]);
                    }
                    Err(e) => panic!("{e:?}"),
                }
            } else {
                let off = rng.below(total as u64) as usize;
                let len = (1 + rng.below(200) as usize).min(total - off);
                let fin = off + len == total;
                b.write(off as u64, &pattern(off as u64, len), fin).unwrap();
                have[off..off + len].fill(true);
            }
            let expected_buffered = have[model_off..].iter().filter(|&&h| h).count();
            assert_eq!(b.buffered(), expected_buffered, "seed {seed}");
            assert_eq!(
                b.is_readable(),
                (model_off < total && have[model_off])
                    || (model_off == total && !fin_seen && b.is_fin()),
                "seed {seed}"
            );
        }
        // Deliver everything, then the stream must read back exactly.
        b.write(0, &pattern(0, total), true).unwrap();
        let (rest, fin) = read_all(&mut b);
        got.extend_from_slice(&rest);
        assert_eq!(got, pattern(0, total), "seed {seed}");
        assert!(fin || fin_seen);
        assert!(b.is_complete());
        assert_eq!(b.buffered(), 0);
        assert_eq!(b.chunk_count(), 0);
    }
}

#[test]
fn reset_after_stop_completes_without_read() {
    let mut b = RecvBuf::new(100, 100);
    b.write(0, &pattern(0, 10), false).unwrap();
    b.stop(5);
    assert!(!b.should_update_max_data(), "no credit after STOP_SENDING");
    assert_eq!(b.reset(6, 20), Ok(10));
    // The application shut this direction down: it is not told of the
    // reset, and the direction is terminal.
    assert!(!b.is_readable());
    assert_eq!(b.read(&mut [0; 4]), Err(Error::Done));
    assert!(b.is_complete());
    assert_eq!(b.consumed(), 20);
}

#[test]
fn reset_after_all_read_is_ignored() {
    let mut b = RecvBuf::new(100, 100);
    b.write(0, b"abc", true).unwrap();
    assert_eq!(b.read(&mut [0; 4]).unwrap(), (3, true));
    assert_eq!(b.reset(1, 3), Ok(0));
    assert!(b.is_complete());
    assert!(!b.is_readable());
    // Still validated: a different final size is an error.
    assert_eq!(b.reset(1, 4), Err(Error::FinalSize));
}

#[test]
fn empty_frame_does_not_move_highest_offset() {
    let mut b = RecvBuf::new(100, 100);
    b.write(0, b"abc", false).unwrap();
    b.write(50, b"", false).unwrap();
    assert_eq!(b.highest_offset(), 3);
    // So a final size of 10 is still valid.
    assert_eq!(b.reset(0, 10), Ok(7));
    // But an empty frame past the limit is still a violation.
    let mut b = RecvBuf::new(100, 100);
    assert_eq!(b.write(101, b"", false), Err(Error::FlowControl));
}
