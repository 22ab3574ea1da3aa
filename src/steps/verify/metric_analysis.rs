//! Judging one metric measurement: the query's samples against the failure condition, the
//! baseline and the success condition. Pure functions, no I/O. Every reason carries the
//! measured value: `error rate 0.031 > 0.01`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::analysis::{ConditionEvaluator, Judgement, Verdict};
use crate::workflow::step_config::verify::Condition;
use crate::workflow::step_config::verify_metric::{BaselineSpec, Worse};

/// One value a query returned, with what identifies it (a series' labels, a row's other
/// columns).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// What a query returned: no sample ("no data"), one, or several.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct MetricResult {
    pub(crate) samples: Vec<Sample>,
}

impl MetricResult {
    pub(crate) fn single(value: f64) -> Self {
        Self {
            samples: vec![Sample {
                labels: BTreeMap::new(),
                value,
            }],
        }
    }

    /// The value when there is exactly one.
    pub(crate) fn value(&self) -> Option<f64> {
        match self.samples.as_slice() {
            [only] => Some(only.value),
            _ => None,
        }
    }

    /// `0.031`, or `[0.01, 0.2]` for several samples.
    pub(crate) fn shown(&self) -> String {
        match self.value() {
            Some(value) => number(value),
            None => format!(
                "[{}]",
                self.samples
                    .iter()
                    .map(|s| number(s.value))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// `result`: the number, or the list of numbers; `series`: `[{labels, value}]`.
    fn scope(&self, baseline: Option<f64>) -> minijinja::Value {
        let result = match self.value() {
            Some(value) => minijinja::Value::from(value),
            None => minijinja::Value::from(
                self.samples
                    .iter()
                    .map(|s| minijinja::Value::from(s.value))
                    .collect::<Vec<_>>(),
            ),
        };
        let series: Vec<minijinja::Value> = self
            .samples
            .iter()
            .map(|s| {
                minijinja::context! {
                    labels => minijinja::Value::from(minijinja::value::Serde(&s.labels)),
                    value => s.value,
                }
            })
            .collect();
        let mut scope = BTreeMap::new();
        scope.insert("result".to_owned(), result);
        scope.insert("series".to_owned(), minijinja::Value::from(series));
        if let Some(baseline) = baseline {
            scope.insert("baseline".to_owned(), minijinja::Value::from(baseline));
        }
        minijinja::Value::from_object(scope)
    }
}

/// A number as people read it: `0.031`, `12`, `NaN`; 12 significant digits, so a computed
/// limit reads `0.022`, not `0.022000000000000002`.
pub(crate) fn number(value: f64) -> String {
    if !value.is_finite() {
        return format!("{value}");
    }
    let rounded: f64 = format!("{value:.11e}").parse().unwrap_or(value);
    if rounded == rounded.trunc() && rounded.abs() < 1e15 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded}")
    }
}

/// The baseline a measurement is compared with: measured before the deploy, or why not.
pub(crate) type BaselineValue<'a> = Option<(&'a BaselineSpec, Result<f64, &'a str>)>;

/// The conditions and name of a metric check.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MetricExpectations<'a> {
    pub(crate) name: &'a str,
    pub(crate) success_condition: Option<&'a Condition>,
    pub(crate) failure_condition: Option<&'a Condition>,
}

