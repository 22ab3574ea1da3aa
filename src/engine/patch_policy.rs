//! What the patch policy is told about a run: the workflow's `safety` settings, the files the
//! workflow is made of, the files its commands run, and where runs keep their records.

use std::path::{Component, Path, PathBuf};

use super::settings::RunSettings;
use crate::llm::TapeMode;
use crate::patch::{DEFAULT_CONFIRMATION, DEFAULT_PROTECT, PolicyConfig};
use crate::workflow::model::{StepKind, Workflow};
use crate::workflow::span::Spanned;
use crate::workflow::step_config::verify::VerifyConfig;

/// The policy for patches to this run's project.
pub(crate) fn policy_config(workflow: &Workflow, settings: &RunSettings) -> PolicyConfig {
    let safety = &workflow.safety;
    let mut protect: Vec<String> = match &safety.protect {
        Some(globs) => written(globs),
        None => DEFAULT_PROTECT.map(str::to_owned).to_vec(),
    };
    protect.extend(
        files_run_by_commands(workflow, &settings.workdir)
            .iter()
            .map(|path| globset::escape(path)),
    );
    let workflow_files = [workflow.path.clone()]
        .into_iter()
        .chain(workflow.templates.iter().cloned())
        .chain(
            workflow
                .agents
                .values()
                .filter_map(|agent| agent.prompt_path.clone()),
        )
        .collect();
    let mut records = vec![
        settings.artifacts_dir.clone(),
        settings.workdir.join(".agent-orch"),
    ];
    if let TapeMode::Record(tape) | TapeMode::Replay(tape) = &settings.tape {
        records.push(tape.clone());
    }
    PolicyConfig {
        never_delete: written(&safety.never_delete),
        require_confirmation: DEFAULT_CONFIRMATION
            .map(str::to_owned)
            .into_iter()
            .chain(written(&safety.require_confirmation))
            .collect(),
        protect,
        workflow_files,
        records,
        ..PolicyConfig::default()
    }
}

fn written(list: &[Spanned<String>]) -> Vec<String> {
    list.iter().map(|item| item.value.clone()).collect()
}

/// Files of the project that gate, service and verify-script commands name (`sh
/// tests/check.sh`, `./scripts/smoke.sh`), relative to `root`: the checks the fix is judged
/// by. A word that is a template, or no file, names nothing.
fn files_run_by_commands(workflow: &Workflow, root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for step in workflow.all_steps() {
        let command = match &step.kind {
            StepKind::Gate(gate) | StepKind::Service(gate) => gate,
            StepKind::Verify(VerifyConfig::Script(script)) => script,
            _ => continue,
        };
        let words = command
            .run
            .source()
            .split(|c: char| c.is_whitespace() || ";|&()<>\"'`=".contains(c));
        for word in words.filter(|word| !word.is_empty() && !word.contains("{{")) {
            let word = Path::new(word);
            let inside = word
                .components()
                .all(|part| matches!(part, Component::Normal(_) | Component::CurDir));
            let relative: PathBuf = word
                .components()
                .filter(|part| matches!(part, Component::Normal(_)))
                .collect();
            if !inside || !root.join(&relative).is_file() {
                continue;
            }
            let relative = relative.to_string_lossy().into_owned();
            if !files.contains(&relative) {
                files.push(relative);
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::workflow::{LoadOptions, load};

    fn settings(root: &Path, tape: TapeMode) -> RunSettings {
        RunSettings {
            run_id: "run-1".to_owned(),
            workflow_path: root.join("w.yaml"),
            environment: None,
            workdir: root.to_path_buf(),
            artifacts_dir: root.join("out/run-1"),
            max_iterations: 1,
            echo: false,
            dry_run: false,
            approve: false,
            tape,
        }
    }

    #[test]
    fn the_policy_guards_what_the_workflow_is_made_of_and_what_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("templates")).unwrap();
        fs::create_dir_all(root.join("prompts")).unwrap();
        fs::create_dir_all(root.join("scripts")).unwrap();
        fs::write(root.join("templates/empty.yaml"), "steps: []\n").unwrap();
        fs::write(root.join("prompts/fixer.j2"), "Fix {{ failure }}\n").unwrap();
        fs::write(root.join("scripts/smoke.sh"), "exit 0\n").unwrap();
        fs::write(root.join("check[1].sh"), "exit 0\n").unwrap();
        fs::write(
            root.join("w.yaml"),
            r#"
name: guarded
agents:
  fixer: {model: m, prompt: prompts/fixer.j2}
safety:
  never_delete: ["*.sql"]
  require_confirmation: ["re:\\bhelm\\s+uninstall"]
steps:
  - {id: test, gate: "sh ./check[1].sh && echo {{ run.id }} > /dev/null"}
  - {id: smoke, verify: {script: scripts/smoke.sh --fast}}
  - template: templates/empty.yaml
repair:
  - {id: propose, fix: {agent: fixer}}
"#,
        )
        .unwrap();
        let workflow = load(&root.join("w.yaml"), &LoadOptions::default()).unwrap();

        let config = policy_config(
            &workflow,
            &settings(root, TapeMode::Replay(root.join("t.jsonl"))),
        );
        assert_eq!(config.never_delete, ["*.sql"]);
        assert_eq!(
            config.require_confirmation.last().map(String::as_str),
            Some(r"re:\bhelm\s+uninstall")
        );
        assert_eq!(
            config.require_confirmation.len(),
            DEFAULT_CONFIRMATION.len() + 1
        );
        assert_eq!(
            config.protect[DEFAULT_PROTECT.len()..],
            ["check[[]1[]].sh", "scripts/smoke.sh"]
        );
        let files: Vec<PathBuf> = config
            .workflow_files
            .iter()
            .map(|path| path.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            files,
            [
                PathBuf::from("w.yaml"),
                PathBuf::from("templates/empty.yaml"),
                PathBuf::from("prompts/fixer.j2")
            ]
        );
        assert_eq!(
            config.records,
            [
                root.join("out/run-1"),
                root.join(".agent-orch"),
                root.join("t.jsonl")
            ]
        );

        // A `protect` list replaces the default globs; the commands' files stay.
        let text = fs::read_to_string(root.join("w.yaml")).unwrap();
        fs::write(
            root.join("w.yaml"),
            text.replace("  never_delete:", "  protect: [\"qa/**\"]\n  never_delete:"),
        )
        .unwrap();
        let workflow = load(&root.join("w.yaml"), &LoadOptions::default()).unwrap();
        let config = policy_config(&workflow, &settings(root, TapeMode::Live));
        assert_eq!(
            config.protect,
            ["qa/**", "check[[]1[]].sh", "scripts/smoke.sh"]
        );
    }
}
