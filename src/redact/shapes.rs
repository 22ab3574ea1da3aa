//! The shapes of common credentials, found without knowing their values.
//!
//! Patterns are byte patterns with Unicode off, so one lazy DFA over all of them (a
//! [`RegexSet`]) scans text once and at memory speed; only the shapes it reports run again to
//! find their matches.

use std::sync::LazyLock;

use regex::bytes::{Captures, Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// A credential shape: a pattern and the group that holds the secret part (0 = whole match).
pub(super) struct Shape {
    pub(super) kind: &'static str,
    pub(super) regex: Regex,
    secret_group: usize,
    /// A second look at the secret part, for shapes whose pattern alone would also match code
    /// or prose.
    looks_secret: fn(&[u8]) -> bool,
}

fn always(_: &[u8]) -> bool {
    true
}

/// A value assigned to a secret-looking name is a secret if it is not a plain identifier or
/// expression (`TOKEN = os.environ[...]`): it has a digit, or is long.
fn secret_like_value(value: &[u8]) -> bool {
    value.len() >= 20 || value.iter().any(u8::is_ascii_digit)
}

/// The credential after an `Authorization:` header's scheme, not the scheme itself
/// (`Authorization: Bearer` alone names no secret).
fn not_a_scheme(value: &[u8]) -> bool {
    let schemes: [&[u8]; 6] = [
        b"basic",
        b"bearer",
        b"token",
        b"digest",
        b"negotiate",
        b"ntlm",
    ];
    !schemes.iter().any(|s| value.eq_ignore_ascii_case(s))
}

/// `(kind, pattern, secret group, second look)`. A `[REDACTED:<kind>]` marker replaces the
/// secret group; the rest of the match (`Bearer `, `AccountKey=`) stays, so the text reads on.
type Spec = (&'static str, &'static str, usize, fn(&[u8]) -> bool);

const SPECS: &[Spec] = &[
    // A PEM private key: the header, its base64 body lines (and `Proc-Type:` style headers),
    // and the footer when it is there.
    (
        "private-key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:\r?\n(?:[A-Za-z0-9+/=]+|[A-Za-z-]+: [^\r\n]*))*(?:\r?\n-----END [A-Z0-9 ]*PRIVATE KEY-----)?",
        0,
        always,
    ),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}",
        0,
        always,
    ),
    (
        "aws-access-key",
        r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
        0,
        always,
    ),
    (
        "aws-secret-key",
        r#"(?i)\baws_?secret_?(?:access_?)?key\b["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})"#,
        1,
        always,
    ),
    (
        "github-token",
        r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}\b",
        0,
        always,
    ),
    ("github-token", r"\bgithub_pat_[A-Za-z0-9_]{30,}", 0, always),
    ("gitlab-token", r"\bglpat-[A-Za-z0-9_-]{20,}", 0, always),
    ("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b", 0, always),
    ("api-key", r"\bsk-[A-Za-z0-9_-]{20,}", 0, always),
    (
        "stripe-key",
        r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
        0,
        always,
    ),
    ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}", 0, always),
    ("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}", 0, always),
    (
        "sendgrid-key",
        r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
        0,
        always,
    ),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", 0, always),
    (
        "slack-webhook",
        r"(?i)https://hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9/_-]{10,})",
        1,
        always,
    ),
    // An Entra ID (Azure AD) client secret: three characters, a digit, `Q~`, and 31-34 more.
    (
        "azure-client-secret",
        r"(?:^|[^A-Za-z0-9_~.-])([A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34})",
        1,
        always,
    ),
    (
        "azure-key",
        r"(?i)\b(?:AccountKey|SharedAccessKey|SharedAccessSignature|sig|Password|pwd)=([^;\s&'\x22]+)",
        1,
        always,
    ),
    // A bare storage account key: 64 random bytes in base64, 88 characters ending in `==`.
    (
        "storage-key",
        r"(?:^|[^A-Za-z0-9+/=])([A-Za-z0-9+/]{86}==)(?:$|[^A-Za-z0-9+/=])",
        1,
        always,
    ),
    (
        "bearer-token",
        r"(?i)\bbearer[ \t]+([A-Za-z0-9\-._~+/]{8,}=*)",
        1,
        always,
    ),
    (
        "authorization",
        r#"(?i)\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:(?:basic|bearer|token|digest|negotiate|ntlm)[ \t]+)?([A-Za-z0-9\-._~+/]{6,}=*)"#,
        1,
        not_a_scheme,
    ),
    (
        "token",
        r#"(?i)\b[a-z_-]*(?:token|secret|passw(?:or)?d|api[_-]?key|access[_-]?key)["']?\s*[:=]\s*["']?([A-Za-z0-9\-._~+/]{8,}=*)"#,
        1,
        secret_like_value,
    ),
    // A password on a command line: `--password x`, `--token=x` (`-p x` is too common to tell).
    (
        "cli-password",
        r#"(?i)(?:^|\s)--(?:password|passwd|pass|pwd|token|secret|api-key|client-secret)(?:=|[ \t]+)["']?([^\s"'=-][^\s"']*)"#,
        1,
        always,
    ),
    // `.netrc`: `machine host login user password x`, or `password x` on its own line.
    (
        "netrc-password",
        r"(?i)\bmachine\s+\S+\s+(?:login\s+\S+\s+)?password\s+(\S+)",
        1,
        always,
    ),
    (
        "netrc-password",
        r"(?imR)^[ \t]*password[ \t]+(\S+)[ \t]*$",
        1,
        secret_like_value,
    ),
    (
        "url-password",
        r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@",
        1,
        always,
    ),
];

