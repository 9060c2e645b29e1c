//! A per-thread pool of the 16 KiB blocks that stream send and receive
//! buffers hold data in.
//!
//! A bulk transfer frees and allocates a block every dozen packets. Left
//! to the allocator, blocks freed at the top of the heap are trimmed back
//! to the kernel and faulted in again a moment later; recycling them keeps
//! the memory warm. The pool is per thread (a worker owns its connections,
//! so there is no sharing) and bounded, and an idle connection holds no
//! block: the memory per connection is unchanged.

use std::cell::RefCell;

/// Size of a block.
pub(crate) const BLOCK: usize = 16 * 1024;

/// Blocks kept per thread at most (4 MiB).
const MAX_POOLED: usize = 256;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty vector with room for at least `len` bytes: a pooled block when
/// `len` fits one.
pub(crate) fn take(len: usize) -> Vec<u8> {
    if len <= BLOCK {
        if let Some(v) = POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten() {
            return v;
        }
        return Vec::with_capacity(BLOCK);
    }
    Vec::with_capacity(len)
}

/// Returns a vector's allocation to the pool if it is a block and the pool
/// has room; otherwise frees it.
pub(crate) fn give(mut v: Vec<u8>) {
    if v.capacity() != BLOCK {
        return;
    }
    v.clear();
    // During thread teardown the pool may be gone: the vector is freed.
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < MAX_POOLED {
            p.push(v);
        }
    });
}

/// Bytes this thread's pool holds (for memory accounting).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn pooled_bytes() -> usize {
    POOL.try_with(|p| p.borrow().len() * BLOCK).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycles_blocks_only() {
        let a = take(100);
        assert_eq!(a.capacity(), BLOCK);
        let ptr = a.as_ptr();
        give(a);
        let b = take(BLOCK);
        assert_eq!(b.as_ptr(), ptr, "the block came back");
        assert!(b.is_empty());
        let big = take(BLOCK + 1);
        assert!(big.capacity() > BLOCK);
        give(big);
        let c = take(10);
        assert_ne!(c.as_ptr(), ptr);
        give(b);
        give(c);
    }

    #[test]
    fn bounded() {
        let blocks: Vec<_> = (0..MAX_POOLED + 10).map(|_| take(1)).collect();
        for b in blocks {
            give(b);
        }
        POOL.with(|p| assert_eq!(p.borrow().len(), MAX_POOLED));
    }
}
