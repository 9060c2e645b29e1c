//! Cross-crate integration tests for tarte.
//!
//! [`hq`] is the hq-interop client and server of `engine/examples`, compiled
//! in here so that the interop tests run the examples' exact code;
//! [`interop`] holds what the tests need around it (aioquic processes,
//! temporary directories, an in-process server thread).

#[path = "../../engine/examples/common/hq/mod.rs"]
pub mod hq;
pub mod interop;
