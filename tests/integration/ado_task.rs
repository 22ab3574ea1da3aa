//! `task.json` against the official task schema, and against what the binary reads.

use agent_orch::ado::inputs::name;
use serde_json::Value;

use crate::support::repo;

fn read_json(relative: &str) -> Value {
    repo::read_json(&repo::path(relative))
}

/// The official schema (draft 4), vendored from azure-pipelines-task-lib so the test runs offline.
fn validator() -> jsonschema::Validator {
    jsonschema::draft4::new(&read_json("tests/inputs/ado/tasks.schema.json")).unwrap()
}

fn schema_errors(task: &Value) -> Vec<String> {
    validator()
        .iter_errors(task)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn task_json_validates_against_the_official_schema() {
    assert_eq!(schema_errors(&read_json("task.json")), Vec::<String>::new());
}

#[test]
fn the_schema_check_catches_mistakes() {
    let mut task = read_json("task.json");
    task["inputs"][0]["name"] = "workflow-file".into();
    task["version"]["Major"] = "1".into();
    task["execution"]["Node18"] = serde_json::json!({"target": "index.js"});
    let errors = schema_errors(&task);
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn task_is_agent_orch_version_1_on_both_node_handlers() {
    let task = read_json("task.json");
    assert_eq!(task["name"], "AgentOrch");
    assert_eq!(task["version"]["Major"], 1);
    for handler in ["Node20_1", "Node24"] {
        assert_eq!(
            task["execution"][handler]["target"], "index.js",
            "{handler}"
        );
    }
    assert!(repo::path("ado-task/index.js").is_file());
}

#[test]
fn inputs_match_what_the_binary_reads_and_all_have_help() {
    let task = read_json("task.json");
    let inputs = task["inputs"].as_array().unwrap();
    let names: Vec<&str> = inputs.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, name::ALL);

    for input in inputs {
        let help = input["helpMarkDown"].as_str().unwrap_or_default();
        assert!(help.len() > 20, "input `{}` needs help text", input["name"]);
    }
    let type_of = |wanted: &str| {
        inputs
            .iter()
            .find(|i| i["name"] == wanted)
            .map(|i| i["type"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(
        type_of(name::AZURE_SUBSCRIPTION),
        "connectedService:AzureRM"
    );
    assert_eq!(type_of(name::APPROVE_DANGEROUS_CHANGES), "boolean");
    assert_eq!(type_of(name::DRY_RUN), "boolean");
    assert_eq!(type_of(name::EXTRA_VARIABLES), "multiLine");
    assert_eq!(type_of(name::WORKFLOW_FILE), "filePath");
}
