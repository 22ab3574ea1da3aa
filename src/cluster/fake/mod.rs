//! A fake Kubernetes API server for tests and demos, spoken to by the real kube client.
//!
//! It serves discovery, Deployments, ReplicaSets, StatefulSets, DaemonSets,
//! ControllerRevisions, Jobs, Pods (with logs), Events and any other resource in its table
//! (stored as plain JSON), with get, list, watch, server-side apply, JSON/merge patches and
//! delete. A simulator task plays the controllers and the kubelet on a clock: it creates a
//! ReplicaSet per pod template (with revision annotations and `pod-template-hash`), pods that
//! become ready, and the Deployment status kubectl reads; the StatefulSet, DaemonSet
//! (`stateful_set.rs`, `daemon_set.rs`, their history in `controller_history.rs`) and Job
//! (`job.rs`) controllers report status the way the real ones do.
//! Failures are injected per deployment ([`FakeCluster::inject_failure`]) or by image tag
//! (`web:crashloop`, see [`Failure::image_tag`]); 403s per verb and resource
//! ([`FakeCluster::forbid`]); bearer tokens, or Entra ID tokens for an audience, required
//! ([`FakeCluster::require_token_audience`]); and the whole server can go down and come back.
//!
//! Known simplifications: apply merges onto the stored object (fields dropped from a manifest
//! are kept), a rollout surges every new pod at once, and old pods go when all new ones are ready.

mod api;
mod controller_history;
mod daemon_set;
mod failure;
mod job;
mod kubelet;
mod patch;
mod resources;
mod simulator;
mod stateful_set;
mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use failure::Failure;

use simulator::SimState;
use store::{ObjectKey, Store};

/// How fast the simulated cluster moves.
#[derive(Clone, Debug)]
pub struct FakeOptions {
    /// How often the simulator runs.
    pub tick: Duration,
    /// From pod creation to its containers starting (or failing to).
    pub start_delay: Duration,
    /// From pod creation to a healthy pod being ready.
    pub ready_delay: Duration,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(50),
            start_delay: Duration::from_millis(100),
            ready_delay: Duration::from_millis(250),
        }
    }
}

/// A request the fake refuses with 403, as RBAC would.
#[derive(Clone, Debug)]
struct ForbiddenRule {
    verb: String,
    /// Plural resource name: `deployments`, `pods`, ...
    resource: String,
    /// `None`: in every namespace.
    namespace: Option<String>,
}

struct State {
    store: Store,
    sim: SimState,
    forbidden: Vec<ForbiddenRule>,
    /// When set, requests without an acceptable `Authorization: Bearer` get 401.
    bearer: Option<BearerCheck>,
}

/// Which bearer tokens the fake accepts.
#[derive(Clone, Debug)]
enum BearerCheck {
    /// Exactly this token (as from an exec plugin or a static kubeconfig token).
    Token(String),
    /// A JWT whose `aud` claim is this and whose `exp` has not passed, as an AKS API server
    /// with Microsoft Entra ID checks (the signature is not checked: no keys in tests).
    Audience(String),
}

impl BearerCheck {
    fn accepts(&self, presented: &str) -> bool {
        match self {
            Self::Token(token) => presented == token,
            Self::Audience(audience) => jwt_claims(presented).is_some_and(|claims| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                claims.get("aud").and_then(Value::as_str) == Some(audience.as_str())
                    && claims
                        .get("exp")
                        .and_then(Value::as_u64)
                        .is_some_and(|exp| exp > now)
            }),
        }
    }
}

/// The claims of a `header.claims.signature` token.
fn jwt_claims(token: &str) -> Option<serde_json::Map<String, Value>> {
    let claims = token.split('.').nth(1)?;
    let bytes = azure_core::base64::decode_url_safe(claims).ok()?;
    serde_json::from_slice(&bytes).ok()
}

struct Shared {
    state: Mutex<State>,
    /// Cancelled when the server goes down, so open watches end and connections close.
    down: Mutex<CancellationToken>,
}

impl Shared {
    fn stop_watches(&self) -> CancellationToken {
        lock(&self.down).clone()
    }
}

/// Locks a mutex, recovering the data if a holder panicked: the fake should keep serving.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake cluster. Dropping it stops the server and the simulator.
pub struct FakeCluster {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Mutex<Option<JoinHandle<()>>>,
    simulator: JoinHandle<()>,
}

/// Starts the fake API server on `listener` and its simulator.
pub async fn serve(listener: TcpListener, options: FakeOptions) -> std::io::Result<FakeCluster> {
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            store: Store::new(),
            sim: SimState::default(),
            forbidden: Vec::new(),
            bearer: None,
        }),
        down: Mutex::new(CancellationToken::new()),
    });
    let server = spawn_server(listener, shared.clone());
    let simulator = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(options.tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                let mut state = lock(&shared.state);
                let State { store, sim, .. } = &mut *state;
                simulator::tick(store, sim, &options, Instant::now());
            }
        })
    };
    Ok(FakeCluster {
        shared,
        addr,
        server: Mutex::new(Some(server)),
        simulator,
    })
}

fn spawn_server(listener: TcpListener, shared: Arc<Shared>) -> JoinHandle<()> {
    let stop = shared.stop_watches();
    let app = api::router(shared);
    tokio::spawn(async move {
        // Serving ends only when stopped; an accept error is not worth crashing a test over.
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    })
}

