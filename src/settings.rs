//! Run settings resolved from flags, environment variables and the workflow file, in that
//! order of precedence.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::cli::RunArgs;
use crate::engine::run_loop::RunSettings;
use crate::llm::TapeMode;
use crate::workflow::Workflow;

impl RunSettings {
    pub fn resolve(args: &RunArgs, workflow: &Workflow) -> Self {
        let run_id = new_run_id();
        let workdir = project_root(&args.workflow.file);
        let artifacts_dir = args
            .artifacts
            .clone()
            .unwrap_or_else(|| PathBuf::from(".agent-orch").join("runs").join(&run_id));
        RunSettings {
            run_id,
            workflow_path: args.workflow.file.clone(),
            environment: workflow.environment.clone(),
            workdir,
            artifacts_dir,
            max_iterations: args
                .max_iterations
                .unwrap_or(workflow.safety.max_iterations),
            echo: !args.quiet,
            dry_run: args.dry_run,
            approve: args.approve,
            tape: match (&args.record, &args.replay) {
                (_, Some(path)) => TapeMode::Replay(path.clone()),
                (Some(path), None) => TapeMode::Record(path.clone()),
                (None, None) => TapeMode::Live,
            },
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

/// The nearest ancestor of the workflow file holding `.git`, else the workflow's folder:
/// where gates run, as a CI system would run them from the repository root.
pub fn project_root(workflow_file: &Path) -> PathBuf {
    let absolute = std::path::absolute(workflow_file).unwrap_or_else(|_| workflow_file.into());
    let folder = absolute
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    folder
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
        .unwrap_or(folder)
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

    #[test]
    fn project_root_is_the_git_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("workflows")).expect("mkdir");
        let root = project_root(&dir.path().join("workflows").join("w.yaml"));
        assert_eq!(root, std::path::absolute(dir.path()).expect("absolute"));
    }
}
