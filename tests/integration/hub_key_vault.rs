//! The hub's write tokens and a worker's hub token read from Azure Key Vault, signing in as a
//! service does on Azure: App Service's managed identity or AKS workload identity. The real
//! binary and the real Azure clients talk to the fakes in `support/azure_server.rs`.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Command;

use crate::support::azure_server::{
    AzureConfig, AzureServer, CLIENT_ID, IDENTITY_HEADER, OIDC_TOKEN, TENANT_ID,
};
use crate::support::hub_db::HubDb;
use crate::support::hub_process::{HubProcess, run_agent_orch};
use crate::support::hub_server::TOKEN;
use crate::support::managed_identity_fake;

const FIRST_TOKEN: &str = "vault-hub-token-first-0123456789";
const SECOND_TOKEN: &str = "vault-hub-token-second-abcdefghij";
const VAULT: &str = "hub-kv";

fn vault(tokens: &str) -> AzureServer {
    AzureServer::start(AzureConfig::with_secrets(&[
        ("agent-orch-hub-tokens", tokens),
        ("agent-orch-hub-token", SECOND_TOKEN),
    ]))
}

/// App Service's identity endpoint, reached (like every Azure call) through the override.
fn managed_identity(server: &AzureServer) -> Vec<(String, String)> {
    vec![
        ("AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE".into(), server.url()),
        (
            "IDENTITY_ENDPOINT".into(),
            format!("http://localhost:41{}", managed_identity_fake::PATH),
        ),
        ("IDENTITY_HEADER".into(), IDENTITY_HEADER.into()),
    ]
}

/// What AKS puts in a pod with workload identity: a projected token file and two ids.
fn workload_identity(server: &AzureServer, token_file: &std::path::Path) -> Vec<(String, String)> {
    std::fs::write(token_file, OIDC_TOKEN).unwrap();
    vec![
        ("AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE".into(), server.url()),
        (
            "AZURE_FEDERATED_TOKEN_FILE".into(),
            token_file.display().to_string(),
        ),
        ("AZURE_CLIENT_ID".into(), CLIENT_ID.into()),
        ("AZURE_TENANT_ID".into(), TENANT_ID.into()),
    ]
}

