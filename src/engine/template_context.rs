//! The values templates see during a run, updated as steps finish and iterations start.
//!
//! | name | what |
//! |---|---|
//! | `env` | the selected environment's values, rendered, plus `env.name` |
//! | `vars` | the workflow's `vars`, with `--var` overrides |
//! | `secrets` | Key Vault secrets (masked in every output) |
//! | `steps.<id>` | `status`, `message`, `exit_code`, `outputs` of the step's latest run |
//! | `run` | `id`, `iteration`, `max_iterations`, `source_hash` |
//! | `ado` | Azure DevOps build variables, empty outside a pipeline |
//! | `parameters` | inside a template file: its bound parameters |

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use crate::steps::StepOutcome;
use crate::workflow::environment::{self, EnvironmentError};
use crate::workflow::model::{Step, Workflow};
use crate::workflow::template::{RenderError, Renderer, Template};

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
    ) -> Result<Self, EnvironmentError> {
        let env = match workflow.environment_values() {
            Some((name, values)) => environment::render(name, values, &workflow.vars, &ado)?,
            None => Map::new(),
        };
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
        Ok(Self { root })
    }

    pub fn start_iteration(&mut self, iteration: u32) {
        if let Some(Value::Object(run)) = self.root.get_mut("run") {
            run.insert("iteration".into(), iteration.into());
        }
    }

    /// `run.source_hash`, the hash of the checkout's files now; `None` (outside a git checkout)
    /// leaves it undefined, so a template that needs it fails rather than render a stale one.
    pub fn set_source_hash(&mut self, hash: Option<String>) {
        if let Some(Value::Object(run)) = self.root.get_mut("run") {
            match hash {
                Some(hash) => run.insert("source_hash".into(), hash.into()),
                None => run.remove("source_hash"),
            };
        }
    }

    /// The workflow's `outputs`, rendered against the run's final values; the error names the
    /// output that failed.
    pub fn render_outputs(
        &self,
        outputs: &IndexMap<String, Template>,
    ) -> Result<IndexMap<String, String>, (String, RenderError)> {
        let renderer = Renderer::new(Value::Object(self.root.clone()));
        outputs
            .iter()
            .map(|(name, template)| {
                renderer
                    .render(template)
                    .map(|value| (name.clone(), value))
                    .map_err(|err| (name.clone(), err))
            })
            .collect()
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

    /// A renderer over the run's values as they are now, for templates outside any step.
    pub fn renderer(&self) -> Renderer {
        Renderer::new(Value::Object(self.root.clone()))
    }

    /// A renderer for one step: the run's values plus the step's template `parameters`.
    pub fn renderer_for(&self, step: &Step) -> Result<Renderer, RenderError> {
        Renderer::new(Value::Object(self.root.clone())).for_step(step)
    }
}
