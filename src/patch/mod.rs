//! Patches proposed by the fixer agent: parsing, the deterministic policy, and atomic application.
//!
//! A reply may be written in any [`EditFormat`] (unified diff, V4A, SEARCH/REPLACE blocks, a
//! whole file); [`parse_reply`] turns each into the same [`Patch`], so everything after parsing
//! is one path for all of them.
//!
//! The data flow, in the order the engine uses it:
//!
//! ```text
//! LLM reply ──parse──▶ Patch ──Policy::check──▶ PolicyDecision (audit; deny / needs approval)
//!                        └──plan──▶ PatchPlan (all new contents, in memory)
//!                                     └──apply──▶ AppliedPatch (hashes; revert())
//! ```
//!
//! Nothing here shells out. LLM diffs are usually slightly wrong, so parsing and hunk location
//! are tolerant (fences, prose, wrong numbers and counts, missing prefixes, whitespace and CRLF
//! drift), but a hunk is never applied where its context matches more than one place equally
//! well: ambiguity is a refusal, reported back with the candidate lines.
//!
//! How well this works on imperfect LLM diffs, next to `git apply` and `patch --fuzz=3`:
//! `cargo bench --bench patch_corpus` (the corpus is generated from real files by
//! `tests/integration/support/patch_corpus.rs`; `tests/integration/patch_corpus.rs` enforces
//! the floor of 95% applied correctly and none applied wrongly, and 98% and none wrongly on each
//! other edit format's corpus).

mod apply;
mod apply_error;
mod comments;
mod confirmation;
mod diff;
mod edit_format;
mod globs;
mod indent;
mod line_diff;
mod locate;
mod parse;
mod path_line;
mod policy;
mod protect;
mod search_replace;
mod temp_file;
mod text;
mod v4a;
mod whole_file;
mod workspace;
mod write;

pub use apply::{
    AppliedFile, AppliedPatch, FileChange, HunkPlacement, PatchPlan, PlannedFile, plan,
};
pub use apply_error::{ApplyError, ApplyErrorKind, FailureReason, HunkFailure, Region};
pub use confirmation::DEFAULT_CONFIRMATION;
pub use diff::{FilePatch, Hunk, HunkLine, LineKind, Patch};
pub use edit_format::{EditFormat, ParsedReply, parse_reply};
pub use locate::Whitespace;
pub use parse::{ParseError, ParseErrorKind, parse};
pub use policy::{
    Policy, PolicyConfig, PolicyDecision, PolicyError, Rule, RuleCheck, Verdict, Violation,
};
pub use protect::DEFAULT_PROTECT;
pub use temp_file::remove_stale_temps;
pub use whole_file::WHOLE_FILE_MAX_LINES;
pub use workspace::{PathViolation, Workspace, WorkspaceError};

/// Plans `patch` against `workspace` and applies it atomically (no policy check: run
/// [`Policy::check`] first).
pub fn apply(patch: &Patch, workspace: &Workspace) -> Result<AppliedPatch, ApplyError> {
    plan(patch, workspace)?.apply()
}

/// Lowercase hex sha256 of `bytes`, the form every hash in the audit log takes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
