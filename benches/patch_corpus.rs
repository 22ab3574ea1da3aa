//! `cargo bench --bench patch_corpus`: agent-orch's patch application against `git apply` and
//! GNU `patch` on the corpus of imperfect LLM-style diffs, as a table of correct / refused /
//! wrong rates (wrong = a file ended up different from the intent, including partial
//! application). The external tools get the diff with markdown fences stripped, since they
//! would otherwise fail on them trivially; agent-orch gets the reply as is.
//!
//! Then the same for each other edit format agent-orch reads (V4A, SEARCH/REPLACE, whole
//! files), on corpora of the same real edits written in that format with its own imperfections.
//! No standard command-line tool applies those formats, so only agent-orch has a row.
#![expect(clippy::print_stdout, reason = "the table is the benchmark's output")]
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark that cannot run should stop loudly"
)]

#[path = "../tests/integration/support/patch_corpus.rs"]
mod patch_corpus;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_orch::patch::EditFormat;
use patch_corpus::{
    ALL_IMPERFECTIONS, Case, Expected, Outcome, corpus, format_corpus, imperfections_of, judge,
    materialize, run_ours,
};

#[derive(Default)]
struct Tally {
    correct: usize,
    refused: usize,
    wrong: usize,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Correct => self.correct += 1,
            Outcome::Refused => self.refused += 1,
            Outcome::Wrong => self.wrong += 1,
        }
    }

    fn row(&self, name: &str) -> String {
        let total = (self.correct + self.refused + self.wrong).max(1) as f64;
        let pct = |n: usize| 100.0 * n as f64 / total;
        format!(
            "| {name:<44} | {:>6.1}% | {:>6.1}% | {:>6.1}% |",
            pct(self.correct),
            pct(self.refused),
            pct(self.wrong)
        )
    }
}

/// The diff as an external tool should get it: the fenced part only, when there is a fence.
fn strip_fences(diff: &str) -> String {
    let mut inside = false;
    let mut fenced = String::new();
    for line in diff.split_inclusive('\n') {
        if line.starts_with("```") {
            inside = !inside;
        } else if inside {
            fenced.push_str(line);
        }
    }
    if fenced.is_empty() {
        diff.to_owned()
    } else {
        fenced
    }
}

