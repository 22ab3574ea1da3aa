//! Keeping credentials out of step logs, evidence and outputs.
//!
//! A check sends credentials (an `Authorization` header rendered from `secrets`) and a flow
//! captures them (a login token). Their values are masked wherever this step writes text.

/// Values to mask, collected while a measurement renders headers and captures values.
#[derive(Clone, Debug, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub(crate) const MASK: &'static str = "***";

    /// Header and capture names whose values are credentials.
    pub(crate) fn is_sensitive_name(name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        [
            "auth", "cookie", "token", "secret", "password", "passwd", "session", "api-key",
            "api_key", "apikey",
        ]
        .iter()
        .any(|word| name.contains(word))
    }

    /// Masks `value` from now on. Very short values are skipped: masking `1` or `ok` would
    /// garble every line without protecting anything.
    pub(crate) fn add(&mut self, value: &str) {
        let value = value.trim();
        if value.len() >= 4 && !self.secrets.iter().any(|s| s == value) {
            self.secrets.push(value.to_owned());
            // Longest first, so a secret containing another is masked whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), Self::MASK);
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_added_values_longest_first() {
        let mut redactor = Redactor::default();
        redactor.add("abcd");
        redactor.add("Bearer abcdef");
        redactor.add("ok");
        assert_eq!(
            redactor.redact("Authorization: Bearer abcdef; token abcd; status ok"),
            "Authorization: ***; token ***; status ok"
        );
    }

    #[test]
    fn sensitive_names() {
        for name in [
            "Authorization",
            "set-cookie",
            "X-Api-Key",
            "session_id",
            "token",
        ] {
            assert!(Redactor::is_sensitive_name(name), "{name}");
        }
        for name in ["content-type", "location", "order_id"] {
            assert!(!Redactor::is_sensitive_name(name), "{name}");
        }
    }
}