/// The failure condition first (a failure wins), then the baseline, then the success
/// condition; with neither condition nor baseline, any value passes.
pub(crate) fn judge_metric(
    result: &MetricResult,
    expect: &MetricExpectations<'_>,
    baseline: BaselineValue<'_>,
    conditions: &ConditionEvaluator,
) -> Judgement {
    let name = expect.name;
    if result.samples.is_empty() {
        return Judgement::new(
            Verdict::Error,
            format!("{name}: the query returned no data"),
        );
    }
    let shown = result.shown();
    let baseline_value = baseline.and_then(|(_, value)| value.ok());
    let scope = result.scope(baseline_value);
    let evaluate = |kind: &str, condition: &Condition| {
        conditions.holds(condition, &scope).map_err(|err| {
            Judgement::new(
                Verdict::Error,
                format!(
                    "{name} {shown}: {kind} `{}` could not be evaluated: {err}",
                    condition.source()
                ),
            )
        })
    };
    // `error rate 0.031 > 0.01`; a condition that does not name `result` follows the value.
    let with_values = |kind: &str, condition: &Condition| {
        let text = substitute(condition.source(), &[("result", &shown)], baseline_value);
        if text.contains(&shown) {
            text
        } else {
            format!("{shown}: {kind} `{}` held", condition.source())
        }
    };
    if let Some(condition) = expect.failure_condition {
        match evaluate("failure_condition", condition) {
            Ok(true) => {
                return Judgement::new(
                    Verdict::Failure,
                    format!("{name} {}", with_values("failure condition", condition)),
                );
            }
            Ok(false) => {}
            Err(judgement) => return judgement,
        }
    }
    let mut within_baseline = None;
    if let Some((spec, value)) = baseline {
        let baseline = match value {
            Ok(baseline) => baseline,
            Err(why) => {
                return Judgement::new(
                    Verdict::Inconclusive,
                    format!("{name} {shown}: no baseline to compare with: {why}"),
                );
            }
        };
        let Some(value) = result.value() else {
            return Judgement::new(
                Verdict::Error,
                format!(
                    "{name} {shown}: a baseline compares one value, the query returned {}",
                    result.samples.len()
                ),
            );
        };
        let limit = spec.limit(baseline);
        let allowance = allowance(spec);
        if spec.exceeded(value, baseline) {
            let sign = match spec.fail_on {
                Worse::Increase => ">",
                Worse::Decrease => "<",
            };
            return Judgement::new(
                Verdict::Failure,
                format!(
                    "{name} {shown} {sign} {} (baseline {}{allowance})",
                    number(limit),
                    number(baseline)
                ),
            );
        }
        within_baseline = Some(format!(
            "within {} (baseline {}{allowance})",
            number(limit),
            number(baseline)
        ));
    }
    if let Some(condition) = expect.success_condition {
        return match evaluate("success_condition", condition) {
            Ok(true) => Judgement::new(
                Verdict::Success,
                format!("{name} {}", with_values("success condition", condition)),
            ),
            Ok(false) if expect.failure_condition.is_some() => Judgement::new(
                Verdict::Inconclusive,
                format!(
                    "{name} {shown}: neither success condition `{}` nor failure condition held",
                    condition.source()
                ),
            ),
            Ok(false) => Judgement::new(
                Verdict::Failure,
                format!(
                    "{name} {shown}: success condition `{}` did not hold",
                    condition.source()
                ),
            ),
            Err(judgement) => judgement,
        };
    }
    let reason = match within_baseline {
        Some(within) => format!("{name} {shown} {within}"),
        None => format!("{name} {shown}"),
    };
    Judgement::new(Verdict::Success, reason)
}

/// ` + 10% + 0.001`: what the baseline allows, as configured.
fn allowance(spec: &BaselineSpec) -> String {
    let sign = match spec.fail_on {
        Worse::Increase => '+',
        Worse::Decrease => '-',
    };
    let mut text = String::new();
    if spec.tolerance > 0.0 {
        let _ = write!(text, " {sign} {}%", number(spec.tolerance * 100.0));
    }
    if spec.margin > 0.0 {
        let _ = write!(text, " {sign} {}", number(spec.margin));
    }
    text
}

