//! Events between hub replicas on one PostgreSQL database, over `LISTEN`/`NOTIFY`: what one
//! replica publishes reaches the `/ws` subscribers of every other one.
//!
//! Each replica sends its events in batches (one `pg_notify` statement per batch, off the
//! request path) on a channel named after the database and schema, and listens on it,
//! dropping its own. A notification carries at most [`MAX_PAYLOAD`] bytes, so a larger event
//! travels in numbered parts, reassembled on arrival: `NOTIFY` keeps the parts of one
//! transaction together and in order, and their distinct headers keep it from folding
//! identical ones.

use std::collections::HashMap;

use axum::extract::ws::Utf8Bytes;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::events::EventBus;
use super::store::StoreError;

/// PostgreSQL refuses payloads of 8000 bytes or more; this leaves room for the header.
const MAX_PAYLOAD: usize = 7900;

/// The most events sent by one statement.
const MAX_BATCH: usize = 256;

/// Events reassembled at once; more means parts were lost, and the oldest are dropped.
const MAX_PARTIAL: usize = 64;

/// Starts relaying: `outbound` (this replica's events, from [`EventBus::relayed`]) goes to
/// the other replicas, theirs come into `bus`. Both halves stop with `shutdown` or when the
/// pool is closed. `origin` names this replica, so it skips its own events coming back.
pub(crate) async fn start(
    pool: PgPool,
    origin: String,
    bus: EventBus,
    outbound: mpsc::Receiver<Utf8Bytes>,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let scope: String = sqlx::query_scalar("SELECT current_database() || '.' || current_schema()")
        .fetch_one(&pool)
        .await?;
    let channel = channel_name(&scope);
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(&channel).await?;
    tokio::spawn(send(
        pool,
        channel,
        origin.clone(),
        outbound,
        shutdown.clone(),
    ));
    tokio::spawn(receive(listener, origin, bus, shutdown));
    Ok(())
}

/// One channel per database and schema (hubs in other schemas are other hubs), within
/// PostgreSQL's 63-byte identifier limit.
fn channel_name(scope: &str) -> String {
    let digest = Sha256::digest(scope.as_bytes());
    format!("agent_orch_hub_{}", hex::encode(&digest[..8]))
}

async fn send(
    pool: PgPool,
    channel: String,
    origin: String,
    mut outbound: mpsc::Receiver<Utf8Bytes>,
    shutdown: CancellationToken,
) {
    let mut sequence = 0_u64;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            received = outbound.recv_many(&mut batch, MAX_BATCH) => if received == 0 { return },
            () = shutdown.cancelled() => return,
        }
        let mut payloads = Vec::with_capacity(batch.len());
        for event in batch.drain(..) {
            sequence += 1;
            payloads.extend(frame(&origin, sequence, event.as_str()));
        }
        let sent = sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
            .bind(&channel)
            .bind(&payloads)
            .execute(&pool)
            .await;
        if let Err(sqlx::Error::PoolClosed) = sent {
            return;
        }
        // Any other failure loses this batch only: events are for whoever listens now, and
        // what they told of is in the database, read again by a subscriber's next refresh.
    }
}

/// Splits an event into notification payloads: `ORIGIN SEQUENCE PART PARTS\n` + a piece.
fn frame(origin: &str, sequence: u64, event: &str) -> Vec<String> {
    let pieces = split_at_char_boundaries(event, MAX_PAYLOAD);
    let parts = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(part, piece)| format!("{origin} {sequence} {part} {parts}\n{piece}"))
        .collect()
}

fn split_at_char_boundaries(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);
    pieces
}

async fn receive(
    mut listener: PgListener,
    origin: String,
    bus: EventBus,
    shutdown: CancellationToken,
) {
    let mut partial = Reassembly::default();
    loop {
        let notification = tokio::select! {
            notification = listener.try_recv() => notification,
            () = shutdown.cancelled() => return,
        };
        match notification {
            Ok(Some(notification)) => {
                if let Some(event) = partial.accept(notification.payload(), &origin) {
                    bus.deliver(Utf8Bytes::from(event));
                }
            }
            // The link was lost and is back: whatever was sent meanwhile is gone.
            Ok(None) => {
                partial = Reassembly::default();
                bus.deliver(Utf8Bytes::from_static(r#"{"type":"lagged","missed":null}"#));
            }
            Err(sqlx::Error::PoolClosed) => return,
            // Reconnecting failed: the database is away; try again shortly.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
}

/// Events of other replicas, put back together from their parts.
#[derive(Default)]
struct Reassembly {
    events: HashMap<(String, u64), Vec<Option<String>>>,
}

impl Reassembly {
    /// Takes one payload; returns a whole event from another replica once it has every part.
    fn accept(&mut self, payload: &str, own_origin: &str) -> Option<String> {
        let (header, piece) = payload.split_once('\n')?;
        let mut fields = header.split(' ');
        let origin = fields.next()?;
        if origin == own_origin {
            return None;
        }
        let sequence: u64 = fields.next()?.parse().ok()?;
        let part: usize = fields.next()?.parse().ok()?;
        let parts: usize = fields.next()?.parse().ok()?;
        if parts == 1 {
            return Some(piece.to_owned());
        }
        if part >= parts || parts > MAX_PAYLOAD {
            return None;
        }
        if self.events.len() >= MAX_PARTIAL {
            self.events.clear();
        }
        let key = (origin.to_owned(), sequence);
        let slots = self
            .events
            .entry(key.clone())
            .or_insert_with(|| vec![None; parts]);
        if slots.len() != parts {
            return None;
        }
        slots[part] = Some(piece.to_owned());
        if slots.iter().any(Option::is_none) {
            return None;
        }
        let slots = self.events.remove(&key)?;
        Some(slots.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_event_travels_in_parts_and_comes_back_whole() {
        // Multi-byte characters straddle the cut points.
        let event = format!(
            r#"{{"type":"task.updated","data":"{}"}}"#,
            "é€x".repeat(5000)
        );
        let payloads = frame("aaaa", 7, &event);
        assert!(payloads.len() > 2, "{} parts", payloads.len());
        assert!(payloads.iter().all(|payload| payload.len() < 8000));

        let mut reassembly = Reassembly::default();
        let mut whole = None;
        // Parts may arrive in any order; the event is whole once the last one is in.
        for payload in payloads.iter().rev() {
            assert_eq!(whole, None, "whole before every part arrived");
            whole = reassembly.accept(payload, "bbbb");
        }
        assert_eq!(whole.as_deref(), Some(event.as_str()));
        assert!(reassembly.events.is_empty());
    }

    #[test]
    fn a_replica_ignores_its_own_events_and_malformed_payloads() {
        let mut reassembly = Reassembly::default();
        let own = frame("aaaa", 1, r#"{"type":"agent.updated"}"#);
        assert_eq!(reassembly.accept(&own[0], "aaaa"), None);
        assert_eq!(
            reassembly.accept(&own[0], "bbbb").as_deref(),
            Some(r#"{"type":"agent.updated"}"#)
        );
        for garbage in ["", "no header", "aaaa x 0 1\n{}", "aaaa 1 5 2\n{}"] {
            assert_eq!(reassembly.accept(garbage, "bbbb"), None, "{garbage:?}");
        }
    }

    #[test]
    fn channels_differ_per_schema_and_fit_postgres_identifiers() {
        let a = channel_name("test.hub_a");
        assert_ne!(a, channel_name("test.hub_b"));
        assert!(a.len() <= 63);
    }
}
