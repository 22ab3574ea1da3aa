//! The hub's data model as the API speaks it: projects, tasks, agents, assignments, evidence and
//! progress, plus the status vocabularies the store enforces with `CHECK` constraints.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Declares a status vocabulary once: its wire spelling (also the stored text), parsing with a
/// clear error listing what is allowed, and serde in the same spelling.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        what: $what,
                        value: text.to_owned(),
                        allowed: &[$($text),+],
                    }),
                }
            }
        }
    };
}

vocabulary!(
    /// Where a task is in its life. `pending` tasks whose dependencies are all `done` are ready.
    TaskStatus, "task status" {
        Pending => "pending",
        InProgress => "in_progress",
        Review => "review",
        Done => "done",
        Blocked => "blocked",
    }
);

vocabulary!(
    /// `offline` is set by the hub when heartbeats stop; `deactivated` by an operator.
    AgentStatus, "agent status" {
        Active => "active",
        Offline => "offline",
        Deactivated => "deactivated",
    }
);

vocabulary!(
    /// Only `active` assignments hold a task; every other status has given it back or finished it.
    AssignmentStatus, "assignment status" {
        Active => "active",
        Completed => "completed",
        Failed => "failed",
        Released => "released",
        Requeued => "requeued",
        Cancelled => "cancelled",
    }
);

vocabulary!(
    /// What a piece of evidence points at.
    EvidenceKind, "evidence kind" {
        Commit => "commit",
        Pr => "pr",
        Test => "test",
        Build => "build",
        Patch => "patch",
        Junit => "junit",
    }
);

/// A value outside a vocabulary, with the allowed spellings so a 400 can say what would work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected one of: {})", allowed.join(", "))]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub allowed: &'static [&'static str],
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub repo_url: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: i64,
    pub project_id: i64,
    /// The plan's name for the task (`E1-01`), unique within its project.
    pub key: String,
    pub epic: String,
    pub title: String,
    pub description: String,
    pub estimate_hours: f64,
    pub priority: i64,
    pub status: TaskStatus,
    pub progress: i64,
    /// Failed attempts so far (timeouts included); at `max_attempts` the task is `blocked`.
    pub failures: i64,
    /// The workflow file a worker runs for this task, relative to the worker's repository.
    pub workflow: Option<String>,
    /// The workflow's environment (`--env`); none for a workflow without `environments`.
    pub environment: Option<String>,
    /// The workflow's variables (`--var KEY=VALUE`).
    pub vars: BTreeMap<String, String>,
    pub branch: Option<String>,
    pub pr_url: Option<String>,
    pub assigned_agent: Option<String>,
    /// Ids of the tasks that must be `done` before this one is ready.
    pub depends_on: Vec<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    // Task semantics (claim rules): who may take it, how long and how often it may run.
    /// Capabilities an agent must have every one of to be given this task.
    #[serde(default)]
    pub requires: Vec<String>,
    /// How long one attempt may run before the hub fails it and requeues the task.
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    /// Failed attempts allowed before the task is `blocked`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i64,
    /// A failed task is not handed out before this time (unix ms; 0 = at once).
    #[serde(default)]
    pub not_before: i64,
}

fn default_max_attempts() -> i64 {
    DEFAULT_MAX_ATTEMPTS
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub host: String,
    pub capabilities: Vec<String>,
    pub status: AgentStatus,
    pub last_heartbeat: i64,
    pub created_at: i64,
}

/// The hub's answer to a heartbeat: the agent, and its assignments an operator asked to cancel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    #[serde(flatten)]
    pub agent: Agent,
    #[serde(default)]
    pub cancel_assignments: Vec<i64>,
}

/// An agent with what the seed's `agent_status` view adds: its load and whether it is healthy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentHealth {
    #[serde(flatten)]
    pub agent: Agent,
    pub active_assignments: i64,
    pub completed_assignments: i64,
    /// Active, with a heartbeat younger than the hub's timeout.
    pub healthy: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub id: i64,
    pub task_id: i64,
    pub agent_id: String,
    pub status: AssignmentStatus,
    pub progress: i64,
    pub note: String,
    pub assigned_at: i64,
    pub updated_at: i64,
    /// An operator asked to cancel it: its worker stops the run and reports `cancelled`, and
    /// no other ending is accepted.
    pub cancel_requested: bool,
}

/// What an atomic claim hands a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub assignment: Assignment,
    pub task: Task,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub id: i64,
    pub task_id: i64,
    pub agent_id: Option<String>,
    pub kind: EvidenceKind,
    /// A commit id, a PR URL, a junit path, a build id.
    pub reference: String,
    pub detail: String,
    pub created_at: i64,
}

/// A task of the merge queue: the task (its `branch` and `pr_url`) and the checks the hub knows
/// of, the task's test, build and junit evidence. The provider's own check runs are not fetched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeQueueEntry {
    #[serde(flatten)]
    pub task: Task,
    pub checks: Vec<Evidence>,
}

impl EvidenceKind {
    /// Evidence that says whether the work passes: what the merge queue shows as checks.
    pub fn is_check(self) -> bool {
        matches!(
            self,
            EvidenceKind::Test | EvidenceKind::Build | EvidenceKind::Junit
        )
    }
}

/// The seed's `epic_progress` view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpicProgress {
    pub epic: String,
    pub total_tasks: i64,
    pub done_tasks: i64,
    pub in_progress_tasks: i64,
    pub total_hours: f64,
    pub done_hours: f64,
    /// Done hours over total hours, 0 to 100.
    pub percent: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgressSummary {
    pub total_tasks: i64,
    pub pending_tasks: i64,
    pub ready_tasks: i64,
    pub in_progress_tasks: i64,
    pub review_tasks: i64,
    pub done_tasks: i64,
    pub blocked_tasks: i64,
    pub total_hours: f64,
    pub done_hours: f64,
    pub percent: f64,
    pub active_agents: i64,
    pub epics: Vec<EpicProgress>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgressSnapshot {
    pub id: i64,
    pub project_id: i64,
    pub total_tasks: i64,
    pub done_tasks: i64,
    pub in_progress_tasks: i64,
    pub total_hours: f64,
    pub done_hours: f64,
    pub active_agents: i64,
    pub created_at: i64,
}

/// A task that failed this many times (unless its plan says otherwise) is `blocked` instead of
/// going back to the queue: a fleet should not burn its time on a task that keeps failing. An
/// operator unblocks it (`POST /api/tasks/{id}/retry`).
pub const DEFAULT_MAX_ATTEMPTS: i64 = 3;

/// Done over total as a percentage, 0 when there is nothing to do.
pub(crate) fn percent(done: f64, total: f64) -> f64 {
    if total > 0.0 {
        (done / total * 1000.0).round() / 10.0
    } else {
        0.0
    }
}

/// Milliseconds since the Unix epoch: the one time encoding both stores share.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_ones_list_the_allowed() {
        for status in TaskStatus::ALL {
            assert_eq!(status.as_str().parse::<TaskStatus>(), Ok(*status));
            assert_eq!(
                serde_json::to_string(status).expect("json"),
                format!("\"{status}\"")
            );
        }
        let err = "doing".parse::<TaskStatus>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown task status `doing` (expected one of: pending, in_progress, review, done, blocked)"
        );
    }

    #[test]
    fn percent_rounds_to_a_tenth_and_survives_zero() {
        assert_eq!(percent(40.0, 592.0), 6.8);
        assert_eq!(percent(0.0, 0.0), 0.0);
    }
}
