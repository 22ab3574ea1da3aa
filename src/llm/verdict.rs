//! The reviewer's verdict and how it is read from a reply: strict JSON when the provider
//! honours the schema, JSON inside fences or prose otherwise. Anything that is not clearly a
//! verdict is an error, never an approval.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub approved: bool,
    pub reason: String,
    pub risk: Risk,
    /// What the fixer should do instead; fed into the next fix attempt after a rejection.
    pub suggestion: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

/// The JSON schema sent as the structured-output response format.
pub fn verdict_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "approved": {"type": "boolean", "description": "true only if the patch should be applied"},
            "reason": {"type": "string", "description": "why, in one or two sentences"},
            "risk": {"type": "string", "enum": ["low", "medium", "high"]},
            "suggestion": {
                "type": ["string", "null"],
                "description": "when rejecting: what the next fix should do instead"
            }
        },
        "required": ["approved", "reason", "risk", "suggestion"],
        "additionalProperties": false
    })
}

/// Why a reply is not a verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    #[error("no JSON object with an `approved` field")]
    NoVerdict,
    #[error("`approved` is {0}, not true or false")]
    BadApproved(String),
    #[error("the reply holds verdicts that disagree")]
    Contradictory,
}

/// Reads a verdict from a reviewer reply.
pub fn parse_verdict(reply: &str) -> Result<Verdict, VerdictError> {
    let mut found: Option<Verdict> = None;
    let mut first_error = None;
    for candidate in json_candidates(reply) {
        let Some(object) = candidate.as_object() else {
            continue;
        };
        let Some(approved) = object.get("approved").or_else(|| object.get("approve")) else {
            continue;
        };
        let verdict = match read_approved(approved) {
            Ok(approved) => Verdict {
                approved,
                reason: string_field(object.get("reason")).unwrap_or_default(),
                risk: read_risk(object.get("risk")),
                suggestion: string_field(object.get("suggestion")),
            },
            Err(err) => {
                first_error.get_or_insert(err);
                continue;
            }
        };
        match &found {
            Some(earlier) if earlier.approved != verdict.approved => {
                return Err(VerdictError::Contradictory);
            }
            Some(_) => {}
            None => found = Some(verdict),
        }
    }
    found.ok_or(first_error.unwrap_or(VerdictError::NoVerdict))
}

fn read_approved(value: &Value) -> Result<bool, VerdictError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "approve" | "approved" => Ok(true),
            "false" | "no" | "reject" | "rejected" => Ok(false),
            _ => Err(VerdictError::BadApproved(format!("`{s}`"))),
        },
        other => Err(VerdictError::BadApproved(other.to_string())),
    }
}

/// A risk the reviewer did not state is treated as high: doubt never lowers the bar.
fn read_risk(value: Option<&Value>) -> Risk {
    match value
        .and_then(Value::as_str)
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("low") => Risk::Low,
        Some("medium") | Some("moderate") => Risk::Medium,
        _ => Risk::High,
    }
}

fn string_field(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// JSON values a reply may hold: the whole reply, each fenced block, each balanced `{...}`.
fn json_candidates(reply: &str) -> Vec<Value> {
    let trimmed = reply.trim();
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        return vec![value];
    }
    let mut values = Vec::new();
    for block in fenced_blocks(trimmed) {
        if let Ok(value) = serde_json::from_str::<Value>(block.trim()) {
            values.push(value);
        }
    }
    if values.is_empty() {
        values.extend(
            balanced_objects(trimmed)
                .into_iter()
                .filter_map(|object| serde_json::from_str::<Value>(object).ok()),
        );
    }
    values
}

/// The bodies of markdown code fences (```json ... ```), info string dropped.
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after_open = &rest[open + 3..];
        let body_start = after_open.find('\n').map_or(after_open.len(), |i| i + 1);
        let body = &after_open[body_start..];
        let Some(close) = body.find("```") else {
            break;
        };
        blocks.push(&body[..close]);
        rest = &body[close + 3..];
    }
    blocks
}

/// Top-level `{...}` spans, respecting JSON strings so braces inside them do not count.
fn balanced_objects(text: &str) -> Vec<&str> {
    let mut objects = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (index, ch) in text.char_indices() {
        if in_string {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' if depth > 0 => in_string = true,
            '{' => {
                if depth == 0 {
                    start = index;
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    objects.push(&text[start..=index]);
                }
            }
            _ => {}
        }
    }
    objects
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(reply: &str) -> Result<Verdict, VerdictError> {
        parse_verdict(reply)
    }

    #[test]
    fn strict_json() {
        let v = verdict(
            r#"{"approved": true, "reason": "fixes the import", "risk": "low", "suggestion": null}"#,
        );
        assert_eq!(
            v,
            Ok(Verdict {
                approved: true,
                reason: "fixes the import".to_owned(),
                risk: Risk::Low,
                suggestion: None
            })
        );
    }

    #[test]
    fn fenced_json_in_prose() {
        let reply = "Here is my review.\n```json\n{\"approved\": false, \"reason\": \"drops a test\", \
                     \"risk\": \"HIGH\", \"suggestion\": \"fix the code, keep the test\"}\n```\nThanks";
        let v = verdict(reply).unwrap_or_else(|e| panic!("{e}"));
        assert!(!v.approved);
        assert_eq!(v.risk, Risk::High);
        assert_eq!(v.suggestion.as_deref(), Some("fix the code, keep the test"));
    }

    #[test]
    fn bare_object_in_prose_with_braces_in_strings() {
        let reply = r#"Verdict: {"approved": "yes", "reason": "uses {braces} fine", "risk": "medium"} done"#;
        let v = verdict(reply).unwrap_or_else(|e| panic!("{e}"));
        assert!(v.approved);
        assert_eq!(v.reason, "uses {braces} fine");
        assert_eq!(v.risk, Risk::Medium);
    }

    #[test]
    fn missing_risk_counts_as_high() {
        let v = verdict(r#"{"approved": true}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.risk, Risk::High);
    }

    #[test]
    fn garbage_is_never_an_approval() {
        for reply in [
            "",
            "LGTM, ship it!",
            "approved: true",
            r#"{"reason": "fine"}"#,
            r#"{"approved": "maybe"}"#,
            r#"{"approved": 1}"#,
            "```json\n{\"approved\": tru\n```",
        ] {
            assert!(verdict(reply).is_err(), "accepted {reply:?}");
        }
    }

    #[test]
    fn contradicting_objects_are_refused() {
        let reply =
            "Example: {\"approved\": true}. Mine: {\"approved\": false, \"reason\": \"no\"}";
        assert_eq!(verdict(reply), Err(VerdictError::Contradictory));
    }
}
