//! Criterion benchmarks for tarte
