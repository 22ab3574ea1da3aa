//! Fakes and helpers shared by the integration tests, one file each.

pub(crate) mod arm_fake;
pub(crate) mod azure_server;
pub(crate) mod chromium;
pub(crate) mod cli;
pub(crate) mod cutting_proxy;
pub(crate) mod entra_fake;
pub(crate) mod forge_fake;
pub(crate) mod fuzz;
pub(crate) mod http_service;
pub(crate) mod hub_db;
pub(crate) mod hub_process;
pub(crate) mod hub_server;
pub(crate) mod key_vault_fake;
pub(crate) mod kube_api;
pub(crate) mod managed_identity_fake;
pub(crate) mod oidc_fake;
pub(crate) mod openai_fake;
pub(crate) mod patch_corpus;
pub(crate) mod process;
pub(crate) mod repo;
pub(crate) mod step_harness;
pub(crate) mod telemetry_fake;
pub(crate) mod tools;
pub(crate) mod vso;
pub(crate) mod webhook_fake;
