//! [`SecretMask`]: replaces secret values with `***` in every event before any reporter sees
//! it. Defence in depth: steps and agents should keep secrets out of events in the first
//! place, but a secret echoed by a failing script lands in its output tail, and from there
//! in every report.
//!
//! Exact values only (as Azure Pipelines masks): an encoded form (base64, URL-encoded) of a
//! secret is not recognized. File paths in events are not masked.

use std::borrow::Cow;
use std::sync::Arc;

use crate::engine::events::Event;
use crate::steps::StepOutcome;

const MASK: &str = "***";

#[derive(Clone, Debug, Default)]
pub struct SecretMask {
    /// Longest first, so a secret that contains another is masked whole.
    values: Vec<String>,
}

impl SecretMask {
    /// Empty values are ignored (they would match everywhere).
    pub fn new<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Self {
        let mut values: Vec<String> = values
            .into_iter()
            .map(Into::into)
            .filter(|value| !value.is_empty())
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Self { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut masked = Cow::Borrowed(text);
        for value in &self.values {
            if masked.contains(value.as_str()) {
                masked = Cow::Owned(masked.replace(value.as_str(), MASK));
            }
        }
        masked
    }

    /// The event with every secret masked in its text; borrowed when there is nothing to mask.
    pub(crate) fn mask_event<'a>(&self, event: &'a Event) -> Cow<'a, Event> {
        if self.is_empty() {
            return Cow::Borrowed(event);
        }
        let mut event = event.clone();
        match &mut event {
            Event::RunStarted { .. } | Event::IterationStarted { .. } => {}
            Event::StepStarted { step_name, .. } => self.mask_in_place(step_name),
            Event::StepFinished {
                step_name, outcome, ..
            } => {
                self.mask_in_place(step_name);
                *outcome = Arc::new(self.mask_outcome(outcome));
            }
            Event::IterationFinished { failure, .. } => {
                if let Some(failure) = failure {
                    self.mask_in_place(failure);
                }
            }
            Event::Decision { kind, detail, .. } => {
                self.mask_in_place(kind);
                self.mask_json(detail);
            }
            Event::OutputsRendered { outputs } => outputs
                .values_mut()
                .for_each(|value| self.mask_in_place(value)),
            Event::RunFinished { reason, .. } => self.mask_in_place(reason),
        }
        Cow::Owned(event)
    }

    fn mask_in_place(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.mask(text) {
            *text = masked;
        }
    }

    fn mask_outcome(&self, outcome: &StepOutcome) -> StepOutcome {
        let mut outcome = outcome.clone();
        self.mask_in_place(&mut outcome.message);
        self.mask_in_place(&mut outcome.output_tail);
        for value in outcome.outputs.values_mut() {
            self.mask_in_place(value);
        }
        if let Some(evidence) = &mut outcome.evidence {
            self.mask_in_place(evidence);
        }
        outcome
    }

    fn mask_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => self.mask_in_place(text),
            serde_json::Value::Array(items) => {
                for item in items {
                    self.mask_json(item);
                }
            }
            serde_json::Value::Object(fields) => {
                let keys_with_secrets: Vec<String> = fields
                    .keys()
                    .filter(|key| matches!(self.mask(key), Cow::Owned(_)))
                    .cloned()
                    .collect();
                for key in keys_with_secrets {
                    if let Some(field) = fields.remove(&key) {
                        fields.insert(self.mask(&key).into_owned(), field);
                    }
                }
                for field in fields.values_mut() {
                    self.mask_json(field);
                }
            }
            serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::steps::StepStatus;
    use crate::workflow::model::Phase;

    #[test]
    fn masks_every_occurrence_longest_value_first() {
        let mask = SecretMask::new(["s3cr3t", "s3cr3t-token-42", ""]);
        assert_eq!(
            mask.mask("auth s3cr3t-token-42 then s3cr3t."),
            "auth *** then ***."
        );
        assert!(matches!(mask.mask("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn masks_step_output_and_decision_details() {
        let mask = SecretMask::new(["hunter2"]);
        let mut outcome = StepOutcome::failed("login failed for hunter2");
        outcome.output_tail = "curl -u admin:hunter2 https://x\n401".to_owned();
        outcome.evidence = Some("Authorization: Basic hunter2".to_owned());
        outcome
            .outputs
            .insert("token".to_owned(), "hunter2".to_owned());
        let step = Event::StepFinished {
            iteration: 1,
            phase: Phase::Steps,
            step_id: "login".to_owned(),
            step_name: "login".to_owned(),
            kind: "gate",
            required: true,
            duration: Duration::from_secs(1),
            outcome: Arc::new(outcome),
        };
        let masked = serde_json::to_string(&*mask.mask_event(&step)).unwrap_or_default();
        assert!(!masked.contains("hunter2"), "{masked}");
        assert_eq!(masked.matches(MASK).count(), 4, "{masked}");
        assert_eq!(
            match &*mask.mask_event(&step) {
                Event::StepFinished { outcome, .. } => outcome.status,
                _ => StepStatus::Passed,
            },
            StepStatus::Failed
        );

        let decision = Event::Decision {
            iteration: 1,
            kind: "fix.prompt".to_owned(),
            detail: serde_json::json!({"prompt": ["see hunter2"], "hunter2": {"nested": "hunter2"}}),
        };
        let masked = serde_json::to_string(&*mask.mask_event(&decision)).unwrap_or_default();
        assert!(!masked.contains("hunter2"), "{masked}");
        assert!(masked.contains(r#""***":{"nested":"***"}"#), "{masked}");
    }

    #[test]
    fn without_secrets_events_pass_through_untouched() {
        let event = Event::IterationStarted { iteration: 1 };
        assert!(matches!(
            SecretMask::default().mask_event(&event),
            Cow::Borrowed(_)
        ));
    }
}
