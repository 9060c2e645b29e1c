//! Kernel-bypass frame I/O, wire parsing, routing and workers for tarte.
//!
//! - [`wire`]: zero-copy views and `Repr`s for Ethernet, ARP, IPv4, IPv6, UDP.
//! - [`backend`]: the batched datagram I/O trait and its implementations.
//! - [`serve`]: the QUIC + HTTP/3 server (`tarte serve`) on the backends.

pub mod backend;
pub mod serve;
pub mod wire;

#[cfg(feature = "testutil")]
pub mod testutil;
