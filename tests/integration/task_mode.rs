//! `agent-orch task` as the agent runs it: `node index.js` (the shim) starting the real binary
//! with `INPUT_*`, `ENDPOINT_*` and `SYSTEM_*` set, signing in with workload identity federation
//! against the fakes, and the `##vso` lines it prints parsed and checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::keyvault::{DB_PASSWORD, files_under, vault};
use crate::support::arm_fake::FakeAks;
use crate::support::azure_server::{
    AKS_SERVER_ID, AzureConfig, AzureServer, CLIENT_ID, CLIENT_SECRET, CONNECTION_ID,
    FEDERATED_ACCESS_TOKEN, OIDC_TOKEN, SUBSCRIPTION_ID, SYSTEM_ACCESS_TOKEN, TENANT_ID,
};
use crate::support::cli::{Project, RunResult};
use crate::support::kube_api::{NAMESPACE, TestCluster, deployment_manifest};
use crate::support::oidc_fake::OIDC_REQUEST_URI;
use crate::support::process::output_with_timeout;
use crate::support::vso::{self, VsoCommand};
use crate::support::{repo, tools};

const TIMEOUT: Duration = Duration::from_secs(60);

const WORKFLOW: &str = r#"name: kv-task
secrets:
  vault: overridden-by-the-task-input
  names: [db-password]
steps:
  - id: check
    gate:
      run: 'test "$PW" = "$(cat expected.txt)"'
      env: {PW: "{{ secrets.db_password }}"}
  - id: lint
    gate: "echo 'lint: 3 problems'; exit 1"
    required: false
  - id: leak
    gate:
      run: 'echo "password=$PW"'
      env: {PW: "{{ secrets.db_password }}"}
"#;

/// The 1-based line of `- id: <id>` in `workflow`.
fn line_of(workflow: &str, id: &str) -> String {
    let needle = format!("- id: {id}");
    let index = workflow
        .lines()
        .position(|line| line.trim_start() == needle)
        .unwrap();
    (index + 1).to_string()
}

/// The shim's name for this machine's platform: `process.platform-process.arch`.
fn node_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux-{arch}")
}

/// The task folder as the .vsix unpacks it: `index.js` and `bin/<platform>/agent-orch` (here a
/// link to the binary under test).
fn stage_task() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo::path("ado-task/index.js"), dir.path().join("index.js")).unwrap();
    let bin = dir.path().join("bin").join(node_platform());
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_agent-orch"), bin.join("agent-orch")).unwrap();
    dir
}

pub(crate) struct TaskRun {
    pub(crate) result: RunResult,
    pub(crate) commands: Vec<VsoCommand>,
}

