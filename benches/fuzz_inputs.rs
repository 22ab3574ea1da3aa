//! `cargo bench --bench fuzz_inputs [-- --seconds N --seed S]`: the mutation fuzzer of
//! `tests/integration/support/fuzz.rs` for N seconds per target (default 60), on the workflow
//! loader and on the diff parser with the plan and the policy behind it. Prints inputs run,
//! crashes, the slowest input, and the harness's own rate (mutations alone) beside each
//! target's. Exits non-zero on a crash; a hang stops the process (exit 2) with the input saved.
#![expect(clippy::print_stdout, reason = "the table is the benchmark's output")]
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark that cannot run should stop loudly"
)]

#[path = "../tests/integration/support/fuzz.rs"]
mod fuzz;
#[path = "../tests/integration/support/patch_corpus.rs"]
#[expect(
    dead_code,
    reason = "the fuzzer uses the corpus's seeds, not its judging"
)]
mod patch_corpus;

use std::time::{Duration, Instant};

use fuzz::{Budget, Report, Rng, mutate};

fn argument(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1))
        .and_then(|value| value.parse().ok())
}

/// Mutations per second with no target: what the harness alone can do.
fn harness_rate(seeds: &[String], seed: u64) -> f64 {
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut made = 0_u64;
    while started.elapsed() < Duration::from_secs(1) {
        std::hint::black_box(mutate(seeds, &mut rng));
        made += 1;
    }
    made as f64 / started.elapsed().as_secs_f64()
}

fn row(target: &str, report: &Report, harness: f64) -> String {
    format!(
        "| {target:<37} | {:>9} | {:>7} | {:>9.1?} | {:>9.0} | {:>9.0} |",
        report.inputs,
        report.crashes.len(),
        report.slowest,
        report.rate(),
        harness
    )
}

fn main() {
    let seconds = argument("--seconds").unwrap_or(60);
    let seed = argument("--seed").unwrap_or(1);
    let budget = Budget {
        inputs: u64::MAX,
        time: Duration::from_secs(seconds),
    };
    let dir = tempfile::tempdir().unwrap();
    let workflow_dir = dir.path().join("workflow");
    let diff_dir = dir.path().join("diff");
    let workflow_seeds = fuzz::workflow_seeds(&workflow_dir);
    let cases = patch_corpus::corpus()
        .into_iter()
        .map(|case| (case.files, case.diff));
    let diff_seeds = fuzz::diff_seeds(&diff_dir, cases);

    let workflows = fuzz::workflows(&workflow_dir, &workflow_seeds, budget, seed);
    let diffs = fuzz::diffs(&diff_dir, &diff_seeds, budget, seed);

    println!("fuzz_inputs: {seconds} s per target, seed {seed}");
    println!(
        "| {:<37} | {:>9} | {:>7} | {:>9} | {:>9} | {:>9} |",
        "target", "inputs", "crashes", "slowest", "inputs/s", "harness/s"
    );
    println!(
        "|{}|",
        [
            "-".repeat(39),
            "-".repeat(11),
            "-".repeat(9),
            "-".repeat(11),
            "-".repeat(11),
            "-".repeat(11)
        ]
        .join("|")
    );
    println!(
        "{}",
        row(
            "workflow loader (templates, validate)",
            &workflows,
            harness_rate(&workflow_seeds, seed)
        )
    );
    println!(
        "{}",
        row(
            "diff parser + plan + policy",
            &diffs,
            harness_rate(&diff_seeds, seed)
        )
    );
    let crashes: Vec<_> = workflows.crashes.iter().chain(&diffs.crashes).collect();
    for (input, message) in crashes.iter().take(3) {
        println!("\ncrash: {message}\ninput: {input:?}");
    }
    if !crashes.is_empty() {
        std::process::exit(1);
    }
}
