//! `plan`: the workflow as it will run, templates inlined, as YAML. Nothing is run.

use super::model::Workflow;

/// The expanded workflow as YAML text.
///
/// Steps included from a template carry two extra keys, `from_template` (the file) and
/// `parameters` (the values bound at the include site, rendered lazily at run time).
pub fn plan(workflow: &Workflow) -> String {
    let mut header = format!(
        "# agent-orch plan of {}: templates expanded, nothing run\n",
        workflow.path.display()
    );
    if let Some(environment) = &workflow.environment {
        header.push_str(&format!("# environment: {environment}\n"));
    }
    match serde_saphyr::to_string(&workflow.expanded) {
        Ok(yaml) => header + &yaml,
        // A JSON value always serializes; should it not, say so rather than print half a plan.
        Err(err) => header + &format!("# failed to serialize the plan: {err}\n"),
    }
}
