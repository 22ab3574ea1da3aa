//! Run settings resolved from the session's options (flags, environment variables, a task's
//! inputs) and the workflow file, in that order of precedence.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::engine::settings::{RunSettings, absolute_dir};
use crate::workflow::Workflow;

use super::RunOptions;

impl RunSettings {
    pub fn resolve(options: &RunOptions, workflow: &Workflow) -> Self {
        let run_id = options.run_id.clone().unwrap_or_else(new_run_id);
        let workdir = absolute_dir(&workflow.project_root);
        // Absolute: steps run in other folders and get paths into it (`$AGENT_ORCH_OUTPUT`).
        let artifacts_dir = absolute_dir(
            &options
                .artifacts
                .clone()
                .unwrap_or_else(|| PathBuf::from(".agent-orch").join("runs").join(&run_id)),
        );
        RunSettings {
            run_id,
            workflow_path: options.workflow.clone(),
            environment: workflow.environment.clone(),
            workdir,
            artifacts_dir,
            max_iterations: options
                .max_iterations
                .unwrap_or(workflow.safety.max_iterations),
            echo: options.echo,
            dry_run: options.dry_run,
            approve: options.approve,
            tape: options.tape.clone(),
        }
    }
}

/// `20261122T073012Z-3f9a`: sortable by time, unique across parallel runs on one machine.
fn new_run_id() -> String {
    let now = SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace(['-', ':'], "");
    let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let digest = Sha256::digest(format!("{nanos}-{}", std::process::id()));
    format!("{stamp}-{}", hex::encode(&digest[..2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_sortable_and_distinct() {
        let a = new_run_id();
        let b = new_run_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), "20261122T073012Z-3f9a".len(), "{a}");
        assert!(a.ends_with(|c: char| c.is_ascii_hexdigit()));
    }
}
