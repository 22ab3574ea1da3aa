//! `DeployLedger`: what this run deployed and what was live before, shared by the deploy steps
//! that record into it and the rollback steps that read it.
//!
//! It is written to `deployments.json` in the run's artifacts folder after every change, so a
//! rollback can also be run after a crash from the file alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::access::ClusterAccess;
use super::workload::WorkloadKind;

pub const LEDGER_FILE: &str = "deployments.json";

/// The pod template that was live before the run first deployed a workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriorRevision {
    pub revision: Option<u64>,
    /// What survives a later renumbering: the `pod-template-hash` of a Deployment's
    /// ReplicaSet, or the name of a StatefulSet's or DaemonSet's ControllerRevision.
    pub template_hash: Option<String>,
    /// The workload's `spec.template` then, for when that ReplicaSet or revision is gone.
    pub template: serde_json::Value,
}

/// One workload (a Deployment, StatefulSet or DaemonSet) this run changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The deploy step that first changed it.
    pub step_id: String,
    pub access: ClusterAccess,
    /// Ledgers written before other kinds were watched hold Deployments only.
    #[serde(default)]
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// `None`: the workload did not exist before the run.
    pub before: Option<PriorRevision>,
    /// The revision the last deploy produced, once known.
    pub deployed_revision: Option<u64>,
    pub images: Vec<String>,
    pub rolled_back: bool,
}

impl LedgerEntry {
    fn is(&self, kind: WorkloadKind, namespace: &str, name: &str) -> bool {
        self.kind == kind && self.namespace == namespace && self.name == name
    }
}

#[derive(Debug, Error)]
#[error("failed to {action} deploy ledger `{}`: {source}", path.display())]
pub struct LedgerError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

#[derive(Default)]
struct LedgerState {
    entries: Vec<LedgerEntry>,
    /// `(namespace, name)` of the entries read from an earlier run's file that this run has not
    /// deployed yet. They stay for a rollback after a crash; a new deploy of one replaces it, so
    /// that a rollback restores what was live before this run, not before the earlier one.
    inherited: Vec<(String, String)>,
    path: Option<PathBuf>,
}

/// Cheap to clone; clones share the same entries.
#[derive(Clone, Default)]
pub struct DeployLedger {
    inner: Arc<Mutex<LedgerState>>,
}

impl std::fmt::Debug for DeployLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries()).finish()
    }
}

impl DeployLedger {
    /// A ledger kept in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A ledger saved to `<artifacts_dir>/deployments.json` on every change, starting from the
    /// file's entries if it exists (a rollback after a crash).
    pub fn in_artifacts(artifacts_dir: &Path) -> Result<Self, LedgerError> {
        let path = artifacts_dir.join(LEDGER_FILE);
        let entries: Vec<LedgerEntry> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| LedgerError {
                action: "read",
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, err),
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(LedgerError {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let inherited = entries
            .iter()
            .map(|e| (e.namespace.clone(), e.name.clone()))
            .collect();
        Ok(Self {
            inner: Arc::new(Mutex::new(LedgerState {
                entries,
                inherited,
                path: Some(path),
            })),
        })
    }

    fn state(&self) -> MutexGuard<'_, LedgerState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn entries(&self) -> Vec<LedgerEntry> {
        self.state().entries.clone()
    }

    pub fn is_empty(&self) -> bool {
        self.state().entries.is_empty()
    }

    /// Records what was live before a deploy; only the first deploy of a workload in a run
    /// counts, since rollback restores the state from before the run.
    pub fn record_before(&self, entry: LedgerEntry) -> Result<(), LedgerError> {
        let mut state = self.state();
        let key = (entry.namespace.clone(), entry.name.clone());
        if let Some(at) = state.inherited.iter().position(|k| *k == key) {
            state.inherited.swap_remove(at);
            state
                .entries
                .retain(|e| e.namespace != entry.namespace || e.name != entry.name);
        }
        let known = state
            .entries
            .iter_mut()
            .find(|e| e.is(entry.kind, &entry.namespace, &entry.name));
        match known {
            // Deployed again after a rollback: it is this run's change again.
            Some(existing) => existing.rolled_back = false,
            None => state.entries.push(entry),
        }
        save(&state)
    }

    pub fn record_deployed(
        &self,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
        revision: Option<u64>,
        images: Vec<String>,
    ) -> Result<(), LedgerError> {
        let mut state = self.state();
        if let Some(entry) = state
            .entries
            .iter_mut()
            .find(|e| e.is(kind, namespace, name))
        {
            entry.deployed_revision = revision;
            entry.images = images;
        }
        save(&state)
    }

    pub fn mark_rolled_back(
        &self,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
    ) -> Result<(), LedgerError> {
        let mut state = self.state();
        if let Some(entry) = state
            .entries
            .iter_mut()
            .find(|e| e.is(kind, namespace, name))
        {
            entry.rolled_back = true;
        }
        save(&state)
    }
}

fn save(state: &LedgerState) -> Result<(), LedgerError> {
    let Some(path) = &state.path else {
        return Ok(());
    };
    let error = |source| LedgerError {
        action: "write",
        path: path.clone(),
        source,
    };
    let json = serde_json::to_vec_pretty(&state.entries)
        .map_err(|err| error(std::io::Error::other(err)))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    // Write then rename, so a crash never leaves a half-written ledger behind.
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, json).map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> LedgerEntry {
        LedgerEntry {
            step_id: "deploy".into(),
            access: ClusterAccess::default(),
            kind: WorkloadKind::Deployment,
            namespace: "ns".into(),
            name: name.into(),
            before: None,
            deployed_revision: None,
            images: Vec::new(),
            rolled_back: false,
        }
    }

    #[test]
    fn first_record_wins_and_survives_a_reload() {
        let dir = tempfile::tempdir().expect("should succeed");
        let ledger = DeployLedger::in_artifacts(dir.path()).expect("should succeed");
        ledger.record_before(entry("web")).expect("should succeed");
        let mut second = entry("web");
        second.before = Some(PriorRevision {
            revision: Some(9),
            template_hash: None,
            template: serde_json::json!({}),
        });
        ledger.record_before(second).expect("should succeed");
        ledger
            .record_deployed(
                WorkloadKind::Deployment,
                "ns",
                "web",
                Some(2),
                vec!["web=web:2".into()],
            )
            .expect("should succeed");

        let reloaded = DeployLedger::in_artifacts(dir.path()).expect("should succeed");
        let entries = reloaded.entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].before, None, "the state before the run is kept");
        assert_eq!(entries[0].deployed_revision, Some(2));
    }

    #[test]
    fn a_later_run_in_the_same_folder_records_what_was_live_before_it() {
        let dir = tempfile::tempdir().expect("should succeed");
        let earlier = DeployLedger::in_artifacts(dir.path()).expect("should succeed");
        earlier.record_before(entry("web")).expect("should succeed");
        earlier.record_before(entry("api")).expect("should succeed");

        let later = DeployLedger::in_artifacts(dir.path()).expect("should succeed");
        let mut before_later = entry("web");
        before_later.step_id = "later".into();
        before_later.before = Some(PriorRevision {
            revision: Some(2),
            template_hash: None,
            template: serde_json::json!({}),
        });
        later
            .record_before(before_later.clone())
            .expect("should succeed");
        // A second deploy in the later run keeps the later run's first record.
        later.record_before(entry("web")).expect("should succeed");

        let entries = later.entries();
        assert_eq!(entries.len(), 2, "the earlier run's other entry is kept");
        assert_eq!(entries[0].name, "api");
        assert_eq!(
            entries[1], before_later,
            "newest last, as this run found it"
        );
    }
}
