//! The hub's own deployment files: `deploy/*.yaml` rolled out by agent-orch's deploy step on the
//! fake Kubernetes API server (real kube client, server-side apply, rollouts watched), then read
//! back to check what a cluster would rely on; and the static facts of `Dockerfile` and
//! `docker-compose.yml` that no Docker daemon is needed to check.

use agent_orch::steps::StepStatus;
use serde_json::Value;

use crate::support::kube_api::{NAMESPACE, TestCluster};

const HUB: &str = include_str!("../../deploy/hub.yaml");
const WORKERS: &str = include_str!("../../deploy/workers.yaml");
const DOCKERFILE: &str = include_str!("../../Dockerfile");
const COMPOSE: &str = include_str!("../../docker-compose.yml");

/// What `kubectl create secret generic agent-orch-hub-database --from-literal=url=...` makes.
const DATABASE_SECRET: &str = "apiVersion: v1
kind: Secret
metadata: {name: agent-orch-hub-database}
stringData: {url: 'postgres://hub:pw@db:5432/hub'}
";

fn named<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no object named {name} in {objects:#?}"))
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("matchLabels is a map");
    !selector.is_empty() && selector.iter().all(|(key, value)| &labels[key] == value)
}

#[tokio::test]
async fn the_hub_and_workers_roll_out_from_deploy_with_probes_budget_secret_and_identity() {
    let cluster = TestCluster::start().await;
    cluster.write("k8s/database-secret.yaml", DATABASE_SECRET);
    cluster.write("deploy/hub.yaml", HUB);
    cluster.write("deploy/workers.yaml", WORKERS);
    let config = cluster.deploy_config(&format!(
        "manifests: [k8s/database-secret.yaml, deploy/hub.yaml, deploy/workers.yaml]\nnamespace: {NAMESPACE}"
    ));

    let outcome = cluster.deploy(&config).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");

    // Both Deployments rolled out with every replica ready.
    for name in ["agent-orch-hub", "agent-orch-worker"] {
        let deployment = cluster.fake.deployment(NAMESPACE, name).expect(name);
        let ready = deployment.status.and_then(|status| status.ready_replicas);
        assert_eq!(ready, Some(2), "{name}");
    }

    let deployments = cluster.fake.objects("Deployment", NAMESPACE);
    let hub = named(&deployments, "agent-orch-hub");
    let pod = &hub["spec"]["template"];
    let container = &pod["spec"]["containers"][0];

    // Probes ask /health on the port the container declares.
    let port_name = container["ports"][0]["name"].clone();
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/health", "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], port_name, "{probe}");
    }
    // The database URL comes from the Secret that exists, never from the manifest.
    let database = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|env| env["name"] == "AGENT_ORCH_HUB_DATABASE")
        .expect("the hub gets its database URL");
    assert!(database.get("value").is_none(), "{database}");
    let secret_ref = &database["valueFrom"]["secretKeyRef"];
    let secrets = cluster.fake.objects("Secret", NAMESPACE);
    assert!(
        named(&secrets, secret_ref["name"].as_str().unwrap())["stringData"]
            .get(secret_ref["key"].as_str().unwrap())
            .is_some()
    );
    assert!(
        !HUB.lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .any(|line| line.contains("postgres://")),
        "no database URL in the manifest"
    );
    // The hub listens where the probes and the Service look.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| arg.as_str().unwrap())
        .collect();
    let listen = args[args.iter().position(|arg| *arg == "--listen").unwrap() + 1];
    assert_eq!(
        listen,
        format!("0.0.0.0:{}", container["ports"][0]["containerPort"])
    );

    // The disruption budget and the Service select exactly the hub's pods.
    let budgets = cluster.fake.objects("PodDisruptionBudget", NAMESPACE);
    let budget = named(&budgets, "agent-orch-hub");
    assert_eq!(budget["spec"]["minAvailable"], 1);
    let pod_labels = &pod["metadata"]["labels"];
    assert!(labels_match(
        &budget["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
    let services = cluster.fake.objects("Service", NAMESPACE);
    assert!(labels_match(
        &named(&services, "agent-orch-hub")["spec"]["selector"],
        pod_labels
    ));
    let workers = named(&deployments, "agent-orch-worker");
    assert!(!labels_match(
        &budget["spec"]["selector"]["matchLabels"],
        &workers["spec"]["template"]["metadata"]["labels"]
    ));

    // Workload identity for Key Vault on both, and neither runs as root.
    let accounts = cluster.fake.objects("ServiceAccount", NAMESPACE);
    for deployment in [hub, workers] {
        let template = &deployment["spec"]["template"];
        assert_eq!(
            template["metadata"]["labels"]["azure.workload.identity/use"],
            "true"
        );
        let account = template["spec"]["serviceAccountName"].as_str().unwrap();
        assert!(
            named(&accounts, account)["metadata"]["annotations"]
                .get("azure.workload.identity/client-id")
                .is_some(),
            "{account}"
        );
        assert_eq!(template["spec"]["securityContext"]["runAsNonRoot"], true);
    }
    // Workers reach the hub through its Service, each under its own pod's name.
    let worker = &workers["spec"]["template"]["spec"]["containers"][0];
    let hub_url = worker["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|env| env["name"] == "AGENT_ORCH_HUB_URL")
        .expect("workers know the hub");
    assert_eq!(hub_url["value"], "http://agent-orch-hub");
    assert!(worker["args"].to_string().contains("$(POD_NAME)"));
}

#[test]
fn the_image_is_multi_stage_non_root_and_checks_its_own_health() {
    let stages: Vec<&str> = DOCKERFILE
        .lines()
        .filter(|line| line.starts_with("FROM "))
        .collect();
    assert!(
        stages.len() >= 3,
        "build, hub and worker stages: {stages:?}"
    );
    let hub_stage = &DOCKERFILE[DOCKERFILE.find("\nFROM gcr.io/distroless").unwrap() + 1..];
    assert!(hub_stage.lines().next().unwrap().ends_with(" AS hub"));
    let hub_stage = &hub_stage[..hub_stage.find("\nFROM ").unwrap_or(hub_stage.len())];
    assert!(hub_stage.contains("\nUSER nonroot"), "{hub_stage}");
    assert!(
        hub_stage.contains(r#""hub", "health""#),
        "the health check asks the binary: {hub_stage}"
    );
    let worker_stage = &DOCKERFILE[DOCKERFILE.find("AS worker").unwrap()..];
    assert!(worker_stage.contains("\nUSER 10001"), "{worker_stage}");
    // The manifests run the images as the users the Dockerfile creates.
    assert!(HUB.contains("runAsUser: 65532"));
    assert!(WORKERS.contains("runAsUser: 10001"));
}

#[test]
fn compose_runs_the_hub_on_postgres_with_two_workers() {
    let compose: Value = serde_saphyr::from_str(COMPOSE).unwrap();
    let services = compose["services"].as_object().unwrap();
    assert!(services.contains_key("postgres"));
    let hub = &services["hub"];
    assert_eq!(hub["build"]["target"], "hub");
    assert!(
        hub["environment"]["AGENT_ORCH_HUB_DATABASE"]
            .as_str()
            .unwrap()
            .starts_with("postgres://"),
    );
    assert_eq!(
        hub["depends_on"]["postgres"]["condition"],
        "service_healthy"
    );
    let workers: Vec<&Value> = services
        .iter()
        .filter(|(name, _)| name.starts_with("worker"))
        .map(|(_, service)| service)
        .collect();
    assert_eq!(workers.len(), 2);
    for worker in workers {
        assert_eq!(worker["build"]["target"], "worker");
        assert_eq!(
            worker["environment"]["AGENT_ORCH_HUB_URL"],
            "http://hub:8080"
        );
        assert!(worker["environment"]["AGENT_ORCH_AGENT_ID"].is_string());
    }
}
