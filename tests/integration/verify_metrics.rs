//! Metric checks through the real clients: reqwest to a Prometheus API fake, and the Azure SDK
//! pipeline (Entra ID tokens from the credential chain) through the transport override to Azure
//! Monitor managed Prometheus and Log Analytics fakes. Values reach the message, the outputs,
//! and a run's junit and summary; the baseline is measured before the deploy.

use std::time::{Duration, Instant};

use agent_orch::azure::credential::CredentialSources;
use agent_orch::azure::sign_in::AzureSignIn;
use agent_orch::cluster::fake::{self, FakeOptions};
use agent_orch::steps::verify;
use agent_orch::steps::{StepOutcome, StepStatus};
use agent_orch::workflow::model::StepKind;
use agent_orch::workflow::step_config::verify::VerifyConfig;
use serde_json::json;

use crate::support::azure_server::{
    AzureConfig, AzureServer, LOG_ANALYTICS_ACCESS_TOKEN, PROMETHEUS_ACCESS_TOKEN, WORKSPACE_ID,
    service_principal_connection,
};
use crate::support::cli::Project;
use crate::support::kube_api::{NAMESPACE, deployment_manifest};
use crate::support::metric_script::{MetricAnswer, MetricScript};
use crate::support::step_harness::StepHarness;

const ERROR_RATE: &str =
    r#"sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))"#;

fn decode(yaml: &str) -> VerifyConfig {
    serde_saphyr::from_str(yaml).unwrap_or_else(|err| panic!("{yaml}\n{err}"))
}

/// A server whose Prometheus and Log Analytics fakes answer as scripted.
fn server(prometheus: &[MetricAnswer], log_analytics: &[MetricAnswer]) -> AzureServer {
    AzureServer::start(AzureConfig {
        prometheus: MetricScript::new(prometheus.iter().cloned()),
        log_analytics: MetricScript::new(log_analytics.iter().cloned()),
        ..AzureConfig::with_secrets(&[])
    })
}

/// A service principal connection, signing in at the Entra fake through the override.
fn azure_sign_in(server: &AzureServer) -> AzureSignIn {
    let connection = service_principal_connection();
    AzureSignIn::new(
        CredentialSources {
            connection: Some(&connection),
            ..Default::default()
        },
        Some(&server.url()),
    )
}

fn harness(id: &str, config: &VerifyConfig, server: &AzureServer) -> StepHarness {
    let mut harness = StepHarness::new(
        id,
        StepKind::Verify(config.clone()),
        json!({"env": {"prometheus": server.url(), "workspace": WORKSPACE_ID}}),
    );
    harness.azure = azure_sign_in(server);
    harness.timeout = Some(Duration::from_secs(30));
    harness
}

async fn run_with(harness: &StepHarness, config: &VerifyConfig) -> StepOutcome {
    verify::run(config, &harness.ctx()).await
}

async fn run(yaml: &str, server: &AzureServer) -> (StepOutcome, StepHarness) {
    let config = decode(yaml);
    let harness = harness("error-rate", &config, server);
    let outcome = run_with(&harness, &config).await;
    (outcome, harness)
}

fn prometheus(settings: &str) -> String {
    format!(
        r#"{{prometheus: {{url: "{{{{ env.prometheus }}}}", query: '{ERROR_RATE}', name: error rate, {settings}}}}}"#
    )
}

