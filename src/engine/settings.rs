//! [`RunSettings`]: what one run was asked to do, resolved before it starts (by
//! `commands::settings` from flags, environment and the workflow file; by the hub worker from a
//! task).

use std::path::{Path, PathBuf};

use crate::llm::TapeMode;

/// Settings for one run, resolved from flags, environment and the workflow file.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub run_id: String,
    pub workflow_path: PathBuf,
    pub environment: Option<String>,
    /// Where commands run (the project root).
    pub workdir: PathBuf,
    pub artifacts_dir: PathBuf,
    pub max_iterations: u32,
    /// Stream step output to the terminal.
    pub echo: bool,
    /// Render and report every step of one iteration without running anything.
    pub dry_run: bool,
    /// `--approve`: a human approved patches that match `safety.require_confirmation`.
    pub approve: bool,
    /// Whether LLM exchanges go live, are recorded (`--record`) or replayed (`--replay`).
    pub tape: TapeMode,
}

/// Commands run in the project root the loader found (where `.git` is), made absolute so a
/// step's `workdir` never depends on where the process happens to be.
pub fn absolute_dir(dir: &Path) -> PathBuf {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workdir_is_absolute() {
        assert!(absolute_dir(Path::new("")).is_absolute());
        assert!(absolute_dir(Path::new("sub")).ends_with("sub"));
    }
}
