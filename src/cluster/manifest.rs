//! Manifests: multi-document YAML split into Kubernetes objects, each remembering the file and
//! line it came from, and image overrides applied to the workloads' containers.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use kube::api::{DynamicObject, GroupVersionKind};
use serde_json::Value;
use thiserror::Error;

/// One object from a manifest file.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub path: PathBuf,
    /// 1-based line where the document starts.
    pub line: usize,
    pub gvk: GroupVersionKind,
    pub object: DynamicObject,
}

impl Manifest {
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }

    /// `Deployment/web`
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.gvk.kind, self.name())
    }

    pub fn location(&self) -> String {
        format!("{}:{}", self.path.display(), self.line)
    }
}

/// A manifest that cannot be used, pointing at the file and line to fix.
#[derive(Debug, Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct ManifestError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Splits a (rendered) manifest file into objects, skipping empty documents.
pub fn parse_manifests(path: &Path, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let error = |line: usize, column: usize, message: String| ManifestError {
        path: path.to_owned(),
        line,
        column,
        message,
    };
    let mut manifests = Vec::new();
    for (first_line, document) in split_documents(text) {
        let is_blank = document.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#')
        });
        if is_blank {
            continue;
        }
        let value: Value = serde_saphyr::from_str(&document).map_err(|err| {
            let (line, column) = err
                .location()
                .map(|l| (l.line() as usize, l.column() as usize))
                .unwrap_or((1, 1));
            error(
                first_line + line.max(1) - 1,
                column.max(1),
                format!("invalid YAML: {}", yaml_message(&err)),
            )
        })?;
        if value.is_null() {
            continue;
        }
        let start = first_content_line(first_line, &document);
        let Value::Object(map) = &value else {
            return Err(error(
                start,
                1,
                "a manifest document must be a mapping".into(),
            ));
        };
        let field = |name: &str| map.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
            return Err(error(
                start,
                1,
                "a manifest document needs `apiVersion` and `kind`".into(),
            ));
        };
        let has_name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_name {
            return Err(error(start, 1, format!("{kind} has no `metadata.name`")));
        }
        let object: DynamicObject = serde_json::from_value(value).map_err(|err| {
            error(
                start,
                1,
                format!("{kind} is not a valid Kubernetes object: {err}"),
            )
        })?;
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group.to_owned(), version.to_owned()),
            None => (String::new(), api_version.clone()),
        };
        manifests.push(Manifest {
            path: path.to_owned(),
            line: start,
            gvk: GroupVersionKind::gvk(&group, &version, &kind),
            object,
        });
    }
    Ok(manifests)
}

/// serde-saphyr's message without its own location (we print ours, file-relative).
fn yaml_message(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // `line 4 column 9: unclosed bracket` counts within the document, not the file.
    let without_position = first
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
        .map_or(first, |(_, message)| message);
    match without_position.find(" at line ") {
        Some(index) => without_position[..index].to_owned(),
        None => without_position.to_owned(),
    }
}

/// The 1-based line of a document's first non-blank, non-comment line.
fn first_content_line(first_line: usize, document: &str) -> usize {
    document
        .lines()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map_or(first_line, |offset| first_line + offset)
}

/// Documents with the 1-based line each starts on; separator lines become blank lines so
/// positions inside a document stay what they are in the file.
pub(super) fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut documents = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (index, line) in text.lines().enumerate() {
        let is_separator = line == "---"
            || line.starts_with("--- ")
            || line.starts_with("---\t")
            || line.trim_end() == "---"
            || line.trim_end() == "...";
        if is_separator {
            if !current.is_empty() {
                documents.push((start, std::mem::take(&mut current)));
            }
            start = index + 2;
            // Content after `--- ` on the same line belongs to the next document.
            let rest = line.strip_prefix("---").unwrap_or_default();
            if !rest.trim().is_empty() && !rest.trim_start().starts_with('#') {
                start = index + 1;
                current.push_str("   ");
                current.push_str(rest);
                current.push('\n');
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.is_empty() {
        documents.push((start, current));
    }
    documents
}

/// A container whose image was set, for the step's outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageChange {
    pub workload: String,
    pub container: String,
    pub image: String,
}

/// JSON pointers to the container lists of the workload kinds that have pod templates.
fn container_lists(kind: &str) -> &'static [&'static str] {
    match kind {
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => &[
            "/spec/template/spec/containers",
            "/spec/template/spec/initContainers",
        ],
        "CronJob" => &[
            "/spec/jobTemplate/spec/template/spec/containers",
            "/spec/jobTemplate/spec/template/spec/initContainers",
        ],
        "Pod" => &["/spec/containers", "/spec/initContainers"],
        _ => &[],
    }
}

