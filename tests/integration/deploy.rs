//! The deploy and rollback steps against the fake Kubernetes API server, through the real kube
//! client: good rollouts, every failure reason, rollback, bad input, 403s and outages.

use std::time::{Duration, Instant};

use agent_orch::cluster::fake::Failure;
use agent_orch::cluster::ledger::DeployLedger;
use agent_orch::steps::StepStatus;

use crate::support::kube_api::{NAMESPACE, TestCluster, deployment_manifest};

const CONFIG_MAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  LOG_LEVEL: info
---
";

#[tokio::test]
async fn good_rollout_applies_everything_and_records_the_revision() {
    let cluster = TestCluster::start().await;
    let manifest = format!(
        "{CONFIG_MAP}{}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: 8080}}]\n",
        deployment_manifest("web", "placeholder", "")
    );
    cluster.write("k8s/app.yaml", &manifest);
    let config = cluster
        .deploy_config("manifests: [k8s/app.yaml]\nimage: \"{{ vars.registry }}/web:1.0.0\"");

    let outcome = cluster.deploy(&config).await;

    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert!(
        outcome.message.starts_with("rolled out web (revision 1)"),
        "{}",
        outcome.message
    );
    assert_eq!(outcome.outputs["revision"], "1");
    assert_eq!(outcome.outputs["images"], "app=registry.local/web:1.0.0");
    let rollout: f64 = outcome.outputs["rollout_seconds"].parse().expect("seconds");
    assert!(rollout > 0.0 && rollout < 10.0, "{rollout}");
    let deployment = cluster
        .fake
        .deployment(NAMESPACE, "web")
        .expect("should succeed");
    let status = deployment.status.expect("should succeed");
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.updated_replicas
        ),
        (Some(2), Some(2), Some(2))
    );
    assert_eq!(
        cluster.image_of("web").as_deref(),
        Some("registry.local/web:1.0.0")
    );
    assert_eq!(cluster.fake.objects("ConfigMap", NAMESPACE).len(), 1);
    assert_eq!(cluster.fake.objects("Service", NAMESPACE).len(), 1);

    let entries = cluster.ledger.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].before, None,
        "the deployment did not exist before the run"
    );
    assert_eq!(entries[0].deployed_revision, Some(1));
    let saved = std::fs::read_to_string(cluster.artifacts().join("artifacts/deployments.json"))
        .expect("should succeed");
    assert!(saved.contains("\"deployed_revision\": 1"), "{saved}");
    let log =
        std::fs::read_to_string(outcome.log_path.expect("should succeed")).expect("should succeed");
    assert!(
        log.contains("applied Deployment/web (k8s/app.yaml:8)"),
        "{log}"
    );

    // A second deploy with a new image is revision 2; the ledger keeps the state before the run.
    let config = cluster.deploy_config("manifests: [k8s/app.yaml]\nimages: {app: \"web:2.0.0\"}");
    let outcome = cluster.deploy(&config).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(outcome.outputs["revision"], "2");
    assert_eq!(
        cluster.fake.pods(NAMESPACE, "web").len(),
        2,
        "old pods are gone"
    );
    assert_eq!(cluster.ledger.entries()[0].before, None);
}

