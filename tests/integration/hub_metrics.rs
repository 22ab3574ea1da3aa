//! `GET /metrics` scraped as Prometheus would, on SQLite and on PostgreSQL: the answer parses
//! as the text exposition format (every sample in a declared family, histogram buckets
//! cumulative up to `+Inf` = `_count`), and the figures follow claims, requeues and
//! WebSocket subscribers.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::support::hub_db::{HubDb, on_both_stores};
use crate::support::hub_server::{EventStream, TestHub};

on_both_stores! {
    metrics_follow_claims_requeues_and_subscribers => metrics_follow_the_hub;
}

/// One scrape: each series (name with its labels as written) and its value.
struct Scrape {
    samples: HashMap<String, f64>,
}

impl Scrape {
    /// Parses the text exposition format (version 0.0.4) strictly enough to fail on what a
    /// Prometheus server would refuse or misread.
    fn parse(text: &str) -> Scrape {
        let mut families: HashMap<String, String> = HashMap::new();
        let mut samples = HashMap::new();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut words = comment.splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        assert!(
                            ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                            "unknown type in `{line}`"
                        );
                        let earlier = families.insert(name.to_owned(), kind.to_owned());
                        assert!(earlier.is_none(), "{name} declared twice");
                    }
                    (Some("HELP"), Some(_), Some(_)) => {}
                    _ => panic!("malformed comment `{line}`"),
                }
                continue;
            }
            assert!(!line.trim().is_empty(), "blank line in the exposition");
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no value in `{line}`"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                number => number
                    .parse()
                    .unwrap_or_else(|_| panic!("`{number}` is not a number in `{line}`")),
            };
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name `{name}`"
            );
            if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("unbalanced labels in `{line}`"));
                for pair in inner.split(',') {
                    let (label, quoted) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label `{pair}`"));
                    assert!(!label.is_empty() && quoted.len() >= 2, "bad label `{pair}`");
                    assert!(
                        quoted.starts_with('"') && quoted.ends_with('"'),
                        "unquoted label value in `{line}`"
                    );
                }
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    (families.get(base).map(String::as_str) == Some("histogram")).then_some(base)
                })
                .unwrap_or(name);
            assert!(
                families.contains_key(family),
                "`{name}` has no # TYPE before it"
            );
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "`{series}` twice"
            );
        }
        let scrape = Scrape { samples };
        for (name, kind) in &families {
            if kind == "histogram" {
                scrape.check_histogram(name);
            }
        }
        scrape
    }

    /// Buckets never decrease, and the last one (`+Inf`) is the count.
    fn check_histogram(&self, name: &str) {
        let prefix = format!("{name}_bucket{{le=\"");
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter_map(|(series, value)| {
                let bound = series.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().unwrap()
                };
                Some((bound, *value))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(buckets.len() > 1, "{name} has no buckets");
        assert!(
            buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "{name} buckets are not cumulative: {buckets:?}"
        );
        let last = buckets.last().unwrap();
        assert_eq!(last.0, f64::INFINITY, "{name} has no +Inf bucket");
        assert_eq!(last.1, self.get(&format!("{name}_count")));
    }

    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no `{series}` among {:?}", self.samples.keys()))
    }
}

async fn scrape(hub: &TestHub) -> Scrape {
    let response = hub.http.get(hub.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    Scrape::parse(&response.text().await.unwrap())
}

async fn metrics_follow_the_hub(db: HubDb) {
    let hub = TestHub::start(db).await;
    hub.import_fleet_plan().await;

    let (_, document) = hub.get("/openapi.json").await;
    let documented = &document["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(
        documented.get("text/plain; version=0.0.4").is_some(),
        "{documented}"
    );

    let before = scrape(&hub).await;
    assert_eq!(before.get("agent_orch_hub_tasks{status=\"pending\"}"), 22.0);
    assert_eq!(before.get("agent_orch_hub_tasks{status=\"done\"}"), 5.0);
    assert_eq!(
        before.get("agent_orch_hub_tasks{status=\"in_progress\"}"),
        0.0
    );
    assert_eq!(before.get("agent_orch_hub_ready_tasks"), 2.0);
    assert_eq!(
        before.get("agent_orch_hub_claims_total{outcome=\"claimed\"}"),
        0.0
    );
    assert_eq!(
        before.get("agent_orch_hub_claim_duration_seconds_count"),
        0.0
    );
    assert_eq!(before.get("agent_orch_hub_agents{health=\"healthy\"}"), 0.0);
    assert_eq!(before.get("agent_orch_hub_websocket_subscribers"), 0.0);

    let events = EventStream::connect(hub.hub.addr).await;
    for agent in ["agent-a", "agent-b"] {
        hub.post("/api/agents/heartbeat", json!({"id": agent}))
            .await;
    }
    // Two ready tasks: two claims get one each, the third finds nothing.
    for (agent, expected) in [("agent-a", 200), ("agent-b", 200), ("agent-a", 204)] {
        let (status, _) = hub
            .post("/api/assignments/claim", json!({"agent_id": agent}))
            .await;
        assert_eq!(status, expected, "claim by {agent}");
    }
    let claimed = scrape(&hub).await;
    assert_eq!(
        claimed.get("agent_orch_hub_claims_total{outcome=\"claimed\"}"),
        2.0
    );
    assert_eq!(
        claimed.get("agent_orch_hub_claims_total{outcome=\"empty\"}"),
        1.0
    );
    assert_eq!(
        claimed.get("agent_orch_hub_claims_total{outcome=\"error\"}"),
        0.0
    );
    assert_eq!(
        claimed.get("agent_orch_hub_claim_duration_seconds_count"),
        3.0
    );
    let seconds = claimed.get("agent_orch_hub_claim_duration_seconds_sum");
    assert!(seconds > 0.0 && seconds < 30.0, "claims took {seconds} s");
    assert_eq!(
        claimed.get("agent_orch_hub_tasks{status=\"in_progress\"}"),
        2.0
    );
    assert_eq!(
        claimed.get("agent_orch_hub_tasks{status=\"pending\"}"),
        20.0
    );
    assert_eq!(claimed.get("agent_orch_hub_ready_tasks"), 0.0);
    assert_eq!(
        claimed.get("agent_orch_hub_agents{health=\"healthy\"}"),
        2.0
    );
    assert_eq!(claimed.get("agent_orch_hub_websocket_subscribers"), 1.0);

    // Deactivating an agent gives its task back: one requeue, one agent unhealthy.
    let (status, _) = hub.post("/api/agents/agent-b/deactivate", json!({})).await;
    assert_eq!(status, 200);
    let requeued = scrape(&hub).await;
    assert_eq!(requeued.get("agent_orch_hub_requeues_total"), 1.0);
    assert_eq!(requeued.get("agent_orch_hub_timeouts_total"), 0.0);
    assert_eq!(
        requeued.get("agent_orch_hub_agents{health=\"healthy\"}"),
        1.0
    );
    assert_eq!(
        requeued.get("agent_orch_hub_agents{health=\"unhealthy\"}"),
        1.0
    );
    assert_eq!(
        requeued.get("agent_orch_hub_tasks{status=\"in_progress\"}"),
        1.0
    );
    assert_eq!(requeued.get("agent_orch_hub_ready_tasks"), 1.0);

    // A subscriber that leaves is no longer counted.
    events.leave().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let subscribers = scrape(&hub)
            .await
            .get("agent_orch_hub_websocket_subscribers");
        if subscribers == 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {subscribers} subscribers after the only one left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hub.stop().await;
}
