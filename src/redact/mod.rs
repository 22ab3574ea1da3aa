//! Secret redaction: the one place that decides what must never leave the machine or reach the
//! console, a log, an artifact, a prompt or the `--record` tape.
//!
//! A [`Redactor`] knows two things:
//! - the exact secret values of this run (Key Vault `secrets`, tokens, and the values of
//!   environment variables whose names mark them as secret, see [`is_secret_name`]) in every
//!   form they take in text (`values.rs`: line by line, JSON-escaped, URL-encoded, base64), all
//!   found in one pass of an Aho-Corasick automaton and replaced with `***` (as Azure Pipelines
//!   masks);
//! - the shapes of common credentials (`shapes.rs`: AWS and GitHub keys, JWTs, `sk-` keys,
//!   private key blocks, `Authorization:` headers, passwords in URLs and on command lines,
//!   ...), replaced with `[REDACTED:<kind>]`, never with any part of the value.
//!
//! Every output applies the same redactor: reports get events through
//! the engine's `Event::redacted`, command output streams through
//! [`StreamRedactor`], prompts and the tape through [`Redactor::redact`].

mod names;
mod shapes;
mod stream;
mod values;

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

pub use self::names::is_secret_name;
pub use self::stream::StreamRedactor;

/// Secret values (and their encoded forms) shorter than this are not redacted by value:
/// replacing every `ab` in a log would destroy it while protecting nothing a guess could not
/// find.
pub const MIN_SECRET_LEN: usize = 4;

/// What a known secret value is replaced with.
pub const MASK: &str = "***";

/// Removes secrets from text before it leaves the process. Cloning is cheap.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// `None` when no value is known: then only credential shapes are removed.
    values: Option<KnownValues>,
}

#[derive(Clone, Debug)]
struct KnownValues {
    /// The secrets as given, to build an extended redactor from.
    secrets: Arc<[String]>,
    /// Every form of every secret, leftmost-longest: a secret that contains another is
    /// replaced whole.
    forms: AhoCorasick,
    /// The longest form, in bytes: what a stream must hold back to see one whole.
    longest: usize,
}

impl Redactor {
    pub fn builder() -> RedactorBuilder {
        RedactorBuilder::default()
    }

    /// This redactor plus more secret values (a token a check captured mid-step).
    pub fn with_secrets<I, S>(&self, values: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let known = self
            .values
            .as_ref()
            .map(|values| values.secrets.to_vec())
            .unwrap_or_default();
        Redactor::builder().secrets(known).secrets(values).build()
    }

    /// Masks `value` from now on (a header value or a captured token); a value already known
    /// or too short changes nothing.
    pub fn add_secret(&mut self, value: &str) {
        let value = value.trim();
        let known = self
            .values
            .as_ref()
            .is_some_and(|values| values.secrets.iter().any(|s| s == value));
        if value.len() >= MIN_SECRET_LEN && !known {
            *self = self.with_secrets([value]);
        }
    }

    /// The longest known secret form in bytes (0 without values).
    pub fn longest_value(&self) -> usize {
        self.values.as_ref().map_or(0, |values| values.longest)
    }