/// Deploys `web:<tag>` in its own deployment and checks the failure, its evidence and how fast
/// it was reported after the pod showed it.
async fn assert_detected(
    cluster: &TestCluster,
    name: &str,
    image: &str,
    extra: &str,
    expected: &str,
    evidence: &[&str],
) {
    cluster.write(
        &format!("k8s/{name}.yaml"),
        &deployment_manifest(name, image, extra),
    );
    let config = cluster.deploy_config(&format!(
        "manifests: [k8s/{name}.yaml]\nreadiness_timeout: 1s"
    ));
    let outcome = cluster.deploy(&config).await;
    let finished = Instant::now();

    assert_eq!(outcome.status, StepStatus::Failed, "{name}: {outcome:#?}");
    assert_eq!(
        outcome.outputs.get("failure_reason").map(String::as_str),
        Some(expected),
        "{name}: {}",
        outcome.message
    );
    assert!(
        outcome.message.starts_with(&format!(
            "rollout of deployment `{name}` in namespace `{NAMESPACE}` failed: {expected}"
        )),
        "{}",
        outcome.message
    );
    let text = outcome.evidence.as_deref().unwrap_or_default();
    assert!(
        text.len() <= 6 * 1024 + 32,
        "evidence is trimmed: {} bytes",
        text.len()
    );
    for needle in evidence {
        assert!(
            text.contains(needle),
            "{name}: evidence lacks {needle:?}:\n{text}"
        );
    }
    if expected != "ReadinessNeverReached" {
        let (reported, at) = cluster
            .fake
            .failure_reported(NAMESPACE, name)
            .expect("should succeed");
        assert_eq!(reported, expected);
        let latency = finished.duration_since(at);
        assert!(
            latency < Duration::from_secs(5),
            "{name}: detected {latency:?} after the pod reported it"
        );
    }
}

#[tokio::test]
async fn every_failure_reason_fails_the_step_within_seconds() {
    let cluster = TestCluster::start().await;
    assert_detected(
        &cluster,
        "crash",
        "web:crashloop",
        "",
        "CrashLoopBackOff",
        &[
            "ECONNREFUSED",
            "(previous)",
            "Warning BackOff",
            "last terminated: Error exit 1",
        ],
    )
    .await;
    assert_detected(
        &cluster,
        "pull",
        "web:imagepullbackoff",
        "",
        "ImagePullBackOff",
        &["Back-off pulling image", "Warning BackOff"],
    )
    .await;
    assert_detected(
        &cluster,
        "pull-first",
        "web:errimagepull",
        "",
        "ErrImagePull",
        &["failed to pull and unpack image"],
    )
    .await;
    assert_detected(
        &cluster,
        "config",
        "web:configerror",
        "",
        "CreateContainerConfigError",
        &["secret \"fleet-db-credentials\" not found"],
    )
    .await;
    assert_detected(
        &cluster,
        "badname",
        "web:invalidimagename",
        "",
        "InvalidImageName",
        &["couldn't parse image name"],
    )
    .await;
    assert_detected(
        &cluster,
        "oom",
        "web:oomkilled",
        "",
        "OOMKilled",
        &["OOMKilled exit 137", "loading fleet cache"],
    )
    .await;
    assert_detected(
        &cluster,
        "unready",
        "web:unready",
        "",
        "ReadinessNeverReached",
        &["Readiness probe failed", "waiting for upstream"],
    )
    .await;
    assert_detected(
        &cluster,
        "stuck",
        "web:unschedulable",
        "  progressDeadlineSeconds: 1\n",
        "ProgressDeadlineExceeded",
        &["has timed out progressing", "Unschedulable"],
    )
    .await;
}

#[tokio::test]
async fn a_failure_injected_per_deployment_is_detected() {
    let cluster = TestCluster::start().await;
    cluster
        .fake
        .inject_failure(NAMESPACE, "api", Failure::CreateContainerConfigError);
    assert_detected(
        &cluster,
        "api",
        "api:1.0.0",
        "",
        "CreateContainerConfigError",
        &["fleet-db-credentials"],
    )
    .await;
}

