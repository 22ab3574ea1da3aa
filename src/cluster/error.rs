//! `ClusterError`: what went wrong talking to a cluster, said in terms of the operation.

use crate::core::error_chain::distinct_error_chain;
use std::fmt;
use std::time::Duration;

use thiserror::Error;

/// An operation on the cluster: the verb, resource and namespace a 403 or an outage names.
#[derive(Clone, Debug)]
pub struct Operation {
    /// `get`, `list`, `watch`, `patch`, `delete`, `discover`
    pub verb: &'static str,
    /// `deployments.apps`, `pods`, or an API group version for discovery.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Operation {
    pub fn new(verb: &'static str, resource: impl Into<String>) -> Self {
        Self {
            verb,
            resource: resource.into(),
            namespace: None,
            name: None,
        }
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(name) = &self.name {
            write!(f, " `{name}`")?;
        }
        if let Some(namespace) = &self.namespace {
            write!(f, " in namespace `{namespace}`")?;
        }
        Ok(())
    }
}

#[derive(Debug, Error)]
#[error("failed to {operation}: {kind}")]
pub struct ClusterError {
    pub operation: Operation,
    pub kind: ClusterErrorKind,
}

#[derive(Debug, Error)]
pub enum ClusterErrorKind {
    #[error("cannot load cluster access settings: {0}")]
    Config(String),
    #[error(transparent)]
    Aks(Box<crate::azure::aks::AksError>),
    #[error(
        "api server {server} unreachable after {attempts} attempts over {elapsed:.1?}: {detail}"
    )]
    Unreachable {
        server: String,
        attempts: u32,
        elapsed: Duration,
        detail: String,
    },
    #[error("forbidden: the credentials may not {verb} {resource}{scope} ({message})",
        scope = .namespace.as_ref().map(|ns| format!(" in namespace `{ns}`")).unwrap_or_default())]
    Forbidden {
        verb: &'static str,
        resource: String,
        namespace: Option<String>,
        message: String,
    },
    #[error("unknown kind `{kind}` (apiVersion `{api_version}`): the cluster does not serve it")]
    UnknownKind { kind: String, api_version: String },
    #[error("not found ({0})")]
    NotFound(String),
    #[error("the api server rejected it: {reason} ({code}): {message}")]
    Rejected {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{0}")]
    Client(String),
}

impl ClusterError {
    pub fn new(operation: Operation, kind: ClusterErrorKind) -> Self {
        Self { operation, kind }
    }

    /// Classifies a kube client error for an operation.
    pub(crate) fn from_kube(operation: Operation, error: kube::Error) -> Self {
        let kind = match error {
            kube::Error::Api(status) => match status.code {
                403 => ClusterErrorKind::Forbidden {
                    verb: operation.verb,
                    resource: operation.resource.clone(),
                    namespace: operation.namespace.clone(),
                    message: status.message,
                },
                404 => ClusterErrorKind::NotFound(status.message),
                code => ClusterErrorKind::Rejected {
                    code,
                    reason: status.reason,
                    message: status.message,
                },
            },
            other => ClusterErrorKind::Client(distinct_error_chain(&other)),
        };
        Self { operation, kind }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, ClusterErrorKind::NotFound(_))
    }
}

/// Whether retrying may help: the server could not be reached or said it is overloaded.
pub(crate) fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_names_verb_resource_and_namespace() {
        let error = ClusterError::from_kube(
            Operation::new("patch", "deployments.apps")
                .namespace("staging")
                .name("web"),
            kube::Error::Api(Box::new(
                kube::core::Status::failure("denied", "Forbidden").with_code(403),
            )),
        );
        assert_eq!(
            error.to_string(),
            "failed to patch deployments.apps `web` in namespace `staging`: forbidden: the credentials may not patch deployments.apps in namespace `staging` (denied)"
        );
    }
}
