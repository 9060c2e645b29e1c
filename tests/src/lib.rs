//! Cross-crate integration tests for tarte.
//!
//! [`hq`] is the hq-interop client and server of `engine/examples`, compiled
//! in here so that the interop tests run the examples' exact code;
//! [`interop`] holds what the tests need around it (aioquic processes,
//! temporary directories, an in-process server thread); [`relay`] is a
//! UDP relay that drops, reorders and duplicates datagrams between a real
//! peer and us.

#[path = "../../engine/examples/common/hq/mod.rs"]
pub mod hq;
pub mod interop;
pub mod relay;
