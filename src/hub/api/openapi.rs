//! The OpenAPI 3.1 document the hub serves at `/openapi.json`. Endpoints are listed in one
//! table; a test checks that every listed endpoint is routed and every route is listed.

use axum::Json;
use serde_json::{Map, Value, json};

/// (method, path, summary, request body schema, success status, response schema)
type Endpoint = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    u16,
    Option<Value>,
);

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn list_of(name: &str) -> Value {
    json!({"type": "array", "items": schema(name)})
}

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        (
            "get",
            "/api/tasks",
            "List tasks (filter by `status`, `epic`, `project_id`)",
            None,
            200,
            Some(list_of("Task")),
        ),
        (
            "get",
            "/api/tasks/{id}",
            "One task with its dependencies",
            None,
            200,
            Some(schema("Task")),
        ),
        (
            "get",
            "/api/tasks/ready/list",
            "Tasks ready to start: pending, every dependency done",
            None,
            200,
            Some(list_of("Task")),
        ),
        (
            "patch",
            "/api/tasks/{id}/progress",
            "Set a task's progress and optionally its status (409 while an agent holds the task: end its assignment first; `in_progress` only by assignment)",
            Some("TaskProgress"),
            200,
            Some(schema("Task")),
        ),
        (
            "patch",
            "/api/tasks/{id}/git",
            "Record a task's branch and pull request",
            Some("TaskGit"),
            200,
            Some(schema("Task")),
        ),
        (
            "post",
            "/api/tasks/{id}/retry",
            "Put a blocked task back in the queue, its attempts and backoff reset (409 unless blocked)",
            None,
            200,
            Some(schema("Task")),
        ),
        (
            "post",
            "/api/tasks/{id}/pull-request",
            "Report that the pull request of a task in review ended: merged, the task is done; closed unmerged, blocked (409 unless in review)",
            Some("PullRequestEnd"),
            200,
            Some(schema("Task")),
        ),
        (
            "get",
            "/api/agents",
            "List agents with load and health",
            None,
            200,
            Some(list_of("AgentHealth")),
        ),
        (
            "get",
            "/api/agents/{id}",
            "One agent with load and health",
            None,
            200,
            Some(schema("AgentHealth")),
        ),
        (
            "post",
            "/api/agents/heartbeat",
            "Register an agent or refresh its heartbeat; the answer lists its assignments an operator asked to cancel",
            Some("Heartbeat"),
            200,
            Some(schema("HeartbeatAnswer")),
        ),
        (
            "post",
            "/api/agents/{id}/deactivate",
            "Deactivate an agent; its active tasks go back to the queue",
            None,
            200,
            Some(schema("Agent")),
        ),
        (
            "get",
            "/api/assignments",
            "List assignments (filter by `agent_id`, `status`)",
            None,
            200,
            Some(list_of("Assignment")),
        ),
        (
            "post",
            "/api/assignments",
            "Assign a ready task to an agent (409 if not ready, backing off, or the agent lacks a required capability)",
            Some("NewAssignment"),
            201,
            Some(schema("Claim")),
        ),
        (
            "post",
            "/api/assignments/claim",
            "Atomically claim the best ready task the agent has every required capability for, past its retry backoff (204 if none)",
            Some("ClaimRequest"),
            200,
            Some(schema("Claim")),
        ),
        (
            "patch",
            "/api/assignments/{id}/progress",
            "Report progress; `completed`, `failed` or `released` ends the assignment (the same ending again is answered, not refused; any other change to an ended assignment is 409, and so is any report on an assignment the hub timed out)",
            Some("AssignmentProgress"),
            200,
            Some(schema("Assignment")),
        ),
        (
            "post",
            "/api/assignments/{id}/cancel",
            "Ask the assignment's worker to stop (it hears it in its next heartbeat or progress answer, stops the run as Ctrl-C would and reports `cancelled`; the task is then `blocked`). Asking again is answered the same; 409 if the assignment already ended, and a completion reported after the cancel is 409",
            None,
            202,
            Some(schema("Assignment")),
        ),
        (
            "get",
            "/api/progress/summary",
            "Overall and per-epic progress (optional `project_id`)",
            None,
            200,
            Some(schema("ProgressSummary")),
        ),
        (
            "get",
            "/api/progress/agents",
            "Agent utilization",
            None,
            200,
            Some(list_of("AgentHealth")),
        ),
        (
            "post",
            "/api/progress/snapshot",
            "Record a progress snapshot of a project",
            Some("SnapshotRequest"),
            201,
            Some(schema("ProgressSnapshot")),
        ),
        (
            "get",
            "/api/progress/history/{project_id}",
            "A project's snapshots, oldest first",
            None,
            200,
            Some(list_of("ProgressSnapshot")),
        ),
        (
            "get",
            "/api/progress/forecast/{project_id}",
            "Velocity (estimated hours done per wall-clock hour over the last day of snapshots) and the ETA of the remaining hours at that velocity",
            None,
            200,
            Some(schema("Forecast")),
        ),
        (
            "get",
            "/api/git/merge-queue",
            "Tasks in review with a pull request, oldest first, each with its checks (the task's test, build and junit evidence)",
            None,
            200,
            Some(list_of("MergeQueueEntry")),
        ),
        (
            "get",
            "/api/git/branches",
            "Branches of tasks in progress or review",
            None,
            200,
            Some(list_of("Task")),
        ),
        (
            "post",
            "/api/git/evidence",
            "Record evidence (commit, pr, test, build, patch, junit); idempotent by key",
            Some("NewEvidence"),
            201,
            Some(schema("Evidence")),
        ),
        (
            "get",
            "/api/git/evidence/{task_id}",
            "A task's evidence",
            None,
            200,
            Some(list_of("Evidence")),
        ),
        (
            "get",
            "/api/projects",
            "List projects",
            None,
            200,
            Some(list_of("Project")),
        ),
        (
            "get",
            "/health",
            "Liveness and database reachability",
            None,
            200,
            None,
        ),
        ("get", "/openapi.json", "This document", None, 200, None),
        (
            "get",
            "/metrics",
            "Prometheus metrics in the text exposition format (`text/plain; version=0.0.4`): `agent_orch_hub_claims_total{outcome}`, `agent_orch_hub_claim_duration_seconds` (histogram), `agent_orch_hub_tasks{status}`, `agent_orch_hub_ready_tasks`, `agent_orch_hub_agents{health}`, `agent_orch_hub_requeues_total`, `agent_orch_hub_timeouts_total`, `agent_orch_hub_websocket_subscribers`",
            None,
            200,
            None,
        ),
        (
            "get",
            "/ws",
            "WebSocket: task, assignment, agent, evidence and progress events as JSON text messages",
            None,
            101,
            None,
        ),
        ("get", "/", "The dashboard page", None, 200, None),
    ]
}

pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, body, status, response) in endpoints() {
        let mut operation = json!({
            "summary": summary,
            "responses": {
                status.to_string(): match response {
                    Some(schema) => json!({"description": "success", "content": {"application/json": {"schema": schema}}}),
                    None => json!({"description": "success"}),
                },
                "400": {"description": "the request is malformed; the body says what was wrong", "content": {"application/json": {"schema": schema("Error")}}},
            }
        });
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                let kind = if name == "id" && path.starts_with("/api/agents") {
                    "string"
                } else {
                    "integer"
                };
                json!({"name": name, "in": "path", "required": true, "schema": {"type": kind}})
            })
            .collect();
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if path == "/metrics" {
            operation["responses"]["200"]["content"] = json!({
                "text/plain; version=0.0.4": {"schema": {"type": "string"}}
            });
        }
        if let Some(body) = body {
            operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema(body)}}});
        }
        if method != "get" {
            operation["security"] = json!([{"bearer": []}]);
            operation["responses"]["401"] =
                json!({"description": "missing or invalid bearer token"});
            operation["responses"]["413"] = json!({"description": "request body over 64 KiB"});
        }
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "agent-orch hub",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Coordination hub for agent fleets: tasks, agents, assignments, progress and evidence."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        }
    })
}

fn schemas() -> Value {
    let text = json!({"type": "string"});
    let int = json!({"type": "integer"});
    let number = json!({"type": "number"});
    let nullable_text = json!({"type": ["string", "null"]});
    let task_status = json!({"enum": ["pending", "in_progress", "review", "done", "blocked"]});
    let assignment_status =
        json!({"enum": ["active", "completed", "failed", "released", "requeued", "cancelled"]});
    let evidence_kind = json!({"enum": ["commit", "pr", "test", "build", "patch", "junit"]});
    let object = |properties: Value, required: &[&str]| json!({"type": "object", "properties": properties, "required": required});
    json!({
        "Error": object(json!({"error": text}), &["error"]),
        "Project": object(json!({"id": int, "name": text, "repo_url": nullable_text, "created_at": int}), &["id", "name"]),
        "Task": object(json!({
            "id": int, "project_id": int, "key": text, "epic": text, "title": text, "description": text,
            "estimate_hours": number, "priority": int, "status": task_status, "progress": int, "failures": int,
            "workflow": nullable_text, "branch": nullable_text, "pr_url": nullable_text,
            "environment": {"type": ["string", "null"], "description": "the workflow's environment, as `agent-orch run --env`"},
            "vars": {"type": "object", "additionalProperties": text, "description": "the workflow's variables, as `agent-orch run --var KEY=VALUE`"},
            "assigned_agent": nullable_text, "depends_on": {"type": "array", "items": int},
            "created_at": int, "updated_at": int,
            "requires": {"type": "array", "items": text, "description": "capabilities an agent must have, every one, to be given the task"},
            "timeout_ms": {"type": ["integer", "null"], "description": "an assignment running longer is failed and the task requeued; a late report from its agent gets 409"},
            "max_attempts": {"type": "integer", "description": "failed attempts (timeouts included) before the task is blocked"},
            "not_before": {"type": "integer", "description": "unix ms before which a failed task is not handed out again (exponential backoff); 0 = at once"}
        }), &["id", "key", "epic", "title", "status", "progress", "depends_on", "requires", "max_attempts", "not_before"]),
        "Agent": object(json!({
            "id": text, "host": text, "capabilities": {"type": "array", "items": text},
            "status": {"enum": ["active", "offline", "deactivated"]}, "last_heartbeat": int, "created_at": int
        }), &["id", "status", "last_heartbeat"]),
        "AgentHealth": {"allOf": [schema("Agent"), object(json!({
            "active_assignments": int, "completed_assignments": int, "healthy": {"type": "boolean"}
        }), &["active_assignments", "healthy"])]},
        "HeartbeatAnswer": {"allOf": [schema("Agent"), object(json!({
            "cancel_assignments": {"type": "array", "items": int, "description": "active assignments of this agent an operator asked to cancel"}
        }), &["cancel_assignments"])]},
        "Assignment": object(json!({
            "id": int, "task_id": int, "agent_id": text, "status": assignment_status, "progress": int,
            "note": text, "assigned_at": int, "updated_at": int,
            "cancel_requested": {"type": "boolean", "description": "an operator asked to cancel: `cancelled` is the only ending accepted"}
        }), &["id", "task_id", "agent_id", "status", "progress"]),
        "Claim": object(json!({"assignment": schema("Assignment"), "task": schema("Task")}), &["assignment", "task"]),
        "Evidence": object(json!({
            "id": int, "task_id": int, "agent_id": nullable_text, "kind": evidence_kind, "reference": text,
            "detail": text, "created_at": int
        }), &["id", "task_id", "kind", "reference"]),
        "MergeQueueEntry": {"allOf": [
            {"$ref": "#/components/schemas/Task"},
            object(json!({"checks": {"type": "array", "items": {"$ref": "#/components/schemas/Evidence"}}}), &["checks"])
        ]},
        "PullRequestEnd": object(json!({"merged": {"type": "boolean", "description": "true: merged; false: closed without merging"}}), &["merged"]),
        "EpicProgress": object(json!({
            "epic": text, "total_tasks": int, "done_tasks": int, "in_progress_tasks": int,
            "total_hours": number, "done_hours": number, "percent": number
        }), &["epic", "total_tasks", "done_tasks", "percent"]),
        "ProgressSummary": object(json!({
            "total_tasks": int, "pending_tasks": int, "ready_tasks": int, "in_progress_tasks": int,
            "review_tasks": int, "done_tasks": int, "blocked_tasks": int, "total_hours": number,
            "done_hours": number, "percent": number, "active_agents": int,
            "epics": {"type": "array", "items": schema("EpicProgress")}
        }), &["total_tasks", "done_tasks", "percent", "epics"]),
        "ProgressSnapshot": object(json!({
            "id": int, "project_id": int, "total_tasks": int, "done_tasks": int, "in_progress_tasks": int,
            "total_hours": number, "done_hours": number, "active_agents": int, "created_at": int
        }), &["id", "project_id", "total_tasks", "done_tasks"]),
        "Forecast": object(json!({
            "project_id": int, "active_agents": int, "total_hours": number, "done_hours": number,
            "remaining_hours": number, "velocity": {"type": ["number", "null"]},
            "eta": {"type": ["integer", "null"], "description": "Unix ms"},
            "window_start": {"type": ["integer", "null"]}, "window_end": {"type": ["integer", "null"]}
        }), &["project_id", "active_agents", "remaining_hours", "velocity", "eta"]),
        "TaskProgress": object(json!({"progress": int, "status": task_status}), &["progress"]),
        "TaskGit": object(json!({"branch": text, "pr_url": text}), &[]),
        "Heartbeat": object(json!({"id": text, "host": text, "capabilities": {"type": "array", "items": text}}), &["id"]),
        "NewAssignment": object(json!({"task_id": int, "agent_id": text}), &["task_id", "agent_id"]),
        "ClaimRequest": object(json!({"agent_id": text}), &["agent_id"]),
        "AssignmentProgress": object(json!({
            "progress": int, "status": assignment_status, "note": text, "review": {"type": "boolean"}
        }), &["progress"]),
        "SnapshotRequest": object(json!({"project_id": int}), &["project_id"]),
        "NewEvidence": object(json!({
            "task_id": int, "agent_id": text, "kind": evidence_kind, "reference": text, "detail": text,
            "idempotency_key": {"type": "string", "description": "sending the same key for the same task again answers 200 with the earlier record instead of recording a copy; 409 if the evidence differs"}
        }), &["task_id", "kind", "reference"]),
    })
}

pub(crate) async fn serve() -> Json<Value> {
    Json(openapi_document())
}
