//! Hub benchmark: claims per second and claim latency with 64 concurrent workers over HTTP, on
//! SQLite and on PostgreSQL, and `/ws` fan-out latency to 1,000 clients.
//!
//! `cargo bench --bench hub_claims` (PostgreSQL at `AGENT_ORCH_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`; each run uses its own schema and drops it).
//! The hub, its store and the 64 workers share this machine, as they would on a small VM.
//! Claims follow the full claim rules: capability filtering and retry backoff in the claim
//! statement, with the workers in two capability groups. Each table starts with the harness
//! alone (the same workers and client against a server that answers from memory), so the
//! stores' rows can be read against what the harness itself reaches on the same cores.

#![expect(clippy::print_stdout, reason = "a benchmark prints its table")]
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_orch::hub::api::ApiTokens;
use agent_orch::hub::server::{self, ServeOptions};
use agent_orch::hub::store::{NewTask, RetryBackoff, Store};
use futures::StreamExt;

const WORKERS: usize = 64;
const CLAIMS: usize = 20_000;
/// Claims answered before this many are warm-up (connections opening, statements being
/// prepared) and are left out of the steady-state latency columns.
const WARM_UP: usize = 1_000;
const WS_CLIENTS: usize = 1_000;
const WS_EVENTS: usize = 20;
const TOKEN: &str = "bench-token-0123456789abcdef";
/// The issue's floor for 64 concurrent workers on a 2-core machine.
const FLOOR_CLAIMS_PER_SECOND: f64 = 2_000.0;
const FLOOR_P99_MS: f64 = 20.0;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("hub claims: {WORKERS} concurrent workers over HTTP, {CLAIMS} claims per store");
        let dir = tempfile::tempdir().unwrap();
        for load in [Load::Saturating, Load::Offered(FLOOR_CLAIMS_PER_SECOND)] {
            match load {
                Load::Saturating => println!(
                    "\nsaturating: each worker sends its next claim as soon as the last is answered"
                ),
                Load::Offered(rate) => println!(
                    "\nat the floor's rate: the workers together send {rate:.0} claims/s on a fixed \
                     schedule; latency counts from the scheduled send"
                ),
            }
            println!(
                "{:<10} {:>10} {:>9} {:>9} {:>9} {:>12} {:>7}   floor",
                "store", "claims/s", "p50 ms", "p99 ms", "max ms", "p99 all ms", "errors"
            );
            // First, interleaved with the stores in every load: what the harness itself does.
            harness(load).await;
            let sqlite = format!("sqlite://{}", dir.path().join(load.file("bench.db")).display());
            claims("sqlite", &sqlite, 1, load).await;
            let (postgres, schema) = postgres_schema("http").await;
            claims("postgres", &postgres, 1, load).await;
            drop_schema(&schema).await;
            // Two hubs on one database, half the workers on each; events relayed between them.
            let (postgres, schema) = postgres_schema("replicas").await;
            claims("postgres×2", &postgres, 2, load).await;
            drop_schema(&schema).await;
        }
        println!();
        println!("the same claims without HTTP: {WORKERS} concurrent callers of Store::claim");
        let direct = format!("sqlite://{}", dir.path().join("direct.db").display());
        store_claims("sqlite", &direct).await;
        let (postgres, schema) = postgres_schema("store").await;
        store_claims("postgres", &postgres).await;
        drop_schema(&schema).await;
        println!();
        fan_out(&format!("sqlite://{}", dir.path().join("fan-out.db").display())).await;
    });
}

/// How the workers send their claims.
#[derive(Clone, Copy)]
enum Load {
    /// Each worker sends its next claim as soon as the last is answered: the most the hub can do.
    Saturating,
    /// The workers together send this many claims per second, each on a fixed schedule (an
    /// open loop: a slow answer does not delay the next send, so a stall is not hidden).
    Offered(f64),
}

impl Load {
    fn file(self, name: &str) -> String {
        match self {
            Load::Saturating => name.to_owned(),
            Load::Offered(_) => format!("offered-{name}"),
        }
    }

    /// When worker `worker` sends its `n`-th claim, from `start`; `None` means at once.
    fn send_time(self, start: Instant, worker: usize, n: u32) -> Option<Instant> {
        let Load::Offered(rate) = self else {
            return None;
        };
        let period = Duration::from_secs_f64(WORKERS as f64 / rate);
        // Workers are spread evenly over one period, so the load is smooth, not in bursts.
        let offset = period.mul_f64(worker as f64 / WORKERS as f64);
        Some(start + offset + period * n)
    }
}

/// The claim rules at work: most tasks require a capability every worker has, some one that
/// only half the workers have (each half its own), some nothing; so claimers come in two
/// capability groups that compete for most tasks.
fn bench_tasks() -> Vec<NewTask> {
    (0..CLAIMS)
        .map(|n| NewTask {
            requires: match n % 8 {
                0 => vec![],
                1 => vec!["docker".to_owned()],
                2 => vec!["linux".to_owned(), "gpu".to_owned()],
                _ => vec!["linux".to_owned()],
            },
            ..NewTask::new(format!("B-{n}"), "bench")
        })
        .collect()
}

