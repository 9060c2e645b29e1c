//! Stream module tests, split by topic.

mod flow;
mod map;
mod ops;
mod recv;
mod send;

/// Small deterministic xorshift generator (no dev-dependency needed).
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `len` bytes of a recognizable pattern starting at stream offset `off`.
pub(super) fn pattern(off: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((off + i) * 31 % 251) as u8)
        .collect()
}
