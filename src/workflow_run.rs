//! A run of a workflow with everything around the loop that `agent-orch run`, the pipeline
//! task and a hub worker share: the run's secrets redacted in every report and known to the
//! engine, the `ado` template context, the deploy ledger in the artifacts folder, and the
//! notifications and the telemetry trace sent when the run has ended. A dry run sees
//! placeholders (`<secret:NAME>`) where the secrets would be.

use crate::ado::pipeline_context::PipelineContext;
use crate::azure::RunSecrets;
use crate::azure::sign_in::AzureSignIn;
use crate::cluster::ledger::{DeployLedger, LedgerError};
use crate::engine::interrupt::Interrupts;
use crate::engine::run_loop::{Engine, RunSummary};
use crate::engine::settings::RunSettings;
use crate::engine::template_context::TemplateContext;
use crate::patch::remove_stale_temps;
use crate::redact::Redactor;
use crate::report::Reporters;
use crate::report::notification::Notifications;
use crate::report::telemetry::Telemetry;
use crate::report::warning::warn;
use crate::workflow::Workflow;
use crate::workflow::environment::EnvironmentError;
use crate::workflow::template::secret_key;

/// Why a run could not start; no step ran.
#[derive(Debug, thiserror::Error)]
pub enum RunStartError {
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    #[error("failed to prepare the deploy ledger")]
    DeployLedger(#[from] LedgerError),
}

/// Runs `workflow` to its end, feeding `reporters` (finishing them is the caller's, which may
/// still add to them). `pipeline` is what templates see as `ado`; `azure` is how steps sign in
/// to Azure.
pub async fn run_workflow(
    workflow: &Workflow,
    settings: &RunSettings,
    secrets: &RunSecrets,
    pipeline: &PipelineContext,
    azure: &AzureSignIn,
    reporters: &mut Reporters,
    interrupts: Interrupts,
) -> Result<RunSummary, RunStartError> {
    let (telemetry, warnings) = Telemetry::from_env();
    for warning in warnings {
        warn(pipeline.in_pipeline, &warning);
    }
    // The exporters' credentials (OTLP header values) are masked like the run's own secrets.
    let redactor = secrets
        .clone()
        .mask_also(telemetry.secret_values())
        .redactor();
    reporters.redact_with(redactor.clone());
    // An apply interrupted by a SIGKILL leaves its temporary files; the targets are intact.
    remove_stale_temps(&settings.workdir);
    let ado = match pipeline.to_template_value() {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    // A dry run fetched nothing: its templates show where each secret would go.
    let secret_values = if settings.dry_run {
        secret_placeholders(workflow)
    } else {
        secrets.template_values()
    };
    let context = TemplateContext::new(
        workflow,
        &settings.run_id,
        settings.max_iterations,
        secret_values,
        ado,
    )?;
    let deployments = DeployLedger::in_artifacts(&settings.artifacts_dir)?;
    let (notifications, warnings) =
        Notifications::prepare(&workflow.notify, &context.renderer(), pipeline.run_url());
    for warning in warnings {
        warn(pipeline.in_pipeline, &warning);
    }
    reporters.push(notifications.report());
    if !telemetry.is_empty() {
        reporters.push(telemetry.report());
    }
    let summary = Engine::new(
        workflow,
        settings,
        context,
        reporters,
        interrupts,
        deployments,
        redactor.clone(),
    )
    .with_azure(azure.clone())
    .run()
    .await;
    // Both are bounded in time and only ever warn; neither waits for the other.
    tokio::join!(
        notify(&notifications, pipeline.in_pipeline),
        export_telemetry(&telemetry, &redactor, pipeline.in_pipeline),
    );
    Ok(summary)
}

/// Exports the run's trace; a failure is a warning, never the run's failure.
async fn export_telemetry(telemetry: &Telemetry, redactor: &Redactor, pipeline: bool) {
    if telemetry.is_empty() {
        return;
    }
    for failure in telemetry.export(redactor).await {
        warn(pipeline, &redactor.redact(&failure.to_string()));
    }
}

/// Sends the run's notifications; a failure is a warning, never the run's failure.
async fn notify(notifications: &Notifications, pipeline: bool) {
    if notifications.is_empty() {
        return;
    }
    let failures = match crate::http::http_client() {
        Ok(client) => notifications.send(&client).await,
        Err(err) => {
            let message = crate::core::error_chain::error_chain(&err);
            warn(pipeline, &format!("notifications not sent: {message}"));
            return;
        }
    };
    for failure in failures {
        warn(pipeline, &failure.to_string());
    }
}

/// `secrets.<name>` for a dry run: `<secret:db-password>` for each name the workflow lists.
fn secret_placeholders(workflow: &Workflow) -> serde_json::Map<String, serde_json::Value> {
    workflow
        .secrets
        .iter()
        .flat_map(|config| &config.names)
        .map(|name| {
            (
                secret_key(&name.value),
                serde_json::Value::String(format!("<secret:{}>", name.value)),
            )
        })
        .collect()
}
