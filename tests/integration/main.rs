//! The one integration test binary (one link instead of one per file).

mod run_cli;
mod support;