/// The condition with `result` (and `baseline`) replaced by their values: `result > 0.01`
/// reads `0.031 > 0.01`. Names inside string literals or after a `.` stay as written.
fn substitute(source: &str, values: &[(&str, &str)], baseline: Option<f64>) -> String {
    let baseline = baseline.map(number);
    let mut out = String::with_capacity(source.len());
    let mut chars = source.char_indices().peekable();
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    while let Some((start, c)) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            previous = c;
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            out.push(c);
            previous = c;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let mut end = start + c.len_utf8();
            while let Some(&(i, next)) = chars.peek() {
                if next.is_ascii_alphanumeric() || next == '_' {
                    end = i + next.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let word = &source[start..end];
            let replacement = if previous == '.' {
                None
            } else if word == "baseline" {
                baseline.as_deref()
            } else {
                values.iter().find(|(n, _)| *n == word).map(|(_, v)| *v)
            };
            out.push_str(replacement.unwrap_or(word));
            previous = 'a';
            continue;
        }
        out.push(c);
        previous = c;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::span::Spanned;

    fn condition(source: &str) -> Condition {
        Condition(Spanned::detached(source.to_owned()))
    }

    fn expect<'a>(
        success: Option<&'a Condition>,
        failure: Option<&'a Condition>,
    ) -> MetricExpectations<'a> {
        MetricExpectations {
            name: "error rate",
            success_condition: success,
            failure_condition: failure,
        }
    }

    fn judge(result: &MetricResult, expect: &MetricExpectations<'_>) -> Judgement {
        judge_metric(result, expect, None, &ConditionEvaluator::new())
    }

    #[test]
    fn reasons_carry_the_measured_value() {
        let failure = condition("result > 0.01");
        let success = condition("result < 0.005");
        let expectations = expect(Some(&success), Some(&failure));
        assert_eq!(
            judge(&MetricResult::single(0.031), &expectations),
            Judgement::new(Verdict::Failure, "error rate 0.031 > 0.01")
        );
        assert_eq!(
            judge(&MetricResult::single(0.001), &expectations),
            Judgement::new(Verdict::Success, "error rate 0.001 < 0.005")
        );
        assert_eq!(
            judge(&MetricResult::single(0.007), &expectations),
            Judgement::new(
                Verdict::Inconclusive,
                "error rate 0.007: neither success condition `result < 0.005` nor failure condition held"
            )
        );
        let alone = expect(Some(&success), None);
        assert_eq!(
            judge(&MetricResult::single(0.007), &alone).reason,
            "error rate 0.007: success condition `result < 0.005` did not hold"
        );
    }

    #[test]
    fn no_data_is_an_error_and_several_samples_are_a_list() {
        let failure = condition("result | max > 0.5");
        let expectations = expect(None, Some(&failure));
        assert_eq!(
            judge(&MetricResult::default(), &expectations).verdict,
            Verdict::Error
        );
        let two = MetricResult {
            samples: vec![
                Sample {
                    labels: BTreeMap::from([("pod".to_owned(), "a".to_owned())]),
                    value: 0.2,
                },
                Sample {
                    labels: BTreeMap::from([("pod".to_owned(), "b".to_owned())]),
                    value: 0.7,
                },
            ],
        };
        assert_eq!(
            judge(&two, &expectations).reason,
            "error rate [0.2, 0.7] | max > 0.5"
        );
        let by_label =
            condition("series | selectattr('labels.pod', 'eq', 'b') | list | length == 1");
        assert_eq!(
            judge(&two, &expect(Some(&by_label), None)).verdict,
            Verdict::Success
        );
    }

    #[test]
    fn a_condition_on_something_missing_is_an_error_measurement() {
        let failure = condition("result.ready");
        let judgement = judge(&MetricResult::single(1.0), &expect(None, Some(&failure)));
        assert_eq!(judgement.verdict, Verdict::Error, "{judgement:?}");
    }

    #[test]
    fn the_baseline_is_compared_after_the_failure_condition() {
        let spec = BaselineSpec {
            tolerance: 0.1,
            margin: 0.0,
            fail_on: Worse::Increase,
        };
        let failure = condition("result > 0.5");
        let expectations = expect(None, Some(&failure));
        let conditions = ConditionEvaluator::new();
        let judged = |value: f64, baseline: Result<f64, &str>| {
            judge_metric(
                &MetricResult::single(value),
                &expectations,
                Some((&spec, baseline)),
                &conditions,
            )
        };
        assert_eq!(
            judged(0.031, Ok(0.02)),
            Judgement::new(
                Verdict::Failure,
                "error rate 0.031 > 0.022 (baseline 0.02 + 10%)"
            )
        );
        assert_eq!(
            judged(0.021, Ok(0.02)),
            Judgement::new(
                Verdict::Success,
                "error rate 0.021 within 0.022 (baseline 0.02 + 10%)"
            )
        );
        assert_eq!(judged(0.9, Ok(0.02)).reason, "error rate 0.9 > 0.5");
        assert_eq!(
            judged(0.01, Err("the query returned no data")),
            Judgement::new(
                Verdict::Inconclusive,
                "error rate 0.01: no baseline to compare with: the query returned no data"
            )
        );
        // `baseline` is a value conditions can use, and shown with its value.
        let relative = condition("result > baseline * 2");
        let judgement = judge_metric(
            &MetricResult::single(0.05),
            &expect(None, Some(&relative)),
            Some((&spec, Ok(0.02))),
            &conditions,
        );
        assert_eq!(judgement.reason, "error rate 0.05 > 0.02 * 2");
    }

    #[test]
    fn substitution_leaves_strings_and_attributes_alone() {
        assert_eq!(
            substitute(
                "result > 1 and x.result == 'result'",
                &[("result", "3")],
                None
            ),
            "3 > 1 and x.result == 'result'"
        );
        assert_eq!(number(12.0), "12");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
