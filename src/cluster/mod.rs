//! Kubernetes: everything the deploy and rollback steps do to a cluster, and a fake cluster to
//! do it to in tests and demos. Named `cluster` so it does not shadow the `kube` crate.
//!
//! ```text
//! manifest (split, file:line, images) → apply (discovery, server-side apply as `agent-orch`)
//!     → rollout (watches, per `workload` kind) → rollout_status, set_status, job_status
//!         (pure: Progressing / Complete / Failed{reason})
//!         → evidence (pod logs, events, conditions for the fix step)
//! ledger (what the run changed, what was live before) → rollback (restore from a ReplicaSet or
//!     a `controller_revision`, wait)
//! ```
//!
//! `access` makes the client (kubeconfig, context, exec plugins, in-cluster, or AKS through `aks`:
//! Resource Manager and Entra ID tokens) and bounds retries against an unreachable API server; `error` says which verb, resource and namespace failed.

pub mod access;
pub mod aks;
pub mod apply;
pub mod controller_revision;
pub mod error;
pub mod evidence;
pub mod fake;
pub mod job_status;
pub mod ledger;
pub mod manifest;
pub mod manifest_shape;
pub mod rollback;
pub mod rollout;
pub mod rollout_status;
pub mod set_status;
pub mod workload;
