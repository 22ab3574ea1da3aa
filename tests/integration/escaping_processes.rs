//! No process outlives its step or the run, against the real binary: background jobs and
//! `setsid` daemons are killed at the step's end, and when agent-orch itself is SIGKILLed;
//! temporary files of an interrupted apply are removed at the next start.
//!
//! Each test's processes carry a unique marker argument (`sleep 300.<digits>`), so the search
//! of `/proc` finds them and nothing else, whoever their parent now is.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::cli::Project;
use crate::support::process::{wait_for_file, wait_with_timeout};

/// A `sleep` duration unique to this call: 300 seconds and a fraction no other test uses.
fn marker() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("300.{}{nanos:09}", std::process::id())
}

/// Live processes with `marker` among their arguments.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        // A zombie has an empty command line: it is dead, only not yet reaped.
        if cmdline
            .split(|&byte| byte == 0)
            .any(|arg| arg == marker.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

/// Fails unless no process with `marker` is left within two seconds; kills any it finds.
fn assert_none_left(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left = processes_with(marker);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = processes_with(marker);
    }
    for &pid in &left {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    assert!(left.is_empty(), "still running with {marker}: {left:?}");
}

/// Starts `gate` as the only step, waits for it to create `ready`, then SIGKILLs agent-orch.
fn sigkill_mid_gate(gate: &str, expected: usize, marker: &str) {
    let project = Project::new();
    project.file(
        "w.yaml",
        &format!("name: killed\nsteps:\n  - id: long\n    gate: '{gate}'\n"),
    );
    let artifacts = project.artifacts();
    let mut child = project
        .command(&["run", "w.yaml", "--quiet", "--artifacts"])
        .arg(&artifacts)
        .spawn()
        .unwrap();
    assert!(wait_for_file(
        &project.path().join("ready"),
        Duration::from_secs(20)
    ));
    // Both sleeps have started (the file is written after the first, the second is `exec`ed).
    let deadline = Instant::now() + Duration::from_secs(5);
    while processes_with(marker).len() < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(processes_with(marker).len(), expected, "before the kill");

    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    wait_with_timeout(&mut child, Duration::from_secs(5));
    assert_none_left(marker);
}

#[test]
fn sigkill_of_agent_orch_kills_the_step_command_and_its_background_job() {
    let marker = marker();
    sigkill_mid_gate(
        &format!("sleep {marker} & touch ready; sleep {marker}"),
        2,
        &marker,
    );
}

#[test]
fn sigkill_of_agent_orch_kills_a_setsid_daemon() {
    let marker = marker();
    sigkill_mid_gate(
        &format!("setsid sleep {marker} & touch ready; sleep {marker}"),
        2,
        &marker,
    );
}

/// A gate command that fails while a process with `marker` is alive. Its own command line
/// spells the marker as a pattern that does not match itself.
fn gate_none_alive_with(marker: &str) -> String {
    format!("! {}", gate_one_alive_with(marker))
}

/// A gate command that fails unless a process with `marker` is alive.
fn gate_one_alive_with(marker: &str) -> String {
    format!(
        "grep -qs \"{}\" /proc/[0-9]*/cmdline",
        marker.replacen('.', "[.]", 1)
    )
}

#[test]
fn the_end_of_a_step_kills_what_it_left_in_the_background() {
    let marker = marker();
    let project = Project::new();
    // Neither holds the output open, so nothing but the clean-up would stop them; the next
    // step checks they are gone before it starts.
    project.file(
        "w.yaml",
        &format!(
            "name: leftovers\nsteps:\n  - id: spawn\n    gate: 'setsid sleep {marker} >/dev/null 2>&1 & nohup sleep {marker} >/dev/null 2>&1 & sleep 0.2'\n  - id: after\n    gate: '{} && touch after-ran'\n",
            gate_none_alive_with(&marker)
        ),
    );
    let result = project.run_workflow("w.yaml", &[]);
    result.assert_code(0);
    assert!(project.path().join("after-ran").exists());
    assert_none_left(&marker);
}

#[test]
fn the_end_of_a_step_spares_a_service_still_running() {
    let service = marker();
    let leftover = marker();
    let project = Project::new();
    // The gate's daemon is killed when the gate ends, the service's process is not.
    project.file(
        "w.yaml",
        &format!(
            "name: side-by-side\nsteps:\n  - id: serve\n    service: {{run: 'sleep {service}'}}\n  - id: spawn\n    gate: 'setsid sleep {leftover} >/dev/null 2>&1 & sleep 0.2'\n  - id: check\n    gate: '{} && {} && touch checked'\n",
            gate_one_alive_with(&service),
            gate_none_alive_with(&leftover)
        ),
    );
    let result = project.run_workflow("w.yaml", &[]);
    result.assert_code(0);
    assert!(project.path().join("checked").exists());
    assert_none_left(&service);
    assert_none_left(&leftover);
}

#[test]
fn a_start_removes_the_temporary_files_of_an_interrupted_apply() {
    let project = Project::new();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dead = gone.id();
    let live = std::process::id();
    let stale = format!("src/.app.rs.agent-orch-{dead}-0.tmp");
    let in_use = format!("src/.lib.rs.agent-orch-{live}-0.tmp");
    project
        .file("src/app.rs", "fn main() {}\n")
        .file(&stale, "half a patch")
        .file(&in_use, "another run's patch")
        .file("w.yaml", "name: tidy\nsteps:\n  - {id: ok, gate: 'true'}\n");

    project.run_workflow("w.yaml", &[]).assert_code(0);

    assert!(!exists(project.path(), &stale), "stale temp file kept");
    assert!(
        exists(project.path(), &in_use),
        "a live writer's file was removed"
    );
    assert_eq!(project.read("src/app.rs"), "fn main() {}\n");
}

fn exists(root: &Path, relative: &str) -> bool {
    root.join(relative).exists()
}
