//! What the metric query fakes ([`super::prometheus_fake`], [`super::log_analytics_fake`])
//! answer, one answer per query in order (the last one repeats), and the queries they got.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One answer, shaped by each fake as its service would.
#[derive(Clone, Debug)]
pub(crate) enum MetricAnswer {
    /// One value (a one-sample vector, a one-row table).
    Value(f64),
    /// A Prometheus scalar (the Log Analytics fake answers it as one value).
    Scalar(f64),
    /// One value per label (`pod` in Prometheus, `cloud_RoleName` in Log Analytics).
    Series(Vec<(&'static str, f64)>),
    /// No sample, no row.
    NoData,
    /// The identity lacks the data reader role: 403.
    Denied,
    /// 200 with a body that is not the API's JSON (a proxy's sign-in page).
    Garbage,
    /// The service rejects the query (400).
    BadQuery,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct MetricScript(Arc<Mutex<Scripted>>);

#[derive(Debug, Default)]
struct Scripted {
    answers: VecDeque<MetricAnswer>,
    last: Option<MetricAnswer>,
    queries: Vec<String>,
}

impl MetricScript {
    pub(crate) fn new(answers: impl IntoIterator<Item = MetricAnswer>) -> Self {
        let script = Self::default();
        script.0.lock().unwrap().answers = answers.into_iter().collect();
        script
    }

    /// The answer to `query`: the next scripted one, else the last again (no data if none).
    pub(crate) fn answer(&self, query: &str) -> MetricAnswer {
        let mut scripted = self.0.lock().unwrap();
        scripted.queries.push(query.to_owned());
        if let Some(next) = scripted.answers.pop_front() {
            scripted.last = Some(next);
        }
        scripted.last.clone().unwrap_or(MetricAnswer::NoData)
    }

    /// Every query received, in order.
    pub(crate) fn queries(&self) -> Vec<String> {
        self.0.lock().unwrap().queries.clone()
    }
}
