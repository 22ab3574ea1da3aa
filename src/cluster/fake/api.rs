//! The fake's HTTP surface: discovery, get/list/watch/patch/delete, pod logs, injected 403s.
//!
//! One fallback handler parses the path the way the API server lays it out
//! (`/api/v1/namespaces/<ns>/<resource>/<name>/<sub>`, `/apis/<group>/<version>/...`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::patch;
use super::resources::{self, ResourceType};
use super::simulator::TEMPLATE_HASH_LABEL;
use super::store::{
    Change, ObjectKey, ensure_object, matches_field_selector, matches_label_selector,
};
use super::{Shared, lock};

type Params = HashMap<String, String>;

pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

/// A parsed resource path.
struct Target {
    resource: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let required = lock(&shared.state).bearer.clone();
    if let Some(check) = required {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|token| check.accepts(token)) {
            return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
        }
    }
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => {
            return json_response(
                StatusCode::OK,
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-agent-orch-fake", "platform": "linux/amd64"}),
            );
        }
        ["api"] => return json_response(StatusCode::OK, resources::core_versions()),
        ["apis"] => return json_response(StatusCode::OK, resources::group_list()),
        ["api", version] => return discovery("", version),
        ["apis", group, version] => return discovery(group, version),
        _ => {}
    }
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let Some((plural, rest)) = rest.split_first() else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let Some(resource) = ResourceType::find(group, version, plural) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "the server could not find the requested resource ({group}/{version} {plural})"
            ),
        );
    };
    let target = Target {
        resource,
        namespace,
        name: rest.first().map(|s| (*s).to_owned()),
        subresource: rest.get(1).map(|s| (*s).to_owned()),
    };
    let watching = params.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&method, target.name.is_some()) {
        (&Method::GET, _) if watching => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) => "list",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        _ => {
            return status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "method not allowed",
            );
        }
    };
    if let Some(denied) = forbidden(&shared, verb, &target) {
        return denied;
    }
    match (verb, target.subresource.as_deref()) {
        ("watch", _) => watch(&shared, &target, &params),
        ("list", _) => list(&shared, &target, &params),
        ("get", Some("log")) => pod_log(&shared, &target, &params),
        ("get", _) => get(&shared, &target),
        ("patch", _) => patch_object(&shared, &target, &params, &headers, &body),
        ("delete", _) => delete(&shared, &target),
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!(
                "the fake does not implement {verb} on {}",
                resource.qualified_name()
            ),
        ),
    }
}

fn discovery(group: &str, version: &str) -> Response {
    match resources::resource_list(group, version) {
        Some(list) => json_response(StatusCode::OK, list),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn forbidden(shared: &Shared, verb: &str, target: &Target) -> Option<Response> {
    let state = lock(&shared.state);
    let denied = state.forbidden.iter().any(|rule| {
        rule.verb == verb
            && rule.resource == target.resource.plural
            && rule
                .namespace
                .as_deref()
                .is_none_or(|ns| target.namespace.as_deref() == Some(ns))
    });
    if !denied {
        return None;
    }
    let group = target.resource.group;
    let subject = match &target.name {
        Some(name) => format!("{} \"{name}\"", target.resource.qualified_name()),
        None => target.resource.qualified_name(),
    };
    let scope = match &target.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_owned(),
    };
    Some(status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!(
            "{subject} is forbidden: User \"system:serviceaccount:ci:deployer\" cannot {verb} resource \"{}\" in API group \"{group}\"{scope}",
            target.resource.plural
        ),
    ))
}

fn key_of(target: &Target) -> Option<ObjectKey> {
    let name = target.name.as_deref()?;
    let namespace = if target.resource.namespaced {
        target.namespace.as_deref()?
    } else {
        ""
    };
    Some(ObjectKey::new(target.resource, namespace, name))
}

fn get(shared: &Shared, target: &Target) -> Response {
    let Some(key) = key_of(target) else {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such object");
    };
    let state = lock(&shared.state);
    match state.store.get(&key) {
        Some(object) => json_response(StatusCode::OK, object.clone()),
        None => not_found(target),
    }
}

fn not_found(target: &Target) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!(
            "{} \"{}\" not found",
            target.resource.qualified_name(),
            target.name.as_deref().unwrap_or_default()
        ),
    )
}

fn selected(object: &Value, params: &Params) -> bool {
    params
        .get("labelSelector")
        .is_none_or(|s| matches_label_selector(object, s))
        && params
            .get("fieldSelector")
            .is_none_or(|s| matches_field_selector(object, s))
}

