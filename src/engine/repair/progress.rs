//! Progress between iterations: the patch applied by the last repair phase is kept when the
//! failure changed for the better, and reverted when it did not.

use super::{IterationState, Repair, emit};
use crate::engine::decision::{Decision, PatchedFile};
use crate::engine::reporter::Reporter;

impl Repair<'_> {
    /// Reverts the last applied patch when `now` is no better than before it. Returns whether
    /// it reverted.
    pub(super) fn judge_progress(
        &mut self,
        iteration: u32,
        now: &IterationState,
        reporter: &mut dyn Reporter,
    ) -> bool {
        let Some(applied) = self.applied.take() else {
            return false;
        };
        let before = &applied.before;
        let why = if now.fingerprint == before.fingerprint {
            Some("the failure did not change (same fingerprint)".to_owned())
        } else if now.failing_steps > before.failing_steps {
            Some(format!(
                "more steps fail ({} instead of {})",
                now.failing_steps, before.failing_steps
            ))
        } else if now.passed_steps < before.passed_steps {
            Some(format!(
                "fewer steps pass ({} instead of {})",
                now.passed_steps, before.passed_steps
            ))
        } else {
            None
        };
        let Some(why) = why else {
            emit(
                reporter,
                iteration,
                Decision::PatchKept {
                    patch_sha256: applied.patch.patch_sha256,
                    summary: format!(
                        "kept the patch of iteration {}: the failure changed",
                        applied.iteration
                    ),
                },
            );
            return false;
        };
        match applied.patch.revert() {
            Ok(()) => {
                self.delivered.retain(|p| p.iteration != applied.iteration);
                let note = format!(
                    "(applied in iteration {} and reverted: {why})",
                    applied.iteration
                );
                if let Some(diff) = self.previous_patches.get_mut(applied.diff_index) {
                    *diff = format!("{note}\n{diff}");
                }
                let summary = format!(
                    "reverted the patch of iteration {}: {why}",
                    applied.iteration
                );
                emit(
                    reporter,
                    iteration,
                    Decision::PatchReverted {
                        patch_sha256: applied.patch.patch_sha256.clone(),
                        files: applied.patch.files.iter().map(PatchedFile::from).collect(),
                        reason: why,
                        summary,
                    },
                );
                self.current = Some(applied.before);
                true
            }
            Err(err) => {
                emit(
                    reporter,
                    iteration,
                    Decision::PatchRevertFailed {
                        patch_sha256: applied.patch.patch_sha256.clone(),
                        error: err.to_string(),
                        summary: format!(
                            "could not revert the patch of iteration {} ({why}): {err}",
                            applied.iteration
                        ),
                    },
                );
                false
            }
        }
    }
}
