//! The switchboard's core task: the one place that owns the ACD, the live calls and the
//! logged-in agents, and turns ACD decisions into store writes, signaling messages and media
//! routes.
//!
//! Connection tasks (one per WebSocket, see `http.rs`) parse and authenticate; everything that
//! changes shared state arrives here as a [`CoreInput`] over one channel, so there are no locks
//! around call state. Run loop:
//! ```text
//! loop { select! { input from a connection or the media task => handle,
//!                  ACD deadline (acd.poll_timeout)              => acd Timeout,
//!                  1 s tick                                     => queue status push }
//!        drain acd.poll_output(): each output is stored (committed) first, then announced }
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::acd::{
    Acd, AcdConfig, AcdError, AcdInput, AcdOutput, AgentId, AgentState, CallEndReason, CallId,
    OfferEnd, QueueId,
};
use crate::config::SwitchboardConfig;
use crate::protocol::{
    AgentStateName, CallerInfo, ClientConfig, ErrorCode, MonitorMode, QueueSummary, RequestedState,
    Resolution, Role, ServerMessage,
};
use crate::sounds::Sound;
use crate::store::{self, Store};

use super::media::{MediaEvent, MediaHandle, PeerId, Slot, Source};

/// Identifies one WebSocket connection; also the id of its peer connection in the bridge.
pub type ConnId = u64;

/// How many past calls travel with an offer (the screen-pop shows these before answering).
pub const OFFER_HISTORY_LIMIT: i64 = 50;

/// Inputs of the core task.
#[derive(Debug)]
pub enum CoreInput {
    /// A WebSocket opened; `outbox` carries everything the core says to it.
    Opened {
        conn: ConnId,
        outbox: mpsc::UnboundedSender<ServerMessage>,
    },
    /// The connection task authenticated a user (password checked there, off this task).
    LoggedIn {
        conn: ConnId,
        req: Option<String>,
        user: String,
        role: Role,
    },
    /// A caller placed a call.
    Dial {
        conn: ConnId,
        req: Option<String>,
        from: String,
        name: Option<String>,
        queue: Option<String>,
    },
    MediaOffer {
        conn: ConnId,
        req: Option<String>,
        sdp: String,
    },
    SetState {
        conn: ConnId,
        req: Option<String>,
        state: RequestedState,
        reason: Option<String>,
    },
    Answer {
        conn: ConnId,
        req: Option<String>,
        call_id: String,
    },
    Decline {
        conn: ConnId,
        req: Option<String>,
        call_id: String,
    },
    Hangup {
        conn: ConnId,
        req: Option<String>,
        call_id: Option<String>,
    },
    Disposition {
        conn: ConnId,
        req: Option<String>,
        disposition: DispositionForm,
    },
    /// A supervisor starts monitoring or changes mode (role checked by the connection task).
    Monitor {
        conn: ConnId,
        req: Option<String>,
        agent: String,
        mode: MonitorMode,
    },
    StopMonitor {
        conn: ConnId,
        req: Option<String>,
    },
    Hold {
        conn: ConnId,
        req: Option<String>,
        call_id: String,
        on: bool,
    },
    Closed {
        conn: ConnId,
    },
    Media(MediaEvent),
    /// The wallboard for `/v1/wallboard` (None if the store failed).
    Wallboard {
        reply: oneshot::Sender<Option<Box<crate::metrics::Wallboard>>>,
    },
    /// Figures for `/v1/queues` and tests.
    QueueStatus {
        reply: oneshot::Sender<Vec<QueueSummary>>,
    },
}

/// The after-call form as submitted.
#[derive(Debug, Clone)]
pub struct DispositionForm {
    pub call_id: String,
    pub request_id: String,
    pub code: String,
    pub resolution: Resolution,
    pub notes: String,
    pub follow_up_at_ms: Option<i64>,
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq)]
enum Party {
    Unknown,
    User { name: String, role: Role },
    Caller { call: CallId },
}

struct Connection {
    outbox: mpsc::UnboundedSender<ServerMessage>,
    party: Party,
    media_connected: bool,
}

/// A call the switchboard is handling right now.
struct LiveCall {
    caller_conn: ConnId,
    queue: QueueId,
    caller: CallerInfo,
    arrived: Instant,
    /// The agent offered or talking, if any.
    agent: Option<AgentId>,
    answered: bool,
    /// Fed to the ACD: only once the caller's media is up, so an agent never answers a line
    /// that cannot carry voice yet (and answer -> first audio is one frame, not an ICE setup).
    in_acd: bool,
    /// Since when the caller is on hold, if they are.
    held_since: Option<Instant>,
}

/// A supervisor taking part in an agent's call.
#[derive(Debug, Clone)]
struct MonitorSession {
    session_id: String,
    supervisor: String,
    supervisor_conn: ConnId,
    agent: AgentId,
    agent_conn: ConnId,
    caller_conn: ConnId,
    call: CallId,
    mode: MonitorMode,
}

/// The core task's state.
pub struct Core {
    config: SwitchboardConfig,
    store: Store,
    media: MediaHandle,
    acd: Acd,
    connections: HashMap<ConnId, Connection>,
    /// Logged-in agent (and supervisor) name -> its connection.
    users: HashMap<String, ConnId>,
    calls: HashMap<CallId, LiveCall>,
    clock: WallClock,
    /// A queue changed since the last status push.
    queues_dirty: bool,
    /// Monitoring sessions by the supervisor's connection (one session per supervisor).
    monitors: HashMap<ConnId, MonitorSession>,
}

/// Maps the monotonic clock the ACD runs on to wall-clock milliseconds for the store.
#[derive(Clone, Copy)]
struct WallClock {
    base: Instant,
    base_ms: i64,
}

impl WallClock {
    fn new() -> Self {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        WallClock {
            base: Instant::now(),
            base_ms,
        }
    }

