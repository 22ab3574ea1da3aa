//! `Agent`: one `agents.<name>` entry, ready to ask for a fix or a verdict.

use crate::core::error_chain::error_chain;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionResponse,
    ResponseFormat, ResponseFormatJsonSchema,
};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::context::{FixContext, ReviewContext};
use super::edit_format;
use super::error::{LlmError, LlmErrorKind};
use super::excerpt::keep_head;
use super::prompt::{PromptTemplate, Role, fixer_variables, reviewer_variables, system_message};
use super::provider::{ChatClient, Connection, DEFAULT_TIMEOUT, EnvLookup};
use super::record::{Exchange, RecordedReply};
use super::retry::RetryPolicy;
use super::session::LlmSession;
use super::usage::{Usage, estimate_tokens};
use super::verdict::{Verdict, parse_verdict, verdict_schema};
use crate::patch::EditFormat;
use crate::workflow::model::{AgentConfig, ProviderKind};
use crate::workflow::template::Renderer;

/// Context budget when the agent does not set `max_context_tokens`.
pub const DEFAULT_MAX_CONTEXT_TOKENS: u32 = 12_000;
/// Characters per token of the budget estimate.
const CHARS_PER_TOKEN: usize = 4;
/// How much of an error body or a bad reply an error message quotes.
const ERROR_EXCERPT_CHARS: usize = 300;

/// What building an agent needs from the run besides its settings.
pub struct AgentSetup<'a> {
    /// Renders `api_key`, `base_url` and `deployment` (`{{ secrets.openai_api_key }}`).
    pub renderer: &'a Renderer,
    /// `prompt` paths are relative to this directory (the workflow file's).
    pub workflow_dir: &'a Path,
    /// Environment variables for defaults: pass `&|name| std::env::var(name).ok()`.
    pub env: EnvLookup<'a>,
}

/// The fixer's answer: the raw reply (parsing the edit is the patch module's job).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FixProposal {
    pub reply: String,
    /// The edit format the agent was asked for.
    pub edit_format: EditFormat,
    /// The one format the reply must be in; `None` (`edit_format: auto`) accepts any.
    pub accepts: Option<EditFormat>,
    /// The user message as sent (redacted), for the audit log.
    pub prompt: String,
    /// SHA-256 of the request body as sent.
    pub prompt_hash: String,
    pub usage: Usage,
    pub model: String,
}

/// The reviewer's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Review {
    pub verdict: Verdict,
    /// Whether the verdict was asked for with the JSON-schema response format (`false`: the
    /// agent does not use it, or the provider refused it and the reply was read tolerantly).
    pub structured: bool,
    pub reply: String,
    pub prompt: String,
    pub prompt_hash: String,
    pub usage: Usage,
    pub model: String,
}

/// One configured agent of a run.
#[derive(Debug)]
pub struct Agent {
    name: String,
    session: Arc<LlmSession>,
    /// `None` when replaying: nothing leaves the machine.
    client: Option<ChatClient>,
    provider: ProviderKind,
    timeout: Duration,
    model: String,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    structured_output: bool,
    /// Set once the provider refused the JSON-schema response format: later requests go
    /// without it.
    structured_refused: AtomicBool,
    /// The format the fixer is asked for, and the one its reply must be in (`None`: any).
    edit_format: (EditFormat, Option<EditFormat>),
    context_chars: usize,
    prompt: Option<PromptTemplate>,
}

struct Completion {
    content: String,
    prompt: String,
    prompt_hash: String,
    usage: Usage,
    model: String,
    /// Whether the request asked for the JSON-schema response format.
    structured: bool,
}

/// A failed exchange, and whether the provider refused the JSON-schema response format.
struct Refusable {
    error: LlmError,
    response_format_refused: bool,
}

/// A 400 about `response_format` (OpenAI: `param: "response_format"`, "'response_format' of
/// type 'json_schema' is not supported with this model"; other servers name
/// `response_format.type` or `json_schema` in the message).
fn refuses_response_format(api: &async_openai::error::ApiErrorResponse) -> bool {
    let error = &api.api_error;
    api.status_code.as_u16() == 400
        && (error
            .param
            .as_deref()
            .is_some_and(|param| param.starts_with("response_format"))
            || error.message.contains("response_format")
            || error.message.contains("json_schema"))
}