#[tokio::test]
async fn rollback_after_a_failed_verify_restores_the_revision_live_before_the_run() {
    let cluster = TestCluster::start().await;
    cluster.write("k8s/web.yaml", &deployment_manifest("web", "web:1.0.0", ""));
    // An earlier run put revision 1 in place.
    let earlier = DeployLedger::in_memory();
    let config = cluster.deploy_config("manifests: [k8s/web.yaml]");
    let outcome = cluster.deploy_with(&config, "deploy", &earlier, None).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");

    // This run deploys 2.0.0, which rolls out fine, but its verify step fails.
    let config = cluster.deploy_config("manifests: [k8s/web.yaml]\nimage: web:2.0.0");
    let outcome = cluster.deploy(&config).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(cluster.revision_of("web").as_deref(), Some("2"));

    let outcome = cluster.rollback("deployment: deploy").await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(outcome.outputs["rolled_back"], "web");
    assert_eq!(cluster.image_of("web").as_deref(), Some("web:1.0.0"));
    // kubectl's numbering: the restored template becomes the newest revision.
    assert_eq!(cluster.revision_of("web").as_deref(), Some("3"));
    let status = cluster
        .fake
        .deployment(NAMESPACE, "web")
        .expect("should succeed")
        .status
        .expect("should succeed");
    assert_eq!(status.available_replicas, Some(2));
    let pods = cluster.fake.pods(NAMESPACE, "web");
    assert!(pods.iter().all(|p| {
        p.spec.as_ref().expect("should succeed").containers[0]
            .image
            .as_deref()
            == Some("web:1.0.0")
    }));

    // Idempotent: a second rollback changes nothing.
    let outcome = cluster.rollback("{}").await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(cluster.revision_of("web").as_deref(), Some("3"));
    assert!(cluster.ledger.entries()[0].rolled_back);
}

#[tokio::test]
async fn rollback_after_a_crash_loop_and_after_a_crash_of_agent_orch() {
    let cluster = TestCluster::start().await;
    cluster.write("k8s/web.yaml", &deployment_manifest("web", "web:1.0.0", ""));
    let config = cluster.deploy_config("manifests: [k8s/web.yaml]");
    let outcome = cluster
        .deploy_with(&config, "deploy", &DeployLedger::in_memory(), None)
        .await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");

    let config = cluster.deploy_config("manifests: [k8s/web.yaml]\nimage: web:crashloop");
    let outcome = cluster.deploy(&config).await;
    assert_eq!(outcome.outputs["failure_reason"], "CrashLoopBackOff");

    // The process died here: a new ledger read from the artifacts folder still knows.
    let reloaded =
        DeployLedger::in_artifacts(&cluster.artifacts().join("artifacts")).expect("should succeed");
    let outcome = cluster.rollback_with("{}", &reloaded).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(cluster.image_of("web").as_deref(), Some("web:1.0.0"));
    let status = cluster
        .fake
        .deployment(NAMESPACE, "web")
        .expect("should succeed")
        .status
        .expect("should succeed");
    assert_eq!(status.ready_replicas, Some(2));
}

#[tokio::test]
async fn rollback_deletes_what_the_run_created_and_passes_when_nothing_was_deployed() {
    let cluster = TestCluster::start().await;
    let outcome = cluster.rollback("{}").await;
    assert_eq!(outcome.status, StepStatus::Passed);
    assert_eq!(
        outcome.message,
        "nothing to roll back: this run deployed nothing"
    );

    cluster.write(
        "k8s/new.yaml",
        &deployment_manifest("fresh", "web:crashloop", ""),
    );
    let outcome = cluster
        .deploy(&cluster.deploy_config("manifests: [k8s/new.yaml]"))
        .await;
    assert_eq!(outcome.status, StepStatus::Failed);
    let outcome = cluster.rollback("deployment: deploy").await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert!(cluster.fake.deployment(NAMESPACE, "fresh").is_none());
    assert!(cluster.fake.replica_sets(NAMESPACE, "fresh").is_empty());
    let outcome = cluster.rollback("deployment: other-step").await;
    assert_eq!(
        outcome.message,
        "nothing to roll back: step `other-step` deployed nothing"
    );
}

