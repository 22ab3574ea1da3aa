//! What a metric check accepts: a PromQL query against a Prometheus HTTP API
//! (`verify: {prometheus: ...}`) or a KQL query against the Log Analytics query API
//! (`verify: {log_analytics: ...}`), with its conditions, schedule and baseline. Both are seen
//! through one `MetricSpec`, as HTTP checks and flow requests are through one `RequestSpec`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::verify::{Condition, MeasurementPolicy};
use crate::workflow::duration::DurationSpec;
use crate::workflow::template::Template;

/// One query may take this long unless `timeout` says otherwise.
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Metric checks measure every 30s unless `interval` says otherwise: a scrape interval or two.
const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(30);

/// `verify: {prometheus: {...}}`: an instant query (`POST {url}/api/v1/query`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusCheck {
    /// The server's base URL: `http://prometheus:9090`, or an Azure Monitor workspace's query
    /// endpoint (`https://<workspace>.<region>.prometheus.monitor.azure.com`).
    pub url: Template,
    /// The PromQL expression; its result must be a scalar or an instant vector.
    pub query: Template,
    /// `azure`: sign in with the run's Azure credential chain (Azure Monitor managed
    /// Prometheus); `none` (default): no credentials.
    #[serde(default)]
    pub auth: MetricAuth,
    /// What the value is, in messages: `error rate 0.031 > 0.01` (default `result`).
    #[serde(default)]
    pub name: Option<String>,
    /// A minijinja expression over `result` (and `series`, `baseline`): the measurement
    /// succeeds when it holds.
    #[serde(default)]
    pub success_condition: Option<Condition>,
    /// A minijinja expression over `result` (and `series`, `baseline`): the measurement fails
    /// when it holds.
    #[serde(default)]
    pub failure_condition: Option<Condition>,
    /// At most this many measurements (default 1); the check passes at the first success.
    #[serde(default)]
    pub count: Option<u32>,
    /// Time between measurements (default 30s).
    #[serde(default)]
    pub interval: Option<DurationSpec>,
    /// One query's time limit (default 30s).
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    /// Measure for this long, every `interval`, and fail the moment a measurement fails.
    #[serde(default)]
    pub soak: Option<DurationSpec>,
    /// Stop with a failure once more than this many failures happen in a row (in a soak,
    /// default 0: the first failure).
    #[serde(default)]
    pub consecutive_failure_limit: Option<u32>,
    /// Stop as inconclusive once more than this many measurements are inconclusive.
    #[serde(default)]
    pub inconclusive_limit: Option<u32>,
    /// Compare with the same query measured just before the run's first deploy step.
    #[serde(default)]
    pub baseline: Option<BaselineSpec>,
}

/// `verify: {log_analytics: {...}}`: a KQL query through the Log Analytics query API
/// (`POST https://api.loganalytics.io/v1/workspaces/{workspace}/query`), signed in with the
/// run's Azure credential chain. Application Insights data is queried through its workspace.
///
/// The measurement fields (`name` to `baseline`) repeat [`PrometheusCheck`]'s: a shared struct
/// under `#[serde(flatten)]` would lose `deny_unknown_fields`, and with it the error (and
/// did-you-mean) for a misspelt key.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogAnalyticsCheck {
    /// The workspace ID (a GUID, "Workspace ID" in the portal).
    pub workspace: Template,
    /// The KQL query; the value is read from the first table's `column`.
    pub query: Template,
    /// The column holding the value (default: the only column of the result).
    #[serde(default)]
    pub column: Option<String>,
    /// An ISO 8601 duration the service applies besides the query's own filters (`PT15M`).
    #[serde(default)]
    pub timespan: Option<String>,
    /// What the value is, in messages: `error rate 0.031 > 0.01` (default `result`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub success_condition: Option<Condition>,
    #[serde(default)]
    pub failure_condition: Option<Condition>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub interval: Option<DurationSpec>,
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    #[serde(default)]
    pub soak: Option<DurationSpec>,
    #[serde(default)]
    pub consecutive_failure_limit: Option<u32>,
    #[serde(default)]
    pub inconclusive_limit: Option<u32>,
    #[serde(default)]
    pub baseline: Option<BaselineSpec>,
}

/// How a Prometheus query signs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricAuth {
    #[default]
    None,
    /// An Entra ID token for `https://prometheus.monitor.azure.com` from the run's Azure
    /// credential chain.
    Azure,
}

/// `baseline: {tolerance: 0.1}`: fail when the value is over `baseline × (1 + tolerance) +
/// margin` (or, with `fail_on: decrease`, under `baseline × (1 − tolerance) − margin`).
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    /// Relative change allowed: `0.1` is 10% (default 0).
    #[serde(default)]
    pub tolerance: f64,
    /// Absolute change allowed on top, for baselines near zero (default 0).
    #[serde(default)]
    pub margin: f64,
    /// Which way is worse: `increase` (default: error rates, latency) or `decrease`
    /// (success rates, throughput).
    #[serde(default)]
    pub fail_on: Worse,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Worse {
    #[default]
    Increase,
    Decrease,
}

impl BaselineSpec {
    /// The worst value still accepted against `baseline`.
    pub(crate) fn limit(&self, baseline: f64) -> f64 {
        match self.fail_on {
            Worse::Increase => baseline * (1.0 + self.tolerance) + self.margin,
            Worse::Decrease => baseline * (1.0 - self.tolerance) - self.margin,
        }
    }

