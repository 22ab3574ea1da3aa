//! StatefulSets, DaemonSets and Jobs through the deploy and rollback steps, and manifests from
//! a `render` command, against the fake Kubernetes API server through the real kube client.

use std::time::{Duration, Instant};

use agent_orch::cluster::ledger::DeployLedger;
use agent_orch::steps::StepStatus;
use serde_json::Value;

use crate::support::kube_api::{NAMESPACE, TestCluster, deployment_manifest};

fn stateful_set(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
spec:
  serviceName: {name}
  replicas: {{{{ vars.replicas }}}}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
"
    )
}

fn daemon_set(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {name}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
"
    )
}

fn job(name: &str, image: &str, backoff_limit: u32) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  backoffLimit: {backoff_limit}
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: {image}
"
    )
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Deploys a good revision (an earlier run), then a crash-looping one in this run, checks it is
/// detected within seconds with the crash in evidence, and returns the outcome of rolling back.
async fn crash_loop_then_roll_back(cluster: &TestCluster, kind: &str, name: &str, manifest: &str) {
    cluster.write(&format!("k8s/{name}.yaml"), manifest);
    let config = cluster.deploy_config(&format!("manifests: [k8s/{name}.yaml]"));
    let earlier = DeployLedger::in_memory();
    let outcome = cluster.deploy_with(&config, "deploy", &earlier, None).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(outcome.outputs["revision"], "1");
    assert_eq!(outcome.outputs["workloads"], format!("{kind}/{name}"));

    let config = cluster.deploy_config(&format!(
        "manifests: [k8s/{name}.yaml]\nimage: {name}:crashloop"
    ));
    let outcome = cluster.deploy(&config).await;
    let finished = Instant::now();
    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert_eq!(outcome.outputs["failure_reason"], "CrashLoopBackOff");
    let lowercase = kind.to_lowercase();
    assert!(
        outcome.message.starts_with(&format!(
            "rollout of {lowercase} `{name}` in namespace `{NAMESPACE}` failed: CrashLoopBackOff in pod `{name}-"
        )),
        "{}",
        outcome.message
    );
    let evidence = outcome.evidence.unwrap_or_default();
    for needle in [
        "ECONNREFUSED",
        "(previous)",
        "Warning BackOff",
        &format!("{lowercase} `{name}`"),
    ] {
        assert!(
            evidence.contains(needle),
            "evidence lacks {needle:?}:\n{evidence}"
        );
    }
    let (reported, at) = cluster
        .fake
        .failure_reported(NAMESPACE, name)
        .expect("the fake reported the crash");
    assert_eq!(reported, "CrashLoopBackOff");
    let latency = finished.duration_since(at);
    assert!(
        latency < Duration::from_secs(5),
        "detected {latency:?} after the pod showed it"
    );
    let entries = cluster.ledger.entries();
    assert_eq!(entries.len(), 1);
    let before = entries[0]
        .before
        .as_ref()
        .expect("it existed before the run");
    assert_eq!(before.revision, Some(1));
    assert!(
        before
            .template_hash
            .as_deref()
            .is_some_and(|h| h.starts_with(&format!("{name}-"))),
        "{before:?}"
    );

    let outcome = cluster.rollback("deployment: deploy").await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(outcome.outputs["rolled_back"], format!("{kind}/{name}"));
    let log = std::fs::read_to_string(outcome.log_path.as_ref().expect("log")).expect("read log");
    assert!(log.contains("now revision 3"), "{log}");

    let object = cluster
        .fake
        .object(kind, NAMESPACE, name)
        .expect("still there");
    assert_eq!(
        text(&object, "/spec/template/spec/containers/0/image"),
        format!("{name}:1")
    );
    // The first revision's ControllerRevision was renumbered, not copied.
    let revisions: Vec<Value> = cluster
        .fake
        .objects("ControllerRevision", NAMESPACE)
        .into_iter()
        .filter(|r| text(r, "/metadata/ownerReferences/0/name") == name)
        .collect();
    assert_eq!(revisions.len(), 2, "{revisions:#?}");
    let restored = revisions
        .iter()
        .find(|r| r["revision"] == 3)
        .expect("a revision 3");
    assert_eq!(
        Some(text(restored, "/metadata/name")),
        before.template_hash.as_deref()
    );
    let pods = cluster.fake.pods_of(NAMESPACE, kind, name);
    assert!(!pods.is_empty());
    for pod in &pods {
        assert_eq!(
            text(pod, "/spec/containers/0/image"),
            format!("{name}:1"),
            "{pod:#}"
        );
        assert_eq!(text(pod, "/status/phase"), "Running", "{pod:#}");
    }
    assert!(cluster.ledger.entries()[0].rolled_back);
}

#[tokio::test]
async fn a_stateful_set_crash_loop_is_detected_fast_and_rolled_back_to_its_previous_revision() {
    let cluster = TestCluster::start().await;
    crash_loop_then_roll_back(&cluster, "StatefulSet", "db", &stateful_set("db", "db:1")).await;
    let set = cluster
        .fake
        .object("StatefulSet", NAMESPACE, "db")
        .expect("set");
    let status = &set["status"];
    assert_eq!(status["readyReplicas"], 2);
    assert_eq!(status["updatedReplicas"], 2);
    assert_eq!(status["currentRevision"], status["updateRevision"]);
}

