//! The patch benchmark's floor, enforced: on the whole corpus of imperfect LLM-style diffs,
//! agent-orch applies at least 95% correctly and never applies one wrongly; on each edit
//! format's corpus (V4A, SEARCH/REPLACE, whole files), at least 98% and never wrongly.
//! (`cargo bench --bench patch_corpus` prints the comparison with `git apply` and `patch`.)

use agent_orch::patch::EditFormat;

use crate::support::patch_corpus::{
    ALL_IMPERFECTIONS, Case, Expected, Outcome, corpus, format_corpus, imperfections_of, run_ours,
};

/// The names of the cases applied wrongly, and of those refused that should have applied.
fn not_correct(cases: &[Case]) -> (Vec<&str>, Vec<&str>) {
    let mut wrong = Vec::new();
    let mut refused = Vec::new();
    for case in cases {
        match run_ours(case) {
            Outcome::Correct => {}
            Outcome::Refused => refused.push(case.name.as_str()),
            Outcome::Wrong => wrong.push(case.name.as_str()),
        }
    }
    (wrong, refused)
}

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

    let (wrong, refused) = not_correct(&cases);
    assert!(wrong.is_empty(), "applied wrongly: {wrong:#?}");
    let correct = cases.len() - refused.len();
    assert!(
        correct * 100 >= cases.len() * 95,
        "only {correct} of {} correct; wrongly refused: {refused:#?}",
        cases.len()
    );
}

#[test]
fn every_edit_format_applies_at_least_98_percent_correctly_and_never_wrongly() {
    for format in EditFormat::ALL {
        let cases = format_corpus(format);
        let refusals = cases
            .iter()
            .filter(|case| matches!(case.expected, Expected::Refusal))
            .count();
        assert!(cases.len() >= 150, "{format:?}: only {} cases", cases.len());
        assert!(refusals >= 10, "{format:?}: only {refusals} refusals");
        for &imperfection in imperfections_of(format) {
            let occurrences = cases
                .iter()
                .filter(|case| case.imperfections.contains(&imperfection))
                .count();
            assert!(
                occurrences >= 10,
                "{format:?}: {imperfection:?} occurs in only {occurrences} cases"
            );
        }
        let (wrong, refused) = not_correct(&cases);
        assert!(wrong.is_empty(), "{format:?} applied wrongly: {wrong:#?}");
        let correct = cases.len() - refused.len();
        assert!(
            correct * 100 >= cases.len() * 98,
            "{format:?}: only {correct} of {} correct; wrongly refused: {refused:#?}",
            cases.len()
        );
    }
}
