//! The values templates see during a run, updated as steps finish and iterations start.
//!
//! | name | what |
//! |---|---|
//! | `env` | the selected environment's values, plus `env.name` |
//! | `vars` | the workflow's `vars`, with `--var` overrides |
//! | `secrets` | Key Vault secrets (masked in every output) |
//! | `steps.<id>` | `status`, `message`, `exit_code`, `outputs` of the step's latest run |
//! | `run` | `id`, `iteration`, `max_iterations` |
//! | `ado` | Azure DevOps build variables, empty outside a pipeline |
//! | `parameters` | inside a template file: its bound parameters |

use serde_json::{Map, Value, json};

use crate::steps::StepOutcome;
use crate::workflow::model::{Step, Workflow};
use crate::workflow::template::{RenderError, Renderer};

pub struct TemplateContext {
    root: Map<String, Value>,
}

impl TemplateContext {
    pub fn new(
        workflow: &Workflow,
        run_id: &str,
        max_iterations: u32,
        secrets: Map<String, Value>,
        ado: Map<String, Value>,
    ) -> Self {
        let mut env = Map::new();
        if let Some(name) = &workflow.environment {
            env.insert("name".into(), Value::String(name.clone()));
            if let Some(values) = workflow.environments.value.get(name) {
                env.extend(values.0.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let mut root = Map::new();
        root.insert("env".into(), Value::Object(env));
        root.insert(
            "vars".into(),
            Value::Object(
                workflow
                    .vars
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        );
        root.insert("secrets".into(), Value::Object(secrets));
        root.insert("steps".into(), Value::Object(Map::new()));
        root.insert(
            "run".into(),
            json!({ "id": run_id, "iteration": 0, "max_iterations": max_iterations }),
        );
        root.insert("ado".into(), Value::Object(ado));
        Self { root }
    }

    pub fn start_iteration(&mut self, iteration: u32) {
        if let Some(Value::Object(run)) = self.root.get_mut("run") {
            run.insert("iteration".into(), iteration.into());
        }
    }

    pub fn record_step(&mut self, id: &str, outcome: &StepOutcome) {
        if let Some(Value::Object(steps)) = self.root.get_mut("steps") {
            steps.insert(
                id.to_owned(),
                json!({
                    "status": outcome.status,
                    "message": outcome.message,
                    "exit_code": outcome.exit_code,
                    "outputs": outcome.outputs,
                }),
            );
        }
    }

    /// A renderer for one step: the run's values plus the step's template `parameters`.
    pub fn renderer_for(&self, step: &Step) -> Result<Renderer, RenderError> {
        Renderer::new(Value::Object(self.root.clone())).for_step(step)
    }
}