#[tokio::test]
async fn a_yaml_error_names_file_and_line_and_nothing_is_applied() {
    let cluster = TestCluster::start().await;
    cluster.write(
        "k8s/bad.yaml",
        &format!("{CONFIG_MAP}apiVersion: v1\nkind: Service\nmetadata:\n  name: [web\n"),
    );
    let outcome = cluster
        .deploy(&cluster.deploy_config("manifests: [k8s/bad.yaml]"))
        .await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert!(
        outcome
            .message
            .starts_with("k8s/bad.yaml:11:9: invalid YAML: unclosed bracket"),
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains("invalid YAML"),
        "{}",
        outcome.message
    );
    assert!(cluster.fake.objects("ConfigMap", NAMESPACE).is_empty());
}

#[tokio::test]
async fn an_unknown_kind_is_named_before_anything_is_applied() {
    let cluster = TestCluster::start().await;
    for (api_version, kind) in [("example.com/v1", "Widget"), ("v1", "Gadget")] {
        cluster.write(
            "k8s/odd.yaml",
            &format!("{CONFIG_MAP}apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: w\n"),
        );
        let outcome = cluster
            .deploy(&cluster.deploy_config("manifests: [k8s/odd.yaml]"))
            .await;
        assert_eq!(outcome.status, StepStatus::Failed);
        assert_eq!(
            outcome.message,
            format!(
                "k8s/odd.yaml:8: failed to discover kind {kind} in {api_version}: unknown kind `{kind}` (apiVersion `{api_version}`): the cluster does not serve it; nothing was applied"
            )
        );
        assert!(cluster.fake.objects("ConfigMap", NAMESPACE).is_empty());
    }
}