fn list(shared: &Shared, target: &Target, params: &Params) -> Response {
    let state = lock(&shared.state);
    let items: Vec<Value> = state
        .store
        .list(target.resource, target.namespace.as_deref())
        .into_iter()
        .filter(|o| selected(o, params))
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "apiVersion": target.resource.api_version(),
            "kind": format!("{}List", target.resource.kind),
            "metadata": {"resourceVersion": state.store.resource_version().to_string()},
            "items": items,
        }),
    )
}

struct WatchState {
    pending: std::collections::VecDeque<Value>,
    changes: broadcast::Receiver<Change>,
    last_seen: u64,
    resource: String,
    namespace: Option<String>,
    params: Params,
    stop: CancellationToken,
    until: tokio::time::Instant,
}

fn watch(shared: &Shared, target: &Target, params: &Params) -> Response {
    let state = lock(&shared.state);
    let since: Option<u64> = params
        .get("resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .filter(|rv| *rv > 0);
    let changes = state.store.subscribe();
    let resource = target.resource.qualified_name();
    let namespace = target.namespace.clone();
    let matches = |key: &ObjectKey, object: &Value| {
        key.resource == resource
            && namespace.as_deref().is_none_or(|ns| key.namespace == ns)
            && selected(object, params)
    };
    let mut pending = std::collections::VecDeque::new();
    match since {
        Some(since) => match state.store.changes_since(since) {
            Some(history) => {
                for change in history.iter().filter(|c| matches(&c.key, &c.object)) {
                    pending.push_back(watch_event(change.kind.as_str(), &change.object));
                }
            }
            None => pending.push_back(json!({
                "type": "ERROR",
                "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("too old resource version: {since}"),
                    "reason": "Expired", "code": 410,
                },
            })),
        },
        None => {
            for object in state
                .store
                .list(target.resource, target.namespace.as_deref())
            {
                if selected(&object, params) {
                    pending.push_back(watch_event("ADDED", &object));
                }
            }
        }
    }
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1800);
    let watch_state = WatchState {
        pending,
        changes,
        last_seen: state.store.resource_version(),
        resource,
        namespace,
        params: params.clone(),
        stop: shared.stop_watches(),
        until: tokio::time::Instant::now() + Duration::from_secs(timeout),
    };
    drop(state);
    let stream = futures::stream::unfold(watch_state, |mut ws| async move {
        loop {
            if let Some(event) = ws.pending.pop_front() {
                let mut line = event.to_string();
                line.push('\n');
                return Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), ws));
            }
            let change = tokio::select! {
                () = ws.stop.cancelled() => return None,
                () = tokio::time::sleep_until(ws.until) => return None,
                change = ws.changes.recv() => change,
            };
            // A lagging watcher is closed; the client re-lists, as with a real server.
            let Ok(change) = change else { return None };
            if change.resource_version <= ws.last_seen {
                continue;
            }
            let in_scope = change.key.resource == ws.resource
                && ws
                    .namespace
                    .as_deref()
                    .is_none_or(|ns| change.key.namespace == ns)
                && selected(&change.object, &ws.params);
            if in_scope {
                ws.pending
                    .push_back(watch_event(change.kind.as_str(), &change.object));
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream.boxed()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn watch_event(kind: &str, object: &Value) -> Value {
    json!({"type": kind, "object": object})
}

fn pod_log(shared: &Shared, target: &Target, params: &Params) -> Response {
    let Some(key) = key_of(target) else {
        return not_found(target);
    };
    let state = lock(&shared.state);
    let Some(pod) = state.store.get(&key) else {
        return not_found(target);
    };
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let container = match params.get("container") {
        Some(c) => c.clone(),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "a container name must be specified for pod {}, choose one of: [{}]",
                    key.name,
                    containers.join(" ")
                ),
            );
        }
    };
    let previous = params.get("previous").is_some_and(|p| p == "true");
    let logs = state
        .store
        .logs
        .get(&(key.namespace.clone(), key.name.clone(), container.clone()));
    let text = match (logs, previous) {
        (Some(logs), true) => logs.previous.clone(),
        (Some(logs), false) => Some(logs.current.clone()),
        (None, _) => None,
    };
    let Some(mut text) = text else {
        let which = if previous { "previous terminated " } else { "" };
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "{which}container \"{container}\" in pod \"{}\" not found",
                key.name
            ),
        );
    };
    if let Some(tail) = params
        .get("tailLines")
        .and_then(|t| t.parse::<usize>().ok())
    {
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(tail);
        text = lines[start..].iter().map(|l| format!("{l}\n")).collect();
    }
    if let Some(limit) = params
        .get("limitBytes")
        .and_then(|t| t.parse::<usize>().ok())
        && text.len() > limit
    {
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(text))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn patch_object(
    shared: &Shared,
    target: &Target,
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let Some(key) = key_of(target) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "a patch needs a name and a namespace",
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(err) => match std::str::from_utf8(body)
            .ok()
            .and_then(|text| serde_saphyr::from_str::<Value>(text).ok())
        {
            Some(v) => v,
            None => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("error decoding patch: {err}"),
                );
            }
        },
    };
    let mut state = lock(&shared.state);
    let existing = state.store.get(&key).cloned();
    let mut object = match (
        content_type.split(';').next().unwrap_or_default(),
        existing.clone(),
    ) {
        ("application/apply-patch+yaml", existing) => {
            if !params.contains_key("fieldManager") {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                );
            }
            if let Some(problem) = apply_body_problem(target, &key, &parsed) {
                return status(StatusCode::BAD_REQUEST, "BadRequest", &problem);
            }
            let mut object = existing.unwrap_or_else(|| json!({}));
            patch::merge(&mut object, &parsed);
            object
        }
        (_, None) => return not_found(target),
        ("application/json-patch+json", Some(mut object)) => {
            if let Err(problem) = patch::json_patch(&mut object, &parsed) {
                return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &problem);
            }
            object
        }
        (
            "application/merge-patch+json" | "application/strategic-merge-patch+json",
            Some(mut object),
        ) => {
            patch::merge(&mut object, &parsed);
            object
        }
        (other, Some(_)) => {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                &format!("the body of the request was in an unknown format: {other}"),
            );
        }
    };
    object["apiVersion"] = json!(target.resource.api_version());
    object["kind"] = json!(target.resource.kind);
    let generation = existing
        .as_ref()
        .and_then(|e| e.pointer("/metadata/generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let spec_changed = existing.as_ref().and_then(|e| e.get("spec")) != object.get("spec");
    let next_generation = if existing.is_none() || spec_changed {
        generation + 1
    } else {
        generation
    };
    if object.get("spec").is_some() {
        ensure_object(&mut object, "metadata").insert("generation".into(), json!(next_generation));
    }
    if let Some(problem) = default_and_validate(target.resource, &mut object, existing.as_ref()) {
        return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &problem);
    }
    let mut stored = state.store.put(key.clone(), object);
    if target.resource.plural == "jobs" && stored.pointer("/spec/selector").is_none() {
        label_job_pods(&mut stored);
        stored = state.store.put(key, stored);
    }
    json_response(StatusCode::OK, stored)
}

