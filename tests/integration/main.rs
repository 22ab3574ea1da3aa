//! The integration tests: one binary, one module per area, shared fakes in `support/`.

mod support;

mod verify;
