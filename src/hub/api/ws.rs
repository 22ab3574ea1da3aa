//! `/ws`: every hub event pushed to each subscriber as one JSON text message, as it happens.

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use super::HubState;

pub(crate) async fn upgrade(State(state): State<HubState>, upgrade: WebSocketUpgrade) -> Response {
    // Subscribe before the handshake completes, so nothing published after a client's
    // upgrade request is missed.
    let events = state.events.subscribe();
    let shutdown = state.shutdown.clone();
    // Counted from here: an upgrade that never completes drops the guard with the callback.
    let subscriber = state.metrics.websocket_subscriber();
    upgrade.on_upgrade(move |socket| async move {
        stream(socket, events, shutdown).await;
        drop(subscriber);
    })
}

async fn stream(
    mut socket: WebSocket,
    mut events: tokio::sync::broadcast::Receiver<Utf8Bytes>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let hello = format!(r#"{{"type":"hello","at":{}}}"#, crate::hub::model::now_ms());
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            event = events.recv() => {
                let text = match event {
                    Ok(text) => text,
                    // A client too slow to keep up is told how much it missed and carries on.
                    Err(RecvError::Lagged(missed)) => {
                        format!(r#"{{"type":"lagged","missed":{missed}}}"#).into()
                    }
                    Err(RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text)).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_) | Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
            () = shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
}
