//! The workflow as the engine sees it: typed, with every node's span kept for diagnostics.
//!
//! Step kinds are declared in `step_kind` (re-exported here as [`StepKind`]); their settings
//! (`GateConfig`, `VerifyConfig`, ...) live in `step_config`, one file per kind, and run in
//! `steps`; adding a step kind is described in `crate::workflow`'s module docs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::duration::DurationSpec;
use super::expand::TemplateScope;
use super::node::Node;
use super::span::{Span, Spanned};
pub use super::step_kind::StepKind;
use super::template::Template;

/// A loaded, template-expanded workflow.
#[derive(Clone, Debug)]
pub struct Workflow {
    /// The workflow file, as given.
    pub path: PathBuf,
    /// The template files it includes, as found (directly or through other templates).
    pub templates: Vec<PathBuf>,
    /// The nearest ancestor of the workflow file containing `.git` (else the current directory).
    pub project_root: PathBuf,
    /// The environment chosen with `--env` (or the only one declared).
    pub environment: Option<String>,
    pub name: Spanned<String>,
    pub description: Option<String>,
    /// Free-form per-environment values, exposed to templates as `env`.
    pub environments: Spanned<IndexMap<String, Environment>>,
    /// Free-form values, exposed to templates as `vars`.
    pub vars: IndexMap<String, serde_json::Value>,
    pub secrets: Option<SecretsConfig>,
    pub agents: IndexMap<String, AgentConfig>,
    pub safety: Safety,
    pub steps: Vec<Step>,
    pub repair: Vec<Step>,
    pub on_give_up: Vec<Step>,
    /// Who hears how the run ended.
    pub notify: Vec<NotifyTarget>,
    /// Steps run once after the loop succeeded (deliver the fix: `pull_request`).
    pub on_success: Vec<Step>,
    /// Values rendered after a successful run: `outputs.json`, and pipeline output variables.
    pub outputs: IndexMap<String, Template>,
    /// The workflow as written, with templates inlined: what `plan` shows.
    pub expanded: ExpandedWorkflow,
}

/// The workflow file's data with templates inlined, in written order; serializes as YAML/JSON.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct ExpandedWorkflow(pub(crate) Node);

impl Workflow {
    /// The directory of the workflow file; relative paths in steps start here.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    /// The selected environment's name and values.
    pub fn environment_values(&self) -> Option<(&str, &Environment)> {
        let name = self.environment.as_deref()?;
        self.environments.value.get(name).map(|env| (name, env))
    }

    /// Every step of every phase, in declaration order.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .chain(&self.repair)
            .chain(&self.on_give_up)
            .chain(&self.on_success)
    }
}

/// One environment's values (`namespace`, `url`, `require_approval`, or anything else).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Environment(pub IndexMap<String, serde_json::Value>);

impl Environment {
    pub fn require_approval(&self) -> bool {
        self.0
            .get("require_approval")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

/// A place to tell a team how a run ended: exactly one of `teams`, `slack` or `webhook`, each
/// a URL (templated, so it can come from `secrets`), and the endings that are worth a message.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// A Microsoft Teams workflow webhook ("Send webhook alerts to a channel"): an Adaptive Card.
    #[serde(default)]
    pub teams: Option<Template>,
    /// A Slack incoming webhook.
    #[serde(default)]
    pub slack: Option<Template>,
    /// Any URL that takes a JSON POST: the run's ending as a JSON object.
    #[serde(default)]
    pub webhook: Option<Template>,
    /// Which endings to send (default: `give_up`, `rollback`, `pull_request`).
    #[serde(default = "NotifyEvent::defaults")]
    pub on: Vec<NotifyEvent>,
}

/// An ending of a run worth a message. One run can have several (gave up and rolled back);
/// a target gets one message if any of its events happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// Every required step passed.
    Success,
    /// The run failed, gave up or was interrupted.
    GiveUp,
    /// A rollback step restored what the run had deployed.
    Rollback,
    /// A `pull_request` step opened or updated a pull request.
    PullRequest,
}

impl NotifyEvent {
    fn defaults() -> Vec<NotifyEvent> {
        vec![
            NotifyEvent::GiveUp,
            NotifyEvent::Rollback,
            NotifyEvent::PullRequest,
        ]
    }
}

/// Secrets fetched from Azure Key Vault before any step runs.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Key Vault name (`fleet-keyvault-prod`) or URL.
    pub vault: Spanned<String>,
    /// Secret names; each is available to templates as `secrets.<name>` (dashes become `_`).
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
}

