//! [`CredentialChain`]: how agent-orch signs in to Microsoft Entra ID, tried in order.
//!
//! The Azure SDK has no `DefaultAzureCredential`, and its order would not be ours anyway:
//!
//! - with a service connection (the task's `azureSubscription` input), that connection and
//!   nothing else: workload identity federation through [`AzurePipelinesCredential`] (it asks
//!   `SYSTEM_OIDCREQUESTURI` for an ID token and exchanges it as a client assertion), a client
//!   secret, or the agent's managed identity. A pipeline must not quietly fall back to whatever
//!   identity the agent machine happens to have;
//! - without one: Kubernetes workload identity (AKS sets `AZURE_FEDERATED_TOKEN_FILE`,
//!   `AZURE_CLIENT_ID` and `AZURE_TENANT_ID` in the pod), the managed identity (App Service
//!   style `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, or IMDS on a machine that may be an Azure
//!   VM), then the Azure CLI (`az login` on a laptop).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error as AzureError, ErrorKind as AzureErrorKind};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{
    AzureCliCredential, AzurePipelinesCredential, AzurePipelinesCredentialOptions,
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

use super::cloud::AzureCloud;
use crate::ado::service_connection::{AzureCredential, OidcSettings, ServiceConnection};
use crate::core::agent_env::AgentEnv;

/// Where credentials can come from, read from the environment by the caller.
#[derive(Clone, Debug, Default)]
pub struct CredentialSources<'a> {
    /// The task's service connection, if any.
    pub connection: Option<&'a ServiceConnection>,
    /// `SYSTEM_OIDCREQUESTURI` + `SYSTEM_ACCESSTOKEN`, needed for federation.
    pub oidc: Option<&'a OidcSettings>,
    /// Kubernetes workload identity, when the pod has it.
    pub workload_identity: Option<WorkloadIdentity>,
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set (App Service style managed identity).
    pub managed_identity_endpoint: bool,
    /// The machine may be an Azure VM with a managed identity (IMDS): inside a pipeline job,
    /// or a service told to read Key Vault.
    pub may_be_azure_vm: bool,
}

impl<'a> CredentialSources<'a> {
    /// The sources `env` offers besides a service connection.
    pub fn from_env(env: &AgentEnv, may_be_azure_vm: bool) -> Self {
        CredentialSources {
            connection: None,
            oidc: None,
            workload_identity: WorkloadIdentity::read(env),
            managed_identity_endpoint: env.var("IDENTITY_ENDPOINT").is_some()
                && env.var("IDENTITY_HEADER").is_some(),
            may_be_azure_vm,
        }
    }
}

/// What AKS workload identity puts in a pod: a projected service account token, exchanged at
/// Entra as a client assertion for the identity `client_id` of `tenant_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadIdentity {
    pub tenant_id: String,
    pub client_id: String,
    pub token_file: PathBuf,
}

impl WorkloadIdentity {
    /// All three variables, or `None`.
    pub fn read(env: &AgentEnv) -> Option<Self> {
        Some(WorkloadIdentity {
            tenant_id: env.var("AZURE_TENANT_ID")?.to_owned(),
            client_id: env.var("AZURE_CLIENT_ID")?.to_owned(),
            token_file: PathBuf::from(env.var("AZURE_FEDERATED_TOKEN_FILE")?),
        })
    }
}

/// Credentials tried in order; the first token wins. Its errors name every credential tried.
pub struct CredentialChain {
    links: Vec<(&'static str, Arc<dyn TokenCredential>)>,
}

impl fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.links.iter().map(|(name, _)| name))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sign in to Azure: {kind}")]
pub struct CredentialError {
    pub kind: CredentialErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialErrorKind {
    #[error(
        "service connection `{0}` uses a certificate, which agent-orch does not support yet; use workload identity federation"
    )]
    CertificateUnsupported(String),
    #[error(
        "service connection `{0}` uses workload identity federation, but `SYSTEM_OIDCREQUESTURI` or `SYSTEM_ACCESSTOKEN` is not set"
    )]
    FederationUnavailable(String),
    #[error("failed to set up {credential}")]
    Setup {
        credential: &'static str,
        #[source]
        source: AzureError,
    },
}

