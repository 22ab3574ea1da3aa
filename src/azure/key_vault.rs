//! Fetching a workflow's secrets from Azure Key Vault, all of them, before any step runs.

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind as AzureErrorKind;
use azure_core::http::{StatusCode, Transport};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use super::cloud::AzureCloud;
use super::credential::{client_options, error_line};
use crate::core::secret::Secret;

/// A fetched secret: its name in the vault and its value.
#[derive(Clone, PartialEq, Eq)]
pub struct VaultSecret {
    pub name: String,
    pub value: Secret,
}

impl fmt::Debug for VaultSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultSecret")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("key vault `{vault}`: {kind}")]
pub struct KeyVaultError {
    /// The vault's URL.
    pub vault: String,
    pub kind: KeyVaultErrorKind,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyVaultErrorKind {
    #[error("`{0}` is neither a vault name nor an `https://` vault URL")]
    InvalidVault(String),
    #[error("`{0}` is not a Key Vault secret name (1 to 127 letters, digits and hyphens)")]
    InvalidSecretName(String),
    #[error("secret `{0}` does not exist (or is disabled)")]
    SecretNotFound(String),
    #[error("access to secret `{name}` was denied; grant the identity `get` on secrets ({detail})")]
    Denied { name: String, detail: String },
    #[error("sign-in failed: {0}")]
    SignIn(String),
    #[error("the vault is unreachable: {0}")]
    Unreachable(String),
    #[error("failed to read secret `{name}`: {detail}")]
    Failed { name: String, detail: String },
}

/// The vault URL for a name (`fleet-kv`, in `cloud`'s vault domain) or a URL
/// (`https://fleet-kv.vault.azure.net/`).
pub fn vault_url(vault: &str, cloud: AzureCloud) -> Result<String, KeyVaultError> {
    let invalid = || KeyVaultError {
        vault: vault.to_owned(),
        kind: KeyVaultErrorKind::InvalidVault(vault.to_owned()),
    };
    if vault.contains("://") {
        return match azure_core::http::Url::parse(vault) {
            Ok(url) if url.scheme() == "https" && url.host_str().is_some() => {
                Ok(format!("https://{}/", url.host_str().unwrap_or_default()))
            }
            _ => Err(invalid()),
        };
    }
    let valid = (3..=24).contains(&vault.len())
        && vault.starts_with(|c: char| c.is_ascii_alphabetic())
        && vault.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(format!("https://{vault}.{}/", cloud.vault_domain()))
    } else {
        Err(invalid())
    }
}

/// Reads every secret in `names` from `vault` (a name or URL), in order; the first problem ends
/// the fetch, since a run without one of its secrets must not start.
pub async fn fetch_secrets(
    vault: &str,
    names: &[String],
    credential: Arc<dyn TokenCredential>,
    cloud: AzureCloud,
    transport: &Transport,
) -> Result<Vec<VaultSecret>, KeyVaultError> {
    let url = vault_url(vault, cloud)?;
    let error = |kind| KeyVaultError {
        vault: url.clone(),
        kind,
    };
    // The name becomes part of the request path: nothing but the vault's own alphabet.
    if let Some(bad) = names.iter().find(|name| !is_secret_name(name)) {
        return Err(error(KeyVaultErrorKind::InvalidSecretName(bad.clone())));
    }
    let client = SecretClient::new(
        &url,
        credential,
        Some(SecretClientOptions {
            client_options: client_options(transport, cloud),
            ..Default::default()
        }),
    )
    .map_err(|e| {
        error(KeyVaultErrorKind::Failed {
            name: String::new(),
            detail: error_line(&e),
        })
    })?;
    let mut secrets = Vec::with_capacity(names.len());
    for name in names {
        let response = client
            .get_secret(name, None)
            .await
            .map_err(|e| error(classify(name, &e)))?;
        let secret = response.into_model().map_err(|e| {
            error(KeyVaultErrorKind::Failed {
                name: name.clone(),
                detail: error_line(&e),
            })
        })?;
        // A secret without a value is as unusable as a missing one.
        let Some(value) = secret.value else {
            return Err(error(KeyVaultErrorKind::SecretNotFound(name.clone())));
        };
        secrets.push(VaultSecret {
            name: name.clone(),
            value: Secret::new(value),
        });
    }
    Ok(secrets)
}

fn is_secret_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn classify(name: &str, error: &azure_core::Error) -> KeyVaultErrorKind {
    let detail = error_line(error);
    match error.kind() {
        AzureErrorKind::HttpResponse { status, .. } if *status == StatusCode::NotFound => {
            KeyVaultErrorKind::SecretNotFound(name.to_owned())
        }
        AzureErrorKind::HttpResponse { status, .. } if *status == StatusCode::Forbidden => {
            KeyVaultErrorKind::Denied {
                name: name.to_owned(),
                detail,
            }
        }
        AzureErrorKind::HttpResponse { status, .. } if *status == StatusCode::Unauthorized => {
            KeyVaultErrorKind::SignIn(detail)
        }
        AzureErrorKind::Credential => KeyVaultErrorKind::SignIn(detail),
        AzureErrorKind::Connection | AzureErrorKind::Io => KeyVaultErrorKind::Unreachable(detail),
        _ => KeyVaultErrorKind::Failed {
            name: name.to_owned(),
            detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_names_and_urls() {
        assert_eq!(
            vault_url("fleet-keyvault-prod", AzureCloud::Public).unwrap(),
            "https://fleet-keyvault-prod.vault.azure.net/"
        );
        assert_eq!(
            vault_url("fleet", AzureCloud::UsGovernment).unwrap(),
            "https://fleet.vault.usgovcloudapi.net/"
        );
        assert_eq!(
            vault_url("https://fleet.vault.azure.net", AzureCloud::China).unwrap(),
            "https://fleet.vault.azure.net/"
        );
        for bad in ["http://fleet.vault.azure.net", "f", "bad name", "1vault"] {
            assert!(
                matches!(
                    vault_url(bad, AzureCloud::Public).unwrap_err().kind,
                    KeyVaultErrorKind::InvalidVault(_)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn secret_names_cannot_reach_other_paths() {
        assert!(is_secret_name("openai-api-key"));
        for bad in ["", "../keys/signing", "a/b", "a?b", "name with space"] {
            assert!(!is_secret_name(bad), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_value() {
        let secret = VaultSecret {
            name: "openai-api-key".into(),
            value: Secret::new("sk-live-value"),
        };
        assert!(!format!("{secret:?}").contains("sk-live-value"));
    }
}
