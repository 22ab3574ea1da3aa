//! Which names hold credentials: environment variables (`GITHUB_TOKEN`, `PGPASSWORD`), HTTP
//! headers (`Authorization`, `X-Api-Key`, `Set-Cookie`) and values a check captures.

/// Words that make a name secret wherever they appear in it (`npm_config__authToken`).
const SECRET_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "credential",
    "cookie",
    "authoriz",
    "connectionstring",
    "privatekey",
    "sessionid",
    "sessionkey",
];

/// Words that make a name secret only as a whole word (`API_KEY`, but not `MONKEY`).
const SECRET_WORDS: &[&str] = &["key", "pwd", "pass", "auth", "sas", "sig"];

/// A last word that says the value only points at or describes a secret (`SSH_AUTH_SOCK`,
/// `KEY_VAULT_NAME`, `GOOGLE_APPLICATION_CREDENTIALS_FILE`): masking those would garble logs
/// (a path, a vault name) without protecting anything.
const POINTER_WORDS: &[&str] = &[
    "sock", "path", "file", "dir", "home", "name", "url", "uri", "endpoint", "type", "mode",
    "method", "scheme", "enabled",
];

/// Whether the value of a variable, header or capture with this name is a credential.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    // `PWD` and `OLDPWD` are the shell's working directories, not passwords.
    if lower == "pwd" || lower == "oldpwd" {
        return false;
    }
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect();
    if words
        .last()
        .is_some_and(|last| POINTER_WORDS.contains(last))
    {
        return false;
    }
    let joined: String = words.concat();
    SECRET_PARTS.iter().any(|part| joined.contains(part))
        || words.iter().any(|word| SECRET_WORDS.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names() {
        for name in [
            "GITHUB_TOKEN",
            "OPENAI_API_KEY",
            "AZURE_OPENAI_API_KEY",
            "PGPASSWORD",
            "AZURE_STORAGE_CONNECTION_STRING",
            "npm_config__authToken",
            "SYSTEM_ACCESSTOKEN",
            "ENDPOINT_AUTH_PARAMETER_SVC_SERVICEPRINCIPALKEY",
            "Authorization",
            "set-cookie",
            "X-Api-Key",
            "session_id",
            "token",
            "CLIENT_SECRET",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn ordinary_names() {
        for name in [
            "PWD",
            "OLDPWD",
            "HOME",
            "MONKEY",
            "KEYCLOAK_HOST",
            "SSH_AUTH_SOCK",
            "KEY_VAULT_NAME",
            "content-type",
            "location",
            "order_id",
            "PATH",
            "XDG_SESSION_CLASS",
            "DBUS_SESSION_BUS_ADDRESS",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }
}
