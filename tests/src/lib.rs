//! Cross-crate integration tests for tarte
