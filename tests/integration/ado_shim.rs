//! The Node shim `ado-task/index.js`, run under `node` as the agent runs it, with a fake
//! `agent-orch` staged where the shim looks for it. The fake is a shell script standing in for
//! the binary: the shim's contract is process-level (which file, which args, which environment,
//! which exit code, which signals), and the script reports exactly those.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::support::process::{output_with_timeout, wait_for_file, wait_with_timeout};
use crate::support::{repo, tools, vso};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Records its argv and environment, then exits with `$FAKE_EXIT_CODE`; with `$FAKE_WAIT` set,
/// waits to be signalled instead (SIGTERM: records it and exits 42; with `$FAKE_NO_TRAP`, dies).
///
/// The environment is read from `/proc`, as the process received it: `sh` itself drops
/// variables whose names are not shell identifiers, such as `ENDPOINT_AUTH_<guid>`.
const FAKE_BINARY: &str = r#"#!/bin/sh
printf '%s\n' "$@" > "$FAKE_OUT/argv"
cat /proc/$$/environ > "$FAKE_OUT/env"
echo "fake agent-orch running"
if [ -n "$FAKE_WAIT" ]; then
  if [ -z "$FAKE_NO_TRAP" ]; then
    trap 'echo TERM > "$FAKE_OUT/signal"; exit 42' TERM
  fi
  : > "$FAKE_OUT/ready"
  i=0
  while [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  exit 99
fi
exit "${FAKE_EXIT_CODE:-0}"
"#;

/// The shim's name for this machine's platform: `process.platform-process.arch`.
fn node_platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}-{arch}")
}

struct StagedTask {
    dir: TempDir,
    out: PathBuf,
}

impl StagedTask {
    /// A task folder like the one in the .vsix: `index.js` and, if `with_binary`,
    /// `bin/<platform>/agent-orch` without its executable bit (as a .vsix unpacks it).
    fn new(with_binary: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::copy(repo::path("ado-task/index.js"), dir.path().join("index.js")).unwrap();
        if with_binary {
            let bin = dir.path().join("bin").join(node_platform());
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("agent-orch"), FAKE_BINARY).unwrap();
            fs::set_permissions(bin.join("agent-orch"), fs::Permissions::from_mode(0o644)).unwrap();
        }
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        Self { dir, out }
    }

    fn binary(&self) -> PathBuf {
        self.dir
            .path()
            .join("bin")
            .join(node_platform())
            .join("agent-orch")
    }

    /// `node index.js` with only `vars` (and PATH) in its environment, as the agent starts it.
    fn command(&self, vars: &[(&str, &str)]) -> Command {
        let mut command = Command::new(tools::tool("node"));
        command
            .arg(self.dir.path().join("index.js"))
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("FAKE_OUT", &self.out)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn recorded_env(&self) -> Vec<(String, String)> {
        let env = fs::read(self.out.join("env")).unwrap();
        env.split(|&b| b == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let entry = String::from_utf8(entry.to_vec()).unwrap();
                let (name, value) = entry.split_once('=').unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect()
    }
}

/// What the agent gives a task: inputs, a service connection with a secret, a secret variable.
const AGENT_VARS: &[(&str, &str)] = &[
    ("TF_BUILD", "True"),
    ("INPUT_WORKFLOWFILE", "workflows/fleet-deploy.yaml"),
    ("INPUT_ENVIRONMENT", "staging"),
    (
        "INPUT_EXTRAVARIABLES",
        "REGISTRY=fleet.azurecr.io\nQUERY=a=b; c",
    ),
    (
        "INPUT_AZURESUBSCRIPTION",
        "7a3c1e4b-0d2f-4b8e-9c61-2f5d8a9b0c13",
    ),
    (
        "ENDPOINT_AUTH_7a3c1e4b-0d2f-4b8e-9c61-2f5d8a9b0c13",
        r#"{"parameters":{"tenantid":"t","serviceprincipalid":"c","serviceprincipalkey":"k"},"scheme":"ServicePrincipal"}"#,
    ),
    (
        "ENDPOINT_URL_7a3c1e4b-0d2f-4b8e-9c61-2f5d8a9b0c13",
        "https://management.azure.com/",
    ),
    ("SECRET_OPENAI_API_KEY", "sk-test"),
    ("SYSTEM_ACCESSTOKEN", "job-token"),
];

#[test]
fn runs_the_platform_binary_with_task_and_the_environment_untouched() {
    let task = StagedTask::new(true);
    let output = output_with_timeout(task.command(AGENT_VARS).spawn().unwrap(), TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("fake agent-orch running"), "{stdout}");

    assert_eq!(fs::read_to_string(task.out.join("argv")).unwrap(), "task\n");

    let child_env = task.recorded_env();
    for (name, value) in AGENT_VARS {
        assert!(
            child_env.iter().any(|(n, v)| n == name && v == value),
            "`{name}` missing or changed in the binary's environment: {child_env:?}"
        );
    }
}

#[test]
fn sets_the_executable_bit_a_vsix_loses() {
    let task = StagedTask::new(true);
    assert_eq!(
        fs::metadata(task.binary()).unwrap().permissions().mode() & 0o111,
        0
    );
    let output = output_with_timeout(task.command(&[]).spawn().unwrap(), TIMEOUT);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        fs::metadata(task.binary()).unwrap().permissions().mode() & 0o777,
        0o755
    );
}

