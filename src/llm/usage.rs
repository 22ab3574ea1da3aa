//! Token usage as providers report it, and the per-run token budget enforced from it.

use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// Tokens used by one exchange, or summed over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Some exchange did not report usage and was counted as characters / 4.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

impl Usage {
    /// The estimate used when a provider reports no usage (some compatible servers do not).
    pub fn estimate(prompt: &str, completion: &str) -> Self {
        let prompt_tokens = estimate_tokens(prompt);
        let completion_tokens = estimate_tokens(completion);
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            estimated: true,
        }
    }

    fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        self.estimated |= other.estimated;
    }
}

/// Tokens in `text`, estimated as characters / 4 (close enough for English and code, and
/// deliberately provider-neutral; the budget is enforced on reported usage, not on this).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// The run's token budget: shared by every agent of a run, cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct TokenBudget {
    limit: Option<u64>,
    used: Arc<Mutex<Usage>>,
}

impl TokenBudget {
    /// `limit` is `safety.budget.tokens`; `None` counts without limiting.
    pub fn new(limit: Option<u64>) -> Self {
        Self {
            limit,
            used: Arc::default(),
        }
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Usage so far, summed over every exchange of the run.
    pub fn used(&self) -> Usage {
        *self.used.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err((used, limit))` when a request of about `prompt_tokens` would not fit.
    pub fn check(&self, prompt_tokens: u64) -> Result<(), (u64, u64)> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let used = self.used().total_tokens;
        if used >= limit || used + prompt_tokens > limit {
            return Err((used, limit));
        }
        Ok(())
    }

    pub fn record(&self, usage: Usage) {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(usage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_once_reported_usage_reaches_the_limit() {
        let budget = TokenBudget::new(Some(100));
        assert_eq!(budget.check(50), Ok(()));
        budget.record(Usage {
            prompt_tokens: 60,
            completion_tokens: 20,
            total_tokens: 80,
            estimated: false,
        });
        assert_eq!(budget.check(10), Ok(()));
        assert_eq!(budget.check(30), Err((80, 100)));
        budget.record(Usage::estimate("abcd", "efgh"));
        assert_eq!(budget.used().total_tokens, 82);
        assert!(budget.used().estimated);
    }

    #[test]
    fn unlimited_budget_only_counts() {
        let budget = TokenBudget::new(None);
        budget.record(Usage::estimate(&"x".repeat(400), ""));
        assert_eq!(budget.check(u64::MAX / 2), Ok(()));
        assert_eq!(budget.used().prompt_tokens, 100);
    }
}
