//! Kubernetes: cluster access, manifest apply, rollout status and waiting, rollback, and a fake
//! API server for tests and demos. Named `cluster` so it does not shadow the `kube` crate.

pub mod access;
pub mod apply;
pub mod error;
pub mod evidence;
pub mod fake;
pub mod ledger;
pub mod manifest;
pub mod rollback;
pub mod rollout;
pub mod rollout_status;
