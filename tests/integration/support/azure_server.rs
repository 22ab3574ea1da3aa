//! One local server for every Azure endpoint a run talks to: the pipeline's OIDC endpoint
//! ([`super::oidc_fake`]), Microsoft Entra ID's token endpoint ([`super::entra_fake`]), the App
//! Service managed identity endpoint ([`super::managed_identity_fake`]), Key Vault
//! ([`super::key_vault_fake`]), Resource Manager's AKS credential calls ([`super::arm_fake`]),
//! and Azure Monitor's query APIs ([`super::prometheus_fake`], [`super::log_analytics_fake`]).
//!
//! The binary reaches it through `AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE`: the Azure clients keep
//! their real `https://` URLs and the transport sends each request here, path unchanged, with
//! the original host in a header. Every request is recorded, so tests check what was sent.
//! The server runs on its own thread and runtime, so plain `#[test]`s can run the binary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use agent_orch::ado::service_connection::{AzureCredential, ServiceConnection};
use agent_orch::core::secret::Secret;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::oneshot;

use super::arm_fake::FakeAks;
use super::metric_script::MetricScript;
use super::{
    arm_fake, entra_fake, key_vault_fake, log_analytics_fake, managed_identity_fake, oidc_fake,
    prometheus_fake,
};

pub(crate) const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub(crate) const CLIENT_ID: &str = "3f2a6d1e-5b4c-4e8a-9d7f-0a1b2c3d4e5f";
pub(crate) const CONNECTION_ID: &str = "7a3c1e4b-0d2f-4b8e-9c61-2f5d8a9b0c13";
/// `SYSTEM_ACCESSTOKEN`: what the OIDC endpoint wants as its bearer.
pub(crate) const SYSTEM_ACCESS_TOKEN: &str = "job-access-token-5d41402abc4b2a76";
/// The ID token the OIDC endpoint issues, exchanged with Entra as a client assertion.
pub(crate) const OIDC_TOKEN: &str = "eyJoaWRjLXRva2VuIn0.oidc-assertion-b9a2.sig0c1d";
/// What Entra issues for the assertion, and the managed identity endpoint issues directly.
pub(crate) const FEDERATED_ACCESS_TOKEN: &str = "kv-access-token-federated-7f3e91";
pub(crate) const MANAGED_IDENTITY_ACCESS_TOKEN: &str = "kv-access-token-managed-identity-2c8d";
/// What Entra issues for Resource Manager (`https://management.azure.com/.default`).
pub(crate) const ARM_ACCESS_TOKEN: &str = "arm-access-token-3d7c52";
/// The AKS server application: the `--server-id` of every Entra ID AKS kubeconfig, the audience
/// of the tokens its API server accepts.
pub(crate) const AKS_SERVER_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
/// What Entra issues for Azure Monitor managed Prometheus
/// (`https://prometheus.monitor.azure.com/.default`).
pub(crate) const PROMETHEUS_ACCESS_TOKEN: &str = "prometheus-access-token-8e1f07";
/// What Entra issues for the Log Analytics query API (`https://api.loganalytics.io/.default`).
pub(crate) const LOG_ANALYTICS_ACCESS_TOKEN: &str = "log-analytics-access-token-4b9a62";
/// The Log Analytics workspace the fake knows.
pub(crate) const WORKSPACE_ID: &str = "63613592-b6f7-4c3d-a390-22ba13102111";
/// The subscription of the service connection and of the fake AKS cluster.
pub(crate) const SUBSCRIPTION_ID: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";

/// The service principal connection the fakes know, as the task reads it from `ENDPOINT_*`.
pub(crate) fn service_principal_connection() -> ServiceConnection {
    ServiceConnection {
        id: CONNECTION_ID.into(),
        url: Some("https://management.azure.com/".into()),
        credential: AzureCredential::ServicePrincipalSecret {
            tenant_id: TENANT_ID.into(),
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET),
        },
        subscription_id: Some(SUBSCRIPTION_ID.into()),
        cloud: Some("AzureCloud".into()),
        data: std::collections::BTreeMap::new(),
    }
}
/// What a fake `az account get-access-token` prints.
pub(crate) const CLI_ACCESS_TOKEN: &str = "kv-access-token-azure-cli-6b1a";
/// A service principal connection's client secret, exchanged at Entra directly.
pub(crate) const CLIENT_SECRET: &str = "spn-client-secret-Q8~x1c2v3b4n";
/// `IDENTITY_HEADER`: App Service's per-process secret for its identity endpoint.
pub(crate) const IDENTITY_HEADER: &str = "identity-header-0a9b8c7d";

