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
        let files = patch.files.len();
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
