//! Helpers and wire-level fakes shared by every integration test (one file per fake).

pub mod cli;
