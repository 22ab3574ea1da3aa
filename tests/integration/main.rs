//! The integration tests: one binary (one link instead of one per file), one module per area,
//! shared fakes and helpers in `support/`.

// clippy.toml allows unwrap inside #[test] functions only; helpers and fakes panic too.
#![expect(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

mod ado_logging;
mod ado_pipeline;
#[cfg(target_os = "linux")]
mod ado_shim;
mod ado_task;
#[cfg(unix)]
mod ado_vsix;
mod aks;
mod audit_cli;
mod cli_commands;
mod demo;
mod deploy;
mod deploy_approval;
mod deploy_workloads;
#[cfg(target_os = "linux")]
mod escaping_processes;
mod fuzz;
mod hub_api;
mod hub_claim_rules;
mod hub_cli;
mod hub_dashboard;
mod hub_deploy;
mod hub_key_vault;
mod hub_metrics;
mod hub_reliability;
mod hub_store;
mod hub_worker;
mod keyvault;
mod llm;
mod notify;
mod patch_corpus;
mod pull_request;
mod repair;
mod run_cli;
mod secrets_matrix;
mod seed_pipeline;
#[cfg(target_os = "linux")]
mod task_mode;
mod telemetry;
mod verify;
mod verify_metrics;
mod workflow_inputs;
