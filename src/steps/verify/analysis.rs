//! Judging measurements: one response against its expectations, and a series of verdicts
//! against the step's limits. Pure functions, no I/O.

use std::time::Duration;

use indexmap::IndexMap;

use super::response::ResponseSnapshot;
use crate::workflow::step_config::verify::{Condition, ExpectStatus, MeasurementPolicy};

/// What one measurement (one request, or one run of a flow) says about the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    /// The service answered and the answer is wrong: decisive.
    Failure,
    /// Both conditions are set and neither held.
    Inconclusive,
    /// No answer to judge (connection refused, timeout, unreadable body): maybe not up yet.
    Error,
    /// The check itself cannot run (a template that does not render, an invalid url):
    /// trying again would not change anything, so the step stops at once.
    Unrunnable,
}

impl Verdict {
    /// The word an attempt's log line gives the verdict.
    pub(crate) fn log_word(self) -> &'static str {
        match self {
            Verdict::Success => "ok",
            Verdict::Failure => "failure",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Error => "error",
            Verdict::Unrunnable => "cannot run",
        }
    }
}

/// A verdict and the lowercase line that explains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Judgement {
    pub(crate) verdict: Verdict,
    pub(crate) reason: String,
}

impl Judgement {
    pub(crate) fn new(verdict: Verdict, reason: impl Into<String>) -> Self {
        Self {
            verdict,
            reason: reason.into(),
        }
    }
}

/// Expectations with their templates already rendered.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RenderedExpectations<'a> {
    pub(crate) status: Option<&'a ExpectStatus>,
    pub(crate) body_contains: Option<&'a str>,
    pub(crate) json: &'a IndexMap<String, serde_json::Value>,
    pub(crate) max_latency: Option<Duration>,
    pub(crate) success_condition: Option<&'a Condition>,
    pub(crate) failure_condition: Option<&'a Condition>,
}

/// Evaluates success / failure conditions; undefined names are errors, as in templates.
pub(crate) struct ConditionEvaluator {
    env: minijinja::Environment<'static>,
}

impl ConditionEvaluator {
    pub(crate) fn new() -> Self {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        Self { env }
    }

    /// Whether `condition` holds; an undefined result (a missing field) is an error rather
    /// than false, as strict templates treat it.
    pub(crate) fn holds(
        &self,
        condition: &Condition,
        scope: &minijinja::Value,
    ) -> Result<bool, String> {
        let value = self
            .env
            .compile_expression(condition.source())
            .and_then(|expression| expression.eval(scope))
            .map_err(|err| err.detail().unwrap_or("invalid expression").to_owned())?;
        if value.is_undefined() {
            return Err("it refers to something the measurement does not have".to_owned());
        }
        Ok(value.is_true())
    }
}

/// Judges one response: the built-in expectations first (any miss is a failure), then the
/// failure condition, then the success condition. `scope` holds `response` (and `flow`).
pub(crate) fn judge(
    response: &ResponseSnapshot,
    expect: &RenderedExpectations<'_>,
    conditions: &ConditionEvaluator,
    scope: &minijinja::Value,
) -> Judgement {
    if let Some(reason) = status_mismatch(response.status, expect) {
        return Judgement::new(Verdict::Failure, reason);
    }
    if let Some(limit) = expect.max_latency
        && response.latency > limit
    {
        return Judgement::new(
            Verdict::Failure,
            format!(
                "latency {} over limit {}",
                millis(response.latency),
                millis(limit)
            ),
        );
    }
    if let Some(needle) = expect.body_contains
        && !response.body.contains(needle)
    {
        return Judgement::new(
            Verdict::Failure,
            format!("body does not contain {}", quoted(needle)),
        );
    }
    for (pointer, expected) in expect.json {
        if let Some(reason) = json_mismatch(response.json.as_ref(), pointer, expected) {
            return Judgement::new(Verdict::Failure, reason);
        }
    }
    let evaluate = |name: &str, condition: &Condition| {
        conditions.holds(condition, scope).map_err(|err| {
            Judgement::new(
                Verdict::Error,
                format!(
                    "{name} `{}` could not be evaluated: {err}",
                    condition.source()
                ),
            )
        })
    };
    if let Some(condition) = expect.failure_condition {
        match evaluate("failure_condition", condition) {
            Ok(true) => {
                return Judgement::new(
                    Verdict::Failure,
                    format!("failure condition `{}` held", condition.source()),
                );
            }
            Ok(false) => {}
            Err(judgement) => return judgement,
        }
    }
    if let Some(condition) = expect.success_condition {
        return match evaluate("success_condition", condition) {
            Ok(true) => Judgement::new(Verdict::Success, success_reason(response)),
            Ok(false) if expect.failure_condition.is_some() => Judgement::new(
                Verdict::Inconclusive,
                format!(
                    "neither success condition `{}` nor failure condition held (status {})",
                    condition.source(),
                    response.status
                ),
            ),
            Ok(false) => Judgement::new(
                Verdict::Failure,
                format!(
                    "success condition `{}` did not hold (status {})",
                    condition.source(),
                    response.status
                ),
            ),
            Err(judgement) => judgement,
        };
    }
    Judgement::new(Verdict::Success, success_reason(response))
}