impl CredentialChain {
    /// The chain for these sources, signing in at `cloud`'s authority; every credential sends
    /// its requests through `transport`.
    pub fn new(
        sources: CredentialSources<'_>,
        cloud: AzureCloud,
        transport: &Transport,
    ) -> Result<Self, CredentialError> {
        let options = || client_options(transport, cloud);
        let setup = |credential: &'static str| {
            move |source| CredentialError {
                kind: CredentialErrorKind::Setup { credential, source },
            }
        };
        let managed_identity = || -> Result<Arc<dyn TokenCredential>, CredentialError> {
            Ok(
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    client_options: options(),
                    ..Default::default()
                }))
                .map_err(setup("the managed identity credential"))?,
            )
        };
        let mut links: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
        match sources.connection {
            Some(connection) => match &connection.credential {
                AzureCredential::WorkloadIdentityFederation {
                    tenant_id,
                    client_id,
                } => {
                    let oidc = sources.oidc.ok_or_else(|| CredentialError {
                        kind: CredentialErrorKind::FederationUnavailable(connection.id.clone()),
                    })?;
                    let credential = AzurePipelinesCredential::new(
                        tenant_id.clone(),
                        client_id.clone(),
                        &connection.id,
                        oidc.access_token.expose().to_owned(),
                        Some(AzurePipelinesCredentialOptions {
                            credential_options: ClientAssertionCredentialOptions {
                                client_options: options(),
                            },
                        }),
                    )
                    .map_err(setup("workload identity federation"))?;
                    links.push(("workload identity federation", credential));
                }
                AzureCredential::ServicePrincipalSecret {
                    tenant_id,
                    client_id,
                    client_secret,
                } => {
                    let credential = ClientSecretCredential::new(
                        tenant_id,
                        client_id.clone(),
                        client_secret.expose().to_owned().into(),
                        Some(ClientSecretCredentialOptions {
                            client_options: options(),
                        }),
                    )
                    .map_err(setup("the service principal credential"))?;
                    links.push(("service principal secret", credential));
                }
                AzureCredential::ServicePrincipalCertificate { .. } => {
                    return Err(CredentialError {
                        kind: CredentialErrorKind::CertificateUnsupported(connection.id.clone()),
                    });
                }
                AzureCredential::ManagedIdentity { .. } => {
                    links.push(("managed identity", managed_identity()?));
                }
            },
            None => {
                if let Some(identity) = &sources.workload_identity {
                    let credential =
                        WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                            credential_options: ClientAssertionCredentialOptions {
                                client_options: options(),
                            },
                            client_id: Some(identity.client_id.clone()),
                            tenant_id: Some(identity.tenant_id.clone()),
                            token_file_path: Some(identity.token_file.clone()),
                        }))
                        .map_err(setup("the workload identity credential"))?;
                    links.push(("workload identity", credential));
                }
                if sources.managed_identity_endpoint || sources.may_be_azure_vm {
                    links.push(("managed identity", managed_identity()?));
                }
                let cli =
                    AzureCliCredential::new(None).map_err(setup("the Azure CLI credential"))?;
                links.push(("Azure CLI", cli));
            }
        }
        Ok(Self { links })
    }

    /// The credentials in the order they are tried, by name.
    pub fn names(&self) -> Vec<&'static str> {
        self.links.iter().map(|(name, _)| *name).collect()
    }
}

/// Client options shared by every Azure client: our transport, and few quick retries so an
/// unreachable endpoint fails in seconds rather than after the SDK's minute of backoff.
pub(crate) fn client_options(transport: &Transport, cloud: AzureCloud) -> ClientOptions {
    ClientOptions {
        transport: Some(transport.clone()),
        cloud: Some(cloud.sdk_configuration()),
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            max_retries: 2,
            max_total_elapsed: azure_core::time::Duration::seconds(10),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[async_trait::async_trait]
impl TokenCredential for CredentialChain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let mut failures = Vec::new();
        for (name, credential) in &self.links {
            match credential.get_token(scopes, options.clone()).await {
                Ok(token) => return Ok(token),
                Err(error) => failures.push(format!("{name}: {}", error_line(&error))),
            }
        }
        Err(AzureError::with_message(
            AzureErrorKind::Credential,
            format!("no credential could sign in ({})", failures.join("; ")),
        ))
    }
}