fn run_external(case: &Case, program: &str, args: &[&str]) -> Outcome {
    let repo = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    materialize(case, repo.path());
    let diff_file = scratch.path().join("fix.diff");
    std::fs::write(&diff_file, strip_fences(&case.diff)).unwrap();
    let status = Command::new(program)
        .args(args)
        .arg(&diff_file)
        .current_dir(repo.path())
        // Keep git from looking for a repository above the temp dir.
        .env(
            "GIT_CEILING_DIRECTORIES",
            repo.path().parent().unwrap_or(Path::new("/")),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if status.is_err() {
        return Outcome::Refused;
    }
    judge(case, repo.path())
}

fn main() {
    let cases = corpus();
    let should_apply = cases
        .iter()
        .filter(|c| matches!(c.expected, Expected::Changes(_)))
        .count();
    println!(
        "patch corpus: {} cases ({should_apply} to apply, {} to refuse)\n",
        cases.len(),
        cases.len() - should_apply
    );
    type Runner = Box<dyn Fn(&Case) -> Outcome>;
    let tools: Vec<(&str, Runner)> = vec![
        ("agent-orch (reply as is)", Box::new(run_ours)),
        (
            "git apply",
            Box::new(|c: &Case| run_external(c, "git", &["apply"])),
        ),
        (
            "git apply --recount --ignore-whitespace",
            Box::new(|c: &Case| {
                run_external(c, "git", &["apply", "--recount", "--ignore-whitespace"])
            }),
        ),
        (
            "patch -p1 --fuzz=3",
            Box::new(|c: &Case| {
                let args = [
                    "-p1",
                    "--fuzz=3",
                    "--batch",
                    "--forward",
                    "--no-backup-if-mismatch",
                    "-i",
                ];
                run_external(c, "patch", &args)
            }),
        ),
    ];
    println!("| {:<44} | correct | refused |   wrong |", "tool");
    println!("|{}|---------|---------|---------|", "-".repeat(46));
    let mut our_time = Duration::ZERO;
    let mut outcomes: Vec<Vec<Outcome>> = Vec::new();
    for (name, run) in &tools {
        let mut tally = Tally::default();
        let mut per_case = Vec::new();
        for case in &cases {
            let started = Instant::now();
            let outcome = run(case);
            if outcomes.is_empty() {
                our_time += started.elapsed();
            }
            tally.add(outcome);
            per_case.push(outcome);
        }
        println!("{}", tally.row(name));
        outcomes.push(per_case);
    }

    println!("\ncorrect % by case group (a case with several imperfections counts in each):\n");
    let header: Vec<String> = tools
        .iter()
        .map(|(name, _)| format!("{:>10}", short(name)))
        .collect();
    println!(
        "| {:<28} | {:>5} | {} |",
        "group",
        "cases",
        header.join(" | ")
    );
    type Member = Box<dyn Fn(&Case) -> bool>;
    let mut groups: Vec<(String, Member)> = vec![
        (
            "must apply".into(),
            Box::new(|c: &Case| matches!(c.expected, Expected::Changes(_))),
        ),
        (
            "must refuse".into(),
            Box::new(|c: &Case| matches!(c.expected, Expected::Refusal)),
        ),
        (
            "clean diff (no imperfection)".into(),
            Box::new(|c: &Case| {
                c.imperfections.is_empty() && matches!(c.expected, Expected::Changes(_))
            }),
        ),
    ];
    for imperfection in ALL_IMPERFECTIONS {
        groups.push((
            format!("{imperfection:?}"),
            Box::new(move |c: &Case| c.imperfections.contains(&imperfection)),
        ));
    }
    for (group, member) in &groups {
        let members: Vec<usize> = (0..cases.len()).filter(|&i| member(&cases[i])).collect();
        let cells: Vec<String> = outcomes
            .iter()
            .map(|per_case| {
                let correct = members
                    .iter()
                    .filter(|&&i| per_case[i] == Outcome::Correct)
                    .count();
                format!(
                    "{:>9.1}%",
                    100.0 * correct as f64 / members.len().max(1) as f64
                )
            })
            .collect();
        println!(
            "| {group:<28} | {:>5} | {} |",
            members.len(),
            cells.join(" | ")
        );
    }
    println!(
        "\nagent-orch: {:.2} ms per case (temp repo, parse, plan, atomic write, check)",
        our_time.as_secs_f64() * 1000.0 / cases.len() as f64
    );
    for format in [
        EditFormat::V4a,
        EditFormat::SearchReplace,
        EditFormat::WholeFile,
    ] {
        other_format(format);
    }
}

/// agent-orch on one edit format's corpus, overall and by imperfection.
fn other_format(format: EditFormat) {
    let cases = format_corpus(format);
    let refusals = cases
        .iter()
        .filter(|c| matches!(c.expected, Expected::Refusal))
        .count();
    println!(
        "\n{} corpus: {} cases ({} to apply, {refusals} to refuse)\n",
        format.key(),
        cases.len(),
        cases.len() - refusals
    );
    let started = Instant::now();
    let outcomes: Vec<Outcome> = cases.iter().map(run_ours).collect();
    let elapsed = started.elapsed();
    let mut tally = Tally::default();
    for outcome in &outcomes {
        tally.add(*outcome);
    }
    println!("| {:<44} | correct | refused |   wrong |", "tool");
    println!("|{}|---------|---------|---------|", "-".repeat(46));
    println!("{}", tally.row(&format!("agent-orch ({})", format.key())));
    println!("\n| {:<28} | {:>5} | correct |", "group", "cases");
    let mut groups: Vec<(String, Vec<usize>)> = vec![(
        "clean (no imperfection)".to_owned(),
        (0..cases.len())
            .filter(|&i| {
                cases[i].imperfections.is_empty()
                    && matches!(cases[i].expected, Expected::Changes(_))
            })
            .collect(),
    )];
    for imperfection in imperfections_of(format) {
        groups.push((
            format!("{imperfection:?}"),
            (0..cases.len())
                .filter(|&i| cases[i].imperfections.contains(imperfection))
                .collect(),
        ));
    }
    for (group, members) in groups {
        let correct = members
            .iter()
            .filter(|&&i| outcomes[i] == Outcome::Correct)
            .count();
        println!(
            "| {group:<28} | {:>5} | {:>6.1}% |",
            members.len(),
            100.0 * correct as f64 / members.len().max(1) as f64
        );
    }
    println!(
        "\nagent-orch ({}): {:.2} ms per case (temp repo, parse, plan, atomic write, check)",
        format.key(),
        elapsed.as_secs_f64() * 1000.0 / cases.len().max(1) as f64
    );
}

fn short(tool: &str) -> &str {
    match tool {
        "git apply" => "git apply",
        "git apply --recount --ignore-whitespace" => "git -recnt",
        "patch -p1 --fuzz=3" => "patch -F3",
        _ => "agent-orch",
    }
}
