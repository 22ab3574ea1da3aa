//! [`AzureSignIn`]: how a run signs in to Azure, owned so that steps can sign in while the run
//! lasts (a deploy to AKS) as well as before it starts (Key Vault): the sources of the
//! [`CredentialChain`] and the transport override.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::Transport;

use super::cloud::{AzureCloud, UnsupportedCloud};
use super::credential::{CredentialChain, CredentialError, CredentialSources, WorkloadIdentity};
use super::transport::{self, AzureTransport, TransportError};
use crate::ado::service_connection::{OidcSettings, ServiceConnection};
use crate::core::agent_env::AgentEnv;

/// Where a run's Azure credentials come from; see [`CredentialSources`].
#[derive(Clone, Debug, Default)]
pub struct AzureSignIn {
    connection: Option<ServiceConnection>,
    oidc: Option<OidcSettings>,
    workload_identity: Option<WorkloadIdentity>,
    managed_identity_endpoint: bool,
    may_be_azure_vm: bool,
    /// [`transport::OVERRIDE_ENV`]'s value (tests only).
    transport_override: Option<String>,
}

/// A credential chain ready to ask for tokens, with the cloud and transport it uses.
#[derive(Clone)]
pub struct SignedIn {
    pub cloud: AzureCloud,
    pub transport: Transport,
    pub credential: Arc<dyn TokenCredential>,
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Cloud(#[from] UnsupportedCloud),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

impl AzureSignIn {
    pub fn new(sources: CredentialSources<'_>, transport_override: Option<&str>) -> Self {
        AzureSignIn {
            connection: sources.connection.cloned(),
            oidc: sources.oidc.cloned(),
            workload_identity: sources.workload_identity,
            managed_identity_endpoint: sources.managed_identity_endpoint,
            may_be_azure_vm: sources.may_be_azure_vm,
            transport_override: transport_override.map(str::to_owned),
        }
    }

    /// With no service connection: as the machine or pod can (see
    /// [`CredentialSources::from_env`]); `on_azure_vm` allows IMDS.
    pub fn as_machine(env: &AgentEnv, on_azure_vm: bool) -> Self {
        Self::new(
            CredentialSources::from_env(env, on_azure_vm),
            env.var(transport::OVERRIDE_ENV),
        )
    }

    /// The pipeline task's service connection, if any.
    pub fn connection(&self) -> Option<&ServiceConnection> {
        self.connection.as_ref()
    }

    /// The connection's cloud; the public cloud without one.
    pub fn cloud(&self) -> Result<AzureCloud, UnsupportedCloud> {
        AzureCloud::from_connection(self.connection.as_ref().and_then(|c| c.cloud.as_deref()))
    }

    /// The chain for these sources. Nothing is sent until a token is asked for.
    pub fn sign_in(&self) -> Result<SignedIn, SignInError> {
        let cloud = self.cloud()?;
        let transport = AzureTransport::new(self.transport_override.as_deref())?.into_sdk();
        let sources = CredentialSources {
            connection: self.connection.as_ref(),
            oidc: self.oidc.as_ref(),
            workload_identity: self.workload_identity.clone(),
            managed_identity_endpoint: self.managed_identity_endpoint,
            may_be_azure_vm: self.may_be_azure_vm,
        };
        let credential: Arc<dyn TokenCredential> =
            Arc::new(CredentialChain::new(sources, cloud, &transport)?);
        Ok(SignedIn {
            cloud,
            transport,
            credential,
        })
    }
}
