//! Telemetry end to end: the real binary exports its run as one trace to a local OTLP/HTTP
//! collector and to an Application Insights ingestion fake; secrets stay masked in what is
//! sent; an endpoint that is down or silent neither fails nor holds up the run.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::keyvault::files_under;
use crate::support::cli::{Project, RunResult};
use crate::support::http_service::{HttpService, Script};
use crate::support::telemetry_fake::{INSTRUMENTATION_KEY, TelemetryFake};

/// An OTLP header value: an API key, so a secret.
const OTLP_KEY: &str = "otlp-k3y-6e1f9a";

/// A run that fails once and is repaired: two iterations, a repair step in the first.
const REPAIRED: &str = r#"name: traced
safety: {max_iterations: 3}
steps:
  - {id: build, gate: "echo built with $OTEL_EXPORTER_OTLP_HEADERS"}
  - {id: test, gate: "test -f fixed"}
repair:
  - {id: mend, gate: "touch fixed"}
"#;

fn run(project: &Project, env: &[(&str, &str)]) -> (RunResult, Duration) {
    let artifacts = project.artifacts();
    let mut command = project.command(&[
        "run",
        "workflow.yaml",
        "--artifacts",
        artifacts.to_str().unwrap(),
        "--quiet",
    ]);
    command.envs(env.iter().copied());
    let started = Instant::now();
    let output = command.output().unwrap();
    (RunResult::from(output), started.elapsed())
}

