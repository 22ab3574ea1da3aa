//! Key Vault secrets in `agent-orch run`: the real Azure clients sign in (managed identity, or
//! the Azure CLI) and read the vault, all against the local fakes in `support/azure_server.rs`;
//! the values reach steps through templates and nowhere else.

use std::path::Path;
use std::process::Command;

use crate::support::azure_server::{
    AzureConfig, AzureServer, CLI_ACCESS_TOKEN, IDENTITY_HEADER, MANAGED_IDENTITY_ACCESS_TOKEN,
};
use crate::support::cli::{Project, RunResult};
use crate::support::managed_identity_fake;

pub(crate) const DB_PASSWORD: &str = "kv-s3cret-db-9f8e7d6c5b4a";
pub(crate) const API_KEY: &str = "sk-vault-0123456789abcdefXYZ";

/// A workflow whose first step succeeds only if the secret arrived intact (compared with a file
/// outside the artifacts) and whose second prints it, to check the masking.
pub(crate) const WORKFLOW: &str = r#"name: kv-demo
secrets:
  vault: fleet-kv
  names: [db-password, openai-api-key]
steps:
  - id: check
    gate:
      run: 'test "$PW" = "$(cat expected.txt)" && test -n "$KEY"'
      env: {PW: "{{ secrets.db_password }}", KEY: "{{ secrets.openai_api_key }}"}
  - id: leak
    gate:
      run: 'echo "password=$PW"; echo "inline={{ secrets.db_password }}"'
      env: {PW: "{{ secrets.db_password }}"}
"#;

pub(crate) fn project(workflow: &str) -> Project {
    let project = Project::new();
    project
        .file("workflow.yaml", workflow)
        .file("expected.txt", DB_PASSWORD);
    project
}

pub(crate) fn vault(deny: bool) -> AzureServer {
    let mut config =
        AzureConfig::with_secrets(&[("db-password", DB_PASSWORD), ("openai-api-key", API_KEY)]);
    config.deny = deny;
    AzureServer::start(config)
}

fn run_with_managed_identity(project: &Project, server: &AzureServer) -> RunResult {
    let artifacts = project.artifacts();
    let mut command = project.command(&[
        "run",
        "workflow.yaml",
        "--artifacts",
        artifacts.to_str().unwrap(),
    ]);
    let output = signed_in_with_managed_identity(&mut command, server)
        .output()
        .unwrap();
    RunResult::from(output)
}

/// `command` signing in to `server`'s vault with the managed identity, as on an Azure VM.
pub(crate) fn signed_in_with_managed_identity<'c>(
    command: &'c mut Command,
    server: &AzureServer,
) -> &'c mut Command {
    command
        .env("AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE", server.url())
        .env(
            "IDENTITY_ENDPOINT",
            format!("http://localhost:41{}", managed_identity_fake::PATH),
        )
        .env("IDENTITY_HEADER", IDENTITY_HEADER)
}

/// Every file under `dir`, with its text.
pub(crate) fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                files.push((path.display().to_string(), text));
            }
        }
    }
    files
}

#[test]
fn managed_identity_reads_the_vault_after_its_challenge_and_secrets_stay_masked() {
    let server = vault(false);
    let project = project(WORKFLOW);
    let result = run_with_managed_identity(&project, &server);
    result.assert_code(0);

    // The token came from the identity endpoint with its header secret.
    let identity = server.requests_to(managed_identity_fake::PATH);
    assert_eq!(identity.len(), 1, "{:?}", server.requests());
    assert_eq!(identity[0].status, 200);

    // Key Vault: the first request carries no token and is challenged, as the service does;
    // then each secret is read with the identity's token at the real vault host.
    let vault = server.requests_to("/secrets/");
    assert!(vault.len() >= 3, "{vault:?}");
    assert_eq!(vault[0].authorization, None);
    assert_eq!(vault[0].status, 401);
    let bearer = format!("Bearer {MANAGED_IDENTITY_ACCESS_TOKEN}");
    let authorized: Vec<&str> = vault[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.authorization.as_deref(), Some(bearer.as_str()));
            assert_eq!(r.original_host.as_deref(), Some("fleet-kv.vault.azure.net"));
            assert_eq!(r.status, 200);
            r.path.as_str()
        })
        .collect();
    assert_eq!(
        authorized,
        ["/secrets/db-password/", "/secrets/openai-api-key/"]
    );

    for secret in [
        DB_PASSWORD,
        API_KEY,
        MANAGED_IDENTITY_ACCESS_TOKEN,
        IDENTITY_HEADER,
    ] {
        assert!(!result.stdout.contains(secret), "{}", result.stdout);
        assert!(!result.stderr.contains(secret), "{}", result.stderr);
        for (path, text) in files_under(&project.artifacts()) {
            assert!(!text.contains(secret), "{path} holds a secret:\n{text}");
        }
    }
    let leak_log = project.read("artifacts/steps/1-steps/leak.log");
    assert!(leak_log.contains("password=***"), "{leak_log}");
    assert!(leak_log.contains("inline=***"), "{leak_log}");
}

