//! Failure context for the fix step: the failing pod's logs (the previous container's too), its
//! events and the workload's and pod's conditions, trimmed to a few KB. For a Job, the failing
//! pod is the one that failed last, and its logs say why.

use std::fmt::Write as _;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};

use super::access::Cluster;
use super::rollout_status::RolloutFailure;
use super::workload::WorkloadKind;

/// The whole evidence stays under this, so a prompt can afford it.
pub const EVIDENCE_LIMIT: usize = 6 * 1024;
const LOG_LINES: i64 = 40;
const LOG_BYTES: usize = 1500;
const EVENTS: usize = 12;
/// Evidence is best effort: it must not delay reporting the failure much.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Describes a failed (or timed-out) rollout; `object` is the workload as JSON, `pods` are its
/// current revision's pods.
pub async fn collect(
    cluster: &Cluster,
    workload: WorkloadKind,
    object: &serde_json::Value,
    failure: Option<&RolloutFailure>,
    pods: &[Pod],
) -> String {
    let text_at = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let namespace =
        text_at("/metadata/namespace").unwrap_or_else(|| cluster.default_namespace().to_owned());
    let mut text = String::new();
    let name = text_at("/metadata/name").unwrap_or_default();
    let _ = writeln!(text, "{workload} `{name}` in namespace `{namespace}`");
    if let Some(failure) = failure {
        let _ = writeln!(text, "failure: {failure}");
    }
    let _ = writeln!(text, "{workload} conditions:");
    let conditions = object
        .pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    for condition in &conditions {
        let field = |key: &str| {
            condition
                .get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
        };
        let reason = match field("reason") {
            "" => "-",
            reason => reason,
        };
        let _ = writeln!(
            text,
            "  {}={} ({reason}): {}",
            field("type"),
            field("status"),
            field("message")
        );
    }

    // The pod to look into: the failing one, else the first one that is not ready.
    let pod = failure
        .and_then(|f| f.pod.as_deref())
        .and_then(|name| {
            pods.iter()
                .find(|p| p.metadata.name.as_deref() == Some(name))
        })
        .or_else(|| pods.iter().find(|p| !is_ready(p)));
    if let Some(pod) = pod {
        let details = tokio::time::timeout(
            COLLECT_TIMEOUT,
            describe_pod(cluster, &namespace, pod, failure),
        );
        match details.await {
            Ok(details) => text.push_str(&details),
            Err(_) => {
                text.push_str("(pod logs and events not collected: the api server was too slow)\n")
            }
        }
    }
    trim(&text, EVIDENCE_LIMIT)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn describe_pod(
    cluster: &Cluster,
    namespace: &str,
    pod: &Pod,
    failure: Option<&RolloutFailure>,
) -> String {
    let mut text = String::new();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let _ = writeln!(
        text,
        "pod `{pod_name}`: phase {}",
        status.phase.as_deref().unwrap_or("Unknown")
    );
    for condition in status.conditions.iter().flatten() {
        if condition.status != "True" {
            let _ = writeln!(
                text,
                "  {}={} ({}) {}",
                condition.type_,
                condition.status,
                condition.reason.as_deref().unwrap_or("-"),
                condition.message.as_deref().unwrap_or_default()
            );
        }
    }
    let containers: Vec<_> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .collect();
    for container in &containers {
        let state = container.state.clone().unwrap_or_default();
        let now = if let Some(w) = &state.waiting {
            format!(
                "waiting: {} {}",
                w.reason.as_deref().unwrap_or_default(),
                w.message.as_deref().unwrap_or_default()
            )
        } else if state.running.is_some() {
            format!("running, ready={}", container.ready)
        } else if let Some(t) = &state.terminated {
            format!(
                "terminated: {} exit {}",
                t.reason.as_deref().unwrap_or_default(),
                t.exit_code
            )
        } else {
            "unknown".to_owned()
        };
        let last = container
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| {
                format!(
                    "; last terminated: {} exit {}",
                    t.reason.as_deref().unwrap_or_default(),
                    t.exit_code
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "  container `{}` ({}): {}{last}; restarts {}",
            container.name,
            container.image,
            now.trim(),
            container.restart_count
        );
    }

    let api: Api<Pod> = Api::namespaced(cluster.client().clone(), namespace);
    let focus = failure.and_then(|f| f.container.clone());
    for container in containers
        .iter()
        .filter(|c| focus.as_deref().is_none_or(|f| f == c.name))
    {
        let mut runs = vec![(false, "current")];
        if container.restart_count > 0 {
            runs.insert(0, (true, "previous"));
        }
        for (previous, which) in runs {
            let params = LogParams {
                container: Some(container.name.clone()),
                previous,
                tail_lines: Some(LOG_LINES),
                limit_bytes: Some(LOG_BYTES as i64 * 2),
                ..LogParams::default()
            };
            match api.logs(&pod_name, &params).await {
                Ok(logs) if logs.trim().is_empty() => {}
                Ok(logs) => {
                    let _ = writeln!(
                        text,
                        "logs of `{pod_name}` container `{}` ({which}), untrusted output:",
                        container.name
                    );
                    for line in tail(&logs, LOG_BYTES).lines() {
                        let _ = writeln!(text, "  | {line}");
                    }
                }
                Err(err) => {
                    let _ = writeln!(
                        text,
                        "logs of container `{}` ({which}) unavailable: {err}",
                        container.name
                    );
                }
            }
        }
    }

    let events: Api<Event> = Api::namespaced(cluster.client().clone(), namespace);
    let params = ListParams::default().fields(&format!("involvedObject.name={pod_name}"));
    match events.list(&params).await {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by(|a, b| a.last_timestamp.cmp(&b.last_timestamp));
            let skip = items.len().saturating_sub(EVENTS);
            if !items.is_empty() {
                text.push_str("events:\n");
            }
            for event in items.iter().skip(skip) {
                let _ = writeln!(
                    text,
                    "  {} {}: {}{}",
                    event.type_.as_deref().unwrap_or("Normal"),
                    event.reason.as_deref().unwrap_or_default(),
                    event.message.as_deref().unwrap_or_default(),
                    match event.count {
                        Some(count) if count > 1 => format!(" (x{count})"),
                        _ => String::new(),
                    }
                );
            }
        }
        Err(err) => {
            let _ = writeln!(text, "events unavailable: {err}");
        }
    }
    text
}

/// The last `limit` bytes of `text`, starting on a line boundary.
fn tail(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    match text[start..].find('\n') {
        Some(newline) => &text[start + newline + 1..],
        None => &text[start..],
    }
}

/// The first `limit` bytes of `text`, marked when cut.
pub fn trim(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… (trimmed)\n", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_starts_on_a_line() {
        assert_eq!(tail("aaaa\nbbbb\ncccc\n", 7), "cccc\n");
        assert_eq!(tail("short", 100), "short");
    }

    #[test]
    fn trim_marks_the_cut() {
        assert_eq!(trim("héllo", 2), "h\n… (trimmed)\n");
        assert_eq!(trim("ok", 10), "ok");
    }
}
