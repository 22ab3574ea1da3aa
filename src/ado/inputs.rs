//! [`TaskInputs`]: the `AgentOrch@1` task's inputs, read from `INPUT_*` and checked.
//!
//! The names here are the ones in `task.json`; a test keeps the two lists identical.

use std::fmt;
use std::path::PathBuf;

use indexmap::IndexMap;

use crate::core::agent_env::{AgentEnv, input_variable};

/// Input names, as declared in `task.json`.
pub mod name {
    pub const WORKFLOW_FILE: &str = "workflowFile";
    pub const ENVIRONMENT: &str = "environment";
    pub const MAX_ITERATIONS: &str = "maxIterations";
    pub const AZURE_SUBSCRIPTION: &str = "azureSubscription";
    pub const KEY_VAULT_NAME: &str = "keyVaultName";
    pub const APPROVE_DANGEROUS_CHANGES: &str = "approveDangerousChanges";
    pub const ARTIFACTS_FOLDER: &str = "artifactsFolder";
    pub const DRY_RUN: &str = "dryRun";
    pub const EXTRA_VARIABLES: &str = "extraVariables";

    /// Every input the task declares, in `task.json` order.
    pub const ALL: [&str; 9] = [
        WORKFLOW_FILE,
        ENVIRONMENT,
        MAX_ITERATIONS,
        AZURE_SUBSCRIPTION,
        KEY_VAULT_NAME,
        APPROVE_DANGEROUS_CHANGES,
        ARTIFACTS_FOLDER,
        DRY_RUN,
        EXTRA_VARIABLES,
    ];
}

/// The task's inputs, typed. Unset optional inputs are `None`: the workflow's own settings
/// (or the CLI's defaults) apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInputs {
    pub workflow_file: PathBuf,
    pub environment: Option<String>,
    pub max_iterations: Option<u32>,
    /// The id of the Azure Resource Manager service connection; see
    /// [`ServiceConnection::read`](super::service_connection::ServiceConnection::read).
    pub azure_subscription: Option<String>,
    pub key_vault_name: Option<String>,
    /// Lets patches that match `require_confirmation` patterns through (`--approve`).
    pub approve_dangerous_changes: bool,
    pub artifacts_folder: Option<PathBuf>,
    pub dry_run: bool,
    /// `extraVariables`, one `KEY=VALUE` per line, in order; they extend the workflow's `vars`.
    pub extra_variables: IndexMap<String, String>,
}

/// One input with a bad value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("input `{input}`: {kind}")]
pub struct InputError {
    /// The input's name in `task.json`.
    pub input: &'static str,
    pub kind: InputErrorKind,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputErrorKind {
    #[error("is required but was not set")]
    Missing,
    #[error("expected `true` or `false`, got `{0}`")]
    NotBoolean(String),
    #[error("expected a whole number from 1 to {max}, got `{value}`")]
    NotIterationCount { value: String, max: u32 },
    #[error("`{value}` is not a Key Vault name: {reason}")]
    InvalidVaultName { value: String, reason: &'static str },
    // The value is left out on purpose: extra variables may hold secrets.
    #[error("line {line}: {reason}")]
    InvalidVariable { line: usize, reason: String },
}

/// Every bad input at once, so a pipeline author fixes them in one go.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let messages: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&messages.join("; "))
    }
}

/// The most iterations a pipeline may ask for: each one may deploy and call two LLMs.
pub const MAX_ITERATIONS_LIMIT: u32 = 100;

impl TaskInputs {
    /// Reads and checks every input; all bad inputs are reported together.
    pub fn read(env: &AgentEnv) -> Result<Self, InputErrors> {
        let workflow_file = env
            .input(name::WORKFLOW_FILE)
            .map(PathBuf::from)
            .ok_or(InputError {
                input: name::WORKFLOW_FILE,
                kind: InputErrorKind::Missing,
            });
        match (
            workflow_file,
            parse_iterations(env),
            parse_vault_name(env),
            parse_bool(env, name::APPROVE_DANGEROUS_CHANGES),
            parse_bool(env, name::DRY_RUN),
            parse_extra_variables(env),
        ) {
            (
                Ok(workflow_file),
                Ok(max_iterations),
                Ok(key_vault_name),
                Ok(approve_dangerous_changes),
                Ok(dry_run),
                Ok(extra_variables),
            ) => Ok(Self {
                workflow_file,
                environment: env.input(name::ENVIRONMENT).map(str::to_owned),
                max_iterations,
                azure_subscription: env.input(name::AZURE_SUBSCRIPTION).map(str::to_owned),
                key_vault_name,
                approve_dangerous_changes,
                artifacts_folder: env.input(name::ARTIFACTS_FOLDER).map(PathBuf::from),
                dry_run,
                extra_variables,
            }),
            (workflow_file, iterations, vault, approve, dry_run, variables) => Err(InputErrors(
                [
                    workflow_file.err(),
                    iterations.err(),
                    vault.err(),
                    approve.err(),
                    dry_run.err(),
                    variables.err(),
                ]
                .into_iter()
                .flatten()
                .collect(),
            )),
        }
    }
}

