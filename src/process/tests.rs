//! Real commands through `sh`: exits, output capture, and the process-group guarantees.

#![cfg(unix)]

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::test_support::SharedBuffer;
use super::*;

/// Tests that assert wall-clock bounds take turns, so the busiest test of this module (a
/// quarter GiB through a pipe) does not eat the time they measure.
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sh(script: &str) -> CommandSpec {
    CommandSpec::shell(Shell::Sh, script)
}

async fn run(spec: &CommandSpec, sink: OutputSink, timeout: Option<Duration>) -> CommandResult {
    run_command(spec, sink, &CancellationToken::new(), timeout)
        .await
        .unwrap()
}

/// Alive means running or sleeping: a zombie (dead, not yet reaped by init) does not count.
fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X') | None)
        }
        Err(_) => false,
    }
}

/// Waits (briefly) for a pid a command wrote to `path`.
async fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn assert_dies_soon(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while is_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn exit_codes_and_success() {
    let passed = run(&sh("true"), OutputSink::new(), None).await;
    assert_eq!(passed.exit, Some(Exit::Code(0)));
    assert!(passed.success());

    let failed = run(&sh("exit 3"), OutputSink::new(), None).await;
    assert_eq!(failed.exit, Some(Exit::Code(3)));
    assert!(!failed.success());
    assert_eq!(failed.exit.unwrap().to_string(), "exit code 3");
}

#[tokio::test]
async fn scripts_stop_at_the_first_failing_command() {
    let result = run(&sh("echo one; false; echo two"), OutputSink::new(), None).await;
    assert_eq!(result.exit, Some(Exit::Code(1)));
    assert_eq!(result.tail, "one\n");
}

#[tokio::test]
async fn bash_fails_a_pipeline_whose_first_command_fails() {
    let script = "false | true";
    let sh_result = run(&sh(script), OutputSink::new(), None).await;
    let bash_result = run(
        &CommandSpec::shell(Shell::Bash, script),
        OutputSink::new(),
        None,
    )
    .await;
    assert!(sh_result.success());
    assert_eq!(bash_result.exit, Some(Exit::Code(1)));
}

#[tokio::test]
async fn killed_by_a_signal() {
    let result = run(&sh("kill -9 $$"), OutputSink::new(), None).await;
    assert_eq!(result.exit, Some(Exit::Signal(9)));
    assert_eq!(
        result.exit.unwrap().to_string(),
        "killed by signal 9 (SIGKILL)"
    );
}

#[tokio::test]
async fn stdout_and_stderr_go_to_the_log_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("step.log");
    let script = "echo out1; echo err1 >&2; echo out2; echo err2 >&2";
    let result = run(&sh(script), OutputSink::new().log_to(&log), None).await;
    let expected = "out1\nerr1\nout2\nerr2\n";
    assert_eq!(std::fs::read_to_string(&log).unwrap(), expected);
    assert_eq!(result.tail, expected);
    assert_eq!(result.output_bytes, expected.len() as u64);
}

#[tokio::test]
async fn output_is_echoed_while_the_command_runs() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // The command only finishes once the test has seen its first line in the echo.
    let script = format!(
        "echo first; while [ ! -f '{}' ]; do sleep 0.01; done; echo second",
        go.display()
    );
    let echo = SharedBuffer::default();
    let sink = OutputSink::new().echo_to(echo.clone());
    let spec = sh(&script);
    let running = run(&spec, sink, Some(Duration::from_secs(5)));
    let watching = async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while echo.contents() != "first\n" {
            assert!(Instant::now() < deadline, "echo: {:?}", echo.contents());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::write(&go, "").unwrap();
    };
    let (result, ()) = tokio::join!(running, watching);
    assert!(result.success(), "{result:?}");
    assert_eq!(echo.contents(), "first\nsecond\n");
}

#[tokio::test]
async fn tail_is_bounded_and_the_log_complete() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("step.log");
    let sink = OutputSink::new().log_to(&log).tail_limit(3, 1024);
    let result = run(&sh("seq 1 100000"), sink, None).await;
    assert_eq!(result.tail, "99998\n99999\n100000\n");
    let full: String = (1..=100_000).map(|n| format!("{n}\n")).collect();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), full);
    assert_eq!(result.output_bytes, full.len() as u64);
}