/// The error's message and its sources' (those not already part of it), on one line.
pub(crate) fn error_line(error: &AzureError) -> String {
    crate::core::error_chain::distinct_error_chain(error).replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::azure::transport::AzureTransport;
    use crate::core::secret::Secret;

    fn connection(credential: AzureCredential) -> ServiceConnection {
        ServiceConnection {
            id: "7a3c1e4b-0d2f-4b8e-9c61-2f5d8a9b0c13".into(),
            url: None,
            credential,
            subscription_id: None,
            cloud: None,
            data: BTreeMap::new(),
        }
    }

    fn chain(sources: CredentialSources<'_>) -> Result<Vec<&'static str>, CredentialError> {
        let transport = AzureTransport::new(None).unwrap().into_sdk();
        CredentialChain::new(sources, AzureCloud::Public, &transport).map(|chain| chain.names())
    }

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    #[test]
    fn a_connection_is_the_only_credential() {
        let secret = connection(AzureCredential::ServicePrincipalSecret {
            tenant_id: TENANT.into(),
            client_id: "c".into(),
            client_secret: Secret::new("s3cret"),
        });
        let sources = CredentialSources {
            connection: Some(&secret),
            managed_identity_endpoint: true,
            may_be_azure_vm: true,
            ..Default::default()
        };
        assert_eq!(chain(sources).unwrap(), ["service principal secret"]);

        let identity = connection(AzureCredential::ManagedIdentity { tenant_id: None });
        let sources = CredentialSources {
            connection: Some(&identity),
            ..Default::default()
        };
        assert_eq!(chain(sources).unwrap(), ["managed identity"]);
    }

    #[test]
    fn without_a_connection_workload_identity_managed_identity_then_the_cli() {
        assert_eq!(chain(CredentialSources::default()).unwrap(), ["Azure CLI"]);
        let sources = CredentialSources {
            managed_identity_endpoint: true,
            ..Default::default()
        };
        assert_eq!(chain(sources).unwrap(), ["managed identity", "Azure CLI"]);
        // The projected service account token AKS mounts; read when the chain is built.
        let pod = tempfile::tempdir().unwrap();
        let token_file = pod.path().join("azure-identity-token");
        std::fs::write(&token_file, "eyJ.pod-token.sig").unwrap();
        let aks = AgentEnv::from_vars([
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_FEDERATED_TOKEN_FILE", token_file.to_str().unwrap()),
        ]);
        assert_eq!(
            chain(CredentialSources::from_env(&aks, true)).unwrap(),
            ["workload identity", "managed identity", "Azure CLI"]
        );
        // Two of the three variables are not workload identity.
        let partial = AgentEnv::from_vars([("AZURE_TENANT_ID", TENANT), ("AZURE_CLIENT_ID", "c")]);
        assert_eq!(
            chain(CredentialSources::from_env(&partial, false)).unwrap(),
            ["Azure CLI"]
        );
    }

    #[test]
    fn unusable_connections_are_explained() {
        let federated = connection(AzureCredential::WorkloadIdentityFederation {
            tenant_id: TENANT.into(),
            client_id: "c".into(),
        });
        let error = chain(CredentialSources {
            connection: Some(&federated),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            matches!(error.kind, CredentialErrorKind::FederationUnavailable(_)),
            "{error}"
        );
        let certificate = connection(AzureCredential::ServicePrincipalCertificate {
            tenant_id: TENANT.into(),
            client_id: "c".into(),
            certificate: Secret::new("-----BEGIN"),
        });
        let error = chain(CredentialSources {
            connection: Some(&certificate),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            error.to_string().starts_with(
                "cannot sign in to Azure: service connection `7a3c1e4b-0d2f-4b8e-9c61-2f5d8a9b0c13` uses a certificate"
            ),
            "{error}"
        );
    }
}