fn pairs(envs: &[(String, String)]) -> Vec<(&str, &str)> {
    envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `hub serve --tokens-vault hub-kv` plus `args`, signing in as `envs` say: the hub and its
/// start-up line.
async fn hub_on_vault(
    db: &HubDb,
    envs: &[(String, String)],
    args: &[&str],
) -> (HubProcess, String) {
    let args = [&["--tokens-vault", VAULT], args].concat();
    HubProcess::start_with(&db.url, "127.0.0.1:0", &args, &pairs(envs)).await
}

async fn write_status(base: &str, token: &str) -> u16 {
    agent_orch::http::http_client()
        .unwrap()
        .post(format!("{base}/api/agents/heartbeat"))
        .bearer_auth(token)
        .json(&serde_json::json!({"id": "probe"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_reads_its_write_tokens_from_key_vault_with_a_managed_identity() {
    let server = vault(&format!("{FIRST_TOKEN}, {SECOND_TOKEN}"));
    let db = HubDb::sqlite();
    let (hub, started) = hub_on_vault(&db, &managed_identity(&server), &[]).await;

    assert!(
        started.ends_with(
            "2 write token(s) from secret `agent-orch-hub-tokens` of key vault `hub-kv`)"
        ),
        "{started}"
    );
    assert!(!started.contains(FIRST_TOKEN) && !started.contains(SECOND_TOKEN));
    assert_eq!(write_status(&hub.base, FIRST_TOKEN).await, 200);
    assert_eq!(write_status(&hub.base, SECOND_TOKEN).await, 200);
    assert_eq!(
        write_status(&hub.base, "not-a-vault-token-0123456").await,
        401
    );
    // The vault was asked with the managed identity's token, after the bearer challenge.
    let reads = server.requests_to("/secrets/agent-orch-hub-tokens");
    assert_eq!(
        reads.last().map(|r| (r.original_host.as_deref(), r.status)),
        Some((Some("hub-kv.vault.azure.net"), 200)),
        "{reads:?}"
    );
    hub.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_and_a_worker_in_aks_sign_in_with_workload_identity() {
    let server = vault(SECOND_TOKEN);
    let db = HubDb::sqlite();
    let pod = tempfile::tempdir().unwrap();
    let envs = workload_identity(&server, &pod.path().join("azure-identity-token"));
    let (hub, started) = hub_on_vault(&db, &envs, &[]).await;
    assert!(started.contains("1 write token(s)"), "{started}");

    // The worker's token (a second secret) comes from the same vault the same way.
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_agent-orch"))
            .args(["worker", "--hub", &hub.base, "--id", "aks-worker"])
            .args(["--token-vault", VAULT, "--exit-when-idle"])
            .env_remove("AGENT_ORCH_HUB_TOKEN")
            .envs(pairs(&envs))
            .current_dir(pod.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the worker exits when idle")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(SECOND_TOKEN), "{stderr}");
    let agents = hub.get_json("/api/agents").await;
    assert_eq!(agents[0]["id"], "aks-worker", "{agents}");
    // Entra was asked with the pod's token, as a client assertion.
    assert!(
        server
            .requests_to(&format!("/{TENANT_ID}/oauth2/v2.0/token"))
            .iter()
            .all(|r| r.status == 200)
    );
    assert_eq!(
        server
            .requests_to("/secrets/agent-orch-hub-token")
            .last()
            .map(|r| r.status),
        Some(200)
    );
    hub.kill9().await;
}

async fn serve_fails(envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let db = HubDb::sqlite();
    let serve = [
        "hub",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        &db.url,
    ];
    let (code, _, stderr) = run_agent_orch(&[&serve[..], args].concat(), envs).await;
    (code, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_secrets_stop_the_hub_with_a_clear_message() {
    let vault_args = ["--tokens-vault", VAULT];

    // Tokens in two places: which one is meant is ambiguous, so nothing starts.
    let server = vault(FIRST_TOKEN);
    let mut envs = managed_identity(&server);
    envs.push(("AGENT_ORCH_HUB_TOKENS".into(), SECOND_TOKEN.into()));
    let (code, stderr) = serve_fails(&pairs(&envs), &vault_args).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("both in AGENT_ORCH_HUB_TOKENS and in Key Vault"),
        "{stderr}"
    );

    // A short token in the secret is named by where it is, never shown.
    let server = vault("short-one");
    let (code, stderr) = serve_fails(&pairs(&managed_identity(&server)), &vault_args).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "an API token in secret `agent-orch-hub-tokens` of key vault `hub-kv` is shorter than 16 characters"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("short-one"), "{stderr}");

    // An identity without `get` on secrets: the denial, and that nothing was served.
    let mut config = AzureConfig::with_secrets(&[("agent-orch-hub-tokens", FIRST_TOKEN)]);
    config.deny = true;
    let server = AzureServer::start(config);
    let (code, stderr) = serve_fails(&pairs(&managed_identity(&server)), &vault_args).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("failed to read the hub's write tokens from Key Vault"),
        "{stderr}"
    );
    assert!(
        stderr.contains("access to secret `agent-orch-hub-tokens` was denied"),
        "{stderr}"
    );
    assert!(!stderr.contains("hub listening"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_secret_takes_effect_without_a_restart() {
    let server = vault(FIRST_TOKEN);
    let db = HubDb::sqlite();
    let envs = managed_identity(&server);
    let (hub, _) = hub_on_vault(&db, &envs, &["--tokens-refresh", "200ms"]).await;
    assert_eq!(write_status(&hub.base, FIRST_TOKEN).await, 200);

    // A vault that cannot be read does not lock the fleet out: the tokens in force stay.
    server.set_deny(true);
    let failed = hub.wait_for_line("failed to reload the write tokens").await;
    assert!(failed.contains("keeping the 1 in force"), "{failed}");
    assert!(failed.contains("secrets get permission"), "{failed}");
    assert_eq!(write_status(&hub.base, FIRST_TOKEN).await, 200);

    // The operator rotates the secret: the new token works and the old one is retired.
    server.set_deny(false);
    server.set_secret("agent-orch-hub-tokens", SECOND_TOKEN);
    let reloaded = hub.wait_for_line("write tokens reloaded").await;
    assert_eq!(
        reloaded,
        "write tokens reloaded: 1 token(s) from secret `agent-orch-hub-tokens` of key vault `hub-kv`"
    );
    assert_eq!(write_status(&hub.base, SECOND_TOKEN).await, 200);
    assert_eq!(write_status(&hub.base, FIRST_TOKEN).await, 401);
    hub.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_the_token_secret_again_at_once() {
    let server = vault(FIRST_TOKEN);
    let db = HubDb::sqlite();
    let envs = managed_identity(&server);
    let (hub, _) = hub_on_vault(&db, &envs, &["--tokens-refresh", "0s"]).await;
    server.set_secret(
        "agent-orch-hub-tokens",
        &format!("{FIRST_TOKEN},{SECOND_TOKEN}"),
    );
    // No timer: the new token is unknown until the hub is told to look.
    assert_eq!(write_status(&hub.base, SECOND_TOKEN).await, 401);

    hub.signal(Signal::SIGHUP);
    hub.wait_for_line("write tokens reloaded: 2 token(s)").await;
    assert_eq!(write_status(&hub.base, FIRST_TOKEN).await, 200);
    assert_eq!(write_status(&hub.base, SECOND_TOKEN).await, 200);
    hub.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_tokens_from_the_environment_says_so_and_keeps_serving() {
    let db = HubDb::sqlite();
    let hub = HubProcess::start(&db.url).await;
    hub.signal(Signal::SIGHUP);
    let line = hub.wait_for_line("nothing to reload").await;
    assert!(line.contains("AGENT_ORCH_HUB_TOKENS"), "{line}");
    assert_eq!(write_status(&hub.base, TOKEN).await, 200);
    hub.kill9().await;
}
