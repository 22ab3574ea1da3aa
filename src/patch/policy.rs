//! The deterministic patch policy: rules checked before the reviewer sees a patch, which no
//! model can override. Every check, passed or not, goes into the [`PolicyDecision`] for the
//! audit log.
//!
//! The policy guards its own inputs and the run's records: the workflow file, its templates
//! and prompts, and the folders runs write their records to are out of a patch's reach, as
//! `.git/` is. Files are compared by what the patch does to them (the planned result), not by
//! the diff's shape, so a deletion spelled as an edit, or a pattern enabled by removing the
//! comment around it, is still seen.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use super::apply::{PatchPlan, plan};
use super::confirmation::{ConfirmationPattern, DEFAULT_CONFIRMATION};
use super::diff::{LineKind, Patch};
use super::globs::PathGlobs;
use super::protect::{DEFAULT_PROTECT, Weakening, keeps_no_original_line, weakening};
use super::workspace::{PathViolation, Workspace};

/// The policy's settings: the workflow's `safety` section and what the run adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Globs of files a patch may never delete, rename away, empty or replace wholesale.
    pub never_delete: Vec<String>,
    /// Patterns whose occurrences in a file may not grow without a human's approval: plain
    /// text, or a regular expression after `re:`; both ignore case.
    pub require_confirmation: Vec<String>,
    /// Globs of files whose checks a patch may not weaken: no deleting, renaming away or
    /// emptying them, no removing or changing an assertion, no new skip.
    pub protect: Vec<String>,
    /// Files no patch may touch: the workflow file, its templates and prompt files.
    pub workflow_files: Vec<PathBuf>,
    /// Files and folders where runs keep their records: nothing at or under them may be
    /// touched.
    pub records: Vec<PathBuf>,
    pub max_files: usize,
    /// Added plus removed lines.
    pub max_changed_lines: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            never_delete: Vec::new(),
            require_confirmation: DEFAULT_CONFIRMATION.map(str::to_owned).to_vec(),
            protect: DEFAULT_PROTECT.map(str::to_owned).to_vec(),
            workflow_files: Vec::new(),
            records: Vec::new(),
            max_files: 20,
            max_changed_lines: 500,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid `{setting}` glob `{glob}`")]
    Glob {
        setting: &'static str,
        glob: String,
        #[source]
        source: globset::Error,
    },
    #[error("invalid `require_confirmation` pattern `{pattern}`")]
    Pattern {
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
}

/// A [`PolicyConfig`] with its globs and patterns compiled.
#[derive(Clone, Debug)]
pub struct Policy {
    config: PolicyConfig,
    never_delete: PathGlobs,
    protect: PathGlobs,
    confirmation: Vec<ConfirmationPattern>,
    /// `workflow_files`, absolute and lowercased.
    workflow_files: Vec<String>,
    /// `records`, absolute and lowercased, with the path to show.
    records: Vec<(String, PathBuf)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    PathInsideRepo,
    NoGitDir,
    WorkflowFiles,
    RunRecords,
    NoBinary,
    NeverDelete,
    Protect,
    MaxFiles,
    MaxChangedLines,
    RequireConfirmation,
}

