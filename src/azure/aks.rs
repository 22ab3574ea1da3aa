//! An AKS cluster's kubeconfig from Azure Resource Manager, as `az aks get-credentials` and
//! Azure DevOps' KubernetesManifest@1 get it, with no Azure CLI installed:
//! `POST {arm}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/
//! managedClusters/{name}/listClusterUserCredential?api-version=2024-08-01`
//! (`listClusterAdminCredential` for the admin's local account), answered with
//! `{"kubeconfigs": [{"name": "clusterUser", "value": <base64 kubeconfig>}]}`.
//!
//! Reference: <https://learn.microsoft.com/rest/api/aks/managed-clusters/list-cluster-user-credentials>.
//! The errors users hit are named in terms of what to grant or change.

use std::sync::Arc;

use azure_core::error::ErrorKind as AzureErrorKind;
use azure_core::http::policies::Policy;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::{Context, Method, Pipeline, PipelineSendOptions, Request, StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::credential::{client_options, error_line};
use super::sign_in::{AzureSignIn, SignInError, SignedIn};
use crate::core::secret::Secret;

/// The Resource Manager API version of the credential calls (GA).
pub const API_VERSION: &str = "2024-08-01";

/// The Azure RBAC role that allows `listClusterUserCredential`.
pub const USER_ROLE: &str = "Azure Kubernetes Service Cluster User Role";
/// The Azure RBAC role that allows `listClusterAdminCredential`.
pub const ADMIN_ROLE: &str = "Azure Kubernetes Service Cluster Admin Role";

/// Which AKS cluster, and whether to use its admin's local account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AksCluster {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    /// `listClusterAdminCredential`: the cluster's local admin account.
    #[serde(default)]
    pub admin: bool,
}

/// A cluster's kubeconfig and the sign-in that fetched it (for the cluster's own tokens).
pub struct AksCredentials {
    /// The kubeconfig's YAML: for `admin`, it holds a client key.
    pub kubeconfig: Secret,
    pub signed_in: SignedIn,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "AKS cluster `{cluster}` (resource group `{resource_group}`, subscription `{subscription}`): {kind}"
)]
pub struct AksError {
    pub subscription: String,
    pub resource_group: String,
    pub cluster: String,
    pub kind: Box<AksErrorKind>,
}

#[derive(Debug, thiserror::Error)]
pub enum AksErrorKind {
    #[error("`{field}` {problem}")]
    Invalid {
        field: &'static str,
        problem: &'static str,
    },
    #[error(transparent)]
    SignIn(#[from] SignInError),
    #[error("sign-in failed: {0}")]
    Token(String),
    #[error(
        "access denied: grant the identity the \"{role}\" Azure role on the cluster (or its resource group) ({message})"
    )]
    Forbidden { role: &'static str, message: String },
    #[error(
        "not found: check the subscription, the resource group and the cluster name, and that the identity can see them ({message})"
    )]
    NotFound { message: String },
    #[error(
        "the cluster has local accounts disabled, so it has no admin credentials: remove `admin: true` to sign in with Microsoft Entra ID"
    )]
    LocalAccountsDisabled,
    #[error("Azure Resource Manager is unreachable: {0}")]
    Unreachable(String),
    #[error("Azure Resource Manager answered {status} {code}: {message}")]
    Failed {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the answer holds no usable kubeconfig: {0}")]
    BadKubeconfig(String),
}

/// ARM's error body: `{"error": {"code", "message"}}`.
#[derive(Deserialize)]
struct CloudError {
    error: CloudErrorBody,
}

#[derive(Deserialize)]
struct CloudErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct CredentialResults {
    #[serde(default)]
    kubeconfigs: Vec<CredentialResult>,
}

#[derive(Deserialize)]
struct CredentialResult {
    value: String,
}

impl AksCluster {
    fn error(&self, kind: AksErrorKind) -> AksError {
        AksError {
            subscription: self.subscription.clone(),
            resource_group: self.resource_group.clone(),
            cluster: self.name.clone(),
            kind: Box::new(kind),
        }
    }

