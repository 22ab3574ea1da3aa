//! Providers: how an agent's settings become an async-openai client for OpenAI, Azure OpenAI
//! or an OpenAI-compatible server, with timeouts and bounded retries.

use std::fmt;
use std::sync::Once;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::{AzureConfig, OpenAIConfig};
use async_openai::error::OpenAIError;
use async_openai::types::chat::{CreateChatCompletionRequest, CreateChatCompletionResponse};

use super::error::LlmErrorKind;
use super::retry::{RetryPolicy, RetryingTransport};
use crate::workflow::model::{AgentConfig, ProviderKind};
use crate::workflow::template::{Renderer, Template};

pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads an environment variable; injected so tests never touch the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Where and how to reach an agent's model, with templates rendered and defaults applied.
#[derive(Clone, PartialEq, Eq)]
pub struct Connection {
    pub kind: ProviderKind,
    /// OpenAI: the API base (`.../v1`); Azure: the resource endpoint.
    pub base_url: String,
    api_key: Option<String>,
    /// Azure only.
    pub deployment: Option<String>,
    /// Azure only.
    pub api_version: Option<String>,
}

impl fmt::Debug for Connection {
    // The key never reaches a log, not even a debug dump.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("deployment", &self.deployment)
            .field("api_version", &self.api_version)
            .finish()
    }
}

impl Connection {
    pub fn resolve(
        config: &AgentConfig,
        renderer: &Renderer,
        env: EnvLookup<'_>,
    ) -> Result<Self, LlmErrorKind> {
        let render = |field: &'static str, template: &Option<Template>| {
            template
                .as_ref()
                .map(|t| renderer.render(t))
                .transpose()
                .map(|value| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
                .map_err(|err| LlmErrorKind::RenderSetting {
                    field,
                    source: err.source,
                })
        };
        let from_env = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let base_url = render("base_url", &config.base_url)?;
        let api_key = render("api_key", &config.api_key)?;

        let connection = match config.provider {
            ProviderKind::OpenAi => Connection {
                kind: ProviderKind::OpenAi,
                base_url: base_url
                    .or_else(|| from_env("OPENAI_BASE_URL"))
                    .unwrap_or_else(|| OPENAI_BASE_URL.to_owned()),
                api_key: Some(api_key.or_else(|| from_env("OPENAI_API_KEY")).ok_or(
                    LlmErrorKind::MissingApiKey {
                        env: "OPENAI_API_KEY",
                    },
                )?),
                deployment: None,
                api_version: None,
            },
            ProviderKind::Compatible => Connection {
                kind: ProviderKind::Compatible,
                base_url: base_url.or_else(|| from_env("OPENAI_BASE_URL")).ok_or(
                    LlmErrorKind::MissingSetting {
                        what: "base URL",
                        field: "base_url",
                        env: "OPENAI_BASE_URL",
                    },
                )?,
                api_key: api_key.or_else(|| from_env("OPENAI_API_KEY")),
                deployment: None,
                api_version: None,
            },
            ProviderKind::Azure => Connection {
                kind: ProviderKind::Azure,
                base_url: base_url
                    .or_else(|| from_env("AZURE_OPENAI_ENDPOINT"))
                    .ok_or(LlmErrorKind::MissingSetting {
                        what: "Azure OpenAI endpoint",
                        field: "base_url",
                        env: "AZURE_OPENAI_ENDPOINT",
                    })?,
                api_key: Some(api_key.or_else(|| from_env("AZURE_OPENAI_API_KEY")).ok_or(
                    LlmErrorKind::MissingApiKey {
                        env: "AZURE_OPENAI_API_KEY",
                    },
                )?),
                deployment: Some(
                    render("deployment", &config.deployment)?
                        .unwrap_or_else(|| config.model.value.clone()),
                ),
                api_version: Some(
                    config
                        .api_version
                        .clone()
                        .or_else(|| from_env("OPENAI_API_VERSION"))
                        .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned()),
                ),
            },
        };
        connection.validate()?;
        Ok(connection)
    }

    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    fn validate(&self) -> Result<(), LlmErrorKind> {
        let url =
            reqwest::Url::parse(&self.base_url).map_err(|err| LlmErrorKind::InvalidSetting {
                field: "base_url",
                message: format!("`{}` is not a URL: {err}", self.base_url),
            })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(LlmErrorKind::InvalidSetting {
                field: "base_url",
                message: format!("`{}` is not an http(s) URL", self.base_url),
            });
        }
        // async-openai panics on a key that is not a valid header value; refuse it here.
        if let Some(key) = &self.api_key
            && !key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(LlmErrorKind::InvalidSetting {
                field: "api_key",
                message: "contains characters that cannot be sent in an HTTP header".to_owned(),
            });
        }
        if let Some(deployment) = &self.deployment
            && !deployment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(LlmErrorKind::InvalidSetting {
                field: "deployment",
                message: format!("`{deployment}` is not a deployment name"),
            });
        }
        Ok(())
    }
}