const RULES: [Rule; 10] = [
    Rule::PathInsideRepo,
    Rule::NoGitDir,
    Rule::WorkflowFiles,
    Rule::RunRecords,
    Rule::NoBinary,
    Rule::NeverDelete,
    Rule::Protect,
    Rule::MaxFiles,
    Rule::MaxChangedLines,
    Rule::RequireConfirmation,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The patch may go on to the reviewer.
    Allow,
    /// Only `require_confirmation` matched: allowed with `--approve`, otherwise the run stops.
    NeedsApproval,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleCheck {
    pub rule: Rule,
    pub passed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub rule: Rule,
    pub file: String,
    /// 1-based line in the patched file, where the rule is about a line.
    pub line: Option<usize>,
    /// The `never_delete` glob or `require_confirmation` pattern that matched.
    pub pattern: Option<String>,
    pub message: String,
}

/// The policy's answer for one patch, serialized as is into `audit.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PolicyDecision {
    pub verdict: Verdict,
    /// `--approve` was given; it only ever lifts `require_confirmation`.
    pub human_approved: bool,
    pub patch_sha256: String,
    pub files: Vec<String>,
    pub lines_added: usize,
    pub lines_removed: usize,
    pub rules: Vec<RuleCheck>,
    pub violations: Vec<Violation>,
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Result<Self, PolicyError> {
        let globs = |setting: &'static str, list: &[String]| {
            PathGlobs::new(list).map_err(|(glob, source)| PolicyError::Glob {
                setting,
                glob,
                source,
            })
        };
        let never_delete = globs("never_delete", &config.never_delete)?;
        let protect = globs("protect", &config.protect)?;
        let confirmation = config
            .require_confirmation
            .iter()
            .filter(|pattern| !pattern.is_empty())
            .map(|pattern| {
                ConfirmationPattern::new(pattern).map_err(|source| PolicyError::Pattern {
                    pattern: pattern.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        let workflow_files = config
            .workflow_files
            .iter()
            .map(|p| comparable(p))
            .collect();
        let records = config
            .records
            .iter()
            .map(|folder| (comparable(folder), folder.clone()))
            .collect();
        Ok(Self {
            config,
            never_delete,
            protect,
            confirmation,
            workflow_files,
            records,
        })
    }

    /// Checks `patch` against every rule. `human_approved` is the `--approve` flag.
    pub fn check(
        &self,
        patch: &Patch,
        workspace: &Workspace,
        human_approved: bool,
    ) -> PolicyDecision {
        // What the patch would do; one that does not apply cannot delete or enable anything
        // (applying it fails the same way), so the content rules have nothing to judge then.
        let plan = plan(patch, workspace).ok();
        let losses = losses(patch, plan.as_ref());
        let mut violations = Vec::new();
        self.check_paths(patch, workspace, &mut violations);
        self.check_losses(&losses, &mut violations);
        self.check_weakening(plan.as_ref(), &losses, &mut violations);
        let (lines_added, lines_removed) = counted_lines(patch, workspace);
        self.check_limits(patch, (lines_added, lines_removed), &mut violations);
        self.check_confirmation(patch, plan.as_ref(), &mut violations);

        let rules = RULES
            .iter()
            .map(|&rule| RuleCheck {
                rule,
                passed: violations.iter().all(|v| v.rule != rule),
            })
            .collect();
        let denied = violations
            .iter()
            .any(|v| v.rule != Rule::RequireConfirmation);
        let verdict = match (denied, violations.is_empty(), human_approved) {
            (true, _, _) => Verdict::Deny,
            (false, true, _) | (false, false, true) => Verdict::Allow,
            (false, false, false) => Verdict::NeedsApproval,
        };
        PolicyDecision {
            verdict,
            human_approved,
            patch_sha256: patch.sha256(),
            files: patch
                .files
                .iter()
                .map(|file| file.display_path().to_owned())
                .collect(),
            lines_added,
            lines_removed,
            rules,
            violations,
        }
    }

    fn check_paths(&self, patch: &Patch, workspace: &Workspace, violations: &mut Vec<Violation>) {
        for file in &patch.files {
            let paths = file.old_path.iter().chain(
                file.new_path
                    .iter()
                    .filter(|new| file.old_path.as_ref() != Some(*new)),
            );
            for path in paths {
                let (rule, message) = match workspace.resolve(path) {
                    Ok(absolute) => match self.guarded(&absolute) {
                        Some(guarded) => guarded,
                        None => continue,
                    },
                    Err(PathViolation::GitDir) => {
                        (Rule::NoGitDir, PathViolation::GitDir.to_string())
                    }
                    Err(violation) => (Rule::PathInsideRepo, violation.to_string()),
                };
                violations.push(Violation {
                    rule,
                    file: path.clone(),
                    line: None,
                    pattern: None,
                    message,
                });
            }
            if file.binary {
                violations.push(Violation {
                    rule: Rule::NoBinary,
                    file: file.display_path().to_owned(),
                    line: None,
                    pattern: None,
                    message: "binary patches are not allowed".to_owned(),
                });
            }
        }
    }

    /// The rule that keeps patches away from `absolute`, if one does: the workflow's own files
    /// and the run records decide whether the next run is still guarded and audited.
    fn guarded(&self, absolute: &Path) -> Option<(Rule, String)> {
        let path = comparable(absolute);
        if self.workflow_files.contains(&path) {
            return Some((
                Rule::WorkflowFiles,
                "the file is the workflow, one of its templates or a prompt: the rules a fix \
                 is judged by are not the fixer's to change"
                    .to_owned(),
            ));
        }
        self.records
            .iter()
            .find(|(folder, _)| {
                path.strip_prefix(folder.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .map(|(_, shown)| {
                (
                    Rule::RunRecords,
                    format!(
                        "the path is inside `{}`, where runs keep their records",
                        shown.display()
                    ),
                )
            })
    }

    fn check_losses(&self, losses: &[Loss], violations: &mut Vec<Violation>) {
        for loss in losses {
            for (rule, setting, globs) in [
                (Rule::NeverDelete, "never_delete", &self.never_delete),
                (Rule::Protect, "protect", &self.protect),
            ] {
                if let Some(glob) = globs.matching(&loss.path) {
                    violations.push(Violation {
                        rule,
                        file: loss.path.clone(),
                        line: None,
                        pattern: Some(glob.to_owned()),
                        message: format!(
                            "the patch {} a file protected by `{setting}` glob `{glob}`",
                            loss.what
                        ),
                    });
                }
            }
        }
    }

    /// Assertions removed or changed, and skips added, in `protect`ed files the patch keeps.
    fn check_weakening(
        &self,
        plan: Option<&PatchPlan>,
        losses: &[Loss],
        violations: &mut Vec<Violation>,
    ) {
        let Some(plan) = plan else { return };
        for file in plan.files() {
            let (Some(before), Some(after)) = (&file.before, &file.after) else {
                continue;
            };
            if losses.iter().any(|loss| loss.path == file.path) {
                continue;
            }
            let Some(glob) = self.protect.matching(&file.path) else {
                continue;
            };
            let (before, after) = (
                String::from_utf8_lossy(before),
                String::from_utf8_lossy(after),
            );
            let (line, what) = match weakening(&before, &after) {
                None => continue,
                Some(Weakening::RemovedAssertion { line, text }) => (
                    None,
                    format!(
                        "the patch removes or changes the assertion `{text}` (line {line} before the patch)"
                    ),
                ),
                Some(Weakening::AddedSkip { line, text }) => (
                    Some(line),
                    format!("the patch adds `{text}`, which skips tests,"),
                ),
            };
            violations.push(Violation {
                rule: Rule::Protect,
                file: file.path.clone(),
                line,
                pattern: Some(glob.to_owned()),
                message: format!("{what} in a file protected by `protect` glob `{glob}`"),
            });
        }
    }

    fn check_limits(
        &self,
        patch: &Patch,
        (added, removed): (usize, usize),
        violations: &mut Vec<Violation>,
    ) {
        let mut paths: Vec<&str> = patch.files.iter().map(|file| file.display_path()).collect();
        paths.sort_unstable();
        paths.dedup();
        let files = paths.len();
        if files > self.config.max_files {
            violations.push(Violation {
                rule: Rule::MaxFiles,
                file: String::new(),
                line: None,
                pattern: None,
                message: format!(
                    "the patch touches {files} files; the limit is {}",
                    self.config.max_files
                ),
            });
        }
        let changed = added + removed;
        if changed > self.config.max_changed_lines {
            violations.push(Violation {
                rule: Rule::MaxChangedLines,
                file: String::new(),
                line: None,
                pattern: None,
                message: format!(
                    "the patch changes {changed} lines ({added} added, {removed} removed); the limit is {}",
                    self.config.max_changed_lines
                ),
            });
        }
    }

    /// A pattern needs approval when the patch adds a line matching it, or when a file has
    /// more occurrences after the patch than before, in its text or outside comments (a file
    /// renamed into place has none before). Removing a `DROP TABLE` is not dangerous.
    fn check_confirmation(
        &self,
        patch: &Patch,
        plan: Option<&PatchPlan>,
        violations: &mut Vec<Violation>,
    ) {
        if self.confirmation.is_empty() {
            return;
        }
        let placements = plan.map(PatchPlan::placements).unwrap_or_default();
        let mut found: Vec<Violation> = Vec::new();
        for (section, file) in patch.files.iter().enumerate() {
            for (hunk_index, hunk) in file.hunks.iter().enumerate() {
                let placed = placements
                    .iter()
                    .find(|p| p.section == section && p.hunk == hunk_index + 1);
                let (mut nth_added, mut new_offset) = (0, 0);
                for line in &hunk.lines {
                    if line.kind == LineKind::Remove {
                        continue;
                    }
                    new_offset += 1;
                    if line.kind != LineKind::Add {
                        continue;
                    }
                    // The real line where the hunk landed; else the header's hint.
                    let line_number = placed
                        .and_then(|p| p.added_at.get(nth_added).copied())
                        .or_else(|| hunk.new_start.map(|start| start + new_offset - 1));
                    nth_added += 1;
                    for pattern in self.confirmation.iter().filter(|p| p.matches(&line.text)) {
                        found.push(Violation {
                            rule: Rule::RequireConfirmation,
                            file: file.display_path().to_owned(),
                            line: line_number,
                            pattern: Some(pattern.written.clone()),
                            message: format!(
                                "an added line matches `{}`, which needs human approval",
                                pattern.written
                            ),
                        });
                    }
                }
            }
        }
        for file in plan.map(PatchPlan::files).unwrap_or_default() {
            let (before, after) = (text(file.before.as_deref()), text(file.after.as_deref()));
            for pattern in &self.confirmation {
                let seen = found.iter().any(|v| {
                    v.file == file.path && v.pattern.as_deref() == Some(pattern.written.as_str())
                });
                if seen {
                    continue;
                }
                if let Some(increase) = pattern.increase(&file.path, &before, &after) {
                    found.push(Violation {
                        rule: Rule::RequireConfirmation,
                        file: file.path.clone(),
                        line: increase.line,
                        pattern: Some(pattern.written.clone()),
                        message: format!(
                            "`{}` occurs {} time(s){} after the patch and {} before, which needs human approval",
                            pattern.written,
                            increase.after,
                            if increase.in_code { " outside comments" } else { "" },
                            increase.before,
                        ),
                    });
                }
            }
        }
        violations.append(&mut found);
    }
}

/// A file the patch takes away: deletes, renames away, empties or replaces every line of.
struct Loss {
    path: String,
    what: &'static str,
}

fn losses(patch: &Patch, plan: Option<&PatchPlan>) -> Vec<Loss> {
    let mut losses = Vec::new();
    for file in &patch.files {
        if let Some(old) = &file.old_path {
            if file.is_deletion() {
                losses.push(Loss {
                    path: old.clone(),
                    what: "deletes",
                });
            } else if file.is_rename() {
                losses.push(Loss {
                    path: old.clone(),
                    what: "renames away",
                });
            }
        }
    }
    for file in plan.map(PatchPlan::files).unwrap_or_default() {
        let (Some(before), Some(after)) = (&file.before, &file.after) else {
            continue;
        };
        let (before, after) = (
            String::from_utf8_lossy(before),
            String::from_utf8_lossy(after),
        );
        if keeps_no_original_line(&before, &after) {
            let emptied = after.chars().all(char::is_whitespace);
            losses.push(Loss {
                path: file.path.clone(),
                what: if emptied {
                    "empties"
                } else {
                    "replaces every line of"
                },
            });
        }
    }
    losses
}

/// Added and removed lines. A deletion counts every line of the file it deletes, also when the
/// patch only names it (`deleted file mode` and no hunk).
fn counted_lines(patch: &Patch, workspace: &Workspace) -> (usize, usize) {
    let (added, mut removed) = patch.changed_line_counts();
    for file in patch.files.iter().filter(|file| file.is_deletion()) {
        let written = file
            .hunks
            .iter()
            .flat_map(|hunk| &hunk.lines)
            .filter(|line| line.kind == LineKind::Remove)
            .count();
        let real = file
            .old_path
            .as_deref()
            .and_then(|path| workspace.resolve(path).ok())
            .and_then(|path| std::fs::read(path).ok())
            .map_or(0, |bytes| String::from_utf8_lossy(&bytes).lines().count());
        removed += real.saturating_sub(written);
    }
    (added, removed)
}

/// A planned file's contents as text (the plan only holds text files); absent is empty.
fn text(bytes: Option<&[u8]>) -> Cow<'_, str> {
    bytes.map(String::from_utf8_lossy).unwrap_or_default()
}

/// `path` as the guarded paths are compared: absolute, symlinks resolved where it exists, and
/// lowercased (a case-insensitive checkout reaches `W.YAML` through `w.yaml`).
fn comparable(path: &Path) -> String {
    let absolute = path
        .canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf());
    absolute.to_string_lossy().to_lowercase()
}

impl PolicyDecision {
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// One message for a person (or a pipeline log) naming each violation.
    pub fn summary(&self) -> String {
        let heading = match self.verdict {
            Verdict::Allow if self.human_approved && !self.violations.is_empty() => {
                "patch allowed by policy with human approval"
            }
            Verdict::Allow => "patch allowed by policy",
            Verdict::NeedsApproval => {
                "patch needs human approval (rerun with `--approve`; a pipeline run stops here)"
            }
            Verdict::Deny => "patch denied by policy",
        };
        let details: String = self.violations.iter().map(|v| format!("\n- {v}")).collect();
        format!("{heading}{details}")
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.line) {
            (true, _) => write!(f, "{}", self.message),
            (false, Some(line)) => write!(f, "`{}:{line}`: {}", self.file, self.message),
            (false, None) => write!(f, "`{}`: {}", self.file, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::patch::parse;

    fn repo() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("migrations")).unwrap();
        fs::write(
            dir.path().join("migrations/001.sql"),
            "CREATE TABLE t (id int);\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("schema.sql"),
            "CREATE TABLE s (id int);\nDROP TABLE old;\n",
        )
        .unwrap();
        fs::write(dir.path().join("app.sh"), "echo hi\n").unwrap();
        let workspace = Workspace::new(dir.path()).unwrap();
        (dir, workspace)
    }

    fn policy() -> Policy {
        Policy::new(PolicyConfig {
            never_delete: vec!["*.sql".into(), "migrations/**".into()],
            require_confirmation: vec!["DROP".into(), "rm -rf".into()],
            protect: vec!["tests/**".into()],
            max_files: 3,
            max_changed_lines: 6,
            ..PolicyConfig::default()
        })
        .unwrap()
    }

    fn check(workspace: &Workspace, reply: &str, approved: bool) -> PolicyDecision {
        policy().check(&parse(reply).unwrap(), workspace, approved)
    }

    fn violated(decision: &PolicyDecision) -> Vec<(Rule, &str, Option<usize>)> {
        decision
            .violations
            .iter()
            .map(|v| (v.rule, v.file.as_str(), v.line))
            .collect()
    }

    #[test]
    fn a_harmless_patch_passes_every_rule() {
        let (_dir, workspace) = repo();
        let decision = check(
            &workspace,
            "--- a/app.sh\n+++ b/app.sh\n@@ @@\n-echo hi\n+echo hello\n",
            false,
        );
        assert_eq!(decision.verdict, Verdict::Allow);
        assert_eq!(decision.rules.len(), RULES.len());
        assert!(decision.rules.iter().all(|check| check.passed));
        let json = serde_json::to_value(&decision).unwrap();
        assert_eq!(json["verdict"], "allow");
        assert_eq!(json["rules"][0]["rule"], "path_inside_repo");
    }

    #[test]
    fn paths_outside_the_repo_or_in_git_are_denied() {
        let (dir, workspace) = repo();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let reply = "--- /dev/null\n+++ b/../x\n@@ @@\n+a\n--- /dev/null\n+++ /etc/cron.d/x\n@@ @@\n+a\n--- a/out/f\n+++ b/out/f\n@@ @@\n+a\n--- a/.git/hooks/pre-commit\n+++ b/.git/hooks/pre-commit\n@@ @@\n+a\n";
        let decision = check(&workspace, reply, true);
        assert_eq!(decision.verdict, Verdict::Deny);
        assert_eq!(
            violated(&decision),
            [
                (Rule::PathInsideRepo, "../x", None),
                (Rule::PathInsideRepo, "/etc/cron.d/x", None),
                (Rule::PathInsideRepo, "out/f", None),
                (Rule::NoGitDir, ".git/hooks/pre-commit", None),
                (Rule::MaxFiles, "", None),
            ]
        );
        assert_eq!(
            decision.violations[2].message,
            "the path goes through the symlink `out`"
        );
    }

    #[test]
    fn never_delete_covers_deleting_renaming_away_and_emptying() {
        let (_dir, workspace) = repo();
        let delete =
            "--- a/migrations/001.sql\n+++ /dev/null\n@@ -1 +0,0 @@\n-CREATE TABLE t (id int);\n";
        let decision = check(&workspace, delete, true);
        assert_eq!(decision.verdict, Verdict::Deny);
        assert_eq!(decision.violations[0].pattern.as_deref(), Some("*.sql"));

        let rename = "diff --git a/migrations/001.sql b/attic/001.txt\nrename from migrations/001.sql\nrename to attic/001.txt\n";
        assert_eq!(
            violated(&check(&workspace, rename, false)),
            [(Rule::NeverDelete, "migrations/001.sql", None)]
        );

        let empty = "--- a/schema.sql\n+++ b/schema.sql\n@@ @@\n-CREATE TABLE s (id int);\n-DROP TABLE old;\n";
        let decision = check(&workspace, empty, false);
        assert_eq!(
            violated(&decision),
            [(Rule::NeverDelete, "schema.sql", None)]
        );
        assert!(decision.violations[0].message.contains("empties"));

        let shrink = "--- a/schema.sql\n+++ b/schema.sql\n@@ @@\n CREATE TABLE s (id int);\n-DROP TABLE old;\n";
        assert_eq!(check(&workspace, shrink, false).verdict, Verdict::Allow);
    }

    #[test]
    fn confirmation_patterns_count_in_added_lines_only() {
        let (_dir, workspace) = repo();
        // Removing a DROP is fine.
        let removal = "--- a/schema.sql\n+++ b/schema.sql\n@@ @@\n CREATE TABLE s (id int);\n-DROP TABLE old;\n";
        assert_eq!(check(&workspace, removal, false).verdict, Verdict::Allow);

        let added =
            "--- a/app.sh\n+++ b/app.sh\n@@ -10 +10,3 @@\n echo hi\n+cd /tmp\n+rm -rf build\n";
        let decision = check(&workspace, added, false);
        assert_eq!(decision.verdict, Verdict::NeedsApproval);
        // The real line in the patched file, not the header's wrong hint.
        assert_eq!(
            violated(&decision),
            [(Rule::RequireConfirmation, "app.sh", Some(3))]
        );
        assert_eq!(
            decision.summary(),
            "patch needs human approval (rerun with `--approve`; a pipeline run stops here)\n- `app.sh:3`: an added line matches `rm -rf`, which needs human approval"
        );

        let approved = check(&workspace, added, true);
        assert_eq!(approved.verdict, Verdict::Allow);
        assert!(approved.human_approved && !approved.rules.iter().all(|r| r.passed));

        let lowercase =
            "--- a/app.sh\n+++ b/app.sh\n@@ @@\n echo hi\n+psql -c 'drop table users'\n";
        assert_eq!(
            check(&workspace, lowercase, false).verdict,
            Verdict::NeedsApproval
        );
    }

    #[test]
    fn approval_never_lifts_other_rules() {
        let (_dir, workspace) = repo();
        let reply = "--- a/migrations/001.sql\n+++ /dev/null\n@@ -1 +0,0 @@\n-CREATE TABLE t (id int);\n--- /dev/null\n+++ b/x.sh\n@@ @@\n+rm -rf /\n";
        let decision = check(&workspace, reply, true);
        assert_eq!(decision.verdict, Verdict::Deny);
    }

    #[test]
    fn limits_on_lines_and_binary_patches() {
        let (_dir, workspace) = repo();
        let many = "--- a/app.sh\n+++ b/app.sh\n@@ @@\n echo hi\n+1\n+2\n+3\n+4\n+5\n+6\n+7\n";
        let decision = check(&workspace, many, false);
        assert_eq!(violated(&decision), [(Rule::MaxChangedLines, "", None)]);
        assert_eq!(
            decision.violations[0].message,
            "the patch changes 7 lines (7 added, 0 removed); the limit is 6"
        );

        let binary = "diff --git a/logo.png b/logo.png\nGIT binary patch\nliteral 5\nMcmZ?\n";
        assert_eq!(
            violated(&check(&workspace, binary, false)),
            [(Rule::NoBinary, "logo.png", None)]
        );
    }

    #[test]
    fn invalid_globs_and_patterns_are_reported() {
        let config = PolicyConfig {
            never_delete: vec!["a[".into()],
            ..PolicyConfig::default()
        };
        assert_eq!(
            Policy::new(config).unwrap_err().to_string(),
            "invalid `never_delete` glob `a[`"
        );
        let config = PolicyConfig {
            protect: vec!["b[".into()],
            ..PolicyConfig::default()
        };
        assert_eq!(
            Policy::new(config).unwrap_err().to_string(),
            "invalid `protect` glob `b[`"
        );
        let config = PolicyConfig {
            require_confirmation: vec!["re:(drop".into()],
            ..PolicyConfig::default()
        };
        assert_eq!(
            Policy::new(config).unwrap_err().to_string(),
            "invalid `require_confirmation` pattern `re:(drop`"
        );
    }

    /// `policy()` plus the guarded files of a workflow in `dir`.
    fn guarding(dir: &Path) -> Policy {
        Policy::new(PolicyConfig {
            workflow_files: vec![dir.join("w.yaml"), dir.join("templates/flows.yaml")],
            records: vec![dir.join("artifacts"), dir.join(".agent-orch")],
            max_files: 20,
            ..policy().config
        })
        .unwrap()
    }

    #[test]
    fn the_workflow_its_templates_and_the_run_records_are_out_of_reach() {
        let (dir, workspace) = repo();
        fs::write(
            dir.path().join("w.yaml"),
            "safety: {never_delete: [\"*.sql\"]}\n",
        )
        .unwrap();
        fs::create_dir_all(dir.path().join("templates")).unwrap();
        fs::write(dir.path().join("templates/flows.yaml"), "steps: []\n").unwrap();
        fs::create_dir_all(dir.path().join("artifacts")).unwrap();
        fs::write(dir.path().join("artifacts/audit.jsonl"), "{}\n").unwrap();
        let policy = guarding(dir.path());
        let denied = |reply: &str| {
            let decision = policy.check(&parse(reply).unwrap(), &workspace, true);
            assert_eq!(decision.verdict, Verdict::Deny, "{reply}");
            decision
                .violations
                .iter()
                .map(|v| (v.rule, v.file.clone()))
                .collect::<Vec<_>>()
        };
        // Dropping `never_delete` from the workflow, whatever the case of its name.
        assert_eq!(
            denied(
                "--- a/W.yaml\n+++ b/W.yaml\n@@ @@\n-safety: {never_delete: [\"*.sql\"]}\n+safety: {}\n"
            ),
            [(Rule::WorkflowFiles, "W.yaml".to_owned())]
        );
        // A file renamed over a template; a new step in an empty template.
        assert_eq!(
            denied(
                "diff --git a/app.sh b/templates/flows.yaml\nrename from app.sh\nrename to templates/flows.yaml\n"
            ),
            [(Rule::WorkflowFiles, "templates/flows.yaml".to_owned())]
        );
        assert_eq!(
            denied("--- a/./templates//flows.yaml\n+++ b/./templates//flows.yaml\n@@ @@\n-steps: []\n+steps: [{id: x, gate: id}]\n")[0].0,
            Rule::WorkflowFiles
        );
        // This run's audit log, a new file beside it, and any run's records.
        assert_eq!(
            denied(
                "--- a/artifacts/audit.jsonl\n+++ b/artifacts/audit.jsonl\n@@ @@\n-{}\n+{\"forged\": true}\n--- /dev/null\n+++ b/Artifacts/x\n@@ @@\n+x\n--- /dev/null\n+++ b/.agent-orch/runs/old/audit.jsonl\n@@ @@\n+{}\n"
            ),
            [
                (Rule::RunRecords, "artifacts/audit.jsonl".to_owned()),
                (Rule::RunRecords, "Artifacts/x".to_owned()),
                (
                    Rule::RunRecords,
                    ".agent-orch/runs/old/audit.jsonl".to_owned()
                ),
            ]
        );
        // A neighbour whose name only starts like a record folder is fine.
        let decision = policy.check(
            &parse("--- /dev/null\n+++ b/artifacts-old.txt\n@@ @@\n+x\n").unwrap(),
            &workspace,
            false,
        );
        assert_eq!(
            decision.verdict,
            Verdict::Allow,
            "{:?}",
            decision.violations
        );
    }

    #[test]
    fn replacing_every_line_of_a_protected_file_is_deleting_it() {
        let (_dir, workspace) = repo();
        for replacement in ["\u{a0}", "--", "SELECT 1;"] {
            let reply = format!(
                "--- a/migrations/001.sql\n+++ b/migrations/001.sql\n@@ @@\n-CREATE TABLE t (id int);\n+{replacement}\n"
            );
            let decision = check(&workspace, &reply, true);
            assert_eq!(
                violated(&decision),
                [(Rule::NeverDelete, "migrations/001.sql", None)],
                "{replacement}"
            );
            assert!(
                decision.violations[0].message.contains("empties")
                    || decision.violations[0]
                        .message
                        .contains("replaces every line of"),
                "{}",
                decision.violations[0].message
            );
        }
    }

    #[test]
    fn never_delete_globs_ignore_case() {
        let (dir, workspace) = repo();
        fs::create_dir_all(dir.path().join("MIGRATIONS")).unwrap();
        fs::write(dir.path().join("MIGRATIONS/002.txt"), "ALTER TABLE t;\n").unwrap();
        let reply = "--- a/MIGRATIONS/002.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-ALTER TABLE t;\n";
        let decision = check(&workspace, reply, true);
        assert_eq!(
            violated(&decision),
            [(Rule::NeverDelete, "MIGRATIONS/002.txt", None)]
        );
        assert_eq!(
            decision.violations[0].pattern.as_deref(),
            Some("migrations/**")
        );
    }

    #[test]
    fn a_header_only_deletion_counts_the_lines_it_deletes() {
        let (dir, workspace) = repo();
        fs::write(dir.path().join("big.txt"), "line\n".repeat(2000)).unwrap();
        let reply =
            "diff --git a/big.txt b/big.txt\ndeleted file mode 100644\nindex 3b18e51..0000000\n";
        let decision = check(&workspace, reply, false);
        assert_eq!((decision.lines_added, decision.lines_removed), (0, 2000));
        assert_eq!(violated(&decision), [(Rule::MaxChangedLines, "", None)]);
        assert_eq!(
            decision.violations[0].message,
            "the patch changes 2000 lines (0 added, 2000 removed); the limit is 6"
        );
    }

    #[test]
    fn protected_tests_keep_their_files_assertions_and_runs() {
        let (dir, workspace) = repo();
        fs::create_dir_all(dir.path().join("tests")).unwrap();
        fs::write(
            dir.path().join("tests/test_sum.py"),
            "from app import add\n\ndef test_sum():\n    total = add(1, 2)\n    assert total == 3\n",
        )
        .unwrap();
        let protect = |reply: &str| {
            let decision = check(&workspace, reply, true);
            decision
                .violations
                .iter()
                .filter(|v| v.rule == Rule::Protect)
                .map(|v| v.message.clone())
                .collect::<Vec<_>>()
        };
        let deleted = protect(
            "diff --git a/tests/test_sum.py b/tests/test_sum.py\ndeleted file mode 100644\n",
        );
        assert_eq!(
            deleted,
            ["the patch deletes a file protected by `protect` glob `tests/**`"]
        );
        let emptied = protect(
            "--- a/tests/test_sum.py\n+++ b/tests/test_sum.py\n@@ @@\n-from app import add\n-\n-def test_sum():\n-    total = add(1, 2)\n-    assert total == 3\n+\u{a0}\n",
        );
        assert_eq!(
            emptied,
            ["the patch empties a file protected by `protect` glob `tests/**`"]
        );
        let weakened = protect(
            "--- a/tests/test_sum.py\n+++ b/tests/test_sum.py\n@@ @@\n     total = add(1, 2)\n-    assert total == 3\n+    assert total == 4\n",
        );
        assert_eq!(
            weakened,
            [
                "the patch removes or changes the assertion `assert total == 3` (line 5 before the patch) in a file protected by `protect` glob `tests/**`"
            ]
        );
        let skipped = protect(
            "--- a/tests/test_sum.py\n+++ b/tests/test_sum.py\n@@ @@\n \n+@pytest.mark.skip\n def test_sum():\n",
        );
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        // A fix that keeps every assertion is the fixer's business.
        let fine = protect(
            "--- a/tests/test_sum.py\n+++ b/tests/test_sum.py\n@@ @@\n-from app import add\n+from app.math import add\n",
        );
        assert!(fine.is_empty(), "{fine:?}");
    }

    #[test]
    fn confirmation_counts_occurrences_per_file_before_and_after() {
        let (dir, workspace) = repo();
        fs::write(
            dir.path().join("cleanup.sql"),
            "SELECT 1;\n/*\nDROP TABLE sessions;\n*/\n",
        )
        .unwrap();
        fs::create_dir_all(dir.path().join("attic")).unwrap();
        fs::write(dir.path().join("attic/old.txt"), "drop table users;\n").unwrap();
        let policy = Policy::new(PolicyConfig {
            protect: Vec::new(),
            ..PolicyConfig::default()
        })
        .unwrap();
        let needs = |reply: &str| {
            let decision = policy.check(&parse(reply).unwrap(), &workspace, false);
            decision
                .violations
                .iter()
                .map(|v| {
                    (
                        v.rule,
                        v.file.clone(),
                        v.line,
                        v.pattern.clone().unwrap_or_default(),
                    )
                })
                .collect::<Vec<_>>()
        };
        // The comment around a DROP removed: no added line holds it, but it is live now.
        let uncommented = needs(
            "--- a/cleanup.sql\n+++ b/cleanup.sql\n@@ @@\n SELECT 1;\n-/*\n DROP TABLE sessions;\n-*/\n",
        );
        assert_eq!(
            uncommented,
            [(
                Rule::RequireConfirmation,
                "cleanup.sql".to_owned(),
                Some(2),
                DEFAULT_CONFIRMATION[1].to_owned()
            )]
        );
        // A file holding a DROP renamed into place.
        let renamed = needs(
            "diff --git a/attic/old.txt b/migrations/002.sql\nrename from attic/old.txt\nrename to migrations/002.sql\n",
        );
        assert_eq!(renamed.len(), 1, "{renamed:?}");
        assert_eq!(
            (renamed[0].1.as_str(), renamed[0].2),
            ("migrations/002.sql", Some(1))
        );
        // The other spellings.
        let fr = needs("--- a/app.sh\n+++ b/app.sh\n@@ @@\n echo hi\n+rm -fr /var/lib/app\n");
        assert_eq!(fr.len(), 1, "{fr:?}");
        assert_eq!(fr[0].2, Some(2));
        // Removing one is fine.
        let removal = "--- a/schema.sql\n+++ b/schema.sql\n@@ @@\n CREATE TABLE s (id int);\n-DROP TABLE old;\n";
        assert!(needs(removal).is_empty());
    }

    #[test]
    fn confirmation_patterns_may_be_regular_expressions() {
        let (_dir, workspace) = repo();
        let policy = Policy::new(PolicyConfig {
            require_confirmation: vec![r"re:\bhelm\s+uninstall\b".into()],
            protect: Vec::new(),
            ..PolicyConfig::default()
        })
        .unwrap();
        let decision = |line: &str| {
            let reply = format!("--- a/app.sh\n+++ b/app.sh\n@@ @@\n echo hi\n+{line}\n");
            policy
                .check(&parse(&reply).unwrap(), &workspace, false)
                .verdict
        };
        assert_eq!(decision("HELM  Uninstall fleet"), Verdict::NeedsApproval);
        assert_eq!(decision("helm upgrade fleet ."), Verdict::Allow);
    }
}