#[test]
fn passes_the_exit_code_through() {
    for code in ["1", "2", "130"] {
        let task = StagedTask::new(true);
        let output = output_with_timeout(
            task.command(&[("FAKE_EXIT_CODE", code)]).spawn().unwrap(),
            TIMEOUT,
        );
        assert_eq!(
            output.status.code(),
            Some(code.parse().unwrap()),
            "{output:?}"
        );
    }
}

/// Starts the shim with a fake that waits, sends `signal` to the shim once the fake runs.
fn signal_the_shim(task: &StagedTask, vars: &[(&str, &str)], signal: Signal) -> i32 {
    let mut command = task.command(vars);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let mut node = command.spawn().unwrap();
    if !wait_for_file(&task.out.join("ready"), TIMEOUT) {
        let _ = node.kill();
        let _ = node.wait();
        panic!("the fake binary never started");
    }
    let pid = Pid::from_raw(i32::try_from(node.id()).unwrap());
    kill(pid, signal).unwrap();
    wait_with_timeout(&mut node, TIMEOUT).code().unwrap()
}

#[test]
fn forwards_sigterm_to_the_binary_and_its_exit_code_back() {
    let task = StagedTask::new(true);
    let code = signal_the_shim(&task, &[("FAKE_WAIT", "1")], Signal::SIGTERM);
    assert_eq!(
        fs::read_to_string(task.out.join("signal")).unwrap(),
        "TERM\n"
    );
    assert_eq!(code, 42);
}

#[test]
fn a_binary_killed_by_a_signal_fails_the_task() {
    let task = StagedTask::new(true);
    let code = signal_the_shim(
        &task,
        &[("FAKE_WAIT", "1"), ("FAKE_NO_TRAP", "1")],
        Signal::SIGTERM,
    );
    assert!(!task.out.join("signal").exists());
    assert_eq!(code, 128 + Signal::SIGTERM as i32);
}

#[test]
fn a_binary_for_another_platform_only_is_named_in_the_failure() {
    let task = StagedTask::new(false);
    fs::create_dir_all(task.dir.path().join("bin/plan9-mips")).unwrap();
    let output = output_with_timeout(task.command(&[]).spawn().unwrap(), TIMEOUT);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let commands = vso::parse_all(&String::from_utf8_lossy(&output.stdout));
    let issue = vso::find(&commands, "task.logissue")[0];
    assert!(
        issue.data.ends_with("this task ships: plan9-mips)"),
        "{issue:?}"
    );
}

#[test]
fn a_missing_binary_fails_the_task_with_logging_commands() {
    let task = StagedTask::new(false);
    let output = output_with_timeout(task.command(AGENT_VARS).spawn().unwrap(), TIMEOUT);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let commands = vso::parse_all(&String::from_utf8_lossy(&output.stdout));

    let issues = vso::find(&commands, "task.logissue");
    assert_eq!(issues.len(), 1, "{commands:?}");
    assert_eq!(issues[0].property("type"), Some("error"));
    let platform = format!("`{}`", node_platform());
    assert!(issues[0].data.contains(&platform), "{:?}", issues[0]);

    let complete = vso::find(&commands, "task.complete");
    assert_eq!(complete.len(), 1, "{commands:?}");
    assert_eq!(complete[0].property("result"), Some("Failed"));
    // The agent's parser must see exactly two commands: the message cannot break out of them.
    assert_eq!(commands.len(), 2, "{commands:?}");
}