    /// The names go into a URL path: only what Azure itself allows in them.
    fn validate(&self) -> Result<(), AksError> {
        let invalid = |field, problem| self.error(AksErrorKind::Invalid { field, problem });
        let subscription_ok = self.subscription.len() == 36
            && self.subscription.chars().enumerate().all(|(i, c)| {
                matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
            });
        if !subscription_ok {
            return Err(invalid(
                "aks.subscription",
                "must be a subscription id (a GUID)",
            ));
        }
        let group_ok = (1..=90).contains(&self.resource_group.len())
            && !self.resource_group.ends_with('.')
            && self
                .resource_group
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'));
        if !group_ok {
            return Err(invalid(
                "aks.resource_group",
                "must be 1 to 90 letters, digits, `-`, `_`, `.`, `(` or `)`, not ending in `.`",
            ));
        }
        let name = self.name.as_bytes();
        let name_ok = (1..=63).contains(&name.len())
            && name.first().is_some_and(u8::is_ascii_alphanumeric)
            && name.last().is_some_and(u8::is_ascii_alphanumeric)
            && name
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'));
        if !name_ok {
            return Err(invalid(
                "aks.cluster",
                "must be 1 to 63 letters, digits, `-` or `_`, starting and ending with a letter or digit",
            ));
        }
        Ok(())
    }

    fn action(&self) -> &'static str {
        if self.admin {
            "listClusterAdminCredential"
        } else {
            "listClusterUserCredential"
        }
    }

    fn role(&self) -> &'static str {
        if self.admin { ADMIN_ROLE } else { USER_ROLE }
    }
}

/// Resource Manager's endpoint: the service connection's URL (its `environment`'s, as the agent
/// passes it in `ENDPOINT_URL_<id>`), else the cloud's.
fn resource_manager(sign_in: &AzureSignIn, signed_in: &SignedIn) -> String {
    sign_in
        .connection()
        .and_then(|c| c.url.as_deref())
        .and_then(|url| Url::parse(url).ok())
        .filter(|url| url.scheme() == "https" && url.host_str().is_some())
        .map_or_else(
            || signed_in.cloud.resource_manager().to_owned(),
            |url| url.as_str().trim_end_matches('/').to_owned(),
        )
}

/// Signs in and asks Resource Manager for `cluster`'s kubeconfig.
pub async fn fetch_kubeconfig(
    cluster: &AksCluster,
    sign_in: &AzureSignIn,
) -> Result<AksCredentials, AksError> {
    cluster.validate()?;
    let signed_in = sign_in
        .sign_in()
        .map_err(|e| cluster.error(AksErrorKind::SignIn(e)))?;
    let endpoint = resource_manager(sign_in, &signed_in);
    let mut url = Url::parse(&format!(
        "{endpoint}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}/{}",
        cluster.subscription,
        cluster.resource_group,
        cluster.name,
        cluster.action()
    ))
    .map_err(|e| cluster.error(AksErrorKind::Unreachable(e.to_string())))?;
    url.query_pairs_mut()
        .append_pair("api-version", API_VERSION);
    if !cluster.admin {
        // Entra ID clusters: a kubeconfig whose user runs kubelogin, which we replace in-process.
        url.query_pairs_mut().append_pair("format", "exec");
    }
    let authorize: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(
        signed_in.credential.clone(),
        [format!("{endpoint}/.default")],
    ));
    let pipeline = Pipeline::new(
        option_env!("CARGO_PKG_NAME"),
        option_env!("CARGO_PKG_VERSION"),
        client_options(&signed_in.transport, signed_in.cloud),
        Vec::new(),
        vec![authorize],
        None,
    );
    let mut request = Request::new(url, Method::Post);
    request.insert_header("content-type", "application/json");
    request.set_body(Vec::<u8>::new());
    let options = PipelineSendOptions {
        skip_checks: true,
        ..Default::default()
    };
    let response = pipeline
        .send(&Context::new(), &mut request, Some(options))
        .await
        .map_err(|e| {
            cluster.error(match e.kind() {
                AzureErrorKind::Credential => AksErrorKind::Token(error_line(&e)),
                _ => AksErrorKind::Unreachable(error_line(&e)),
            })
        })?;
    let status = response.status();
    let body = response.into_body();
    if status != StatusCode::Ok {
        let (code, message) = body
            .json::<CloudError>()
            .map(|e| (e.error.code, e.error.message))
            .unwrap_or_default();
        return Err(cluster.error(classify(cluster, status, code, message)));
    }
    let results: CredentialResults = body
        .json()
        .map_err(|e| cluster.error(AksErrorKind::BadKubeconfig(error_line(&e))))?;
    let first = results.kubeconfigs.into_iter().next().ok_or_else(|| {
        cluster.error(AksErrorKind::BadKubeconfig(
            "`kubeconfigs` is empty".to_owned(),
        ))
    })?;
    let bytes = azure_core::base64::decode(first.value.trim())
        .map_err(|_| cluster.error(AksErrorKind::BadKubeconfig("not base64".to_owned())))?;
    let kubeconfig = String::from_utf8(bytes)
        .map_err(|_| cluster.error(AksErrorKind::BadKubeconfig("not UTF-8 text".to_owned())))?;
    Ok(AksCredentials {
        kubeconfig: Secret::new(kubeconfig),
        signed_in,
    })
}