#[tokio::test]
async fn a_prometheus_value_that_meets_the_success_condition_passes_with_its_value() {
    let server = server(&[MetricAnswer::Value(0.004)], &[]);
    let (outcome, harness) = run(
        &prometheus("success_condition: result < 0.01, failure_condition: result > 0.05"),
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(outcome.message, "error rate 0.004 < 0.01");
    assert_eq!(outcome.outputs["value"], "0.004");
    assert_eq!(server_queries(&server), [ERROR_RATE]);
    let log = harness.log();
    assert!(log.contains("attempt 1/1: GET http://"), "{log}");
    assert!(log.contains(&format!("query: {ERROR_RATE}")), "{log}");
}

fn server_queries(server: &AzureServer) -> Vec<String> {
    server.prometheus_queries()
}

#[tokio::test]
async fn a_scalar_over_the_failure_condition_fails_naming_the_value() {
    let server = server(&[MetricAnswer::Scalar(0.031)], &[]);
    let (outcome, _) = run(&prometheus("failure_condition: result > 0.01"), &server).await;

    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert_eq!(outcome.message, "error rate 0.031 > 0.01");
    let evidence = outcome.evidence.unwrap();
    assert!(evidence.contains(ERROR_RATE), "{evidence}");
    assert!(evidence.contains("\"resultType\":\"scalar\""), "{evidence}");
}

#[tokio::test]
async fn neither_condition_holding_is_inconclusive() {
    let server = server(&[MetricAnswer::Value(0.02)], &[]);
    let (outcome, _) = run(
        &prometheus(
            "success_condition: result < 0.01, failure_condition: result > 0.05, count: 2, interval: 10ms",
        ),
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Inconclusive, "{outcome:#?}");
    assert_eq!(
        outcome.message,
        "inconclusive after 2 attempts: error rate 0.02: neither success condition `result < 0.01` nor failure condition held"
    );
    assert_eq!(server_queries(&server).len(), 2);
}

#[tokio::test]
async fn several_series_are_a_list_conditions_can_reduce() {
    let server = server(
        &[MetricAnswer::Series(vec![
            ("web-1", 0.002),
            ("web-2", 0.09),
        ])],
        &[],
    );
    let (outcome, _) = run(
        &prometheus("failure_condition: result | max > 0.05"),
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert_eq!(outcome.message, "error rate [0.002, 0.09] | max > 0.05");
}

#[tokio::test]
async fn no_data_then_a_value_takes_another_measurement() {
    let server = server(&[MetricAnswer::NoData, MetricAnswer::Value(0.001)], &[]);
    let (outcome, harness) = run(
        &prometheus("success_condition: result < 0.01, count: 3, interval: 10ms"),
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(outcome.message, "error rate 0.001 < 0.01 after 2 attempts");
    assert!(harness.log().contains("attempt 1/3: GET http://127.0.0.1"));
    assert!(
        harness
            .log()
            .contains("error: error rate: the query returned no data")
    );
}

#[tokio::test]
async fn garbage_instead_of_json_is_an_error_measurement_named_as_such() {
    let server = server(&[MetricAnswer::Garbage], &[]);
    let (outcome, _) = run(
        &prometheus("failure_condition: result > 0.01, count: 2, interval: 10ms"),
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert!(
        outcome
            .message
            .starts_with("prometheus answered 200 with something that is not a query result"),
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains("Sign in to continue"),
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.ends_with("after 2 attempts"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn a_query_prometheus_rejects_stops_at_once() {
    let server = server(&[MetricAnswer::BadQuery], &[]);
    let (outcome, _) = run(
        &prometheus("failure_condition: result > 0.01, count: 5"),
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert!(
        outcome
            .message
            .starts_with("prometheus answered 400: bad_data: invalid parameter"),
        "{}",
        outcome.message
    );
    assert_eq!(server_queries(&server).len(), 1);
}

#[tokio::test]
async fn a_soak_fails_the_moment_a_measurement_fails() {
    let server = server(
        &[
            MetricAnswer::Value(0.001),
            MetricAnswer::Value(0.002),
            MetricAnswer::Value(0.2),
            MetricAnswer::Value(0.001),
        ],
        &[],
    );
    let started = Instant::now();
    let (outcome, _) = run(
        &prometheus("failure_condition: result > 0.05, soak: 30s, interval: 50ms"),
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert_eq!(
        outcome.message,
        "error rate 0.2 > 0.05 (measurement 3, 0s into a 30s soak)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server_queries(&server).len(), 3);
    assert_eq!(outcome.outputs["value"], "0.2");
}

#[tokio::test]
async fn a_soak_without_failures_measures_until_it_ends() {
    let server = server(&[MetricAnswer::Value(0.001)], &[]);
    let started = Instant::now();
    let (outcome, _) = run(
        &prometheus("failure_condition: result > 0.05, soak: 400ms, interval: 50ms"),
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(
        server_queries(&server).len() >= 5,
        "{:?}",
        server_queries(&server)
    );
}

#[tokio::test]
async fn azure_monitor_managed_prometheus_gets_a_token_for_its_scope() {
    let mut config = AzureConfig::with_secrets(&[]);
    config.prometheus = MetricScript::new([MetricAnswer::Value(0.004)]);
    config.prometheus_requires_token = true;
    let server = AzureServer::start(config);
    let (outcome, _) = run(
        &format!(
            "{{prometheus: {{url: https://fleet-amw-a1b2.eastus.prometheus.monitor.azure.com, query: '{ERROR_RATE}', auth: azure, success_condition: result < 0.01}}}}"
        ),
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(outcome.message, "result 0.004 < 0.01");
    let queries = server.requests_to("/api/v1/query");
    assert_eq!(queries.len(), 1, "{queries:#?}");
    assert_eq!(
        queries[0].original_host.as_deref(),
        Some("fleet-amw-a1b2.eastus.prometheus.monitor.azure.com")
    );
    assert_eq!(
        queries[0].authorization.as_deref(),
        Some(format!("Bearer {PROMETHEUS_ACCESS_TOKEN}").as_str())
    );
}

#[tokio::test]
async fn a_403_from_managed_prometheus_names_the_role_to_grant_and_stops() {
    let server = server(&[MetricAnswer::Denied], &[]);
    let (outcome, _) = run(
        "{prometheus: {url: https://fleet-amw-a1b2.eastus.prometheus.monitor.azure.com, query: up, auth: azure, count: 3}}",
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert!(
        outcome.message.starts_with(
            "prometheus denied access (403): grant the identity the \"Monitoring Data Reader\" role on the Azure Monitor workspace"
        ),
        "{}",
        outcome.message
    );
    assert_eq!(server.requests_to("/api/v1/query").len(), 1);
}

fn log_analytics(settings: &str) -> String {
    format!(
        r#"{{log_analytics: {{workspace: "{{{{ env.workspace }}}}", query: "requests | summarize error_rate = countif(success == false) * 1.0 / count()", name: error rate, {settings}}}}}"#
    )
}

#[tokio::test]
async fn log_analytics_queries_the_workspace_with_a_token_for_its_scope() {
    let server = server(&[], &[MetricAnswer::Value(0.004)]);
    let (outcome, _) = run(
        &log_analytics("success_condition: result < 0.01, timespan: PT15M"),
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(outcome.message, "error rate 0.004 < 0.01");
    let calls = server.requests_to("/v1/workspaces/");
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(
        calls[0].path,
        format!("/v1/workspaces/{WORKSPACE_ID}/query")
    );
    assert_eq!(
        calls[0].original_host.as_deref(),
        Some("api.loganalytics.io")
    );
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {LOG_ANALYTICS_ACCESS_TOKEN}").as_str())
    );
    assert_eq!(
        server.log_analytics_queries(),
        ["requests | summarize error_rate = countif(success == false) * 1.0 / count()"]
    );
}

#[tokio::test]
async fn log_analytics_rows_need_a_column_and_a_403_names_the_role() {
    let server = server(
        &[],
        &[MetricAnswer::Series(vec![("web", 0.2), ("api", 0.001)])],
    );
    let (outcome, _) = run(
        &log_analytics("failure_condition: result | max > 0.05"),
        &server,
    )
    .await;
    assert_eq!(
        outcome.message,
        "the result has columns cloud_RoleName, error_rate: set `column` to the one holding the value"
    );
    let (outcome, _) = run(
        &log_analytics("failure_condition: 'series | selectattr(\"labels.cloud_RoleName\", \"eq\", \"web\") | map(attribute=\"value\") | first > 0.05', column: error_rate"),
        &server,
    )
    .await;
    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert!(
        outcome
            .message
            .starts_with("error rate [0.2, 0.001]: failure condition `series | selectattr"),
        "{}",
        outcome.message
    );

    let denied = self::server(&[], &[MetricAnswer::Denied]);
    let (outcome, _) = run(&log_analytics("count: 3"), &denied).await;
    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert_eq!(
        outcome.message,
        "log analytics denied access (403): grant the identity the \"Log Analytics Reader\" role on the workspace (InsufficientAccessError: The provided credentials have insufficient access to perform the requested operation)"
    );
    assert_eq!(denied.log_analytics_queries().len(), 1);
}

#[tokio::test]
async fn log_analytics_garbage_and_rejected_queries() {
    let server = server(&[], &[MetricAnswer::Garbage]);
    let (outcome, _) = run(&log_analytics("count: 1"), &server).await;
    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert!(
        outcome
            .message
            .starts_with("log analytics answered 200 with something that is not a query result"),
        "{}",
        outcome.message
    );

    let server = self::server(&[], &[MetricAnswer::BadQuery]);
    let (outcome, _) = run(&log_analytics("count: 4"), &server).await;
    assert_eq!(
        outcome.message,
        "log analytics rejected the query (400): BadArgumentError: The request had some invalid properties (SemanticError: 'requestz' could not be resolved)"
    );
    assert_eq!(server.log_analytics_queries().len(), 1);
}

#[tokio::test]
async fn a_value_worse_than_the_baseline_by_more_than_the_tolerance_fails() {
    let server = server(&[MetricAnswer::Value(0.031)], &[]);
    let config = decode(&prometheus("baseline: {tolerance: 0.1}"));
    let mut harness = harness("error-rate", &config, &server);
    harness.baselines.insert("error-rate", Ok(0.02));
    let outcome = run_with(&harness, &config).await;

    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert_eq!(
        outcome.message,
        "error rate 0.031 > 0.022 (baseline 0.02 + 10%)"
    );
    assert_eq!(outcome.outputs["baseline"], "0.02");
    assert!(harness.log().contains("baseline (before the deploy): 0.02"));

    let server = self::server(&[MetricAnswer::Value(0.021)], &[]);
    let harness = {
        let mut harness = self::harness("error-rate", &config, &server);
        harness.baselines.insert("error-rate", Ok(0.02));
        harness
    };
    let outcome = run_with(&harness, &config).await;
    assert_eq!(outcome.status, StepStatus::Passed, "{outcome:#?}");
    assert_eq!(
        outcome.message,
        "error rate 0.021 within 0.022 (baseline 0.02 + 10%)"
    );
}

#[tokio::test]
async fn a_missing_baseline_is_inconclusive() {
    let server = server(&[MetricAnswer::Value(0.01)], &[]);
    let (outcome, _) = run(&prometheus("baseline: {tolerance: 0.1}"), &server).await;

    assert_eq!(outcome.status, StepStatus::Inconclusive, "{outcome:#?}");
    assert_eq!(
        outcome.message,
        "inconclusive: error rate 0.01: no baseline to compare with: it is measured just before the run's first deploy step, and none ran before this step"
    );
}

#[test]
fn schedules_that_cannot_work_are_refused_when_read() {
    for (yaml, expected) in [
        (
            "{prometheus: {url: x, query: up, count: 2, soak: 5m}}",
            "`count` and `soak` cannot both be set",
        ),
        (
            "{prometheus: {url: x, query: up, count: 0}}",
            "`count` must be at least 1",
        ),
        (
            "{prometheus: {url: x, query: up, baseline: {tolerance: -1}}}",
            "`baseline.tolerance` must be a number of at least 0",
        ),
        (
            "{prometheus: {url: x, query: up, auth: aad}}",
            "unknown variant `aad`",
        ),
        (
            "{log_analytics: {url: x, query: up}}",
            "unknown field `url`",
        ),
        (
            "{prometheus: {url: x, query: up}, http: {url: x}}",
            "verify takes exactly one of",
        ),
    ] {
        let error = serde_saphyr::from_str::<VerifyConfig>(yaml)
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{yaml}: {error}");
    }
}

/// A whole run: the baseline is measured before the deploy step, the check after it fails
/// on the comparison, and the value reaches junit.xml and summary.md.
#[test]
fn a_run_measures_the_baseline_before_deploying_and_reports_the_value() {
    let server = server(
        &[MetricAnswer::Value(0.02), MetricAnswer::Value(0.031)],
        &[],
    );
    let project = Project::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cluster = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        fake::serve(listener, FakeOptions::default()).await.unwrap()
    });
    cluster
        .write_kubeconfig(&project.path().join("kubeconfig.yaml"), NAMESPACE)
        .unwrap();
    project.file(
        "k8s/web.yaml",
        &deployment_manifest("web", "registry.local/web:1.0.0", ""),
    );
    project.file(
        "workflow.yaml",
        &format!(
            r#"name: canary
vars: {{replicas: 1}}
safety: {{max_iterations: 1}}
steps:
  - id: deploy
    deploy: {{manifests: [k8s/web.yaml], kubeconfig: kubeconfig.yaml, namespace: {NAMESPACE}}}
  - id: error-rate
    verify:
      prometheus:
        url: "{url}"
        query: '{ERROR_RATE}'
        name: error rate
        failure_condition: result > 0.05
        baseline: {{tolerance: 0.1}}
"#,
            url = server.url()
        ),
    );

    let result = project.run_workflow("workflow.yaml", &[]);
    result.assert_code(1);
    let junit = project.read("artifacts/junit.xml");
    assert!(
        junit.contains("error rate 0.031 &gt; 0.022 (baseline 0.02 + 10%)"),
        "{junit}"
    );
    let summary = project.read("artifacts/summary.md");
    assert!(
        summary.contains("error rate 0.031 &gt; 0.022 (baseline 0.02 + 10%)"),
        "{summary}"
    );
    // The baseline was measured once, before the deploy step started.
    assert_eq!(server_queries(&server).len(), 2);
    let audit = project.read("artifacts/audit.jsonl");
    let baseline_at = audit.find("verify.baseline").expect("baseline decision");
    let deploy_at = audit.find(r#""step_id":"deploy""#).expect("deploy started");
    assert!(baseline_at < deploy_at, "{audit}");
    assert!(audit.contains(r#""value":0.02"#), "{audit}");
    let baseline_log = project.read("artifacts/steps/1-steps/error-rate.baseline.log");
    assert!(
        baseline_log.contains("baseline: GET http://127.0.0.1"),
        "{baseline_log}"
    );
    drop(cluster);
}

#[test]
fn the_json_schema_knows_metric_checks() {
    let schema = serde_json::to_value(schemars::schema_for!(VerifyConfig)).expect("schema json");
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let valid = [
        json!({"prometheus": {"url": "http://prometheus:9090", "query": "up", "auth": "azure", "failure_condition": "result > 0.01", "soak": "10m", "baseline": {"tolerance": 0.1, "fail_on": "decrease"}}}),
        json!({"log_analytics": {"workspace": WORKSPACE_ID, "query": "requests | count", "count": 3, "column": "count_"}}),
    ];
    for instance in valid {
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{instance}: {errors:?}");
    }
    for instance in [
        json!({"prometheus": {"url": "x"}}),
        json!({"prometheus": {"url": "x", "query": "up", "auth": "aad"}}),
        json!({"log_analytics": {"workspace": "w", "query": "q", "url": "x"}}),
        json!({"prometheus": {"url": "x", "query": "up", "baseline": {"tolerance": 0.1, "by": 2}}}),
    ] {
        assert!(
            !validator.is_valid(&instance),
            "{instance} should not validate"
        );
    }
}

#[tokio::test]
async fn credentials_in_the_url_stay_out_of_the_log_and_the_evidence() {
    let server = server(&[MetricAnswer::Value(0.2)], &[]);
    let url = server
        .url()
        .replace("http://", "http://reader:pr0m-pass-7d1e@");
    let (outcome, harness) = run(
        &format!("{{prometheus: {{url: '{url}', query: up, failure_condition: result > 0.1}}}}"),
        &server,
    )
    .await;

    assert_eq!(outcome.status, StepStatus::Failed, "{outcome:#?}");
    assert_eq!(outcome.message, "result 0.2 > 0.1");
    let log = harness.log();
    assert!(log.contains("GET http://127.0.0.1"), "{log}");
    assert!(!log.contains("pr0m-pass-7d1e"), "{log}");
    assert!(!outcome.evidence.unwrap().contains("pr0m-pass-7d1e"));
}