/// Every span of every OTLP request, in order.
fn otlp_spans(fake: &TelemetryFake) -> Vec<Value> {
    fake.received("/v1/traces")
        .iter()
        .flat_map(|request| {
            request.body["resourceSpans"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|resource| resource["scopeSpans"].as_array().unwrap().clone())
                .flat_map(|scope| scope["spans"].as_array().unwrap().clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// An attribute's value as text (`intValue` is a string in OTLP JSON too).
fn attribute(span: &Value, key: &str) -> Option<String> {
    let value = &span["attributes"]
        .as_array()?
        .iter()
        .find(|attribute| attribute["key"] == key)?["value"];
    Some(match value {
        Value::Object(map) => match map.values().next()? {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        },
        _ => return None,
    })
}

fn nanos(span: &Value, key: &str) -> u128 {
    span[key].as_str().unwrap().parse().unwrap()
}

fn named<'s>(spans: &'s [Value], name: &str, iteration: &str) -> &'s Value {
    spans
        .iter()
        .find(|span| {
            span["name"] == name
                && attribute(span, "agent_orch.iteration").as_deref() == Some(iteration)
        })
        .unwrap_or_else(|| panic!("no span {name} in iteration {iteration}: {spans:#?}"))
}

#[test]
fn a_run_is_one_trace_of_iterations_and_steps_at_the_collector_and_in_application_insights() {
    let fake = TelemetryFake::start();
    let project = Project::new();
    project.file("workflow.yaml", REPAIRED);
    let base = fake.otlp_base();
    let connection = fake.connection_string(INSTRUMENTATION_KEY);
    let headers = format!("x-honeycomb-team={OTLP_KEY}");
    let (result, _) = run(
        &project,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &base),
            ("OTEL_EXPORTER_OTLP_HEADERS", &headers),
            ("OTEL_SERVICE_NAME", "deployer"),
            ("APPLICATIONINSIGHTS_CONNECTION_STRING", &connection),
        ],
    );
    result.assert_code(0);
    assert!(!result.stderr.contains("warning"), "{}", result.stderr);

    let requests = fake.received("/v1/traces");
    assert_eq!(requests.len(), 1, "one export at the end of the run");
    assert_eq!(requests[0].headers["x-honeycomb-team"], OTLP_KEY);
    let resource = &requests[0].body["resourceSpans"][0]["resource"];
    assert_eq!(attribute(resource, "service.name").unwrap(), "deployer");

    let spans = otlp_spans(&fake);
    // run, 2 iterations, build + test + mend in the first, build + test in the second.
    assert_eq!(spans.len(), 8, "{spans:#?}");
    let run = &spans[0];
    assert_eq!(run["name"], "run traced");
    assert!(run.get("parentSpanId").is_none());
    let trace_id = run["traceId"].as_str().unwrap();
    assert!(spans.iter().all(|span| span["traceId"] == trace_id));
    let ids: HashSet<&str> = spans
        .iter()
        .map(|span| span["spanId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), spans.len(), "span ids are unique");
    assert_eq!(run["status"]["code"], 1);
    assert_eq!(
        attribute(run, "agent_orch.run.outcome").unwrap(),
        "succeeded"
    );
    assert_eq!(attribute(run, "agent_orch.run.iterations").unwrap(), "2");
    assert_eq!(attribute(run, "agent_orch.tokens.total").unwrap(), "0");

    let first = named(&spans, "iteration 1", "1");
    let second = named(&spans, "iteration 2", "2");
    for iteration in [first, second] {
        assert_eq!(iteration["parentSpanId"], run["spanId"]);
        assert!(nanos(iteration, "startTimeUnixNano") >= nanos(run, "startTimeUnixNano"));
        assert!(nanos(iteration, "endTimeUnixNano") <= nanos(run, "endTimeUnixNano"));
    }
    assert_eq!(first["status"]["code"], 2);
    assert_eq!(
        attribute(first, "agent_orch.iteration.passed").unwrap(),
        "false"
    );
    let fingerprint = attribute(first, "agent_orch.failure.fingerprint").unwrap();
    assert_eq!(fingerprint.len(), 16, "{fingerprint}");
    assert_eq!(
        attribute(run, "agent_orch.failure.fingerprint").unwrap(),
        fingerprint
    );
    assert_eq!(
        attribute(first, "agent_orch.failure").unwrap(),
        "test: exit code 1"
    );
    assert_eq!(second["status"]["code"], 1);

    let failed_test = named(&spans, "step test", "1");
    assert_eq!(failed_test["parentSpanId"], first["spanId"]);
    assert_eq!(failed_test["status"]["code"], 2);
    assert_eq!(failed_test["status"]["message"], "exit code 1");
    assert_eq!(
        attribute(failed_test, "agent_orch.step.exit_code").unwrap(),
        "1"
    );
    assert_eq!(
        attribute(failed_test, "agent_orch.step.kind").unwrap(),
        "gate"
    );
    let mend = named(&spans, "step mend", "1");
    assert_eq!(mend["parentSpanId"], first["spanId"]);
    assert_eq!(attribute(mend, "agent_orch.step.phase").unwrap(), "repair");
    // The repair phase is part of its iteration.
    assert!(nanos(mend, "endTimeUnixNano") <= nanos(first, "endTimeUnixNano"));
    assert!(nanos(first, "endTimeUnixNano") <= nanos(second, "startTimeUnixNano"));
    let passed_test = named(&spans, "step test", "2");
    assert_eq!(passed_test["parentSpanId"], second["spanId"]);
    assert_eq!(passed_test["status"]["code"], 1);

    // Application Insights: the same spans as one operation, the run its request.
    let tracks = fake.received("/v2.1/track");
    assert_eq!(tracks.len(), 1);
    let items = tracks[0].body.as_array().unwrap();
    assert_eq!(items.len(), spans.len());
    let request = &items[0];
    assert_eq!(request["name"], "Microsoft.ApplicationInsights.Request");
    assert_eq!(request["data"]["baseType"], "RequestData");
    assert_eq!(request["data"]["baseData"]["id"], run["spanId"]);
    assert_eq!(request["data"]["baseData"]["success"], true);
    assert_eq!(request["tags"]["ai.cloud.role"], "deployer");
    let otlp_parents: HashMap<&str, &str> = spans
        .iter()
        .filter_map(|span| Some((span["spanId"].as_str()?, span["parentSpanId"].as_str()?)))
        .collect();
    for item in &items[1..] {
        assert_eq!(item["data"]["baseType"], "RemoteDependencyData");
        assert_eq!(item["tags"]["ai.operation.id"], trace_id);
        let id = item["data"]["baseData"]["id"].as_str().unwrap();
        assert_eq!(
            item["tags"]["ai.operation.parentId"].as_str(),
            otlp_parents.get(id).copied(),
            "{item:#}"
        );
    }
    assert!(items.iter().all(|item| item["iKey"] == INSTRUMENTATION_KEY));

    // The header value is a credential: masked in what the step printed, like a secret.
    let mut logs = 0;
    for (path, text) in files_under(&project.artifacts()) {
        assert!(!text.contains(OTLP_KEY), "{path} holds the OTLP key");
        logs += usize::from(text.contains("built with x-honeycomb-team=***"));
    }
    assert!(logs > 0, "the build step's log is among the artifacts");
}

#[test]
fn a_secret_in_a_failing_step_is_masked_in_every_exported_payload() {
    const SECRET: &str = "hunter2-rotating-9f8e";
    let fake = TelemetryFake::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(HttpService::start(Script::default()));
    let project = Project::new();
    project.file(
        "workflow.yaml",
        &format!(
            r#"name: leaky
safety: {{max_iterations: 1}}
steps:
  - id: health
    verify: {{http: {{url: "http://{}/json", expect_body_contains: "{SECRET}"}}}}
"#,
            app.addr
        ),
    );
    let base = fake.otlp_base();
    let connection = fake.connection_string(INSTRUMENTATION_KEY);
    let (result, _) = run(
        &project,
        &[
            // A secret-named variable: the run masks its value everywhere.
            ("DEPLOY_TOKEN", SECRET),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &base),
            ("APPLICATIONINSIGHTS_CONNECTION_STRING", &connection),
        ],
    );
    result.assert_code(1);

    let spans = otlp_spans(&fake);
    let health = named(&spans, "step health", "1");
    let message = attribute(health, "agent_orch.step.message").unwrap();
    assert_eq!(message, "body does not contain \"***\"");
    assert_eq!(health["status"]["message"], message);
    assert!(
        attribute(&spans[0], "agent_orch.run.reason")
            .unwrap()
            .contains("***")
    );
    let otlp = fake.received("/v1/traces")[0].body.to_string();
    let track = fake.received("/v2.1/track")[0].body.to_string();
    for payload in [otlp, track] {
        assert!(payload.contains("body does not contain"), "{payload}");
        assert!(!payload.contains(SECRET), "{payload}");
    }
}

#[test]
fn an_endpoint_that_is_down_or_silent_neither_fails_nor_holds_up_the_run() {
    let project = Project::new();
    project.file(
        "workflow.yaml",
        "name: quick\nsteps:\n  - {id: build, gate: \"echo built\"}\n",
    );
    let (result, baseline) = run(&project, &[]);
    result.assert_code(0);

    // Down: nothing listens on the port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    // Silent: the kernel accepts the connection, nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    // Application Insights answers, but refuses every item (an unknown key).
    let fake = TelemetryFake::start();
    let wrong_key = fake.connection_string("00000000-0000-0000-0000-000000000000");

    let (result, down) = run(
        &project,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &dead_url),
            ("APPLICATIONINSIGHTS_CONNECTION_STRING", &wrong_key),
        ],
    );
    result.assert_code(0);
    let stderr = &result.stderr;
    assert!(
        stderr.contains("warning: telemetry to the OTLP endpoint not sent: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: telemetry to Application Insights not sent: 400 Bad Request: ")
            && stderr.contains("Invalid instrumentation key"),
        "{stderr}"
    );
    assert!(
        down < baseline + Duration::from_secs(2),
        "a refused connection took {down:?} (the run alone {baseline:?})"
    );

    let (result, silent_run) = run(
        &project,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &silent_url),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "300"),
        ],
    );
    result.assert_code(0);
    assert!(
        result
            .stderr
            .contains("warning: telemetry to the OTLP endpoint not sent: timed out"),
        "{}",
        result.stderr
    );
    assert!(
        silent_run < baseline + Duration::from_secs(3),
        "a silent collector took {silent_run:?} (the run alone {baseline:?})"
    );
    drop(silent);
}