pub(super) struct Shapes {
    any: RegexSet,
    shapes: Vec<Shape>,
}

pub(super) static SHAPES: LazyLock<Shapes> = LazyLock::new(|| {
    let shapes: Vec<Shape> = SPECS
        .iter()
        .map(|&(kind, pattern, secret_group, looks_secret)| Shape {
            kind,
            regex: byte_regex(pattern),
            secret_group,
            looks_secret,
        })
        .collect();
    let any = RegexSetBuilder::new(SPECS.iter().map(|spec| spec.1))
        .unicode(false)
        .size_limit(64 << 20)
        .dfa_size_limit(16 << 20)
        .build()
        // A typo here must not panic a run; the unit tests catch it instead.
        .unwrap_or_else(|_| RegexSet::empty());
    Shapes { any, shapes }
});

/// Compiles a pattern from this file; one that fails to compile matches nothing (the unit
/// tests check that every pattern compiles).
fn byte_regex(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .unwrap_or_else(|_| never_matching())
}

fn never_matching() -> Regex {
    // `[^\s\S]` matches no byte at all.
    Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("constant pattern"))
}

impl Shapes {
    /// The shapes found in `text`, in the order they are listed.
    pub(super) fn found_in(&self, text: &[u8]) -> Vec<&Shape> {
        if !self.any.is_match(text) {
            return Vec::new();
        }
        self.any
            .matches(text)
            .iter()
            .filter_map(|index| self.shapes.get(index))
            .collect()
    }
}

impl Shape {
    /// Appends `text` to `out` with this shape's secrets replaced; false if nothing was.
    pub(super) fn replace(&self, text: &[u8], out: &mut Vec<u8>) -> bool {
        let mut last = 0;
        let mut replaced = false;
        for caps in self.regex.captures_iter(text) {
            let Some((start, end)) = self.secret_span(&caps) else {
                continue;
            };
            out.extend_from_slice(&text[last..start]);
            out.extend_from_slice(b"[REDACTED:");
            out.extend_from_slice(self.kind.as_bytes());
            out.push(b']');
            last = end;
            replaced = true;
        }
        out.extend_from_slice(&text[last..]);
        replaced
    }

    /// The secret part of a match, unless it is already masked (`password=***`: a known
    /// value replaced first, or a tool's own mask).
    fn secret_span(&self, caps: &Captures<'_>) -> Option<(usize, usize)> {
        let secret = caps.get(self.secret_group)?;
        let masked = secret.as_bytes().iter().all(|byte| *byte == b'*');
        (!masked && (self.looks_secret)(secret.as_bytes()))
            .then_some((secret.start(), secret.end()))
    }
}

/// The body lines of a PEM block (and `Proc-Type:` style headers), then its footer if it comes:
/// what follows a private key's header that an earlier piece of a stream already masked.
static PRIVATE_KEY_REST: LazyLock<Regex> = LazyLock::new(|| {
    byte_regex(
        r"\A(?:\r?\n)?(?:(?:[A-Za-z0-9+/=]+|[A-Za-z-]+: [^\r\n]*)(?:\r?\n|\r\z))*(?:-----END [A-Z0-9 ]*PRIVATE KEY-----)?",
    )
});

/// Whether `text` ends inside a private key whose footer has not come yet (its last match of
/// the private-key shape runs to the end and has no footer).
pub(super) fn ends_inside_private_key(text: &[u8]) -> bool {
    let Some(shape) = SHAPES.shapes.first() else {
        return false;
    };
    let body_end = text.len() - line_end_len(text);
    shape.regex.find_iter(text).last().is_some_and(|found| {
        found.end() >= body_end
            && !found
                .as_bytes()
                .windows(b"-----END ".len())
                .any(|window| window == b"-----END ")
    })
}

fn line_end_len(text: &[u8]) -> usize {
    if text.ends_with(b"\r\n") {
        2
    } else {
        usize::from(text.ends_with(b"\n") || text.ends_with(b"\r"))
    }
}

/// How many bytes at the start of `text` continue a private key that began earlier, and
/// whether the key is still open after them (no footer, and `text` ended inside the body).
pub(super) fn private_key_rest(text: &[u8]) -> (usize, bool) {
    let end = PRIVATE_KEY_REST.find(text).map_or(0, |found| found.end());
    let closed = text[..end].ends_with(b"PRIVATE KEY-----");
    (end, !closed && end == text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_compiles() {
        let never = never_matching().as_str().to_owned();
        for shape in &SHAPES.shapes {
            assert_ne!(
                shape.regex.as_str(),
                never,
                "{} failed to compile",
                shape.kind
            );
        }
        assert_eq!(SHAPES.any.len(), SPECS.len(), "the set compiled");
    }
}
