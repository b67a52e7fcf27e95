//! HTTP and WebSocket front of the switchboard (axum): `/v1/ws` for signaling, `/healthz`,
//! and `/v1/queues` as JSON for wall displays.
//!
//! Each WebSocket gets a connection task that parses untrusted frames (size, JSON, type),
//! checks passwords (Argon2 on a blocking thread, never on the core task), serves read-only
//! requests (history) straight from the store, and forwards everything else to the core task.
//! A bad frame gets an `error` with a stable code; the connection and everyone else go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::protocol::{
    self, CallerInfo, ClientMessage, ErrorCode, PROTOCOL_VERSION, Role, ServerMessage,
};
use crate::store::Store;

use super::core::{ConnId, CoreInput, DispositionForm};

/// Shared by every connection task.
pub struct HttpState {
    pub core: mpsc::UnboundedSender<CoreInput>,
    pub store: Store,
    next_conn: AtomicU64,
    /// Flips to true on shutdown; every connection task then closes its socket.
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl HttpState {
    pub fn new(
        core: mpsc::UnboundedSender<CoreInput>,
        store: Store,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new(HttpState {
            core,
            store,
            next_conn: AtomicU64::new(1),
            shutdown,
        })
    }
}

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/ws", get(ws_upgrade))
        .route("/v1/queues", get(queues))
        .route("/v1/wallboard", get(wallboard))
        .with_state(state)
}

async fn queues(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let (reply, answer) = oneshot::channel();
    let _ = state.core.send(CoreInput::QueueStatus { reply });
    match answer.await {
        Ok(queues) => axum::Json(serde_json::json!({ "queues": queues })).into_response(),
        Err(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response(),
    }
}

async fn wallboard(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let (reply, answer) = oneshot::channel();
    let _ = state.core.send(CoreInput::Wallboard { reply });
    match answer.await {
        Ok(Some(board)) => axum::Json(board).into_response(),
        _ => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "wallboard unavailable",
        )
            .into_response(),
    }
}

async fn ws_upgrade(
    ws: WebSocketUpgrade,
    State(state): State<Arc<HttpState>>,
) -> impl IntoResponse {
    // Frames over the limit are refused by us with a clear error, so let a little more through
    // the transport than the protocol allows.
    ws.max_message_size(protocol::MAX_MESSAGE_BYTES * 4)
        .on_upgrade(move |socket| connection(socket, state))
}

/// What this connection has proven so far; decides which messages it may send.
#[derive(Debug, Clone, PartialEq)]
enum Standing {
    Anonymous,
    User(Role),
    /// A user's lookup session (`login` with `lookup`): history, reports and customer notes
    /// only; the core does not know it, so the user's phone stays logged in.
    Lookup(Role),
    Caller,
    /// A customer endpoint (`register`): rung for outbound calls, answers and hangs up.
    Endpoint,
}

