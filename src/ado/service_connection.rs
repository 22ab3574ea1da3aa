//! [`ServiceConnection`]: the Azure Resource Manager service connection named by the
//! `azureSubscription` input, and [`OidcSettings`] for workload identity federation.
//!
//! The agent passes a connection as `ENDPOINT_URL_<id>`, `ENDPOINT_AUTH_<id>` (JSON:
//! `{"scheme": ..., "parameters": {...}}`) and `ENDPOINT_DATA_<id>` (JSON object), where `<id>`
//! is the connection's GUID, the value of the input. Keys are matched without regard to case:
//! the agent and the task library do not agree on their spelling.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::core::agent_env::AgentEnv;
use crate::core::secret::Secret;

/// An Azure Resource Manager service connection, as the agent describes it to the task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConnection {
    pub id: String,
    /// The Resource Manager URL (`https://management.azure.com/`).
    pub url: Option<String>,
    pub credential: AzureCredential,
    pub subscription_id: Option<String>,
    /// The Azure cloud (`AzureCloud`, `AzureUSGovernment`, ...).
    pub cloud: Option<String>,
    /// `ENDPOINT_DATA_<id>` as given, for anything not lifted into a field.
    pub data: BTreeMap<String, String>,
}

/// How the connection signs in to Microsoft Entra ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AzureCredential {
    /// Scheme `WorkloadIdentityFederation`: no secret; an ID token is requested from the
    /// pipeline (see [`OidcSettings`]) and exchanged as a client assertion.
    WorkloadIdentityFederation {
        tenant_id: String,
        client_id: String,
    },
    /// Scheme `ServicePrincipal`, `authenticationType=spnKey`.
    ServicePrincipalSecret {
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
    },
    /// Scheme `ServicePrincipal`, `authenticationType=spnCertificate` (PEM with the key).
    ServicePrincipalCertificate {
        tenant_id: String,
        client_id: String,
        certificate: Secret,
    },
    /// Scheme `ManagedServiceIdentity`: the agent machine's managed identity.
    ManagedIdentity { tenant_id: Option<String> },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("service connection `{connection}`: {kind}")]
pub struct ConnectionError {
    pub connection: String,
    pub kind: ConnectionErrorKind,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionErrorKind {
    #[error(
        "`{0}` is not set; check that the connection exists and that this pipeline is allowed to use it"
    )]
    NotProvided(String),
    // serde_json's messages give a position, never the text, so no secret leaks through them.
    #[error("`{variable}` is not a JSON object: {reason}")]
    NotJson { variable: String, reason: String },
    #[error("its authorization has no `{0}` parameter")]
    MissingParameter(&'static str),
    #[error(
        "authorization scheme `{0}` is not supported (use workload identity federation, a service principal or a managed identity)"
    )]
    UnsupportedScheme(String),
    #[error("authentication type `{0}` is not supported (expected `spnKey` or `spnCertificate`)")]
    UnsupportedAuthenticationType(String),
    #[error(
        "it uses workload identity federation, which needs `{0}` in the task's environment{hint}",
        hint = if *.0 == "SYSTEM_ACCESSTOKEN" {
            "; add `env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)` to the step"
        } else {
            "; the agent sets it from version 3.227 on"
        }
    )]
    FederationNeeds(&'static str),
}

impl ServiceConnection {
    /// Reads the connection whose id is `id` (the `azureSubscription` input's value).
    pub fn read(env: &AgentEnv, id: &str) -> Result<Self, ConnectionError> {
        let error = |kind| ConnectionError {
            connection: id.to_owned(),
            kind,
        };
        let auth_variable = format!("ENDPOINT_AUTH_{id}");
        let auth = env
            .var(&auth_variable)
            .ok_or_else(|| error(ConnectionErrorKind::NotProvided(auth_variable.clone())))?;
        let auth = parse_object(&auth_variable, auth).map_err(error)?;
        let data_variable = format!("ENDPOINT_DATA_{id}");
        let data = match env.var(&data_variable) {
            Some(data) => parse_object(&data_variable, data).map_err(error)?,
            None => Map::new(),
        };
        let data: BTreeMap<String, String> = data
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
            .collect();

        let scheme = get_ignore_case(&auth, "scheme")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let empty = Map::new();
        let parameters = get_ignore_case(&auth, "parameters")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let credential = credential(scheme, parameters).map_err(error)?;

        Ok(Self {
            id: id.to_owned(),
            url: env.var(&format!("ENDPOINT_URL_{id}")).map(str::to_owned),
            credential,
            subscription_id: lookup_ignore_case(&data, "subscriptionId"),
            cloud: lookup_ignore_case(&data, "environment"),
            data,
        })
    }

