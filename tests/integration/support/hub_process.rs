//! The real `agent-orch hub serve` binary as a child process on a free port, for tests that
//! need to signal or kill -9 it. The child is killed when the handle drops.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::hub_server::TOKEN;

pub(crate) struct HubProcess {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl HubProcess {
    pub(crate) async fn start(database: &str) -> HubProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_agent-orch"))
            .args([
                "hub",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                database,
            ])
            .env("AGENT_ORCH_HUB_TOKENS", TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let base = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix("hub listening on ") {
                    return rest.split_whitespace().next().unwrap().to_owned();
                }
            }
            panic!("the hub exited before listening");
        })
        .await
        .expect("the hub listens within 20 s");
        // Keep draining stderr so the hub never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        HubProcess { child, base }
    }

    /// SIGKILL: no graceful anything.
    pub(crate) async fn kill9(mut self) {
        self.child.start_kill().unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}
