//! tarte: QUIC transport engine.
