//! The secrets matrix: every kind of secret a run can meet, printed by a failing gate in every
//! form it takes, against everything the real binary writes (the console, stdout, each step
//! log, `run.log`, `junit.xml`, `summary.md`, `audit.jsonl`, `metrics.json`, the `--record`
//! tape, and the prompts the fixer sends): every cell must be clean.
//!
//! Kinds: Key Vault secrets (single-line, one line of a multi-line PEM, and the base64,
//! URL-encoded and JSON-escaped forms of one), a secret-named environment variable, the LLM
//! provider's key, and the common token shapes no one declared.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::keyvault::{files_under, signed_in_with_managed_identity};
use crate::support::azure_server::{AzureConfig, AzureServer};
use crate::support::cli::{Project, RunResult};
use crate::support::openai_fake::{OpenAiFake, Reply, Route};

const VAULT_PASSWORD: &str = "kv-Pa55-w0rd-7c6b5a";
/// A secret with characters that every encoding changes.
const VAULT_SPECIAL: &str = r##"p@ss/w0rd:"kv"#1"##;
const VAULT_SPECIAL_URL_ENCODED: &str = "p%40ss%2Fw0rd%3A%22kv%22%231";
const VAULT_SPECIAL_JSON_ESCAPED: &str = r##"p@ss/w0rd:\"kv\"#1"##;
const PEM_MIDDLE_LINE: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw";
const ENV_TOKEN: &str = "dtok-4f5e6a7b8c9d0e1f";
const PROVIDER_KEY: &str = "prov-0123456789abcdef-key";

/// Token shapes printed by the gate, as `(what the gate prints, the secret part)`.
const SHAPES: &[(&str, &str)] = &[
    (
        "stripe sk_live_51HqLyjWDarjtT1zdp7dcQw",
        "51HqLyjWDarjtT1zdp7dcQw",
    ),
    ("GITLAB=glpat-9xKq2mZr7TbW4nYp3LcV", "9xKq2mZr7TbW4nYp3LcV"),
    (
        "//registry.npmjs.org/:_authToken=npm_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    ),
    (
        "maps key AIzaSyB3xQ9vL2mN8kP4tR7wZ1cF6hJ0dG5sY2e",
        "SyB3xQ9vL2mN8kP4tR7wZ1cF6hJ0dG5sY2e",
    ),
    (
        "notify https://hooks.slack.com/services/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",
        "B4E5F6G7H/a1B2c3D4e5F6g7H8i9J0k1L2",
    ),
    (
        "> Authorization: Basic YWRtaW46czNjcjN0LWJhc2ljLXB3",
        "YWRtaW46czNjcjN0LWJhc2ljLXB3",
    ),
    ("> x-api-key: xk7Hq2Lm9Pz4Rt6Vw8Yb", "xk7Hq2Lm9Pz4Rt6Vw8Yb"),
    (
        "key Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50u",
    ),
    ("+ mysql --user app --password Sq1-pw-Qz8 db", "Sq1-pw-Qz8"),
    (
        "machine git.example.com login bob password Nrc-pw-5Tx",
        "Nrc-pw-5Tx",
    ),
    (
        "OPENAI=sk-proj-Zy8Xw7Vu6Ts5Rq4Po3Nm2L",
        "Zy8Xw7Vu6Ts5Rq4Po3Nm2L",
    ),
    (
        "push ghp_Gh1Jk2Lm3Np4Qr5St6Uv7Wx8Yz9Ab0Cd1Ef2",
        "Gh1Jk2Lm3Np4Qr5St6Uv7Wx8Yz9Ab0Cd1Ef2",
    ),
    (
        "github_pat_11AAAAAAA0BbCcDdEeFfGgHhIiJjKkLlMmNn",
        "11AAAAAAA0BbCcDdEeFfGgHhIiJjKkLlMmNn",
    ),
    ("aws AKIAQ3EXAMPLEKEY7ZZZ", "Q3EXAMPLEKEY7ZZZ"),
    (
        "aws_secret_access_key = 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",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYMATRIXKEY1",
    ),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYXRyaXgifQ.c2lnLW1hdHJpeC10ZXN0",
        "eyJzdWIiOiJtYXRyaXgifQ",
    ),
    (
        "> Authorization: Bearer brR-t0k3n-Qm9Wx2Zp",
        "brR-t0k3n-Qm9Wx2Zp",
    ),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----",
        "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu",
    ),
    (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Ck3y+ZmF0aGVyPQ==;EndpointSuffix=core.windows.net",
        "Ck3y+ZmF0aGVyPQ==",
    ),
    (
        "connect postgres://app:Pg-Url-pw9@db:5432/app",
        "Pg-Url-pw9",
    ),
    ("slack xoxb-2048-4096-SlKtOk3n8Zq", "SlKtOk3n8Zq"),
    (
        "client secret Abc8Q~Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp",
        "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp",
    ),
];

fn pem() -> String {
    format!("-----BEGIN PRIVATE KEY-----\n{PEM_MIDDLE_LINE}\n-----END PRIVATE KEY-----\n")
}

