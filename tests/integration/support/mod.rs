//! Fakes and helpers shared by the integration tests, one file per helper.

pub(crate) mod patch_corpus;