/// The agent's environment for one `AgentOrch@1` step, plus `extra` (which may override).
pub(crate) fn run_task(project: &Project, server: &AzureServer, extra: &[(&str, &str)]) -> TaskRun {
    let task = stage_task();
    let artifacts = project.artifacts();
    let auth = format!(
        r#"{{"parameters":{{"tenantid":"{TENANT_ID}","serviceprincipalid":"{CLIENT_ID}","workloadIdentityFederationSubject":"sc://fleet/app/conn"}},"scheme":"WorkloadIdentityFederation"}}"#
    );
    let mut vars: Vec<(String, String)> = [
        ("TF_BUILD", "True"),
        ("BUILD_BUILDID", "4711"),
        ("INPUT_WORKFLOWFILE", "workflow.yaml"),
        ("INPUT_MAXITERATIONS", "1"),
        ("INPUT_AZURESUBSCRIPTION", CONNECTION_ID),
        ("INPUT_KEYVAULTNAME", "fleet-kv"),
        ("INPUT_ARTIFACTSFOLDER", artifacts.to_str().unwrap()),
        ("SYSTEM_OIDCREQUESTURI", OIDC_REQUEST_URI),
        ("SYSTEM_ACCESSTOKEN", SYSTEM_ACCESS_TOKEN),
        ("NO_COLOR", "1"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    vars.push((format!("ENDPOINT_AUTH_{CONNECTION_ID}"), auth));
    vars.push((
        format!("ENDPOINT_URL_{CONNECTION_ID}"),
        "https://management.azure.com/".to_owned(),
    ));
    vars.push((
        "AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE".to_owned(),
        server.url(),
    ));
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    let child = Command::new(tools::tool("node"))
        .arg(task.path().join("index.js"))
        .current_dir(project.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let result = RunResult::from(output_with_timeout(child, TIMEOUT));
    let commands = vso::parse_all(&result.stdout);
    TaskRun { result, commands }
}

fn project() -> Project {
    let project = Project::new();
    project
        .file("workflow.yaml", WORKFLOW)
        .file("expected.txt", DB_PASSWORD);
    project
}

fn only<'a>(commands: &'a [VsoCommand], name: &str) -> &'a VsoCommand {
    let found = vso::find(commands, name);
    assert_eq!(found.len(), 1, "{name}: {commands:#?}");
    found[0]
}

#[test]
fn federated_sign_in_fetches_secrets_and_the_run_reports_through_logging_commands() {
    let server = vault(false);
    let project = project();
    let TaskRun { result, commands } = run_task(&project, &server, &[]);
    result.assert_code(0);

    // Workload identity federation: the job token bought an ID token, exchanged at Entra.
    let oidc = server.requests_to("/fleet/_apis/");
    assert_eq!(oidc.len(), 1, "{:?}", server.requests());
    assert_eq!(oidc[0].original_host.as_deref(), Some("dev.azure.com"));
    assert_eq!(
        oidc[0].authorization.as_deref(),
        Some(format!("Bearer {SYSTEM_ACCESS_TOKEN}").as_str())
    );
    let entra = server.requests_to(&format!("/{TENANT_ID}/oauth2/v2.0/token"));
    assert_eq!(entra.len(), 1);
    assert_eq!(
        entra[0].original_host.as_deref(),
        Some("login.microsoftonline.com")
    );
    assert_eq!(entra[0].status, 200);
    let vault = server.requests_to("/secrets/db-password");
    assert_eq!(vault.first().unwrap().status, 401, "challenge first");
    assert_eq!(vault.last().unwrap().status, 200);
    assert_eq!(
        vault.last().unwrap().original_host.as_deref(),
        Some("fleet-kv.vault.azure.net"),
        "the task input names the vault"
    );

    // Every secret is announced before any other logging command or group.
    let stdout_lines: Vec<&str> = result.stdout.lines().collect();
    let first_other = stdout_lines
        .iter()
        .position(|line| !line.starts_with("##vso[task.setsecret]"))
        .unwrap();
    let announced: Vec<String> = stdout_lines[..first_other]
        .iter()
        .map(|line| vso::parse_line(line).unwrap().data)
        .collect();
    assert!(
        announced.contains(&SYSTEM_ACCESS_TOKEN.to_owned()),
        "{announced:?}"
    );
    assert!(announced.contains(&DB_PASSWORD.to_owned()), "{announced:?}");
    // ... and appears nowhere else: not in other lines, stderr, artifacts or the JUnit file.
    for secret in [
        DB_PASSWORD,
        SYSTEM_ACCESS_TOKEN,
        OIDC_TOKEN,
        FEDERATED_ACCESS_TOKEN,
    ] {
        for line in &stdout_lines[first_other..] {
            assert!(!line.contains(secret), "stdout leaks a secret: {line}");
        }
        assert!(!result.stderr.contains(secret), "{}", result.stderr);
        for (path, text) in files_under(&project.artifacts()) {
            assert!(!text.contains(secret), "{path} leaks a secret:\n{text}");
        }
    }
    assert!(project.read("artifacts/junit.xml").contains("<testcase"));
    assert!(
        project
            .read("artifacts/steps/1-steps/leak.log")
            .contains("password=***")
    );

    // One group per step run, each closed.
    let groups: Vec<&str> = stdout_lines
        .iter()
        .filter_map(|line| vso::parse_formatting(line))
        .filter(|(kind, _)| *kind == "group")
        .map(|(_, name)| name)
        .collect();
    assert_eq!(
        groups,
        [
            "iteration 1 · check",
            "iteration 1 · lint",
            "iteration 1 · leak"
        ]
    );
    let ends = stdout_lines
        .iter()
        .filter(|l| **l == "##[endgroup]")
        .count();
    assert_eq!(ends, groups.len());

    // The optional failure is a warning at its step's line.
    let issue = only(&commands, "task.logissue");
    assert_eq!(issue.property("type"), Some("warning"));
    assert_eq!(issue.property("sourcepath"), Some("workflow.yaml"));
    assert_eq!(
        issue.property("linenumber"),
        Some(line_of(WORKFLOW, "lint").as_str())
    );
    assert!(
        issue
            .data
            .starts_with("lint failed in iteration 1: exit code 1"),
        "{}",
        issue.data
    );

    let progress = vso::find(&commands, "task.setprogress");
    assert_eq!(progress.first().unwrap().property("value"), Some("0"));
    assert_eq!(progress.last().unwrap().property("value"), Some("100"));

    let upload = only(&commands, "artifact.upload");
    assert_eq!(Path::new(&upload.data), project.artifacts());
    let summary = only(&commands, "task.uploadsummary");
    assert_eq!(
        PathBuf::from(&summary.data),
        project.artifacts().join("summary.md")
    );
    assert!(project.artifacts().join("summary.md").is_file());
    assert!(
        vso::find(&commands, "results.publish").is_empty(),
        "PublishTestResults@2 does it"
    );

    let complete = commands.last().unwrap();
    assert_eq!(complete.command, "task.complete");
    assert_eq!(complete.property("result"), Some("SucceededWithIssues"));
}

#[test]
fn a_failed_required_step_is_an_error_at_its_line_and_the_task_fails() {
    let server = vault(false);
    let project = project();
    let workflow = WORKFLOW.replace(
        r#"test "$PW" = "$(cat expected.txt)""#,
        r#"echo "expected 200, got 503"; exit 4"#,
    );
    project.file("workflow.yaml", &workflow);
    let TaskRun { result, commands } = run_task(&project, &server, &[]);
    result.assert_code(1);
    let errors: Vec<&VsoCommand> = vso::find(&commands, "task.logissue")
        .into_iter()
        .filter(|c| c.property("type") == Some("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{commands:#?}");
    assert_eq!(errors[0].property("sourcepath"), Some("workflow.yaml"));
    assert_eq!(
        errors[0].property("linenumber"),
        Some(line_of(&workflow, "check").as_str())
    );
    assert!(
        errors[0]
            .data
            .starts_with("check failed in iteration 1: exit code 4"),
        "{}",
        errors[0].data
    );
    let complete = commands.last().unwrap();
    assert_eq!(complete.command, "task.complete");
    assert_eq!(complete.property("result"), Some("Failed"));
}

#[test]
fn a_missing_secret_fails_the_task_before_anything_runs() {
    let server = vault(false);
    let project = project();
    project.file(
        "workflow.yaml",
        &WORKFLOW.replace("[db-password]", "[db-password, gone]"),
    );
    let TaskRun { result, commands } = run_task(&project, &server, &[]);
    result.assert_code(1);
    let issue = only(&commands, "task.logissue");
    assert_eq!(issue.property("type"), Some("error"));
    assert!(
        issue.data.contains("secret `gone` does not exist"),
        "{}",
        issue.data
    );
    assert!(issue.data.contains("nothing ran"), "{}", issue.data);
    let complete = commands.last().unwrap();
    assert_eq!(complete.property("result"), Some("Failed"));
    assert!(!project.artifacts().exists());
    assert!(!result.stdout.contains("##[group]"));
}

#[test]
fn a_vault_input_without_workflow_secrets_is_a_warning() {
    let server = vault(false);
    let project = project();
    project.file(
        "workflow.yaml",
        "name: plain\nsteps:\n  - {id: ok, gate: \"true\"}\n",
    );
    let TaskRun { result, commands } = run_task(&project, &server, &[]);
    result.assert_code(0);
    let issue = only(&commands, "task.logissue");
    assert_eq!(issue.property("type"), Some("warning"));
    assert!(
        issue
            .data
            .contains("key vault `fleet-kv` is given, but the workflow lists no `secrets`"),
        "{}",
        issue.data
    );
    assert_eq!(
        commands.last().unwrap().property("result"),
        Some("Succeeded")
    );
    assert!(server.requests().is_empty());
}

#[test]
fn bad_inputs_fail_the_task_with_every_problem_named() {
    let server = vault(false);
    let project = project();
    let TaskRun { result, commands } = run_task(
        &project,
        &server,
        &[("INPUT_WORKFLOWFILE", ""), ("INPUT_MAXITERATIONS", "zero")],
    );
    result.assert_code(2);
    let issue = only(&commands, "task.logissue");
    assert!(
        issue.data.contains("input `workflowFile`: is required"),
        "{}",
        issue.data
    );
    assert!(
        issue.data.contains("input `maxIterations`"),
        "{}",
        issue.data
    );
    assert_eq!(commands.last().unwrap().property("result"), Some("Failed"));
    assert!(server.requests().is_empty(), "nothing was fetched");
}

#[test]
fn run_inside_a_pipeline_speaks_to_the_agent_too() {
    let project = Project::new();
    project.file(
        "workflow.yaml",
        "name: plain\nsteps:\n  - {id: build, gate: \"echo built\"}\n  - id: lint\n    gate: \"exit 1\"\n    required: false\n",
    );
    let artifacts = project.artifacts();
    let output = project
        .command(&[
            "run",
            "workflow.yaml",
            "--artifacts",
            artifacts.to_str().unwrap(),
        ])
        .env("TF_BUILD", "True")
        .output()
        .unwrap();
    let result = RunResult::from(output);
    result.assert_code(0);
    let commands = vso::parse_all(&result.stdout);
    let issue = only(&commands, "task.logissue");
    assert_eq!(issue.property("linenumber"), Some("4"));
    assert_eq!(
        commands.last().unwrap().property("result"),
        Some("SucceededWithIssues")
    );
    // The terminal view is not printed as well.
    assert!(
        !result.stderr.contains("succeeded with issues"),
        "{}",
        result.stderr
    );
}

#[test]
fn a_service_principal_connection_signs_in_with_its_secret_and_keeps_it_secret() {
    let server = vault(false);
    let project = project();
    let auth = format!(
        r#"{{"parameters":{{"tenantid":"{TENANT_ID}","serviceprincipalid":"{CLIENT_ID}","authenticationType":"spnKey","serviceprincipalkey":"{CLIENT_SECRET}"}},"scheme":"ServicePrincipal"}}"#
    );
    let auth_variable = format!("ENDPOINT_AUTH_{CONNECTION_ID}");
    let TaskRun { result, commands } = run_task(
        &project,
        &server,
        &[(auth_variable.as_str(), auth.as_str())],
    );
    result.assert_code(0);
    assert!(
        server.requests_to("/fleet/_apis/").is_empty(),
        "no federation"
    );
    let entra = server.requests_to(&format!("/{TENANT_ID}/oauth2/v2.0/token"));
    assert_eq!(entra.len(), 1);
    assert_eq!(entra[0].status, 200);
    let announced: Vec<&str> = vso::find(&commands, "task.setsecret")
        .iter()
        .map(|c| c.data.as_str())
        .collect();
    assert!(announced.contains(&CLIENT_SECRET), "{announced:?}");
    let stdout_without_announcements: String = result
        .stdout
        .lines()
        .filter(|line| !line.starts_with("##vso[task.setsecret]"))
        .collect();
    for secret in [CLIENT_SECRET, DB_PASSWORD, FEDERATED_ACCESS_TOKEN] {
        assert!(!stdout_without_announcements.contains(secret));
        assert!(!result.stderr.contains(secret));
        for (path, text) in files_under(&project.artifacts()) {
            assert!(!text.contains(secret), "{path} leaks a secret");
        }
    }
}

/// The task reaches an Entra ID AKS cluster from its service connection alone (workload
/// identity federation): Resource Manager gives the kubeconfig, Entra a token for the AKS
/// server application, and the fake API server, which takes no other token, gets the deploy.
#[test]
fn the_task_deploys_to_aks_from_the_service_connection() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cluster = runtime.block_on(TestCluster::start());
    cluster.fake.require_token_audience(AKS_SERVER_ID);
    let server = AzureServer::start(AzureConfig::with_aks(FakeAks::entra(&cluster.fake.url())));
    let project = project();
    project
        .file(
            "aks.yaml",
            &format!(
                "name: aks-task\nenvironments:\n  staging:\n    namespace: {NAMESPACE}\n    aks: {{subscription: {SUBSCRIPTION_ID}, resource_group: fleet-rg, cluster: fleet-aks}}\nsteps:\n  - id: deploy\n    deploy: {{manifests: [k8s/app.yaml], image: \"registry.local/web:{{{{ ado.build_id }}}}\"}}\n"
            ),
        )
        .file(
            "k8s/app.yaml",
            &deployment_manifest("web", "placeholder", "").replace("{{ vars.replicas }}", "1"),
        );

    let TaskRun { result, .. } = run_task(
        &project,
        &server,
        &[
            ("INPUT_WORKFLOWFILE", "aks.yaml"),
            ("INPUT_ENVIRONMENT", "staging"),
        ],
    );

    result.assert_code(0);
    let image = cluster
        .fake
        .deployment(NAMESPACE, "web")
        .and_then(|d| d.spec)
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image);
    assert_eq!(image.as_deref(), Some("registry.local/web:4711"));
    let calls = server.requests_to("/subscriptions/");
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].status, 200);
    assert!(server.aks_tokens_issued() >= 1);
}