/// Every known-value kind as `(name, what must never appear)`.
fn known_values() -> Vec<(&'static str, String)> {
    vec![
        ("vault secret", VAULT_PASSWORD.to_owned()),
        ("vault secret, base64", STANDARD.encode(VAULT_PASSWORD)),
        (
            "vault secret, base64 inside user:password",
            STANDARD.encode(format!("user:{VAULT_PASSWORD}")),
        ),
        ("vault secret, as is", VAULT_SPECIAL.to_owned()),
        (
            "vault secret, URL-encoded",
            VAULT_SPECIAL_URL_ENCODED.to_owned(),
        ),
        (
            "vault secret, JSON-escaped",
            VAULT_SPECIAL_JSON_ESCAPED.to_owned(),
        ),
        ("one line of a vault PEM", PEM_MIDDLE_LINE.to_owned()),
        ("secret-named environment variable", ENV_TOKEN.to_owned()),
        ("provider key", PROVIDER_KEY.to_owned()),
    ]
}

/// Prints every secret in every form, then fails, so the output lands in every report and in
/// the fixer's prompt.
fn leak_script() -> String {
    let shapes: Vec<&str> = SHAPES.iter().map(|(line, _)| *line).collect();
    format!(
        "#!/bin/sh\n\
         echo \"vault: $PW\"\n\
         printf '%s' \"$PW\" | base64\n\
         printf 'user:%s' \"$PW\" | base64\n\
         echo \"special: $SPECIAL\"\n\
         echo \"url: {VAULT_SPECIAL_URL_ENCODED}\"\n\
         printf '%s\n' '{{\"json\": \"{VAULT_SPECIAL_JSON_ESCAPED}\"}}'\n\
         echo \"pem line: $(printf '%s\\n' \"$PEM\" | sed -n 2p)\"\n\
         echo \"env: $DEPLOY_TOKEN\"\n\
         echo \"provider: $OPENAI_API_KEY\"\n\
         cat <<'EOF'\n{}\nEOF\n\
         exit 1\n",
        shapes.join("\n")
    )
}

const WORKFLOW: &str = r#"name: secrets-matrix
secrets:
  vault: fleet-kv
  names: [kv-password, kv-special, kv-pem]
agents:
  fixer: {model: gpt-4o}
safety: {max_iterations: 2}
steps:
  - id: leak
    gate:
      run: sh leak.sh
      env:
        PW: "{{ secrets.kv_password }}"
        SPECIAL: "{{ secrets.kv_special }}"
        PEM: "{{ secrets.kv_pem }}"
repair:
  - {id: propose, fix: {agent: fixer}}
"#;

/// A reply that echoes secrets back (the tape and the audit log keep replies) with a patch that
/// does not apply.
fn echoing_reply() -> Reply {
    Reply::text(&format!(
        "I saw {VAULT_PASSWORD} and {ENV_TOKEN}.\n\n```diff\n--- a/missing.txt\n+++ b/missing.txt\n@@ -1 +1 @@\n-a\n+b\n```\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_secret_kind_is_clean_in_every_output() {
    let pem = pem();
    let vault = AzureServer::start(AzureConfig::with_secrets(&[
        ("kv-password", VAULT_PASSWORD),
        ("kv-special", VAULT_SPECIAL),
        ("kv-pem", &pem),
    ]));
    let fake = OpenAiFake::start().await;
    fake.push(Route::OpenAi, echoing_reply())
        .push(Route::OpenAi, echoing_reply());
    let project = Project::new();
    project
        .file("w.yaml", WORKFLOW)
        .file("leak.sh", &leak_script());
    let tapes = tempfile::tempdir().expect("temp dir");
    let tape = tapes.path().join("tape.jsonl");
    let artifacts = project.artifacts();
    let mut command = project.command(&[
        "run",
        "w.yaml",
        "--artifacts",
        artifacts.to_str().expect("utf-8 path"),
        "--record",
        tape.to_str().expect("utf-8 path"),
        "--color",
        "never",
    ]);
    signed_in_with_managed_identity(&mut command, &vault)
        .env("OPENAI_BASE_URL", fake.base_url())
        .env("OPENAI_API_KEY", PROVIDER_KEY)
        .env("DEPLOY_TOKEN", ENV_TOKEN);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("binary runs");
    let result = RunResult::from(output);

    // The gate really printed everything, and the fixer was really asked.
    let log = project.read("artifacts/steps/1-steps/leak.log");
    assert!(log.contains("vault: ***"), "{log}");
    assert!(log.contains("[REDACTED:stripe-key]"), "{log}");
    let requests = fake.requests();
    assert!(
        !requests.is_empty(),
        "the fixer was asked:\n{}",
        result.stderr
    );

    let mut outputs = vec![
        ("console (stderr)".to_owned(), result.stderr.clone()),
        ("stdout".to_owned(), result.stdout.clone()),
        (
            "--record tape".to_owned(),
            std::fs::read_to_string(&tape).expect("tape written"),
        ),
    ];
    outputs.extend(files_under(&artifacts));
    outputs.extend(
        requests
            .iter()
            .enumerate()
            .map(|(n, request)| (format!("prompt {}", n + 1), request.raw_body.clone())),
    );
    for name in [
        "run.log",
        "junit.xml",
        "summary.md",
        "audit.jsonl",
        "metrics.json",
    ] {
        assert!(
            outputs.iter().any(|(path, _)| path.ends_with(name)),
            "{name} written"
        );
    }

    let mut kinds = known_values();
    kinds.extend(
        SHAPES
            .iter()
            .map(|(line, secret)| (*line, (*secret).to_owned())),
    );
    let mut leaks = Vec::new();
    for (kind, secret) in &kinds {
        for (output, text) in &outputs {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{kind} in {output}"));
            }
        }
    }
    assert!(leaks.is_empty(), "leaked:\n{}", leaks.join("\n"));
}