fn success_reason(response: &ResponseSnapshot) -> String {
    format!("status {} in {}", response.status, millis(response.latency))
}

/// Without `expect_status`, any 2xx passes; a `success_condition` replaces that default.
fn status_mismatch(status: u16, expect: &RenderedExpectations<'_>) -> Option<String> {
    match expect.status {
        Some(ExpectStatus(codes)) if !codes.contains(&status) => {
            let expected = codes
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ");
            Some(format!("expected status {expected}, got {status}"))
        }
        Some(_) => None,
        None if expect.success_condition.is_none() && !(200..300).contains(&status) => {
            Some(format!("expected a 2xx status, got {status}"))
        }
        None => None,
    }
}

/// `None` when the value at `pointer` equals `expected`, else why not.
pub(crate) fn json_mismatch(
    document: Option<&serde_json::Value>,
    pointer: &str,
    expected: &serde_json::Value,
) -> Option<String> {
    let shown_pointer = if pointer.is_empty() { "/" } else { pointer };
    let Some(document) = document else {
        return Some(format!(
            "{shown_pointer}: expected {expected}, got a body that is not json"
        ));
    };
    match document.pointer(pointer) {
        None => Some(format!(
            "{shown_pointer}: expected {expected}, got nothing (no such field)"
        )),
        Some(actual) if json_equal(actual, expected) => None,
        Some(actual) => Some(format!(
            "{shown_pointer}: expected {expected}, got {}",
            excerpt(&actual.to_string(), 200)
        )),
    }
}

/// JSON equality where `1` and `1.0` are the same number (YAML and JSON disagree on which).
fn json_equal(actual: &serde_json::Value, expected: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => a == b,
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| json_equal(a, b)))
        }
        _ => actual == expected,
    }
}

/// Counts verdicts against the limits and decides when the step is over.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) attempts: u32,
    successes: u32,
    failures: u32,
    consecutive_failures: u32,
    inconclusive: u32,
}

/// How the measurements ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Pass,
    /// Failed; `why` ends the message: `after 4 attempts`, `(3 consecutive failures, limit 2)`,
    /// or nothing when one attempt settled it.
    Fail {
        why: String,
    },
    Inconclusive {
        why: String,
    },
}