impl LlmSession {
    /// Builds the agent `name` from its settings. In replay mode no connection settings are
    /// needed (no key, no endpoint): replies come from the tape.
    pub fn agent(
        self: &Arc<Self>,
        name: &str,
        config: &AgentConfig,
        setup: &AgentSetup<'_>,
    ) -> Result<Agent, LlmError> {
        let error = |kind| LlmError::new(name, kind);
        let timeout = config.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
        let client = if self.is_replay() {
            None
        } else {
            let connection =
                Connection::resolve(config, setup.renderer, setup.env).map_err(error)?;
            let retry = RetryPolicy {
                max_retries: config
                    .max_retries
                    .unwrap_or(RetryPolicy::default().max_retries),
                ..RetryPolicy::default()
            };
            Some(ChatClient::new(&connection, timeout, retry).map_err(error)?)
        };
        // The loader already found the prompt file (workflow dir, project root, templates/);
        // fall back to the workflow dir for configs built in code.
        let prompt = config
            .prompt
            .as_ref()
            .map(|path| {
                let found = config.prompt_path.clone();
                PromptTemplate::load(&found.unwrap_or_else(|| setup.workflow_dir.join(&path.value)))
            })
            .transpose()
            .map_err(error)?;
        let max_context_tokens = config
            .max_context_tokens
            .unwrap_or(DEFAULT_MAX_CONTEXT_TOKENS);
        Ok(Agent {
            name: name.to_owned(),
            session: Arc::clone(self),
            client,
            provider: config.provider,
            timeout,
            model: config.model.value.clone(),
            temperature: config.temperature,
            max_tokens: config.max_tokens,
            structured_output: config
                .structured_output
                .unwrap_or(config.provider != ProviderKind::Compatible),
            structured_refused: AtomicBool::new(false),
            edit_format: edit_format::resolve(config.edit_format, &config.model.value),
            context_chars: max_context_tokens as usize * CHARS_PER_TOKEN,
            prompt,
        })
    }
}

impl Agent {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks for an edit, in the agent's edit format, that repairs `ctx.failure`.
    pub async fn propose_fix(&self, ctx: &FixContext) -> Result<FixProposal, LlmError> {
        let data_budget = self.data_budget(Role::Fixer)?;
        let variables = fixer_variables(&self.name, ctx, &self.session.redactor, data_budget);
        let completion = self.complete(Role::Fixer, &variables).await?;
        Ok(FixProposal {
            reply: completion.content,
            edit_format: self.edit_format.0,
            accepts: self.edit_format.1,
            prompt: completion.prompt,
            prompt_hash: completion.prompt_hash,
            usage: completion.usage,
            model: completion.model,
        })
    }

    /// Asks for a verdict on `ctx.patch`. A reply that is not clearly a verdict is an error.
    pub async fn review(&self, ctx: &ReviewContext) -> Result<Review, LlmError> {
        let data_budget = self.data_budget(Role::Reviewer)?;
        let variables = reviewer_variables(&self.name, ctx, &self.session.redactor, data_budget);
        let completion = self.complete(Role::Reviewer, &variables).await?;
        let verdict = parse_verdict(&completion.content).map_err(|err| {
            self.error(LlmErrorKind::NotAVerdict {
                reason: err.to_string(),
                excerpt: keep_head(&completion.content, ERROR_EXCERPT_CHARS),
            })
        })?;
        Ok(Review {
            verdict,
            structured: completion.structured,
            reply: completion.content,
            prompt: completion.prompt,
            prompt_hash: completion.prompt_hash,
            usage: completion.usage,
            model: completion.model,
        })
    }

    /// The role's fixed system message; the fixer's ends with how to write its edit format.
    fn system_message(&self, role: Role) -> String {
        match role {
            Role::Fixer => format!(
                "{}\n{}",
                system_message(role),
                edit_format::instructions(self.edit_format.0)
            ),
            Role::Reviewer => system_message(role).to_owned(),
        }
    }

    fn error(&self, kind: LlmErrorKind) -> LlmError {
        LlmError::new(&self.name, kind)
    }

    fn template(&self, role: Role) -> PromptTemplate {
        self.prompt
            .clone()
            .unwrap_or_else(|| PromptTemplate::builtin(role))
    }

    /// Characters left for data once the system message and the template's own text are paid.
    fn data_budget(&self, role: Role) -> Result<usize, LlmError> {
        let empty = match role {
            Role::Fixer => fixer_variables(
                &self.name,
                &FixContext::default(),
                &self.session.redactor,
                0,
            ),
            Role::Reviewer => reviewer_variables(
                &self.name,
                &ReviewContext::default(),
                &self.session.redactor,
                0,
            ),
        };
        let overhead = self
            .template(role)
            .render(&empty)
            .map_err(|k| self.error(k))?
            .len()
            + self.system_message(role).len();
        Ok(self.context_chars.saturating_sub(overhead))
    }

