//! The hub's Prometheus metrics: counters and the claim latency histogram kept in atomics (the
//! claim path records on every claim, thousands per second, so recording is a few relaxed
//! atomic adds and no lock), and the text exposition format `GET /metrics` answers with.
//!
//! Counters are this replica's since it started; the queue and agent gauges are read from the
//! database at scrape time, so every replica reports the same figures for them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::model::TaskStatus;

/// Upper bounds of the claim latency buckets, in seconds: the floors are 3 to 20 ms at p99, so
/// the buckets are finest there.
const CLAIM_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// What a claim request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// A task was handed out.
    Claimed,
    /// Nothing was ready (204).
    Empty,
    /// The store failed.
    Error,
}

#[derive(Debug, Default)]
pub struct HubMetrics {
    claimed: AtomicU64,
    empty: AtomicU64,
    failed: AtomicU64,
    claim_latency: Histogram,
    requeues: AtomicU64,
    timeouts: AtomicU64,
    websocket_subscribers: AtomicI64,
}

/// What `/metrics` reads from the database when scraped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueGauges {
    /// Tasks per status; a status missing here has none.
    pub tasks: Vec<(TaskStatus, i64)>,
    pub ready_tasks: i64,
    pub healthy_agents: i64,
    pub unhealthy_agents: i64,
}