impl Tally {
    /// Records one verdict, taken `elapsed` after the first measurement started. Argo-like: a
    /// limit is the number of such measurements tolerated, so `consecutive_failure_limit: 0`
    /// fails on the first failure. Errors and inconclusive measurements end a run of
    /// consecutive failures. Without a soak the first success passes; in a soak, measurements
    /// go on until `soak` has elapsed. `None`: take another measurement.
    pub(crate) fn record(
        &mut self,
        verdict: Verdict,
        policy: &MeasurementPolicy,
        elapsed: Duration,
    ) -> Option<Decision> {
        self.attempts += 1;
        match verdict {
            Verdict::Success if policy.soak.is_none() => return Some(Decision::Pass),
            Verdict::Success => {
                self.successes += 1;
                self.consecutive_failures = 0;
            }
            Verdict::Unrunnable => return Some(Decision::Fail { why: String::new() }),
            Verdict::Failure => {
                self.failures += 1;
                self.consecutive_failures += 1;
                if let Some(limit) = policy.consecutive_failure_limit
                    && self.consecutive_failures > limit
                {
                    let why = match policy.soak {
                        Some(soak) if limit == 0 => self.soak_progress(elapsed, soak),
                        _ => format!(
                            "({} consecutive {}, limit {limit})",
                            self.consecutive_failures,
                            plural(self.consecutive_failures, "failure", "failures")
                        ),
                    };
                    return Some(Decision::Fail { why });
                }
            }
            Verdict::Inconclusive => {
                self.consecutive_failures = 0;
                self.inconclusive += 1;
                if let Some(limit) = policy.inconclusive_limit
                    && self.inconclusive > limit
                {
                    return Some(Decision::Inconclusive {
                        why: format!(
                            "({} inconclusive {}, limit {limit})",
                            self.inconclusive,
                            plural(self.inconclusive, "measurement", "measurements")
                        ),
                    });
                }
            }
            Verdict::Error => self.consecutive_failures = 0,
        }
        if let Some(soak) = policy.soak {
            if elapsed < soak {
                return None;
            }
            let why = format!(
                "after {} {} over {}",
                self.attempts,
                plural(self.attempts, "measurement", "measurements"),
                humantime::format_duration(soak)
            );
            // The soak survived its limits: it passes if anything was measured at all.
            return Some(if self.successes > 0 {
                Decision::Pass
            } else if self.failures == 0 && self.inconclusive > 0 {
                Decision::Inconclusive { why }
            } else {
                Decision::Fail { why }
            });
        }
        if self.attempts < policy.attempts {
            return None;
        }
        let why = if self.attempts > 1 {
            format!("after {} attempts", self.attempts)
        } else {
            String::new()
        };
        // Out of attempts: a decisive failure wins; inconclusive beats mere errors.
        Some(if self.failures == 0 && self.inconclusive > 0 {
            Decision::Inconclusive { why }
        } else {
            Decision::Fail { why }
        })
    }

    /// `(measurement 3, 1m into a 10m soak)`.
    fn soak_progress(&self, elapsed: Duration, soak: Duration) -> String {
        format!(
            "(measurement {}, {} into a {} soak)",
            self.attempts,
            humantime::format_duration(Duration::from_secs(elapsed.as_secs())),
            humantime::format_duration(soak)
        )
    }
}

fn plural<'a>(count: u32, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

pub(crate) fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

fn quoted(text: &str) -> String {
    serde_json::Value::from(excerpt(text, 200)).to_string()
}

