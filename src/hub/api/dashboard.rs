//! The dashboard: one self-contained page (no external assets, the hub may be offline) with
//! the task board by status, the burn-up chart with velocity and ETA, agent utilization, epics
//! and the live event stream, refreshed from the JSON API as `/ws` events arrive.

use axum::response::Html;

pub(crate) async fn page() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
