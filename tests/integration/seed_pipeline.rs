//! The seed's pipeline end to end, every stage through the Node shim (`AgentOrch@1`) running the
//! real binary against the fakes: in staging a failing gate is repaired (fixer patch from the
//! OpenAI fake, approved by the reviewer), the image is "built" by a `docker` script that records
//! its tag (`run.source_hash`), deployed to AKS (ARM + Entra fakes, the API server requiring the
//! AKS-audience token), verified, shipped as an Azure Repos pull request and exported as an output
//! variable; then production, in a deployment job, deploys exactly that image, and a crash loop
//! there is rolled back by `on_give_up`.

use std::path::Path;

use agent_orch::cluster::fake::Failure;

use crate::pull_request::git;
use crate::support::arm_fake::FakeAks;
use crate::support::azure_server::{
    AKS_SERVER_ID, AzureConfig, AzureServer, SUBSCRIPTION_ID, SYSTEM_ACCESS_TOKEN,
};
use crate::support::cli::Project;
use crate::support::forge_fake::{Flavor, ForgeFake, PROJECT, REPOSITORY_ID, REPOSITORY_NAME};
use crate::support::kube_api::{TestCluster, deployment_manifest};
use crate::support::openai_fake::{OpenAiFake, Reply, Route};
use crate::support::vso;
use crate::task_mode::{TaskRun, run_task};

const STAGING: &str = "fleet-staging";
const PROD: &str = "fleet-prod";
const BROKEN: &str = "#!/bin/sh\necho \"Hello, wrld\"\n";
const CHECK: &str = "#!/bin/sh\nout=$(sh src/greet.sh)\n[ \"$out\" = \"Hello, world\" ] || { echo \"FAIL: src/greet.sh printed '$out'\"; exit 1; }\necho ok\n";
const GOOD_FIX: &str = "```diff\n--- a/src/greet.sh\n+++ b/src/greet.sh\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-echo \"Hello, wrld\"\n+echo \"Hello, world\"\n```\n";
const APPROVE: &str = r#"{"approved": true, "reason": "fixes the typo and nothing else", "risk": "low", "suggestion": null}"#;
/// Records the tag it is asked to build, as `docker build -t <tag> .` would use it.
const DOCKER: &str = "#!/bin/sh\n[ \"$1\" = build ] && [ \"$2\" = -t ] || exit 2\nprintf '%s\\n' \"$3\" >> \"$DOCKER_LOG\"\n";

fn workflow() -> String {
    let aks = format!(
        "{{subscription: {SUBSCRIPTION_ID}, resource_group: fleet-rg, cluster: fleet-aks}}"
    );
    format!(
        r#"name: seed-pipeline
environments:
  staging: {{namespace: {STAGING}, aks: {aks}}}
  prod: {{namespace: {PROD}, require_approval: true, aks: {aks}}}
vars:
  image: ""
agents:
  fixer: {{model: gpt-4o}}
  reviewer: {{model: gpt-4o-mini}}
steps:
  - {{id: test, gate: "sh tests/check.sh"}}
  - {{id: build, gate: "docker build -t registry.local/web:{{{{ run.source_hash }}}} ."}}
  - id: deploy
    deploy: {{manifests: [k8s/app.yaml], image: "{{{{ vars.image or ('registry.local/web:' ~ run.source_hash) }}}}"}}
  - {{id: smoke, verify: {{script: "sh tests/check.sh"}}}}
repair:
  - {{id: propose, fix: {{agent: fixer}}}}
  - {{id: approve, review: {{agent: reviewer}}}}
on_success:
  - {{id: pr, pull_request: {{provider: azure_repos}}}}
on_give_up:
  - {{id: undo, rollback: {{deployment: deploy}}}}
outputs:
  image: "{{{{ vars.image or ('registry.local/web:' ~ run.source_hash) }}}}"
"#
    )
}

#[cfg(unix)]
fn make_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn image_of(cluster: &TestCluster, namespace: &str) -> Option<String> {
    cluster
        .fake
        .deployment(namespace, "web")
        .and_then(|d| d.spec)
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image)
}

