//! Reaching an AKS cluster from Azure credentials alone: the kubeconfig from Resource Manager
//! ([`crate::azure::aks`]), and for a cluster with Microsoft Entra ID integration, whose
//! kubeconfig user runs `kubelogin get-token --server-id <id> ...`, the token kubelogin would
//! get, asked in-process from the same credential chain for `<id>/.default` and renewed before
//! it expires. Nothing is executed: no az, kubectl or kubelogin is needed.

use std::sync::Arc;

use futures::future::BoxFuture;
use http::header::{AUTHORIZATION, HeaderValue};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::BoxError;
use tower::filter::AsyncPredicate;

use super::error::{ClusterError, ClusterErrorKind, Operation};
use crate::azure::aks::{AksCluster, fetch_kubeconfig};
use crate::azure::credential::error_line;
use crate::azure::renewing_token::RenewingToken;
use crate::azure::sign_in::AzureSignIn;
use crate::core::error_chain::distinct_error_chain;

/// A client configuration for `cluster`, and the token source that must authorize its requests
/// when the cluster signs users in with Entra ID.
pub(crate) struct AksConfig {
    pub(crate) config: kube::Config,
    pub(crate) token: Option<Arc<RenewingToken>>,
}

/// Fetches the kubeconfig and, for an Entra ID cluster, the first token: a sign-in problem is
/// reported here, before any Kubernetes request.
pub(crate) async fn config(
    cluster: &AksCluster,
    sign_in: &AzureSignIn,
) -> Result<AksConfig, ClusterError> {
    let operation = || Operation::new("get", "AKS cluster credentials");
    let fail = |kind| ClusterError::new(operation(), kind);
    let credentials = fetch_kubeconfig(cluster, sign_in)
        .await
        .map_err(|e| fail(ClusterErrorKind::Aks(Box::new(e))))?;
    let mut kubeconfig = Kubeconfig::from_yaml(credentials.kubeconfig.expose()).map_err(|e| {
        fail(ClusterErrorKind::Config(format!(
            "the kubeconfig of AKS cluster `{}` is invalid: {}",
            cluster.name,
            distinct_error_chain(&e)
        )))
    })?;
    let server_id = take_kubelogin(&mut kubeconfig);
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(ClusterErrorKind::Config(distinct_error_chain(&e))))?;
    let Some(server_id) = server_id else {
        return Ok(AksConfig {
            config,
            token: None,
        });
    };
    let token = Arc::new(RenewingToken::new(
        credentials.signed_in.credential,
        format!("{server_id}/.default"),
    ));
    token.token().await.map_err(|e| {
        fail(ClusterErrorKind::Config(format!(
            "cannot get a Microsoft Entra ID token for AKS cluster `{}` (scope `{}`): {}",
            cluster.name,
            token.scope(),
            error_line(&e)
        )))
    })?;
    Ok(AksConfig {
        config,
        token: Some(token),
    })
}

/// Removes every `kubelogin` exec from the kubeconfig's users, returning the `--server-id` (the
/// AKS server application whose tokens the cluster accepts).
fn take_kubelogin(kubeconfig: &mut Kubeconfig) -> Option<String> {
    let mut server_id = None;
    for user in kubeconfig
        .auth_infos
        .iter_mut()
        .filter_map(|named| named.auth_info.as_mut())
    {
        let Some(exec) = &user.exec else { continue };
        let is_kubelogin = exec.command.as_deref().is_some_and(|command| {
            std::path::Path::new(command)
                .file_stem()
                .is_some_and(|stem| stem == "kubelogin")
        });
        if !is_kubelogin {
            continue;
        }
        let args = exec.args.as_deref().unwrap_or_default();
        let id = args
            .iter()
            .position(|arg| arg == "--server-id")
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| {
                args.iter()
                    .find_map(|arg| arg.strip_prefix("--server-id=").map(str::to_owned))
            });
        if let Some(id) = id {
            server_id.get_or_insert(id);
            user.exec = None;
        }
    }
    server_id
}

/// Sets `Authorization: Bearer <token>` on every request, renewing the token when needed (kube
/// plugs its own exec and OIDC tokens in the same way, as an [`AsyncPredicate`]).
#[derive(Clone)]
pub(crate) struct EntraBearer(pub(crate) Arc<RenewingToken>);

#[derive(Debug, thiserror::Error)]
#[error("failed to renew the Microsoft Entra ID token for the AKS cluster: {0}")]
struct RenewalError(String);

impl<B: Send + 'static> AsyncPredicate<http::Request<B>> for EntraBearer {
    type Future = BoxFuture<'static, Result<http::Request<B>, BoxError>>;
    type Request = http::Request<B>;

    fn check(&mut self, mut request: http::Request<B>) -> Self::Future {
        let token = self.0.clone();
        Box::pin(async move {
            let secret = token
                .token()
                .await
                .map_err(|e| Box::new(RenewalError(error_line(&e))) as BoxError)?;
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", secret.expose())).map_err(|_| {
                    Box::new(RenewalError("the token is not a header value".into())) as BoxError
                })?;
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
            Ok(request)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ARM returns for an Entra ID cluster with `format=exec` (as `az aks get-credentials`
    /// writes it).
    const ENTRA_KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- name: fleet-aks
  cluster:
    server: https://fleet-aks-dns-1a2b3c4d.hcp.westeurope.azmk8s.io:443
contexts:
- name: fleet-aks
  context: {cluster: fleet-aks, user: clusterUser_fleet-rg_fleet-aks}
current-context: fleet-aks
users:
- name: clusterUser_fleet-rg_fleet-aks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args: [get-token, --environment, AzurePublicCloud, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630, --client-id, 80faf920-1908-4b52-b5ef-a8e7bedfc67a, --tenant-id, 72f988bf-86f1-41af-91ab-2d7cd011db47, --login, devicecode]
";

    #[test]
    fn the_kubelogin_exec_is_replaced_by_its_server_id() {
        let mut kubeconfig = Kubeconfig::from_yaml(ENTRA_KUBECONFIG).unwrap();
        assert_eq!(
            take_kubelogin(&mut kubeconfig).as_deref(),
            Some("6dae42f8-4368-4678-94ff-3960e28e3630")
        );
        let user = kubeconfig.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.exec.is_none());
    }

    #[test]
    fn other_exec_plugins_stay() {
        let text =
            ENTRA_KUBECONFIG.replace("command: kubelogin", "command: gke-gcloud-auth-plugin");
        let mut kubeconfig = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(take_kubelogin(&mut kubeconfig), None);
        assert!(
            kubeconfig.auth_infos[0]
                .auth_info
                .as_ref()
                .unwrap()
                .exec
                .is_some()
        );
    }
}