#[tokio::test]
async fn a_403_names_verb_resource_and_namespace_and_what_was_applied() {
    let cluster = TestCluster::start().await;
    cluster.fake.forbid("patch", "deployments", Some(NAMESPACE));
    cluster.write(
        "k8s/app.yaml",
        &format!("{CONFIG_MAP}{}", deployment_manifest("web", "web:1", "")),
    );
    let outcome = cluster
        .deploy(&cluster.deploy_config("manifests: [k8s/app.yaml]"))
        .await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert!(
        outcome.message.starts_with("k8s/app.yaml:8: failed to patch deployments.apps `web` in namespace `staging`: forbidden: the credentials may not patch deployments.apps in namespace `staging`"),
        "{}",
        outcome.message
    );
    assert!(
        outcome
            .message
            .ends_with("; applied before the failure: ConfigMap/web-config"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_retried_within_bounds() {
    let cluster = TestCluster::start().await;
    cluster.write("k8s/web.yaml", &deployment_manifest("web", "web:1", ""));
    let config = cluster.deploy_config("manifests: [k8s/web.yaml]");
    cluster.fake.go_down().await;

    let started = Instant::now();
    let outcome = cluster.deploy(&config).await;
    let took = started.elapsed();
    assert_eq!(outcome.status, StepStatus::Failed);
    let expected = format!(
        "failed to discover kind Deployment in apps/v1: api server {} unreachable after 5 attempts",
        cluster.fake.url()
    );
    assert!(outcome.message.contains(&expected), "{}", outcome.message);
    // Backoff 0.2 + 0.4 + 0.8 + 1.6 s between five attempts.
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(8),
        "took {took:?}"
    );

    // A short outage is ridden out.
    let fake = &cluster.fake;
    let (outcome, came_up) = tokio::join!(cluster.deploy(&config), async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        fake.come_up().await
    });
    came_up.expect("should succeed");
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
}

#[tokio::test]
async fn the_step_timeout_and_cancel_end_the_wait_with_evidence() {
    let cluster = TestCluster::start().await;
    cluster.write(
        "k8s/stuck.yaml",
        &deployment_manifest("stuck", "web:unschedulable", ""),
    );
    let config = cluster.deploy_config("manifests: [k8s/stuck.yaml]");
    let started = Instant::now();
    let outcome = cluster
        .deploy_with(
            &config,
            "deploy",
            &cluster.ledger,
            Some(Duration::from_secs(1)),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(outcome.status, StepStatus::Failed);
    assert!(
        outcome.message.contains("timed out after"),
        "{}",
        outcome.message
    );
    assert!(
        outcome
            .evidence
            .expect("should succeed")
            .contains("FailedScheduling")
    );

    let cancel = cluster.cancel.clone();
    let started = Instant::now();
    let (outcome, ()) = tokio::join!(cluster.deploy(&config), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    assert_eq!(outcome.status, StepStatus::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_named_context_picks_its_cluster() {
    let cluster = TestCluster::start().await;
    let two_contexts = format!(
        "{}- name: broken\n  context:\n    cluster: nowhere\n    user: fake\n",
        cluster.fake.kubeconfig("default").replace(
            "contexts:\n",
            "- name: nowhere\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n"
        )
    )
    .replace("current-context: fake\n", "current-context: broken\n");
    let path = cluster.write("two-contexts.yaml", &two_contexts);
    cluster.write("k8s/web.yaml", &deployment_manifest("web", "web:1", ""));
    let config = cluster.deploy_config(&format!(
        "manifests: [k8s/web.yaml]\nkubeconfig: {}\ncontext: fake\nnamespace: other",
        path.display()
    ));
    let outcome = cluster.deploy(&config).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert!(cluster.fake.deployment("other", "web").is_some());
}

#[tokio::test]
async fn an_outage_during_the_wait_fails_within_the_retry_budget() {
    let cluster = TestCluster::start().await;
    cluster.write(
        "k8s/web.yaml",
        &deployment_manifest("web", "web:unready", ""),
    );
    let config = cluster.deploy_config("manifests: [k8s/web.yaml]\nreadiness_timeout: 60s");
    let fake = &cluster.fake;
    let started = Instant::now();
    let (outcome, ()) = tokio::join!(cluster.deploy(&config), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        fake.go_down().await;
    });
    let took = started.elapsed();
    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert!(
        outcome.message.starts_with(&format!(
            "rollout of deployment `web` in namespace `staging` could not be followed: failed to watch deployments.apps, replicasets.apps and pods in namespace `staging`: api server {} unreachable after",
            cluster.fake.url()
        )),
        "{}",
        outcome.message
    );
    // Half a second of rollout, then the three-second retry budget, with slack for a busy machine.
    assert!(
        took >= Duration::from_millis(3400) && took < Duration::from_secs(8),
        "took {took:?}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn an_exec_credential_plugin_supplies_the_token_and_it_is_never_logged() {
    use std::os::unix::fs::PermissionsExt as _;

    const TOKEN: &str = "s3cr3t-exec-t0ken";
    let cluster = TestCluster::start().await;
    cluster.fake.require_bearer_token(TOKEN);
    let plugin = cluster.write(
        "bin/fake-kubelogin",
        &format!("#!/bin/sh\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{TOKEN}\"}}}}'\n"),
    );
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let with_exec = cluster.fake.kubeconfig("default").replace(
        "  user: {}\n",
        &format!(
            "  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
            plugin.display()
        ),
    );
    let exec_config = cluster.write("exec-kubeconfig.yaml", &with_exec);
    cluster.write("k8s/web.yaml", &deployment_manifest("web", "web:1", ""));

    // Without credentials the cluster refuses, and the step says so.
    let outcome = cluster
        .deploy(&cluster.deploy_config("manifests: [k8s/web.yaml]"))
        .await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert!(
        outcome.message.contains("Unauthorized"),
        "{}",
        outcome.message
    );

    let config = cluster.deploy_config(&format!(
        "manifests: [k8s/web.yaml]\nkubeconfig: {}",
        exec_config.display()
    ));
    let outcome = cluster.deploy(&config).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    let log = std::fs::read_to_string(outcome.log_path.as_ref().expect("log")).expect("read log");
    assert!(!log.contains(TOKEN) && !outcome.message.contains(TOKEN));
    let ledger = std::fs::read_to_string(cluster.artifacts().join("artifacts/deployments.json"))
        .expect("ledger");
    assert!(!ledger.contains(TOKEN));
}
