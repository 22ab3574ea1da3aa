//! The one integration test binary: each module tests one area against local fakes.

mod support;

mod deploy;
