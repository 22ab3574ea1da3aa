//! Azure Resource Manager's AKS credential calls:
//! `POST /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}/listClusterUserCredential`
//! (and `listClusterAdminCredential`), answered with `{"kubeconfigs": [{"name", "value"}]}`,
//! `value` a base64 kubeconfig.
//!
//! Shapes, as documented and as users report them:
//! - the operation and its 200 answer (`CredentialResults`), `format=exec` for Entra ID clusters:
//!   <https://learn.microsoft.com/rest/api/aks/managed-clusters/list-cluster-user-credentials>;
//! - errors are ARM's `CloudError`, `{"error": {"code", "message"}}`: 403 `AuthorizationFailed`
//!   naming the action and scope (MicrosoftDocs/azure-docs#28541), 404 `ResourceNotFound`,
//!   `ResourceGroupNotFound` or `SubscriptionNotFound`;
//! - the admin credential of a cluster with local accounts disabled: 400 `BadRequest`, "Getting
//!   static credential is not allowed because this cluster is set to disable local accounts."
//!   (hashicorp/terraform-provider-azurerm#15489);
//! - an Entra ID cluster's user kubeconfig runs `kubelogin get-token ... --server-id
//!   6dae42f8-4368-4678-94ff-3960e28e3630` (what `az aks get-credentials` writes).
//!
//! Only Entra's Resource Manager token is accepted, as a bearer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::azure_server::{
    AKS_SERVER_ID, ARM_ACCESS_TOKEN, AzureState, CLIENT_ID, SUBSCRIPTION_ID, TENANT_ID, bearer,
};

/// The token of the admin's local account in the admin kubeconfig.
pub(crate) const ADMIN_TOKEN: &str = "aks-local-admin-token-90e4a1";

/// The AKS cluster Resource Manager knows.
#[derive(Clone, Debug)]
pub(crate) struct FakeAks {
    pub(crate) resource_group: String,
    pub(crate) name: String,
    /// Its API server (a `FakeCluster`'s URL).
    pub(crate) server: String,
    /// Microsoft Entra ID integration: the user kubeconfig runs kubelogin.
    pub(crate) entra: bool,
    pub(crate) local_accounts_disabled: bool,
    /// The identity has no role on the cluster: every call is answered 403.
    pub(crate) denied: bool,
}

impl FakeAks {
    /// `fleet-aks` in `fleet-rg` of [`SUBSCRIPTION_ID`], with Entra ID, serving at `server`.
    pub(crate) fn entra(server: &str) -> Self {
        Self {
            resource_group: "fleet-rg".into(),
            name: "fleet-aks".into(),
            server: server.into(),
            entra: true,
            local_accounts_disabled: false,
            denied: false,
        }
    }

    fn kubeconfig(&self, admin: bool) -> String {
        let user = if admin {
            format!("    token: {ADMIN_TOKEN}\n")
        } else if self.entra {
            format!(
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n      args: [get-token, --environment, AzurePublicCloud, --server-id, {AKS_SERVER_ID}, --client-id, 80faf920-1908-4b52-b5ef-a8e7bedfc67a, --tenant-id, {TENANT_ID}, --login, devicecode]\n      installHint: install kubelogin\n"
            )
        } else {
            "    token: aks-user-token-without-entra\n".to_owned()
        };
        let role = if admin { "clusterAdmin" } else { "clusterUser" };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {role}_{group}_{name}\ncurrent-context: {name}\nusers:\n- name: {role}_{group}_{name}\n  user:\n{user}",
            name = self.name,
            group = self.resource_group,
            server = self.server,
        )
    }
}

pub(crate) fn routes() -> Router<Arc<AzureState>> {
    Router::new().route(
        "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}/{action}",
        post(credentials),
    )
}

fn cloud_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn credentials(
    State(state): State<Arc<AzureState>>,
    Path((subscription, group, name, action)): Path<(String, String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if bearer(&headers) != Some(ARM_ACCESS_TOKEN) {
        return cloud_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        );
    }
    if !query.contains_key("api-version") {
        return cloud_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let admin = match action.as_str() {
        "listClusterUserCredential" => false,
        "listClusterAdminCredential" => true,
        _ => {
            return cloud_error(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                &format!(
                    "The resource type '{action}' could not be found in the namespace 'Microsoft.ContainerService'."
                ),
            );
        }
    };
    let Some(aks) = state.config.lock().unwrap().aks.clone() else {
        return cloud_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{subscription}' could not be found."),
        );
    };
    if subscription != SUBSCRIPTION_ID {
        return cloud_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{subscription}' could not be found."),
        );
    }
    if !group.eq_ignore_ascii_case(&aks.resource_group) {
        return cloud_error(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            &format!("Resource group '{group}' could not be found."),
        );
    }
    if name != aks.name {
        return cloud_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!(
                "The Resource 'Microsoft.ContainerService/managedClusters/{name}' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        );
    }
    if aks.denied {
        return cloud_error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            &format!(
                "The client '{CLIENT_ID}' with object id '{CLIENT_ID}' does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/{action}/action' over scope '/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}' or the scope is invalid. If access was recently granted, please refresh your credentials."
            ),
        );
    }
    if admin && aks.local_accounts_disabled {
        return cloud_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Getting static credential is not allowed because this cluster is set to disable local accounts.",
        );
    }
    let value = azure_core::base64::encode(aks.kubeconfig(admin));
    axum::Json(json!({
        "kubeconfigs": [{"name": if admin { "clusterAdmin" } else { "clusterUser" }, "value": value}],
    }))
    .into_response()
}
