//! Secret redaction: the one place that decides what must never leave the machine or reach a
//! log, artifact or prompt.
//!
//! A [`Redactor`] knows two things: the exact secret values of this run (from `secrets.*`,
//! tokens, and environment variables whose names mark them as secret) and the shapes of common
//! credentials (AWS keys, GitHub tokens, JWTs, `sk-...` keys, Azure connection-string keys,
//! private key blocks, bearer tokens, passwords in URLs). Both are replaced with a marker that
//! says what was removed, never with any part of the value.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Secret values shorter than this are not redacted by value: replacing every `ab` in a log
/// would destroy it while protecting nothing a guess could not find.
pub const MIN_SECRET_LEN: usize = 4;

/// Environment variable names whose values are treated as secrets.
static SECRET_ENV_NAME: LazyLock<Regex> = LazyLock::new(|| {
    regex_or_never(
        r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PWD|CREDENTIAL|CONNECTION_?STRING|SAS|AUTH)",
    )
});

/// A credential shape: a pattern and the group that holds the secret part (0 = whole match).
struct Shape {
    kind: &'static str,
    regex: Regex,
    secret_group: usize,
    /// A second look at the secret part, for shapes whose pattern alone would also match code.
    looks_secret: fn(&str) -> bool,
}

fn always(_: &str) -> bool {
    true
}

/// A value assigned to a secret-looking name is a secret if it is not a plain identifier or
/// expression (`TOKEN = os.environ[...]`): it has a digit, or is long.
fn secret_like_value(value: &str) -> bool {
    value.len() >= 20 || value.bytes().any(|b| b.is_ascii_digit())
}

static SHAPES: LazyLock<Vec<Shape>> = LazyLock::new(|| {
    let shape = |kind, pattern, secret_group| Shape {
        kind,
        regex: regex_or_never(pattern),
        secret_group,
        looks_secret: always,
    };
    vec![
        shape(
            "private-key",
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
            0,
        ),
        shape(
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}",
            0,
        ),
        shape(
            "aws-access-key",
            r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
            0,
        ),
        shape(
            "aws-secret-key",
            r#"(?i)\baws_?secret_?(?:access_?)?key\b["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})"#,
            1,
        ),
        shape(
            "github-token",
            r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b",
            0,
        ),
        shape("github-token", r"\bgithub_pat_[A-Za-z0-9_]{30,}", 0),
        shape("api-key", r"\bsk-[A-Za-z0-9_-]{20,}", 0),
        shape("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", 0),
        shape(
            "azure-key",
            r"(?i)\b(?:AccountKey|SharedAccessKey|SharedAccessSignature|sig|Password|pwd)=([^;\s&'\x22]+)",
            1,
        ),
        shape(
            "bearer-token",
            r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{8,}=*)",
            1,
        ),
        Shape {
            looks_secret: secret_like_value,
            ..shape(
                "token",
                r#"(?i)\b[a-z_]*(?:token|secret|passw(?:or)?d|api_?key)["']?\s*[:=]\s*["']?([A-Za-z0-9\-._~+/]{8,}=*)"#,
                1,
            )
        },
        shape(
            "url-password",
            r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@",
            1,
        ),
    ]
});

/// Compiles a pattern from this file; a pattern that fails to compile matches nothing, so a
/// typo here can never panic a run (the unit tests catch it instead).
fn regex_or_never(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|_| never_matching())
}

fn never_matching() -> Regex {
    // `[^\s\S]` matches no character at all.
    Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("constant pattern"))
}

/// Removes secrets from text before it leaves the process.
#[derive(Clone, Debug)]
pub struct Redactor {
    /// All known secret values as one alternation, longest first.
    values: Option<Regex>,
}

impl Default for Redactor {
    /// A redactor that knows no values but still removes credential shapes.
    fn default() -> Self {
        Self { values: None }
    }
}

impl Redactor {
    pub fn builder() -> RedactorBuilder {
        RedactorBuilder::default()
    }

    /// Text with every known secret value and credential shape replaced by `[REDACTED:<kind>]`.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut text = Cow::Borrowed(text);
        if let Some(values) = &self.values
            && values.is_match(&text)
        {
            text = Cow::Owned(values.replace_all(&text, "[REDACTED:secret]").into_owned());
        }
        for shape in SHAPES.iter() {
            if !shape.regex.is_match(&text) {
                continue;
            }
            let replaced = shape
                .regex
                .replace_all(&text, |caps: &Captures<'_>| mask_group(caps, shape));
            text = Cow::Owned(replaced.into_owned());
        }
        text
    }

