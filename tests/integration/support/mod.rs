//! Helpers and fakes shared by the integration tests, one file each.

pub(crate) mod process;
pub(crate) mod repo;
pub(crate) mod vso;