/// A boolean input: `true`/`false` in any case; unset is `false`.
fn parse_bool(env: &AgentEnv, input: &'static str) -> Result<bool, InputError> {
    match env.input(input) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(InputError {
            input,
            kind: InputErrorKind::NotBoolean(v.to_owned()),
        }),
    }
}

fn parse_iterations(env: &AgentEnv) -> Result<Option<u32>, InputError> {
    let Some(value) = env.input(name::MAX_ITERATIONS) else {
        return Ok(None);
    };
    match value.parse::<u32>() {
        Ok(n) if (1..=MAX_ITERATIONS_LIMIT).contains(&n) => Ok(Some(n)),
        _ => Err(InputError {
            input: name::MAX_ITERATIONS,
            kind: InputErrorKind::NotIterationCount {
                value: value.to_owned(),
                max: MAX_ITERATIONS_LIMIT,
            },
        }),
    }
}

/// Azure's rule: 3 to 24 characters, letters, digits and hyphens, starting with a letter,
/// ending with a letter or digit, no two hyphens in a row.
fn parse_vault_name(env: &AgentEnv) -> Result<Option<String>, InputError> {
    let Some(value) = env.input(name::KEY_VAULT_NAME) else {
        return Ok(None);
    };
    let reason = if !(3..=24).contains(&value.len()) {
        Some("it must be 3 to 24 characters long")
    } else if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Some("it may hold only letters, digits and hyphens")
    } else if !value.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("it must start with a letter")
    } else if value.ends_with('-') {
        Some("it must end with a letter or a digit")
    } else if value.contains("--") {
        Some("it must not hold two hyphens in a row")
    } else {
        None
    };
    match reason {
        None => Ok(Some(value.to_owned())),
        Some(reason) => Err(InputError {
            input: name::KEY_VAULT_NAME,
            kind: InputErrorKind::InvalidVaultName {
                value: value.to_owned(),
                reason,
            },
        }),
    }
}

/// `KEY=VALUE` per line; blank lines and `#` comments are skipped; the value is everything
/// after the first `=`, kept as written.
fn parse_extra_variables(env: &AgentEnv) -> Result<IndexMap<String, String>, InputError> {
    let mut variables = IndexMap::new();
    // Untrimmed, so the line numbers in errors match what the pipeline author wrote.
    let Some(text) = env.var(&input_variable(name::EXTRA_VARIABLES)) else {
        return Ok(variables);
    };
    let invalid = |line: usize, reason: String| InputError {
        input: name::EXTRA_VARIABLES,
        kind: InputErrorKind::InvalidVariable { line, reason },
    };
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(invalid(line, "expected `KEY=VALUE`".to_owned()));
        };
        let key = key.trim();
        if !is_variable_name(key) {
            return Err(invalid(
                line,
                format!(
                    "`{key}` is not a variable name (a letter or `_`, then letters, digits, `_`)"
                ),
            ));
        }
        if variables.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(invalid(line, format!("`{key}` is set twice")));
        }
    }
    Ok(variables)
}

