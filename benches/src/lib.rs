//! Criterion benchmarks for tarte; see `benches/` (run `cargo bench -p tarte-benches`).