impl FakeCluster {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this cluster (context `fake`, no credentials), default namespace set.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            url = self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig(namespace))
    }

    /// Pods created for this deployment from now on fail this way (their first container).
    pub fn inject_failure(&self, namespace: &str, deployment: &str, failure: Failure) {
        lock(&self.shared.state)
            .sim
            .injected
            .insert((namespace.to_owned(), deployment.to_owned()), failure);
    }

    pub fn clear_failure(&self, namespace: &str, deployment: &str) {
        lock(&self.shared.state)
            .sim
            .injected
            .remove(&(namespace.to_owned(), deployment.to_owned()));
    }

    /// Refuse `verb` (`get`, `list`, `watch`, `patch`, `delete`) on a resource (`deployments`)
    /// with 403, in one namespace or (`None`) everywhere.
    pub fn forbid(&self, verb: &str, resource: &str, namespace: Option<&str>) {
        lock(&self.shared.state).forbidden.push(ForbiddenRule {
            verb: verb.to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.map(str::to_owned),
        });
    }

    /// Answer 401 to requests that do not carry this bearer token (as from an exec plugin).
    pub fn require_bearer_token(&self, token: &str) {
        lock(&self.shared.state).bearer = Some(BearerCheck::Token(token.to_owned()));
    }

    /// Answer 401 to requests whose bearer is not an unexpired JWT for `audience` (an AKS
    /// cluster with Entra ID accepts tokens for its server application only).
    pub fn require_token_audience(&self, audience: &str) {
        lock(&self.shared.state).bearer = Some(BearerCheck::Audience(audience.to_owned()));
    }

    /// Stops listening and ends open connections: clients see connection refused.
    pub async fn go_down(&self) {
        lock(&self.shared.down).cancel();
        let server = lock(&self.server).take();
        if let Some(server) = server {
            // Graceful shutdown finishes once in-flight requests (watches end at once) are done.
            let _ = server.await;
        }
    }

    /// Listens again on the same address after [`FakeCluster::go_down`].
    pub async fn come_up(&self) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        *lock(&self.shared.down) = CancellationToken::new();
        let server = spawn_server(listener, self.shared.clone());
        *lock(&self.server) = Some(server);
        Ok(())
    }

    fn typed<K: DeserializeOwned>(value: Option<&Value>) -> Option<K> {
        value.and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Deployment> {
        let state = lock(&self.shared.state);
        Self::typed(
            state
                .store
                .get(&ObjectKey::new(simulator::deployments(), namespace, name)),
        )
    }

    /// The replica sets a deployment owns, oldest revision first.
    pub fn replica_sets(&self, namespace: &str, deployment: &str) -> Vec<ReplicaSet> {
        let state = lock(&self.shared.state);
        let mut sets: Vec<ReplicaSet> = state
            .store
            .list(simulator::replica_sets(), Some(namespace))
            .iter()
            .filter(|rs| {
                rs.pointer("/metadata/ownerReferences/0/name")
                    .and_then(Value::as_str)
                    == Some(deployment)
            })
            .filter_map(|rs| Self::typed(Some(rs)))
            .collect();
        sets.sort_by_key(|rs: &ReplicaSet| {
            rs.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(simulator::REVISION_ANNOTATION))
                .and_then(|r| r.parse::<u64>().ok())
                .unwrap_or(0)
        });
        sets
    }

    /// The pods of a deployment, through its replica sets.
    pub fn pods(&self, namespace: &str, deployment: &str) -> Vec<Pod> {
        let sets: Vec<String> = self
            .replica_sets(namespace, deployment)
            .into_iter()
            .filter_map(|rs| rs.metadata.name)
            .collect();
        let state = lock(&self.shared.state);
        state
            .store
            .list(simulator::pods(), Some(namespace))
            .iter()
            .filter(|pod| {
                pod.pointer("/metadata/ownerReferences/0/name")
                    .and_then(Value::as_str)
                    .is_some_and(|owner| sets.iter().any(|s| s == owner))
            })
            .filter_map(|pod| Self::typed(Some(pod)))
            .collect()
    }

    /// The failure reason the current rollout of a deployment reported, and when it first did.
    pub fn failure_reported(
        &self,
        namespace: &str,
        deployment: &str,
    ) -> Option<(&'static str, Instant)> {
        lock(&self.shared.state)
            .sim
            .reported
            .get(&(namespace.to_owned(), deployment.to_owned()))
            .copied()
    }

    /// One object of a kind (`StatefulSet`, `Job`, ...), as JSON.
    pub fn object(&self, resource_kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let resource = resources::ResourceType::by_kind(resource_kind)?;
        let state = lock(&self.shared.state);
        state
            .store
            .get(&ObjectKey::new(resource, namespace, name))
            .cloned()
    }

    /// The pods a workload (of any kind) owns, by its name, as JSON.
    pub fn pods_of(&self, namespace: &str, owner_kind: &str, owner: &str) -> Vec<Value> {
        self.objects("Pod", namespace)
            .into_iter()
            .filter(|pod| {
                pod.pointer("/metadata/ownerReferences/0/kind")
                    .and_then(Value::as_str)
                    == Some(owner_kind)
                    && pod
                        .pointer("/metadata/ownerReferences/0/name")
                        .and_then(Value::as_str)
                        == Some(owner)
            })
            .collect()
    }

    /// Every object of a resource (`configmaps`, `services`, ...) in a namespace, as JSON.
    pub fn objects(&self, resource_kind: &str, namespace: &str) -> Vec<Value> {
        let state = lock(&self.shared.state);
        match resources::ResourceType::by_kind(resource_kind) {
            Some(resource) => state.store.list(resource, Some(namespace)),
            None => Vec::new(),
        }
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        lock(&self.shared.down).cancel();
        if let Some(server) = lock(&self.server).take() {
            server.abort();
        }
        self.simulator.abort();
    }
}
