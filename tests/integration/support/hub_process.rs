//! The real `agent-orch hub serve` binary as a child process on a free port, for tests that
//! need to signal or kill -9 it. The child is killed when the handle drops.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::hub_server::TOKEN;

pub(crate) struct HubProcess {
    pub(crate) child: Child,
    pub(crate) base: String,
    /// What the hub said on stderr after its start-up line.
    said: Arc<Mutex<Vec<String>>>,
}

impl HubProcess {
    pub(crate) async fn start(database: &str) -> HubProcess {
        Self::start_with(
            database,
            "127.0.0.1:0",
            &[],
            &[("AGENT_ORCH_HUB_TOKENS", TOKEN)],
        )
        .await
        .0
    }

    /// `hub serve` on `listen` with more arguments and environment; also returns its start-up
    /// line.
    pub(crate) async fn start_with(
        database: &str,
        listen: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> (HubProcess, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agent-orch"));
        command
            .args(["hub", "serve", "--listen", listen, "--database", database])
            .args(args)
            .env_remove("AGENT_ORCH_HUB_TOKENS")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let (base, started) = tokio::time::timeout(Duration::from_secs(20), async {
            let mut said = Vec::new();
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix("hub listening on ") {
                    return (rest.split_whitespace().next().unwrap().to_owned(), line);
                }
                said.push(line);
            }
            panic!("the hub exited before listening: {}", said.join("\n"));
        })
        .await
        .expect("the hub listens within 20 s");
        // Keep draining stderr so the hub never blocks on a full pipe.
        let said = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn({
            let said = Arc::clone(&said);
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    said.lock().unwrap().push(line);
                }
            }
        });
        (HubProcess { child, base, said }, started)
    }

    /// Waits up to 20 s for a stderr line (after the start-up line) containing `text`.
    pub(crate) async fn wait_for_line(&self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let said = self.said.lock().unwrap().clone();
            if let Some(line) = said.iter().find(|line| line.contains(text)) {
                return line.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hub never said `{text}`; it said: {said:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET path` of the hub's API, as JSON.
    pub(crate) async fn get_json(&self, path: &str) -> serde_json::Value {
        agent_orch::http::http_client()
            .unwrap()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Sends `signal` to the hub.
    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.id().expect("the hub is running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
            signal,
        )
        .unwrap();
    }

    /// SIGKILL: no graceful anything.
    pub(crate) async fn kill9(mut self) {
        self.child.start_kill().unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// The real binary run to its end without a terminal, with the hub's token and database
/// variables cleared before `envs` are set: its exit code, stdout and stderr.
pub(crate) async fn run_agent_orch(
    args: &[&str],
    envs: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent-orch"));
    command
        .args(args)
        .env_remove("AGENT_ORCH_HUB_TOKENS")
        .env_remove("AGENT_ORCH_HUB_DATABASE")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("the command finishes within 30 s")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}