/// Sets images: `all` on every (non-init) container, `per_container` by container name (init
/// containers included). A name that matches no container is an error, not a silent no-op.
pub fn override_images(
    manifests: &mut [Manifest],
    all: Option<&str>,
    per_container: &IndexMap<String, String>,
) -> Result<Vec<ImageChange>, String> {
    let mut changes = Vec::new();
    let mut seen_names = Vec::new();
    for manifest in manifests.iter_mut() {
        let workload = manifest.display_name();
        for (index, pointer) in container_lists(&manifest.gvk.kind).iter().enumerate() {
            let is_init = index == 1;
            let Some(Value::Array(containers)) = manifest.object.data.pointer_mut(pointer) else {
                continue;
            };
            for container in containers.iter_mut() {
                let name = container
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                seen_names.push(name.clone());
                let image = per_container.get(&name).map(String::as_str).or(if is_init {
                    None
                } else {
                    all
                });
                if let Some(image) = image {
                    container["image"] = Value::String(image.to_owned());
                    changes.push(ImageChange {
                        workload: workload.clone(),
                        container: name,
                        image: image.to_owned(),
                    });
                }
            }
        }
    }
    if let Some(unknown) = per_container.keys().find(|name| !seen_names.contains(name)) {
        seen_names.dedup();
        return Err(format!(
            "`images` names container `{unknown}`, but the manifests have no such container (containers: {})",
            if seen_names.is_empty() {
                "none".to_owned()
            } else {
                seen_names.join(", ")
            }
        ));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_DOCS: &str = "# app\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"1\"\n---\n\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: web:1\n      - name: sidecar\n        image: proxy:1\n      initContainers:\n      - name: migrate\n        image: web:1\n";

    #[test]
    fn splits_documents_and_keeps_their_lines() {
        let manifests =
            parse_manifests(Path::new("k8s/app.yaml"), TWO_DOCS).expect("should succeed");
        let found: Vec<_> = manifests
            .iter()
            .map(|m| (m.display_name(), m.location(), m.gvk.group.clone()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "ConfigMap/cfg".to_owned(),
                    "k8s/app.yaml:3".to_owned(),
                    String::new()
                ),
                (
                    "Deployment/web".to_owned(),
                    "k8s/app.yaml:12".to_owned(),
                    "apps".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn yaml_error_names_file_line_and_column() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n";
        let error = parse_manifests(Path::new("k8s/bad.yaml"), text).expect_err("should fail");
        assert_eq!(error.path, Path::new("k8s/bad.yaml"));
        assert!((9..=10).contains(&error.line), "{error}");
        assert!(error.to_string().starts_with("k8s/bad.yaml:"), "{error}");
        assert!(error.message.starts_with("invalid YAML"), "{error}");
    }

    #[test]
    fn missing_kind_and_name_are_errors_at_the_document() {
        let error = parse_manifests(
            Path::new("a.yaml"),
            "---\napiVersion: v1\nmetadata: {name: x}\n",
        )
        .expect_err("should fail");
        assert_eq!(
            (error.line, error.message.as_str()),
            (2, "a manifest document needs `apiVersion` and `kind`")
        );
        let error = parse_manifests(Path::new("a.yaml"), "apiVersion: v1\nkind: Service\n")
            .expect_err("should fail");
        assert_eq!(
            error.to_string(),
            "a.yaml:1:1: Service has no `metadata.name`"
        );
    }

    #[test]
    fn image_overrides_by_all_and_by_name() {
        let mut manifests = parse_manifests(Path::new("a.yaml"), TWO_DOCS).expect("should succeed");
        let per: IndexMap<String, String> = [("sidecar".to_owned(), "proxy:2".to_owned())].into();
        let changes = override_images(&mut manifests, Some("web:2"), &per).expect("should succeed");
        let images: Vec<_> = changes
            .iter()
            .map(|c| format!("{}={}", c.container, c.image))
            .collect();
        assert_eq!(images, ["web=web:2", "sidecar=proxy:2"]);
        let containers = &manifests[1].object.data["spec"]["template"]["spec"];
        assert_eq!(containers["containers"][1]["image"], "proxy:2");
        assert_eq!(containers["initContainers"][0]["image"], "web:1");

        let per: IndexMap<String, String> = [("api".to_owned(), "api:2".to_owned())].into();
        let error = override_images(&mut manifests, None, &per).expect_err("should fail");
        assert!(
            error.contains("no such container (containers: web, sidecar, migrate)"),
            "{error}"
        );
    }
}
