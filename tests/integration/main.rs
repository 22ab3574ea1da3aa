//! The integration tests: one binary (one link instead of one per file), one module per area,
//! shared fakes and helpers in `support/`.

mod support;

mod llm;
mod patch_corpus;
mod run_cli;
mod verify;