async fn connection(socket: WebSocket, state: Arc<HttpState>) {
    let conn: ConnId = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut outbox_rx) = mpsc::unbounded_channel::<ServerMessage>();
    if state
        .core
        .send(CoreInput::Opened {
            conn,
            outbox: outbox.clone(),
        })
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox_rx.recv().await {
            let Ok(text) = serde_json::to_string(&message) else {
                continue;
            };
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let _ = outbox.send(ServerMessage::Welcome {
        protocol: PROTOCOL_VERSION,
        server: format!("sapa {}", env!("CARGO_PKG_VERSION")),
    });
    let mut standing = Standing::Anonymous;
    let mut shutdown = state.shutdown.clone();
    loop {
        let frame = tokio::select! {
            frame = stream.next() => match frame {
                Some(frame) => frame,
                None => break,
            },
            _ = stopped(&mut shutdown) => break,
        };
        let text = match frame {
            Ok(Message::Text(text)) => text,
            Ok(Message::Binary(_)) => {
                let _ = outbox.send(error(
                    None,
                    ErrorCode::BinaryNotSupported,
                    "send JSON text frames",
                ));
                continue;
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let message = match protocol::parse_client_message(&text) {
            Ok(m) => m,
            Err(e) => {
                let _ = outbox.send(error(
                    protocol::salvage_req(&text),
                    e.code(),
                    &e.to_string(),
                ));
                continue;
            }
        };
        if let Some(input) = handle_message(conn, &state, &outbox, &mut standing, message).await
            && state.core.send(input).is_err()
        {
            break;
        }
    }
    let _ = state.core.send(CoreInput::Closed { conn });
    drop(outbox);
    writer.abort();
}

fn error(req: Option<String>, code: ErrorCode, message: &str) -> ServerMessage {
    ServerMessage::Error {
        req,
        code,
        message: message.to_owned(),
    }
}

/// Checks the message against the connection's standing, answers what it can itself, and
/// returns what the core must handle.
async fn handle_message(
    conn: ConnId,
    state: &HttpState,
    outbox: &mpsc::UnboundedSender<ServerMessage>,
    standing: &mut Standing,
    message: ClientMessage,
) -> Option<CoreInput> {
    let req = message.req().map(str::to_owned);
    let reply = |m: ServerMessage| {
        let _ = outbox.send(m);
    };
    let is_user = matches!(standing, Standing::User(_));
    if matches!(standing, Standing::Lookup(_))
        && !matches!(
            message,
            ClientMessage::Ping { .. }
                | ClientMessage::History { .. }
                | ClientMessage::Report { .. }
                | ClientMessage::CustomerNotes { .. }
        )
    {
        reply(error(
            req,
            ErrorCode::Forbidden,
            &format!(
                "a lookup session reads history and reports only, not {}",
                message.type_name()
            ),
        ));
        return None;
    }
    match message {
        ClientMessage::Ping { t, .. } => {
            reply(ServerMessage::Pong { req, t });
            None
        }
        ClientMessage::Login {
            protocol,
            user,
            password,
            lookup,
            ..
        } => {
            if protocol != PROTOCOL_VERSION {
                reply(error(
                    req,
                    ErrorCode::UnsupportedVersion,
                    &format!("this switchboard speaks protocol {PROTOCOL_VERSION}"),
                ));
                return None;
            }
            if *standing != Standing::Anonymous {
                reply(error(
                    req,
                    ErrorCode::InvalidState,
                    "this connection is already in use",
                ));
                return None;
            }
            match state.store.verify_login(&user, &password).await {
                Ok(Some(found)) => {
                    let role = match found.role {
                        crate::store::Role::Agent => Role::Agent,
                        crate::store::Role::Supervisor => Role::Supervisor,
                    };
                    if lookup {
                        *standing = Standing::Lookup(role);
                        reply(ServerMessage::Ok { req });
                        return None;
                    }
                    *standing = Standing::User(role);
                    Some(CoreInput::LoggedIn {
                        conn,
                        req,
                        user: found.name,
                        role,
                    })
                }
                Ok(None) => {
                    reply(error(
                        req,
                        ErrorCode::BadCredentials,
                        "wrong user or password",
                    ));
                    None
                }
                Err(crate::store::StoreError::UserDisabled(name)) => {
                    reply(error(
                        req,
                        ErrorCode::BadCredentials,
                        &format!("the account {name} is disabled; ask an administrator"),
                    ));
                    None
                }
                Err(e) => {
                    reply(error(
                        req,
                        ErrorCode::Internal,
                        &format!("cannot check the password: {e}"),
                    ));
                    None
                }
            }
        }
        ClientMessage::Dial {
            protocol,
            from,
            name,
            queue,
            to,
            ..
        } => {
            if protocol != PROTOCOL_VERSION {
                reply(error(
                    req,
                    ErrorCode::UnsupportedVersion,
                    &format!("this switchboard speaks protocol {PROTOCOL_VERSION}"),
                ));
                return None;
            }
            if is_user {
                reply(error(
                    req,
                    ErrorCode::Forbidden,
                    "logged-in users do not dial into queues",
                ));
                return None;
            }
            *standing = Standing::Caller;
            Some(CoreInput::Dial {
                conn,
                req,
                from,
                name,
                queue,
                to,
            })
        }
        ClientMessage::MediaOffer { sdp, .. } => {
            if *standing == Standing::Anonymous {
                reply(error(
                    req,
                    ErrorCode::Unauthenticated,
                    "log in or dial first",
                ));
                return None;
            }
            Some(CoreInput::MediaOffer { conn, req, sdp })
        }
        ClientMessage::Register {
            protocol,
            number,
            name,
            ..
        } => {
            if protocol != PROTOCOL_VERSION {
                reply(error(
                    req,
                    ErrorCode::UnsupportedVersion,
                    &format!("this switchboard speaks protocol {PROTOCOL_VERSION}"),
                ));
                return None;
            }
            if *standing != Standing::Anonymous {
                reply(error(
                    req,
                    ErrorCode::InvalidState,
                    "this connection is already in use",
                ));
                return None;
            }
            *standing = Standing::Endpoint;
            Some(CoreInput::Register {
                conn,
                req,
                number,
                name,
            })
        }
        ClientMessage::RequestCallback { .. } if *standing == Standing::Caller => {
            Some(CoreInput::RequestCallback { conn, req })
        }
        ClientMessage::Answer { call_id, .. } if *standing == Standing::Endpoint => {
            Some(CoreInput::Answer { conn, req, call_id })
        }
        ClientMessage::Hangup { call_id, .. } => {
            if *standing == Standing::Anonymous {
                reply(error(
                    req,
                    ErrorCode::Unauthenticated,
                    "log in or dial first",
                ));
                return None;
            }
            Some(CoreInput::Hangup { conn, req, call_id })
        }
        other => {
            match standing {
                Standing::Anonymous => {
                    reply(error(req, ErrorCode::Unauthenticated, "log in first"));
                    return None;
                }
                Standing::Caller | Standing::Endpoint => {
                    reply(error(
                        req,
                        ErrorCode::Forbidden,
                        &format!("callers may not send {}", other.type_name()),
                    ));
                    return None;
                }
                Standing::User(role) | Standing::Lookup(role) => {
                    let supervisor_only = matches!(
                        other,
                        ClientMessage::Monitor { .. }
                            | ClientMessage::StopMonitor { .. }
                            | ClientMessage::Report { .. }
                    );
                    if supervisor_only && *role != Role::Supervisor {
                        reply(error(
                            req,
                            ErrorCode::Forbidden,
                            &format!("only supervisors may send {}", other.type_name()),
                        ));
                        return None;
                    }
                }
            }
            match other {
                ClientMessage::Monitor { agent, mode, .. } => Some(CoreInput::Monitor {
                    conn,
                    req,
                    agent,
                    mode,
                }),
                ClientMessage::StopMonitor { .. } => Some(CoreInput::StopMonitor { conn, req }),
                ClientMessage::Report {
                    from_ms, to_ms, by, ..
                } => {
                    match report(&state.store, from_ms, to_ms, by).await {
                        Ok(rows) => {
                            let csv = crate::metrics::report_csv(&rows);
                            reply(ServerMessage::Report { req, rows, csv });
                        }
                        Err(e) => reply(error(
                            req,
                            ErrorCode::Internal,
                            &format!("cannot build the report: {e}"),
                        )),
                    }
                    None
                }
                ClientMessage::Transfer {
                    call_id,
                    queue,
                    agent,
                    notes,
                    ..
                } => Some(CoreInput::Transfer {
                    conn,
                    req,
                    call_id,
                    queue,
                    agent,
                    notes,
                }),
                ClientMessage::Consult {
                    call_id,
                    agent,
                    notes,
                    ..
                } => Some(CoreInput::Consult {
                    conn,
                    req,
                    call_id,
                    target: agent,
                    kind: crate::acd::ConsultKind::Transfer,
                    notes,
                }),
                ClientMessage::Escalate {
                    call_id,
                    supervisor,
                    notes,
                    ..
                } => Some(CoreInput::Consult {
                    conn,
                    req,
                    call_id,
                    target: supervisor,
                    kind: crate::acd::ConsultKind::Conference,
                    notes,
                }),
                ClientMessage::CompleteTransfer { call_id, .. } => {
                    Some(CoreInput::CompleteTransfer { conn, req, call_id })
                }
                ClientMessage::CancelConsult { call_id, .. } => {
                    Some(CoreInput::CancelConsult { conn, req, call_id })
                }
                ClientMessage::Callbacks { .. } => Some(CoreInput::Callbacks { conn, req }),
                ClientMessage::DialCallback { callback_id, .. } => Some(CoreInput::DialCallback {
                    conn,
                    req,
                    callback_id,
                }),
                ClientMessage::DialOut { number, queue, .. } => Some(CoreInput::DialOut {
                    conn,
                    req,
                    number,
                    queue,
                }),
                ClientMessage::RequestCallback { .. } => {
                    reply(error(
                        req,
                        ErrorCode::Forbidden,
                        "only a waiting caller may ask to be called back",
                    ));
                    None
                }
                ClientMessage::Hold { call_id, on, .. } => Some(CoreInput::Hold {
                    conn,
                    req,
                    call_id,
                    on,
                }),
                ClientMessage::Mute { call_id, on, .. } => Some(CoreInput::Mute {
                    conn,
                    req,
                    call_id,
                    on,
                }),
                ClientMessage::SetState { state, reason, .. } => Some(CoreInput::SetState {
                    conn,
                    req,
                    state,
                    reason,
                }),
                ClientMessage::Answer { call_id, .. } => {
                    Some(CoreInput::Answer { conn, req, call_id })
                }
                ClientMessage::Decline { call_id, .. } => {
                    Some(CoreInput::Decline { conn, req, call_id })
                }
                ClientMessage::Disposition {
                    call_id,
                    request_id,
                    code,
                    resolution,
                    notes,
                    follow_up_at_ms,
                    ..
                } => Some(CoreInput::Disposition {
                    conn,
                    req,
                    disposition: DispositionForm {
                        call_id,
                        request_id,
                        code,
                        resolution,
                        notes,
                        follow_up_at_ms,
                    },
                }),
                ClientMessage::CustomerNotes { number, notes, .. } => {
                    match state.store.set_customer_notes(&number, &notes).await {
                        Ok(customer) => {
                            reply(ServerMessage::Ok { req });
                            Some(CoreInput::CustomerNotes {
                                number,
                                notes: customer.notes,
                            })
                        }
                        Err(crate::store::StoreError::Invalid(why)) => {
                            reply(error(req, ErrorCode::BadRequest, &why));
                            None
                        }
                        Err(e) => {
                            reply(error(
                                req,
                                ErrorCode::Internal,
                                &format!("cannot store the notes: {e}"),
                            ));
                            None
                        }
                    }
                }
                ClientMessage::History { number, limit, .. } => {
                    let limit = limit.unwrap_or(50).clamp(1, 1000) as i64;
                    match history(&state.store, &number, limit).await {
                        Ok((customer, entries)) => reply(ServerMessage::History {
                            req,
                            number,
                            customer,
                            entries,
                        }),
                        Err(e) => reply(error(
                            req,
                            ErrorCode::Internal,
                            &format!("cannot read history: {e}"),
                        )),
                    }
                    None
                }
                _ => None,
            }
        }
    }
}

/// Reads the range (plus seven days after it, for first-contact resolution) and the follow-ups
/// due in it, and computes the report.
async fn report(
    store: &Store,
    from_ms: i64,
    to_ms: i64,
    by: crate::metrics::ReportBy,
) -> Result<Vec<crate::metrics::ReportRow>, crate::store::StoreError> {
    let calls = store.calls_between(from_ms, to_ms).await?;
    let later = store
        .calls_between(
            from_ms,
            to_ms.saturating_add(crate::metrics::FCR_WINDOW_MS + 1),
        )
        .await?;
    let follow_ups = store.callbacks_due_between(from_ms, to_ms).await?;
    Ok(crate::metrics::report(
        &calls,
        &later,
        &follow_ups,
        from_ms,
        to_ms,
        by,
    ))
}

async fn history(
    store: &Store,
    number: &str,
    limit: i64,
) -> Result<(Option<CallerInfo>, Vec<protocol::HistoryEntry>), crate::store::StoreError> {
    let customer = store.customer(number).await?.map(|c| CallerInfo {
        number: c.number,
        name: c.name,
        notes: c.notes,
    });
    let entries = store
        .caller_history(number, limit)
        .await?
        .into_iter()
        .map(super::core::history_entry)
        .collect();
    Ok((customer, entries))
}

/// Resolves once shutdown is signalled (or its sender is gone). Owns no borrow of the watch
/// value, so it can sit in a `select!` across awaits.
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
