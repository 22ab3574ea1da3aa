//! The agents of a run's repair phase, and the one way to ask one: build it on first use, ask,
//! audit the prompt and the (redacted) reply, then check the token budget.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Repair, RepairStop, emit};
use crate::engine::decision::{AgentExchange, Decision, StopCause, Tokens};
use crate::engine::reporter::Reporter;
use crate::llm::{
    Agent, AgentSetup, FixContext, FixProposal, LlmError, LlmErrorKind, LlmSession, Review,
    ReviewContext, TokenBudget, Usage,
};
use crate::redact::Redactor;
use crate::steps::{StepOutcome, fix, review};
use crate::workflow::template::Renderer;

/// The run's LLM session and the agents built in it so far, by name.
pub(super) struct Agents {
    session: Arc<LlmSession>,
    by_name: HashMap<String, Agent>,
}

/// What the repair phase asks an agent: the fixer's context or the reviewer's.
pub(super) trait Question {
    type Answer: Answer;

    /// Asks `agent`, unless the run is cancelled first (`None`).
    async fn ask(
        &self,
        agent: &Agent,
        cancel: &CancellationToken,
    ) -> (StepOutcome, Option<Result<Self::Answer, LlmError>>);
}

/// What every agent's answer carries for the audit log and the budget.
pub(super) trait Answer {
    fn model(&self) -> &str;
    fn prompt(&self) -> &str;
    fn prompt_hash(&self) -> &str;
    fn reply(&self) -> &str;
    fn usage(&self) -> Usage;
}

impl Question for FixContext {
    type Answer = FixProposal;

    async fn ask(
        &self,
        agent: &Agent,
        cancel: &CancellationToken,
    ) -> (StepOutcome, Option<Result<FixProposal, LlmError>>) {
        fix::ask(agent, self, cancel).await
    }
}

impl Question for ReviewContext {
    type Answer = Review;

    async fn ask(
        &self,
        agent: &Agent,
        cancel: &CancellationToken,
    ) -> (StepOutcome, Option<Result<Review, LlmError>>) {
        review::ask(agent, self, cancel).await
    }
}

macro_rules! answer {
    ($answer:ty) => {
        impl Answer for $answer {
            fn model(&self) -> &str {
                &self.model
            }
            fn prompt(&self) -> &str {
                &self.prompt
            }
            fn prompt_hash(&self) -> &str {
                &self.prompt_hash
            }
            fn reply(&self) -> &str {
                &self.reply
            }
            fn usage(&self) -> Usage {
                self.usage
            }
        }
    };
}
answer!(FixProposal);
answer!(Review);

/// One question to one agent, as a `fix` or `review` step asks it.
pub(super) struct Ask<'q, Q> {
    pub agent: &'q str,
    pub question: &'q Q,
    pub iteration: u32,
}