fn output_variables(run: &TaskRun) -> Vec<(String, String, String)> {
    vso::find(&run.commands, "task.setvariable")
        .into_iter()
        .map(|c| {
            (
                c.property("variable").unwrap_or_default().to_owned(),
                c.property("isOutput").unwrap_or_default().to_owned(),
                c.data.clone(),
            )
        })
        .collect()
}

/// The ids of the steps that finished, with their status, in order, from `audit.jsonl`.
fn finished_steps(artifacts: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(artifacts.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|e| e["event"] == "step_finished")
        .map(|e| {
            (
                e["step_id"].as_str().unwrap_or_default().to_owned(),
                e["outcome"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_seed_pipeline_repairs_ships_and_promotes_one_image_and_rolls_production_back() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cluster = runtime.block_on(TestCluster::start());
    cluster.fake.require_token_audience(AKS_SERVER_ID);
    let server = AzureServer::start(AzureConfig::with_aks(FakeAks::entra(&cluster.fake.url())));
    let openai = runtime.block_on(OpenAiFake::start());
    openai
        .push(Route::OpenAi, Reply::text(GOOD_FIX))
        .push(Route::OpenAi, Reply::text(APPROVE));
    let forge = ForgeFake::start(Flavor::AzureRepos, SYSTEM_ACCESS_TOKEN);

    // The checkout: `main` with the bug, pushed to the forge's bare repository.
    let project = Project::new();
    let dir = project.path();
    std::fs::remove_dir(dir.join(".git")).unwrap();
    project
        .file("src/greet.sh", BROKEN)
        .file("tests/check.sh", CHECK)
        .file(".gitignore", "artifacts/\n")
        .file("pipeline.yaml", &workflow())
        .file(
            "k8s/app.yaml",
            &deployment_manifest("web", "placeholder", "").replace("{{ vars.replicas }}", "1"),
        );
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "the bug"]);
    git(dir, &["remote", "add", "origin", &forge.git_url()]);
    let header = format!("http.extraheader=AUTHORIZATION: bearer {SYSTEM_ACCESS_TOKEN}");
    git(dir, &["-c", &header, "push", "-q", "origin", "main"]);

    let tools = tempfile::tempdir().unwrap();
    let docker = tools.path().join("bin/docker");
    std::fs::create_dir_all(docker.parent().unwrap()).unwrap();
    std::fs::write(&docker, DOCKER).unwrap();
    make_executable(&docker);
    let docker_log = tools.path().join("docker.log");
    let path = format!(
        "{}:{}",
        tools.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let collection = forge.collection_uri();
    let base_url = openai.base_url();
    let common = [
        ("PATH", path.as_str()),
        ("DOCKER_LOG", docker_log.to_str().unwrap()),
        ("OPENAI_BASE_URL", base_url.as_str()),
        ("OPENAI_API_KEY", "sk-seed-test-0123456789abcdef"),
        ("SYSTEM_TEAMFOUNDATIONCOLLECTIONURI", collection.as_str()),
        ("SYSTEM_TEAMPROJECT", PROJECT),
        ("BUILD_REPOSITORY_ID", REPOSITORY_ID),
        ("BUILD_REPOSITORY_NAME", REPOSITORY_NAME),
        ("BUILD_SOURCEBRANCH", "refs/heads/main"),
        ("INPUT_WORKFLOWFILE", "pipeline.yaml"),
        ("INPUT_KEYVAULTNAME", ""),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        common.iter().chain(extra).copied().collect()
    };

    // Staging: gate fails, repair, build, deploy, verify, pull request, output.
    let staging = run_task(
        &project,
        &server,
        &with(&[
            ("INPUT_ENVIRONMENT", "staging"),
            ("INPUT_MAXITERATIONS", "3"),
        ]),
    );
    staging.result.assert_code(0);
    assert_eq!(
        finished_steps(&project.artifacts()),
        [
            ("test", "failed"),
            ("build", "skipped"),
            ("deploy", "skipped"),
            ("smoke", "skipped"),
            ("propose", "passed"),
            ("approve", "passed"),
            ("test", "passed"),
            ("build", "passed"),
            ("deploy", "passed"),
            ("smoke", "passed"),
            ("pr", "passed"),
        ]
        .map(|(id, status)| (id.to_owned(), status.to_owned())),
    );
    let built = std::fs::read_to_string(&docker_log).unwrap();
    let built: Vec<&str> = built.lines().collect();
    assert_eq!(built.len(), 1, "built once, after the fix: {built:?}");
    let image = built[0].to_owned();
    assert!(image.starts_with("registry.local/web:"), "{image}");
    assert_eq!(image_of(&cluster, STAGING).as_deref(), Some(image.as_str()));
    assert!(server.aks_tokens_issued() >= 1);
    let pull_requests = forge.pull_requests();
    assert_eq!(pull_requests.len(), 1, "{pull_requests:?}");
    let branch = "refs/heads/agent-orch/fix-4711";
    assert_eq!(pull_requests[0].source, branch);
    assert_eq!(pull_requests[0].target, "refs/heads/main");
    let pushed = git(forge.bare(), &["rev-parse", branch]);
    assert!(
        git(forge.bare(), &["show", &format!("{pushed}:src/greet.sh")]).contains("Hello, world")
    );
    assert_eq!(
        output_variables(&staging),
        [("image".to_owned(), "true".to_owned(), image.clone())]
    );

    // Production, in a deployment job, with the exported image as `extraVariables`.
    // Each pipeline job has its own artifacts folder (its own deploy ledger): a rollback undoes
    // only what its own run deployed.
    let prod_job = tempfile::tempdir().unwrap();
    let bad_job = tempfile::tempdir().unwrap();
    let promote = format!("image={image}");
    let mut production = with(&[
        ("INPUT_ENVIRONMENT", "prod"),
        ("INPUT_MAXITERATIONS", "1"),
        ("ENVIRONMENT_NAME", "fleet-prod"),
    ]);
    production.push(("INPUT_EXTRAVARIABLES", promote.as_str()));
    production.push(("INPUT_ARTIFACTSFOLDER", prod_job.path().to_str().unwrap()));
    // Outside a deployment job, production (require_approval) refuses and deploys nothing.
    let unapproved: Vec<(&str, &str)> = production
        .iter()
        .copied()
        .filter(|(name, _)| *name != "ENVIRONMENT_NAME")
        .collect();
    let refused = run_task(&project, &server, &unapproved);
    assert_ne!(refused.result.code, Some(0), "{}", refused.result.stdout);
    assert!(
        refused.result.stdout.contains("requires approval"),
        "{}",
        refused.result.stdout
    );
    assert_eq!(image_of(&cluster, PROD), None);

    let prod = run_task(&project, &server, &production);
    prod.result.assert_code(0);
    assert_eq!(image_of(&cluster, PROD).as_deref(), Some(image.as_str()));
    assert_eq!(
        output_variables(&prod),
        [("image".to_owned(), "true".to_owned(), image.clone())]
    );
    assert_eq!(forge.pull_requests().len(), 1, "nothing new to deliver");
    // The build gate ran on the same tree, so it names the same tag it shipped.
    let built = std::fs::read_to_string(&docker_log).unwrap();
    assert_eq!(built.lines().last(), Some(image.as_str()), "{built}");

    // A bad release crash-loops in production; on_give_up rolls back to the promoted image.
    cluster
        .fake
        .inject_failure(PROD, "web", Failure::CrashLoopBackOff);
    let mut bad = with(&[
        ("INPUT_ENVIRONMENT", "prod"),
        ("INPUT_MAXITERATIONS", "1"),
        ("INPUT_EXTRAVARIABLES", "image=registry.local/web:next"),
        ("ENVIRONMENT_NAME", "fleet-prod"),
    ]);
    bad.push(("INPUT_ARTIFACTSFOLDER", bad_job.path().to_str().unwrap()));
    let failed = run_task(&project, &server, &bad);
    assert_ne!(failed.result.code, Some(0), "{}", failed.result.stdout);
    let steps = finished_steps(bad_job.path());
    assert!(
        steps.contains(&("deploy".to_owned(), "failed".to_owned())),
        "{steps:?}"
    );
    assert_eq!(
        steps.last(),
        Some(&("undo".to_owned(), "passed".to_owned())),
        "{steps:?}"
    );
    assert_eq!(image_of(&cluster, PROD).as_deref(), Some(image.as_str()));
    assert_eq!(image_of(&cluster, STAGING).as_deref(), Some(image.as_str()));
}
