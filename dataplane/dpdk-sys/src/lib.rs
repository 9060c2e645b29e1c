//! bindgen bindings over Debian's DPDK 22.11 plus a C shim for its inline functions
