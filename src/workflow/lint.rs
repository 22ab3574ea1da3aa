//! Warnings on a workflow that loads: things that run, but are probably not meant that way.
//!
//! A value interpolated into a shell command (`gate:`, `service:`, a verify `script:`, a deploy
//! step's `render:`) without
//! `| shell_quote` can change the command's structure: a `--var` holding `x; rm -rf ~` runs
//! two commands. `validate` shows a warning for each, pointing at the expression.

use super::diagnostic::{Diagnostic, DiagnosticKind};
use super::model::{StepKind, Workflow};
use super::template::{Template, interpolations};
use super::validate::span_within;
use crate::workflow::step_config::verify::VerifyConfig;

/// Every warning for `workflow`, in step order.
pub fn warnings(workflow: &Workflow) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    for step in workflow.all_steps() {
        let (setting, command) = match &step.kind {
            StepKind::Gate(gate) | StepKind::Service(gate) => (step.kind.key(), &gate.run),
            StepKind::Verify(VerifyConfig::Script(script)) => ("script", &script.run),
            StepKind::Deploy(deploy) => match &deploy.render {
                Some(render) => ("render", render),
                None => continue,
            },
            _ => continue,
        };
        warnings.extend(unquoted_interpolations(setting, command));
    }
    warnings
}

fn unquoted_interpolations(setting: &str, command: &Template) -> Vec<Diagnostic> {
    let source = command.source();
    let mut warnings = Vec::new();
    for (_, expression) in interpolations(source) {
        let inner = expression
            .trim_start_matches("{{")
            .trim_end_matches("}}")
            .trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        let quoted = inner
            .rsplit_once('|')
            .is_some_and(|(_, filter)| filter.trim() == "shell_quote");
        if !quoted {
            warnings.push(
                Diagnostic::warning(
                    DiagnosticKind::UnquotedInterpolation,
                    format!(
                        "a value interpolated into a `{setting}` command without `shell_quote`"
                    ),
                    span_within(command.span(), expression, source),
                )
                .with_label("a value with spaces, quotes or `;` changes the command")
                .with_help(format!("write `{{{{ {inner} | shell_quote }}}}`")),
            );
        }
    }
    warnings
}