    /// The tenant the connection signs in to, when it names one.
    pub fn tenant_id(&self) -> Option<&str> {
        match &self.credential {
            AzureCredential::WorkloadIdentityFederation { tenant_id, .. }
            | AzureCredential::ServicePrincipalSecret { tenant_id, .. }
            | AzureCredential::ServicePrincipalCertificate { tenant_id, .. } => Some(tenant_id),
            AzureCredential::ManagedIdentity { tenant_id } => tenant_id.as_deref(),
        }
    }
}

fn credential(
    scheme: &str,
    parameters: &Map<String, Value>,
) -> Result<AzureCredential, ConnectionErrorKind> {
    let parameter = |key: &'static str| {
        get_ignore_case(parameters, key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let required =
        |key: &'static str| parameter(key).ok_or(ConnectionErrorKind::MissingParameter(key));

    if scheme.eq_ignore_ascii_case("WorkloadIdentityFederation") {
        Ok(AzureCredential::WorkloadIdentityFederation {
            tenant_id: required("tenantid")?,
            client_id: required("serviceprincipalid")?,
        })
    } else if scheme.eq_ignore_ascii_case("ServicePrincipal") {
        let tenant_id = required("tenantid")?;
        let client_id = required("serviceprincipalid")?;
        match parameter("authenticationType").as_deref() {
            None | Some("spnKey") => Ok(AzureCredential::ServicePrincipalSecret {
                tenant_id,
                client_id,
                client_secret: Secret::new(required("serviceprincipalkey")?),
            }),
            Some("spnCertificate") => Ok(AzureCredential::ServicePrincipalCertificate {
                tenant_id,
                client_id,
                certificate: Secret::new(required("servicePrincipalCertificate")?),
            }),
            Some(other) => Err(ConnectionErrorKind::UnsupportedAuthenticationType(
                other.to_owned(),
            )),
        }
    } else if scheme.eq_ignore_ascii_case("ManagedServiceIdentity") {
        Ok(AzureCredential::ManagedIdentity {
            tenant_id: parameter("tenantid"),
        })
    } else {
        Err(ConnectionErrorKind::UnsupportedScheme(scheme.to_owned()))
    }
}

fn parse_object(variable: &str, text: &str) -> Result<Map<String, Value>, ConnectionErrorKind> {
    let not_json = |reason: String| ConnectionErrorKind::NotJson {
        variable: variable.to_owned(),
        reason,
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(not_json("expected an object".to_owned())),
        Err(e) => Err(not_json(e.to_string())),
    }
}

fn get_ignore_case<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn lookup_ignore_case(map: &BTreeMap<String, String>, key: &str) -> Option<String> {
    map.iter()
        .find(|(k, v)| k.eq_ignore_ascii_case(key) && !v.is_empty())
        .map(|(_, v)| v.clone())
}

/// What a task needs to ask the pipeline for an ID token (workload identity federation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSettings {
    /// `SYSTEM_OIDCREQUESTURI`.
    pub request_uri: String,
    /// `SYSTEM_ACCESSTOKEN`: the job's token, sent as the bearer of the request.
    pub access_token: Secret,
}