/// An LLM agent that fix and review steps refer to by name.
///
/// Unset connection settings fall back to the usual environment variables: `OPENAI_API_KEY`
/// and `OPENAI_BASE_URL` (OpenAI and compatible servers), `AZURE_OPENAI_ENDPOINT`,
/// `AZURE_OPENAI_API_KEY` and `OPENAI_API_VERSION` (Azure OpenAI).
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The model name; for Azure OpenAI also the default deployment name.
    pub model: Spanned<String>,
    #[serde(default)]
    pub provider: ProviderKind,
    /// The API base URL (`http://localhost:11434/v1` for Ollama); for Azure OpenAI the
    /// resource endpoint (`https://<resource>.openai.azure.com`).
    #[serde(default)]
    pub base_url: Option<Template>,
    /// The API key, usually `{{ secrets.openai_api_key }}`; optional for compatible servers.
    #[serde(default)]
    pub api_key: Option<Template>,
    /// Azure OpenAI deployment name (default: `model`).
    #[serde(default)]
    pub deployment: Option<Template>,
    /// Azure OpenAI `api-version` query parameter.
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Upper bound on the tokens of one reply.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Time limit of one HTTP attempt (`2m`; default 2 minutes). Timeouts are not retried.
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    /// Extra attempts after a rate limit (429), a server error (5xx) or a refused connection.
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// Token budget of the context sent with one request (logs, sources, earlier patches).
    #[serde(default)]
    pub max_context_tokens: Option<u32>,
    /// Ask for JSON-schema structured replies (default: on for OpenAI and Azure, off for
    /// compatible servers, which often do not support it).
    #[serde(default)]
    pub structured_output: Option<bool>,
    /// How the fixer writes its edits (default `auto`: asks in the format the model family is
    /// trained on, and accepts a reply in any format).
    #[serde(default)]
    pub edit_format: EditFormatSetting,
    /// A minijinja prompt template, relative to the workflow file.
    #[serde(default)]
    pub prompt: Option<Spanned<String>>,
    /// Where `prompt` was found when the workflow was loaded: like a `template:` file,
    /// relative to the workflow file, the project root or `<root>/templates/`.
    #[serde(skip)]
    #[schemars(skip)]
    pub prompt_path: Option<PathBuf>,
}

/// Which API an agent talks to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ProviderKind {
    /// api.openai.com, or `base_url`.
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    /// Azure OpenAI: endpoint, deployment and api-version.
    #[serde(rename = "azure")]
    Azure,
    /// Any OpenAI-compatible server (Ollama, vLLM, LiteLLM) at `base_url`.
    #[serde(rename = "compatible")]
    Compatible,
}

/// The edit format a fixer is asked for. Every format goes through the same policy and
/// applier; a pinned format refuses a reply in another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EditFormatSetting {
    /// V4A for OpenAI's GPT-4.1, GPT-5, o-series and Codex models, SEARCH/REPLACE for Claude,
    /// Gemini and open models, a unified diff otherwise; any format is accepted in the reply.
    #[default]
    Auto,
    /// `--- a/path` / `+++ b/path` / `@@` hunks.
    Unified,
    /// OpenAI's `apply_patch` format: `*** Begin Patch` ... `*** End Patch`.
    V4a,
    /// `<<<<<<< SEARCH` / `=======` / `>>>>>>> REPLACE` blocks after a path line.
    SearchReplace,
    /// A path line, then the complete new file in a fenced block (small files only).
    WholeFile,
}

/// Limits that stop the loop safely. No model can change them.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Safety {
    pub max_iterations: u32,
    /// Stop when the same failure fingerprint has been seen this many times.
    pub no_progress_threshold: u32,
    /// Globs of files a patch may never delete, rename away, empty or replace wholesale
    /// (matched case-insensitively).
    pub never_delete: Vec<Spanned<String>>,
    /// Patterns that need explicit human approval when a patch adds them to a file (or
    /// uncomments them, or renames a file holding them into place): plain text, or a regular
    /// expression after `re:`; both ignore case. Added to the built-in list (`rm -rf`,
    /// `DROP TABLE`, ...).
    pub require_confirmation: Vec<Spanned<String>>,
    /// Globs of files whose checks a patch may not weaken: no deleting or emptying them, no
    /// removing or changing an assertion, no new skip. Default: common test paths
    /// (`tests/**`, `**/*_test.*`, ...); the files the workflow's commands name are always
    /// protected. `[]` leaves only those.
    pub protect: Option<Vec<Spanned<String>>>,
    pub budget: Budget,
}

impl Default for Safety {
    fn default() -> Self {
        Self {
            max_iterations: 5,
            no_progress_threshold: 2,
            never_delete: Vec::new(),
            require_confirmation: Vec::new(),
            protect: None,
            budget: Budget::default(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Total LLM tokens (prompt + completion) a run may use.
    pub tokens: Option<u64>,
    /// Wall-clock time for the whole run, repairs included (`30m`).
    pub wall_time: Option<DurationSpec>,
}

/// Which list a step was declared in; decides when it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Steps,
    Repair,
    OnGiveUp,
    OnSuccess,
}

impl Phase {
    /// Every phase, in the order their lists are read from the file.
    pub const ALL: [Phase; 4] = [
        Phase::Steps,
        Phase::Repair,
        Phase::OnGiveUp,
        Phase::OnSuccess,
    ];

    /// The YAML list the phase's steps come from: `steps`, `repair`, `on_give_up`, `on_success`.
    pub fn key(self) -> &'static str {
        match self {
            Phase::Steps => "steps",
            Phase::Repair => "repair",
            Phase::OnGiveUp => "on_give_up",
            Phase::OnSuccess => "on_success",
        }
    }
}

/// One step: the keys every kind shares, plus exactly one kind.
#[derive(Clone, Debug)]
pub struct Step {
    pub id: Spanned<String>,
    pub name: Option<String>,
    pub kind: StepKind,
    /// A failed step with `required: false` is a warning, not a failure.
    pub required: bool,
    /// A minijinja expression; the step is skipped when it is false.
    pub condition: Option<Template>,
    pub timeout: Option<DurationSpec>,
    /// Extra attempts of the whole step when it fails.
    pub retries: u32,
    /// The step's node in the file it was written in (a template file, if included).
    pub span: Span,
    /// The template file the step came from, with the `parameters` bound at its include site.
    pub template: Option<Arc<TemplateScope>>,
}

impl Step {
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id.value)
    }
}
