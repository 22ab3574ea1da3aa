//! A Log Analytics query: `POST https://api.loganalytics.io/v1/workspaces/{id}/query` with
//! `{"query", "timespan"}`, answered with `{"tables": [{"name", "columns": [{"name", "type"}],
//! "rows": [[...]]}]}`, or an error status with `{"error": {"code", "message", "innererror"}}`.
//! References: <https://learn.microsoft.com/rest/api/loganalytics/dataaccess/query/execute>,
//! <https://learn.microsoft.com/azure/azure-monitor/logs/api/response-format>,
//! <https://learn.microsoft.com/azure/azure-monitor/logs/api/errors>.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::analysis::{Judgement, Verdict, excerpt};
use super::metric_analysis::{MetricResult, Sample};
use crate::azure::monitor::{LOG_ANALYTICS_ENDPOINT, LOG_ANALYTICS_READER_ROLE};

const BODY_EXCERPT: usize = 300;

/// The query URL for a workspace ID (a GUID, so nothing in it can change the path).
pub(crate) fn query_url(workspace: &str) -> Result<reqwest::Url, String> {
    let workspace = workspace.trim();
    let is_guid = workspace.len() == 36
        && workspace.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        });
    if !is_guid {
        return Err(format!(
            "`{workspace}` is not a workspace ID (the GUID under \"Workspace ID\" in the portal)"
        ));
    }
    reqwest::Url::parse(&format!(
        "{LOG_ANALYTICS_ENDPOINT}/v1/workspaces/{workspace}/query"
    ))
    .map_err(|err| err.to_string())
}

/// The request body.
pub(crate) fn request_body(query: &str, timespan: Option<&str>) -> Vec<u8> {
    let mut body = serde_json::Map::new();
    body.insert("query".to_owned(), query.into());
    if let Some(timespan) = timespan {
        body.insert("timespan".to_owned(), timespan.into());
    }
    serde_json::Value::Object(body).to_string().into_bytes()
}

#[derive(Deserialize)]
struct QueryResults {
    tables: Vec<Table>,
}

#[derive(Deserialize)]
struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct Column {
    name: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    innererror: Option<Box<ErrorDetail>>,
}

impl ErrorDetail {
    /// `BadArgumentError: The request had some invalid properties (SemanticError: 'x' ...)`.
    fn describe(&self) -> String {
        let mut text = format!("{}: {}", self.code, self.message);
        let mut inner = self.innererror.as_deref();
        while let Some(detail) = inner {
            text.push_str(&format!(" ({}: {})", detail.code, detail.message));
            inner = detail.innererror.as_deref();
        }
        text
    }
}

/// The values of `column` (or the only column) in the first table, one sample per row, the
/// row's other columns as its labels.
pub(crate) fn read_answer(
    status: u16,
    body: &[u8],
    column: Option<&str>,
) -> Result<MetricResult, Judgement> {
    let text = String::from_utf8_lossy(body);
    if status != 200 {
        let detail = serde_json::from_slice::<ErrorResponse>(body).map_or_else(
            |_| excerpt(text.trim(), BODY_EXCERPT),
            |e| e.error.describe(),
        );
        let (verdict, reason) = match status {
            401 | 403 => (
                Verdict::Unrunnable,
                format!(
                    "log analytics denied access ({status}): grant the identity the \"{LOG_ANALYTICS_READER_ROLE}\" role on the workspace ({detail})"
                ),
            ),
            404 => (
                Verdict::Unrunnable,
                format!("log analytics answered 404: check the workspace ID ({detail})"),
            ),
            400..=499 if status != 408 && status != 429 => (
                Verdict::Unrunnable,
                format!("log analytics rejected the query ({status}): {detail}"),
            ),
            _ => (
                Verdict::Error,
                format!("log analytics answered {status}: {detail}"),
            ),
        };
        return Err(Judgement::new(verdict, reason));
    }
    let results: QueryResults = serde_json::from_slice(body).map_err(|err| {
        Judgement::new(
            Verdict::Error,
            format!(
                "log analytics answered 200 with something that is not a query result ({err}): {}",
                excerpt(text.trim(), BODY_EXCERPT)
            ),
        )
    })?;
    let Some(table) = results.tables.into_iter().next() else {
        return Ok(MetricResult::default());
    };
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let index = match column {
        Some(wanted) => names
            .iter()
            .position(|name| *name == wanted)
            .ok_or_else(|| {
                Judgement::new(
                    Verdict::Unrunnable,
                    format!(
                        "the result has no column `{wanted}` (columns: {})",
                        names.join(", ")
                    ),
                )
            })?,
        None if names.len() == 1 => 0,
        None => {
            return Err(Judgement::new(
                Verdict::Unrunnable,
                format!(
                    "the result has columns {}: set `column` to the one holding the value",
                    names.join(", ")
                ),
            ));
        }
    };
    let mut samples = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        let value = match row.get(index) {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(s)) => s.parse::<f64>().ok(),
            Some(serde_json::Value::Null) | None => continue,
            Some(_) => None,
        };
        let Some(value) = value else {
            return Err(Judgement::new(
                Verdict::Unrunnable,
                format!(
                    "column `{}` holds `{}`, not a number",
                    names[index],
                    excerpt(&row[index].to_string(), 80)
                ),
            ));
        };
        let labels: BTreeMap<String, String> = names
            .iter()
            .zip(row)
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, (name, cell))| {
                let cell = match cell {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                ((*name).to_owned(), cell)
            })
            .collect();
        samples.push(Sample { labels, value });
    }
    Ok(MetricResult { samples })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_column_and_the_other_columns_as_labels() {
        let body = br#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"cloud_RoleName","type":"string"},{"name":"error_rate","type":"real"}],"rows":[["web",0.031],["api",null]]}]}"#;
        let result = read_answer(200, body, Some("error_rate")).unwrap();
        assert_eq!(result.value(), Some(0.031));
        assert_eq!(result.samples[0].labels["cloud_RoleName"], "web");
        let error = read_answer(200, body, None).unwrap_err();
        assert_eq!(
            error.reason,
            "the result has columns cloud_RoleName, error_rate: set `column` to the one holding the value"
        );
    }

    #[test]
    fn errors_say_what_to_fix() {
        let body = br#"{"error":{"code":"BadArgumentError","message":"The request had some invalid properties","innererror":{"code":"SemanticError","message":"'requestz' could not be resolved"}}}"#;
        let error = read_answer(400, body, None).unwrap_err();
        assert_eq!(error.verdict, Verdict::Unrunnable);
        assert_eq!(
            error.reason,
            "log analytics rejected the query (400): BadArgumentError: The request had some invalid properties (SemanticError: 'requestz' could not be resolved)"
        );
        assert!(query_url("../other").is_err());
        assert_eq!(
            query_url("63613592-b6f7-4c3d-a390-22ba13102111")
                .unwrap()
                .as_str(),
            "https://api.loganalytics.io/v1/workspaces/63613592-b6f7-4c3d-a390-22ba13102111/query"
        );
    }
}
