//! The client side of signaling: one WebSocket to the switchboard, typed messages both ways,
//! and request/answer matching by `req` id. Used by the phone and the headless peers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::protocol::{ClientMessage, ErrorCode, ServerMessage};

/// Errors of the signaling client.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("cannot reach the switchboard at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the switchboard closed the connection")]
    Closed,
    #[error("no answer from the switchboard within {0:?}")]
    Timeout(Duration),
    #[error("{message} ({code:?})")]
    Refused { code: ErrorCode, message: String },
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<ServerMessage>>>>;

/// A connected signaling client. Messages without a pending request (events) arrive on
/// `events`.
pub struct Signal {
    outgoing: mpsc::UnboundedSender<ClientMessage>,
    pending: Pending,
    next_req: AtomicU64,
}

impl Signal {
    /// Connects; returns the client and the stream of unsolicited server messages.
    pub async fn connect(
        url: &str,
    ) -> Result<(Signal, mpsc::UnboundedReceiver<ServerMessage>), SignalError> {
        let connect = tokio_tungstenite::connect_async(url);
        let (ws, _) = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| SignalError::Unreachable {
                url: url.to_owned(),
                reason: "timed out".into(),
            })?
            .map_err(|e| SignalError::Unreachable {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let (mut sink, mut stream) = ws.split();
        let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<ClientMessage>();
        let (events_tx, events) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        tokio::spawn(async move {
            while let Some(m) = outgoing_rx.recv().await {
                let Ok(text) = serde_json::to_string(&m) else {
                    continue;
                };
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Text(text) = frame else {
                    if matches!(frame, Message::Close(_)) {
                        break;
                    }
                    continue;
                };
                let Ok(message) = serde_json::from_str::<ServerMessage>(&text) else {
                    tracing::warn!("unreadable message from the switchboard: {text}");
                    continue;
                };
                let waiter = match reply_req(&message) {
                    Some(req) => reader_pending.lock().await.remove(req),
                    None => None,
                };
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(message);
                    }
                    None => {
                        // A client that only makes requests (`sapa history`) drops its event
                        // receiver; the events are dropped then, not the connection.
                        let _ = events_tx.send(message);
                    }
                }
            }
            // Dropping the waiters tells every pending request that the connection is gone.
            reader_pending.lock().await.clear();
        });
        Ok((
            Signal {
                outgoing,
                pending,
                next_req: AtomicU64::new(1),
            },
            events,
        ))
    }

    /// Sends without waiting for an answer.
    pub fn send(&self, message: ClientMessage) -> Result<(), SignalError> {
        self.outgoing.send(message).map_err(|_| SignalError::Closed)
    }

    /// Sends a request (its `req` is filled in) and waits for the matching answer. An `error`
    /// answer becomes `SignalError::Refused`.
    pub async fn request(
        &self,
        mut message: ClientMessage,
        timeout: Duration,
    ) -> Result<ServerMessage, SignalError> {
        let req = format!("r{}", self.next_req.fetch_add(1, Ordering::Relaxed));
        set_req(&mut message, req.clone());
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(req.clone(), tx);
        self.send(message)?;
        let answer = tokio::time::timeout(timeout, rx).await;
        self.pending.lock().await.remove(&req);
        match answer {
            Err(_) => Err(SignalError::Timeout(timeout)),
            Ok(Err(_)) => Err(SignalError::Closed),
            Ok(Ok(ServerMessage::Error { code, message, .. })) => {
                Err(SignalError::Refused { code, message })
            }
            Ok(Ok(m)) => Ok(m),
        }
    }
}

fn reply_req(message: &ServerMessage) -> Option<&str> {
    match message {
        ServerMessage::LoggedIn { req, .. }
        | ServerMessage::Ok { req }
        | ServerMessage::MediaAnswer { req, .. }
        | ServerMessage::CallQueued { req, .. }
        | ServerMessage::InMenu { req, .. }
        | ServerMessage::DispositionSaved { req, .. }
        | ServerMessage::History { req, .. }
        | ServerMessage::Pong { req, .. }
        | ServerMessage::MonitorStarted { req, .. }
        | ServerMessage::Report { req, .. }
        | ServerMessage::Callbacks { req, .. }
        | ServerMessage::Registered { req, .. }
        | ServerMessage::CallbackScheduled { req, .. }
        | ServerMessage::Error { req, .. } => req.as_deref(),
        _ => None,
    }
}

/// Fills in the `req` id of any client message.
pub fn set_req(message: &mut ClientMessage, id: String) {
    match message {
        ClientMessage::Login { req, .. }
        | ClientMessage::Dial { req, .. }
        | ClientMessage::MediaOffer { req, .. }
        | ClientMessage::SetState { req, .. }
        | ClientMessage::Answer { req, .. }
        | ClientMessage::Decline { req, .. }
        | ClientMessage::Hangup { req, .. }
        | ClientMessage::Disposition { req, .. }
        | ClientMessage::History { req, .. }
        | ClientMessage::CustomerNotes { req, .. }
        | ClientMessage::Monitor { req, .. }
        | ClientMessage::StopMonitor { req }
        | ClientMessage::Hold { req, .. }
        | ClientMessage::Mute { req, .. }
        | ClientMessage::Report { req, .. }
        | ClientMessage::Transfer { req, .. }
        | ClientMessage::Consult { req, .. }
        | ClientMessage::Escalate { req, .. }
        | ClientMessage::CompleteTransfer { req, .. }
        | ClientMessage::CancelConsult { req, .. }
        | ClientMessage::Callbacks { req }
        | ClientMessage::DialCallback { req, .. }
        | ClientMessage::DialOut { req, .. }
        | ClientMessage::Register { req, .. }
        | ClientMessage::RequestCallback { req }
        | ClientMessage::Ping { req, .. } => *req = Some(id),
    }
}

/// Turns `http://host:port`, `ws://host:port` or `host:port` into the signaling URL.
pub fn ws_url(switchboard: &str) -> String {
    let s = switchboard.trim().trim_end_matches('/');
    let s = if let Some(rest) = s.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = s.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if s.starts_with("ws://") || s.starts_with("wss://") {
        s.to_owned()
    } else {
        format!("ws://{s}")
    };
    if s.ends_with("/v1/ws") {
        s
    } else {
        format!("{s}/v1/ws")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_switchboard_urls() {
        assert_eq!(ws_url("127.0.0.1:8080"), "ws://127.0.0.1:8080/v1/ws");
        assert_eq!(ws_url("http://h:1/"), "ws://h:1/v1/ws");
        assert_eq!(ws_url("ws://h:1/v1/ws"), "ws://h:1/v1/ws");
    }
}