    async fn complete(&self, role: Role, variables: &Value) -> Result<Completion, LlmError> {
        let rendered = self
            .template(role)
            .render(variables)
            .map_err(|k| self.error(k))?;
        let prompt = self.session.redactor.redact(&rendered).into_owned();
        let structured = role == Role::Reviewer
            && self.structured_output
            && !self.structured_refused.load(Ordering::Relaxed);
        match self.exchange(role, &prompt, structured).await {
            // The provider does not take a JSON-schema response format (a 400, as OpenAI
            // answers for models without structured outputs, and many compatible servers):
            // ask again without it, and from now on, and read the verdict tolerantly.
            Err(Refusable {
                response_format_refused: true,
                ..
            }) => {
                self.structured_refused.store(true, Ordering::Relaxed);
                self.exchange(role, &prompt, false)
                    .await
                    .map_err(|refused| refused.error)
            }
            other => other.map_err(|refused| refused.error),
        }
    }

    /// One request and its reply, recorded; or, when replaying, the next recorded exchange.
    async fn exchange(
        &self,
        role: Role,
        prompt: &str,
        structured: bool,
    ) -> Result<Completion, Refusable> {
        let session = &self.session;
        let plain = |error| Refusable {
            error,
            response_format_refused: false,
        };
        let request = self.request(role, prompt, structured);
        let request_json = session.redactor.redact_json(
            &serde_json::to_value(&request)
                .map_err(|err| plain(self.error(LlmErrorKind::EncodeRequest(err))))?,
        );
        let prompt_hash = hex::encode(Sha256::digest(request_json.to_string().as_bytes()));

        let prompt_tokens = estimate_tokens(&self.system_message(role)) + estimate_tokens(prompt);
        session
            .budget
            .check(prompt_tokens)
            .map_err(|(used, limit)| {
                plain(self.error(LlmErrorKind::BudgetExhausted { used, limit }))
            })?;

        let Some(client) = &self.client else {
            return self.replay(prompt.to_owned(), prompt_hash, structured);
        };
        let result = client.create(request).await;
        let response_format_refused = structured
            && matches!(&result, Err(OpenAIError::ApiError(api)) if refuses_response_format(api));
        let reply = result
            .map_err(|err| self.map_openai_error(err))
            .and_then(|response| self.read_response(response, prompt));

        let exchange = Exchange {
            agent: self.name.clone(),
            request: request_json,
            response: reply.as_ref().ok().map(|(reply, _)| RecordedReply {
                content: session.redactor.redact(&reply.content).into_owned(),
                model: reply.model.clone(),
                finish_reason: reply.finish_reason.clone(),
            }),
            error: reply.as_ref().err().map(ToString::to_string),
            response_format_refused,
            usage: reply.as_ref().map(|(_, usage)| *usage).unwrap_or_default(),
        };
        session
            .record(&exchange)
            .map_err(|k| plain(self.error(k)))?;

        let (reply, usage) = reply.map_err(|k| Refusable {
            error: self.error(k),
            response_format_refused,
        })?;
        session.budget.record(usage);
        Ok(Completion {
            content: reply.content,
            prompt: prompt.to_owned(),
            prompt_hash,
            usage,
            model: reply.model,
            structured,
        })
    }

    /// The next recorded exchange instead of a request: agents have no client when replaying.
    /// A recorded refusal of the response format is replayed as one, so the fallback after it
    /// replays too.
    fn replay(
        &self,
        prompt: String,
        prompt_hash: String,
        structured: bool,
    ) -> Result<Completion, Refusable> {
        let exchange = self
            .session
            .replay_next(&self.name)
            .map_err(|k| Refusable {
                error: self.error(k),
                response_format_refused: false,
            })?;
        self.session.budget.record(exchange.usage);
        match (exchange.response, exchange.error) {
            (Some(reply), _) => Ok(Completion {
                content: reply.content,
                prompt,
                prompt_hash,
                usage: exchange.usage,
                model: reply.model,
                structured,
            }),
            (None, error) => Err(Refusable {
                error: self.error(LlmErrorKind::Replayed(
                    error.unwrap_or_else(|| "no reply recorded".to_owned()),
                )),
                response_format_refused: structured && exchange.response_format_refused,
            }),
        }
    }

