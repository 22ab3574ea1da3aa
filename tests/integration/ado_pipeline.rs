//! `azure-pipelines.yml`: the stages the seed promises, and every `AgentOrch@1` use agreeing
//! with `task.json`.

use serde_json::Value;

use crate::support::repo;

fn pipeline() -> Value {
    serde_saphyr::from_str(&repo::read_to_string(&repo::path("azure-pipelines.yml"))).unwrap()
}

/// Every mapping in `value` (depth first) with the path of keys leading to it.
fn mappings<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            out.push((path.clone(), value));
            for (key, child) in map {
                mappings(child, format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                mappings(child, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn steps_using<'a>(pipeline: &'a Value, task: &str) -> Vec<(String, &'a Value)> {
    let mut all = Vec::new();
    mappings(pipeline, String::new(), &mut all);
    all.into_iter().filter(|(_, m)| m["task"] == task).collect()
}

fn stage<'a>(pipeline: &'a Value, name: &str) -> &'a Value {
    pipeline["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no stage `{name}`"))
}

#[test]
fn every_agent_orch_input_exists_in_task_json() {
    let task = repo::read_json(&repo::path("task.json"));
    let declared: Vec<&Value> = task["inputs"].as_array().unwrap().iter().collect();
    let required: Vec<&str> = declared
        .iter()
        .filter(|i| i["required"] == true)
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    let known = |name: &str| {
        declared.iter().any(|i| {
            i["name"] == name
                || i["aliases"]
                    .as_array()
                    .is_some_and(|aliases| aliases.iter().any(|a| a == name))
        })
    };

    let pipeline = pipeline();
    let uses = steps_using(&pipeline, "AgentOrch@1");
    assert_eq!(uses.len(), 2, "staging and production");
    for (path, step) in uses {
        let inputs = step["inputs"].as_object().unwrap();
        for name in inputs.keys() {
            assert!(known(name), "{path}: input `{name}` is not in task.json");
        }
        for name in &required {
            assert!(
                inputs.contains_key(*name),
                "{path}: required input `{name}` missing"
            );
        }
    }
}

#[test]
fn stages_build_stage_approve_deploy_and_roll_back() {
    let pipeline = pipeline();
    let names: Vec<&str> = pipeline["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Build",
            "Orchestrate_Staging",
            "Approval",
            "Deploy_Production"
        ]
    );

    let staging = &stage(&pipeline, "Orchestrate_Staging")["jobs"][0];
    let staging_task = steps_using(staging, "AgentOrch@1");
    assert_eq!(staging_task[0].1["inputs"]["environment"], "staging");

    // ManualValidation runs only in an agentless job.
    let approval = &stage(&pipeline, "Approval")["jobs"][0];
    assert_eq!(approval["pool"], "server");
    assert_eq!(steps_using(approval, "ManualValidation@1").len(), 1);

    let production = &stage(&pipeline, "Deploy_Production")["jobs"][0];
    assert_eq!(production["deployment"], "ProductionDeployment");
    let run_once = &production["strategy"]["runOnce"];
    let deploy_steps = &run_once["deploy"];
    assert_eq!(
        steps_using(deploy_steps, "AgentOrch@1")[0].1["inputs"]["environment"],
        "prod"
    );
    let rollback = run_once["on"]["failure"]["steps"].as_array().unwrap();
    assert!(
        rollback.iter().any(|s| s["inputs"]["inlineScript"]
            .as_str()
            .is_some_and(|script| script.contains("rollout undo"))),
        "{rollback:?}"
    );
}

/// Runs the production deployment's `on: failure` script as the agent would (macros
/// expanded), with stand-ins for `az` and `kubectl` that report `live` as the deployment's
/// images and log every call; the calls.
fn run_production_rollback_hook(live: &str) -> Vec<String> {
    let pipeline = pipeline();
    let production = &stage(&pipeline, "Deploy_Production")["jobs"][0];
    let hook = &production["strategy"]["runOnce"]["on"]["failure"]["steps"][0];
    let script = hook["inputs"]["inlineScript"]
        .as_str()
        .unwrap()
        .replace("$(stagingImage)", "acr.io/fleet-frontend:good")
        .replace("$(AKS_RESOURCE_GROUP)", "rg")
        .replace("$(AKS_CLUSTER)", "aks");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    for (program, answer) in [("az", String::new()), ("kubectl", live.to_owned())] {
        let path = dir.path().join(program);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{program} $*\" >> '{}'\n\
                 case \"$1\" in get) printf '%s' '{answer}' ;; esac\n",
                log.display()
            ),
        )
        .unwrap();
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&path, permissions).unwrap();
    }
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = std::process::Command::new("bash")
        .args(["-c", &script])
        .env("PATH", path)
        .status()
        .unwrap();
    assert!(status.success(), "the hook failed: {status}");
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_production_hook_undoes_only_a_rollout_left_on_the_new_image() {
    // The job died mid-rollout: production runs the new image, which the hook undoes.
    let calls = run_production_rollback_hook("acr.io/fleet-frontend:good");
    assert!(
        calls
            .iter()
            .any(|call| call.starts_with("kubectl rollout undo deployment/fleet-frontend")),
        "{calls:?}"
    );
    // agent-orch already rolled back: undoing again would bring the failed revision back.
    let calls = run_production_rollback_hook("acr.io/fleet-frontend:old");
    assert!(
        !calls.iter().any(|call| call.contains("rollout undo")),
        "{calls:?}"
    );
    assert!(calls[0].starts_with("az aks get-credentials"), "{calls:?}");
}

