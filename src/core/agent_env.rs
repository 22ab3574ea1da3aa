//! [`AgentEnv`]: the environment variables the Azure Pipelines agent hands a task.
//!
//! Read once into a map so parsing is a pure function of it: tests build one from pairs
//! instead of mutating the process environment.

use std::collections::BTreeMap;
use std::fmt;

/// A snapshot of the task's environment.
#[derive(Clone, Default)]
pub struct AgentEnv {
    vars: BTreeMap<String, String>,
}

impl fmt::Debug for AgentEnv {
    // Names only: the values include tokens and connection secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

impl AgentEnv {
    /// The current process environment. Variables that are not valid UTF-8 are left out: none
    /// of the agent's variables can be, and a stray one must not stop the task.
    pub fn from_process() -> Self {
        Self::from_vars(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`; an empty value counts as unset, as it does for the agent.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The value of the task input `name` (as spelled in `task.json`), trimmed; blank is unset.
    pub fn input(&self, name: &str) -> Option<&str> {
        self.var(&input_variable(name))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// `TF_BUILD=True`: running inside an Azure Pipelines job.
    pub fn in_pipeline(&self) -> bool {
        self.var("TF_BUILD")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// The variable the agent sets for a task input: `INPUT_` + the name upper-cased, with `.` and
/// spaces turned into `_`.
pub fn input_variable(name: &str) -> String {
    let normalized: String = name
        .chars()
        .map(|c| match c {
            '.' | ' ' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("INPUT_{normalized}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_names_follow_the_agent_rule() {
        assert_eq!(input_variable("workflowFile"), "INPUT_WORKFLOWFILE");
        assert_eq!(input_variable("my.input name"), "INPUT_MY_INPUT_NAME");
    }

    #[test]
    fn blank_values_are_unset() {
        let env = AgentEnv::from_vars([
            ("INPUT_ENVIRONMENT", "  "),
            ("INPUT_WORKFLOWFILE", " deploy.yaml \n"),
            ("EMPTY", ""),
        ]);
        assert_eq!(env.input("environment"), None);
        assert_eq!(env.input("workflowFile"), Some("deploy.yaml"));
        assert_eq!(env.var("EMPTY"), None);
    }

    #[test]
    fn debug_shows_names_not_values() {
        let env = AgentEnv::from_vars([("SYSTEM_ACCESSTOKEN", "job-token")]);
        assert_eq!(format!("{env:?}"), r#"{"SYSTEM_ACCESSTOKEN"}"#);
    }

    #[test]
    fn tf_build_marks_a_pipeline() {
        assert!(AgentEnv::from_vars([("TF_BUILD", "True")]).in_pipeline());
        assert!(!AgentEnv::from_vars([("TF_BUILD", "False")]).in_pipeline());
        assert!(!AgentEnv::default().in_pipeline());
    }
}