fn apply_body_problem(target: &Target, key: &ObjectKey, body: &Value) -> Option<String> {
    let kind = body.get("kind").and_then(Value::as_str);
    let api_version = body.get("apiVersion").and_then(Value::as_str);
    let name = body.pointer("/metadata/name").and_then(Value::as_str);
    if kind != Some(target.resource.kind) || api_version != Some(&target.resource.api_version()) {
        return Some(format!(
            "the apply body is a {} {}, not a {} {}",
            api_version.unwrap_or("?"),
            kind.unwrap_or("?"),
            target.resource.api_version(),
            target.resource.kind
        ));
    }
    if name != Some(key.name.as_str()) {
        return Some(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            name.unwrap_or_default(),
            key.name
        ));
    }
    None
}

/// The API server's defaulting and the validation that matters for rollouts, per kind
/// (the defaults of `k8s.io/kubernetes/pkg/apis/{apps,batch}/v1/defaults.go`).
fn default_and_validate(
    resource: &ResourceType,
    object: &mut Value,
    existing: Option<&Value>,
) -> Option<String> {
    match resource.plural {
        "deployments" => default_and_validate_deployment(object),
        "statefulsets" => {
            let spec = ensure_object(object, "spec");
            spec.entry("replicas").or_insert(json!(1));
            spec.entry("podManagementPolicy")
                .or_insert(json!("OrderedReady"));
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("updateStrategy").or_insert(json!({
                "type": "RollingUpdate",
                "rollingUpdate": {"partition": 0},
            }));
            selector_problem(object, "StatefulSet.apps")
        }
        "daemonsets" => {
            let spec = ensure_object(object, "spec");
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("updateStrategy").or_insert(json!({
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            }));
            selector_problem(object, "DaemonSet.apps")
        }
        "jobs" => default_and_validate_job(object, existing),
        _ => None,
    }
}