/// Installs rustls' ring provider once per process; reqwest is built without a default one.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means another part of the program installed one first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An async-openai client for one agent.
#[derive(Clone, Debug)]
pub(crate) enum ChatClient {
    OpenAi(Client<OpenAIConfig>),
    Azure(Client<AzureConfig>),
}

impl ChatClient {
    pub(crate) fn new(
        connection: &Connection,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<Self, LlmErrorKind> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            .build()
            .map_err(LlmErrorKind::HttpClient)?;
        let transport = RetryingTransport::new(http.clone(), retry);
        let base_url = connection.base_url.trim_end_matches('/');
        let key = connection.api_key.clone().unwrap_or_default();
        Ok(match connection.kind {
            ProviderKind::OpenAi | ProviderKind::Compatible => {
                let config = OpenAIConfig::new()
                    .with_api_base(base_url)
                    .with_api_key(key)
                    // Not from the environment: the agent's settings say everything.
                    .with_org_id("")
                    .with_project_id("");
                ChatClient::OpenAi(Client::build(http, config).with_http_service(transport))
            }
            ProviderKind::Azure => {
                let config = AzureConfig::new()
                    .with_api_base(base_url)
                    .with_api_key(key)
                    .with_deployment_id(connection.deployment.clone().unwrap_or_default())
                    .with_api_version(connection.api_version.clone().unwrap_or_default());
                ChatClient::Azure(Client::build(http, config).with_http_service(transport))
            }
        })
    }

    pub(crate) async fn create(
        &self,
        request: CreateChatCompletionRequest,
    ) -> Result<CreateChatCompletionResponse, OpenAIError> {
        match self {
            ChatClient::OpenAi(client) => client.chat().create(request).await,
            ChatClient::Azure(client) => client.chat().create(request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::span::Spanned;

    fn config(yaml: &str) -> AgentConfig {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("bad test yaml: {e}"))
    }

    fn renderer() -> Renderer {
        Renderer::new(serde_json::json!({"secrets": {"openai_api_key": "sk-from-secrets"}}))
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn design_example_agent_decodes() {
        let agent =
            config("{model: gpt-4o, temperature: 0.2, max_tokens: 4000, prompt: prompts/fixer.j2}");
        assert_eq!(agent.model, Spanned::detached("gpt-4o".to_owned()));
        assert_eq!(agent.provider, ProviderKind::OpenAi);
        assert_eq!(agent.max_tokens, Some(4000));
    }

    #[test]
    fn schema_documents_the_provider_settings() {
        let schema = serde_json::to_string(&schemars::schema_for!(AgentConfig))
            .unwrap_or_else(|e| panic!("{e}"));
        for expected in [
            "\"compatible\"",
            "\"azure\"",
            "max_context_tokens",
            "api_version",
        ] {
            assert!(
                schema.contains(expected),
                "{expected} missing from {schema}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_saphyr::from_str::<AgentConfig>("{model: x, modle: y}");
        assert!(err.is_err());
    }

    #[test]
    fn openai_key_from_secrets_template_wins_over_env() {
        let agent = config("{model: gpt-4o, api_key: '{{ secrets.openai_api_key }}'}");
        let conn = Connection::resolve(&agent, &renderer(), &env(&[("OPENAI_API_KEY", "sk-env")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(conn.api_key(), Some("sk-from-secrets"));
        assert_eq!(conn.base_url, OPENAI_BASE_URL);
        assert!(!format!("{conn:?}").contains("sk-from-secrets"));
    }

    #[test]
    fn env_defaults_fill_azure_settings() {
        let agent = config("{model: gpt-4o, provider: azure}");
        let conn = Connection::resolve(
            &agent,
            &renderer(),
            &env(&[
                ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com"),
                ("AZURE_OPENAI_API_KEY", "azkey\n"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(conn.base_url, "https://r.openai.azure.com");
        assert_eq!(conn.api_key(), Some("azkey"));
        assert_eq!(conn.deployment.as_deref(), Some("gpt-4o"));
        assert_eq!(conn.api_version.as_deref(), Some(DEFAULT_AZURE_API_VERSION));
    }

    #[test]
    fn missing_settings_name_the_env_var() {
        let openai = Connection::resolve(&config("{model: m}"), &renderer(), &env(&[]));
        assert!(matches!(
            openai,
            Err(LlmErrorKind::MissingApiKey {
                env: "OPENAI_API_KEY"
            })
        ));
        let compatible = Connection::resolve(
            &config("{model: m, provider: compatible}"),
            &renderer(),
            &env(&[]),
        );
        assert!(matches!(
            compatible,
            Err(LlmErrorKind::MissingSetting {
                env: "OPENAI_BASE_URL",
                ..
            })
        ));
    }

    #[test]
    fn a_key_with_a_newline_inside_is_refused_without_echoing_it() {
        let agent = config("{model: m, api_key: \"sk-a\\nb\"}");
        let err = Connection::resolve(&agent, &renderer(), &env(&[]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("api_key"), "{err}");
        assert!(!err.contains("sk-a"), "{err}");
    }
}