#[test]
fn the_azure_cli_signs_in_on_a_laptop() {
    let server = vault(false);
    let project = project(WORKFLOW);
    // A fake `az` on PATH, answering `az account get-access-token` as the CLI does.
    project.file(
        "fake-bin/az",
        &format!(
            "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\n\
             printf '{{\"accessToken\": \"{CLI_ACCESS_TOKEN}\", \"expires_on\": %s, \"tokenType\": \"Bearer\"}}' \"$(( $(date +%s) + 3600 ))\"\n"
        ),
    );
    make_executable(&project.path().join("fake-bin/az"));
    let path = format!(
        "{}:{}",
        project.path().join("fake-bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let artifacts = project.artifacts();
    let output = project
        .command(&[
            "run",
            "workflow.yaml",
            "--artifacts",
            artifacts.to_str().unwrap(),
        ])
        .env("AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE", server.url())
        .env_remove("IDENTITY_ENDPOINT")
        .env_remove("IDENTITY_HEADER")
        .env("PATH", path)
        .output()
        .unwrap();
    let result = RunResult::from(output);
    result.assert_code(0);
    let args = project.read("fake-bin/args");
    assert!(
        args.contains("account get-access-token -o json --scope https://vault.azure.net/.default"),
        "{args}"
    );
    let vault = server.requests_to("/secrets/");
    assert_eq!(
        vault.last().unwrap().authorization.as_deref(),
        Some(format!("Bearer {CLI_ACCESS_TOKEN}").as_str())
    );
}

#[cfg(unix)]
fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_missing_secret_stops_the_run_before_any_step() {
    let server = vault(false);
    let project = project(&WORKFLOW.replace("openai-api-key]", "openai-api-key, no-such-secret]"));
    let result = run_with_managed_identity(&project, &server);
    result.assert_code(1);
    assert!(
        result
            .stderr
            .contains("error: failed to fetch the workflow's secrets, so nothing ran"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains(
            "key vault `https://fleet-kv.vault.azure.net/`: secret `no-such-secret` does not exist"
        ),
        "{}",
        result.stderr
    );
    assert!(!project.artifacts().exists(), "no step may run");
    assert!(!result.stderr.contains(DB_PASSWORD));
}

#[test]
fn a_denied_vault_says_what_permission_is_missing() {
    let server = vault(true);
    let project = project(WORKFLOW);
    let result = run_with_managed_identity(&project, &server);
    result.assert_code(1);
    assert!(
        result.stderr.contains(
            "access to secret `db-password` was denied; grant the identity `get` on secrets"
        ),
        "{}",
        result.stderr
    );
    assert!(!project.artifacts().exists(), "no step may run");
}

#[test]
fn an_unreachable_vault_fails_fast_and_clearly() {
    // A port nothing listens on: the transport's connection is refused at once.
    let project = project(WORKFLOW);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let started = std::time::Instant::now();
    let output = project
        .command(&["run", "workflow.yaml"])
        .env("AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE", &dead)
        .env("IDENTITY_ENDPOINT", "http://localhost:41/msi/token")
        .env("IDENTITY_HEADER", IDENTITY_HEADER)
        .output()
        .unwrap();
    let result = RunResult::from(output);
    result.assert_code(1);
    assert!(
        result
            .stderr
            .contains("failed to fetch the workflow's secrets, so nothing ran"),
        "{}",
        result.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn the_transport_override_refuses_non_loopback_addresses() {
    let project = project(WORKFLOW);
    let output = project
        .command(&["run", "workflow.yaml"])
        .env(
            "AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE",
            "http://10.1.2.3:8080",
        )
        .output()
        .unwrap();
    let result = RunResult::from(output);
    result.assert_code(1);
    assert!(
        result.stderr.contains(
            "`AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE=http://10.1.2.3:8080`: only `http://` loopback addresses are allowed"
        ),
        "{}",
        result.stderr
    );
}
