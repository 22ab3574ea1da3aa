//! Deploying to AKS from Azure credentials alone, through the real kube and Azure SDK clients:
//! Resource Manager's credential call (the ARM fake), Entra ID tokens for the AKS server
//! application instead of kubelogin (the Entra fake), and a fake API server that accepts only
//! those tokens; the errors people hit (no role, wrong names, admin on a cluster without local
//! accounts); and a token renewed while the client lives.

use std::time::Duration;

use agent_orch::azure::aks::{AksCluster, USER_ROLE};
use agent_orch::azure::credential::CredentialSources;
use agent_orch::azure::sign_in::AzureSignIn;
use agent_orch::cluster::access::{Cluster, ClusterAccess, RetryPolicy};
use agent_orch::cluster::fake::FakeOptions;
use agent_orch::steps::{StepOutcome, StepStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::support::arm_fake::{ADMIN_TOKEN, FakeAks};
use crate::support::azure_server::{
    AKS_SERVER_ID, ARM_ACCESS_TOKEN, AzureConfig, AzureServer, SUBSCRIPTION_ID,
    service_principal_connection,
};
use crate::support::kube_api::{NAMESPACE, TestCluster, deployment_manifest};

struct Aks {
    azure: AzureServer,
    cluster: TestCluster,
}

/// An Entra ID AKS cluster (`fleet-aks` in `fleet-rg`) served by the fake API server, which
/// accepts only tokens for the AKS server application; Resource Manager and Entra know it.
async fn aks_with(options: FakeOptions, configure: impl FnOnce(&mut AzureConfig)) -> Aks {
    let mut cluster = TestCluster::start_with(options).await;
    cluster.fake.require_token_audience(AKS_SERVER_ID);
    let mut config = AzureConfig::with_aks(FakeAks::entra(&cluster.fake.url()));
    configure(&mut config);
    let azure = AzureServer::start(config);
    let connection = service_principal_connection();
    cluster.azure = AzureSignIn::new(
        CredentialSources {
            connection: Some(&connection),
            ..Default::default()
        },
        Some(&azure.url()),
    );
    cluster.write(
        "k8s/app.yaml",
        &deployment_manifest("web", "placeholder", ""),
    );
    Aks { azure, cluster }
}

async fn aks(configure: impl FnOnce(&mut FakeAks)) -> Aks {
    aks_with(FakeOptions::default(), |config| {
        configure(config.aks.as_mut().unwrap());
    })
    .await
}

impl Aks {
    async fn deploy(&self, settings: &str) -> StepOutcome {
        let config = self.cluster.deploy_config(&format!(
            "manifests: [k8s/app.yaml]\nimage: registry.local/web:2.0.0\n{settings}"
        ));
        self.cluster.deploy(&config).await
    }
}

#[tokio::test]
async fn a_deploy_through_aks_reaches_the_cluster_with_a_token_for_the_aks_server() {
    let aks = aks(|_| {}).await;

    let outcome = aks
        .deploy("aks: {resource_group: fleet-rg, cluster: fleet-aks}")
        .await;

    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(
        aks.cluster.image_of("web").as_deref(),
        Some("registry.local/web:2.0.0")
    );
    // One credential call to Resource Manager, with its own token, for the connection's
    // subscription; the kubelogin exec of the answer never ran (it is not installed).
    let calls = aks.azure.requests_to("/subscriptions/");
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(
        calls[0].path,
        format!(
            "/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/fleet-rg/providers/Microsoft.ContainerService/managedClusters/fleet-aks/listClusterUserCredential"
        )
    );
    assert_eq!(
        calls[0].original_host.as_deref(),
        Some("management.azure.com")
    );
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {ARM_ACCESS_TOKEN}").as_str())
    );
    assert!(aks.azure.aks_tokens_issued() >= 1);
    // The API server takes nothing else: not the Resource Manager token, not no token.
    let pods = format!(
        "{}/api/v1/namespaces/{NAMESPACE}/pods",
        aks.cluster.fake.url()
    );
    let client = reqwest::Client::new();
    let with_arm_token = client
        .get(&pods)
        .bearer_auth(ARM_ACCESS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(with_arm_token.status(), 401);
    assert_eq!(client.get(&pods).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn an_environment_names_the_cluster_with_templates() {
    let mut aks = aks(|_| {}).await;
    aks.cluster.set_template_context(serde_json::json!({
        "env": {
            "namespace": NAMESPACE,
            "aks": {"resource_group": "{{ vars.group }}", "cluster": "fleet-aks"},
        },
        "vars": {"group": "fleet-rg", "registry": "registry.local", "replicas": 2},
    }));

    let outcome = aks.deploy("# the cluster is env.aks").await;

    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(aks.azure.requests_to("/subscriptions/").len(), 1);
}

#[tokio::test]
async fn a_missing_role_is_named() {
    let aks = aks(|cluster| cluster.denied = true).await;

    let outcome = aks
        .deploy("aks: {resource_group: fleet-rg, cluster: fleet-aks}")
        .await;

    assert_eq!(outcome.status, StepStatus::Failed);
    assert!(outcome.message.contains(USER_ROLE), "{}", outcome.message);
    assert!(
        outcome.message.contains("access denied"),
        "{}",
        outcome.message
    );
    assert!(aks.cluster.fake.deployment(NAMESPACE, "web").is_none());
}

#[tokio::test]
async fn an_unknown_cluster_names_subscription_group_and_cluster() {
    let aks = aks(|_| {}).await;

    let outcome = aks
        .deploy("aks: {resource_group: fleet-rg, cluster: fleet-akz}")
        .await;

    assert_eq!(outcome.status, StepStatus::Failed);
    for part in [
        "AKS cluster `fleet-akz`",
        "resource group `fleet-rg`",
        SUBSCRIPTION_ID,
        "not found",
    ] {
        assert!(
            outcome.message.contains(part),
            "{part}: {}",
            outcome.message
        );
    }
}

#[tokio::test]
async fn admin_credentials_of_a_cluster_without_local_accounts_are_explained() {
    let aks = aks(|cluster| cluster.local_accounts_disabled = true).await;

    let outcome = aks
        .deploy("aks: {resource_group: fleet-rg, cluster: fleet-aks, admin: true}")
        .await;

    assert_eq!(outcome.status, StepStatus::Failed);
    assert!(
        outcome.message.contains("local accounts disabled")
            && outcome.message.contains("remove `admin: true`"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn admin_credentials_use_the_local_account() {
    let aks = aks(|_| {}).await;
    aks.cluster.fake.require_bearer_token(ADMIN_TOKEN);

    let outcome = aks
        .deploy("aks: {resource_group: fleet-rg, cluster: fleet-aks, admin: true}")
        .await;

    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    let calls = aks.azure.requests_to("/subscriptions/");
    assert!(calls[0].path.ends_with("/listClusterAdminCredential"));
    assert_eq!(aks.azure.aks_tokens_issued(), 0);
}

#[tokio::test]
async fn the_token_is_renewed_before_it_expires() {
    // Tokens that live two seconds: a client that kept its first one would be refused after.
    let aks = aks_with(FakeOptions::default(), |config| {
        config.aks_token_lifetime_secs = 2;
    })
    .await;
    let access = ClusterAccess {
        aks: Some(AksCluster {
            subscription: SUBSCRIPTION_ID.into(),
            resource_group: "fleet-rg".into(),
            name: "fleet-aks".into(),
            admin: false,
        }),
        ..Default::default()
    };
    let cluster = Cluster::connect(&access, RetryPolicy::default(), &aks.cluster.azure)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client().clone(), NAMESPACE);

    pods.list(&ListParams::default()).await.unwrap();
    let before = aks.azure.aks_tokens_issued();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    pods.list(&ListParams::default()).await.unwrap();

    assert!(
        aks.azure.aks_tokens_issued() > before,
        "no new token after the first expired"
    );
}

#[tokio::test]
async fn a_rollback_reaches_the_cluster_the_deploy_recorded() {
    let aks = aks(|_| {}).await;
    let earlier = agent_orch::cluster::ledger::DeployLedger::in_memory();
    let config = aks.cluster.deploy_config(
        "manifests: [k8s/app.yaml]\nimage: registry.local/web:1.0.0\naks: {resource_group: fleet-rg, cluster: fleet-aks}",
    );
    let outcome = aks
        .cluster
        .deploy_with(&config, "deploy", &earlier, None)
        .await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    let outcome = aks
        .deploy("aks: {resource_group: fleet-rg, cluster: fleet-aks}")
        .await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");

    // The ledger names the AKS cluster, not a kubeconfig: the rollback signs in again.
    let outcome = aks.cluster.rollback("deployment: deploy").await;

    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(
        aks.cluster.image_of("web").as_deref(),
        Some("registry.local/web:1.0.0")
    );
    assert_eq!(aks.azure.requests_to("/subscriptions/").len(), 3);
}
