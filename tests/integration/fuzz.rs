//! A short run of the mutation fuzzer on every `cargo test`: mutated workflows and diffs
//! never panic or hang. Longer runs: `cargo bench --bench fuzz_inputs` (README, "Fuzzing").

use std::time::Duration;

use crate::support::fuzz::{self, Budget};
use crate::support::patch_corpus::corpus;

const BUDGET: Budget = Budget {
    inputs: 400,
    time: Duration::from_secs(60),
};

#[test]
fn mutated_workflows_load_or_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = fuzz::workflow_seeds(dir.path());
    assert!(seeds.len() > 20, "the fixtures are the seeds");
    let report = fuzz::workflows(dir.path(), &seeds, BUDGET, 1);
    assert_eq!(report.inputs, BUDGET.inputs);
    assert!(report.crashes.is_empty(), "{:#?}", report.crashes.first());
    assert!(report.slowest < fuzz::HANG, "{:.0} inputs/s", report.rate());
}

#[test]
fn mutated_diffs_parse_plan_and_meet_the_policy_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cases = corpus().into_iter().map(|case| (case.files, case.diff));
    let seeds = fuzz::diff_seeds(dir.path(), cases);
    let report = fuzz::diffs(dir.path(), &seeds, BUDGET, 1);
    assert_eq!(report.inputs, BUDGET.inputs);
    assert!(report.crashes.is_empty(), "{:#?}", report.crashes.first());
}

#[test]
fn a_panicking_target_is_reported_as_a_crash_with_its_input() {
    let seeds = vec!["steps: []\n".to_owned()];
    let budget = Budget {
        inputs: 200,
        time: Duration::from_secs(10),
    };
    let report = fuzz::run("selftest", &seeds, budget, 7, |input| {
        assert!(!input.contains('{'), "found a brace");
    });
    assert_eq!(report.inputs, 200);
    let (input, message) = report.crashes.first().expect("some input has a brace");
    assert!(input.contains('{'));
    assert!(message.contains("found a brace"), "{message}");
}
