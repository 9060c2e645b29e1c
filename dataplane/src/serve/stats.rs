//! Per-worker counters: each worker counts in plain integers and publishes
//! them into its own cache-line-aligned atomics once per loop turn, so
//! readers (the stats printer, tests, a control thread) never lock.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A worker's counters as plain numbers.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// A worker's published counters (one cache line group per worker).
        #[derive(Debug, Default)]
        #[repr(align(128))]
        pub struct WorkerStats {
            $($name: AtomicU64,)*
        }

        impl WorkerStats {
            /// Publishes `c` (called by the owning worker only).
            pub fn publish(&self, c: &Counters) {
                $(self.$name.store(c.$name, Ordering::Relaxed);)*
            }

            /// The counters as last published.
            pub fn read(&self) -> Counters {
                Counters { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl Counters {
            /// Adds `o` field by field (sum over workers).
            pub fn add(&mut self, o: &Counters) {
                $(self.$name += o.$name;)*
            }
        }
    };
}

counters! {
    /// Datagrams received.
    rx_packets,
    /// UDP payload bytes received.
    rx_bytes,
    /// Datagrams sent.
    tx_packets,
    /// UDP payload bytes sent.
    tx_bytes,
    /// Connections accepted.
    conns_accepted,
    /// Connections freed.
    conns_closed,
    /// Connections open now.
    conns_active,
    /// Connections whose handshake resumed a session (RFC 9001 §4.5).
    conns_resumed,
    /// Connections that accepted 0-RTT (RFC 9001 §4.6).
    conns_early,
    /// HTTP/3 requests answered.
    requests,
    /// Of those, requests answered before the handshake completed (from
    /// 0-RTT; one that came in 0-RTT with the client's Finished right
    /// behind it in the same burst is answered after, and not counted).
    early_requests,
    /// Version Negotiation packets sent.
    version_negotiations,
    /// Retry packets sent.
    retries,
    /// Stateless Resets sent for packets of unknown connections.
    stateless_resets,
    /// Initials with an invalid or expired Retry token.
    tokens_rejected,
    /// Initials refused because the worker was at its connection limit.
    refused,
    /// Datagrams dropped (unparsable, no connection, too small, ...).
    dropped,
    /// Datagrams handed to the worker that owns their connection ID.
    handed_off,
    /// Datagrams the backend failed to send.
    tx_errors,
    /// Times a connection's peer address changed: the client migrated or
    /// a NAT rebound it (RFC 9000 §9), the engine accepted the new address
    /// (a fall-back to the old one after failed validation counts too).
    path_changes,
    /// Connection IDs routed to this worker's connections now: ours (the
    /// first plus the spares issued with NEW_CONNECTION_ID) and clients'
    /// first Initial DCIDs. A gauge, like `conns_active`.
    cids,
}
