//! `deploy`: apply manifests to Kubernetes and wait for the rollout.
//!
//! The step renders its settings and the manifest files (the file contents are templates too),
//! refuses a rendering whose values added documents or keys to its template
//! ([`manifest_shape`]), adds the manifests a `render` command (`helm template`, `kustomize
//! build`) writes to stdout, splits them into objects, sets images, resolves kinds through
//! discovery, records in the [`DeployLedger`](crate::cluster::ledger::DeployLedger) what each
//! Deployment, StatefulSet and DaemonSet ran before, server-side applies everything as
//! `agent-orch`, then watches every workload at once (a Job until it completes); the first
//! failure ends the step with the pod's logs, events and conditions as evidence.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indexmap::IndexMap;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DynamicObject, ListParams};

use super::step_log::StepLog;
use super::{StepContext, StepOutcome, StepStatus};
use crate::azure::aks::AksCluster;
use crate::cluster::access::{Cluster, ClusterAccess, RetryPolicy};
use crate::cluster::apply::{self, ResolvedManifest};
use crate::cluster::controller_revision;
use crate::cluster::error::Operation;
use crate::cluster::ledger::{LedgerEntry, PriorRevision};
use crate::cluster::manifest::{self, ImageChange, Manifest};
use crate::cluster::manifest_shape;
use crate::cluster::rollout::{
    RolloutDone, RolloutError, RolloutErrorKind, WaitOptions, wait_for_rollout,
};
use crate::cluster::rollout_status::{TEMPLATE_HASH_LABEL, current_replica_set, revision};
use crate::cluster::workload::WorkloadKind;
use crate::process::{self, CommandSpec, OutputSink};
use crate::workflow::span::Spanned;
use crate::workflow::step_config::deploy::DeployConfig;
use crate::workflow::step_config::shell::Shell;
use crate::workflow::template::{Renderer, Template};

/// How long a running container may stay unready before the rollout counts as failed.
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(120);

/// Renders a template, naming the setting in the error.
fn render(ctx: &StepContext<'_>, setting: &str, template: &Template) -> Result<String, String> {
    ctx.renderer
        .render(template)
        .map_err(|err| format!("failed to render `{setting}`: {}", err.reason()))
}

fn resolve_path(ctx: &StepContext<'_>, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_owned()
    } else {
        ctx.run.workdir.join(path)
    }
}

