//! Interpreter overhead: workflows of `true` gates, run by the real binary.
//!
//! Two figures, both from medians of interleaved runs (a busy moment weighs on every side
//! alike):
//! - per step: what one more step costs beyond spawning its shell,
//!   `((T(20 steps) − T(1 step)) − (S(20 spawns) − S(1 spawn))) / 19`;
//! - start-up and reports: `T(1 step) − S(1 spawn)`, paid once per run (YAML load, validation,
//!   runtime, and the reports written and synced to disk at the end).
//!
//! Peak RSS is the largest resident set of the agent-orch processes (getrusage of the waited-for
//! children, agent-orch being larger than any shell it starts).
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
    let many = write_workflow(dir.path(), STEPS);
    let one = write_workflow(dir.path(), 1);
    let binary = env!("CARGO_BIN_EXE_agent-orch");

    let mut samples = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for run in 0..RUNS {
        for (index, workflow) in [&one, &many].into_iter().enumerate() {
            let artifacts = dir.path().join(format!("run-{run}-{index}"));
            samples[index].push(time(
                Command::new(binary)
                    .args(["run", "--quiet", "--color", "never", "--artifacts"])
                    .arg(&artifacts)
                    .arg(workflow),
            ));
        }
        samples[2].push(spawns(1));
        samples[3].push(spawns(STEPS));
    }
    let peak_rss_mib = children_peak_rss_mib();
    let [ours_one, ours_many, spawn_one, spawn_many] = samples.map(median);

    let per_step = (ours_many.saturating_sub(ours_one))
        .saturating_sub(spawn_many.saturating_sub(spawn_one))
        / (STEPS as u32 - 1);
    let fixed = ours_one.saturating_sub(spawn_one);
    let verdict = |ok: bool| if ok { "ok" } else { "OVER THE FLOOR" };
    let lines = [
        format!("{RUNS} interleaved runs each, medians"),
        format!(
            "agent-orch run, {STEPS} `true` gates:  {:>7.1} ms",
            ms(ours_many)
        ),
        format!(
            "agent-orch run, 1 `true` gate:     {:>7.1} ms",
            ms(ours_one)
        ),
        format!(
            "{STEPS} x `sh -c true`:               {:>7.1} ms",
            ms(spawn_many)
        ),
        format!(
            "1 x `sh -c true`:                 {:>7.1} ms",
            ms(spawn_one)
        ),
        format!(
            "overhead per step:                {:>7.2} ms  (floor 2 ms: {})",
            ms(per_step),
            verdict(per_step <= MAX_OVERHEAD_PER_STEP)
        ),
        format!("start-up and reports, once a run: {:>7.1} ms", ms(fixed)),
        format!(
            "peak RSS of agent-orch:           {:>7.1} MiB (floor {MAX_RSS_MIB} MiB: {})",
            peak_rss_mib,
            verdict(peak_rss_mib <= MAX_RSS_MIB)
        ),
    ];
    #[expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]
    for line in lines {
        println!("{line}");
    }
}

fn write_workflow(dir: &Path, steps: usize) -> std::path::PathBuf {
    let path = dir.join(format!("overhead-{steps}.yaml"));
    let body: String = (1..=steps)
        .map(|i| format!("  - {{id: step{i}, gate: \"true\"}}\n"))
        .collect();
    std::fs::write(&path, format!("name: overhead\nsteps:\n{body}")).expect("write workflow");
    path
}

fn spawns(count: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..count {
        let status = Command::new("/bin/sh")
            .args(["-c", "true"])
            .status()
            .expect("sh runs");
        assert!(status.success());
    }
    start.elapsed()
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

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
