//! The patch benchmark's floor, enforced: on the whole corpus of imperfect LLM-style diffs,
//! agent-orch applies at least 95% correctly and never applies one wrongly.
//! (`cargo bench --bench patch_corpus` prints the comparison with `git apply` and `patch`.)

use crate::support::patch_corpus::{ALL_IMPERFECTIONS, Expected, Outcome, corpus, run_ours};

#[test]
fn applies_at_least_95_percent_correctly_and_never_wrongly() {
    let cases = corpus();
    let refusals = cases
        .iter()
        .filter(|case| matches!(case.expected, Expected::Refusal))
        .count();
    assert!(
        cases.len() >= 200,
        "the corpus has only {} cases",
        cases.len()
    );
    assert!(
        refusals >= 20,
        "the corpus has only {refusals} cases that must be refused"
    );
    for imperfection in ALL_IMPERFECTIONS {
        let occurrences = cases
            .iter()
            .filter(|case| case.imperfections.contains(&imperfection))
            .count();
        assert!(
            occurrences >= 10,
            "{imperfection:?} occurs in only {occurrences} cases"
        );
    }

    let mut wrong = Vec::new();
    let mut refused = Vec::new();
    for case in &cases {
        match run_ours(case) {
            Outcome::Correct => {}
            Outcome::Refused => refused.push(case.name.as_str()),
            Outcome::Wrong => wrong.push(case.name.as_str()),
        }
    }
    assert!(wrong.is_empty(), "applied wrongly: {wrong:#?}");
    let correct = cases.len() - refused.len();
    assert!(
        correct * 100 >= cases.len() * 95,
        "only {correct} of {} correct; wrongly refused: {refused:#?}",
        cases.len()
    );
}