/// `env.<key>` of the selected environment, when the workflow has one and it sets the key
/// (an undefined value is not an error here).
fn environment_value(ctx: &StepContext<'_>, key: &str) -> Option<String> {
    ctx.renderer
        .render(&Template(Spanned::detached(format!("{{{{ env.{key} }}}}"))))
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Where a deploy step would deploy, for a person to approve before the run starts:
/// `AKS cluster `fleet-aks` (resource group `fleet-rg`), namespace `fleet``. A value only a
/// run can know (an earlier step's output) is shown as written.
pub fn describe_target(config: &DeployConfig, renderer: &Renderer) -> String {
    let show = |template: &Template| {
        renderer
            .render(template)
            .unwrap_or_else(|_| template.source().to_owned())
    };
    let env = |key: &str| {
        renderer
            .render(&Template(Spanned::detached(format!("{{{{ env.{key} }}}}"))))
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let aks = match &config.aks {
        Some(aks) => Some((show(&aks.cluster), show(&aks.resource_group))),
        None if config.kubeconfig.is_none() && config.context.is_none() => {
            env("aks.cluster").zip(env("aks.resource_group"))
        }
        None => None,
    };
    let cluster = match (aks, &config.context, &config.kubeconfig) {
        (Some((name, group)), _, _) => {
            format!("AKS cluster `{name}` (resource group `{group}`)")
        }
        (None, Some(context), _) => format!("kubeconfig context `{}`", show(context)),
        (None, None, Some(path)) => format!("kubeconfig `{}`", show(path)),
        (None, None, None) => env("context").map_or_else(
            || "the current kubeconfig context".to_owned(),
            |context| format!("kubeconfig context `{context}`"),
        ),
    };
    let namespace = config
        .namespace
        .as_ref()
        .map(show)
        .or_else(|| env("namespace"))
        .map_or_else(
            || "the context's namespace".to_owned(),
            |namespace| format!("namespace `{namespace}`"),
        );
    format!("{cluster}, {namespace}")
}

/// The rendered settings and the parsed, image-patched manifests.
struct Prepared {
    access: ClusterAccess,
    namespace: Option<String>,
    manifests: Vec<Manifest>,
    images: Vec<ImageChange>,
}

/// The step's `aks`, else the environment's when the step names no kubeconfig or context.
fn aks_cluster(config: &DeployConfig, ctx: &StepContext<'_>) -> Result<Option<AksCluster>, String> {
    if let Some(aks) = &config.aks {
        if config.kubeconfig.is_some() || config.context.is_some() {
            return Err(
                "`aks` and `kubeconfig`/`context` each say how to reach the cluster: keep one"
                    .to_owned(),
            );
        }
        let subscription = aks
            .subscription
            .as_ref()
            .map(|t| render(ctx, "aks.subscription", t))
            .transpose()?;
        return resolve_aks(
            ctx,
            subscription,
            render(ctx, "aks.resource_group", &aks.resource_group)?,
            render(ctx, "aks.cluster", &aks.cluster)?,
            aks.admin,
        )
        .map(Some);
    }
    if config.kubeconfig.is_some() || config.context.is_some() {
        return Ok(None);
    }
    // `env.aks`: free-form environment values, so each is read (and rendered, as a template)
    // here; `validate` checks their shape. A cluster that renders empty (a pipeline variable
    // not given on a laptop) leaves the kubeconfig in charge.
    let field = |key: &str| -> Result<Option<String>, String> {
        environment_value(ctx, &format!("aks.{key}"))
            .map(|value| {
                ctx.renderer
                    .render(&Template(Spanned::detached(value)))
                    .map_err(|err| format!("failed to render `env.aks.{key}`: {}", err.reason()))
            })
            .transpose()
            .map(|value| value.filter(|v| !v.trim().is_empty()))
    };
    let (Some(resource_group), Some(cluster)) = (field("resource_group")?, field("cluster")?)
    else {
        return Ok(None);
    };
    let admin = field("admin")?.is_some_and(|admin| admin == "true");
    resolve_aks(ctx, field("subscription")?, resource_group, cluster, admin).map(Some)
}

fn resolve_aks(
    ctx: &StepContext<'_>,
    subscription: Option<String>,
    resource_group: String,
    name: String,
    admin: bool,
) -> Result<AksCluster, String> {
    let subscription = subscription
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            ctx.azure
                .connection()
                .and_then(|c| c.subscription_id.clone())
        })
        .ok_or_else(|| {
            format!(
                "AKS cluster `{name}`: no subscription; set `aks.subscription` or use a service connection that has one"
            )
        })?;
    Ok(AksCluster {
        subscription,
        resource_group,
        name,
        admin,
    })
}