impl Repair<'_> {
    /// Asks an agent and audits its answer as the decision `decision` makes of the exchange
    /// (the fields every answer has) and the answer. `Err` is the step's outcome when it ends
    /// here: the agent cannot be built, the run was cancelled, the call failed (a call refused
    /// for the budget stops the run), or the answer used the budget up.
    pub(super) async fn ask<Q: Question>(
        &mut self,
        ask: Ask<'_, Q>,
        renderer: &Renderer,
        cancel: &CancellationToken,
        reporter: &mut dyn Reporter,
        decision: impl FnOnce(AgentExchange, &Q::Answer) -> Decision,
    ) -> Result<(StepOutcome, Q::Answer), StepOutcome> {
        let agent = match self.agent(ask.agent, renderer) {
            Ok(agent) => agent,
            Err(reason) => return Err(StepOutcome::failed(reason)),
        };
        let (outcome, result) = ask.question.ask(agent, cancel).await;
        let answer = match result {
            None => return Err(outcome),
            Some(Ok(answer)) => answer,
            Some(Err(err)) => {
                self.stop_if_refused_for_budget(&err);
                return Err(outcome);
            }
        };
        let redactor = self.redactor_of_session();
        let exchange = AgentExchange {
            agent: ask.agent.to_owned(),
            model: answer.model().to_owned(),
            prompt: answer.prompt().to_owned(),
            prompt_hash: answer.prompt_hash().to_owned(),
            response: redactor.redact(answer.reply()).into_owned(),
            tokens: Tokens::from(answer.usage()),
            summary: outcome.message.clone(),
        };
        emit(reporter, ask.iteration, decision(exchange, &answer));
        if self.check_budget() {
            return Err(super::failed_with(outcome, self.stop_reason()));
        }
        Ok((outcome, answer))
    }

    /// The agent `name`, built on first use. An agent that cannot be built stops the run: no
    /// later iteration would build it either.
    fn agent(&mut self, name: &str, renderer: &Renderer) -> Result<&Agent, String> {
        let fail = |this: &mut Self, err: &dyn std::fmt::Display| {
            let reason = err.to_string();
            this.stop = Some(RepairStop {
                cause: StopCause::Agent,
                reason: reason.clone(),
            });
            reason
        };
        if self.agents.is_none() {
            let redactor = self.redactor.take().unwrap_or_default();
            let budget = TokenBudget::new(self.workflow.safety.budget.tokens);
            match LlmSession::new(redactor, budget, self.settings.tape.clone()) {
                Ok(session) => {
                    self.agents = Some(Agents {
                        session,
                        by_name: HashMap::new(),
                    });
                }
                Err(err) => return Err(fail(self, &err)),
            }
        }
        let Some(agents) = self.agents.as_mut() else {
            return Err("no LLM session".to_owned());
        };
        if !agents.by_name.contains_key(name) {
            let Some(config) = self.workflow.agents.get(name) else {
                let err = format!("unknown agent `{name}`");
                return Err(fail(self, &err));
            };
            let env = |var: &str| std::env::var(var).ok();
            let setup = AgentSetup {
                renderer,
                workflow_dir: self.workflow.dir(),
                env: &env,
            };
            match agents.session.agent(name, config, &setup) {
                Ok(agent) => {
                    agents.by_name.insert(name.to_owned(), agent);
                }
                Err(err) => return Err(fail(self, &err)),
            }
        }
        self.agents
            .as_ref()
            .and_then(|agents| agents.by_name.get(name))
            .ok_or_else(|| format!("agent `{name}` is not available"))
    }

    /// The session's redactor (it knows what the session learned), or the run's before any
    /// agent was built.
    pub(super) fn redactor_of_session(&self) -> Redactor {
        self.agents
            .as_ref()
            .map(|agents| agents.session.redactor().clone())
            .or_else(|| self.redactor.clone())
            .unwrap_or_default()
    }

    /// After an LLM call: stops the run once the reported usage reaches the budget.
    fn check_budget(&mut self) -> bool {
        let Some(agents) = &self.agents else {
            return false;
        };
        let budget = agents.session.budget();
        let (Some(limit), used) = (budget.limit(), budget.used().total_tokens) else {
            return false;
        };
        if used < limit {
            return false;
        }
        self.stop = Some(RepairStop {
            cause: StopCause::Budget,
            reason: format!("token budget used up: {used} of {limit} tokens"),
        });
        true
    }

    /// A call refused before it was sent, because the budget could not pay for it.
    fn stop_if_refused_for_budget(&mut self, err: &LlmError) {
        if let LlmErrorKind::BudgetExhausted { used, limit } = err.kind {
            self.stop = Some(RepairStop {
                cause: StopCause::Budget,
                reason: format!(
                    "token budget used up: {used} of {limit} tokens, not enough for the next request"
                ),
            });
        }
    }

    fn stop_reason(&self) -> String {
        self.stop
            .as_ref()
            .map(|stop| stop.reason.clone())
            .unwrap_or_default()
    }
}
