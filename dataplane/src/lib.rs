//! Kernel-bypass frame I/O, wire parsing, routing and workers for tarte