async fn prepare(
    config: &DeployConfig,
    ctx: &StepContext<'_>,
    log: &Mutex<StepLog>,
) -> Result<Prepared, String> {
    let aks = aks_cluster(config, ctx)?;
    let context = match &config.context {
        Some(t) => Some(render(ctx, "context", t)?),
        None if aks.is_some() => None,
        None => environment_value(ctx, "context"),
    };
    let kubeconfig = config
        .kubeconfig
        .as_ref()
        .map(|t| render(ctx, "kubeconfig", t).map(|p| resolve_path(ctx, &p)))
        .transpose()?;
    let namespace = match &config.namespace {
        Some(t) => Some(render(ctx, "namespace", t)?),
        None => environment_value(ctx, "namespace"),
    }
    .filter(|ns| !ns.trim().is_empty());

    let mut manifests = Vec::new();
    for (index, template) in config.manifests.iter().enumerate() {
        let shown = render(ctx, &format!("manifests[{index}]"), template)?;
        let path = resolve_path(ctx, &shown);
        let text = std::fs::read_to_string(&path)
            .map_err(|err| format!("failed to read manifest `{shown}`: {err}"))?;
        let template = Template(Spanned::detached(text));
        let rendered = ctx.renderer.render(&template).map_err(|err| {
            format!(
                "failed to render manifest `{shown}`: {shown}:{}: {}",
                err.source.line().unwrap_or(1),
                err.reason()
            )
        })?;
        manifest_shape::check(ctx.renderer, &template, &rendered)
            .map_err(|err| format!("refused manifest `{shown}`: {err}"))?;
        manifests.extend(
            manifest::parse_manifests(Path::new(&shown), &rendered).map_err(|e| e.to_string())?,
        );
    }
    if let Some(command) = &config.render {
        manifests.extend(rendered_manifests(command, ctx, log).await?);
    }
    if config.manifests.is_empty() && config.render.is_none() {
        return Err("nothing to deploy: set `manifests`, `render` or both".to_owned());
    }
    if manifests.is_empty() {
        return Err("the manifests hold no Kubernetes objects".to_owned());
    }
    let image = config
        .image
        .as_ref()
        .map(|t| render(ctx, "image", t))
        .transpose()?;
    let mut per_container = IndexMap::new();
    for (container, template) in &config.images {
        per_container.insert(
            container.clone(),
            render(ctx, &format!("images.{container}"), template)?,
        );
    }
    let images = manifest::override_images(&mut manifests, image.as_deref(), &per_container)?;
    Ok(Prepared {
        access: ClusterAccess {
            kubeconfig,
            context,
            aks,
        },
        namespace,
        manifests,
        images,
    })
}

/// Where a `render` command's manifests are said to come from in messages (`<render>:12`).
const RENDER_SOURCE: &str = "<render>";

/// Runs the `render` command through the process runner (its stderr streamed into the step log,
/// redacted; stopped with the step) and parses its stdout. The stdout file lives next to the
/// step log only while it is read: rendered manifests may hold secrets.
async fn rendered_manifests(
    template: &Template,
    ctx: &StepContext<'_>,
    log: &Mutex<StepLog>,
) -> Result<Vec<Manifest>, String> {
    let command = render(ctx, "render", template)?;
    if let Some(dir) = ctx.log_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|err| format!("failed to create `{}`: {err}", dir.display()))?;
    }
    let stdout = ctx.log_path.with_extension("render.out");
    let spec = CommandSpec::shell(Shell::platform_default(), command.clone())
        .workdir(&ctx.run.workdir)
        .stdout_to(&stdout);
    say(
        log,
        &format!("rendering manifests: {}", ctx.redactor.redact(&command)),
    );
    let sink = OutputSink::new().redact_with(ctx.redactor);
    let result = process::run_command(&spec, sink, &ctx.cancel, ctx.timeout).await;
    let text = std::fs::read_to_string(&stdout);
    let _ = std::fs::remove_file(&stdout);
    let result = result.map_err(|err| format!("`render` could not run: {err}"))?;
    for line in result.tail.lines() {
        say(log, line);
    }
    if !result.success() {
        let how = if result.timed_out {
            "timed out".to_owned()
        } else if result.cancelled {
            "was cancelled".to_owned()
        } else {
            result.exit.map_or_else(
                || "ended with an unknown status".to_owned(),
                |exit| format!("failed ({exit})"),
            )
        };
        let last = result
            .tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        return Err(format!("`render` {how}{last}"));
    }
    let text = text.map_err(|err| format!("failed to read the output of `render`: {err}"))?;
    let manifests =
        manifest::parse_manifests(Path::new(RENDER_SOURCE), &text).map_err(|e| e.to_string())?;
    say(log, &format!("`render` wrote {} objects", manifests.len()));
    Ok(manifests)
}

