//! Azure: the workflow's `secrets:` fetched from Key Vault with the official Azure SDK.
//!
//! - [`cloud`]: the Azure cloud of a service connection (authority, vault domain);
//! - [`transport`]: the HTTP client the SDK uses (our reqwest), with the loopback redirect that
//!   tests use to reach local fakes behind real-looking `https://` URLs;
//! - [`credential`]: the chain of ways to sign in (service connection, managed identity,
//!   Azure CLI);
//! - [`sign_in`]: the chain's sources and the transport, owned by a run;
//! - [`key_vault`]: reading the secrets, with errors that say what to fix;
//! - [`aks`]: an AKS cluster's kubeconfig from Resource Manager;
//! - [`renewing_token`]: a token kept fresh for a long conversation (an AKS API server);
//! - [`monitor`]: signed queries to Azure Monitor (managed Prometheus, Log Analytics).
//!
//! [`fetch_workflow_secrets`] is what a run calls before its first step: every name in
//! `secrets.names`, or none of the run happens.

pub mod aks;
pub mod cloud;
pub mod credential;
pub mod key_vault;
pub mod monitor;
pub mod renewing_token;
pub mod sign_in;
pub mod transport;

use serde_json::{Map, Value};

use self::key_vault::{KeyVaultError, VaultSecret};
use self::sign_in::{AzureSignIn, SignInError};
use crate::core::agent_env::AgentEnv;
use crate::core::secret::Secret;
use crate::redact::Redactor;
use crate::workflow::model::SecretsConfig;
use crate::workflow::template::secret_key;

/// What to fetch: a vault (name or URL) and the secret names, as the workflow lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsRequest {
    pub vault: String,
    pub names: Vec<String>,
}

impl SecretsRequest {
    /// A workflow's `secrets:`, read from `vault` instead of the workflow's vault when given
    /// (the pipeline task's `keyVaultName`).
    pub fn of(config: &SecretsConfig, vault: Option<&str>) -> Self {
        SecretsRequest {
            vault: vault.map_or_else(|| config.vault.value.clone(), str::to_owned),
            names: config.names.iter().map(|name| name.value.clone()).collect(),
        }
    }
}

/// The secrets of a run, fetched before it starts.
#[derive(Clone, Debug, Default)]
pub struct RunSecrets {
    secrets: Vec<VaultSecret>,
    /// Secrets the run did not fetch but must not show either (the pipeline's tokens and
    /// service connection keys): redacted, never offered to templates.
    masked_only: Vec<String>,
}

impl RunSecrets {
    pub fn new(secrets: Vec<VaultSecret>) -> Self {
        Self {
            secrets,
            masked_only: Vec::new(),
        }
    }

    /// Also redacts these values everywhere the run writes.
    pub fn mask_also<'a>(mut self, values: impl IntoIterator<Item = &'a str>) -> Self {
        self.masked_only
            .extend(values.into_iter().map(str::to_owned));
        self
    }

    /// The `secrets` template context: `openai-api-key` is `secrets.openai_api_key`.
    pub fn template_values(&self) -> Map<String, Value> {
        self.secrets
            .iter()
            .map(|s| {
                (
                    secret_key(&s.name),
                    Value::String(s.value.expose().to_owned()),
                )
            })
            .collect()
    }

    /// Every value, for masking.
    pub fn values(&self) -> Vec<String> {
        self.secrets
            .iter()
            .map(|s| s.value.expose().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// The names fetched, in order.
    pub fn names(&self) -> Vec<&str> {
        self.secrets.iter().map(|s| s.name.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The run's redactor: these values, the values of this process's secret-named
    /// environment variables (provider keys, tokens) and every credential shape. Every output
    /// of the run (console, step logs, reports, prompts, the tape) goes through it.
    pub fn redactor(&self) -> Redactor {
        Redactor::builder()
            .secrets(self.values())
            .secrets(self.masked_only.iter().cloned())
            .process_env()
            .build()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(transparent)]
    SignIn(#[from] SignInError),
    #[error(transparent)]
    KeyVault(#[from] KeyVaultError),
}

/// Signs in as `sign_in` says and reads every secret of `request`.
pub async fn fetch_workflow_secrets(
    request: &SecretsRequest,
    sign_in: &AzureSignIn,
) -> Result<RunSecrets, SecretsError> {
    if request.names.is_empty() {
        return Ok(RunSecrets::default());
    }
    let cloud = sign_in.cloud().map_err(SignInError::from)?;
    // Checked before signing in, so a typo is not reported as a sign-in failure.
    key_vault::vault_url(&request.vault, cloud)?;
    let signed_in = sign_in.sign_in()?;
    let secrets = key_vault::fetch_secrets(
        &request.vault,
        &request.names,
        signed_in.credential,
        cloud,
        &signed_in.transport,
    )
    .await?;
    Ok(RunSecrets::new(secrets))
}

/// One secret of a service's own (the hub's write tokens, a worker's hub token), read as the
/// machine or pod (see [`AzureSignIn::as_machine`]). The value is never part of an error.
pub async fn fetch_service_secret(
    vault: &str,
    name: &str,
    env: &AgentEnv,
    on_azure_vm: bool,
) -> Result<Secret, SecretsError> {
    let request = SecretsRequest {
        vault: vault.to_owned(),
        names: vec![name.to_owned()],
    };
    let mut fetched =
        fetch_workflow_secrets(&request, &AzureSignIn::as_machine(env, on_azure_vm)).await?;
    // Every name asked for is fetched or the call fails, so there is exactly one.
    Ok(fetched
        .secrets
        .pop()
        .map_or_else(|| Secret::new(""), |secret| secret.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> RunSecrets {
        RunSecrets::new(vec![
            VaultSecret {
                name: "openai-api-key".into(),
                value: Secret::new("plain-looking-value-42"),
            },
            VaultSecret {
                name: "db".into(),
                value: Secret::new("hunter2hunter2"),
            },
        ])
    }

    #[test]
    fn templates_see_secrets_under_underscored_names() {
        let values = secrets().template_values();
        assert_eq!(values["openai_api_key"], "plain-looking-value-42");
        assert_eq!(values["db"], "hunter2hunter2");
    }

    #[test]
    fn the_redactor_removes_every_value() {
        let text = "key=plain-looking-value-42 and db hunter2hunter2";
        let redacted = secrets().redactor().redact(text).into_owned();
        assert!(!redacted.contains("plain-looking-value-42"), "{redacted}");
        assert!(!redacted.contains("hunter2hunter2"), "{redacted}");
    }
}
