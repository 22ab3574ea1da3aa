//! Workflow fixtures in `tests/inputs/`: valid files load (their plan is snapshotted, and the
//! warnings of `warn_*` ones), `err_*` files fail (their diagnostics are snapshotted, plain
//! text), and every valid file, including the examples in `workflows/`, validates against the
//! generated JSON Schema.
//!
//! A fixture's first line may give command-line options: `# args: --env staging --var a=b`.

use std::path::{Path, PathBuf};

use agent_orch::workflow::{self, LoadOptions};

/// The fixture's path relative to the crate root (the tests' working directory), so paths in
/// snapshots do not depend on where the repository is checked out.
fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .expect("fixtures live in the crate")
        .to_path_buf()
}

fn options(path: &Path) -> LoadOptions {
    let text = std::fs::read_to_string(path).expect("test fixture");
    let mut options = LoadOptions::default();
    let Some(args) = text.lines().next().and_then(|l| l.strip_prefix("# args:")) else {
        return options;
    };
    let mut args = args.split_whitespace();
    while let Some(flag) = args.next() {
        let value = args.next().expect("every flag has a value");
        match flag {
            "--env" => options.environment = Some(value.to_owned()),
            "--var" => {
                let (name, value) = value.split_once('=').expect("--var NAME=VALUE");
                options.vars.push((name.to_owned(), value.to_owned()));
            }
            other => panic!("unknown fixture flag {other}"),
        }
    }
    options
}

fn is_error_fixture(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("err_"))
}

/// `warn_*` fixtures load, and their warnings (`validate` shows them) are snapshotted.
fn is_warning_fixture(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("warn_"))
}

#[test]
fn fixtures() {
    insta::glob!("../inputs", "*.yaml", |path| {
        let path = relative(path);
        let result = workflow::load(&path, &options(&path));
        if is_error_fixture(&path) {
            let diagnostics = match result {
                Ok(_) => panic!("{} should not load", path.display()),
                Err(diagnostics) => diagnostics,
            };
            assert!(!diagnostics.is_empty());
            let rendered = diagnostics.render(false);
            assert!(
                !rendered.contains('\x1b'),
                "plain output has no colour codes"
            );
            insta::assert_snapshot!("diagnostics", rendered);
        } else {
            let workflow = match result {
                Ok(workflow) => workflow,
                Err(diagnostics) => panic!("{}", diagnostics.render(false)),
            };
            insta::assert_snapshot!("plan", workflow::plan(&workflow));
            if is_warning_fixture(&path) {
                let warnings = workflow::lint::warnings(&workflow);
                assert!(!warnings.is_empty());
                let rendered: Vec<String> = warnings.iter().map(|w| w.render(false)).collect();
                insta::assert_snapshot!("warnings", rendered.join("\n"));
            }
        }
    });
}

#[test]
fn the_fleet_deploy_example_loads_for_each_environment() {
    let path = Path::new("workflows/fleet-deploy.yaml");
    for environment in ["staging", "prod"] {
        let options = LoadOptions {
            environment: Some(environment.to_owned()),
            ..LoadOptions::default()
        };
        let workflow = match workflow::load(path, &options) {
            Ok(workflow) => workflow,
            Err(diagnostics) => panic!("{}", diagnostics.render(false)),
        };
        assert_eq!(workflow.environment.as_deref(), Some(environment));
        let ids: Vec<&str> = workflow.steps.iter().map(|s| s.id.value.as_str()).collect();
        assert_eq!(
            ids,
            [
                "lint",
                "test",
                "build",
                "image",
                "deploy",
                "health",
                "smoke",
                "authentication",
                "dashboard"
            ]
        );
        let fixer = &workflow.agents["fixer"];
        assert!(
            fixer
                .prompt_path
                .as_ref()
                .is_some_and(|p| p.ends_with("templates/prompts/fixer.j2"))
        );
    }
}

#[test]
fn the_fleet_deploy_example_needs_an_environment() {
    let err = workflow::load(
        Path::new("workflows/fleet-deploy.yaml"),
        &LoadOptions::default(),
    )
    .expect_err("should fail");
    assert_eq!(err.len(), 1);
    let rendered = err.render(false);
    assert!(rendered.contains("no environment selected"), "{rendered}");
    assert!(rendered.contains("`staging` or `prod`"), "{rendered}");
}

/// The file as an editor's YAML 1.2 language server sees it (`yes` is a string).
fn yaml_as_json(path: &Path) -> serde_json::Value {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    let text = std::fs::read_to_string(path).expect("test fixture");
    serde_saphyr::from_str_with_options(&text, options).expect("test fixture")
}

fn valid_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["tests/inputs", "workflows"] {
        for entry in std::fs::read_dir(dir).expect("test fixture") {
            let path = entry.expect("test fixture").path();
            if path.extension().is_some_and(|e| e == "yaml") && !is_error_fixture(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn valid_workflows_match_the_generated_schema() {
    let schema = workflow::schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema");
    let files = valid_files();
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        let instance = yaml_as_json(&path);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn the_schema_rejects_what_the_loader_rejects() {
    let schema = workflow::schema();
    let validator = jsonschema::validator_for(&schema).expect("test fixture");
    for fixture in [
        "err_unknown_key.yaml",
        "err_wrong_type.yaml",
        "err_unknown_step_kind.yaml",
        "err_two_kinds.yaml",
        "err_missing_id.yaml",
        "err_bad_duration.yaml",
        "err_yaml11_boolean.yaml",
        "err_pull_request.yaml",
    ] {
        let instance = yaml_as_json(&Path::new("tests/inputs").join(fixture));
        assert!(
            !validator.is_valid(&instance),
            "{fixture} should not validate"
        );
    }
}

#[test]
fn templates_keep_their_positions_in_both_gate_forms() {
    let path = Path::new("tests/inputs/full.yaml");
    let workflow =
        workflow::load(path, &options(path)).unwrap_or_else(|d| panic!("{}", d.render(false)));
    let positions: Vec<(usize, usize)> = workflow.steps[..2]
        .iter()
        .map(|step| match &step.kind {
            agent_orch::workflow::model::StepKind::Gate(gate) => {
                (gate.run.span().line, gate.run.span().column)
            }
            other => panic!("not a gate: {other:?}"),
        })
        .collect();
    assert_eq!(positions, [(26, 11), (31, 12)]);
}