impl HubMetrics {
    /// One claim request and how long the store took to answer it.
    pub fn record_claim(&self, outcome: ClaimOutcome, latency: Duration) {
        let counter = match outcome {
            ClaimOutcome::Claimed => &self.claimed,
            ClaimOutcome::Empty => &self.empty,
            ClaimOutcome::Error => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.claim_latency.observe(latency);
    }

    /// Assignments the hub took back (a silent or deactivated agent, a timeout) so their tasks
    /// could be claimed again.
    pub fn record_requeues(&self, count: u64) {
        self.requeues.fetch_add(count, Ordering::Relaxed);
    }

    /// An assignment that ran past its task's timeout.
    pub fn record_timeouts(&self, count: u64) {
        self.timeouts.fetch_add(count, Ordering::Relaxed);
    }

    /// Counts a `/ws` subscriber until the returned guard drops.
    pub fn websocket_subscriber(self: &std::sync::Arc<Self>) -> SubscriberGuard {
        self.websocket_subscribers.fetch_add(1, Ordering::Relaxed);
        SubscriberGuard {
            metrics: std::sync::Arc::clone(self),
        }
    }

    /// Everything in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, queue: &QueueGauges) -> String {
        let mut out = String::with_capacity(4096);
        let claims = [
            ("claimed", &self.claimed),
            ("empty", &self.empty),
            ("error", &self.failed),
        ];
        header(
            &mut out,
            "agent_orch_hub_claims_total",
            "counter",
            "Claim requests by outcome: claimed (a task was handed out), empty (none ready), error.",
        );
        for (outcome, counter) in claims {
            let _ = writeln!(
                out,
                "agent_orch_hub_claims_total{{outcome=\"{outcome}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        self.claim_latency.render(
            &mut out,
            "agent_orch_hub_claim_duration_seconds",
            "Time the store took to answer a claim, batching included.",
        );
        header(
            &mut out,
            "agent_orch_hub_tasks",
            "gauge",
            "Tasks by status (the queue depth).",
        );
        for status in TaskStatus::ALL {
            let count = queue
                .tasks
                .iter()
                .find(|(counted, _)| counted == status)
                .map_or(0, |(_, count)| *count);
            let _ = writeln!(out, "agent_orch_hub_tasks{{status=\"{status}\"}} {count}");
        }
        single(
            &mut out,
            "agent_orch_hub_ready_tasks",
            "gauge",
            "Pending tasks whose dependencies are all done and that nobody holds.",
            queue.ready_tasks,
        );
        header(
            &mut out,
            "agent_orch_hub_agents",
            "gauge",
            "Agents by health (healthy: active with a recent heartbeat).",
        );
        let _ = writeln!(
            out,
            "agent_orch_hub_agents{{health=\"healthy\"}} {}",
            queue.healthy_agents
        );
        let _ = writeln!(
            out,
            "agent_orch_hub_agents{{health=\"unhealthy\"}} {}",
            queue.unhealthy_agents
        );
        single(
            &mut out,
            "agent_orch_hub_requeues_total",
            "counter",
            "Assignments the hub took back so their tasks could be claimed again.",
            self.requeues.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "agent_orch_hub_timeouts_total",
            "counter",
            "Assignments that ran past their task's timeout.",
            self.timeouts.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "agent_orch_hub_websocket_subscribers",
            "gauge",
            "Open /ws connections on this replica.",
            self.websocket_subscribers.load(Ordering::Relaxed),
        );
        out
    }
}

/// Keeps a `/ws` subscriber counted while it lives.
#[derive(Debug)]
pub struct SubscriberGuard {
    metrics: std::sync::Arc<HubMetrics>,
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.metrics
            .websocket_subscribers
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A fixed-bucket histogram: one counter per bucket (not cumulative, so an observation is one
/// add), the count, and the sum in nanoseconds.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; CLAIM_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        if let Some(bucket) = CLAIM_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, "histogram", help);
        // Read the count first: observations landing meanwhile may make a bucket exceed it
        // by a few, never fall short of what `+Inf` reports below.
        let count = self.count.load(Ordering::Relaxed);
        let mut cumulative = 0;
        for (bound, bucket) in CLAIM_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                cumulative.min(count)
            );
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(text: &'a str, series: &str) -> &'a str {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
    }

    #[test]
    fn claims_land_in_their_buckets_cumulatively() {
        let metrics = HubMetrics::default();
        metrics.record_claim(ClaimOutcome::Claimed, Duration::from_micros(400));
        metrics.record_claim(ClaimOutcome::Claimed, Duration::from_millis(4));
        metrics.record_claim(ClaimOutcome::Empty, Duration::from_secs(9));
        let text = metrics.render(&QueueGauges::default());
        let histogram = "agent_orch_hub_claim_duration_seconds";
        assert_eq!(
            sample(&text, &format!("{histogram}_bucket{{le=\"0.0005\"}}")),
            "1"
        );
        assert_eq!(
            sample(&text, &format!("{histogram}_bucket{{le=\"0.003\"}}")),
            "1"
        );
        assert_eq!(
            sample(&text, &format!("{histogram}_bucket{{le=\"0.005\"}}")),
            "2"
        );
        assert_eq!(
            sample(&text, &format!("{histogram}_bucket{{le=\"5\"}}")),
            "2"
        );
        assert_eq!(
            sample(&text, &format!("{histogram}_bucket{{le=\"+Inf\"}}")),
            "3"
        );
        assert_eq!(sample(&text, &format!("{histogram}_count")), "3");
        assert_eq!(sample(&text, &format!("{histogram}_sum")), "9.0044");
        assert_eq!(
            sample(&text, "agent_orch_hub_claims_total{outcome=\"claimed\"}"),
            "2"
        );
        assert_eq!(
            sample(&text, "agent_orch_hub_claims_total{outcome=\"empty\"}"),
            "1"
        );
    }

    #[test]
    fn every_status_is_reported_and_subscribers_are_counted_while_connected() {
        let metrics = std::sync::Arc::new(HubMetrics::default());
        let first = metrics.websocket_subscriber();
        let second = metrics.websocket_subscriber();
        drop(first);
        metrics.record_requeues(3);
        metrics.record_timeouts(1);
        let queue = QueueGauges {
            tasks: vec![(TaskStatus::Done, 5)],
            ready_tasks: 2,
            healthy_agents: 1,
            unhealthy_agents: 4,
        };
        let text = metrics.render(&queue);
        assert_eq!(sample(&text, "agent_orch_hub_tasks{status=\"done\"}"), "5");
        assert_eq!(
            sample(&text, "agent_orch_hub_tasks{status=\"blocked\"}"),
            "0"
        );
        assert_eq!(sample(&text, "agent_orch_hub_ready_tasks"), "2");
        assert_eq!(
            sample(&text, "agent_orch_hub_agents{health=\"unhealthy\"}"),
            "4"
        );
        assert_eq!(sample(&text, "agent_orch_hub_requeues_total"), "3");
        assert_eq!(sample(&text, "agent_orch_hub_timeouts_total"), "1");
        assert_eq!(sample(&text, "agent_orch_hub_websocket_subscribers"), "1");
        drop(second);
        let text = metrics.render(&queue);
        assert_eq!(sample(&text, "agent_orch_hub_websocket_subscribers"), "0");
    }
}
