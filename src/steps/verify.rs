//! `verify`: HTTP checks, smoke scripts and multi-request user flows.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::workflow::duration::DurationSpec;
use crate::workflow::template::Template;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    #[serde(default)]
    pub http: Option<HttpCheck>,
    #[serde(default)]
    pub script: Option<Template>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub url: Template,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: IndexMap<String, Template>,
    #[serde(default)]
    pub expect_status: Option<u16>,
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
}
