//! The deterministic patch policy: rules checked before the reviewer sees a patch, which no
//! model can override. Every check, passed or not, goes into the [`PolicyDecision`] for the
//! audit log.

use std::fmt;
use std::path::{Component, Path};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::apply::plan;
use super::diff::{LineKind, Patch};
use super::workspace::{PathViolation, Workspace};

/// The policy's settings, from the workflow's `safety` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Globs of files a patch may never delete, rename away or empty.
    pub never_delete: Vec<String>,
    /// Substrings that, in an added line, need a human's approval (matched case-insensitively,
    /// so `DROP` also catches `drop table`).
    pub require_confirmation: Vec<String>,
    pub max_files: usize,
    /// Added plus removed lines.
    pub max_changed_lines: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            never_delete: Vec::new(),
            require_confirmation: Vec::new(),
            max_files: 20,
            max_changed_lines: 500,
        }
    }
}

impl PolicyConfig {
    /// The policy a workflow's `safety` section asks for, with the default size limits.
    pub fn from_safety(safety: &crate::workflow::model::Safety) -> Self {
        let values = |list: &[crate::workflow::span::Spanned<String>]| {
            list.iter().map(|item| item.value.clone()).collect()
        };
        Self {
            never_delete: values(&safety.never_delete),
            require_confirmation: values(&safety.require_confirmation),
            ..Self::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid `never_delete` glob `{glob}`")]
pub struct PolicyError {
    pub glob: String,
    #[source]
    pub source: globset::Error,
}

/// A [`PolicyConfig`] with its globs compiled.
#[derive(Clone, Debug)]
pub struct Policy {
    config: PolicyConfig,
    never_delete: Vec<(String, GlobSet)>,
    /// `require_confirmation` patterns, lowercased once.
    confirmation: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    PathInsideRepo,
    NoGitDir,
    NoBinary,
    NeverDelete,
    MaxFiles,
    MaxChangedLines,
    RequireConfirmation,
}

const RULES: [Rule; 7] = [
    Rule::PathInsideRepo,
    Rule::NoGitDir,
    Rule::NoBinary,
    Rule::NeverDelete,
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
        let never_delete = config
            .never_delete
            .iter()
            .map(|glob| {
                let compiled = Glob::new(glob)
                    .and_then(|compiled| GlobSetBuilder::new().add(compiled).build())
                    .map_err(|source| PolicyError {
                        glob: glob.clone(),
                        source,
                    })?;
                Ok((glob.clone(), compiled))
            })
            .collect::<Result<_, PolicyError>>()?;
        let confirmation = config
            .require_confirmation
            .iter()
            .filter(|pattern| !pattern.is_empty())
            .map(|pattern| (pattern.clone(), pattern.to_lowercase()))
            .collect();
        Ok(Self {
            config,
            never_delete,
            confirmation,
        })
    }

    /// Checks `patch` against every rule. `human_approved` is the `--approve` flag.
    pub fn check(
        &self,
        patch: &Patch,
        workspace: &Workspace,
        human_approved: bool,
    ) -> PolicyDecision {
        let mut violations = Vec::new();
        self.check_paths(patch, workspace, &mut violations);
        self.check_never_delete(patch, workspace, &mut violations);
        self.check_limits(patch, &mut violations);
        self.check_confirmation(patch, workspace, &mut violations);

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
        let (lines_added, lines_removed) = patch.changed_line_counts();
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
                if let Err(violation) = workspace.resolve(path) {
                    let rule = if violation == PathViolation::GitDir {
                        Rule::NoGitDir
                    } else {
                        Rule::PathInsideRepo
                    };
                    violations.push(Violation {
                        rule,
                        file: path.clone(),
                        line: None,
                        pattern: None,
                        message: violation.to_string(),
                    });
                }
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

    fn protected_by(&self, path: &str) -> Option<&str> {
        let normalized = normalize(path);
        self.never_delete
            .iter()
            .find(|(_, set)| set.is_match(&normalized))
            .map(|(glob, _)| glob.as_str())
    }

    fn check_never_delete(
        &self,
        patch: &Patch,
        workspace: &Workspace,
        violations: &mut Vec<Violation>,
    ) {
        let mut flag = |path: &str, what: &str| {
            if let Some(glob) = self.protected_by(path) {
                violations.push(Violation {
                    rule: Rule::NeverDelete,
                    file: path.to_owned(),
                    line: None,
                    pattern: Some(glob.to_owned()),
                    message: format!(
                        "the patch {what} a file protected by `never_delete` glob `{glob}`"
                    ),
                });
            }
        };
        for file in &patch.files {
            if let Some(old) = &file.old_path {
                if file.is_deletion() {
                    flag(old, "deletes");
                } else if file.is_rename() {
                    flag(old, "renames away");
                }
            }
        }
        // Emptying is only visible in the result, so compute it; a patch that does not apply
        // cannot empty anything (applying it fails the same way).
        if let Ok(plan) = plan(patch, workspace) {
            for file in plan.files() {
                let emptied = file
                    .after
                    .as_deref()
                    .is_some_and(|after| after.iter().all(u8::is_ascii_whitespace));
                let had_content = file
                    .before
                    .as_deref()
                    .is_some_and(|before| !before.iter().all(u8::is_ascii_whitespace));
                if emptied && had_content {
                    flag(&file.path, "empties");
                }
            }
        }
    }

    fn check_limits(&self, patch: &Patch, violations: &mut Vec<Violation>) {
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
        let (added, removed) = patch.changed_line_counts();
        if added + removed > self.config.max_changed_lines {
            violations.push(Violation {
                rule: Rule::MaxChangedLines,
                file: String::new(),
                line: None,
                pattern: None,
                message: format!(
                    "the patch changes {} lines ({added} added, {removed} removed); the limit is {}",
                    added + removed,
                    self.config.max_changed_lines
                ),
            });
        }
    }

    /// Patterns in added lines only: removing a `DROP TABLE` is not dangerous, adding one is.
    fn check_confirmation(
        &self,
        patch: &Patch,
        workspace: &Workspace,
        violations: &mut Vec<Violation>,
    ) {
        if self.confirmation.is_empty() {
            return;
        }
        let placements = plan(patch, workspace)
            .map(|plan| plan.placements().to_vec())
            .unwrap_or_default();
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
                    let lowered = line.text.to_lowercase();
                    for (pattern, lowered_pattern) in &self.confirmation {
                        if lowered.contains(lowered_pattern.as_str()) {
                            violations.push(Violation {
                                rule: Rule::RequireConfirmation,
                                file: file.display_path().to_owned(),
                                line: line_number,
                                pattern: Some(pattern.clone()),
                                message: format!(
                                    "an added line matches `{pattern}`, which needs human approval"
                                ),
                            });
                        }
                    }
                }
            }
        }
    }
}

/// `./a//b` and `a/b` are the same file to a glob.
fn normalize(path: &str) -> String {
    let parts: Vec<String> = Path::new(path)
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    parts.join("/")
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
            max_files: 3,
            max_changed_lines: 6,
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
    fn config_comes_from_the_workflow_safety_section() {
        use crate::workflow::model::Safety;
        use crate::workflow::span::Spanned;
        let safety = Safety {
            never_delete: vec![Spanned::detached("*.sql".to_owned())],
            require_confirmation: vec![Spanned::detached("DROP".to_owned())],
            ..Safety::default()
        };
        let config = PolicyConfig::from_safety(&safety);
        assert_eq!(
            (config.never_delete, config.require_confirmation),
            (vec!["*.sql".to_owned()], vec!["DROP".to_owned()])
        );
        assert_eq!(config.max_files, PolicyConfig::default().max_files);
    }

    #[test]
    fn invalid_globs_are_reported() {
        let config = PolicyConfig {
            never_delete: vec!["a[".into()],
            ..PolicyConfig::default()
        };
        assert_eq!(
            Policy::new(config).unwrap_err().to_string(),
            "invalid `never_delete` glob `a[`"
        );
    }
}
