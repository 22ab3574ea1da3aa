//! `require_approval: true` on the selected environment: a person approves before a run that
//! would deploy there starts.
//!
//! - Locally, the run asks on the terminal, naming the environment and each deploy step's
//!   cluster and namespace. Without a terminal it refuses (exit 2, nothing run) unless
//!   `--approve-deploy` says a person already approved.
//! - In a pipeline (`TF_BUILD`), only a deployment job may deploy there: the agent sets
//!   `ENVIRONMENT_NAME` (the `Environment.Name` variable of deployment jobs) and Azure DevOps
//!   has already enforced the environment's approvals and checks before the job started.
//!   Elsewhere in a pipeline the run stops before any step.
//!
//! - A hub worker runs unattended: it never asks, so only `--approve-deploy` lets it through.
//!
//! A dry run deploys nothing, so it asks nothing.

use std::io::{BufRead, IsTerminal, Write};

use crate::core::agent_env::AgentEnv;
use crate::engine::template_context::TemplateContext;
use crate::error::{ApprovalError, ENVIRONMENT_NAME_VAR, Error};
use crate::steps::deploy::describe_target;
use crate::workflow::Workflow;
use crate::workflow::model::StepKind;

use super::RunOptions;

/// Checks, and asks when it must (and `may_ask`), before anything of the run happens.
pub(super) fn require(
    workflow: &Workflow,
    options: &RunOptions,
    agent: &AgentEnv,
    may_ask: bool,
) -> Result<(), Error> {
    let Some((environment, values)) = workflow.environment_values() else {
        return Ok(());
    };
    if !values.require_approval() || options.dry_run {
        return Ok(());
    }
    let deploys = deploy_targets(workflow);
    if deploys.is_empty() {
        return Ok(());
    }
    let environment = environment.to_owned();
    if agent.in_pipeline() {
        return if agent
            .var(ENVIRONMENT_NAME_VAR)
            .is_some_and(|v| !v.is_empty())
        {
            Ok(())
        } else {
            Err(ApprovalError::NotDeploymentJob { environment }.into())
        };
    }
    if options.approve_deploy {
        return Ok(());
    }
    if !(may_ask && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(ApprovalError::NoTerminal {
            environment,
            deploys: deploys.join("; "),
        }
        .into());
    }
    let mut stderr = std::io::stderr().lock();
    let mut question =
        format!("Environment `{environment}` requires approval. This run would deploy:\n");
    for deploy in &deploys {
        question.push_str(&format!("  - {deploy}\n"));
    }
    question.push_str("Deploy? [y/N] ");
    stderr
        .write_all(question.as_bytes())
        .and_then(|()| stderr.flush())
        .map_err(ApprovalError::Terminal)?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(ApprovalError::Terminal)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(ApprovalError::Declined { environment }.into())
    }
}

/// `step `deploy`: AKS cluster `fleet-aks` (resource group `fleet-rg`), namespace `fleet``,
/// for every deploy step of the workflow.
fn deploy_targets(workflow: &Workflow) -> Vec<String> {
    // Rendered before the run: no secrets, no step outputs yet (those show as written). An
    // environment that cannot render yet leaves every target unnamed.
    let context = TemplateContext::new(
        workflow,
        "approval",
        workflow.safety.max_iterations,
        serde_json::Map::new(),
        serde_json::Map::new(),
    )
    .ok();
    workflow
        .all_steps()
        .filter_map(|step| match &step.kind {
            StepKind::Deploy(config) => {
                let target = context
                    .as_ref()
                    .and_then(|context| context.renderer_for(step).ok())
                    .map_or_else(
                        || "its cluster".to_owned(),
                        |renderer| describe_target(config, &renderer),
                    );
                Some(format!("step `{}`: {target}", step.id.value))
            }
            _ => None,
        })
        .collect()
}
