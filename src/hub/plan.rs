//! Plan files (`agent-orch hub seed PLAN.yaml`): a project, its epics and tasks with estimates
//! and dependencies, and the agents that already exist. Checked whole before anything is
//! written: duplicate keys, unknown dependencies and cycles are all reported at once.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use super::model::{DEFAULT_MAX_ATTEMPTS, TaskStatus};
use super::store::NewTask;
use crate::workflow::dependency_order::order;
use crate::workflow::duration::DurationSpec;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub project: PlanProject,
    #[serde(default)]
    pub agents: Vec<PlanAgent>,
    pub epics: Vec<PlanEpic>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanProject {
    pub name: String,
    #[serde(default)]
    pub repo: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanAgent {
    pub id: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanEpic {
    pub name: String,
    pub tasks: Vec<PlanTask>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanTask {
    pub key: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub hours: f64,
    #[serde(default)]
    pub priority: i64,
    #[serde(default = "pending")]
    pub status: TaskStatus,
    #[serde(default)]
    pub workflow: Option<String>,
    /// The workflow's environment and variables, as `agent-orch run --env E --var K=V`.
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    // Task semantics (claim rules), see `Task`.
    /// Capabilities an agent needs, every one of them, to be given the task.
    #[serde(default)]
    pub requires: Vec<String>,
    /// How long one attempt may run (`30m`) before the hub fails it and requeues the task.
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    /// Failed attempts allowed before the task is `blocked`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i64,
}

fn default_max_attempts() -> i64 {
    DEFAULT_MAX_ATTEMPTS
}

fn pending() -> TaskStatus {
    TaskStatus::Pending
}

#[derive(Debug, thiserror::Error)]
#[error("{}", message(path, kind))]
pub struct PlanError {
    pub path: PathBuf,
    pub kind: PlanErrorKind,
}

#[derive(Debug)]
pub enum PlanErrorKind {
    Read(std::io::Error),
    Parse(String),
    /// Every semantic problem in the plan, one line each.
    Invalid(Vec<String>),
}

fn message(path: &Path, kind: &PlanErrorKind) -> String {
    let path = path.display();
    match kind {
        PlanErrorKind::Read(err) => format!("failed to read plan `{path}`: {err}"),
        PlanErrorKind::Parse(err) => format!("failed to parse plan `{path}`: {err}"),
        PlanErrorKind::Invalid(problems) => {
            format!("invalid plan `{path}`:\n  - {}", problems.join("\n  - "))
        }
    }
}

impl Plan {
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let error = |kind| PlanError {
            path: path.to_owned(),
            kind,
        };
        let text = std::fs::read_to_string(path).map_err(|err| error(PlanErrorKind::Read(err)))?;
        let plan: Plan = serde_saphyr::from_str(&text)
            .map_err(|err| error(PlanErrorKind::Parse(err.to_string())))?;
        let problems = plan.problems();
        if problems.is_empty() {
            Ok(plan)
        } else {
            Err(error(PlanErrorKind::Invalid(problems)))
        }
    }

    /// The plan's tasks in the store's terms, epics flattened in order.
    pub fn tasks(&self) -> Vec<NewTask> {
        self.epics
            .iter()
            .flat_map(|epic| {
                epic.tasks.iter().map(|task| NewTask {
                    key: task.key.clone(),
                    epic: epic.name.clone(),
                    title: task.title.clone(),
                    description: task.description.clone(),
                    estimate_hours: task.hours,
                    priority: task.priority,
                    status: task.status,
                    workflow: task.workflow.clone(),
                    environment: task.environment.clone(),
                    vars: task.vars.clone(),
                    depends_on: task.depends_on.clone(),
                    requires: task.requires.clone(),
                    timeout_ms: task
                        .timeout
                        .map(|timeout| i64::try_from(timeout.0.as_millis()).unwrap_or(i64::MAX)),
                    max_attempts: task.max_attempts,
                })
            })
            .collect()
    }

    pub fn total_hours(&self) -> f64 {
        self.tasks().iter().map(|task| task.estimate_hours).sum()
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let tasks = self.tasks();
        let mut keys = HashSet::new();
        for task in &tasks {
            if task.key.trim().is_empty() {
                problems.push(format!("task `{}` has an empty key", task.title));
            }
            if !keys.insert(task.key.as_str()) {
                problems.push(format!("task key `{}` is used twice", task.key));
            }
            if !(task.estimate_hours.is_finite() && task.estimate_hours >= 0.0) {
                problems.push(format!(
                    "task `{}` has an invalid estimate {} (hours must be 0 or more)",
                    task.key, task.estimate_hours
                ));
            }
            if task.max_attempts < 1 {
                problems.push(format!(
                    "task `{}` has max_attempts {} (it must be 1 or more)",
                    task.key, task.max_attempts
                ));
            }
            if task.timeout_ms == Some(0) {
                problems.push(format!(
                    "task `{}` has a zero timeout (leave `timeout` out for none)",
                    task.key
                ));
            }
            if let Some(empty) = task.requires.iter().find(|c| c.trim().is_empty()) {
                problems.push(format!(
                    "task `{}` requires an empty capability `{empty}`",
                    task.key
                ));
            }
        }
        for task in &tasks {
            for dependency in &task.depends_on {
                if !keys.contains(dependency.as_str()) {
                    problems.push(format!(
                        "task `{}` depends on unknown task `{dependency}`",
                        task.key
                    ));
                }
            }
        }
        if let Some(cycle) = find_cycle(&tasks) {
            problems.push(format!("dependency cycle: {}", cycle.join(" -> ")));
        }
        problems
    }
}

/// A dependency cycle as a path of keys that ends where it starts, if there is one.
/// Dependencies on keys outside the plan are reported elsewhere, so they are left out here.
fn find_cycle(tasks: &[NewTask]) -> Option<Vec<String>> {
    let keys: HashSet<&str> = tasks.iter().map(|task| task.key.as_str()).collect();
    let dependencies: IndexMap<&str, Vec<&str>> = tasks
        .iter()
        .map(|task| {
            let known = task
                .depends_on
                .iter()
                .map(String::as_str)
                .filter(|dependency| keys.contains(dependency))
                .collect();
            (task.key.as_str(), known)
        })
        .collect();
    order(&dependencies).err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Result<Plan, PlanError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plan.yaml");
        std::fs::write(&path, yaml).expect("write");
        Plan::load(&path)
    }

    #[test]
    fn the_shipped_fleet_plan_has_27_tasks_in_5_epics_and_592_hours() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet-plan.yaml");
        let plan = Plan::load(&path).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(plan.epics.len(), 5);
        assert_eq!(plan.tasks().len(), 27);
        assert_eq!(plan.total_hours(), 592.0);
        assert_eq!(plan.agents.len(), 3);
        let done: Vec<_> = plan.epics[3].tasks.iter().map(|t| t.status).collect();
        assert_eq!(done, vec![TaskStatus::Done; 5], "epic 4 ships complete");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = plan(
            "project: {name: p}\nepics:\n  - name: e\n    tasks:\n\
             \x20     - {key: a, title: A, hours: 1, depends_on: [b]}\n\
             \x20     - {key: b, title: B, hours: -2, depends_on: [a, ghost]}\n\
             \x20     - {key: c, title: C, hours: 1}\n\
             \x20     - {key: c, title: D, hours: 1}\n",
        )
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("task key `c` is used twice"), "{text}");
        assert!(
            text.contains("task `b` has an invalid estimate -2"),
            "{text}"
        );
        assert!(
            text.contains("task `b` depends on unknown task `ghost`"),
            "{text}"
        );
        assert!(text.contains("dependency cycle: a -> b -> a"), "{text}");
    }

    #[test]
    fn tasks_carry_requires_timeout_and_max_attempts() {
        let plan = plan(
            "project: {name: p}\nepics:\n  - name: e\n    tasks:\n\
             \x20     - {key: a, title: A, hours: 1, requires: [gpu, linux], timeout: 30m, max_attempts: 5}\n\
             \x20     - {key: b, title: B, hours: 1}\n",
        )
        .unwrap_or_else(|err| panic!("{err}"));
        let tasks = plan.tasks();
        assert_eq!(tasks[0].requires, ["gpu", "linux"]);
        assert_eq!(tasks[0].timeout_ms, Some(30 * 60 * 1000));
        assert_eq!(tasks[0].max_attempts, 5);
        assert!(tasks[1].requires.is_empty());
        assert_eq!(tasks[1].timeout_ms, None);
        assert_eq!(tasks[1].max_attempts, DEFAULT_MAX_ATTEMPTS);
    }

    #[test]
    fn bad_task_semantics_are_reported_with_the_rest() {
        let err = plan(
            "project: {name: p}\nepics:\n  - name: e\n    tasks:\n\
             \x20     - {key: a, title: A, hours: 1, max_attempts: 0, timeout: 0s, requires: [\"\"]}\n",
        )
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("task `a` has max_attempts 0"), "{text}");
        assert!(text.contains("task `a` has a zero timeout"), "{text}");
        assert!(
            text.contains("task `a` requires an empty capability"),
            "{text}"
        );
        let err = plan(
            "project: {name: p}\nepics:\n  - name: e\n    tasks:\n\
             \x20     - {key: a, title: A, hours: 1, timeout: soon}\n",
        )
        .expect_err("bad duration");
        assert!(err.to_string().contains("invalid duration `soon`"), "{err}");
    }

    #[test]
    fn unknown_fields_and_statuses_are_parse_errors_with_a_position() {
        let err = plan("project: {name: p}\nepics: []\nagnets: []\n").expect_err("typo");
        assert!(err.to_string().contains("agnets"), "{err}");
        let err = plan(
            "project: {name: p}\nepics:\n  - name: e\n    tasks:\n      - {key: a, title: A, hours: 1, status: doing}\n",
        )
        .expect_err("status");
        assert!(err.to_string().contains("doing"), "{err}");
        assert!(err.to_string().contains("line 5"), "{err}");
    }
}
