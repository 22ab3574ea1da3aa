//! The verify step against a scripted local HTTP service, through the real reqwest client.

use std::time::{Duration, Instant};

use agent_orch::steps::verify;
use agent_orch::steps::{StepOutcome, StepStatus};
use agent_orch::workflow::model::StepKind;
use agent_orch::workflow::step_config::verify::VerifyConfig;
use serde_json::json;

use crate::support::http_service::{HttpService, PASSWORD, Script, TOKEN};
use crate::support::step_harness::StepHarness;

fn decode(yaml: &str) -> VerifyConfig {
    serde_saphyr::from_str(yaml).unwrap_or_else(|err| panic!("{yaml}\n{err}"))
}

fn decode_error(yaml: &str) -> String {
    match serde_saphyr::from_str::<VerifyConfig>(yaml) {
        Ok(config) => panic!("decoded {config:?} from {yaml}"),
        Err(err) => err.to_string(),
    }
}

/// A harness whose templates see `env.url` = the service and `vars.password`.
fn harness(id: &str, config: &VerifyConfig, service_url: &str) -> StepHarness {
    StepHarness::new(
        id,
        StepKind::Verify(config.clone()),
        json!({"env": {"url": service_url}, "vars": {"password": PASSWORD, "api_key": "key-0123456789abcdef"}}),
    )
}

async fn run(id: &str, yaml: &str, service: &HttpService) -> (StepOutcome, StepHarness) {
    let config = decode(yaml);
    let harness = harness(id, &config, &service.url());
    let outcome = verify::run(&config, &harness.ctx()).await;
    (outcome, harness)
}

#[test]
fn design_example_decodes_unchanged() {
    let config = decode(
        r#"{http: {url: "{{ env.url }}/health", expect_status: 200, retries: 3, timeout: 10s}}"#,
    );
    let VerifyConfig::Http(check) = config else {
        panic!("expected an http check, got {config:?}");
    };
    assert_eq!(check.url.source(), "{{ env.url }}/health");
    assert_eq!(check.expect_status.map(|s| s.0), Some(vec![200]));
    assert_eq!(check.retries, 3);
    assert_eq!(check.timeout.map(|t| t.0), Some(Duration::from_secs(10)));

    let config = decode("{script: ./scripts/smoke_test.sh}");
    let VerifyConfig::Script(script) = config else {
        panic!("expected a script, got {config:?}");
    };
    assert_eq!(script.run.source(), "./scripts/smoke_test.sh");
}

#[test]
fn decoding_rejects_ambiguous_or_invalid_configs() {
    let cases = [
        (
            "{}",
            "verify needs one of `http`, `flow`, `script`, `prometheus` or `log_analytics`",
        ),
        (
            "{http: {url: x}, script: ./smoke.sh}",
            "verify takes exactly one of `http`, `flow`, `script`, `prometheus` or `log_analytics`, got `http` and `script`",
        ),
        ("{htp: {url: x}}", "unknown field `htp`"),
        ("{http: {url: x, retry: 3}}", "unknown field `retry`"),
        (
            "{http: {url: x, body: a, json: {b: 1}}}",
            "`body` and `json` cannot both be set",
        ),
        (
            "{http: {url: x, expect_status: 99}}",
            "`99` is not an http status (100 to 599)",
        ),
        (
            "{http: {url: x, expect_json: {status: ok}}}",
            "`status` is not a JSON pointer",
        ),
        ("{http: {url: x, method: get}}", "unknown variant `get`"),
        (
            "{http: {url: x, success_condition: 'response.status =='}}",
            "invalid condition `response.status ==`",
        ),
        (
            "{flow: {requests: []}}",
            "a flow needs at least one request",
        ),
        (
            "{flow: {requests: [{name: a, url: x, capture: {t: {regex: '('}}}]}}",
            "invalid regex `(`",
        ),
        (
            "{flow: {requests: [{name: a, url: x}, {name: a, url: y}]}}",
            "flow request 2 \"a\": the name is used by an earlier request",
        ),
        (
            "{flow: {requests: [{name: a, url: x, capture: {t: {json: /a, header: b}}}]}}",
            "a capture takes exactly one of `json`, `header` or `regex`, got `json` and `header`",
        ),
    ];
    for (yaml, expected) in cases {
        let error = decode_error(yaml);
        assert!(
            error.contains(expected),
            "{yaml}\n  expected: {expected}\n  got: {error}"
        );
    }
    let config = decode("{http: {url: x, expect_status: [200, 204], method: POST}}");
    let VerifyConfig::Http(check) = config else {
        panic!("expected an http check");
    };
    assert_eq!(check.expect_status.map(|s| s.0), Some(vec![200, 204]));
}

