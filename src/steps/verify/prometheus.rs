//! A Prometheus instant query: `GET {url}/api/v1/query?query=...`, answered with
//! `{"status": "success", "data": {"resultType": "vector" | "scalar", "result": ...}}` or
//! `{"status": "error", "errorType", "error"}` (400 bad parameters, 422 an expression that cannot
//! be executed, 503 a timeout). Reference: <https://prometheus.io/docs/prometheus/latest/querying/api/>.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::analysis::{Judgement, Verdict, excerpt};
use super::metric_analysis::{MetricResult, Sample};
use crate::azure::monitor::PROMETHEUS_READER_ROLE;
use crate::workflow::step_config::verify_metric::MetricAuth;

/// How much of an unexpected answer goes into a reason.
const BODY_EXCERPT: usize = 300;

/// The instant query URL under a server's base URL (which may have a path prefix).
pub(crate) fn query_url(base: &str, query: &str) -> Result<reqwest::Url, String> {
    let trimmed = base.trim();
    let mut url = reqwest::Url::parse(&format!("{}/api/v1/query", trimmed.trim_end_matches('/')))
        .map_err(|err| format!("invalid url `{trimmed}`: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("invalid url `{trimmed}`: not http or https"));
    }
    url.query_pairs_mut().append_pair("query", query);
    Ok(url)
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (serde_json::Value, String),
}

/// The samples of an answer, or why there are none: an `Error` verdict when asking again may
/// help (a timeout, a proxy's error page), `Unrunnable` when it cannot (no access, a bad query).
pub(crate) fn read_answer(
    status: u16,
    body: &[u8],
    auth: MetricAuth,
) -> Result<MetricResult, Judgement> {
    let text = String::from_utf8_lossy(body);
    let shown = || excerpt(text.trim(), BODY_EXCERPT);
    if status == 401 || status == 403 {
        let hint = match auth {
            MetricAuth::Azure => format!(
                "grant the identity the \"{PROMETHEUS_READER_ROLE}\" role on the Azure Monitor workspace"
            ),
            MetricAuth::None => {
                "the server wants credentials; for Azure Monitor managed Prometheus set `auth: azure`"
                    .to_owned()
            }
        };
        return Err(Judgement::new(
            Verdict::Unrunnable,
            format!("prometheus denied access ({status}): {hint} ({})", shown()),
        ));
    }
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(err) => {
            let verdict = retry_verdict(status);
            return Err(Judgement::new(
                verdict,
                format!(
                    "prometheus answered {status} with something that is not a query result ({err}): {}",
                    shown()
                ),
            ));
        }
    };
    if envelope.status != "success" {
        return Err(Judgement::new(
            retry_verdict(status),
            format!(
                "prometheus answered {status}: {}: {}",
                envelope.error_type.as_deref().unwrap_or("error"),
                envelope.error.as_deref().unwrap_or("(no message)")
            ),
        ));
    }
    let Some(data) = envelope.data else {
        return Err(Judgement::new(
            Verdict::Error,
            "prometheus answered success without `data`",
        ));
    };
    let malformed = |err: serde_json::Error| {
        Judgement::new(
            Verdict::Error,
            format!(
                "prometheus answered a malformed {} ({err})",
                data.result_type
            ),
        )
    };
    match data.result_type.as_str() {
        "scalar" => {
            let (_, value): (serde_json::Value, String) =
                serde_json::from_value(data.result.clone()).map_err(malformed)?;
            Ok(MetricResult::single(parse_value(&value)?))
        }
        "vector" => {
            let series: Vec<VectorSample> =
                serde_json::from_value(data.result.clone()).map_err(malformed)?;
            let samples = series
                .into_iter()
                .map(|s| {
                    Ok(Sample {
                        value: parse_value(&s.value.1)?,
                        labels: s.metric,
                    })
                })
                .collect::<Result<Vec<_>, Judgement>>()?;
            Ok(MetricResult { samples })
        }
        other => Err(Judgement::new(
            Verdict::Unrunnable,
            format!(
                "the query returns a {other}; verify needs a scalar or an instant vector (drop the range selector, or wrap it in a function such as `rate`)"
            ),
        )),
    }
}

/// Sample values are strings: `"0.031"`, `"NaN"`, `"+Inf"`.
fn parse_value(text: &str) -> Result<f64, Judgement> {
    text.parse::<f64>().map_err(|_| {
        Judgement::new(
            Verdict::Error,
            format!("prometheus answered a sample value that is not a number: `{text}`"),
        )
    })
}

/// 4xx (but 408 and 429) mean the request itself is wrong: asking again cannot help.
fn retry_verdict(status: u16) -> Verdict {
    match status {
        400..=499 if status != 408 && status != 429 => Verdict::Unrunnable,
        _ => Verdict::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_keeps_a_path_prefix_and_encodes_the_query() {
        let url = query_url(
            "http://127.0.0.1:9090/prom/",
            "sum(rate(x{code=~\"5..\"}[5m]))",
        )
        .unwrap();
        assert_eq!(url.path(), "/prom/api/v1/query");
        assert_eq!(
            url.query_pairs()
                .next()
                .map(|(k, v)| (k.into_owned(), v.into_owned())),
            Some((
                "query".to_owned(),
                "sum(rate(x{code=~\"5..\"}[5m]))".to_owned()
            ))
        );
        assert!(query_url("ftp://x", "up").is_err());
    }

    #[test]
    fn vectors_scalars_and_errors() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"web"},"value":[1435781451.781,"0.031"]}]}}"#;
        let result = read_answer(200, vector, MetricAuth::None).unwrap();
        assert_eq!(result.value(), Some(0.031));
        assert_eq!(result.samples[0].labels["job"], "web");
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1435781451.781,"NaN"]}}"#;
        assert!(
            read_answer(200, scalar, MetricAuth::None)
                .unwrap()
                .value()
                .unwrap()
                .is_nan()
        );
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(
            read_answer(200, matrix, MetricAuth::None)
                .unwrap_err()
                .verdict,
            Verdict::Unrunnable
        );
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let error = read_answer(400, bad, MetricAuth::None).unwrap_err();
        assert_eq!(error.verdict, Verdict::Unrunnable);
        assert_eq!(
            error.reason,
            "prometheus answered 400: bad_data: parse error at char 5"
        );
        let timeout = br#"{"status":"error","errorType":"timeout","error":"query timed out"}"#;
        assert_eq!(
            read_answer(503, timeout, MetricAuth::None)
                .unwrap_err()
                .verdict,
            Verdict::Error
        );
    }
}
