//! Files of this repository, read by tests that check them (task.json, the pipeline, ...).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `relative` under the repository root.
pub(crate) fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub(crate) fn read_to_string(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn read_json(path: &Path) -> Value {
    serde_json::from_str(&read_to_string(path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