    fn ms(&self, at: Instant) -> i64 {
        match at.checked_duration_since(self.base) {
            Some(d) => self.base_ms + d.as_millis() as i64,
            None => self.base_ms - self.base.duration_since(at).as_millis() as i64,
        }
    }
}

/// A fresh, sortable, unique call id.
fn new_call_id(now_ms: i64) -> CallId {
    CallId(format!(
        "c{now_ms:x}{:06x}",
        rand::random::<u32>() & 0xff_ffff
    ))
}

impl Core {
    pub fn new(config: SwitchboardConfig, store: Store, media: MediaHandle) -> Self {
        let acd = Acd::new(AcdConfig {
            queues: config
                .queues
                .iter()
                .map(|q| QueueId(q.name.clone()))
                .collect(),
            ring_no_answer: config.ring_no_answer(),
            max_after_call_work: config.max_after_call_work(),
            callback_offer_after: std::time::Duration::from_secs(60),
        });
        Core {
            config,
            store,
            media,
            acd,
            connections: HashMap::new(),
            users: HashMap::new(),
            calls: HashMap::new(),
            clock: WallClock::new(),
            queues_dirty: false,
            monitors: HashMap::new(),
        }
    }

    pub fn client_config(config: &SwitchboardConfig) -> ClientConfig {
        ClientConfig {
            queues: config.queues.iter().map(|q| q.name.clone()).collect(),
            disposition_codes: config.disposition_codes.clone(),
            not_ready_reasons: config.not_ready_reasons.clone(),
            ring_no_answer_ms: config.ring_no_answer_secs * 1000,
            max_after_call_work_ms: config.max_after_call_work_secs * 1000,
        }
    }

