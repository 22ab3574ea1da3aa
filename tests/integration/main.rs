//! Integration tests: one binary, one module per area.

mod patch_corpus;
mod support;