#[tokio::test]
async fn passes_on_expected_response_and_publishes_outputs() {
    let service = HttpService::start(Script::default()).await;
    let (outcome, harness) = run(
        "health",
        r#"{http: {url: "{{ env.url }}/json", expect_status: 200, expect_body_contains: "1.2.3",
                   expect_json: {/status: ok, /checks/0/ok: true, /count: 3}}}"#,
        &service,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Passed, "{}", outcome.message);
    assert!(
        outcome.message.starts_with("status 200 in "),
        "{}",
        outcome.message
    );
    assert_eq!(outcome.outputs["status"], "200");
    assert_eq!(outcome.outputs["attempts"], "1");
    assert!(outcome.outputs["latency_ms"].parse::<u64>().is_ok());
    assert_eq!(outcome.evidence, None);
    let log = harness.log();
    let line = format!("attempt 1/1: GET {}/json -> 200 in ", service.url());
    assert!(log.contains(&line), "{log}");
    assert!(log.contains(r#"    body: {\"checks\""#), "{log}");
    assert!(log.contains(r#"\"status\":\"ok\""#), "{log}");
    assert!(log.contains("result: passed: status 200"), "{log}");
    assert_eq!(
        outcome.log_path.as_deref(),
        Some(harness.log_path().as_path())
    );
}

#[tokio::test]
async fn retries_until_success_spaced_by_interval() {
    let service = HttpService::start(Script {
        fail_first: 2,
        ..Script::default()
    })
    .await;
    let (outcome, _harness) = run(
        "health",
        r#"{http: {url: "{{ env.url }}/flaky", retries: 3, interval: 150ms}}"#,
        &service,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Passed, "{}", outcome.message);
    assert!(
        outcome.message.ends_with("after 3 attempts"),
        "{}",
        outcome.message
    );
    assert_eq!(outcome.outputs["attempts"], "3");
    assert_eq!(service.hits(), ["/flaky", "/flaky", "/flaky"]);
    for gap in service.gaps() {
        assert!(gap >= Duration::from_millis(150), "attempts {gap:?} apart");
    }
}

#[tokio::test]
async fn wrong_status_fails_after_all_attempts_with_evidence() {
    let service = HttpService::start(Script::default()).await;
    let (outcome, harness) = run(
        "health",
        r#"{http: {url: "{{ env.url }}/status/503", expect_status: 200, retries: 3, interval: 10ms}}"#,
        &service,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(
        outcome.message,
        "expected status 200, got 503 after 4 attempts"
    );
    assert_eq!(service.hits().len(), 4);
    let evidence = outcome.evidence.expect("evidence for the fix step");
    assert!(
        evidence.starts_with(&format!("GET {}/status/503\nstatus 503 in ", service.url())),
        "{evidence}"
    );
    assert!(evidence.contains("content-type: text/plain"), "{evidence}");
    assert!(evidence.ends_with("\n\nstatus 503"), "{evidence}");
    assert_eq!(outcome.outputs["status"], "503");
    assert_eq!(
        harness
            .log()
            .matches("failure: expected status 200, got 503")
            .count(),
        4
    );
}

#[tokio::test]
async fn json_pointer_mismatch_names_pointer_and_values() {
    let service = HttpService::start(Script {
        fail_first: u32::MAX,
        ..Script::default()
    })
    .await;
    let (outcome, _harness) = run(
        "health",
        r#"{http: {url: "{{ env.url }}/flaky", expect_status: [200, 503], expect_json: {/status: ok}}}"#,
        &service,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(outcome.message, r#"/status: expected "ok", got "degraded""#);
}

#[tokio::test]
async fn body_contains_failure_quotes_the_text() {
    let service = HttpService::start(Script::default()).await;
    let (outcome, _harness) = run(
        "health",
        r#"{http: {url: "{{ env.url }}/json", expect_body_contains: "2.0.0"}}"#,
        &service,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(outcome.message, r#"body does not contain "2.0.0""#);
}

#[tokio::test]
async fn latency_over_limit_fails() {
    let service = HttpService::start(Script::default()).await;
    let (outcome, _harness) = run(
        "health",
        r#"{http: {url: "{{ env.url }}/slow/300", max_latency: 100ms}}"#,
        &service,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert!(
        outcome.message.starts_with("latency "),
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.ends_with("ms over limit 100ms"),
        "{}",
        outcome.message
    );
    let latency: u64 = outcome.outputs["latency_ms"]
        .parse()
        .expect("latency output");
    assert!(latency >= 300, "{latency}");
}

#[tokio::test]
async fn per_request_timeout_is_an_error_measurement() {
    let service = HttpService::start(Script::default()).await;
    let started = Instant::now();
    let (outcome, _harness) = run(
        "health",
        r#"{http: {url: "{{ env.url }}/slow/3000", timeout: 200ms, retries: 1, interval: 10ms}}"#,
        &service,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(
        outcome.message,
        format!(
            "request timed out after 200ms ({}/slow/3000) after 2 attempts",
            service.url()
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let evidence = outcome.evidence.expect("evidence");
    assert!(
        evidence.contains("no response: request timed out"),
        "{evidence}"
    );
}

#[tokio::test]
async fn step_timeout_bounds_retries() {
    let service = HttpService::start(Script::default()).await;
    let config = decode(
        r#"{http: {url: "{{ env.url }}/status/503", expect_status: 200, retries: 1000, interval: 100ms}}"#,
    );
    let mut harness = harness("health", &config, &service.url());
    harness.timeout = Some(Duration::from_millis(450));
    let started = Instant::now();
    let outcome = verify::run(&config, &harness.ctx()).await;
    let elapsed = started.elapsed();
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(
        outcome.message,
        "timed out after 450ms; last attempt: expected status 200, got 503"
    );
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    let attempts: usize = outcome.outputs["attempts"].parse().expect("attempts");
    assert!((1..=6).contains(&attempts), "{attempts} attempts");
    assert!(outcome.evidence.is_some());
}

#[tokio::test]
async fn cancellation_stops_a_request_in_flight() {
    let service = HttpService::start(Script::default()).await;
    let config = decode(r#"{http: {url: "{{ env.url }}/slow/5000", timeout: 10s}}"#);
    let harness = harness("health", &config, &service.url());
    let cancel = harness.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let outcome = verify::run(&config, &harness.ctx()).await;
    assert_eq!(outcome.status, StepStatus::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(harness.log().contains("result: cancelled"));
}

#[tokio::test]
async fn neither_condition_holding_is_inconclusive_not_a_pass() {
    let service = HttpService::start(Script {
        ready_after: u32::MAX,
        ..Script::default()
    })
    .await;
    let yaml = r#"{http: {url: "{{ env.url }}/ready", retries: 2, interval: 10ms,
                         success_condition: "response.json.ready",
                         failure_condition: "response.json.error is defined"}}"#;
    let (outcome, _harness) = run("ready", yaml, &service).await;
    assert_eq!(outcome.status, StepStatus::Inconclusive);
    assert_eq!(
        outcome.message,
        "inconclusive after 3 attempts: neither success condition `response.json.ready` nor failure condition held (status 200)"
    );
    assert!(!outcome.status.is_success());
    assert_eq!(service.hits().len(), 3);
}

#[tokio::test]
async fn inconclusive_limit_stops_early() {
    let service = HttpService::start(Script {
        ready_after: u32::MAX,
        ..Script::default()
    })
    .await;
    let yaml = r#"{http: {url: "{{ env.url }}/ready", retries: 10, interval: 10ms, inconclusive_limit: 1,
                         success_condition: "response.json.ready",
                         failure_condition: "response.json.error is defined"}}"#;
    let (outcome, _harness) = run("ready", yaml, &service).await;
    assert_eq!(outcome.status, StepStatus::Inconclusive);
    assert!(
        outcome
            .message
            .starts_with("inconclusive (2 inconclusive measurements, limit 1): "),
        "{}",
        outcome.message
    );
    assert_eq!(service.hits().len(), 2);
}

#[tokio::test]
async fn conditions_pass_once_ready_and_fail_decisively() {
    let service = HttpService::start(Script {
        ready_after: 2,
        ..Script::default()
    })
    .await;
    let conditions = r#"success_condition: "response.json.ready", failure_condition: "response.json.error is defined""#;
    let yaml = format!(
        r#"{{http: {{url: "{{{{ env.url }}}}/ready", retries: 5, interval: 10ms, {conditions}}}}}"#
    );
    let (outcome, _harness) = run("ready", &yaml, &service).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{}", outcome.message);
    assert_eq!(outcome.outputs["attempts"], "3");

    let yaml = format!(
        r#"{{http: {{url: "{{{{ env.url }}}}/broken", retries: 5, interval: 10ms, {conditions}}}}}"#
    );
    let (outcome, _harness) = run("ready", &yaml, &service).await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(
        outcome.message,
        "failure condition `response.json.error is defined` held after 6 attempts"
    );
}

#[tokio::test]
async fn consecutive_failure_limit_stops_before_attempts_run_out() {
    let service = HttpService::start(Script::default()).await;
    let (outcome, _harness) = run(
        "health",
        r#"{http: {url: "{{ env.url }}/status/500", retries: 10, interval: 10ms, consecutive_failure_limit: 2}}"#,
        &service,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(
        outcome.message,
        "expected a 2xx status, got 500 (3 consecutive failures, limit 2)"
    );
    assert_eq!(service.hits().len(), 3);
}

#[tokio::test]
async fn connection_refused_is_named() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let config = decode(r#"{http: {url: "{{ env.url }}/health", retries: 1, interval: 10ms}}"#);
    let harness = harness("health", &config, &url);
    let outcome = verify::run(&config, &harness.ctx()).await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(
        outcome.message,
        format!("connection refused ({url}/health) after 2 attempts")
    );
    assert_eq!(
        outcome.evidence.as_deref(),
        Some(format!("GET {url}/health\nno response: connection refused ({url}/health)").as_str())
    );
}

#[tokio::test]
async fn redirects_are_followed_unless_turned_off() {
    let service = HttpService::start(Script::default()).await;
    let (outcome, harness) = run(
        "health",
        r#"{http: {url: "{{ env.url }}/redirect", expect_json: {/status: ok}}}"#,
        &service,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Passed, "{}", outcome.message);
    assert!(
        harness
            .log()
            .contains(&format!("GET {}/json -> 200", service.url()))
    );

    let (outcome, _harness) = run(
        "health",
        r#"{http: {url: "{{ env.url }}/redirect", follow_redirects: false, expect_status: 302,
                   success_condition: "response.headers.location == '/json'"}}"#,
        &service,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Passed, "{}", outcome.message);
    assert_eq!(service.hits(), ["/redirect", "/json", "/redirect"]);
}

#[tokio::test]
async fn method_headers_and_body_are_sent_and_credentials_masked() {
    let service = HttpService::start(Script::default()).await;
    let (outcome, harness) = run(
        "echo",
        r#"{http: {url: "{{ env.url }}/echo", method: PUT,
                   headers: {X-Release: "v2", Authorization: "Bearer {{ vars.api_key }}"},
                   json: {release: "{{ env.url }}", replicas: 3},
                   expect_json: {/method: PUT, /headers/x-release: v2, /headers/content-type: application/json},
                   expect_body_contains: "nothing like this"}}"#,
        &service,
    )
    .await;
    // Every expect_json entry matched (else the message would name it); the body check failed.
    assert_eq!(
        outcome.message,
        r#"body does not contain "nothing like this""#
    );
    let evidence = outcome.evidence.expect("evidence");
    let sent: serde_json::Value = serde_json::from_str(&format!(
        "{{{}",
        evidence
            .split_once("\n\n{")
            .expect("json body in evidence")
            .1
    ))
    .expect("echoed json");
    let body: serde_json::Value =
        serde_json::from_str(sent["body"].as_str().expect("body")).expect("sent json");
    assert_eq!(body, json!({"release": service.url(), "replicas": 3}));
    assert_eq!(sent["headers"]["authorization"], "***");
    assert!(!evidence.contains("key-0123456789abcdef"), "{evidence}");
    assert!(
        !harness.log().contains("key-0123456789abcdef"),
        "{}",
        harness.log()
    );
}

#[tokio::test]
async fn template_errors_stop_at_once() {
    let service = HttpService::start(Script::default()).await;
    let (outcome, _harness) = run(
        "health",
        r#"{http: {url: "{{ env.missing }}/health", retries: 5}}"#,
        &service,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert!(
        outcome
            .message
            .starts_with("failed to render url `{{ env.missing }}/health`"),
        "{}",
        outcome.message
    );
    assert_eq!(outcome.outputs["attempts"], "1");
    assert!(service.hits().is_empty());
}

const LOGIN_FLOW: &str = r#"
flow:
  requests:
    - name: login
      method: POST
      url: "{{ env.url }}/login"
      json: {user: alice, password: "{{ vars.password }}"}
      expect_status: 200
      capture:
        token: {json: /token}
    - name: dashboard
      url: "{{ env.url }}/dashboard"
      headers: {Authorization: "Bearer {{ flow.token }}"}
      expect_json: {/plan: pro}
      capture:
        user: {json: /user}
        plan: {regex: '"plan":"(\w+)"'}
        content_type: {header: Content-Type}
"#;

#[tokio::test]
async fn flow_feeds_captured_token_to_the_next_request() {
    let service = HttpService::start(Script::default()).await;
    let (outcome, harness) = run("user-journey", LOGIN_FLOW, &service).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{}", outcome.message);
    assert_eq!(outcome.message, r#"flow "user-journey": 2 requests passed"#);
    assert_eq!(outcome.outputs["user"], "alice");
    assert_eq!(outcome.outputs["plan"], "pro");
    assert_eq!(outcome.outputs["content_type"], "application/json");
    assert!(
        !outcome.outputs.contains_key("token"),
        "credentials are not published"
    );
    assert_eq!(service.hits(), ["/login", "/dashboard"]);
    let log = harness.log();
    assert!(
        log.contains(r#"attempt 1/1: request 2 "dashboard": GET"#),
        "{log}"
    );
    assert!(
        !log.contains(TOKEN),
        "the captured token leaked into the log:\n{log}"
    );
}

#[tokio::test]
async fn failed_flow_request_is_named() {
    let service = HttpService::start(Script::default()).await;
    let yaml = LOGIN_FLOW.replace("Bearer {{ flow.token }}", "Bearer wrong-token");
    let (outcome, _harness) = run("user-journey", &yaml, &service).await;
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(
        outcome.message,
        r#"flow "user-journey" request 2 "dashboard": expected a 2xx status, got 401"#
    );
    let evidence = outcome.evidence.expect("evidence");
    assert!(evidence.contains("status 401"), "{evidence}");

    let yaml = LOGIN_FLOW.replace("{json: /token}", "{json: /session/token}");
    let (outcome, _harness) = run("user-journey", &yaml, &service).await;
    assert_eq!(
        outcome.message,
        r#"flow "user-journey" request 1 "login": capture `token`: no value at `/session/token` in the response"#
    );
}

#[tokio::test]
async fn flow_is_retried_as_a_whole() {
    let service = HttpService::start(Script {
        fail_first: 1,
        ..Script::default()
    })
    .await;
    let yaml = r#"
flow:
  retries: 2
  interval: 10ms
  requests:
    - {name: first, url: "{{ env.url }}/json"}
    - {name: second, url: "{{ env.url }}/flaky"}
"#;
    let (outcome, _harness) = run("journey", yaml, &service).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{}", outcome.message);
    assert_eq!(outcome.outputs["attempts"], "2");
    assert_eq!(service.hits(), ["/json", "/flaky", "/json", "/flaky"]);
}

#[test]
fn json_schema_accepts_the_design_example_and_rejects_two_kinds() {
    let schema = serde_json::to_value(schemars::schema_for!(VerifyConfig)).expect("schema json");
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let valid = [
        json!({"http": {"url": "{{ env.url }}/health", "expect_status": 200, "retries": 3, "timeout": "10s"}}),
        json!({"http": {"url": "x", "expect_status": [200, 204], "method": "POST", "json": {"a": 1}}}),
        json!({"script": "./scripts/smoke_test.sh"}),
        json!({"flow": {"requests": [{"name": "login", "url": "x", "capture": {"token": {"json": "/token"}}}]}}),
    ];
    for instance in valid {
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{instance}: {errors:?}");
    }
    let invalid = [
        json!({}),
        json!({"http": {"url": "x"}, "script": "y"}),
        json!({"http": {"url": "x", "retry": 3}}),
        json!({"http": {"url": "x", "expect_status": 42}}),
        json!({"flow": {"requests": [{"name": "a", "url": "x", "capture": {"t": {"xpath": "/a"}}}]}}),
    ];
    for instance in invalid {
        assert!(
            !validator.is_valid(&instance),
            "{instance} should not validate"
        );
    }
}
