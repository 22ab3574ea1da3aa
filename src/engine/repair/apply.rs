//! Putting an allowed patch on disk: atomically, with its diff written to
//! `patches/iteration-N.diff` and kept for a pull request; and what the fixer hears about a
//! patch that cannot be used.

use super::{Applied, Repair, emit, file_list};
use crate::engine::decision::{Decision, PatchStage, PatchedFile};
use crate::engine::reporter::Reporter;
use crate::patch::{self, PolicyDecision, Workspace};
use crate::steps::pull_request::DeliveredPatch;

impl Repair<'_> {
    /// Applies the approved proposal atomically, writes its diff, and records it with the
    /// reviewer's reason (`None`: no review step). The error is the reason, already kept for
    /// the next fix attempt.
    pub(super) fn apply_proposal(
        &mut self,
        iteration: u32,
        verdict: Option<String>,
        reporter: &mut dyn Reporter,
    ) -> Result<String, String> {
        let Some(proposal) = self.proposal.take() else {
            return Err("no patch to apply".to_owned());
        };
        // The policy's decision gates the disk, whatever any model said.
        if !proposal.decision.allowed() {
            return Err(proposal.decision.summary());
        }
        let applied = Workspace::new(&self.settings.workdir)
            .map_err(|err| (err.to_string(), None))
            .and_then(|workspace| {
                patch::apply(&proposal.patch, &workspace)
                    .map_err(|err| (err.to_string(), Some(apply_feedback(&err))))
            });
        let applied = match applied {
            Ok(applied) => applied,
            Err((reason, feedback)) => {
                self.unusable(
                    iteration,
                    PatchStage::Apply,
                    &reason,
                    Some(&proposal.decision),
                    reporter,
                );
                if feedback.is_some() {
                    self.feedback = feedback;
                }
                return Err(reason);
            }
        };
        let relative = format!("patches/iteration-{iteration}.diff");
        let diff_path = self.settings.artifacts_dir.join(&relative);
        let redacted = self
            .redactor_of_session()
            .redact(&proposal.diff)
            .into_owned();
        let written = diff_path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&diff_path, &redacted));
        let files: Vec<String> = applied.files.iter().map(|f| f.path.clone()).collect();
        emit(
            reporter,
            iteration,
            Decision::PatchApplied {
                patch_sha256: applied.patch_sha256.clone(),
                files: applied.files.iter().map(PatchedFile::from).collect(),
                diff: relative.clone(),
                diff_written: written.as_ref().err().map(ToString::to_string),
                summary: format!("applied {} to {}", relative, file_list(&files)),
            },
        );
        self.delivered.push(DeliveredPatch {
            iteration,
            fixed: self
                .target
                .as_ref()
                .map(|t| format!("{}: {}", t.failure.step_id, t.failure.message))
                .unwrap_or_default(),
            files,
            diff: redacted,
            diff_path: relative.clone(),
            patch_sha256: applied.patch_sha256.clone(),
            verdict,
        });
        self.applied = Some(Applied {
            patch: applied,
            iteration,
            before: self.current.clone().unwrap_or_default(),
            diff_index: self.previous_patches.len().saturating_sub(1),
        });
        self.last_phase_applied = Some(true);
        Ok(relative)
    }

    /// A proposal that cannot be used: audited, and its reason kept for the next attempt.
    pub(super) fn unusable(
        &mut self,
        iteration: u32,
        stage: PatchStage,
        reason: &str,
        decision: Option<&PolicyDecision>,
        reporter: &mut dyn Reporter,
    ) {
        self.feedback = Some(reason.to_owned());
        emit(
            reporter,
            iteration,
            Decision::PatchUnusable {
                stage,
                patch_sha256: decision.map(|d| d.patch_sha256.clone()),
                reason: reason.to_owned(),
            },
        );
    }
}

/// What the next fix attempt hears about a patch that does not fit the files: the reason
/// for each hunk, and the file's current lines where each hunk that did not match was meant
/// to go, numbered, so the next attempt can copy its context from them. The prompt quotes all
/// of it as one untrusted block (a file's content is data, never instructions).
pub(super) fn apply_feedback(error: &patch::ApplyError) -> String {
    let mut text = error.to_string();
    let patch::ApplyErrorKind::Rejected(failures) = &error.kind else {
        return text;
    };
    for failure in failures {
        let which = match &failure.hunk {
            Some((index, header)) => format!("hunk {index} (`{header}`)"),
            None => "the change".to_owned(),
        };
        for region in &failure.regions {
            let last = region.first_line + region.lines.len().saturating_sub(1);
            text.push_str(&format!(
                "\n\nLines {}-{last} of `{}` as they are now, where {which} was meant to go:\n{}",
                region.first_line,
                failure.file,
                region.numbered(),
            ));
        }
    }
    text
}
