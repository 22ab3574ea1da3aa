//! Kubernetes: cluster access, manifest apply, rollout status and waiting, rollback, and a fake
//! API server for tests and demos. Named `cluster` so it does not shadow the `kube` crate.

pub mod access;
pub mod error;
pub mod fake;
pub mod manifest;
pub mod rollout_status;
