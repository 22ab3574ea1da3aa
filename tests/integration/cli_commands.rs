//! `validate`, `plan` and `schema` through the real binary: exit codes, stdout for data,
//! stderr for people.

use crate::support::cli::Project;

const GOOD: &str = r#"
name: good
environments:
  staging: {url: "https://staging.example.com"}
  prod: {url: "https://example.com"}
vars: {greeting: hello}
steps:
  - {id: hello, gate: "echo {{ vars.greeting | shell_quote }} {{ env.url }}"}
  - template: t.yaml
    parameters: {who: "{{ env.name }}"}
"#;

const TEMPLATE: &str = r#"
parameters:
  who:
steps:
  - {id: wave, gate: "echo {{ parameters.who }}"}
"#;

#[test]
fn validate_reports_every_error_of_every_file_and_exits_2() {
    let project = Project::new();
    project.file("good.yaml", GOOD).file("t.yaml", TEMPLATE).file(
        "bad.yaml",
        "name: bad\nsteps:\n  - {id: a, gate: \"echo {{ vars.nope }}\"}\n  - {id: a, gaet: x}\n",
    );
    let result = project.run(&["validate", "good.yaml", "bad.yaml"]);
    result.assert_code(2);
    assert!(
        result.stdout.is_empty(),
        "diagnostics are for people: {}",
        result.stdout
    );
    assert!(result.stderr.contains("good.yaml: ok"), "{}", result.stderr);
    assert!(
        result.stderr.contains("bad.yaml:3:"),
        "undefined variable: {}",
        result.stderr
    );
    assert!(
        result.stderr.contains("bad.yaml:4:"),
        "second error too: {}",
        result.stderr
    );
    assert!(
        result.stderr.contains("gate"),
        "did-you-mean for `gaet`: {}",
        result.stderr
    );

    project.run(&["validate", "good.yaml"]).assert_code(0);
    project
        .run(&["validate", "good.yaml", "--env", "prod"])
        .assert_code(0);
    let unknown = project.run(&["validate", "good.yaml", "--env", "prd"]);
    unknown.assert_code(2);
    assert!(unknown.stderr.contains("prod"), "{}", unknown.stderr);
}

#[test]
fn validate_warns_at_unquoted_values_in_commands_and_still_exits_0() {
    let project = Project::new();
    project.file(
        "w.yaml",
        "name: w\nvars: {dir: out}\nsteps:\n  - {id: a, gate: \"ls {{ vars.dir }} {{ vars.dir | shell_quote }}\"}\n",
    );
    let result = project.run(&["validate", "w.yaml"]);
    result.assert_code(0);
    assert!(result.stdout.is_empty(), "{}", result.stdout);
    assert_eq!(
        result.stderr.matches("warning: ").count(),
        1,
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("--> w.yaml:4:23"),
        "{}",
        result.stderr
    );
    assert!(
        result
            .stderr
            .contains("write `{{ vars.dir | shell_quote }}`"),
        "{}",
        result.stderr
    );
    assert!(result.stderr.ends_with("w.yaml: ok\n"), "{}", result.stderr);
}

#[test]
fn plan_prints_the_expanded_workflow_on_stdout() {
    let project = Project::new();
    project.file("good.yaml", GOOD).file("t.yaml", TEMPLATE);
    let result = project.run(&["plan", "good.yaml", "--env", "prod", "--var", "greeting=hi"]);
    result.assert_code(0);
    assert!(
        result.stdout.contains("wave"),
        "template inlined: {}",
        result.stdout
    );
    assert!(
        result.stdout.contains("hi"),
        "--var shown: {}",
        result.stdout
    );
    let parsed: Result<serde_json::Value, _> = serde_saphyr::from_str(&result.stdout);
    assert!(parsed.is_ok(), "plan output is YAML: {parsed:?}");
    assert!(
        !project.path().join("artifacts").exists(),
        "plan runs nothing"
    );
}

#[test]
fn schema_is_json_on_stdout_and_accepts_the_shipped_workflows() {
    let project = Project::new();
    let result = project.run(&["schema"]);
    result.assert_code(0);
    let schema: serde_json::Value = serde_json::from_str(&result.stdout).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    for file in ["workflows/demo.yaml", "workflows/fleet-deploy.yaml"] {
        let text = std::fs::read_to_string(file).expect("shipped workflow");
        let instance: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
    let wrong: serde_json::Value = serde_json::json!({"name": "x", "steps": [{"id": "a"}]});
    assert!(
        !validator.is_valid(&wrong),
        "a step without a kind is rejected"
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let project = Project::new();
    project.run(&["run"]).assert_code(2);
    project.run(&["frobnicate"]).assert_code(2);
    let help = project.run(&["--help"]);
    help.assert_code(0);
    assert!(help.stdout.contains("Exit codes"), "{}", help.stdout);
    let missing = project.run(&["run", "nope.yaml"]);
    missing.assert_code(2);
    assert!(missing.stderr.contains("nope.yaml"), "{}", missing.stderr);
}
