//! `LlmError`: everything that can go wrong between building a prompt and reading a reply.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// An LLM request failed, or the record/replay file could not be used.
#[derive(Debug)]
pub struct LlmError {
    /// The `agents.<name>` entry, when the error belongs to one agent.
    pub agent: Option<String>,
    pub kind: LlmErrorKind,
}

impl LlmError {
    pub fn new(agent: impl Into<String>, kind: LlmErrorKind) -> Self {
        Self {
            agent: Some(agent.into()),
            kind,
        }
    }

    pub fn session(kind: LlmErrorKind) -> Self {
        Self { agent: None, kind }
    }
}

// The kind's message is part of this one, so the source chain continues below the kind.
impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.agent {
            Some(agent) => write!(f, "agent `{agent}`: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for LlmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LlmErrorKind {
    #[error("no API key: set `api_key` on the agent or the `{env}` environment variable")]
    MissingApiKey { env: &'static str },
    #[error("no {what}: set `{field}` on the agent or the `{env}` environment variable")]
    MissingSetting {
        what: &'static str,
        field: &'static str,
        env: &'static str,
    },
    #[error("invalid `{field}`: {message}")]
    InvalidSetting {
        field: &'static str,
        message: String,
    },
    #[error("failed to render `{field}`")]
    RenderSetting {
        field: &'static str,
        #[source]
        source: minijinja::Error,
    },
    #[error("failed to read prompt template `{}`", path.display())]
    ReadPrompt {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to render prompt template `{name}`: {source:#}")]
    RenderPrompt {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("failed to build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("failed to encode the request")]
    EncodeRequest(#[source] serde_json::Error),
    #[error("request timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("failed to reach the provider: {0}")]
    Transport(String),
    #[error("the provider answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("the provider's reply is not a chat completion: {0}")]
    BadResponse(String),
    #[error("the reply has no text (finish reason: {finish_reason})")]
    EmptyReply { finish_reason: String },
    #[error("the model refused: {0}")]
    Refused(String),
    #[error("the reviewer's reply is not a verdict ({reason}); reply: `{excerpt}`")]
    NotAVerdict { reason: String, excerpt: String },
    #[error("token budget exhausted: {used} of {limit} tokens used")]
    BudgetExhausted { used: u64, limit: u64 },
    #[error("the replay has no recorded exchange left for this agent (after {served})")]
    ReplayExhausted { served: usize },
    #[error("replayed failure: {0}")]
    Replayed(String),
    #[error("failed to read replay file `{}`", path.display())]
    ReadReplay {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid replay file `{}` line {line}", path.display())]
    ParseReplay {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to write record file `{}`", path.display())]
    WriteRecord {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
