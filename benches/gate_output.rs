//! Runs one gate step that prints a lot, with echo off and a log file, and reports its time
//! and this process's peak memory. `bench/gate-output.sh` compares it with `tee`.
//!
//! Usage: `cargo bench --bench gate_output -- COMMAND LOG_PATH`
//! Prints one line: `elapsed_s=<seconds> peak_rss_kib=<KiB> status=<status> message=<message>`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use agent_orch::steps::gate::GateConfig;
use agent_orch::steps::{RunInfo, StepContext, StepStatus};
use agent_orch::workflow::model::{Step, StepKind};
use agent_orch::workflow::span::{Span, Spanned};
use agent_orch::workflow::template::{Renderer, Template};
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    let (Some(command), Some(log_path)) = (args.next(), args.next()) else {
        let _ = writeln!(std::io::stderr(), "usage: gate_output COMMAND LOG_PATH");
        return std::process::ExitCode::from(2);
    };
    let config = GateConfig {
        run: Template(Spanned::detached(command)),
        shell: None,
        workdir: None,
        env: IndexMap::new(),
    };
    let step = Step {
        id: Spanned::detached("bench".to_owned()),
        name: None,
        kind: StepKind::Gate(config.clone()),
        required: true,
        condition: None,
        timeout: None,
        retries: 0,
        span: Span::detached(),
    };
    let run = RunInfo {
        run_id: "bench".to_owned(),
        iteration: 1,
        workdir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        artifacts_dir: PathBuf::from(&log_path)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
    };
    let renderer = Renderer::new(serde_json::json!({}));
    let ctx = StepContext {
        step: &step,
        run: &run,
        renderer: &renderer,
        log_path: PathBuf::from(log_path),
        echo: false,
        cancel: CancellationToken::new(),
        timeout: None,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "failed to start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let outcome = runtime.block_on(agent_orch::steps::gate::run(&config, &ctx));
    let elapsed = started.elapsed();
    let _ = writeln!(
        std::io::stdout(),
        "elapsed_s={:.3} peak_rss_kib={} status={:?} message={}",
        elapsed.as_secs_f64(),
        peak_rss_kib().map_or_else(|| "unknown".to_owned(), |kib| kib.to_string()),
        outcome.status,
        outcome.message,
    );
    if outcome.status == StepStatus::Passed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// Peak resident set size of this process (what getrusage's `ru_maxrss` reports), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