    /// Whether `value` is worse than the limit.
    pub(crate) fn exceeded(&self, value: f64, baseline: f64) -> bool {
        let limit = self.limit(baseline);
        match self.fail_on {
            Worse::Increase => value > limit,
            Worse::Decrease => value < limit,
        }
    }

    fn check(&self) -> Result<(), String> {
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err("`baseline.tolerance` must be a number of at least 0".to_owned());
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err("`baseline.margin` must be a number of at least 0".to_owned());
        }
        Ok(())
    }
}

/// Where a metric check's query goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum MetricSource<'a> {
    Prometheus {
        url: &'a Template,
        auth: MetricAuth,
    },
    LogAnalytics {
        workspace: &'a Template,
        column: Option<&'a str>,
        timespan: Option<&'a str>,
    },
}

/// A metric check, whichever its source.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MetricSpec<'a> {
    pub(crate) source: MetricSource<'a>,
    pub(crate) query: &'a Template,
    pub(crate) name: &'a str,
    pub(crate) success_condition: Option<&'a Condition>,
    pub(crate) failure_condition: Option<&'a Condition>,
    pub(crate) timeout: Duration,
    pub(crate) baseline: Option<&'a BaselineSpec>,
    pub(crate) policy: MeasurementPolicy,
}

/// The schedule keys both checks share, checked together.
struct Schedule {
    count: Option<u32>,
    interval: Option<DurationSpec>,
    soak: Option<DurationSpec>,
    consecutive_failure_limit: Option<u32>,
    inconclusive_limit: Option<u32>,
}

impl Schedule {
    fn check(&self, baseline: Option<&BaselineSpec>) -> Result<(), String> {
        if self.count == Some(0) {
            return Err("`count` must be at least 1".to_owned());
        }
        if self.count.is_some() && self.soak.is_some() {
            return Err(
                "`count` and `soak` cannot both be set: a soak measures every `interval` until it ends"
                    .to_owned(),
            );
        }
        if self.interval.is_some_and(|i| i.0.is_zero()) {
            return Err("`interval` must be more than 0s".to_owned());
        }
        baseline.map_or(Ok(()), BaselineSpec::check)
    }

    fn policy(&self) -> MeasurementPolicy {
        let soak = self.soak.map(|s| s.0);
        MeasurementPolicy {
            attempts: self.count.unwrap_or(1),
            interval: self.interval.map_or(DEFAULT_METRIC_INTERVAL, |i| i.0),
            // A soak fails the moment a measurement fails, unless told to tolerate some.
            consecutive_failure_limit: self.consecutive_failure_limit.or(soak.map(|_| 0)),
            inconclusive_limit: self.inconclusive_limit,
            soak,
        }
    }
}

const DEFAULT_NAME: &str = "result";

impl PrometheusCheck {
    fn schedule(&self) -> Schedule {
        Schedule {
            count: self.count,
            interval: self.interval,
            soak: self.soak,
            consecutive_failure_limit: self.consecutive_failure_limit,
            inconclusive_limit: self.inconclusive_limit,
        }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        self.schedule().check(self.baseline.as_ref())
    }

    pub(crate) fn spec(&self) -> MetricSpec<'_> {
        MetricSpec {
            source: MetricSource::Prometheus {
                url: &self.url,
                auth: self.auth,
            },
            query: &self.query,
            name: self.name.as_deref().unwrap_or(DEFAULT_NAME),
            success_condition: self.success_condition.as_ref(),
            failure_condition: self.failure_condition.as_ref(),
            timeout: self.timeout.map_or(DEFAULT_QUERY_TIMEOUT, |t| t.0),
            baseline: self.baseline.as_ref(),
            policy: self.schedule().policy(),
        }
    }
}

impl LogAnalyticsCheck {
    fn schedule(&self) -> Schedule {
        Schedule {
            count: self.count,
            interval: self.interval,
            soak: self.soak,
            consecutive_failure_limit: self.consecutive_failure_limit,
            inconclusive_limit: self.inconclusive_limit,
        }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        self.schedule().check(self.baseline.as_ref())
    }

    pub(crate) fn spec(&self) -> MetricSpec<'_> {
        MetricSpec {
            source: MetricSource::LogAnalytics {
                workspace: &self.workspace,
                column: self.column.as_deref(),
                timespan: self.timespan.as_deref(),
            },
            query: &self.query,
            name: self.name.as_deref().unwrap_or(DEFAULT_NAME),
            success_condition: self.success_condition.as_ref(),
            failure_condition: self.failure_condition.as_ref(),
            timeout: self.timeout.map_or(DEFAULT_QUERY_TIMEOUT, |t| t.0),
            baseline: self.baseline.as_ref(),
            policy: self.schedule().policy(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_limits_both_ways() {
        let up = BaselineSpec {
            tolerance: 0.1,
            margin: 0.001,
            fail_on: Worse::Increase,
        };
        assert!((up.limit(0.02) - 0.023).abs() < 1e-12);
        assert!(up.exceeded(0.031, 0.02));
        assert!(!up.exceeded(0.022, 0.02));
        let down = BaselineSpec {
            fail_on: Worse::Decrease,
            ..up
        };
        assert!(down.exceeded(0.85, 1.0));
        assert!(!down.exceeded(0.95, 1.0));
    }
}
