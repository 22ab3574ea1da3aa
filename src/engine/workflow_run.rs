//! A run of a workflow with everything around the loop that `agent-orch run`, the pipeline
//! task and a hub worker share: the run's secrets redacted in every report and known to the
//! engine, the `ado` template context, and the deploy ledger in the artifacts folder.

use crate::ado::pipeline_context::PipelineContext;
use crate::azure::RunSecrets;
use crate::cluster::ledger::{DeployLedger, LedgerError};
use crate::engine::interrupt::Interrupts;
use crate::engine::run_loop::{Engine, RunSettings, RunSummary};
use crate::engine::template_context::TemplateContext;
use crate::report::Reporters;
use crate::workflow::Workflow;

/// Runs `workflow` to its end, feeding `reporters` (finishing them is the caller's, which may
/// still add to them). `pipeline` is what templates see as `ado`.
pub async fn run_workflow(
    workflow: &Workflow,
    settings: &RunSettings,
    secrets: &RunSecrets,
    pipeline: &PipelineContext,
    reporters: &mut Reporters,
    interrupts: Interrupts,
) -> Result<RunSummary, LedgerError> {
    let redactor = secrets.redactor();
    reporters.redact_with(redactor.clone());
    let ado = match pipeline.to_template_value() {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let context = TemplateContext::new(
        workflow,
        &settings.run_id,
        settings.max_iterations,
        secrets.template_values(),
        ado,
    );
    let deployments = DeployLedger::in_artifacts(&settings.artifacts_dir)?;
    Ok(Engine::new(
        workflow,
        settings,
        context,
        reporters,
        interrupts,
        deployments,
        redactor,
    )
    .run()
    .await)
}
