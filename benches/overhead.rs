//! Interpreter overhead: a workflow of 20 `true` gates, run by the real binary.
//!
//! Overhead per step = (median wall time of `agent-orch run` − median time of spawning
//! `sh -c true` 20 times) / 20. It counts everything agent-orch adds: start-up, YAML load,
//! validation, templating, logs and reports. Peak RSS is the largest resident set of the
//! agent-orch processes (getrusage of waited-for children).
//!
//! Run: `cargo bench --bench overhead`. Floors (issue #2): ≤ 2 ms per step, ≤ 20 MiB RSS.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STEPS: usize = 20;
const RUNS: usize = 21;
const MAX_OVERHEAD_PER_STEP: Duration = Duration::from_millis(2);
const MAX_RSS_MIB: f64 = 20.0;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = dir.path().join("overhead.yaml");
    let steps: String = (1..=STEPS)
        .map(|i| format!("  - {{id: step{i}, gate: \"true\"}}\n"))
        .collect();
    std::fs::write(&workflow, format!("name: overhead\nsteps:\n{steps}")).expect("write workflow");

    let binary = env!("CARGO_BIN_EXE_agent-orch");
    // Interleaved, so a busy moment on the machine weighs on both sides alike.
    let mut ours = Vec::with_capacity(RUNS);
    let mut baseline = Vec::with_capacity(RUNS);
    for run in 0..RUNS {
        let artifacts = dir.path().join(format!("run-{run}"));
        ours.push(time(
            Command::new(binary)
                .args(["run", "--quiet", "--color", "never", "--artifacts"])
                .arg(&artifacts)
                .arg(&workflow),
        ));
        let start = Instant::now();
        for _ in 0..STEPS {
            let status = Command::new("sh")
                .args(["-c", "true"])
                .status()
                .expect("sh runs");
            assert!(status.success());
        }
        baseline.push(start.elapsed());
    }
    // The largest resident set among the waited-for children: agent-orch's (a shell is smaller).
    let peak_rss_mib = children_peak_rss_mib();
    let (ours, baseline) = (median(ours), median(baseline));

    let per_step = ours.saturating_sub(baseline) / STEPS as u32;
    report(&workflow, ours, baseline, per_step, peak_rss_mib);
}

fn time(command: &mut Command) -> Duration {
    let start = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("agent-orch runs");
    let elapsed = start.elapsed();
    assert!(status.success(), "agent-orch run failed: {status}");
    elapsed
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn children_peak_rss_mib() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    // Linux reports kilobytes.
    usage.max_rss() as f64 / 1024.0
}

fn report(workflow: &Path, ours: Duration, baseline: Duration, per_step: Duration, rss: f64) {
    let verdict = |ok: bool| if ok { "ok" } else { "OVER THE FLOOR" };
    let lines = [
        format!(
            "workflow: {} ({STEPS} gates of `true`), {RUNS} runs, medians",
            workflow.display()
        ),
        format!("agent-orch run:            {:>8.1} ms", ms(ours)),
        format!("{STEPS} x `sh -c true`:       {:>8.1} ms", ms(baseline)),
        format!(
            "overhead per step:         {:>8.2} ms  (floor 2 ms: {})",
            ms(per_step),
            verdict(per_step <= MAX_OVERHEAD_PER_STEP)
        ),
        format!(
            "peak RSS of agent-orch:    {:>8.1} MiB (floor {MAX_RSS_MIB} MiB: {})",
            rss,
            verdict(rss <= MAX_RSS_MIB)
        ),
    ];
    #[expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]
    for line in lines {
        println!("{line}");
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