/// Worker `worker`'s capabilities: every worker runs Linux, even ones Docker, odd ones a GPU.
fn capabilities(worker: usize) -> Vec<String> {
    let extra = if worker.is_multiple_of(2) {
        "docker"
    } else {
        "gpu"
    };
    vec!["linux".to_owned(), extra.to_owned()]
}

/// The store's share of a claim: the same load with the HTTP layer taken away.
async fn store_claims(label: &str, database: &str) {
    let store = Store::connect(database).await.unwrap();
    store
        .import_plan(label, None, &bench_tasks())
        .await
        .unwrap();
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let id = format!("direct-{worker}");
            store
                .heartbeat(&id, "", &capabilities(worker))
                .await
                .unwrap();
            let mut latencies = Vec::new();
            loop {
                let sent = Instant::now();
                match store.claim(&id).await.unwrap() {
                    Some(_) => latencies.push(sent.elapsed()),
                    None => return latencies,
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    assert_eq!(latencies.len(), CLAIMS);
    println!(
        "{label:<10} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        millis(percentile(&latencies, 0.50)),
        millis(percentile(&latencies, 0.99)),
        millis(latencies.last().copied().unwrap_or_default()),
    );
    store.close().await;
}

/// `replicas` hubs on one database, the workers spread evenly over them.
async fn claims(label: &str, database: &str, replicas: usize, load: Load) {
    let mut hubs = Vec::new();
    for _ in 0..replicas {
        hubs.push(server::start(options(database)).await.unwrap());
    }
    let hub = &hubs[0];
    hub.state
        .store
        .import_plan(label, None, &bench_tasks())
        .await
        .unwrap();
    let bases: Vec<String> = hubs
        .iter()
        .map(|hub| format!("http://{}", hub.addr))
        .collect();
    let client = client();
    for worker in 0..WORKERS {
        let base = &bases[worker % replicas];
        client
            .post(format!("{base}/api/agents/heartbeat"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({
                "id": format!("bench-{worker}"),
                "capabilities": capabilities(worker),
            }))
            .send()
            .await
            .unwrap();
    }
    let sent = send_claims(&client, &bases, load).await;
    let distinct = hub
        .state
        .store
        .assignments(None, Some(agent_orch::hub::model::AssignmentStatus::Active))
        .await
        .unwrap()
        .iter()
        .map(|a| a.task_id)
        .collect::<std::collections::HashSet<_>>()
        .len();
    assert_eq!(
        (sent.answered, distinct),
        (CLAIMS, CLAIMS),
        "every task claimed exactly once"
    );
    sent.print(label, load);
    for hub in hubs {
        hub.stop().await.unwrap();
    }
}

/// The harness alone: the same workers, client and schedule against a server that answers
/// each claim at once from memory (200 with a small body until [`CLAIMS`] are answered, then
/// 204). What it reaches is the most the harness can show; its latency is the part of the
/// hub's that is the client's, the HTTP stack's and the scheduler's on these shared cores.
async fn harness(load: Load) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let answered = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/api/assignments/claim",
        axum::routing::post(move || {
            let answered = Arc::clone(&answered);
            async move {
                if answered.fetch_add(1, Ordering::Relaxed) < CLAIMS {
                    (
                        axum::http::StatusCode::OK,
                        r#"{"assignment":{"id":1},"task":{"id":1}}"#,
                    )
                } else {
                    (axum::http::StatusCode::NO_CONTENT, "")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let sent = send_claims(&client(), &[base], load).await;
    assert_eq!(sent.answered, CLAIMS, "every claim answered once");
    sent.print("harness", load);
    server.abort();
}

fn client() -> reqwest::Client {
    agent_orch::http::http_client_builder()
        .pool_max_idle_per_host(WORKERS)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// What the workers saw: each answered claim's send time and latency, and the failures.
struct Sent {
    answered: usize,
    latencies: Vec<(Instant, Duration)>,
    errors: usize,
    elapsed: Duration,
}

/// Runs the [`WORKERS`] workers, spread evenly over `bases`, until each is told nothing is
/// left (204).
async fn send_claims(client: &reqwest::Client, bases: &[String], load: Load) -> Sent {
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let client = client.clone();
        let url = format!("{}/api/assignments/claim", bases[worker % bases.len()]);
        let body = serde_json::json!({"agent_id": format!("bench-{worker}")}).to_string();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0_usize;
            for n in 0.. {
                let sent = match load.send_time(started, worker, n) {
                    Some(scheduled) => {
                        tokio::time::sleep_until(scheduled.into()).await;
                        scheduled
                    }
                    None => Instant::now(),
                };
                let response = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let status = match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                match status {
                    200 => latencies.push((sent, sent.elapsed())),
                    204 => return (latencies, errors),
                    _ => errors += 1,
                }
                if errors > 100 {
                    break;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(CLAIMS);
    let mut errors = 0;
    for worker in workers {
        let (mine, failed) = worker.await.unwrap();
        latencies.extend(mine);
        errors += failed;
    }
    Sent {
        answered: latencies.len(),
        latencies,
        errors,
        elapsed: started.elapsed(),
    }
}

impl Sent {
    /// One row of the table, judged against the floor.
    fn print(mut self, label: &str, load: Load) {
        let claimed = self.answered;
        let errors = self.errors;
        let mut all: Vec<Duration> = self.latencies.iter().map(|(_, latency)| *latency).collect();
        all.sort();
        self.latencies.sort_by_key(|(sent, _)| *sent);
        let mut steady: Vec<Duration> = self.latencies[WARM_UP.min(claimed)..]
            .iter()
            .map(|(_, latency)| *latency)
            .collect();
        steady.sort();
        let rate = claimed as f64 / self.elapsed.as_secs_f64();
        let p99 = millis(percentile(&steady, 0.99));
        // The floor has two halves: the most the hub can do must reach the rate, and at that
        // rate 99 % of claims must be answered in time (from their scheduled send, so a hub that
        // falls behind shows it).
        let floor = match load {
            Load::Saturating if rate >= FLOOR_CLAIMS_PER_SECOND => "2,000/s met",
            Load::Offered(_) if p99 <= FLOOR_P99_MS => "p99 <= 20 ms met",
            Load::Saturating => "2,000/s NOT MET",
            Load::Offered(_) => "p99 <= 20 ms NOT MET",
        };
        println!(
            "{label:<10} {rate:>10.0} {:>9.2} {p99:>9.2} {:>9.2} {:>12.2} {errors:>7}   {floor}",
            millis(percentile(&steady, 0.50)),
            millis(steady.last().copied().unwrap_or_default()),
            millis(percentile(&all, 0.99)),
        );
    }
}

async fn fan_out(database: &str) {
    let hub = server::start(options(database)).await.unwrap();
    let url = format!("ws://{}/ws", hub.addr);
    let mut clients = Vec::with_capacity(WS_CLIENTS);
    for _ in 0..WS_CLIENTS {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        // The hello proves the subscription is live before events are published.
        socket.next().await.unwrap().unwrap();
        clients.push(socket);
    }
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let origin = Instant::now();
    for mut socket in clients {
        let sender = sender.clone();
        tokio::spawn(async move {
            for _ in 0..WS_EVENTS {
                let Some(Ok(message)) = socket.next().await else {
                    return;
                };
                let received = origin.elapsed();
                let text = message.into_text().unwrap();
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                let sent_at = event["data"]["host"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap();
                let _ = sender.send(received.saturating_sub(Duration::from_micros(sent_at)));
            }
        });
    }
    drop(sender);
    let events = Arc::new(hub.state.events.clone());
    for _ in 0..WS_EVENTS {
        // The hub's own bus, as a handler publishes; the payload carries its send time.
        let sent = origin.elapsed().as_micros().to_string();
        events.publish(&agent_orch::hub::events::HubEvent::AgentUpdated(
            agent_orch::hub::model::Agent {
                id: "bench".into(),
                host: sent,
                capabilities: Vec::new(),
                status: agent_orch::hub::model::AgentStatus::Active,
                last_heartbeat: 0,
                created_at: 0,
            },
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies = Vec::new();
    while let Some(latency) = receiver.recv().await {
        latencies.push(latency);
    }
    latencies.sort();
    println!("ws fan-out: {WS_CLIENTS} clients x {WS_EVENTS} events, publish to receipt");
    println!(
        "{:<10} {:>10} {:>9} {:>9} {:>9}",
        "", "delivered", "p50 ms", "p99 ms", "max ms"
    );
    println!(
        "{:<10} {:>10} {:>9.2} {:>9.2} {:>9.2}",
        "sqlite",
        latencies.len(),
        millis(percentile(&latencies, 0.50)),
        millis(percentile(&latencies, 0.99)),
        millis(latencies.last().copied().unwrap_or_default())
    );
    assert_eq!(
        latencies.len(),
        WS_CLIENTS * WS_EVENTS,
        "every client got every event"
    );
    hub.stop().await.unwrap();
}

fn options(database: &str) -> ServeOptions {
    ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: database.to_owned(),
        tokens: ApiTokens::new([TOKEN]).unwrap(),
        cors_origins: Vec::new(),
        heartbeat_timeout: Duration::from_secs(600),
        retry_backoff: RetryBackoff::default(),
        pull_request_polling: None,
    }
}

fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn admin_url() -> String {
    std::env::var("AGENT_ORCH_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn postgres_schema(purpose: &str) -> (String, String) {
    let schema = format!("hub_bench_{purpose}_{}", std::process::id());
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url())
        .await
        .unwrap_or_else(|err| panic!("PostgreSQL is required at {}: {err}", admin_url()));
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut connection)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut connection)
        .await
        .unwrap();
    let admin = admin_url();
    let separator = if admin.contains('?') { '&' } else { '?' };
    (
        format!("{admin}{separator}options=-c%20search_path%3D{schema}"),
        schema,
    )
}

async fn drop_schema(schema: &str) {
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut connection)
        .await
        .unwrap();
}