/// What was live before the apply, for the ledger.
async fn prior_revision(
    cluster: &Cluster,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
) -> Result<Option<PriorRevision>, String> {
    if kind.has_controller_revisions() {
        return prior_controller_revision(cluster, kind, namespace, name).await;
    }
    let Some(deployment) = apply::current_deployment(cluster, namespace, name)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let api: Api<ReplicaSet> = Api::namespaced(cluster.client().clone(), namespace);
    let operation = Operation::new("list", "replicasets.apps").namespace(namespace);
    let selector = crate::cluster::rollout_status::label_selector(&deployment);
    let params = ListParams::default().labels(&selector);
    let sets = cluster
        .call(operation, || api.list(&params))
        .await
        .map_err(|e| e.to_string())?;
    let template_hash = current_replica_set(&deployment, &sets.items)
        .and_then(|rs| rs.metadata.labels.as_ref())
        .and_then(|l| l.get(TEMPLATE_HASH_LABEL))
        .cloned();
    Ok(Some(PriorRevision {
        revision: revision(&deployment.metadata),
        template_hash,
        template: serde_json::to_value(deployment.spec.map(|s| s.template)).unwrap_or_default(),
    }))
}

/// A StatefulSet's or DaemonSet's template and current ControllerRevision before the apply.
async fn prior_controller_revision(
    cluster: &Cluster,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
) -> Result<Option<PriorRevision>, String> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(cluster.client().clone(), namespace, &kind.api_resource());
    let operation = Operation::new("get", kind.resource_name())
        .namespace(namespace)
        .name(name);
    let Some(object) = cluster
        .call(operation, || api.get_opt(name))
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let object = serde_json::to_value(&object).unwrap_or_default();
    let revisions = controller_revision::revisions(cluster, &object)
        .await
        .map_err(|e| e.to_string())?;
    let current = controller_revision::current(kind, &object, &revisions);
    Ok(Some(PriorRevision {
        revision: current.map(|r| r.number),
        template_hash: current.map(|r| r.name.clone()),
        template: object
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_default(),
    }))
}

/// For `--dry-run`: the manifests.
pub fn describe(config: &DeployConfig, ctx: &StepContext<'_>) -> String {
    let manifests: Vec<String> = config
        .manifests
        .iter()
        .map(|manifest| super::rendered_line(ctx, manifest))
        .collect();
    format!("would apply {}", manifests.join(", "))
}

pub async fn run(config: &DeployConfig, ctx: &StepContext<'_>) -> StepOutcome {
    let log = Mutex::new(StepLog::open(&ctx.log_path, ctx.echo));
    let mut outcome = tokio::select! {
        outcome = deploy(config, ctx, &log) => outcome,
        () = ctx.cancel.cancelled() => StepOutcome::new(StepStatus::Cancelled, "cancelled"),
    };
    let mut log = log
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    log.line(&outcome.message);
    outcome.output_tail = log.tail();
    outcome.log_path = Some(ctx.log_path.clone());
    outcome
}

fn say(log: &Mutex<StepLog>, text: &str) {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .line(text);
}