impl OidcSettings {
    /// Both variables, or `None` when either is missing. `SYSTEM_ACCESSTOKEN` is not in a task's
    /// environment unless the pipeline maps it (`env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`).
    pub fn read(env: &AgentEnv) -> Option<Self> {
        Some(Self {
            request_uri: env.var("SYSTEM_OIDCREQUESTURI")?.to_owned(),
            access_token: Secret::new(env.var("SYSTEM_ACCESSTOKEN")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "7a3c1e4b-0d2f-4b8e-9c61-2f5d8a9b0c13";

    fn env_with_auth(auth: &str) -> AgentEnv {
        AgentEnv::from_vars([
            (format!("ENDPOINT_URL_{ID}"), "https://management.azure.com/".to_owned()),
            (format!("ENDPOINT_AUTH_{ID}"), auth.to_owned()),
            (
                format!("ENDPOINT_DATA_{ID}"),
                r#"{"subscriptionId":"0b1f6471-1bf0-4dda-aec3-cb9272f09590","subscriptionName":"Fleet","environment":"AzureCloud","scopeLevel":"Subscription"}"#
                    .to_owned(),
            ),
        ])
    }

    #[test]
    fn workload_identity_federation() {
        let env = env_with_auth(
            r#"{"parameters":{"tenantid":"t-1","serviceprincipalid":"c-1","workloadIdentityFederationSubject":"sc://org/proj/conn"},"scheme":"WorkloadIdentityFederation"}"#,
        );
        let connection = ServiceConnection::read(&env, ID).unwrap();
        assert_eq!(
            connection.credential,
            AzureCredential::WorkloadIdentityFederation {
                tenant_id: "t-1".into(),
                client_id: "c-1".into()
            }
        );
        assert_eq!(
            connection.url.as_deref(),
            Some("https://management.azure.com/")
        );
        assert_eq!(
            connection.subscription_id.as_deref(),
            Some("0b1f6471-1bf0-4dda-aec3-cb9272f09590")
        );
        assert_eq!(connection.cloud.as_deref(), Some("AzureCloud"));
        assert_eq!(connection.data["subscriptionName"], "Fleet");
        assert_eq!(connection.tenant_id(), Some("t-1"));
    }

    #[test]
    fn service_principal_secret_is_kept_secret() {
        let env = env_with_auth(
            r#"{"Scheme":"ServicePrincipal","Parameters":{"TenantId":"t-1","serviceprincipalid":"c-1","authenticationType":"spnKey","serviceprincipalkey":"s3cr3t-value"}}"#,
        );
        let connection = ServiceConnection::read(&env, ID).unwrap();
        let AzureCredential::ServicePrincipalSecret { client_secret, .. } = &connection.credential
        else {
            panic!("{connection:?}");
        };
        assert_eq!(client_secret.expose(), "s3cr3t-value");
        assert!(!format!("{connection:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn service_principal_certificate_and_managed_identity() {
        let env = env_with_auth(
            r#"{"scheme":"ServicePrincipal","parameters":{"tenantid":"t","serviceprincipalid":"c","authenticationType":"spnCertificate","servicePrincipalCertificate":"-----BEGIN"}}"#,
        );
        assert!(matches!(
            ServiceConnection::read(&env, ID).unwrap().credential,
            AzureCredential::ServicePrincipalCertificate { .. }
        ));
        let env = env_with_auth(r#"{"scheme":"ManagedServiceIdentity","parameters":{}}"#);
        assert_eq!(
            ServiceConnection::read(&env, ID).unwrap().credential,
            AzureCredential::ManagedIdentity { tenant_id: None }
        );
    }

    #[test]
    fn errors_name_the_connection_and_the_cause() {
        let missing = ServiceConnection::read(&AgentEnv::default(), ID).unwrap_err();
        assert_eq!(
            missing.to_string(),
            format!(
                "service connection `{ID}`: `ENDPOINT_AUTH_{ID}` is not set; check that the \
                 connection exists and that this pipeline is allowed to use it"
            )
        );

        let cases = [
            (
                r#"{"scheme":"ServicePrincipal","parameters":{"tenantid":"t","serviceprincipalid":"c"}}"#,
                ConnectionErrorKind::MissingParameter("serviceprincipalkey"),
            ),
            (
                r#"{"scheme":"UsernamePassword","parameters":{}}"#,
                ConnectionErrorKind::UnsupportedScheme("UsernamePassword".into()),
            ),
            (
                r#"{"scheme":"WorkloadIdentityFederation","parameters":{"tenantid":"t"}}"#,
                ConnectionErrorKind::MissingParameter("serviceprincipalid"),
            ),
        ];
        for (auth, kind) in cases {
            assert_eq!(
                ServiceConnection::read(&env_with_auth(auth), ID)
                    .unwrap_err()
                    .kind,
                kind
            );
        }

        let bad_json = ServiceConnection::read(&env_with_auth(r#"{"scheme": "#), ID).unwrap_err();
        assert!(
            matches!(&bad_json.kind, ConnectionErrorKind::NotJson { variable, .. } if *variable == format!("ENDPOINT_AUTH_{ID}")),
            "{bad_json}"
        );
    }

    #[test]
    fn oidc_settings_need_both_variables() {
        let uri = "https://dev.azure.com/org/1f2e/_apis/distributedtask/hubs/build/plans/9/jobs/8/oidctoken";
        assert_eq!(
            OidcSettings::read(&AgentEnv::from_vars([("SYSTEM_OIDCREQUESTURI", uri)])),
            None
        );
        let settings = OidcSettings::read(&AgentEnv::from_vars([
            ("SYSTEM_OIDCREQUESTURI", uri),
            ("SYSTEM_ACCESSTOKEN", "job-token"),
        ]))
        .unwrap();
        assert_eq!(settings.access_token.expose(), "job-token");
        assert_eq!(settings.request_uri, uri);
    }
}