    fn request(&self, role: Role, prompt: &str, structured: bool) -> CreateChatCompletionRequest {
        let messages = vec![
            ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                content: self.system_message(role).into(),
                name: None,
            }),
            ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                content: prompt.to_owned().into(),
                name: None,
            }),
        ];
        let mut request = CreateChatCompletionRequest {
            model: self.model.clone(),
            messages,
            temperature: self.temperature,
            ..CreateChatCompletionRequest::default()
        };
        // OpenAI's current models reject `max_tokens`; Azure's older API versions and most
        // compatible servers only know it.
        match self.provider {
            ProviderKind::OpenAi => request.max_completion_tokens = self.max_tokens,
            ProviderKind::Azure | ProviderKind::Compatible => {
                #[expect(deprecated, reason = "the field servers other than OpenAI understand")]
                {
                    request.max_tokens = self.max_tokens;
                }
            }
        }
        if structured {
            request.response_format = Some(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: Some("The verdict on a proposed patch".to_owned()),
                    name: "patch_verdict".to_owned(),
                    schema: verdict_schema(),
                    strict: Some(true),
                },
            });
        }
        request
    }

    fn read_response(
        &self,
        response: CreateChatCompletionResponse,
        prompt: &str,
    ) -> Result<(RecordedReply, Usage), LlmErrorKind> {
        let choice = response
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmErrorKind::BadResponse("no choices".to_owned()))?;
        let finish_reason = choice
            .finish_reason
            .and_then(|reason| serde_json::to_value(reason).ok())
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        if let Some(refusal) = choice.message.refusal.filter(|r| !r.trim().is_empty()) {
            return Err(LlmErrorKind::Refused(keep_head(
                &refusal,
                ERROR_EXCERPT_CHARS,
            )));
        }
        let content = choice
            .message
            .content
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| LlmErrorKind::EmptyReply {
                finish_reason: finish_reason.clone(),
            })?;
        let usage = response.usage.map_or_else(
            || Usage::estimate(prompt, &content),
            |usage| Usage {
                prompt_tokens: usage.prompt_tokens.into(),
                completion_tokens: usage.completion_tokens.into(),
                total_tokens: usage.total_tokens.into(),
                estimated: false,
            },
        );
        Ok((
            RecordedReply {
                content,
                model: response.model,
                finish_reason,
            },
            usage,
        ))
    }

    fn map_openai_error(&self, error: OpenAIError) -> LlmErrorKind {
        let redact =
            |text: &str| keep_head(&self.session.redactor.redact(text), ERROR_EXCERPT_CHARS);
        match error {
            OpenAIError::Reqwest(err) if err.is_timeout() => LlmErrorKind::Timeout(self.timeout),
            OpenAIError::Reqwest(err) => LlmErrorKind::Transport(redact(&error_chain(&err))),
            OpenAIError::ApiError(api) => LlmErrorKind::Api {
                status: api.status_code.as_u16(),
                message: redact(&api.api_error.message),
            },
            OpenAIError::JSONDeserialize(err, body) => {
                LlmErrorKind::BadResponse(format!("{err}; body: `{}`", redact(&body)))
            }
            other => LlmErrorKind::Transport(redact(&other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::session::TapeMode;
    use crate::llm::usage::TokenBudget;
    use crate::redact::Redactor;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn agents_and_their_requests_can_move_between_threads() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let tape = dir.path().join("empty.jsonl");
        std::fs::write(&tape, "").unwrap_or_else(|e| panic!("{e}"));
        let session = LlmSession::new(
            Redactor::default(),
            TokenBudget::new(None),
            TapeMode::Replay(tape),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let config: AgentConfig =
            serde_saphyr::from_str("{model: m}").unwrap_or_else(|e| panic!("{e}"));
        let renderer = Renderer::new(serde_json::json!({}));
        let no_env = |_: &str| None;
        let setup = AgentSetup {
            renderer: &renderer,
            workflow_dir: dir.path(),
            env: &no_env,
        };
        // Replay needs no key: the same config would fail live without OPENAI_API_KEY.
        let agent = session
            .agent("fixer", &config, &setup)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_send(&agent);
        let fix = FixContext::default();
        assert_send(&agent.propose_fix(&fix));
        let review = ReviewContext::default();
        assert_send(&agent.review(&review));
    }
}