/// `spec.selector.matchLabels` is required and must match the template's labels.
fn selector_problem(object: &Value, kind: &str) -> Option<String> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let selector = object.pointer("/spec/selector/matchLabels");
    let labels = object.pointer("/spec/template/metadata/labels");
    let Some(Value::Object(selector)) = selector else {
        return Some(format!(
            "{kind} \"{name}\" is invalid: spec.selector: Required value"
        ));
    };
    let matches = selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)).is_some_and(|l| l == v));
    if !matches || selector.contains_key(TEMPLATE_HASH_LABEL) {
        return Some(format!(
            "{kind} \"{name}\" is invalid: spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
        ));
    }
    None
}

/// The API server's defaulting and the validation that matters for rollouts.
fn default_and_validate_deployment(object: &mut Value) -> Option<String> {
    let spec = ensure_object(object, "spec");
    spec.entry("replicas").or_insert(json!(1));
    spec.entry("progressDeadlineSeconds").or_insert(json!(600));
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    spec.entry("strategy").or_insert(json!({
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }));
    selector_problem(object, "Deployment.apps")
}

/// A Job's defaults, its restart policy, and its pod template, which cannot change once the
/// Job exists (`field is immutable`).
fn default_and_validate_job(object: &mut Value, existing: Option<&Value>) -> Option<String> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let spec = ensure_object(object, "spec");
    spec.entry("completions").or_insert(json!(1));
    spec.entry("parallelism").or_insert(json!(1));
    spec.entry("backoffLimit").or_insert(json!(6));
    spec.entry("completionMode").or_insert(json!("NonIndexed"));
    spec.entry("suspend").or_insert(json!(false));
    let restart = object
        .pointer("/spec/template/spec/restartPolicy")
        .and_then(Value::as_str);
    if !matches!(restart, Some("Never" | "OnFailure")) {
        return Some(format!(
            "Job.batch \"{name}\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
        ));
    }
    if let Some(existing) = existing
        && existing.pointer("/spec/template") != object.pointer("/spec/template")
    {
        return Some(format!(
            "Job.batch \"{name}\" is invalid: spec.template: Invalid value: {}: field is immutable",
            object
                .pointer("/spec/template")
                .cloned()
                .unwrap_or_default()
        ));
    }
    None
}

/// What the API server adds to a new Job (`manualSelector` unset): a selector on its uid, and
/// the labels that match it on the pod template.
fn label_job_pods(job: &mut Value) {
    let uid = job.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    let name = job
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let spec = ensure_object(job, "spec");
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = spec.entry("template").or_insert_with(|| json!({}));
    let labels = ensure_object(ensure_object_value(template, "metadata"), "labels");
    labels.insert("batch.kubernetes.io/controller-uid".into(), uid.clone());
    labels.insert("batch.kubernetes.io/job-name".into(), name.clone());
    labels.insert("controller-uid".into(), uid);
    labels.insert("job-name".into(), name);
}

fn ensure_object_value<'v>(object: &'v mut Value, field: &str) -> &'v mut Value {
    ensure_object(object, field);
    &mut object[field]
}

fn delete(shared: &Shared, target: &Target) -> Response {
    let Some(key) = key_of(target) else {
        return not_found(target);
    };
    let mut state = lock(&shared.state);
    let Some(object) = state.store.remove(&key) else {
        return not_found(target);
    };
    // Background cascading deletion: what the garbage collector would do shortly after.
    let mut owners: Vec<String> = object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .into_iter()
        .collect();
    while let Some(owner) = owners.pop() {
        for dependent in state.store.owned_by(&owner) {
            let kind = dependent.get("kind").and_then(Value::as_str);
            let Some(resource) = kind.and_then(ResourceType::by_kind) else {
                continue;
            };
            let text = |pointer: &str| {
                dependent
                    .pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let dependent_key = ObjectKey::new(
                resource,
                &text("/metadata/namespace"),
                &text("/metadata/name"),
            );
            state.store.remove(&dependent_key);
            owners.push(text("/metadata/uid"));
        }
    }
    json_response(StatusCode::OK, object)
}

fn json_response(code: StatusCode, body: Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    json_response(
        code,
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_selector_must_match_template() {
        let mut ok = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web", "v": "1"}}},
        }});
        assert_eq!(default_and_validate_deployment(&mut ok), None);
        assert_eq!(ok["spec"]["replicas"], json!(1));
        let mut bad = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "web"}}},
        }});
        let problem = default_and_validate_deployment(&mut bad).expect("should succeed");
        assert!(problem.contains("does not match"), "{problem}");
    }
}
