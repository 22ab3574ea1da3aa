//! The forms a known secret value takes in text: as is, line by line (a PEM key), JSON-escaped,
//! URL-encoded, and base64-encoded (alone or inside a longer encoded blob, such as an
//! `Authorization: Basic` header or a Kubernetes secret).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use super::MIN_SECRET_LEN;

/// A base64 fragment shorter than this is left alone: it would match by chance inside
/// unrelated encoded data.
const MIN_BASE64_LEN: usize = 8;

/// Every form of `value` worth masking, the value itself first.
pub(super) fn forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_owned()];
    for line in value.lines() {
        // A multi-line secret (a key file) may show up one line at a time in a log.
        let line = line.trim();
        if line.len() >= MIN_SECRET_LEN && line != value {
            forms.push(line.to_owned());
        }
    }
    if let Ok(quoted) = serde_json::to_string(value)
        && let Some(escaped) = quoted.get(1..quoted.len().saturating_sub(1))
    {
        forms.push(escaped.to_owned());
    }
    forms.push(url_encode(value, false));
    forms.push(url_encode(value, true));
    forms.extend(base64_forms(value));
    forms.retain(|form| form.len() >= MIN_SECRET_LEN);
    forms.sort();
    forms.dedup();
    forms
}

/// Percent-encoding as `encodeURIComponent` does (upper-case hex), or as many tools do
/// (lower-case hex, `+` for a space, as in form bodies).
fn url_encode(value: &str, lower_and_plus: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else if byte == b' ' && lower_and_plus {
            out.push('+');
        } else if lower_and_plus {
            out.push_str(&format!("%{byte:02x}"));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The base64 text that encodes `value` wherever it sits in a longer encoded input: for each
/// of the three alignments, the characters that depend on `value`'s bytes alone.
fn base64_forms(value: &str) -> Vec<String> {
    let bytes = value.as_bytes();
    let mut forms = Vec::new();
    for engine in [&STANDARD, &URL_SAFE] {
        // The value alone, padding included: `echo -n value | base64`.
        forms.push(engine.encode(bytes));
        for offset in 0..3 {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            // Characters fully determined by the value: skip those that mix in the filler
            // before it, and stop before those that mix in whatever comes after it.
            let start = (offset * 8).div_ceil(6);
            let end = (shifted.len() * 8) / 6;
            if let Some(core) = encoded.get(start..end)
                && core.len() >= MIN_BASE64_LEN
            {
                forms.push(core.to_owned());
            }
        }
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_inside_a_longer_blob_is_found_at_every_alignment() {
        let secret = "hunter2-correct-horse";
        let found = forms(secret);
        for prefix in ["", "u", "us", "user:"] {
            let blob = STANDARD.encode(format!("{prefix}{secret}!tail"));
            assert!(
                found.iter().any(|form| blob.contains(form.as_str())),
                "prefix {prefix:?}: {blob}"
            );
        }
    }

    #[test]
    fn encodings_of_a_value() {
        let found = forms("p@ss word\n\"line two\"");
        for expected in [
            "p@ss word\n\"line two\"",
            "p@ss word",
            "\"line two\"",
            r#"p@ss word\n\"line two\""#,
            "p%40ss%20word%0A%22line%20two%22",
            "p%40ss+word%0a%22line+two%22",
        ] {
            assert!(found.iter().any(|f| f == expected), "{expected}: {found:?}");
        }
    }
}