#[tokio::test]
async fn a_daemon_set_crash_loop_is_detected_fast_and_rolled_back_to_its_previous_revision() {
    let cluster = TestCluster::start().await;
    crash_loop_then_roll_back(
        &cluster,
        "DaemonSet",
        "agent",
        &daemon_set("agent", "agent:1"),
    )
    .await;
    let set = cluster
        .fake
        .object("DaemonSet", NAMESPACE, "agent")
        .expect("set");
    let status = &set["status"];
    assert_eq!(status["desiredNumberScheduled"], 3);
    assert_eq!(status["updatedNumberScheduled"], 3);
    assert_eq!(status["numberAvailable"], 3);
}

#[tokio::test]
async fn a_job_is_watched_to_completion() {
    let cluster = TestCluster::start().await;
    cluster.write("k8s/migrate.yaml", &job("migrate", "migrate:1", 2));
    let outcome = cluster
        .deploy(&cluster.deploy_config("manifests: [k8s/migrate.yaml]"))
        .await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert!(
        outcome
            .message
            .starts_with("rolled out Job/migrate (completed) in "),
        "{}",
        outcome.message
    );
    let job = cluster
        .fake
        .object("Job", NAMESPACE, "migrate")
        .expect("job");
    assert_eq!(job["status"]["succeeded"], 1);
    let conditions = job["status"]["conditions"].as_array().expect("conditions");
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")
    );
    assert!(cluster.ledger.is_empty(), "a Job has nothing to roll back");
}

#[tokio::test]
async fn a_job_past_its_backoff_limit_fails_with_the_failed_pods_logs() {
    let cluster = TestCluster::start().await;
    cluster.write("k8s/migrate.yaml", &job("migrate", "migrate:crashloop", 1));
    let outcome = cluster
        .deploy(&cluster.deploy_config("manifests: [k8s/migrate.yaml]"))
        .await;
    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert_eq!(outcome.outputs["failure_reason"], "BackoffLimitExceeded");
    assert!(
        outcome.message.starts_with(&format!(
            "job `migrate` in namespace `{NAMESPACE}` failed: BackoffLimitExceeded in pod `migrate-"
        )),
        "{}",
        outcome.message
    );
    assert!(
        outcome
            .message
            .ends_with(": Job has reached the specified backoff limit"),
        "{}",
        outcome.message
    );
    let evidence = outcome.evidence.unwrap_or_default();
    for needle in [
        "Failed=True (BackoffLimitExceeded)",
        "phase Failed",
        "terminated: Error exit 1",
        "fatal: database unreachable, exiting",
    ] {
        assert!(
            evidence.contains(needle),
            "evidence lacks {needle:?}:\n{evidence}"
        );
    }
    let job = cluster
        .fake
        .object("Job", NAMESPACE, "migrate")
        .expect("job");
    assert_eq!(
        job["status"]["failed"], 2,
        "backoffLimit 1: the second failure ends it"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn manifests_from_a_render_command_are_applied_and_its_failure_fails_the_step() {
    let cluster = TestCluster::start().await;
    cluster.write(
        "chart/render.sh",
        &format!(
            "#!/bin/sh\necho \"rendering for $1\" >&2\ncat <<'EOF'\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rendered\ndata:\n  a: \"{{{{ not minijinja }}}}\"\n---\n{}EOF\n",
            deployment_manifest("web", "web:1", "").replace("{{ vars.replicas }}", "1")
        ),
    );
    let config = cluster.deploy_config(
        "render: sh chart/render.sh {{ vars.registry }}\nimage: \"{{ vars.registry }}/web:2\"",
    );
    let outcome = cluster.deploy(&config).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(outcome.outputs["workloads"], "Deployment/web");
    assert_eq!(
        cluster.image_of("web").as_deref(),
        Some("registry.local/web:2")
    );
    let maps = cluster.fake.objects("ConfigMap", NAMESPACE);
    assert_eq!(maps.len(), 1);
    assert_eq!(
        maps[0]["data"]["a"], "{{ not minijinja }}",
        "the output is not a template"
    );
    let log = std::fs::read_to_string(outcome.log_path.as_ref().expect("log")).expect("read log");
    assert!(log.contains("rendering for registry.local"), "{log}");
    assert!(
        log.contains("applied ConfigMap/rendered (<render>:1)"),
        "{log}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(cluster.dir.path().join("logs"))
        .expect("logs")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("render"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the rendered manifests are not kept: {leftovers:?}"
    );

    cluster.write(
        "chart/broken.sh",
        "#!/bin/sh\necho 'apiVersion: v1'\necho 'Error: template: web/templates/app.yaml:7: function \"nope\" not defined' >&2\nexit 3\n",
    );
    let outcome = cluster
        .deploy(&cluster.deploy_config("render: sh chart/broken.sh\nmanifests: [k8s/none.yaml]"))
        .await;
    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert!(
        outcome
            .message
            .contains("failed to read manifest `k8s/none.yaml`"),
        "a missing file is reported before anything runs: {}",
        outcome.message
    );
    let outcome = cluster
        .deploy(&cluster.deploy_config("render: sh chart/broken.sh"))
        .await;
    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert_eq!(
        outcome.message,
        "`render` failed (exit code 3): Error: template: web/templates/app.yaml:7: function \"nope\" not defined"
    );
    assert!(
        outcome
            .output_tail
            .contains("function \"nope\" not defined")
    );
    assert_eq!(
        cluster.fake.objects("ConfigMap", NAMESPACE).len(),
        1,
        "nothing more applied"
    );
}