    /// Redacts every string inside a JSON value, keys included.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(s).into_owned()),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.redact(k).into_owned(), self.redact_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Replaces the secret group of a match, keeping the rest (`Bearer `, `AccountKey=`) so the
/// text still reads naturally.
fn mask_group(caps: &Captures<'_>, shape: &Shape) -> String {
    let kind = shape.kind;
    let whole = caps.get(0).map_or("", |m| m.as_str());
    let Some(secret) = caps.get(shape.secret_group) else {
        return format!("[REDACTED:{kind}]");
    };
    if !(shape.looks_secret)(secret.as_str()) {
        return whole.to_owned();
    }
    let start = secret.start() - caps.get(0).map_or(0, |m| m.start());
    let end = start + secret.as_str().len();
    format!("{}[REDACTED:{kind}]{}", &whole[..start], &whole[end..])
}

/// Collects secret values, then builds a [`Redactor`].
#[derive(Debug, Default)]
pub struct RedactorBuilder {
    values: Vec<String>,
}

impl RedactorBuilder {
    /// A secret value; also its common encodings (URL-encoded, JSON-escaped) when they differ.
    pub fn secret(mut self, value: impl Into<String>) -> Self {
        let value = value.into();
        for line in value.lines() {
            // A multi-line secret (a key file) may show up one line at a time in a log.
            let line = line.trim();
            if line.len() >= MIN_SECRET_LEN && line != value {
                self.values.push(line.to_owned());
            }
        }
        let json_escaped = serde_json::to_string(&value)
            .ok()
            .and_then(|s| s.get(1..s.len().saturating_sub(1)).map(str::to_owned));
        if let Some(escaped) = json_escaped.filter(|e| *e != value) {
            self.values.push(escaped);
        }
        let url_encoded = url_encode(&value);
        if url_encoded != value {
            self.values.push(url_encoded);
        }
        self.values.push(value);
        self
    }

    pub fn secrets<I, S>(self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        values.into_iter().fold(self, |b, v| b.secret(v))
    }

    /// Every string inside a JSON value: pass the run's `secrets` template context.
    pub fn secrets_in_json(self, value: &serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::String(s) => self.secret(s.as_str()),
            Value::Array(items) => items.iter().fold(self, |b, v| b.secrets_in_json(v)),
            Value::Object(map) => map.values().fold(self, |b, v| b.secrets_in_json(v)),
            Value::Null | Value::Bool(_) | Value::Number(_) => self,
        }
    }

    /// Environment variables whose names mark them as secret (`*_KEY`, `*TOKEN*`,
    /// `*PASSWORD*`, `*SECRET*`, ...) contribute their values. Pass `std::env::vars()`.
    pub fn secret_env_vars<I>(self, vars: I) -> Self
    where
        I: IntoIterator<Item = (String, String)>,
    {
        self.secrets(
            vars.into_iter()
                .filter(|(name, _)| SECRET_ENV_NAME.is_match(name))
                .map(|(_, value)| value),
        )
    }

    pub fn build(mut self) -> Redactor {
        self.values.retain(|v| v.len() >= MIN_SECRET_LEN);
        // Longest first: the alternation is leftmost-first, so a secret that contains another
        // is replaced whole.
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.values.dedup();
        if self.values.is_empty() {
            return Redactor { values: None };
        }
        let alternation = self
            .values
            .iter()
            .map(|v| regex::escape(v))
            .collect::<Vec<_>>()
            .join("|");
        // Escaped literals always compile, but thousands of values could pass the regex size
        // limit; then keep the longest 256 rather than redact nothing by value.
        let values = regex::RegexBuilder::new(&alternation)
            .size_limit(64 << 20)
            .build()
            .ok()
            .or_else(|| {
                let fitting = self
                    .values
                    .iter()
                    .take(256)
                    .map(|v| regex::escape(v))
                    .collect::<Vec<_>>()
                    .join("|");
                Regex::new(&fitting).ok()
            });
        Redactor { values }
    }
}

fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        Redactor::default().redact(text).into_owned()
    }

    #[test]
    fn every_shape_compiles() {
        let never = never_matching().as_str().to_owned();
        for shape in SHAPES.iter() {
            assert_ne!(
                shape.regex.as_str(),
                never,
                "{} failed to compile",
                shape.kind
            );
        }
        assert_ne!(SECRET_ENV_NAME.as_str(), never);
    }

    #[test]
    fn values_are_replaced_with_their_encodings() {
        let redactor = Redactor::builder()
            .secret("hunter2-pass word")
            .secret("ab")
            .build();
        let text = "pw=hunter2-pass word url=hunter2-pass%20word json=\"hunter2-pass word\" ab";
        assert_eq!(
            redactor.redact(text),
            "pw=[REDACTED:secret] url=[REDACTED:secret] json=\"[REDACTED:secret]\" ab"
        );
    }

    #[test]
    fn longer_secret_wins_over_its_prefix() {
        let redactor = Redactor::builder().secrets(["abcd", "abcdefgh"]).build();
        assert_eq!(redactor.redact("x abcdefgh y"), "x [REDACTED:secret] y");
    }

    #[test]
    fn unchanged_text_is_borrowed() {
        let redactor = Redactor::builder().secret("s3cr3t-value").build();
        assert!(matches!(redactor.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn credential_shapes() {
        let cases = [
            (
                "key AKIAIOSFODNN7EXAMPLE end",
                "key [REDACTED:aws-access-key] end",
            ),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_secret_access_key = [REDACTED:aws-secret-key]",
            ),
            (
                "token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "token [REDACTED:github-token]",
            ),
            (
                "OPENAI=sk-proj-abcdefghijklmnopqrstuvwx",
                "OPENAI=[REDACTED:api-key]",
            ),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU",
                "[REDACTED:jwt]",
            ),
            (
                "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc+/def==;EndpointSuffix=core",
                "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=[REDACTED:azure-key];EndpointSuffix=core",
            ),
            (
                "Authorization: Bearer abcdefghijklmnop.qrs",
                "Authorization: Bearer [REDACTED:bearer-token]",
            ),
            (
                "postgres://app:pa55word@db:5432/x",
                "postgres://app:[REDACTED:url-password]@db:5432/x",
            ),
            (
                "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabc\n-----END RSA PRIVATE KEY-----\nb",
                "a\n[REDACTED:private-key]\nb",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "input: {input}");
        }
    }

    #[test]
    fn assignments_to_secret_names_are_redacted() {
        assert_eq!(
            redact("GITLAB_TOKEN=glpat-abc123defghijkl and \"db_password\": \"hunter22hunter\""),
            "GITLAB_TOKEN=[REDACTED:token] and \"db_password\": \"[REDACTED:token]\""
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let text = "error[E0308]: mismatched types at src/main.rs:12:5; Unexpected token \
                    constructorName; skip the token bucket; password: <hidden>; \
                    TOKEN = os.environ['API_TOKEN'] or api_key=settings.api_key";
        assert_eq!(redact(text), text);
    }

    #[test]
    fn secret_env_vars_are_picked_by_name() {
        let redactor = Redactor::builder()
            .secret_env_vars([
                ("OPENAI_API_KEY".to_owned(), "value-of-key".to_owned()),
                ("HOME".to_owned(), "/home/user".to_owned()),
            ])
            .build();
        assert_eq!(
            redactor.redact("value-of-key in /home/user"),
            "[REDACTED:secret] in /home/user"
        );
    }

    #[test]
    fn secrets_come_from_every_string_of_the_secrets_context() {
        let secrets = serde_json::json!({"openai_api_key": "key-value-1", "nested": ["pw-value-2"], "port": 5432});
        let redactor = Redactor::builder().secrets_in_json(&secrets).build();
        assert_eq!(
            redactor.redact("key-value-1 pw-value-2 5432"),
            "[REDACTED:secret] [REDACTED:secret] 5432"
        );
    }

    #[test]
    fn json_strings_are_redacted() {
        let redactor = Redactor::builder().secret("topsecret").build();
        let value = serde_json::json!({"a": ["x topsecret"], "topsecret": 1});
        assert_eq!(
            redactor.redact_json(&value),
            serde_json::json!({"a": ["x [REDACTED:secret]"], "[REDACTED:secret]": 1})
        );
    }
}
