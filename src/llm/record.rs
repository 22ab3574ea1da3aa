//! Record and replay: every LLM exchange of a run as one JSON line
//! (`{agent, request, response | error, usage}`), written as it happens with `--record`, and
//! served back in order, offline, with `--replay`.
//!
//! Requests are recorded after redaction, exactly as they were sent. Replay serves each agent's
//! exchanges in the order they were recorded and does not require the new request to match the
//! recorded one: a laptop re-run of a pipeline's steps differs in timestamps and durations.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::error::LlmErrorKind;
use super::usage::Usage;

/// One request and what came back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub agent: String,
    /// The chat-completions request body as sent (redacted).
    pub request: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RecordedReply>,
    /// Set instead of `response` when the exchange failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The provider refused the JSON-schema response format: the agent asked again without
    /// it, and a replay does the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub response_format_refused: bool,
    #[serde(default)]
    pub usage: Usage,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedReply {
    pub content: String,
    pub model: String,
    pub finish_reason: String,
}

/// Appends exchanges to a JSONL file, one flushed line each, so a crashed run keeps its record.
#[derive(Debug)]
pub(crate) struct Recorder {
    path: PathBuf,
    file: Mutex<File>,
}

impl Recorder {
    pub(crate) fn create(path: &Path) -> Result<Self, LlmErrorKind> {
        let file = File::create(path).map_err(|source| LlmErrorKind::WriteRecord {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    pub(crate) fn write(&self, exchange: &Exchange) -> Result<(), LlmErrorKind> {
        let mut line =
            serde_json::to_string(exchange).map_err(|err| LlmErrorKind::WriteRecord {
                path: self.path.clone(),
                source: std::io::Error::other(err),
            })?;
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(line.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|source| LlmErrorKind::WriteRecord {
                path: self.path.clone(),
                source,
            })
    }
}

/// Serves recorded exchanges back, per agent, in recorded order.
#[derive(Debug)]
pub(crate) struct Replayer {
    queues: Mutex<HashMap<String, (usize, VecDeque<Exchange>)>>,
}

impl Replayer {
    pub(crate) fn open(path: &Path) -> Result<Self, LlmErrorKind> {
        let read_error = |source| LlmErrorKind::ReadReplay {
            path: path.to_owned(),
            source,
        };
        let reader = BufReader::new(File::open(path).map_err(read_error)?);
        let mut queues: HashMap<String, (usize, VecDeque<Exchange>)> = HashMap::new();
        for (index, line) in reader.lines().enumerate() {
            let line = line.map_err(read_error)?;
            if line.trim().is_empty() {
                continue;
            }
            let exchange: Exchange =
                serde_json::from_str(&line).map_err(|source| LlmErrorKind::ParseReplay {
                    path: path.to_owned(),
                    line: index + 1,
                    source,
                })?;
            queues
                .entry(exchange.agent.clone())
                .or_default()
                .1
                .push_back(exchange);
        }
        Ok(Self {
            queues: Mutex::new(queues),
        })
    }

    /// The next recorded exchange of `agent`.
    pub(crate) fn next(&self, agent: &str) -> Result<Exchange, LlmErrorKind> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let (served, queue) = queues.entry(agent.to_owned()).or_default();
        let exchange = queue
            .pop_front()
            .ok_or(LlmErrorKind::ReplayExhausted { served: *served })?;
        *served += 1;
        Ok(exchange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(agent: &str, content: &str) -> Exchange {
        Exchange {
            agent: agent.to_owned(),
            request: serde_json::json!({"model": "m"}),
            response: Some(RecordedReply {
                content: content.to_owned(),
                model: "m".to_owned(),
                finish_reason: "stop".to_owned(),
            }),
            error: None,
            response_format_refused: false,
            usage: Usage::default(),
        }
    }

    #[test]
    fn replays_per_agent_in_recorded_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("run.jsonl");
        let recorder = Recorder::create(&path).unwrap_or_else(|e| panic!("{e}"));
        for (agent, content) in [("fixer", "f1"), ("reviewer", "r1"), ("fixer", "f2")] {
            recorder
                .write(&exchange(agent, content))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let replayer = Replayer::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let content = |agent: &str| {
            replayer
                .next(agent)
                .ok()
                .and_then(|e| e.response)
                .map(|r| r.content)
        };
        assert_eq!(content("fixer").as_deref(), Some("f1"));
        assert_eq!(content("fixer").as_deref(), Some("f2"));
        assert_eq!(content("reviewer").as_deref(), Some("r1"));
        assert!(matches!(
            replayer.next("fixer"),
            Err(LlmErrorKind::ReplayExhausted { served: 2 })
        ));
    }

    #[test]
    fn a_broken_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "\n{not json}\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            Replayer::open(&path),
            Err(LlmErrorKind::ParseReplay { line: 2, .. })
        ));
    }
}
