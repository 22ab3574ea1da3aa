//! Fakes and helpers shared by the integration tests, one file per fake.

pub(crate) mod openai_fake;
