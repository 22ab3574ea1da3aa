//! Reaching a cluster the way kubectl does: `--kubeconfig`/`KUBECONFIG`/`~/.kube/config` with an
//! optional context (exec credential plugins such as `kubelogin` included), else in-cluster
//! config; or an AKS cluster from Azure credentials ([`super::aks`]); and calling it with
//! bounded retries when the API server is unreachable.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::{Deserialize, Serialize};

use super::error::{ClusterError, ClusterErrorKind, Operation, is_transient};
use crate::azure::aks::AksCluster;
use crate::azure::sign_in::AzureSignIn;
use crate::core::error_chain::distinct_error_chain;

/// Which cluster to talk to, and as whom.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterAccess {
    /// An explicit kubeconfig file; default: `KUBECONFIG`, then `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// A kubeconfig context; default: the current context.
    pub context: Option<String>,
    /// An AKS cluster reached through Azure Resource Manager instead of a kubeconfig file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aks: Option<AksCluster>,
}

/// Requests queued for the AKS client's stack (kube's own client buffers 1024 too).
const BUFFERED_REQUESTS: usize = 1024;

/// How long to keep trying an API server that cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts over about three seconds: long enough for a blip, short next to a step timeout.
    fn default() -> Self {
        Self {
            attempts: 5,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The time all retries may take: the sum of the waits between the attempts.
    pub fn budget(&self) -> Duration {
        (1..self.attempts)
            .map(|attempt| self.backoff(attempt))
            .sum()
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A connected kube client with the settings it was made from.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    server: String,
    default_namespace: String,
    retry: RetryPolicy,
}

impl Cluster {
    /// Builds a client; nothing is sent to the API server yet (for AKS, Resource Manager and
    /// Entra ID are asked for the credentials, signing in as `azure` says).
    pub async fn connect(
        access: &ClusterAccess,
        retry: RetryPolicy,
        azure: &AzureSignIn,
    ) -> Result<Self, ClusterError> {
        if let Some(cluster) = &access.aks {
            let aks = super::aks::config(cluster, azure).await?;
            let client = match aks.token {
                None => kube::Client::try_from(aks.config.clone()),
                Some(token) => {
                    kube::client::ClientBuilder::try_from(aks.config.clone()).map(|builder| {
                        builder
                            // The filter clones the service it wraps; kube's stack is not Clone.
                            .with_layer(&tower::buffer::BufferLayer::new(BUFFERED_REQUESTS))
                            .with_layer(&tower::filter::AsyncFilterLayer::new(
                                super::aks::EntraBearer(token),
                            ))
                            .build()
                    })
                }
            }
            .map_err(|err| {
                ClusterError::new(
                    Operation::new("load", "cluster access settings"),
                    ClusterErrorKind::Config(distinct_error_chain(&err)),
                )
            })?;
            return Ok(Self::new(client, &aks.config, retry));
        }
        let config_error = |detail: String| {
            ClusterError::new(
                Operation::new("load", "cluster access settings"),
                ClusterErrorKind::Config(detail),
            )
        };
        let options = KubeConfigOptions {
            context: access.context.clone(),
            cluster: None,
            user: None,
        };
        let config = match (&access.kubeconfig, &access.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|err| {
                    config_error(format!(
                        "failed to read kubeconfig `{}`: {}",
                        path.display(),
                        distinct_error_chain(&err)
                    ))
                })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|err| {
                        config_error(format!(
                            "kubeconfig `{}`: {}",
                            path.display(),
                            distinct_error_chain(&err)
                        ))
                    })?
            }
            // A named context only makes sense in a kubeconfig: no in-cluster fallback.
            (None, Some(_)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|err| config_error(distinct_error_chain(&err)))?,
            (None, None) => kube::Config::infer()
                .await
                .map_err(|err| config_error(distinct_error_chain(&err)))?,
        };
        let client = kube::Client::try_from(config.clone())
            .map_err(|err| config_error(distinct_error_chain(&err)))?;
        Ok(Self::new(client, &config, retry))
    }

    fn new(client: kube::Client, config: &kube::Config, retry: RetryPolicy) -> Self {
        Self {
            client,
            server: config
                .cluster_url
                .to_string()
                .trim_end_matches('/')
                .to_owned(),
            default_namespace: config.default_namespace.clone(),
            retry,
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The API server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The namespace of the kubeconfig context (or of the pod's service account).
    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Runs a request, retrying while the server is unreachable or overloaded, within the policy.
    pub async fn call<T, F, Fut>(
        &self,
        operation: Operation,
        mut request: F,
    ) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match request().await {
                Ok(value) => return Ok(value),
                Err(error) if is_transient(&error) => {
                    if attempt >= self.retry.attempts {
                        return Err(self.unreachable(operation, attempt, started, &error));
                    }
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
                Err(error) => return Err(ClusterError::from_kube(operation, error)),
            }
        }
    }

    pub(crate) fn unreachable(
        &self,
        operation: Operation,
        attempts: u32,
        started: Instant,
        error: &kube::Error,
    ) -> ClusterError {
        ClusterError::new(
            operation,
            ClusterErrorKind::Unreachable {
                server: self.server.clone(),
                attempts,
                elapsed: started.elapsed(),
                detail: distinct_error_chain(error),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_millis(200));
        assert_eq!(policy.backoff(2), Duration::from_millis(400));
        assert_eq!(policy.backoff(4), Duration::from_millis(1600));
        assert_eq!(policy.backoff(5), Duration::from_secs(2));
        assert_eq!(policy.backoff(40), Duration::from_secs(2));
        assert_eq!(policy.budget(), Duration::from_millis(3000));
    }
}