fn classify(
    cluster: &AksCluster,
    status: StatusCode,
    code: String,
    message: String,
) -> AksErrorKind {
    match status {
        StatusCode::Forbidden => AksErrorKind::Forbidden {
            role: cluster.role(),
            message,
        },
        StatusCode::NotFound => AksErrorKind::NotFound { message },
        StatusCode::Unauthorized => AksErrorKind::Token(format!("{code}: {message}")),
        // ARM's answer to the admin credential of a cluster with `disableLocalAccounts`:
        // 400 `BadRequest`, "Getting static credential is not allowed because this cluster is
        // set to disable local accounts." (as reported in terraform-provider-azurerm#15489).
        StatusCode::BadRequest if message.contains("disable local accounts") => {
            AksErrorKind::LocalAccountsDisabled
        }
        other => AksErrorKind::Failed {
            status: u16::from(other),
            code,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(subscription: &str, group: &str, name: &str) -> AksCluster {
        AksCluster {
            subscription: subscription.into(),
            resource_group: group.into(),
            name: name.into(),
            admin: false,
        }
    }

    const SUBSCRIPTION: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";

    #[test]
    fn names_that_could_change_the_url_are_refused() {
        assert!(
            cluster(SUBSCRIPTION, "fleet-rg", "fleet-aks")
                .validate()
                .is_ok()
        );
        for (subscription, group, name, field) in [
            ("not-a-guid", "rg", "c", "aks.subscription"),
            (SUBSCRIPTION, "../other", "c", "aks.resource_group"),
            (SUBSCRIPTION, "rg.", "c", "aks.resource_group"),
            (SUBSCRIPTION, "rg", "c/../x", "aks.cluster"),
            (SUBSCRIPTION, "rg", "-c", "aks.cluster"),
            (SUBSCRIPTION, "rg", "c?x=1", "aks.cluster"),
        ] {
            let error = cluster(subscription, group, name).validate().unwrap_err();
            assert!(
                matches!(*error.kind, AksErrorKind::Invalid { field: f, .. } if f == field),
                "{error}"
            );
        }
    }

    #[test]
    fn errors_name_the_role_to_grant() {
        let mut user = cluster(SUBSCRIPTION, "rg", "c");
        let denied = classify(
            &user,
            StatusCode::Forbidden,
            "AuthorizationFailed".into(),
            "no".into(),
        );
        assert!(denied.to_string().contains(USER_ROLE), "{denied}");
        user.admin = true;
        let denied = classify(
            &user,
            StatusCode::Forbidden,
            "AuthorizationFailed".into(),
            "no".into(),
        );
        assert!(denied.to_string().contains(ADMIN_ROLE), "{denied}");
    }
}