    /// Runs until shutdown is signalled or every sender of `inputs` is gone.
    pub async fn run(
        mut self,
        mut inputs: mpsc::UnboundedReceiver<CoreInput>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut status_tick = tokio::time::interval(Duration::from_secs(1));
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.acd.poll_timeout();
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.handle_input(input).await,
                    None => break,
                },
                _ = stopped(&mut shutdown) => break,
                _ = sleep_until_opt(deadline) => {
                    let now = Instant::now();
                    if let Err(e) = self.acd.handle_input(now, AcdInput::Timeout) {
                        tracing::warn!("ACD timeout failed: {e}");
                    }
                }
                _ = status_tick.tick() => {
                    if self.calls.values().any(|c| c.agent.is_none()) {
                        self.queues_dirty = true;
                    }
                    self.push_wallboard().await;
                }
            }
            self.drain_acd().await;
            if self.queues_dirty {
                self.queues_dirty = false;
                self.push_queue_status();
            }
        }
        // Shutdown: every agent is logged out so the state log is complete.
        let now = Instant::now();
        let agents: Vec<AgentId> = self.acd.agents().map(|(a, _)| a.clone()).collect();
        for agent in agents {
            let _ = self
                .acd
                .handle_input(now, AcdInput::AgentLoggedOut { agent });
        }
        self.drain_acd().await;
    }

    async fn handle_input(&mut self, input: CoreInput) {
        let now = Instant::now();
        match input {
            CoreInput::Opened { conn, outbox } => {
                self.connections.insert(
                    conn,
                    Connection {
                        outbox,
                        party: Party::Unknown,
                        media_connected: false,
                    },
                );
            }
            CoreInput::LoggedIn {
                conn,
                req,
                user,
                role,
            } => self.logged_in(now, conn, req, user, role),
            CoreInput::Dial {
                conn,
                req,
                from,
                name,
                queue,
            } => self.dial(now, conn, req, from, name, queue).await,
            CoreInput::MediaOffer { conn, req, sdp } => {
                let result = self.media.add_peer(PeerId(conn), sdp).await;
                match result {
                    Ok(sdp) => self.send(conn, ServerMessage::MediaAnswer { req, sdp }),
                    Err(e) => self.error(conn, req, ErrorCode::BadSdp, e.to_string()),
                }
            }
            CoreInput::SetState {
                conn,
                req,
                state,
                reason,
            } => {
                let Some(agent) = self.agent_of(conn, &req) else {
                    return;
                };
                let input = match state {
                    RequestedState::Available => AcdInput::AgentRequestedAvailable { agent },
                    RequestedState::NotReady => {
                        let reason = reason.unwrap_or_else(|| "break".to_owned());
                        if !self.config.not_ready_reasons.contains(&reason) {
                            self.error(
                                conn,
                                req,
                                ErrorCode::BadRequest,
                                format!("unknown not-ready reason {reason:?}"),
                            );
                            return;
                        }
                        AcdInput::AgentRequestedNotReady { agent, reason }
                    }
                };
                self.acd_request(now, conn, req, input);
            }
            CoreInput::Answer { conn, req, call_id } => {
                let Some(agent) = self.agent_of(conn, &req) else {
                    return;
                };
                if !self
                    .connections
                    .get(&conn)
                    .is_some_and(|c| c.media_connected)
                {
                    self.error(
                        conn,
                        req,
                        ErrorCode::InvalidState,
                        "the phone's media connection is not up yet".into(),
                    );
                    return;
                }
                let call = CallId(call_id);
                self.acd_request(now, conn, req, AcdInput::AgentAnswered { agent, call });
            }
            CoreInput::Decline { conn, req, call_id } => {
                let Some(agent) = self.agent_of(conn, &req) else {
                    return;
                };
                let call = CallId(call_id);
                self.acd_request(now, conn, req, AcdInput::AgentDeclined { agent, call });
            }
            CoreInput::Hangup { conn, req, call_id } => {
                if let Some(call) = self.unqueued_call_of(conn) {
                    self.end_unqueued(now, &call).await;
                    self.send(conn, ServerMessage::Ok { req });
                    self.send(
                        conn,
                        ServerMessage::CallEnded {
                            call_id: call.0,
                            reason: "abandoned".into(),
                        },
                    );
                    return;
                }
                self.hangup(now, conn, req, call_id)
            }
            CoreInput::Disposition {
                conn,
                req,
                disposition,
            } => self.disposition(now, conn, req, disposition).await,
            CoreInput::Monitor {
                conn,
                req,
                agent,
                mode,
            } => self.monitor(now, conn, req, agent, mode).await,
            CoreInput::Hold {
                conn,
                req,
                call_id,
                on,
            } => self.hold(now, conn, req, CallId(call_id), on).await,
            CoreInput::StopMonitor { conn, req } => {
                if self.monitors.contains_key(&conn) {
                    self.end_monitor(now, conn, "stopped").await;
                    self.send(conn, ServerMessage::Ok { req });
                } else {
                    self.error(
                        conn,
                        req,
                        ErrorCode::InvalidState,
                        "no monitoring session".into(),
                    );
                }
            }
            CoreInput::Closed { conn } => {
                if self.monitors.contains_key(&conn) {
                    self.end_monitor(now, conn, "supervisor_left").await;
                }
                if let Some(call) = self.unqueued_call_of(conn) {
                    self.end_unqueued(now, &call).await;
                }
                self.closed(now, conn)
            }
            CoreInput::Media(MediaEvent::Connected { peer }) => {
                if let Some(c) = self.connections.get_mut(&peer.0) {
                    c.media_connected = true;
                    let _ = c.outbox.send(ServerMessage::MediaConnected);
                }
                // A caller waiting in queue hears ringback once its media is up.
                if let Some(Party::Caller { call }) =
                    self.connections.get(&peer.0).map(|c| c.party.clone())
                {
                    if self.calls.get(&call).is_some_and(|c| !c.answered) {
                        self.media
                            .route(peer, Slot::Main, Source::Sound(Sound::Ringback));
                    }
                    self.enter_queue(now, &call);
                }
            }
            CoreInput::Media(MediaEvent::Disconnected { peer }) => {
                if let Some(c) = self.connections.get_mut(&peer.0) {
                    c.media_connected = false;
                }
            }
            CoreInput::Wallboard { reply } => {
                let _ = reply.send(self.wallboard(now).await.map(Box::new));
            }
            CoreInput::QueueStatus { reply } => {
                let _ = reply.send(self.queue_summaries(now));
            }
        }
    }

    fn logged_in(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        user: String,
        role: Role,
    ) {
        // A second login of the same user takes over: the older connection is told and dropped
        // from the ACD, so an agent whose network blipped is never stuck "logged in elsewhere".
        if let Some(old) = self.users.get(&user).copied()
            && old != conn
        {
            self.error(
                old,
                None,
                ErrorCode::InvalidState,
                "this user logged in from another connection".into(),
            );
            self.closed(now, old);
        }
        let Some(c) = self.connections.get_mut(&conn) else {
            return;
        };
        c.party = Party::User {
            name: user.clone(),
            role,
        };
        self.users.insert(user.clone(), conn);
        let queues = self
            .config
            .queues
            .iter()
            .map(|q| QueueId(q.name.clone()))
            .collect();
        self.send(
            conn,
            ServerMessage::LoggedIn {
                req,
                session: format!("s{:016x}", rand::random::<u64>()),
                user: user.clone(),
                role,
                config: Self::client_config(&self.config),
            },
        );
        if let Err(e) = self.acd.handle_input(
            now,
            AcdInput::AgentLoggedIn {
                agent: AgentId(user),
                queues,
            },
        ) {
            tracing::warn!("ACD refused login: {e}");
        }
        self.queues_dirty = true;
    }

    async fn dial(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        from: String,
        name: Option<String>,
        queue: Option<String>,
    ) {
        if !matches!(
            self.connections.get(&conn).map(|c| &c.party),
            Some(Party::Unknown)
        ) {
            self.error(
                conn,
                req,
                ErrorCode::InvalidState,
                "this connection is already logged in or in a call".into(),
            );
            return;
        }
        let from = from.trim().to_owned();
        if from.is_empty() || from.len() > 64 {
            self.error(
                conn,
                req,
                ErrorCode::BadRequest,
                "the caller number must be 1 to 64 characters".into(),
            );
            return;
        }
        let queue = queue.unwrap_or_else(|| self.config.default_queue().to_owned());
        if self.config.queue(&queue).is_none() {
            self.error(
                conn,
                req,
                ErrorCode::UnknownQueue,
                format!("no queue named {queue:?}"),
            );
            return;
        }
        let now_ms = self.clock.ms(now);
        let call = new_call_id(now_ms);
        let stored = async {
            self.store.upsert_customer(&from, name.as_deref()).await?;
            self.store
                .call_arrived(&store::NewCall {
                    id: call.0.clone(),
                    direction: store::Direction::Inbound,
                    queue: queue.clone(),
                    caller_number: from.clone(),
                    caller_name: name.clone(),
                    arrived_at: now_ms,
                })
                .await?;
            self.store.customer(&from).await
        }
        .await;
        let customer = match stored {
            Ok(c) => c,
            Err(e) => {
                self.error(
                    conn,
                    req,
                    ErrorCode::Internal,
                    format!("cannot store the call: {e}"),
                );
                return;
            }
        };
        tracing::info!(
            "call {call} from {} into {queue}",
            crate::protocol::redact_number(&from)
        );
        let caller = CallerInfo {
            number: from,
            name: name.or(customer.as_ref().and_then(|c| c.name.clone())),
            notes: customer.and_then(|c| c.notes).filter(|n| !n.is_empty()),
        };
        if let Some(c) = self.connections.get_mut(&conn) {
            c.party = Party::Caller { call: call.clone() };
        }
        self.calls.insert(
            call.clone(),
            LiveCall {
                caller_conn: conn,
                queue: QueueId(queue.clone()),
                caller,
                arrived: now,
                agent: None,
                answered: false,
                in_acd: false,
                held_since: None,
            },
        );
        let id = QueueId(queue.clone());
        let position = self.acd.queue_len(&id) as u32 + 1;
        self.send(
            conn,
            ServerMessage::CallQueued {
                req,
                call_id: call.0.clone(),
                queue,
                position,
            },
        );
    }

    /// Queues a dialed call in the ACD once its media is up.
    fn enter_queue(&mut self, now: Instant, call: &CallId) {
        let Some(live) = self.calls.get_mut(call) else {
            return;
        };
        if live.in_acd {
            return;
        }
        live.in_acd = true;
        let queue = live.queue.clone();
        let conn = live.caller_conn;
        if let Err(e) = self.acd.handle_input(
            now,
            AcdInput::CallerArrived {
                call: call.clone(),
                queue,
            },
        ) {
            self.error(conn, None, e.code(), e.to_string());
            self.calls.remove(call);
        }
        self.queues_dirty = true;
    }

    /// The call of a caller connection that has not reached the ACD yet.
    fn unqueued_call_of(&self, conn: ConnId) -> Option<CallId> {
        match self.connections.get(&conn).map(|c| &c.party) {
            Some(Party::Caller { call }) if self.calls.get(call).is_some_and(|c| !c.in_acd) => {
                Some(call.clone())
            }
            _ => None,
        }
    }

    /// A caller gone before its call reached the ACD: stored as abandoned here.
    async fn end_unqueued(&mut self, now: Instant, call: &CallId) {
        if self.calls.get(call).is_some_and(|c| !c.in_acd) {
            self.calls.remove(call);
            if let Err(e) = self
                .store
                .call_ended(&call.0, self.clock.ms(now), "abandoned")
                .await
            {
                tracing::error!("could not store an abandoned call: {e}");
            }
        }
    }

    fn hangup(&mut self, now: Instant, conn: ConnId, req: Option<String>, call_id: Option<String>) {
        let party = self.connections.get(&conn).map(|c| c.party.clone());
        let input = match party {
            Some(Party::Caller { call }) => AcdInput::CallerHungUp { call },
            Some(Party::User { name, .. }) => {
                let call = match call_id {
                    Some(id) => CallId(id),
                    None => match self.acd.agent_state(&AgentId(name.clone())) {
                        Some(AgentState::OnCall { call, .. }) => call.clone(),
                        _ => {
                            self.error(
                                conn,
                                req,
                                ErrorCode::InvalidState,
                                "no call to hang up".into(),
                            );
                            return;
                        }
                    },
                };
                AcdInput::AgentHungUp {
                    agent: AgentId(name),
                    call,
                }
            }
            _ => {
                self.error(
                    conn,
                    req,
                    ErrorCode::InvalidState,
                    "no call to hang up".into(),
                );
                return;
            }
        };
        self.acd_request(now, conn, req, input);
    }

    async fn disposition(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        form: DispositionForm,
    ) {
        let Some(agent) = self.agent_of(conn, &req) else {
            return;
        };
        if !self.config.disposition_codes.contains(&form.code) {
            self.error(
                conn,
                req,
                ErrorCode::BadRequest,
                format!("unknown disposition code {:?}", form.code),
            );
            return;
        }
        if form.resolution == Resolution::FollowUp && form.follow_up_at_ms.is_none() {
            self.error(
                conn,
                req,
                ErrorCode::BadRequest,
                "a follow-up needs a follow-up time".into(),
            );
            return;
        }
        if form.notes.len() > 16 * 1024 {
            self.error(
                conn,
                req,
                ErrorCode::BadRequest,
                "notes are limited to 16 KiB".into(),
            );
            return;
        }
        let saved = self
            .store
            .save_disposition(&store::Disposition {
                call_id: form.call_id.clone(),
                agent: agent.0.clone(),
                code: form.code.clone(),
                resolution: match form.resolution {
                    Resolution::Resolved => store::Resolution::Resolved,
                    Resolution::Escalated => store::Resolution::Escalated,
                    Resolution::FollowUp => store::Resolution::FollowUp,
                },
                notes: form.notes.clone(),
                follow_up_at: form.follow_up_at_ms,
                submitted_at: self.clock.ms(now),
                request_id: form.request_id.clone(),
            })
            .await;
        if let Err(e) = saved {
            let code = match e {
                store::StoreError::UnknownCall(_) => ErrorCode::UnknownCall,
                store::StoreError::Invalid(_) => ErrorCode::BadRequest,
                _ => ErrorCode::Internal,
            };
            self.error(conn, req, code, format!("disposition not saved: {e}"));
            return;
        }
        self.send(
            conn,
            ServerMessage::DispositionSaved {
                req,
                call_id: form.call_id.clone(),
                request_id: form.request_id,
            },
        );
        // Ends after-call work if this is the call in wrap-up; a late or repeated submit is
        // stored (idempotently) and changes no state.
        if let Some(AgentState::AfterCallWork { call, .. }) = self.acd.agent_state(&agent)
            && call.0 == form.call_id
        {
            let call = call.clone();
            let _ = self
                .acd
                .handle_input(now, AcdInput::DispositionSubmitted { agent, call });
        }
    }

    /// Hold: the caller hears hold music and the agent nothing; resume restores the bridge.
    /// Hold time is added to the call record when the hold ends (or the call does).
    async fn hold(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        call: CallId,
        on: bool,
    ) {
        let Some(agent) = self.agent_of(conn, &req) else {
            return;
        };
        let on_this_call = matches!(
            self.acd.agent_state(&agent),
            Some(AgentState::OnCall { call: c, .. }) if *c == call
        );
        let Some(live) = self.calls.get_mut(&call).filter(|_| on_this_call) else {
            self.error(
                conn,
                req,
                ErrorCode::InvalidState,
                format!("{call} is not your current call"),
            );
            return;
        };
        let caller = PeerId(live.caller_conn);
        let agent_peer = PeerId(conn);
        match (on, live.held_since) {
            (true, None) => {
                live.held_since = Some(now);
                self.media
                    .route(caller, Slot::Main, Source::Sound(Sound::HoldMusic));
                self.media.route(agent_peer, Slot::Main, Source::Silence);
            }
            (false, Some(since)) => {
                live.held_since = None;
                self.media
                    .route(caller, Slot::Main, Source::Peer(agent_peer));
                self.media
                    .route(agent_peer, Slot::Main, Source::Peer(caller));
                let held_ms = now.saturating_duration_since(since).as_millis() as i64;
                if let Err(e) = self.store.add_hold_ms(&call.0, held_ms).await {
                    tracing::error!("could not store hold time: {e}");
                }
            }
            // Already in the asked state: nothing changes.
            _ => {}
        }
        self.send(conn, ServerMessage::Ok { req });
        self.send(
            conn,
            ServerMessage::CallHeld {
                call_id: call.0,
                on,
            },
        );
    }

    /// Starts monitoring an agent's current call, or switches the mode of the running session.
    async fn monitor(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        agent_name: String,
        mode: MonitorMode,
    ) {
        let supervisor = match self
            .connections
            .get(&conn)
            .map(|c| (&c.party, c.media_connected))
        {
            Some((
                Party::User {
                    name,
                    role: Role::Supervisor,
                },
                true,
            )) => name.clone(),
            Some((
                Party::User {
                    role: Role::Supervisor,
                    ..
                },
                false,
            )) => {
                self.error(
                    conn,
                    req,
                    ErrorCode::InvalidState,
                    "open the media connection first".into(),
                );
                return;
            }
            _ => {
                self.error(
                    conn,
                    req,
                    ErrorCode::Forbidden,
                    "only supervisors may monitor calls".into(),
                );
                return;
            }
        };
        let agent = AgentId(agent_name.clone());
        let Some(AgentState::OnCall { call, .. }) = self.acd.agent_state(&agent).cloned() else {
            self.error(
                conn,
                req,
                ErrorCode::InvalidState,
                format!("agent {agent_name} is not on a call"),
            );
            return;
        };
        let (Some(agent_conn), Some(caller_conn)) = (
            self.users.get(&agent_name).copied(),
            self.calls.get(&call).map(|c| c.caller_conn),
        ) else {
            self.error(
                conn,
                req,
                ErrorCode::InvalidState,
                format!("agent {agent_name} is not on a call"),
            );
            return;
        };
        let at = self.clock.ms(now);
        if let Some(existing) = self.monitors.get(&conn).cloned() {
            if existing.call == call {
                // Same call: a mode switch, no re-setup, no gap.
                if let Err(e) = self
                    .store
                    .monitor_mode_changed(&existing.session_id, store_mode(mode), at)
                    .await
                {
                    self.error(conn, req, ErrorCode::Internal, format!("not recorded: {e}"));
                    return;
                }
                let session = MonitorSession { mode, ..existing };
                self.route_monitor(&session);
                self.announce_monitor(&session, true);
                self.send(conn, started_message(req, &session));
                self.monitors.insert(conn, session);
                return;
            }
            self.end_monitor(now, conn, "stopped").await;
        }
        let session = MonitorSession {
            session_id: format!("m{:016x}", rand::random::<u64>()),
            supervisor,
            supervisor_conn: conn,
            agent,
            agent_conn,
            caller_conn,
            call,
            mode,
        };
        // Audit first: a session that is not recorded does not start.
        if let Err(e) = self
            .store
            .monitor_started(
                &session.session_id,
                &session.supervisor,
                &session.agent.0,
                &session.call.0,
                store_mode(mode),
                at,
            )
            .await
        {
            self.error(
                conn,
                req,
                ErrorCode::Internal,
                format!("monitoring not recorded: {e}"),
            );
            return;
        }
        tracing::info!(
            "{} monitors {} ({mode:?})",
            session.supervisor,
            session.agent
        );
        self.route_monitor(&session);
        self.announce_monitor(&session, true);
        self.send(conn, started_message(req, &session));
        self.monitors.insert(conn, session);
    }

    /// Routes for a monitoring mode. The supervisor always hears the caller on `main` and the
    /// agent on `aux`; whisper puts the supervisor on the agent's `aux`, barge on both `aux`.
    fn route_monitor(&self, s: &MonitorSession) {
        let sup = PeerId(s.supervisor_conn);
        let agent = PeerId(s.agent_conn);
        let caller = PeerId(s.caller_conn);
        self.media.route(sup, Slot::Main, Source::Peer(caller));
        self.media.route(sup, Slot::Aux, Source::Peer(agent));
        let (to_agent, to_caller) = match s.mode {
            MonitorMode::Listen => (Source::Silence, Source::Silence),
            MonitorMode::Whisper => (Source::Peer(sup), Source::Silence),
            MonitorMode::Barge => (Source::Peer(sup), Source::Peer(sup)),
        };
        self.media.route(agent, Slot::Aux, to_agent);
        self.media.route(caller, Slot::Aux, to_caller);
    }

    fn announce_monitor(&self, s: &MonitorSession, active: bool) {
        if self.config.announce_monitoring {
            self.send(
                s.agent_conn,
                ServerMessage::Monitored {
                    active,
                    mode: active.then_some(s.mode),
                },
            );
        }
    }

    /// Ends a supervisor's session: routes back to silence, audit row, message.
    async fn end_monitor(&mut self, now: Instant, conn: ConnId, reason: &str) {
        let Some(s) = self.monitors.remove(&conn) else {
            return;
        };
        let sup = PeerId(conn);
        self.media.route(sup, Slot::Main, Source::Silence);
        self.media.route(sup, Slot::Aux, Source::Silence);
        self.media
            .route(PeerId(s.agent_conn), Slot::Aux, Source::Silence);
        self.media
            .route(PeerId(s.caller_conn), Slot::Aux, Source::Silence);
        if let Err(e) = self
            .store
            .monitor_ended(&s.session_id, self.clock.ms(now))
            .await
        {
            tracing::error!("could not record the end of monitoring: {e}");
        }
        self.announce_monitor(&s, false);
        self.send(
            conn,
            ServerMessage::MonitorEnded {
                session_id: s.session_id,
                reason: reason.to_owned(),
            },
        );
    }

    fn closed(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.connections.remove(&conn) else {
            return;
        };
        self.media.remove_peer(PeerId(conn));
        match c.party {
            Party::User { name, .. } => {
                if self.users.get(&name) == Some(&conn) {
                    self.users.remove(&name);
                    let _ = self.acd.handle_input(
                        now,
                        AcdInput::AgentLoggedOut {
                            agent: AgentId(name),
                        },
                    );
                }
            }
            Party::Caller { call } => {
                if self.calls.contains_key(&call) {
                    let _ = self.acd.handle_input(now, AcdInput::CallerHungUp { call });
                }
            }
            Party::Unknown => {}
        }
        self.queues_dirty = true;
    }

    /// Feeds a client's request to the ACD; a refusal goes back as an error, success as `ok`.
    fn acd_request(&mut self, now: Instant, conn: ConnId, req: Option<String>, input: AcdInput) {
        match self.acd.handle_input(now, input) {
            Ok(()) => self.send(conn, ServerMessage::Ok { req }),
            Err(e) => self.error(conn, req, e.code(), e.to_string()),
        }
    }

    /// The agent behind a connection, or an error to the client.
    fn agent_of(&mut self, conn: ConnId, req: &Option<String>) -> Option<AgentId> {
        match self.connections.get(&conn).map(|c| &c.party) {
            Some(Party::User { name, .. }) => Some(AgentId(name.clone())),
            Some(Party::Caller { .. }) => {
                self.error(
                    conn,
                    req.clone(),
                    ErrorCode::Forbidden,
                    "callers may not do that".into(),
                );
                None
            }
            _ => {
                self.error(
                    conn,
                    req.clone(),
                    ErrorCode::Unauthenticated,
                    "log in first".into(),
                );
                None
            }
        }
    }

    /// Applies every ACD decision: store first (committed), then tell the parties, then route.
    async fn drain_acd(&mut self) {
        while let Some(output) = self.acd.poll_output() {
            if let Err(e) = self.apply(output).await {
                tracing::error!("could not store an ACD event: {e}");
            }
        }
    }

    async fn apply(&mut self, output: AcdOutput) -> Result<(), store::StoreError> {
        let now = Instant::now();
        let now_ms = self.clock.ms(now);
        match output {
            AcdOutput::CallTransferred { .. } | AcdOutput::ConsultOffered { .. } | AcdOutput::ConsultConnected { .. } | AcdOutput::ConsultEnded { .. } | AcdOutput::CallHandedOver { .. } | AcdOutput::CallbackKept { .. } => {}
            AcdOutput::AgentStateChanged { agent, state } => {
                let name = state_name(&state);
                let reason = match &state {
                    AgentState::NotReady { reason, .. } => Some(reason.clone()),
                    _ => None,
                };
                self.store
                    .log_agent_state(&agent.0, state_label(name), reason.as_deref(), now_ms)
                    .await?;
                let (call_id, deadline_ms, since) = match &state {
                    AgentState::Offered { call, since } | AgentState::OnCall { call, since } => {
                        (Some(call.0.clone()), None, *since)
                    }
                    AgentState::AfterCallWork {
                        call,
                        since,
                        deadline,
                    } => (Some(call.0.clone()), Some(self.clock.ms(*deadline)), *since),
                    AgentState::NotReady { since, .. } | AgentState::Available { since } => {
                        (None, None, *since)
                    }
                    AgentState::LoggedOut => (None, None, now),
                };
                if let Some(conn) = self.users.get(&agent.0).copied() {
                    self.send(
                        conn,
                        ServerMessage::AgentState {
                            state: name,
                            reason,
                            since_ms: self.clock.ms(since),
                            call_id,
                            deadline_ms,
                        },
                    );
                }
                self.queues_dirty = true;
            }
            AcdOutput::CallQueued {
                call,
                queue,
                position,
            } => {
                if let Some(live) = self.calls.get(&call) {
                    let conn = live.caller_conn;
                    self.send(
                        conn,
                        ServerMessage::CallQueued {
                            req: None,
                            call_id: call.0.clone(),
                            queue: queue.0,
                            position: position as u32,
                        },
                    );
                }
                self.queues_dirty = true;
            }
            AcdOutput::OfferCall { call, agent } => {
                self.store.offer_started(&call.0, &agent.0, now_ms).await?;
                let Some(live) = self.calls.get_mut(&call) else {
                    return Ok(());
                };
                live.agent = Some(agent.clone());
                let caller = live.caller.clone();
                let queue = live.queue.0.clone();
                let waited_ms = now.saturating_duration_since(live.arrived).as_millis() as u64;
                let history = self
                    .store
                    .caller_history(&caller.number, OFFER_HISTORY_LIMIT)
                    .await?
                    .into_iter()
                    .filter(|h| h.call_id != call.0)
                    .map(history_entry)
                    .collect();
                if let Some(conn) = self.users.get(&agent.0).copied() {
                    self.send(
                        conn,
                        ServerMessage::CallOffered {
                            call_id: call.0.clone(),
                            queue,
                            caller,
                            waited_ms,
                            ring_timeout_ms: self.config.ring_no_answer_secs * 1000,
                            history,
                        },
                    );
                }
            }
            AcdOutput::OfferWithdrawn { call, agent, why } => {
                let outcome = match why {
                    OfferEnd::RingNoAnswer => "ring_no_answer",
                    OfferEnd::Declined => "declined",
                    OfferEnd::CallerHungUp => "caller_hung_up",
                    OfferEnd::AgentLoggedOut => "agent_logged_out",
                };
                self.store
                    .offer_ended(&call.0, &agent.0, now_ms, outcome)
                    .await?;
                if let Some(live) = self.calls.get_mut(&call) {
                    live.agent = None;
                }
                if let Some(conn) = self.users.get(&agent.0).copied() {
                    self.send(
                        conn,
                        ServerMessage::OfferWithdrawn {
                            call_id: call.0,
                            reason: outcome.to_owned(),
                        },
                    );
                }
                self.queues_dirty = true;
            }
            AcdOutput::CallConnected { call, agent, via: _ } => {
                self.store
                    .offer_ended(&call.0, &agent.0, now_ms, "answered")
                    .await?;
                self.store.call_answered(&call.0, &agent.0, now_ms).await?;
                let Some(live) = self.calls.get_mut(&call) else {
                    return Ok(());
                };
                live.answered = true;
                live.agent = Some(agent.clone());
                let caller_conn = live.caller_conn;
                let number = live.caller.number.clone();
                if let Some(agent_conn) = self.users.get(&agent.0).copied() {
                    // The bridge: two route changes on connections that are already up.
                    self.media.route(
                        PeerId(caller_conn),
                        Slot::Main,
                        Source::Peer(PeerId(agent_conn)),
                    );
                    self.media.route(
                        PeerId(agent_conn),
                        Slot::Main,
                        Source::Peer(PeerId(caller_conn)),
                    );
                    self.send(
                        agent_conn,
                        ServerMessage::CallConnected {
                            call_id: call.0.clone(),
                            peer: number,
                        },
                    );
                }
                self.send(
                    caller_conn,
                    ServerMessage::CallConnected {
                        call_id: call.0,
                        peer: agent.0,
                    },
                );
                self.queues_dirty = true;
            }
            AcdOutput::CallEnded {
                call,
                agent,
                reason,
            } => {
                let watching: Vec<ConnId> = self
                    .monitors
                    .iter()
                    .filter(|(_, s)| s.call == call)
                    .map(|(c, _)| *c)
                    .collect();
                for sup in watching {
                    self.end_monitor(now, sup, "call_ended").await;
                }
                let reason = end_reason_label(reason);
                if let Some(since) = self.calls.get(&call).and_then(|c| c.held_since) {
                    let held_ms = now.saturating_duration_since(since).as_millis() as i64;
                    self.store.add_hold_ms(&call.0, held_ms).await?;
                }
                self.store.call_ended(&call.0, now_ms, reason).await?;
                if let Some(live) = self.calls.remove(&call) {
                    self.media
                        .route(PeerId(live.caller_conn), Slot::Main, Source::Silence);
                    self.send(
                        live.caller_conn,
                        ServerMessage::CallEnded {
                            call_id: call.0.clone(),
                            reason: reason.to_owned(),
                        },
                    );
                }
                if let Some(agent) = agent
                    && let Some(conn) = self.users.get(&agent.0).copied()
                {
                    self.media.route(PeerId(conn), Slot::Main, Source::Silence);
                    self.send(
                        conn,
                        ServerMessage::CallEnded {
                            call_id: call.0,
                            reason: reason.to_owned(),
                        },
                    );
                }
                self.queues_dirty = true;
            }
        }
        Ok(())
    }

    /// Today's figures (UTC day) from the store plus the live state of the ACD.
    async fn wallboard(&self, now: Instant) -> Option<crate::metrics::Wallboard> {
        let now_ms = self.clock.ms(now);
        let day_start_ms = now_ms - now_ms.rem_euclid(86_400_000);
        let calls = match self.store.calls_between(day_start_ms, now_ms + 1).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("wallboard: cannot read today's calls: {e}");
                return None;
            }
        };
        let mut live = crate::metrics::LiveSnapshot {
            queues: self
                .queue_summaries(now)
                .into_iter()
                .map(|q| crate::metrics::LiveQueue {
                    queue: q.queue,
                    waiting: q.waiting,
                    longest_wait_ms: q.longest_wait_ms,
                })
                .collect(),
            agents: self
                .acd
                .agents()
                .filter(|(_, s)| !matches!(s, AgentState::LoggedOut))
                .map(|(agent, state)| {
                    let call = match state {
                        AgentState::Offered { call, .. }
                        | AgentState::OnCall { call, .. }
                        | AgentState::AfterCallWork { call, .. } => Some(call.clone()),
                        _ => None,
                    };
                    let since = match state {
                        AgentState::NotReady { since, .. }
                        | AgentState::Available { since }
                        | AgentState::Offered { since, .. }
                        | AgentState::OnCall { since, .. }
                        | AgentState::AfterCallWork { since, .. } => *since,
                        AgentState::LoggedOut => now,
                    };
                    crate::metrics::LiveAgent {
                        name: agent.0.clone(),
                        state: state_label(state_name(state)).to_owned(),
                        reason: match state {
                            AgentState::NotReady { reason, .. } => Some(reason.clone()),
                            _ => None,
                        },
                        since_ms: self.clock.ms(since),
                        caller: call
                            .as_ref()
                            .and_then(|c| self.calls.get(c))
                            .map(|c| c.caller.number.clone()),
                        call_started_ms: match state {
                            AgentState::OnCall { since, .. } => Some(self.clock.ms(*since)),
                            _ => None,
                        },
                        call_id: call.map(|c| c.0),
                        voice_quality: None,
                    }
                })
                .collect(),
        };
        self.add_voice_quality(&mut live.agents).await;
        Some(crate::metrics::wallboard(
            &calls,
            &live,
            &self.config.queues,
            day_start_ms,
            now_ms,
        ))
    }

    /// Fills in the live loss and jitter of both legs of every connected call, from the media
    /// bridge (one request for all of them).
    async fn add_voice_quality(&self, agents: &mut [crate::metrics::LiveAgent]) {
        // (index in `agents`, the agent's peer, the caller's peer) of each connected call.
        let legs: Vec<(usize, PeerId, PeerId)> = agents
            .iter()
            .enumerate()
            .filter_map(|(i, agent)| {
                let call = self.calls.get(&CallId(agent.call_id.clone()?))?;
                if !call.answered {
                    return None;
                }
                let agent_conn = *self.users.get(&agent.name)?;
                Some((i, PeerId(agent_conn), PeerId(call.caller_conn)))
            })
            .collect();
        if legs.is_empty() {
            return;
        }
        let peers = legs
            .iter()
            .flat_map(|&(_, agent, caller)| [caller, agent])
            .collect();
        let figures = match self.media.quality(peers).await {
            Ok(figures) => figures,
            Err(e) => {
                tracing::warn!("wallboard: no voice quality from the media bridge: {e}");
                return;
            }
        };
        for (&(i, _, _), pair) in legs.iter().zip(figures.chunks_exact(2)) {
            agents[i].voice_quality = crate::metrics::VoiceQuality::of(pair[0], pair[1]);
        }
    }

    /// Once a second: the wallboard, computed once, to every logged-in supervisor.
    async fn push_wallboard(&mut self) {
        let supervisors: Vec<ConnId> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                matches!(
                    c.party,
                    Party::User {
                        role: Role::Supervisor,
                        ..
                    }
                )
            })
            .map(|(id, _)| *id)
            .collect();
        if supervisors.is_empty() {
            return;
        }
        let Some(board) = self.wallboard(Instant::now()).await else {
            return;
        };
        let board = Box::new(board);
        for conn in supervisors {
            self.send(
                conn,
                ServerMessage::Wallboard {
                    board: board.clone(),
                },
            );
        }
    }

    fn queue_summaries(&self, now: Instant) -> Vec<QueueSummary> {
        self.config
            .queues
            .iter()
            .map(|q| {
                let id = QueueId(q.name.clone());
                QueueSummary {
                    queue: q.name.clone(),
                    waiting: self.acd.queue_len(&id) as u32,
                    longest_wait_ms: self
                        .acd
                        .oldest_wait(&id, now)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0),
                }
            })
            .collect()
    }

    fn push_queue_status(&mut self) {
        let queues = self.queue_summaries(Instant::now());
        let conns: Vec<ConnId> = self.users.values().copied().collect();
        for conn in conns {
            self.send(
                conn,
                ServerMessage::QueueStatus {
                    queues: queues.clone(),
                },
            );
        }
    }

    fn send(&self, conn: ConnId, message: ServerMessage) {
        if let Some(c) = self.connections.get(&conn) {
            let _ = c.outbox.send(message);
        }
    }

    fn error(&self, conn: ConnId, req: Option<String>, code: ErrorCode, message: String) {
        self.send(conn, ServerMessage::Error { req, code, message });
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn state_name(state: &AgentState) -> AgentStateName {
    match state {
        AgentState::LoggedOut => AgentStateName::LoggedOut,
        AgentState::NotReady { .. } => AgentStateName::NotReady,
        AgentState::Available { .. } => AgentStateName::Available,
        AgentState::Offered { .. } => AgentStateName::Offered,
        AgentState::OnCall { .. } => AgentStateName::OnCall,
        AgentState::AfterCallWork { .. } => AgentStateName::AfterCallWork,
    }
}

fn state_label(name: AgentStateName) -> &'static str {
    match name {
        AgentStateName::LoggedOut => "logged_out",
        AgentStateName::NotReady => "not_ready",
        AgentStateName::Available => "available",
        AgentStateName::Offered => "offered",
        AgentStateName::OnCall => "on_call",
        AgentStateName::AfterCallWork => "after_call_work",
    }
}