async fn deploy(config: &DeployConfig, ctx: &StepContext<'_>, log: &Mutex<StepLog>) -> StepOutcome {
    let started = Instant::now();
    let deadline = ctx.timeout.map(|t| tokio::time::Instant::now() + t);
    let prepared = match prepare(config, ctx, log).await {
        Ok(prepared) => prepared,
        Err(message) => return StepOutcome::failed(message),
    };
    let cluster = match Cluster::connect(&prepared.access, RetryPolicy::default(), ctx.azure).await
    {
        Ok(cluster) => cluster,
        Err(error) => return StepOutcome::failed(error.to_string()),
    };
    let namespace = prepared
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace().to_owned());
    say(
        log,
        &format!("deploying to {} namespace `{namespace}`", cluster.server()),
    );

    let resolved = match apply::resolve(&cluster, prepared.manifests, &namespace).await {
        Ok(resolved) => resolved,
        Err(error) => return StepOutcome::failed(error.to_string()),
    };
    let workloads: Vec<(WorkloadKind, &ResolvedManifest)> = resolved
        .iter()
        .filter_map(|r| WorkloadKind::of(&r.manifest.gvk).map(|kind| (kind, r)))
        .collect();
    for (kind, item) in workloads.iter().filter(|(kind, _)| kind.rolls_out()) {
        let name = item.manifest.name();
        let before = match prior_revision(&cluster, *kind, &namespace, name).await {
            Ok(before) => before,
            Err(message) => {
                return StepOutcome::failed(format!(
                    "{}: {message}; nothing was applied",
                    item.manifest.location()
                ));
            }
        };
        say(
            log,
            &match &before {
                Some(p) => format!(
                    "{kind} `{name}` is at revision {} before this deploy",
                    p.revision.map_or_else(|| "?".to_owned(), |r| r.to_string())
                ),
                None => format!("{kind} `{name}` does not exist yet"),
            },
        );
        let entry = LedgerEntry {
            step_id: ctx.step.id.value.clone(),
            access: prepared.access.clone(),
            kind: *kind,
            namespace: namespace.clone(),
            name: name.to_owned(),
            before,
            deployed_revision: None,
            images: Vec::new(),
            rolled_back: false,
        };
        if let Err(error) = ctx.deployments.record_before(entry) {
            say(log, &format!("warning: {error}"));
        }
    }

    let mut on_applied = |item: &ResolvedManifest| {
        say(
            log,
            &format!(
                "applied {} ({})",
                item.manifest.display_name(),
                item.manifest.location()
            ),
        );
    };
    if let Err(error) = apply::apply_all(&cluster, &resolved, &mut on_applied).await {
        return StepOutcome::failed(error.to_string());
    }
    let image_list: Vec<String> = prepared
        .images
        .iter()
        .map(|c| format!("{}={}", c.container, c.image))
        .collect();
    let mut outputs = IndexMap::new();
    outputs.insert("images".to_owned(), image_list.join(","));
    outputs.insert(
        "deployments".to_owned(),
        workloads
            .iter()
            .filter(|(kind, _)| *kind == WorkloadKind::Deployment)
            .map(|(_, d)| d.manifest.name())
            .collect::<Vec<_>>()
            .join(","),
    );
    outputs.insert(
        "workloads".to_owned(),
        workloads
            .iter()
            .map(|(_, w)| w.manifest.display_name())
            .collect::<Vec<_>>()
            .join(","),
    );
    if !config.wait || workloads.is_empty() {
        outputs.insert("revision".to_owned(), String::new());
        let mut outcome = StepOutcome::passed(format!(
            "applied {} objects without waiting for rollouts",
            resolved.len()
        ));
        outcome.outputs = outputs;
        return outcome;
    }

    // Every rollout at once: the first failure stops the others.
    let options = WaitOptions {
        readiness_timeout: Some(
            config
                .readiness_timeout
                .map_or(DEFAULT_READINESS_TIMEOUT, |d| d.0),
        ),
        deadline,
        cancel: ctx.cancel.child_token(),
    };
    let mut waits: FuturesUnordered<_> = workloads
        .iter()
        .map(|(kind, item)| {
            let kind = *kind;
            let name = item.manifest.name().to_owned();
            let cluster = &cluster;
            let namespace = namespace.as_str();
            let options = &options;
            async move {
                let mut progress = |text: &str| say(log, text);
                let result =
                    wait_for_rollout(cluster, kind, namespace, &name, options, &mut progress).await;
                (kind, name, result)
            }
        })
        .collect();
    let mut done: Vec<(WorkloadKind, String, RolloutDone)> = Vec::new();
    let mut failure: Option<RolloutError> = None;
    while let Some((kind, name, result)) = waits.next().await {
        match result {
            Ok(rollout) => {
                let revision = rollout
                    .revision
                    .map_or_else(|| "?".to_owned(), |r| r.to_string());
                say(
                    log,
                    &if kind.rolls_out() {
                        format!(
                            "{kind} `{name}` rolled out to revision {revision} in {:.1?}",
                            rollout.elapsed
                        )
                    } else {
                        format!("{kind} `{name}` completed in {:.1?}", rollout.elapsed)
                    },
                );
                if kind.rolls_out() {
                    let images: Vec<String> = prepared
                        .images
                        .iter()
                        .filter(|c| c.workload == format!("{}/{name}", kind.as_str()))
                        .map(|c| format!("{}={}", c.container, c.image))
                        .collect();
                    if let Err(error) = ctx.deployments.record_deployed(
                        kind,
                        &namespace,
                        &name,
                        rollout.revision,
                        images,
                    ) {
                        say(log, &format!("warning: {error}"));
                    }
                }
                done.push((kind, name, rollout));
            }
            Err(error)
                if matches!(error.kind, RolloutErrorKind::Cancelled) && failure.is_some() => {}
            Err(error) => {
                options.cancel.cancel();
                failure.get_or_insert(error);
            }
        }
    }
    drop(waits);
    if let Some(error) = failure {
        let status = match error.kind {
            RolloutErrorKind::Cancelled => StepStatus::Cancelled,
            _ => StepStatus::Failed,
        };
        let mut outcome = StepOutcome::new(status, error.to_string());
        if let Some(failure) = error.failure() {
            outputs.insert(
                "failure_reason".to_owned(),
                failure.reason.as_str().to_owned(),
            );
        }
        outcome.outputs = outputs;
        outcome.evidence = error.evidence;
        return outcome;
    }
    let number = |r: &RolloutDone| r.revision.map(|r| r.to_string()).unwrap_or_default();
    let revision = match done.as_slice() {
        [(_, _, only)] => number(only),
        many => many
            .iter()
            .map(|(kind, name, r)| format!("{}={}", kind.display_name(name), number(r)))
            .collect::<Vec<_>>()
            .join(","),
    };
    outputs.insert("revision".to_owned(), revision);
    let slowest = done
        .iter()
        .map(|(_, _, r)| r.elapsed)
        .max()
        .unwrap_or_default();
    outputs.insert(
        "rollout_seconds".to_owned(),
        format!("{:.2}", slowest.as_secs_f64()),
    );
    let items: Vec<String> = done
        .iter()
        .map(|(kind, name, r)| {
            if kind.rolls_out() {
                format!("{} (revision {})", kind.display_name(name), number(r))
            } else {
                format!("{} (completed)", kind.display_name(name))
            }
        })
        .collect();
    let mut outcome = StepOutcome::passed(format!(
        "rolled out {} in {:.1?}",
        items.join(", "),
        started.elapsed()
    ));
    outcome.outputs = outputs;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(config: &str, context: serde_json::Value) -> String {
        let config: DeployConfig = serde_saphyr::from_str(config).unwrap();
        describe_target(&config, &Renderer::new(context))
    }

    #[test]
    fn targets_name_the_cluster_and_namespace_a_person_approves() {
        let env = serde_json::json!({
            "env": {"namespace": "fleet", "aks": {"resource_group": "fleet-rg", "cluster": "fleet-aks"}},
            "vars": {"cluster": "other-aks"},
        });
        assert_eq!(
            target("manifests: [a.yaml]", env.clone()),
            "AKS cluster `fleet-aks` (resource group `fleet-rg`), namespace `fleet`"
        );
        assert_eq!(
            target(
                "manifests: [a.yaml]\nnamespace: web\naks: {resource_group: rg, cluster: \"{{ vars.cluster }}\"}",
                env.clone()
            ),
            "AKS cluster `other-aks` (resource group `rg`), namespace `web`"
        );
        assert_eq!(
            target("manifests: [a.yaml]\ncontext: kind-dev", env),
            "kubeconfig context `kind-dev`, namespace `fleet`"
        );
        assert_eq!(
            target(
                "manifests: [a.yaml]\nnamespace: \"{{ steps.build.outputs.ns }}\"",
                serde_json::json!({"env": {}})
            ),
            "the current kubeconfig context, namespace `{{ steps.build.outputs.ns }}`"
        );
    }
}
