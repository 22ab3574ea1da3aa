//! The integration test binary: one binary, one module per area, shared fakes in `support/`.

mod llm;
mod support;