/// A name usable as `vars.<name>` in a template.
fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<TaskInputs, InputErrors> {
        TaskInputs::read(&AgentEnv::from_vars(vars.iter().copied()))
    }

    #[test]
    fn reads_every_input() {
        let inputs = read(&[
            ("INPUT_WORKFLOWFILE", "workflows/fleet-deploy.yaml"),
            ("INPUT_ENVIRONMENT", "staging"),
            ("INPUT_MAXITERATIONS", "5"),
            (
                "INPUT_AZURESUBSCRIPTION",
                "7a3c1e4b-0d2f-4b8e-9c61-2f5d8a9b0c13",
            ),
            ("INPUT_KEYVAULTNAME", "fleet-keyvault-prod"),
            ("INPUT_APPROVEDANGEROUSCHANGES", "True"),
            ("INPUT_ARTIFACTSFOLDER", "/agent/_work/1/a/agent-orch"),
            ("INPUT_DRYRUN", "false"),
            (
                "INPUT_EXTRAVARIABLES",
                "# image settings\nREGISTRY=fleet.azurecr.io\r\n\nQUERY=a=b;c\n",
            ),
        ])
        .unwrap();
        assert_eq!(
            inputs,
            TaskInputs {
                workflow_file: "workflows/fleet-deploy.yaml".into(),
                environment: Some("staging".into()),
                max_iterations: Some(5),
                azure_subscription: Some("7a3c1e4b-0d2f-4b8e-9c61-2f5d8a9b0c13".into()),
                key_vault_name: Some("fleet-keyvault-prod".into()),
                approve_dangerous_changes: true,
                artifacts_folder: Some("/agent/_work/1/a/agent-orch".into()),
                dry_run: false,
                extra_variables: IndexMap::from([
                    ("REGISTRY".to_owned(), "fleet.azurecr.io".to_owned()),
                    ("QUERY".to_owned(), "a=b;c".to_owned()),
                ]),
            }
        );
    }

    #[test]
    fn optional_inputs_default_when_unset_or_blank() {
        let inputs = read(&[
            ("INPUT_WORKFLOWFILE", "w.yaml"),
            ("INPUT_MAXITERATIONS", " "),
        ])
        .unwrap();
        assert_eq!(inputs.max_iterations, None);
        assert_eq!(inputs.environment, None);
        assert!(!inputs.dry_run && !inputs.approve_dangerous_changes);
        assert!(inputs.extra_variables.is_empty());
    }

    #[test]
    fn reports_every_bad_input_by_name() {
        let errors = read(&[
            ("INPUT_MAXITERATIONS", "0"),
            ("INPUT_DRYRUN", "yes"),
            ("INPUT_KEYVAULTNAME", "1vault"),
        ])
        .unwrap_err();
        assert_eq!(
            errors.to_string(),
            "input `workflowFile`: is required but was not set; \
             input `maxIterations`: expected a whole number from 1 to 100, got `0`; \
             input `keyVaultName`: `1vault` is not a Key Vault name: it must start with a letter; \
             input `dryRun`: expected `true` or `false`, got `yes`"
        );
    }

    #[test]
    fn rejects_bad_iteration_counts() {
        for bad in ["-1", "abc", "101", "2.5"] {
            let errors =
                read(&[("INPUT_WORKFLOWFILE", "w"), ("INPUT_MAXITERATIONS", bad)]).unwrap_err();
            assert_eq!(errors.0.len(), 1, "{bad}");
            assert_eq!(errors.0[0].input, name::MAX_ITERATIONS);
        }
    }

    #[test]
    fn rejects_bad_vault_names() {
        for (bad, reason) in [
            ("kv", "it must be 3 to 24 characters long"),
            (
                "fleet_vault",
                "it may hold only letters, digits and hyphens",
            ),
            ("fleet-", "it must end with a letter or a digit"),
            ("fleet--kv", "it must not hold two hyphens in a row"),
        ] {
            let errors =
                read(&[("INPUT_WORKFLOWFILE", "w"), ("INPUT_KEYVAULTNAME", bad)]).unwrap_err();
            assert_eq!(
                errors.0[0].kind,
                InputErrorKind::InvalidVaultName {
                    value: bad.to_owned(),
                    reason
                }
            );
        }
    }

    #[test]
    fn extra_variable_errors_name_the_line_but_not_the_value() {
        let cases = [
            ("A=1\nnot a pair", "line 2: expected `KEY=VALUE`"),
            ("\n1X=secret-value", "line 2: `1X` is not a variable name"),
            ("A=1\nA=secret-value", "line 2: `A` is set twice"),
        ];
        for (text, expected) in cases {
            let errors =
                read(&[("INPUT_WORKFLOWFILE", "w"), ("INPUT_EXTRAVARIABLES", text)]).unwrap_err();
            let message = errors.to_string();
            assert!(
                message.starts_with(&format!("input `extraVariables`: {expected}")),
                "{message}"
            );
            assert!(!message.contains("secret-value"), "{message}");
        }
    }
}
