//! [`TaskEnvironment`]: everything `agent-orch task` reads from the agent, in one call.

use super::inputs::{InputErrors, TaskInputs};
use super::pipeline_context::PipelineContext;
use super::service_connection::{
    AzureCredential, ConnectionError, ConnectionErrorKind, OidcSettings, ServiceConnection,
};
use crate::core::agent_env::AgentEnv;
use crate::core::secret::Secret;

/// The task's inputs, its Azure connection (when `azureSubscription` is set), the pipeline's
/// OIDC settings and the `ado` template context.
#[derive(Clone, Debug)]
pub struct TaskEnvironment {
    pub inputs: TaskInputs,
    pub connection: Option<ServiceConnection>,
    pub oidc: Option<OidcSettings>,
    pub pipeline: PipelineContext,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskEnvironmentError {
    #[error(transparent)]
    Inputs(#[from] InputErrors),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
}

impl TaskEnvironment {
    pub fn read(env: &AgentEnv) -> Result<Self, TaskEnvironmentError> {
        let inputs = TaskInputs::read(env)?;
        let oidc = OidcSettings::read(env);
        let connection = match &inputs.azure_subscription {
            Some(id) => Some(ServiceConnection::read(env, id)?),
            None => None,
        };
        if let Some(connection) = &connection
            && matches!(
                connection.credential,
                AzureCredential::WorkloadIdentityFederation { .. }
            )
            && oidc.is_none()
        {
            // Fail before the run starts rather than at the first secret it needs.
            let missing = if env.var("SYSTEM_OIDCREQUESTURI").is_none() {
                "SYSTEM_OIDCREQUESTURI"
            } else {
                "SYSTEM_ACCESSTOKEN"
            };
            return Err(ConnectionError {
                connection: connection.id.clone(),
                kind: ConnectionErrorKind::FederationNeeds(missing),
            }
            .into());
        }
        Ok(Self {
            inputs,
            connection,
            oidc,
            pipeline: PipelineContext::read(env),
        })
    }

    /// Every secret read from the environment, to announce with `task.setsecret` before the
    /// run prints anything. The agent masks the connection's own secrets already; announcing
    /// them again is harmless and keeps this independent of the agent's version.
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut secrets = Vec::new();
        if let Some(oidc) = &self.oidc {
            secrets.push(&oidc.access_token);
        }
        match self.connection.as_ref().map(|c| &c.credential) {
            Some(AzureCredential::ServicePrincipalSecret { client_secret, .. }) => {
                secrets.push(client_secret);
            }
            Some(AzureCredential::ServicePrincipalCertificate { certificate, .. }) => {
                secrets.push(certificate);
            }
            _ => {}
        }
        secrets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "7a3c1e4b-0d2f-4b8e-9c61-2f5d8a9b0c13";
    const WIF: &str = r#"{"scheme":"WorkloadIdentityFederation","parameters":{"tenantid":"t","serviceprincipalid":"c"}}"#;

    fn env(extra: &[(&str, &str)]) -> AgentEnv {
        let auth = format!("ENDPOINT_AUTH_{ID}");
        let mut vars = vec![
            ("TF_BUILD", "True"),
            ("BUILD_BUILDID", "4711"),
            ("INPUT_WORKFLOWFILE", "w.yaml"),
            ("INPUT_AZURESUBSCRIPTION", ID),
            (auth.as_str(), WIF),
        ];
        vars.extend_from_slice(extra);
        AgentEnv::from_vars(vars)
    }

    #[test]
    fn reads_inputs_connection_oidc_and_context() {
        let task = TaskEnvironment::read(&env(&[
            (
                "SYSTEM_OIDCREQUESTURI",
                "https://dev.azure.com/o/p/_apis/oidctoken",
            ),
            ("SYSTEM_ACCESSTOKEN", "job-token"),
        ]))
        .unwrap();
        assert_eq!(task.inputs.workflow_file.to_str(), Some("w.yaml"));
        assert_eq!(task.connection.as_ref().map(|c| c.id.as_str()), Some(ID));
        assert_eq!(task.pipeline.build_id.as_deref(), Some("4711"));
        let secrets: Vec<&str> = task.secrets().into_iter().map(Secret::expose).collect();
        assert_eq!(secrets, ["job-token"]);
    }

    #[test]
    fn federation_without_the_access_token_says_how_to_map_it() {
        let error = TaskEnvironment::read(&env(&[(
            "SYSTEM_OIDCREQUESTURI",
            "https://dev.azure.com/o/p/_apis/oidctoken",
        )]))
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "service connection `{ID}`: it uses workload identity federation, which needs \
                 `SYSTEM_ACCESSTOKEN` in the task's environment; add \
                 `env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)` to the step"
            )
        );
    }

    #[test]
    fn no_connection_is_fine_and_bad_inputs_come_first() {
        let task =
            TaskEnvironment::read(&AgentEnv::from_vars([("INPUT_WORKFLOWFILE", "w")])).unwrap();
        assert!(task.connection.is_none() && task.secrets().is_empty());
        assert!(matches!(
            TaskEnvironment::read(&AgentEnv::default()),
            Err(TaskEnvironmentError::Inputs(_))
        ));
    }
}
