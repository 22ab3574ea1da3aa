//! Queries to Azure Monitor with an Entra ID token from the run's credential chain: Azure
//! Monitor managed Prometheus (the workspace's Prometheus-compatible query endpoint, scope
//! `https://prometheus.monitor.azure.com/.default`) and the Log Analytics query API (scope
//! `https://api.loganalytics.io/.default`). The request and its answer are the caller's; this
//! only signs and sends, through the run's Azure transport.
//!
//! References: <https://learn.microsoft.com/azure/azure-monitor/metrics/prometheus-api-promql>,
//! <https://learn.microsoft.com/rest/api/loganalytics/dataaccess/query/execute>.

use std::sync::Arc;

use azure_core::error::ErrorKind as AzureErrorKind;
use azure_core::http::policies::Policy;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::{Context, Method, Pipeline, PipelineSendOptions, Request, Url};

use super::credential::{client_options, error_line};
use super::sign_in::SignedIn;

/// The token scope of Azure Monitor managed Prometheus query endpoints.
pub const PROMETHEUS_SCOPE: &str = "https://prometheus.monitor.azure.com/.default";
/// The token scope of the Log Analytics query API.
pub const LOG_ANALYTICS_SCOPE: &str = "https://api.loganalytics.io/.default";
/// The Log Analytics query API (public cloud).
pub const LOG_ANALYTICS_ENDPOINT: &str = "https://api.loganalytics.io";

/// The Azure RBAC role that lets an identity query an Azure Monitor workspace's Prometheus data.
pub const PROMETHEUS_READER_ROLE: &str = "Monitoring Data Reader";
/// The Azure RBAC role that lets an identity query a Log Analytics workspace.
pub const LOG_ANALYTICS_READER_ROLE: &str = "Log Analytics Reader";

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("sign-in failed: {0}")]
    SignIn(String),
    #[error("{0}")]
    Unreachable(String),
}

/// Sends requests with a bearer token for one scope; the token is kept and renewed by the
/// pipeline's authorization policy across the requests of a step.
pub struct MonitorClient {
    pipeline: Pipeline,
}

impl MonitorClient {
    pub fn new(signed_in: &SignedIn, scope: &str) -> Self {
        let authorize: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(
            signed_in.credential.clone(),
            [scope.to_owned()],
        ));
        let pipeline = Pipeline::new(
            option_env!("CARGO_PKG_NAME"),
            option_env!("CARGO_PKG_VERSION"),
            client_options(&signed_in.transport, signed_in.cloud),
            Vec::new(),
            vec![authorize],
            None,
        );
        Self { pipeline }
    }

    /// `GET url`, or `POST url` with a JSON body; the status and body of whatever answered,
    /// an error only when nothing did (or no token could be had).
    pub async fn send(
        &self,
        url: Url,
        json_body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), MonitorError> {
        let method = if json_body.is_some() {
            Method::Post
        } else {
            Method::Get
        };
        let mut request = Request::new(url, method);
        request.insert_header("accept", "application/json");
        if let Some(body) = json_body {
            request.insert_header("content-type", "application/json");
            request.set_body(body);
        }
        let options = PipelineSendOptions {
            skip_checks: true,
            ..Default::default()
        };
        let response = self
            .pipeline
            .send(&Context::new(), &mut request, Some(options))
            .await
            .map_err(|e| match e.kind() {
                AzureErrorKind::Credential => MonitorError::SignIn(error_line(&e)),
                _ => MonitorError::Unreachable(error_line(&e)),
            })?;
        let status = u16::from(response.status());
        Ok((status, response.into_body().as_ref().to_vec()))
    }
}
