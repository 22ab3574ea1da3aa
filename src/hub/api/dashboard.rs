//! The dashboard: one self-contained page (no external assets) showing epics with progress,
//! agents with health, and the live event stream over `/ws`.

use axum::response::Html;

pub(crate) async fn page() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
