//! Shared fakes and helpers, one file per fake.

pub(crate) mod kube_api;