#[test]
fn each_agent_orch_job_publishes_results_and_artifacts_even_on_failure() {
    let pipeline = pipeline();
    let jobs = [
        &stage(&pipeline, "Orchestrate_Staging")["jobs"][0],
        &stage(&pipeline, "Deploy_Production")["jobs"][0],
    ];
    for job in jobs {
        let results = steps_using(job, "PublishTestResults@2");
        assert_eq!(results.len(), 1, "{job}");
        let results = results[0].1;
        assert_eq!(results["inputs"]["testResultsFormat"], "JUnit");
        assert!(
            results["inputs"]["testResultsFiles"]
                .as_str()
                .unwrap()
                .ends_with("junit.xml")
        );
        assert_eq!(results["condition"], "succeededOrFailed()");

        // The task uploads its artifacts folder itself (`artifact.upload`), even on failure;
        // a publish step as well would store every run twice.
        assert!(
            steps_using(job, "PublishPipelineArtifact@1").is_empty(),
            "{job}"
        );
    }
}

#[test]
fn production_deploys_the_image_staging_exported_and_the_approval_links_the_fix() {
    let pipeline = pipeline();
    let staging = &stage(&pipeline, "Orchestrate_Staging")["jobs"][0];
    assert_eq!(staging["job"], "OrchestrationJob");
    let staging_task = steps_using(staging, "AgentOrch@1")[0].1;
    assert_eq!(staging_task["name"], "agentorch");
    assert!(
        staging_task["env"]["SYSTEM_ACCESSTOKEN"]
            .as_str()
            .is_some_and(|v| v == "$(System.AccessToken)"),
        "the pull request needs the job's token"
    );
    // The workflow exports what the stages below read.
    let workflow = repo::read_to_string(&repo::path("workflows/fleet-deploy.yaml"));
    for output in ["image:", "pull_request:"] {
        assert!(workflow.contains(&format!("  {output}")), "{output}");
    }
    let exported = |name: &str| {
        format!(
            "$[ stageDependencies.Orchestrate_Staging.OrchestrationJob.outputs['agentorch.{name}'] ]"
        )
    };

    let production_stage = stage(&pipeline, "Deploy_Production");
    let depends: Vec<&str> = production_stage["dependsOn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(depends.contains(&"Orchestrate_Staging"), "{depends:?}");
    assert!(
        production_stage["condition"].as_str().unwrap().contains(
            "dependencies.Orchestrate_Staging.outputs['OrchestrationJob.agentorch.image']"
        ),
        "{}",
        production_stage["condition"]
    );
    let production = &production_stage["jobs"][0];
    assert_eq!(
        production["variables"]["stagingImage"],
        exported("image").as_str()
    );
    let task = steps_using(&production["strategy"]["runOnce"]["deploy"], "AgentOrch@1")[0].1;
    assert_eq!(task["inputs"]["maxIterations"], 1);
    let extra = task["inputs"]["extraVariables"].as_str().unwrap();
    assert!(
        extra.lines().any(|l| l == "image=$(stagingImage)"),
        "{extra}"
    );

    let approval = &stage(&pipeline, "Approval")["jobs"][0];
    assert_eq!(
        approval["variables"]["fixPullRequest"],
        exported("pull_request").as_str()
    );
    let validation = steps_using(approval, "ManualValidation@1")[0].1;
    let instructions = validation["inputs"]["instructions"].as_str().unwrap();
    assert!(instructions.contains("$(fixPullRequest)"), "{instructions}");
    assert!(instructions.contains("$(stagingImage)"), "{instructions}");
}
