//! The words that go with a fix: the commit message and the pull request's description.

use std::fmt::Write as _;

use super::Delivery;

/// The whole description, in the run's artifacts folder.
pub(super) const FILE_NAME: &str = "pull-request.md";

/// The commit message: the title, the failure each patch fixed and where the evidence is.
pub(super) fn commit_message(title: &str, delivery: &Delivery) -> String {
    let mut message = format!("{title}\n\n");
    for patch in &delivery.patches {
        let _ = writeln!(
            message,
            "Fixes: {} (iteration {}, patch sha256 {})",
            patch.fixed, patch.iteration, patch.patch_sha256
        );
    }
    let _ = writeln!(message, "Run: {}", delivery.run_id);
    if let Some(head) = &delivery.audit_head {
        let _ = writeln!(message, "Audit: audit.jsonl head sha256 {head}");
    }
    message
}

/// The description as Markdown: the summary, a link to the run, then each patch with the
/// reviewer's verdict and its diff.
pub(super) fn full(delivery: &Delivery, run_link: Option<&str>) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "agent-orch fixed `{}` in workflow `{}`{}.\n",
        delivery.fixed(),
        delivery.workflow,
        delivery
            .environment
            .as_deref()
            .map(|env| format!(" on `{env}`"))
            .unwrap_or_default()
    );
    let _ = writeln!(text, "**Outcome:** {}\n", delivery.summary);
    match run_link {
        Some(link) => {
            let _ = writeln!(text, "**Run:** [{}]({link})", delivery.run_id);
        }
        None => {
            let _ = writeln!(text, "**Run:** `{}`", delivery.run_id);
        }
    }
    if let Some(head) = &delivery.audit_head {
        let _ = writeln!(text, "**Audit:** `audit.jsonl` head sha256 `{head}`");
    }
    for (number, patch) in delivery.patches.iter().enumerate() {
        let _ = writeln!(
            text,
            "\n### Patch {} (iteration {}): fixes `{}`\n",
            number + 1,
            patch.iteration,
            patch.fixed
        );
        let files: Vec<String> = patch.files.iter().map(|f| format!("`{f}`")).collect();
        let _ = writeln!(text, "Files: {}  ", files.join(", "));
        let _ = writeln!(
            text,
            "Reviewer: {}  ",
            patch.verdict.as_deref().map_or_else(
                || "no review step (applied on the policy's allow)".to_owned(),
                |r| format!("approved: {r}")
            )
        );
        let _ = writeln!(
            text,
            "Diff: `{}` (sha256 `{}`)\n",
            patch.diff_path, patch.patch_sha256
        );
        let fence = fence_for(&patch.diff);
        let _ = writeln!(text, "{fence}diff\n{}\n{fence}", patch.diff.trim_end());
    }
    text
}

/// `text` cut to `limit` characters, ending with where the rest is.
pub(super) fn cut(text: &str, limit: usize, service: &str, run_id: &str) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let pointer = format!(
        "\n\n… cut to the {limit}-character limit of {service}: the whole description is \
         `{FILE_NAME}` in the run's artifacts (`agent-orch-{run_id}`)."
    );
    let keep = limit.saturating_sub(pointer.chars().count());
    let mut cut: String = text.chars().take(keep).collect();
    cut.push_str(&pointer);
    cut
}

/// A backtick fence longer than any run of backticks in `text`, so a diff cannot close it.
fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::pull_request::DeliveredPatch;

    fn delivery() -> Delivery {
        Delivery {
            run_id: "run-1".to_owned(),
            workflow: "fleet-deploy".to_owned(),
            environment: Some("staging".to_owned()),
            summary: "all steps passed after 2 iteration(s)".to_owned(),
            patches: vec![DeliveredPatch {
                iteration: 1,
                fixed: "test: exit code 1".to_owned(),
                files: vec!["src/greet.sh".to_owned()],
                diff: "--- a/src/greet.sh\n+++ b/src/greet.sh\n@@ -1 +1 @@\n-```\n+x\n".to_owned(),
                diff_path: "patches/iteration-1.diff".to_owned(),
                patch_sha256: "ab12".to_owned(),
                verdict: Some("fixes the typo".to_owned()),
            }],
            audit_head: Some("cafe".to_owned()),
        }
    }

    #[test]
    fn the_description_holds_the_summary_the_link_each_patch_and_its_verdict() {
        let text = full(
            &delivery(),
            Some("https://dev.azure.com/o/p/_build/results?buildId=7"),
        );
        for expected in [
            "agent-orch fixed `test: exit code 1` in workflow `fleet-deploy` on `staging`.",
            "**Outcome:** all steps passed after 2 iteration(s)",
            "**Run:** [run-1](https://dev.azure.com/o/p/_build/results?buildId=7)",
            "**Audit:** `audit.jsonl` head sha256 `cafe`",
            "### Patch 1 (iteration 1): fixes `test: exit code 1`",
            "Reviewer: approved: fixes the typo",
            "````diff\n--- a/src/greet.sh",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn a_long_description_is_cut_to_the_limit_with_a_pointer() {
        let text = "é".repeat(5000);
        let cut = cut(&text, 4000, "Azure Repos", "run-1");
        assert_eq!(cut.chars().count(), 4000);
        assert!(
            cut.ends_with("`pull-request.md` in the run's artifacts (`agent-orch-run-1`)."),
            "{cut}"
        );
        assert_eq!(super::cut("short", 4000, "Azure Repos", "run-1"), "short");
    }

    #[test]
    fn the_commit_message_names_the_failure_and_the_audit_head() {
        let message = commit_message("agent-orch: fix test", &delivery());
        assert_eq!(
            message,
            "agent-orch: fix test\n\nFixes: test: exit code 1 (iteration 1, patch sha256 ab12)\nRun: run-1\nAudit: audit.jsonl head sha256 cafe\n"
        );
    }
}