/// What the fakes serve and how they behave.
#[derive(Clone, Debug)]
pub(crate) struct AzureConfig {
    /// Secrets in the vault, by name.
    pub(crate) secrets: HashMap<String, String>,
    /// Every secret read is answered 403, as for an identity without `get` permission.
    pub(crate) deny: bool,
    /// The AKS cluster Resource Manager knows, if any.
    pub(crate) aks: Option<FakeAks>,
    /// How long the AKS tokens Entra issues last.
    pub(crate) aks_token_lifetime_secs: u64,
    /// What `/api/v1/query` answers.
    pub(crate) prometheus: MetricScript,
    /// `/api/v1/query` wants Entra's Prometheus token (Azure Monitor managed Prometheus).
    pub(crate) prometheus_requires_token: bool,
    /// What the Log Analytics workspace answers.
    pub(crate) log_analytics: MetricScript,
}

impl AzureConfig {
    pub(crate) fn with_secrets(secrets: &[(&str, &str)]) -> Self {
        Self {
            secrets: secrets
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            deny: false,
            aks: None,
            aks_token_lifetime_secs: 3599,
            prometheus: MetricScript::default(),
            prometheus_requires_token: false,
            log_analytics: MetricScript::default(),
        }
    }

    /// An empty vault and Resource Manager that knows `aks`.
    pub(crate) fn with_aks(aks: FakeAks) -> Self {
        Self {
            aks: Some(aks),
            ..Self::with_secrets(&[])
        }
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) path: String,
    /// `x-agent-orch-original-host`: where the client meant to send it.
    pub(crate) original_host: Option<String>,
    pub(crate) authorization: Option<String>,
    pub(crate) status: u16,
}

pub(crate) struct AzureState {
    /// Changeable while the server runs, as a vault's secrets and access policies are.
    pub(crate) config: Mutex<AzureConfig>,
    requests: Mutex<Vec<Recorded>>,
    /// AKS tokens issued so far.
    pub(crate) aks_tokens_issued: AtomicU32,
}

pub(crate) struct AzureServer {
    pub(crate) addr: SocketAddr,
    state: Arc<AzureState>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AzureServer {
    pub(crate) fn start(config: AzureConfig) -> Self {
        let state = Arc::new(AzureState {
            config: Mutex::new(config),
            requests: Mutex::new(Vec::new()),
            aks_tokens_issued: AtomicU32::new(0),
        });
        let app = Router::new()
            .merge(oidc_fake::routes())
            .merge(entra_fake::routes())
            .merge(managed_identity_fake::routes())
            .merge(key_vault_fake::routes())
            .merge(arm_fake::routes())
            .merge(prometheus_fake::routes())
            .merge(log_analytics_fake::routes())
            .layer(axum::middleware::from_fn_with_state(state.clone(), record))
            .with_state(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            addr,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The value for `AGENT_ORCH_AZURE_TRANSPORT_OVERRIDE`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets a secret's value, as `az keyvault secret set` would (a new version).
    pub(crate) fn set_secret(&self, name: &str, value: &str) {
        let mut config = self.state.config.lock().unwrap();
        config.secrets.insert(name.to_owned(), value.to_owned());
    }

    /// Takes the identity's `get` permission away (`true`) or gives it back.
    pub(crate) fn set_deny(&self, deny: bool) {
        self.state.config.lock().unwrap().deny = deny;
    }

    /// How many AKS tokens Entra has issued.
    pub(crate) fn aks_tokens_issued(&self) -> u32 {
        self.state.aks_tokens_issued.load(Ordering::SeqCst)
    }

    /// The PromQL queries `/api/v1/query` got, in order.
    pub(crate) fn prometheus_queries(&self) -> Vec<String> {
        self.state.config.lock().unwrap().prometheus.queries()
    }

    /// The KQL queries the Log Analytics workspace got, in order.
    pub(crate) fn log_analytics_queries(&self) -> Vec<String> {
        self.state.config.lock().unwrap().log_analytics.queries()
    }

    /// Every request so far, in order.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The requests whose path starts with `prefix`.
    pub(crate) fn requests_to(&self, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }
}

impl Drop for AzureServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn record(State(state): State<Arc<AzureState>>, request: Request, next: Next) -> Response {
    // Read before the await: a borrowed request would make this future not `Send`.
    let mut recorded = describe(&request);
    let response = next.run(request).await;
    recorded.status = response.status().as_u16();
    state.requests.lock().unwrap().push(recorded);
    response
}

fn describe(request: &Request) -> Recorded {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Recorded {
        path: request.uri().path().to_owned(),
        original_host: header("x-agent-orch-original-host"),
        authorization: header("authorization"),
        status: 0,
    }
}

/// `Bearer <token>` from a request's headers.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}
