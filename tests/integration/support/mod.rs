//! Helpers and fakes shared by the integration tests, one file each.

pub(crate) mod process;
pub(crate) mod vso;
pub(crate) mod zip_listing;
