//! `audit.jsonl`: every event, one JSON object a line, chained by hashes so that editing,
//! removing or reordering a line is detectable.
//!
//! Each line is the event's own JSON (`{"event": "step_finished", ...}`) with three fields
//! in front: `seq` (1, 2, ...), `ts` (RFC 3339, UTC, milliseconds) and `prev_sha256`, the
//! hex SHA-256 of the previous line's bytes (without its newline); the first line's is
//! [`GENESIS`]. Agent decisions (prompts, responses, verdicts, patches) arrive as
//! `Event::Decision` and land here with everything they carry. [`verify_chain`] checks a file.
//!
//! The chain alone stops casual edits; someone who rewrites every later line defeats it. The
//! hash of the last line ([`AuditLog::head`]) is what to record outside the artifacts folder
//! (the pipeline log, a build tag) to make the whole file tamper-evident.
//!
//! Lines go straight to the file, unbuffered, one write each, so a crash keeps every line
//! written before it.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Reporter;
use crate::engine::events::Event;

/// `prev_sha256` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub struct AuditLog {
    file: File,
    seq: u64,
    /// The hash of the last line written, shared with whoever asked for [`AuditLog::head`].
    prev_sha256: Arc<Mutex<String>>,
}

/// A live view of an audit log's head: the SHA-256 of its last line ([`GENESIS`] while empty).
#[derive(Clone, Debug)]
pub struct AuditHead(Arc<Mutex<String>>);

impl AuditHead {
    pub fn sha256(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[derive(Serialize)]
struct AuditLine<'a> {
    seq: u64,
    ts: String,
    prev_sha256: &'a str,
    #[serde(flatten)]
    event: &'a Event,
}

impl AuditLog {
    /// Creates (or truncates) the audit file.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::create(path)?,
            seq: 0,
            prev_sha256: Arc::new(Mutex::new(GENESIS.to_owned())),
        })
    }

    /// The chain's head, readable after the log has been handed to [`super::Reporters`].
    pub fn head(&self) -> AuditHead {
        AuditHead(Arc::clone(&self.prev_sha256))
    }
}

impl Reporter for AuditLog {
    fn name(&self) -> &str {
        "audit.jsonl"
    }

    fn on_event(&mut self, event: &Event) -> io::Result<()> {
        let mut prev_sha256 = self
            .prev_sha256
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let line = AuditLine {
            seq: self.seq + 1,
            ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            prev_sha256: &prev_sha256,
            event,
        };
        let mut bytes = serde_json::to_vec(&line)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        bytes.push(b'\n');
        self.file.write_all(&bytes)?;
        self.seq += 1;
        *prev_sha256 = sha256;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// Checks an audit file's chain: every line is a JSON object whose `seq` counts up from 1
/// and whose `prev_sha256` is the hash of the line before. Returns the number of lines and
/// the last line's hash (the chain's head, worth recording somewhere else).
pub fn verify_chain(path: &Path) -> Result<(u64, String), AuditChainError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuditChainError {
        path: path.to_owned(),
        line: 0,
        kind: AuditChainErrorKind::Read(source),
    })?;
    let error = |line: u64, kind| AuditChainError {
        path: path.to_owned(),
        line,
        kind,
    };
    let mut prev_sha256 = GENESIS.to_owned();
    let mut count = 0;
    for text_line in text.lines() {
        count += 1;
        let value: serde_json::Value = serde_json::from_str(text_line)
            .map_err(|source| error(count, AuditChainErrorKind::Json(source)))?;
        let seq = value.get("seq").and_then(serde_json::Value::as_u64);
        if seq != Some(count) {
            return Err(error(count, AuditChainErrorKind::Sequence { found: seq }));
        }
        let recorded = value.get("prev_sha256").and_then(serde_json::Value::as_str);
        if recorded != Some(prev_sha256.as_str()) {
            return Err(error(count, AuditChainErrorKind::BrokenChain));
        }
        prev_sha256 = hex::encode(Sha256::digest(text_line.as_bytes()));
    }
    Ok((count, prev_sha256))
}

#[derive(Debug, thiserror::Error)]
#[error("audit log `{}` does not verify at line {line}", path.display())]
pub struct AuditChainError {
    pub path: PathBuf,
    /// 1-based; 0 when the file could not be read at all.
    pub line: u64,
    #[source]
    pub kind: AuditChainErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditChainErrorKind {
    #[error("failed to read the file")]
    Read(#[source] io::Error),
    #[error("line is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("expected the next sequence number, found {found:?}")]
    Sequence { found: Option<u64> },
    #[error("`prev_sha256` does not match the hash of the previous line")]
    BrokenChain,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_events::two_iteration_run;

    fn write_log(dir: &Path) -> PathBuf {
        let path = dir.join("audit.jsonl");
        let mut audit = AuditLog::create(&path).unwrap();
        let head = audit.head();
        assert_eq!(head.sha256(), GENESIS);
        for event in two_iteration_run() {
            audit.on_event(&event).unwrap();
        }
        audit.finish().unwrap();
        assert_eq!(head.sha256(), verify_chain(&path).unwrap().1);
        path
    }

    #[test]
    fn every_event_is_a_json_line_with_seq_ts_and_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), two_iteration_run().len());
        assert_eq!(lines[0]["seq"], 1);
        assert_eq!(lines[0]["prev_sha256"], GENESIS);
        assert_eq!(lines[0]["event"], "run_started");
        assert_eq!(lines[0]["run_id"], "run-1");
        assert!(
            humantime::parse_rfc3339(lines[0]["ts"].as_str().unwrap()).is_ok(),
            "{}",
            lines[0]["ts"]
        );
        let decision = lines
            .iter()
            .find(|line| line["event"] == "decision")
            .unwrap();
        assert_eq!(decision["kind"], "patch_proposed");
        assert_eq!(decision["detail"]["tokens"]["prompt"], 1200);
        let test_failure = &lines[5];
        assert_eq!(test_failure["event"], "step_finished");
        assert_eq!(test_failure["step_id"], "test");
        assert_eq!(test_failure["outcome"]["status"], "failed");
        assert_eq!(test_failure["duration"], 1.2);

        let (count, head) = verify_chain(&path).unwrap();
        assert_eq!(count, lines.len() as u64);
        let last_line = text.lines().last().unwrap();
        assert_eq!(head, hex::encode(Sha256::digest(last_line.as_bytes())));
    }

    #[test]
    fn lines_are_on_disk_before_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut audit = AuditLog::create(&path).unwrap();
        for event in &two_iteration_run()[..3] {
            audit.on_event(event).unwrap();
        }
        // Dropped without `finish`, as in a crash.
        drop(audit);
        assert_eq!(verify_chain(&path).unwrap().0, 3);
    }

    #[test]
    fn an_edited_line_breaks_the_chain_at_the_next_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        let tampered = text.replacen("exit code 2", "exit code 0", 1);
        assert_ne!(tampered, text);
        std::fs::write(&path, tampered).unwrap();
        let error = verify_chain(&path).unwrap_err();
        assert_eq!(error.line, 7);
        assert!(matches!(error.kind, AuditChainErrorKind::BrokenChain));
    }

    #[test]
    fn a_removed_line_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        let without_third: Vec<&str> = text
            .lines()
            .enumerate()
            .filter(|(index, _)| *index != 2)
            .map(|(_, line)| line)
            .collect();
        std::fs::write(&path, without_third.join("\n")).unwrap();
        let error = verify_chain(&path).unwrap_err();
        assert_eq!(error.line, 3);
        assert!(matches!(
            error.kind,
            AuditChainErrorKind::Sequence { found: Some(4) }
        ));
    }
}