#[tokio::test]
async fn workdir_and_env_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sh(r#"pwd; echo "$GREETING $PLACE""#)
        .workdir(dir.path())
        .env("GREETING", "hello")
        .env("PLACE", "world; echo injected");
    let result = run(&spec, OutputSink::new(), None).await;
    let cwd = dir.path().canonicalize().unwrap();
    assert_eq!(
        result.tail,
        format!("{}\nhello world; echo injected\n", cwd.display())
    );
}

#[tokio::test]
async fn exec_passes_arguments_without_a_shell() {
    let spec = CommandSpec::exec("printf", ["%s|", "a b", "$HOME", "c"]);
    let result = run(&spec, OutputSink::new(), None).await;
    assert_eq!(result.tail, "a b|$HOME|c|");
}

#[tokio::test]
async fn stdin_is_closed() {
    let result = run(
        &sh("cat; echo done"),
        OutputSink::new(),
        Some(Duration::from_secs(5)),
    )
    .await;
    assert!(result.success());
    assert_eq!(result.tail, "done\n");
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error() {
    let spec = CommandSpec::exec("/nonexistent/agent-orch-test", Vec::<String>::new());
    let err = run_command(&spec, OutputSink::new(), &CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(err.kind, ProcessErrorKind::Spawn { .. }));
    assert_eq!(
        err.to_string(),
        "failed to start `/nonexistent/agent-orch-test`"
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let _turn = TIMING.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("sleep 100 & echo $! > '{}'; wait", pid_file.display());
    let started = Instant::now();
    let result = run(
        &sh(&script),
        OutputSink::new(),
        Some(Duration::from_millis(300)),
    )
    .await;
    assert!(result.timed_out);
    assert!(!result.success());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(result.exit, Some(Exit::Signal(15)));
    assert_dies_soon(read_pid(&pid_file).await).await;
}

#[tokio::test]
async fn cancel_kills_a_group_that_ignores_sigterm_within_two_seconds() {
    let _turn = TIMING.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // An ignored signal stays ignored across exec: the sleep ignores SIGTERM too.
    let script = format!(
        "trap '' TERM; sleep 100 & echo $! > '{}'; wait",
        pid_file.display()
    );
    let cancel = CancellationToken::new();
    let spec = sh(&script);
    let running = run_command(&spec, OutputSink::new(), &cancel, None);
    let cancelling = async {
        let pid = read_pid(&pid_file).await;
        cancel.cancel();
        (pid, Instant::now())
    };
    let (result, (pid, cancelled_at)) = tokio::join!(running, cancelling);
    let result = result.unwrap();
    let stop_time = cancelled_at.elapsed();
    assert!(result.cancelled);
    assert!(!result.timed_out);
    assert_eq!(result.exit, Some(Exit::Signal(9)));
    assert!(stop_time < Duration::from_secs(2), "{stop_time:?}");
    assert!(
        stop_time >= KILL_GRACE,
        "SIGKILL came before the grace period: {stop_time:?}"
    );
    // Killed, but an orphaned grandchild stays a zombie until init reaps it: give it a moment.
    assert_dies_soon(pid).await;
}

#[tokio::test]
async fn background_processes_do_not_outlive_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // The sleep inherits the output pipe: without the group kill we would wait 100 s.
    let script = format!(
        "sleep 100 & echo $! > '{}'; echo started",
        pid_file.display()
    );
    let started = Instant::now();
    let result = run(&sh(&script), OutputSink::new(), None).await;
    assert!(result.success());
    assert!(!result.output_left_open);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(result.tail, "started\n");
    assert_dies_soon(read_pid(&pid_file).await).await;
}

#[tokio::test]
async fn a_process_that_left_the_group_ends_with_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // Waits for the pid so that the clean-up cannot catch the process before it calls setsid.
    let script = format!(
        "setsid sh -c 'echo $$ > \"{0}\"; exec sleep 30' &
         while [ ! -s '{0}' ]; do sleep 0.01; done; echo done",
        pid_file.display()
    );
    let started = Instant::now();
    let result = run(&sh(&script), OutputSink::new(), None).await;
    let escaped = read_pid(&pid_file).await;
    assert!(result.success());
    assert!(!result.output_left_open);
    assert_eq!(result.tail, "done\n");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_dies_soon(escaped).await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_supervisor_outlives_its_command_to_run_the_next() {
    let result = run(&sh("echo $PPID"), OutputSink::new(), None).await;
    let supervisor: i32 = result.tail.trim().parse().unwrap();
    assert_ne!(supervisor, i32::try_from(std::process::id()).unwrap());
    // Idle now (or running another test's command), and still ours.
    assert!(
        is_alive(supervisor),
        "the supervisor {supervisor} has ended"
    );
    let stat = std::fs::read_to_string(format!("/proc/{supervisor}/stat")).unwrap();
    let parent = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(1);
    assert_eq!(parent, Some(std::process::id().to_string().as_str()));
}

/// Two commands at once: the end of one kills what it left, and nothing the other left while
/// it still runs. (A supervisor shared by both could not tell their orphans apart.)
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_end_of_a_command_spares_an_orphan_of_one_still_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    // `( ... &)`: the subshell ends at once, so the daemon is an orphan, re-parented to the
    // supervisor while its command still runs.
    let orphan = |pid_file: &Path| {
        format!(
            "(setsid sh -c 'echo $$ > \"{}\"; exec sleep 100' &)",
            pid_file.display()
        )
    };
    let long = sh(&format!(
        "{}; while [ ! -f '{}' ]; do sleep 0.01; done",
        orphan(&path("long.pid")),
        path("go").display()
    ));
    let short = sh(&format!(
        "{}; while [ ! -s '{}' ]; do sleep 0.01; done",
        orphan(&path("short.pid")),
        path("short.pid").display()
    ));
    let long_run = run(&long, OutputSink::new(), Some(Duration::from_secs(20)));
    let meanwhile = async {
        let long_orphan = read_pid(&path("long.pid")).await;
        let ended = run(&short, OutputSink::new(), Some(Duration::from_secs(20))).await;
        assert!(ended.success(), "{ended:?}");
        assert_dies_soon(read_pid(&path("short.pid")).await).await;
        assert!(
            is_alive(long_orphan),
            "killed with the other command's leftovers"
        );
        std::fs::write(path("go"), "").unwrap();
        long_orphan
    };
    let (long_result, long_orphan) = tokio::join!(long_run, meanwhile);
    assert!(long_result.success(), "{long_result:?}");
    assert_dies_soon(long_orphan).await;
}