    /// Text with every known secret replaced by `***` and every credential shape by
    /// `[REDACTED:<kind>]`; borrowed when there was nothing to remove.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match self.redact_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Matches start and end on ASCII or at whole secrets, so the result is UTF-8; a
            // shape cut inside a character would show as U+FFFD rather than fail.
            Cow::Owned(bytes) => Cow::Owned(
                String::from_utf8(bytes)
                    .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned()),
            ),
        }
    }

    /// [`Redactor::redact`] for bytes (command output, which need not be UTF-8).
    pub fn redact_bytes<'t>(&self, text: &'t [u8]) -> Cow<'t, [u8]> {
        let mut text = Cow::Borrowed(text);
        if let Some(values) = &self.values
            && values.forms.is_match(text.as_ref())
        {
            let mut out = Vec::with_capacity(text.len());
            values
                .forms
                .replace_all_with_bytes(&text, &mut out, |_, _, out| {
                    out.extend_from_slice(MASK.as_bytes());
                    true
                });
            text = Cow::Owned(out);
        }
        for shape in shapes::SHAPES.found_in(&text) {
            let mut out = Vec::with_capacity(text.len());
            if shape.replace(&text, &mut out) {
                text = Cow::Owned(out);
            }
        }
        text
    }

    /// Redacts `text` where it is.
    pub fn redact_in_place(&self, text: &mut String) {
        if let Cow::Owned(redacted) = self.redact(text) {
            *text = redacted;
        }
    }

    /// Redacts every string inside a JSON value, keys included.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        let mut value = value.clone();
        self.redact_json_in_place(&mut value);
        value
    }

    /// [`Redactor::redact_json`] where the value is.
    pub fn redact_json_in_place(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(text) => self.redact_in_place(text),
            Value::Array(items) => {
                for item in items {
                    self.redact_json_in_place(item);
                }
            }
            Value::Object(fields) => {
                let keys_with_secrets: Vec<String> = fields
                    .keys()
                    .filter(|key| matches!(self.redact(key), Cow::Owned(_)))
                    .cloned()
                    .collect();
                for key in keys_with_secrets {
                    if let Some(field) = fields.remove(&key) {
                        fields.insert(self.redact(&key).into_owned(), field);
                    }
                }
                for field in fields.values_mut() {
                    self.redact_json_in_place(field);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// A redactor for one stream of command output, fed in the pieces it is read in.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor::new(self.clone())
    }
}

/// Collects secret values, then builds a [`Redactor`].
#[derive(Debug, Default)]
pub struct RedactorBuilder {
    values: Vec<String>,
}

impl RedactorBuilder {
    /// A secret value; its encoded forms are masked too.
    pub fn secret(mut self, value: impl Into<String>) -> Self {
        self.values.push(value.into());
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

    /// Environment variables whose names mark them as secret ([`is_secret_name`]: `*_KEY`,
    /// `*TOKEN*`, `*PASSWORD*`, `*SECRET*`, ...) contribute their values, except flags and
    /// numbers (`GIT_TOKEN_ENABLED=true`), which would mask every `true` in a log.
    pub fn secret_env_vars<I>(self, vars: I) -> Self
    where
        I: IntoIterator<Item = (String, String)>,
    {
        self.secrets(
            vars.into_iter()
                .filter(|(name, value)| is_secret_name(name) && !is_flag_or_number(value))
                .map(|(_, value)| value),
        )
    }

    /// [`RedactorBuilder::secret_env_vars`] of this process's environment (the provider keys
    /// among them). A variable that is not UTF-8 cannot be matched in text and is skipped.
    pub fn process_env(self) -> Self {
        self.secret_env_vars(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    pub fn build(self) -> Redactor {
        let mut secrets: Vec<String> = self
            .values
            .into_iter()
            .filter(|value| value.trim().len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort();
        secrets.dedup();
        let mut forms: Vec<String> = secrets.iter().flat_map(|s| values::forms(s)).collect();
        forms.sort();
        forms.dedup();
        let Some(longest) = forms.iter().map(String::len).max() else {
            return Redactor::default();
        };
        // Building fails only past the automaton's size limits, far beyond any run's secrets.
        let forms = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&forms)
            .ok();
        Redactor {
            values: forms.map(|forms| KnownValues {
                secrets: secrets.into(),
                forms,
                longest,
            }),
        }
    }
}

fn is_flag_or_number(value: &str) -> bool {
    let value = value.trim();
    ["true", "false", "yes", "no", "on", "off"]
        .iter()
        .any(|flag| value.eq_ignore_ascii_case(flag))
        || value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        Redactor::default().redact(text).into_owned()
    }

    #[test]
    fn values_are_replaced_with_their_encodings() {
        let redactor = Redactor::builder()
            .secret("hunter2-pass word")
            .secret("ab")
            .build();
        let text = "pw=hunter2-pass word url=hunter2-pass%20word json=\"hunter2-pass word\" ab";
        assert_eq!(redactor.redact(text), "pw=*** url=*** json=\"***\" ab");
    }

    #[test]
    fn longer_secret_wins_over_its_prefix() {
        let redactor = Redactor::builder().secrets(["abcd", "abcdefgh"]).build();
        assert_eq!(redactor.redact("x abcdefgh y"), "x *** y");
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

    /// The common token shapes, each in a line as a tool would print it: none survives.
    #[test]
    fn common_token_shapes() {
        let storage_key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
        let cases = [
            (
                "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                "sk_live_",
                "stripe-key",
            ),
            (
                "GITLAB glpat-Abcdefghij0123456789 ok",
                "glpat-",
                "gitlab-token",
            ),
            (
                "//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789",
                "npm_",
                "npm-token",
            ),
            (
                "key=AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW ok",
                "AIzaSy",
                "google-api-key",
            ),
            (
                "post to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "T00000000/B0",
                "slack-webhook",
            ),
            (
                "> Authorization: Basic dXNlcjpodW50ZXIy",
                "dXNlcjpodW50ZXIy",
                "authorization",
            ),
            (
                "-H 'x-api-key: 0123456789abcdef0123'",
                "0123456789abcdef0123",
                "token",
            ),
            (
                &format!("az storage --account-key {storage_key}"),
                "Eby8vdM02x",
                "storage-key",
            ),
            (
                &format!("key: {storage_key}\n"),
                "Eby8vdM02x",
                "storage-key",
            ),
            (
                "mysql --user app --password hunter2 db",
                "hunter2",
                "cli-password",
            ),
            ("psql --password='hunter2'", "hunter2", "cli-password"),
            (
                "machine github.com login bob password hunter2",
                "hunter2",
                "netrc-password",
            ),
            (
                "machine x\n  login bob\n  password hunt3r2",
                "hunt3r2",
                "netrc-password",
            ),
            ("sk-proj-abcdefghijklmnopqrstuvwx", "sk-proj", "api-key"),
            (
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "ghp_",
                "github-token",
            ),
            (
                "github_pat_11ABCDEFG0abcdefghijklmnopqrstuvwxyz",
                "github_pat_",
                "github-token",
            ),
            ("AKIAIOSFODNN7EXAMPLE", "AKIA", "aws-access-key"),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU",
                "eyJ",
                "jwt",
            ),
            (
                "Authorization: Bearer abcdefghijklmnop.qrs",
                "abcdefghijklmnop",
                "bearer-token",
            ),
            ("redis://:s3cretpw@cache:6379", "s3cretpw", "url-password"),
            ("Server=db;Password=s3cret;", "s3cret", "azure-key"),
            ("xoxb-123456789012-abcdefghijkl", "xoxb-", "slack-token"),
            (
                "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
                "hf_abc",
                "huggingface-token",
            ),
            (
                "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                "SG.abc",
                "sendgrid-key",
            ),
            (
                "client secret: abc8Q~abcdefghijklmnopqrstuvwxyz0123456",
                "8Q~",
                "azure-client-secret",
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n",
                "b3BlbnNz",
                "private-key",
            ),
        ];
        assert_eq!(storage_key.len(), 88);
        for (input, secret, kind) in cases {
            let redacted = redact(input);
            assert!(!redacted.contains(secret), "{input} -> {redacted}");
            assert!(
                redacted.contains(&format!("[REDACTED:{kind}]")),
                "{input} -> {redacted}"
            );
        }
    }

    #[test]
    fn assignments_to_secret_names_are_redacted() {
        assert_eq!(
            redact(
                "GITLAB_TOKEN=glpat-abc123defghijklmnopq and \"db_password\": \"hunter22hunter\""
            ),
            "GITLAB_TOKEN=[REDACTED:gitlab-token] and \"db_password\": \"[REDACTED:token]\""
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let text = "error[E0308]: mismatched types at src/main.rs:12:5; Unexpected token \
                    constructorName; skip the token bucket; password: <hidden>; \
                    TOKEN = os.environ['API_TOKEN'] or api_key=settings.api_key; \
                    Basic authentication failed; password is wrong; docker login \
                    --password-stdin; Authorization: Bearer\npassword required\n\
                    -TOKEN\n+TOKN = 1; -p --token -- ; password=*** --token=****\n";
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
            "*** in /home/user"
        );
    }

    #[test]
    fn secrets_come_from_every_string_of_the_secrets_context() {
        let secrets = serde_json::json!({"openai_api_key": "key-value-1", "nested": ["pw-value-2"], "port": 5432});
        let redactor = Redactor::builder().secrets_in_json(&secrets).build();
        assert_eq!(
            redactor.redact("key-value-1 pw-value-2 5432"),
            "*** *** 5432"
        );
    }

    #[test]
    fn json_strings_are_redacted() {
        let redactor = Redactor::builder().secret("topsecret").build();
        let value = serde_json::json!({"a": ["x topsecret"], "topsecret": 1});
        assert_eq!(
            redactor.redact_json(&value),
            serde_json::json!({"a": ["x ***"], "***": 1})
        );
    }
}