/// At most `max` bytes of `text`, cut at a character boundary, with `...` when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::workflow::span::Spanned;

    fn response(status: u16, body: &str, latency_ms: u64) -> ResponseSnapshot {
        ResponseSnapshot {
            method: "GET",
            url: "http://127.0.0.1/health".to_owned(),
            status,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.to_owned(),
            body_truncated: false,
            json: serde_json::from_str(body).ok(),
            latency: Duration::from_millis(latency_ms),
        }
    }

    fn condition(source: &str) -> Condition {
        Condition(Spanned::detached(source.to_owned()))
    }

    fn no_json() -> IndexMap<String, serde_json::Value> {
        IndexMap::new()
    }

    fn expect(json: &IndexMap<String, serde_json::Value>) -> RenderedExpectations<'_> {
        RenderedExpectations {
            status: None,
            body_contains: None,
            json,
            max_latency: None,
            success_condition: None,
            failure_condition: None,
        }
    }

    fn judge_plain(response: &ResponseSnapshot, expect: &RenderedExpectations<'_>) -> Judgement {
        let scope = minijinja::context! { response => response.condition_value() };
        judge(response, expect, &ConditionEvaluator::new(), &scope)
    }

    #[test]
    fn any_2xx_passes_by_default() {
        let json = no_json();
        let judgement = judge_plain(&response(204, "", 3), &expect(&json));
        assert_eq!(
            judgement,
            Judgement::new(Verdict::Success, "status 204 in 3ms")
        );
        let judgement = judge_plain(&response(302, "", 3), &expect(&json));
        assert_eq!(
            judgement,
            Judgement::new(Verdict::Failure, "expected a 2xx status, got 302")
        );
    }

    #[test]
    fn status_list_names_every_accepted_code() {
        let json = no_json();
        let statuses = ExpectStatus(vec![200, 204]);
        let mut expectations = expect(&json);
        expectations.status = Some(&statuses);
        assert_eq!(
            judge_plain(&response(503, "", 1), &expectations).reason,
            "expected status 200 or 204, got 503"
        );
        assert_eq!(
            judge_plain(&response(204, "", 1), &expectations).verdict,
            Verdict::Success
        );
    }

    #[test]
    fn latency_over_limit_fails() {
        let json = no_json();
        let mut expectations = expect(&json);
        expectations.max_latency = Some(Duration::from_millis(500));
        assert_eq!(
            judge_plain(&response(200, "", 812), &expectations),
            Judgement::new(Verdict::Failure, "latency 812ms over limit 500ms")
        );
        assert_eq!(
            judge_plain(&response(200, "", 500), &expectations).verdict,
            Verdict::Success
        );
    }

    #[test]
    fn body_contains_quotes_the_missing_text() {
        let json = no_json();
        let mut expectations = expect(&json);
        expectations.body_contains = Some("version 2");
        assert_eq!(
            judge_plain(&response(200, "version 1", 1), &expectations).reason,
            r#"body does not contain "version 2""#
        );
        assert_eq!(
            judge_plain(&response(200, "running version 2.1", 1), &expectations).verdict,
            Verdict::Success
        );
    }

    #[test]
    fn json_pointer_matching() {
        let document = json!({"status": "degraded", "checks": [{"ok": true}], "count": 3});
        assert_eq!(
            json_mismatch(Some(&document), "/status", &json!("ok")).as_deref(),
            Some(r#"/status: expected "ok", got "degraded""#)
        );
        assert_eq!(
            json_mismatch(Some(&document), "/checks/0/ok", &json!(true)),
            None
        );
        assert_eq!(json_mismatch(Some(&document), "/count", &json!(3.0)), None);
        assert_eq!(
            json_mismatch(Some(&document), "/missing", &json!(1)).as_deref(),
            Some("/missing: expected 1, got nothing (no such field)")
        );
        assert_eq!(
            json_mismatch(None, "/status", &json!("ok")).as_deref(),
            Some(r#"/status: expected "ok", got a body that is not json"#)
        );
        assert_eq!(
            json_mismatch(Some(&document), "", &document.clone()),
            None,
            "the empty pointer is the whole document"
        );
    }

    #[test]
    fn conditions_argo_style() {
        let json = no_json();
        let success = condition("response.json.ready == true");
        let failure = condition("response.json.error is defined");
        let mut expectations = expect(&json);
        expectations.success_condition = Some(&success);
        expectations.failure_condition = Some(&failure);

        let ready = response(200, r#"{"ready": true}"#, 1);
        assert_eq!(judge_plain(&ready, &expectations).verdict, Verdict::Success);

        let broken = response(200, r#"{"ready": false, "error": "db down"}"#, 1);
        assert_eq!(
            judge_plain(&broken, &expectations),
            Judgement::new(
                Verdict::Failure,
                "failure condition `response.json.error is defined` held"
            )
        );

        let starting = response(200, r#"{"ready": false}"#, 1);
        assert_eq!(
            judge_plain(&starting, &expectations).verdict,
            Verdict::Inconclusive
        );

        // Without a failure condition, a success condition that does not hold is a failure.
        expectations.failure_condition = None;
        assert_eq!(
            judge_plain(&starting, &expectations).reason,
            "success condition `response.json.ready == true` did not hold (status 200)"
        );
    }

    #[test]
    fn success_condition_replaces_the_2xx_default() {
        let json = no_json();
        let success = condition("response.status == 503");
        let mut expectations = expect(&json);
        expectations.success_condition = Some(&success);
        assert_eq!(
            judge_plain(&response(503, "", 1), &expectations).verdict,
            Verdict::Success
        );
    }

    #[test]
    fn condition_that_cannot_be_evaluated_is_an_error_measurement() {
        let json = no_json();
        let success = condition("response.json.ready");
        let mut expectations = expect(&json);
        expectations.success_condition = Some(&success);
        let judgement = judge_plain(&response(200, "not json", 1), &expectations);
        assert_eq!(judgement.verdict, Verdict::Error);
        assert!(
            judgement
                .reason
                .starts_with("success_condition `response.json.ready` could not be evaluated"),
            "{}",
            judgement.reason
        );
    }

    fn limits(
        attempts: u32,
        failures: Option<u32>,
        inconclusive: Option<u32>,
    ) -> MeasurementPolicy {
        MeasurementPolicy {
            attempts,
            interval: Duration::ZERO,
            consecutive_failure_limit: failures,
            inconclusive_limit: inconclusive,
            soak: None,
        }
    }

    fn run(verdicts: &[Verdict], policy: &MeasurementPolicy) -> (Decision, u32) {
        let mut tally = Tally::default();
        for verdict in verdicts {
            if let Some(decision) = tally.record(*verdict, policy, Duration::ZERO) {
                return (decision, tally.attempts);
            }
        }
        panic!("{} verdicts did not decide", verdicts.len());
    }

    use Verdict::{Error, Failure, Inconclusive, Success, Unrunnable};

    #[test]
    fn passes_on_the_first_success() {
        let policy = limits(4, None, None);
        assert_eq!(
            run(&[Error, Failure, Success, Failure], &policy),
            (Decision::Pass, 3)
        );
    }

    #[test]
    fn out_of_attempts_fails_or_is_inconclusive() {
        let policy = limits(3, None, None);
        let fail = Decision::Fail {
            why: "after 3 attempts".to_owned(),
        };
        assert_eq!(run(&[Error, Error, Error], &policy), (fail.clone(), 3));
        assert_eq!(run(&[Inconclusive, Failure, Error], &policy), (fail, 3));
        assert_eq!(
            run(&[Inconclusive, Error, Inconclusive], &policy),
            (
                Decision::Inconclusive {
                    why: "after 3 attempts".to_owned()
                },
                3
            )
        );
    }

    #[test]
    fn consecutive_failure_limit_counts_only_adjacent_failures() {
        let policy = limits(10, Some(1), None);
        let (decision, attempts) = run(
            &[Failure, Error, Failure, Inconclusive, Failure, Failure],
            &policy,
        );
        assert_eq!(
            decision,
            Decision::Fail {
                why: "(2 consecutive failures, limit 1)".to_owned()
            }
        );
        assert_eq!(attempts, 6);
        assert_eq!(
            run(&[Failure], &limits(10, Some(0), None)).0,
            Decision::Fail {
                why: "(1 consecutive failure, limit 0)".to_owned()
            }
        );
    }

    #[test]
    fn inconclusive_limit_stops_early() {
        let policy = limits(10, None, Some(1));
        assert_eq!(
            run(&[Inconclusive, Error, Inconclusive], &policy),
            (
                Decision::Inconclusive {
                    why: "(2 inconclusive measurements, limit 1)".to_owned()
                },
                3
            )
        );
    }

    #[test]
    fn unrunnable_stops_at_once() {
        let policy = limits(10, None, None);
        assert_eq!(
            run(&[Unrunnable, Success], &policy),
            (Decision::Fail { why: String::new() }, 1)
        );
    }

    #[test]
    fn a_soak_goes_on_past_successes_and_fails_at_the_first_failure() {
        let policy = MeasurementPolicy {
            soak: Some(Duration::from_secs(60)),
            consecutive_failure_limit: Some(0),
            ..limits(1, None, None)
        };
        let mut tally = Tally::default();
        let at = Duration::from_secs;
        assert_eq!(tally.record(Success, &policy, at(0)), None);
        assert_eq!(tally.record(Error, &policy, at(20)), None);
        assert_eq!(
            tally.record(Failure, &policy, at(40)),
            Some(Decision::Fail {
                why: "(measurement 3, 40s into a 1m soak)".to_owned()
            })
        );
        let mut tally = Tally::default();
        assert_eq!(tally.record(Success, &policy, at(0)), None);
        assert_eq!(tally.record(Success, &policy, at(60)), Some(Decision::Pass));
        let mut tally = Tally::default();
        assert_eq!(tally.record(Inconclusive, &policy, at(0)), None);
        assert_eq!(
            tally.record(Error, &policy, at(61)),
            Some(Decision::Inconclusive {
                why: "after 2 measurements over 1m".to_owned()
            })
        );
    }

    #[test]
    fn excerpt_cuts_at_a_char_boundary() {
        assert_eq!(excerpt("héllo", 2), "h...");
        assert_eq!(excerpt("hello", 5), "hello");
    }
}