fn end_reason_label(reason: CallEndReason) -> &'static str {
    match reason {
        CallEndReason::CallerHungUp => "caller_hung_up",
        CallEndReason::AgentHungUp => "agent_hung_up",
        CallEndReason::Abandoned => "abandoned",
        CallEndReason::AgentDisconnected => "agent_disconnected",
    }
}

pub(crate) fn history_entry(h: store::HistoryEntry) -> crate::protocol::HistoryEntry {
    crate::protocol::HistoryEntry {
        call_id: h.call_id,
        at_ms: h.arrived_at,
        queue: h.queue,
        agent: h.agent,
        end_reason: h.end_reason,
        talk_ms: h.talk_ms,
        csat: h.csat,
        disposition: h.disposition.map(|d| crate::protocol::DispositionInfo {
            code: d.code,
            resolution: match d.resolution {
                store::Resolution::Resolved => Resolution::Resolved,
                store::Resolution::Escalated => Resolution::Escalated,
                store::Resolution::FollowUp => Resolution::FollowUp,
            },
            notes: d.notes,
            follow_up_at_ms: d.follow_up_at,
            agent: d.agent,
        }),
    }
}

impl AcdError {
    /// The protocol error code for an ACD refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            AcdError::UnknownQueue(_) => ErrorCode::UnknownQueue,
            AcdError::UnknownCall(_) => ErrorCode::UnknownCall,
            _ => ErrorCode::InvalidState,
        }
    }
}

/// Resolves once shutdown is signalled (or its sender is gone). Owns no borrow of the watch
/// value, so it can sit in a `select!` across awaits.
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn store_mode(mode: MonitorMode) -> store::MonitorMode {
    match mode {
        MonitorMode::Listen => store::MonitorMode::Listen,
        MonitorMode::Whisper => store::MonitorMode::Whisper,
        MonitorMode::Barge => store::MonitorMode::Barge,
    }
}

fn started_message(req: Option<String>, s: &MonitorSession) -> ServerMessage {
    ServerMessage::MonitorStarted {
        req,
        session_id: s.session_id.clone(),
        agent: s.agent.0.clone(),
        call_id: s.call.0.clone(),
        mode: s.mode,
    }
}