/// Runs the script `script` makes of a pid file's path, drops the run once the pid is
/// written, and checks that the process with that pid dies.
async fn dropping_the_run_kills(script: impl FnOnce(&Path) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let spec = sh(&script(&pid_file));
    let task = tokio::spawn(async move {
        run_command(&spec, OutputSink::new(), &CancellationToken::new(), None).await
    });
    let pid = read_pid(&pid_file).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_dies_soon(pid).await;
}

#[tokio::test]
async fn dropping_the_run_kills_the_group() {
    dropping_the_run_kills(|pid_file| {
        format!("sleep 100 & echo $! > '{}'; wait", pid_file.display())
    })
    .await;
}

#[tokio::test]
async fn dropping_the_run_kills_a_process_that_left_the_group() {
    dropping_the_run_kills(|pid_file| {
        format!(
            "setsid sh -c 'echo $$ > \"{}\"; exec sleep 100' & wait",
            pid_file.display()
        )
    })
    .await;
}

// Peak memory is measured on the real binary (tests/integration/run_cli.rs): in this shared
// test process, other tests' allocations would show up in it too.
#[tokio::test]
async fn huge_output_streams_through_a_bounded_tail() {
    let _turn = TIMING.lock().await;
    const BYTES: u64 = 256 << 20;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("huge.log");
    let script = format!("yes 'a line of output that repeats' | head -c {BYTES}");
    let result = run(&sh(&script), OutputSink::new().log_to(&log), None).await;
    assert!(result.success());
    assert_eq!(result.output_bytes, BYTES);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), BYTES);
    assert!(result.tail.len() <= DEFAULT_TAIL_BYTES);
    assert_eq!(result.tail.lines().count(), DEFAULT_TAIL_LINES);
}

#[tokio::test]
async fn stdout_to_a_file_keeps_data_apart_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("stdout");
    let spec = sh("echo 'kind: ConfigMap'; echo 'warning: chart is old' >&2").stdout_to(&data);
    let result = run(&spec, OutputSink::new(), None).await;
    assert!(result.success());
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "kind: ConfigMap\n");
    assert_eq!(result.tail, "warning: chart is old\n");
}
