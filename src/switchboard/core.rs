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
//!                  menu / survey deadline                       => ivr Timeout,
//!                  1 s tick                                     => queue status push }
//!        drain acd.poll_output(): each output is stored (committed) first, then announced }
//! ```
//!
//! Transfers, consults, escalations and callbacks are decided by the ACD (`acd.rs`); this
//! driver carries them out: media routes (hold music while a caller waits again or a
//! colleague is consulted, the conference's third voice on every `aux`), one `call_legs` row
//! per party and stretch of the call, the notes that travel with a transferred call, and the
//! customer endpoints (`register`) it rings for outbound calls and callbacks. Due callbacks are
//! read from the store on the 1 s tick.
//!
//! Callers' keys (menu, survey) and agents' keys (forwarded to the caller as telephone events)
//! arrive from the media task as `MediaEvent::Digit`; the menus and surveys themselves are the
//! sans-IO machines of `crate::ivr`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::acd::{
    Acd, AcdConfig, AcdError, AcdInput, AcdOutput, AgentId, AgentState, CallEndReason, CallId,
    CallPhase, ConsultEnd, ConsultKind, OfferEnd, QueueId, Via,
};
use crate::config::SwitchboardConfig;
use crate::ivr::{Menu, MenuSpec, Survey, SurveyResult};
use crate::protocol::{
    AgentStateName, CallbackInfo, CallerInfo, ClientConfig, Colleague, ConsultPhase, ErrorCode,
    MonitorMode, OfferContext, QueueSummary, RequestedState, Resolution, Role, ServerMessage,
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
        /// The number dialed (selects a queue-entry menu).
        to: Option<String>,
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
    /// The store now keeps `notes` about the customer at `number` (the HTTP side stored
    /// them and answered): calls in progress from that number carry them from now on.
    CustomerNotes {
        number: String,
        notes: Option<String>,
    },
    Hold {
        conn: ConnId,
        req: Option<String>,
        call_id: String,
        on: bool,
    },
    /// Blind transfer to a queue or an agent (exactly one).
    Transfer {
        conn: ConnId,
        req: Option<String>,
        call_id: String,
        queue: Option<String>,
        agent: Option<String>,
        notes: Option<String>,
    },
    /// Warm transfer consult (`Transfer`) or escalation (`Conference`).
    Consult {
        conn: ConnId,
        req: Option<String>,
        call_id: String,
        target: String,
        kind: ConsultKind,
        notes: Option<String>,
    },
    CompleteTransfer {
        conn: ConnId,
        req: Option<String>,
        call_id: String,
    },
    CancelConsult {
        conn: ConnId,
        req: Option<String>,
        call_id: String,
    },
    Callbacks {
        conn: ConnId,
        req: Option<String>,
    },
    DialCallback {
        conn: ConnId,
        req: Option<String>,
        callback_id: String,
    },
    DialOut {
        conn: ConnId,
        req: Option<String>,
        number: String,
        queue: Option<String>,
    },
    /// A customer endpoint registers its number.
    Register {
        conn: ConnId,
        req: Option<String>,
        number: String,
        name: Option<String>,
    },
    /// A waiting caller asks to be called back.
    RequestCallback {
        conn: ConnId,
        req: Option<String>,
    },
    /// The agent's phone muted or unmuted its microphone.
    Mute {
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
    User {
        name: String,
        role: Role,
    },
    Caller {
        call: CallId,
    },
    /// A customer endpoint the switchboard can ring; `call` while rung or talking.
    Endpoint {
        number: String,
        call: Option<CallId>,
    },
}

struct Connection {
    outbox: mpsc::UnboundedSender<ServerMessage>,
    party: Party,
    media_connected: bool,
}

/// A call the switchboard is handling right now.
struct LiveCall {
    /// The customer's connection: the caller who dialed, or the endpoint rung for an outbound
    /// call or callback. `None` before the endpoint is rung, and after a waiting caller asked
    /// to be called back (it may hang up; its place is kept).
    caller_conn: Option<ConnId>,
    queue: QueueId,
    caller: CallerInfo,
    arrived: Instant,
    /// The agent offered or talking, if any.
    agent: Option<AgentId>,
    answered: bool,
    /// Fed to the ACD: only once the caller's media is up, so an agent never answers a line
    /// that cannot carry voice yet (and answer -> first audio is one frame, not an ICE setup).
    in_acd: bool,
    /// Since when the caller is on hold (or hears hold music during a consult), if they are.
    held_since: Option<Instant>,
    /// The customer must be rung when an agent takes the call (outbound, callbacks).
    ring_customer: bool,
    /// The rung endpoint answered (outbound calls); callers who dialed count as answered.
    customer_answered: bool,
    /// Since when the customer's endpoint rings, for its ring-no-answer limit.
    ringing_since: Option<Instant>,
    /// The stored callback this call carries out.
    callback_id: Option<String>,
    /// Why the call comes to its next agent and what travels with it (a transfer's notes, a
    /// callback's wrap-up notes); shown in the offer and stored on the next leg.
    handover: Option<Handover>,
    /// Open legs in the store: party (agent name, or the customer's number) -> leg id.
    legs: HashMap<String, String>,
    /// Why the customer's leg begins when a rung endpoint answers (`callback`, `outbound`).
    customer_leg_why: &'static str,
    /// Since when the agent's microphone is muted, if it is.
    muted_since: Option<Instant>,
    /// The queue-entry menu: `Waiting` until the caller's media is up, then `Running`.
    menu: MenuStage,
    /// Whether the waiting caller has heard that it may press [`CALLBACK_KEY`].
    callback_prompt: CallbackPrompt,
}

/// Reception reports go to clients every this many status ticks (seconds).
const RECEPTION_REPORT_EVERY: u64 = 2;

/// The key a waiting caller presses to be called back instead of waiting, once it has waited
/// `callback_offer_after_secs` (`sounds/callback-prompt.wav` says "press star").
pub const CALLBACK_KEY: char = '*';

/// Where a waiting caller stands with the callback prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallbackPrompt {
    NotYet,
    /// Playing until then; ringback resumes after it.
    Playing {
        until: Instant,
    },
    Played,
}

#[derive(Debug, Clone)]
struct Handover {
    kind: &'static str,
    from: Option<String>,
    notes: Option<String>,
}

/// Where a call stands with its queue-entry menu.
#[derive(Debug)]
enum MenuStage {
    None,
    Waiting(Arc<MenuSpec>),
    Running(Menu),
}

/// A caller rating a call after the agent hung up (the call itself has ended).
struct LiveSurvey {
    call: CallId,
    survey: Survey,
    /// The end reason the caller is told once the survey is over.
    reason: &'static str,
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
    /// Registered customer endpoints: number -> connection.
    endpoints: HashMap<String, ConnId>,
    /// When the earliest pending callback is due (epoch ms), as last read from the store;
    /// `Some(i64::MIN)`: read it on the next tick.
    next_callback_ms: Option<i64>,
    /// Configured menus by name, with their prompt lengths.
    menus: HashMap<String, Arc<MenuSpec>>,
    /// The sound each menu's prompt plays.
    menu_prompts: HashMap<String, Sound>,
    /// How long the survey prompt plays.
    survey_prompt_len: Duration,
    /// How long the "press star to be called back" prompt plays.
    callback_prompt_len: Duration,
    /// Status ticks so far, for what runs every few of them.
    status_ticks: u64,
    /// The colleague list as last pushed, and the connections that have had that version.
    colleagues_sent: Vec<Colleague>,
    colleagues_told: std::collections::HashSet<ConnId>,
    /// Post-call surveys by the caller's connection.
    surveys: HashMap<ConnId, LiveSurvey>,
}

/// How long a sound plays.
fn sound_len(sound: Sound) -> Duration {
    Duration::from_secs_f64(sound.samples().len() as f64 / f64::from(crate::wav::RATE_HZ))
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
            callback_offer_after: Duration::from_secs(config.callback_offer_after_secs),
        });
        let mut menus = HashMap::new();
        let mut menu_prompts = HashMap::new();
        for m in &config.menus {
            // Validated with the config: the prompt names a sound.
            let prompt = Sound::from_name(&m.prompt).unwrap_or(Sound::MenuPrompt);
            let spec = MenuSpec {
                name: m.name.clone(),
                options: m
                    .options
                    .iter()
                    .filter_map(|(k, q)| Some((k.chars().next()?, q.clone())))
                    .collect(),
                default_queue: m.default_queue.clone(),
                prompt_len: sound_len(prompt),
                timeout: Duration::from_secs(m.timeout_secs),
            };
            menus.insert(m.name.clone(), Arc::new(spec));
            menu_prompts.insert(m.name.clone(), prompt);
        }
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
            endpoints: HashMap::new(),
            next_callback_ms: Some(i64::MIN),
            menus,
            menu_prompts,
            survey_prompt_len: sound_len(Sound::SurveyPrompt),
            callback_prompt_len: sound_len(Sound::CallbackPrompt),
            status_ticks: 0,
            colleagues_sent: Vec::new(),
            colleagues_told: std::collections::HashSet::new(),
            surveys: HashMap::new(),
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
            let ivr_deadline = self.ivr_timeout();
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
                _ = sleep_until_opt(ivr_deadline) => {
                    self.handle_ivr_timeouts(Instant::now()).await;
                }
                _ = status_tick.tick() => {
                    if self.calls.values().any(|c| c.agent.is_none()) {
                        self.queues_dirty = true;
                    }
                    self.push_wallboard().await;
                    self.send_reception_reports().await;
                    self.announce_callback_option(Instant::now());
                    self.start_due_callbacks().await;
                    self.give_up_unanswered_rings();
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
                to,
            } => self.dial(now, conn, req, from, name, queue, to).await,
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
            CoreInput::Answer { conn, req, call_id }
                if matches!(
                    self.connections.get(&conn).map(|c| &c.party),
                    Some(Party::Endpoint { .. })
                ) =>
            {
                self.endpoint_answered(now, conn, req, CallId(call_id))
                    .await
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
                if self.surveys.contains_key(&conn) {
                    self.send(conn, ServerMessage::Ok { req });
                    self.end_survey(conn, SurveyResult::NoAnswer, true).await;
                    return;
                }
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
            CoreInput::Transfer {
                conn,
                req,
                call_id,
                queue,
                agent: target,
                notes,
            } => {
                let Some(agent) = self.agent_of(conn, &req) else {
                    return;
                };
                if !self.notes_fit(conn, &req, &notes) {
                    return;
                }
                let call = CallId(call_id);
                let input = match (queue, target) {
                    (Some(queue), None) => AcdInput::AgentTransferredToQueue {
                        agent: agent.clone(),
                        call: call.clone(),
                        queue: QueueId(queue),
                    },
                    (None, Some(target)) => AcdInput::AgentTransferredToAgent {
                        agent: agent.clone(),
                        call: call.clone(),
                        target: AgentId(target),
                    },
                    _ => {
                        self.error(
                            conn,
                            req,
                            ErrorCode::BadRequest,
                            "name exactly one of queue and agent".into(),
                        );
                        return;
                    }
                };
                let handover = Handover {
                    kind: "blind_transfer",
                    from: Some(agent.0),
                    notes,
                };
                self.acd_request_with(now, conn, req, input, &call, handover);
            }
            CoreInput::Consult {
                conn,
                req,
                call_id,
                target,
                kind,
                notes,
            } => {
                let Some(agent) = self.agent_of(conn, &req) else {
                    return;
                };
                if !self.notes_fit(conn, &req, &notes) {
                    return;
                }
                let target_conn = self.users.get(&target).copied();
                let target_party = target_conn
                    .and_then(|c| self.connections.get(&c))
                    .map(|c| (c.party.clone(), c.media_connected));
                let problem = match (&target_party, kind) {
                    (None, _) => Some(format!("{target} is not logged in")),
                    (Some((_, false)), _) => Some(format!("{target}'s phone is not connected")),
                    (
                        Some((
                            Party::User {
                                role: Role::Agent, ..
                            },
                            _,
                        )),
                        ConsultKind::Conference,
                    ) => Some(format!("{target} is not a supervisor")),
                    _ => None,
                };
                if let Some(problem) = problem {
                    self.error(conn, req, ErrorCode::InvalidState, problem);
                    return;
                }
                // A supervisor monitoring a call is busy with it.
                if let Some(c) = target_conn
                    && self.monitors.contains_key(&c)
                {
                    self.error(
                        conn,
                        req,
                        ErrorCode::InvalidState,
                        format!("{target} is monitoring a call"),
                    );
                    return;
                }
                let call = CallId(call_id);
                let input = AcdInput::ConsultRequested {
                    agent: agent.clone(),
                    call: call.clone(),
                    target: AgentId(target),
                    kind,
                };
                let handover = Handover {
                    kind: match kind {
                        ConsultKind::Transfer => "consult",
                        ConsultKind::Conference => "escalation",
                    },
                    from: Some(agent.0),
                    notes,
                };
                self.acd_request_with(now, conn, req, input, &call, handover);
            }
            CoreInput::CompleteTransfer { conn, req, call_id } => {
                let Some(agent) = self.agent_of(conn, &req) else {
                    return;
                };
                let call = CallId(call_id);
                self.acd_request(now, conn, req, AcdInput::ConsultCompleted { agent, call });
            }
            CoreInput::CancelConsult { conn, req, call_id } => {
                let Some(agent) = self.agent_of(conn, &req) else {
                    return;
                };
                let call = CallId(call_id);
                self.acd_request(now, conn, req, AcdInput::ConsultCancelled { agent, call });
            }
            CoreInput::Callbacks { conn, req } => {
                let Some(agent) = self.agent_of(conn, &req) else {
                    return;
                };
                match self.store.open_callbacks(&agent.0).await {
                    Ok(list) => self.send(
                        conn,
                        ServerMessage::Callbacks {
                            req,
                            entries: list.into_iter().map(callback_info).collect(),
                        },
                    ),
                    Err(e) => self.error(
                        conn,
                        req,
                        ErrorCode::Internal,
                        format!("cannot read callbacks: {e}"),
                    ),
                }
            }
            CoreInput::DialCallback {
                conn,
                req,
                callback_id,
            } => self.dial_callback(now, conn, req, callback_id).await,
            CoreInput::DialOut {
                conn,
                req,
                number,
                queue,
            } => self.dial_out(now, conn, req, number, queue).await,
            CoreInput::Register {
                conn,
                req,
                number,
                name,
            } => self.register(conn, req, number, name).await,
            CoreInput::RequestCallback { conn, req } => {
                self.caller_asks_for_callback(now, conn, req);
            }
            CoreInput::Mute {
                conn,
                req,
                call_id,
                on,
            } => self.mute(now, conn, req, CallId(call_id), on).await,
            CoreInput::CustomerNotes { number, notes } => {
                for call in self.calls.values_mut() {
                    if call.caller.number == number {
                        call.caller.notes = notes.clone();
                    }
                }
            }
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
                if self.surveys.contains_key(&conn) {
                    self.end_survey(conn, SurveyResult::NoAnswer, false).await;
                }
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
                    if self.start_menu(now, &call) {
                        return;
                    }
                    if self.calls.get(&call).is_some_and(|c| !c.answered) {
                        self.media
                            .route(peer, Slot::Main, Source::Sound(Sound::Ringback));
                    }
                    self.enter_queue(now, &call);
                }
            }
            CoreInput::Media(MediaEvent::Digit {
                peer,
                key,
                duration_ms,
                in_band,
            }) => self.digit(now, peer.0, key, duration_ms, in_band).await,
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
            .filter(|q| q.served_by(&user))
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

    // The fields of `dial` one by one, as `CoreInput::Dial` carries them.
    #[allow(clippy::too_many_arguments)]
    async fn dial(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        from: String,
        name: Option<String>,
        queue: Option<String>,
        to: Option<String>,
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
        let menu = self
            .config
            .menu_for(to.as_deref(), queue.as_deref())
            .and_then(|m| self.menus.get(&m.name))
            .cloned();
        let queue = match &menu {
            // Until a key chooses, the call counts in the menu's default queue.
            Some(menu) => menu.default_queue.clone(),
            None => queue.unwrap_or_else(|| self.config.default_queue().to_owned()),
        };
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
            if let Some(menu) = &menu {
                self.store.call_in_menu(&call.0, &menu.name).await?;
            }
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
        let from_number = from.clone();
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
                caller_conn: Some(conn),
                queue: QueueId(queue.clone()),
                caller,
                arrived: now,
                agent: None,
                answered: false,
                in_acd: false,
                held_since: None,
                ring_customer: false,
                customer_answered: true,
                ringing_since: None,
                callback_id: None,
                handover: None,
                legs: HashMap::new(),
                customer_leg_why: "callback",
                muted_since: None,
                menu: match &menu {
                    Some(spec) => MenuStage::Waiting(spec.clone()),
                    None => MenuStage::None,
                },
                callback_prompt: CallbackPrompt::NotYet,
            },
        );
        self.start_leg(&call, &from_number, "caller", "dialed", None, now_ms)
            .await;
        if let Some(menu) = menu {
            self.send(
                conn,
                ServerMessage::InMenu {
                    req,
                    call_id: call.0.clone(),
                    menu: menu.name.clone(),
                    timeout_ms: menu.timeout.as_millis() as u64,
                },
            );
            return;
        }
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

    /// The caller's media is up and its call has a menu: the prompt plays and keys are
    /// awaited. False if the call has no menu waiting.
    fn start_menu(&mut self, now: Instant, call: &CallId) -> bool {
        let Some(live) = self.calls.get_mut(call) else {
            return false;
        };
        let MenuStage::Waiting(spec) = &live.menu else {
            return matches!(live.menu, MenuStage::Running(_));
        };
        let spec = spec.clone();
        let Some(peer) = live.caller_conn.map(PeerId) else {
            return false;
        };
        let prompt = self
            .menu_prompts
            .get(&spec.name)
            .copied()
            .unwrap_or(Sound::MenuPrompt);
        live.menu = MenuStage::Running(Menu::start(now, spec));
        self.media.route(peer, Slot::Main, Source::Prompt(prompt));
        self.media.detect_tones(peer, true);
        true
    }

    /// The earliest deadline of a running menu or survey.
    fn ivr_timeout(&self) -> Option<Instant> {
        let menus = self.calls.values().filter_map(|c| match &c.menu {
            MenuStage::Running(m) => m.poll_timeout(),
            _ => None,
        });
        let surveys = self
            .surveys
            .values()
            .filter_map(|s| s.survey.poll_timeout());
        let callback_prompts = self.calls.values().filter_map(|c| match c.callback_prompt {
            CallbackPrompt::Playing { until } => Some(until),
            _ => None,
        });
        menus.chain(surveys).chain(callback_prompts).min()
    }

    async fn handle_ivr_timeouts(&mut self, now: Instant) {
        let mut decided = Vec::new();
        for (id, live) in &mut self.calls {
            if let CallbackPrompt::Playing { until } = live.callback_prompt
                && until <= now
            {
                live.callback_prompt = CallbackPrompt::Played;
                if let Some(conn) = live.caller_conn.filter(|_| !live.answered) {
                    self.media
                        .route(PeerId(conn), Slot::Main, Source::Sound(Sound::Ringback));
                }
            }
            if let MenuStage::Running(menu) = &mut live.menu {
                menu.handle_timeout(now);
                if let Some(choice) = menu.poll_choice() {
                    decided.push((id.clone(), choice));
                }
            }
        }
        for (call, choice) in decided {
            self.leave_menu(now, &call, choice).await;
        }
        let mut ended = Vec::new();
        for (conn, s) in &mut self.surveys {
            s.survey.handle_timeout(now);
            if let Some(result) = s.survey.poll_result() {
                ended.push((*conn, result));
            }
        }
        for (conn, result) in ended {
            self.end_survey(conn, result, true).await;
        }
    }

    /// The menu chose a queue: stored, then the caller waits there (ringback) like any call.
    async fn leave_menu(&mut self, now: Instant, call: &CallId, choice: crate::ivr::MenuChoice) {
        let Some(live) = self.calls.get_mut(call) else {
            return;
        };
        live.menu = MenuStage::None;
        live.queue = QueueId(choice.queue.clone());
        let Some(peer) = live.caller_conn.map(PeerId) else {
            return;
        };
        tracing::info!(
            "call {call} chose {} in the menu ({:?})",
            choice.queue,
            choice.outcome
        );
        if let Err(e) = self
            .store
            .call_routed(&call.0, &choice.queue, &choice.outcome.label())
            .await
        {
            tracing::error!("could not store the menu choice: {e}");
        }
        self.media.detect_tones(peer, false);
        self.media
            .route(peer, Slot::Main, Source::Sound(Sound::Ringback));
        self.enter_queue(now, call);
    }

    /// A waiting caller asks to be called back instead of waiting (a `request_callback`
    /// message, or [`CALLBACK_KEY`] on its keypad): it keeps its place, and the switchboard
    /// rings its number when its turn comes.
    fn caller_asks_for_callback(&mut self, now: Instant, conn: ConnId, req: Option<String>) {
        let Some(Party::Caller { call }) = self.connections.get(&conn).map(|c| c.party.clone())
        else {
            self.error(conn, req, ErrorCode::InvalidState, "no waiting call".into());
            return;
        };
        match self.acd.handle_input(
            now,
            AcdInput::CallerRequestedCallback { call: call.clone() },
        ) {
            Ok(()) => self.send(
                conn,
                ServerMessage::CallbackScheduled {
                    req,
                    call_id: call.0,
                },
            ),
            Err(e) => self.error(conn, req, e.code(), e.to_string()),
        }
    }

    /// Callers who have waited `callback_offer_after_secs` hear, once, that they may press
    /// [`CALLBACK_KEY`] to be called back; ringback resumes when the prompt ends
    /// ([`Self::handle_ivr_timeouts`]).
    fn announce_callback_option(&mut self, now: Instant) {
        let after = Duration::from_secs(self.config.callback_offer_after_secs);
        for (call, live) in &mut self.calls {
            if live.callback_prompt != CallbackPrompt::NotYet || live.answered || !live.in_acd {
                continue;
            }
            let Some(conn) = live.caller_conn else {
                continue;
            };
            let waiting_long = self.acd.call_status(call).is_some_and(|status| {
                matches!(status.phase, CallPhase::Queued { .. })
                    && now.saturating_duration_since(status.arrived) >= after
            });
            if waiting_long {
                live.callback_prompt = CallbackPrompt::Playing {
                    until: now + self.callback_prompt_len,
                };
                self.media.route(
                    PeerId(conn),
                    Slot::Main,
                    Source::Prompt(Sound::CallbackPrompt),
                );
            }
        }
    }

    /// A key from a peer: a menu or survey choice from a caller, a waiting caller's
    /// [`CALLBACK_KEY`], or an agent's key for the caller's ear.
    async fn digit(
        &mut self,
        now: Instant,
        conn: ConnId,
        key: char,
        duration_ms: Option<u32>,
        in_band: bool,
    ) {
        tracing::debug!("conn {conn} pressed {key} (in band: {in_band})");
        if let Some(s) = self.surveys.get_mut(&conn) {
            s.survey.handle_key(now, key);
            if let Some(result) = s.survey.poll_result() {
                self.end_survey(conn, result, true).await;
            }
            return;
        }
        match self.connections.get(&conn).map(|c| c.party.clone()) {
            Some(Party::Caller { call }) => {
                let choice = match self.calls.get_mut(&call).map(|c| &mut c.menu) {
                    Some(MenuStage::Running(menu)) => {
                        menu.handle_key(now, key);
                        menu.poll_choice()
                    }
                    _ => None,
                };
                if let Some(choice) = choice {
                    self.leave_menu(now, &call, choice).await;
                    return;
                }
                let waiting = self
                    .calls
                    .get(&call)
                    .is_some_and(|c| matches!(c.menu, MenuStage::None) && !c.answered);
                if waiting && key == CALLBACK_KEY {
                    self.caller_asks_for_callback(now, conn, None);
                }
            }
            Some(Party::User { name, .. }) => {
                // An agent's keypad reaches the caller it talks to (not one on hold).
                let Some(AgentState::OnCall { call, .. }) =
                    self.acd.agent_state(&AgentId(name)).cloned()
                else {
                    return;
                };
                if let Some(conn) = self
                    .calls
                    .get(&call)
                    .filter(|c| c.held_since.is_none())
                    .and_then(|c| c.caller_conn)
                {
                    let duration = duration_ms.unwrap_or(crate::audio::rfc4733::DEFAULT_TONE_MS);
                    self.media.send_digit(PeerId(conn), key, duration.max(40));
                }
            }
            _ => {}
        }
    }

    /// The agent hung up on a call whose queue asks for a rating: the caller stays on the
    /// line with the survey prompt. False if no survey applies.
    fn start_survey(
        &mut self,
        now: Instant,
        call: &CallId,
        live: &LiveCall,
        reason: CallEndReason,
    ) -> bool {
        let Some(conn) = live.caller_conn else {
            return false;
        };
        let wanted = reason == CallEndReason::AgentHungUp
            && self.config.queue(&live.queue.0).is_some_and(|q| q.survey)
            && self
                .connections
                .get(&conn)
                .is_some_and(|c| c.media_connected);
        if !wanted {
            return false;
        }
        let peer = PeerId(conn);
        let timeout = self.config.survey_timeout();
        self.media
            .route(peer, Slot::Main, Source::Prompt(Sound::SurveyPrompt));
        self.media.detect_tones(peer, true);
        self.surveys.insert(
            conn,
            LiveSurvey {
                call: call.clone(),
                survey: Survey::start(now, self.survey_prompt_len, timeout),
                reason: end_reason_label(reason),
            },
        );
        self.send(
            conn,
            ServerMessage::SurveyStarted {
                call_id: call.0.clone(),
                timeout_ms: timeout.as_millis() as u64,
            },
        );
        true
    }

    /// Stores how the survey ended and releases the caller (told `call_ended` if `tell`).
    async fn end_survey(&mut self, conn: ConnId, result: SurveyResult, tell: bool) {
        let Some(s) = self.surveys.remove(&conn) else {
            return;
        };
        let score = match result {
            SurveyResult::Score(n) => Some(i64::from(n)),
            _ => None,
        };
        tracing::info!("call {} survey: {result:?}", s.call);
        if let Err(e) = self
            .store
            .survey_ended(&s.call.0, result.label(), score)
            .await
        {
            tracing::error!("could not store the survey result: {e}");
        }
        let peer = PeerId(conn);
        self.media.detect_tones(peer, false);
        self.media.route(peer, Slot::Main, Source::Silence);
        if tell {
            self.send(
                conn,
                ServerMessage::CallEnded {
                    call_id: s.call.0,
                    reason: s.reason.to_owned(),
                },
            );
        }
    }

    /// Queues a dialed call in the ACD once its media is up.
    fn enter_queue(&mut self, now: Instant, call: &CallId) {
        let Some(live) = self.calls.get_mut(call) else {
            return;
        };
        if live.in_acd || !matches!(live.menu, MenuStage::None) {
            return;
        }
        live.in_acd = true;
        let queue = live.queue.clone();
        let Some(conn) = live.caller_conn else {
            return;
        };
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
            if let Some(live) = self.calls.remove(call)
                && matches!(live.menu, MenuStage::Running(_))
                && let Some(conn) = live.caller_conn
            {
                self.media.detect_tones(PeerId(conn), false);
            }
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
            Some(Party::Endpoint {
                call: Some(call), ..
            }) => AcdInput::CallerHungUp { call },
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
        if form.resolution == Resolution::FollowUp
            && let Some(due) = form.follow_up_at_ms
            && let Err(e) = self.promise_callback(now, &agent, &form, due).await
        {
            self.error(
                conn,
                req,
                ErrorCode::Internal,
                format!("disposition saved, but no callback scheduled: {e}"),
            );
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

    /// A follow-up disposition promises a callback at `due` (once per call and agent).
    async fn promise_callback(
        &mut self,
        now: Instant,
        agent: &AgentId,
        form: &DispositionForm,
        due: i64,
    ) -> Result<(), store::StoreError> {
        let Some(call) = self.store.call(&form.call_id).await? else {
            return Err(store::StoreError::UnknownCall(form.call_id.clone()));
        };
        let callback = self
            .store
            .add_callback(
                &call.id,
                &agent.0,
                &call.caller_number,
                call.caller_name.as_deref(),
                &call.queue,
                &form.notes,
                due,
                self.clock.ms(now),
            )
            .await?;
        tracing::info!("callback {} due at {}", callback.id, callback.due_at);
        self.next_callback_ms = Some(
            self.next_callback_ms
                .map_or(callback.due_at, |t| t.min(callback.due_at)),
        );
        Ok(())
    }

    /// Whether `call` is the current (connected) call of the agent on `conn`; if not, an
    /// error goes back to it.
    fn is_current_call_of(&mut self, conn: ConnId, req: &Option<String>, call: &CallId) -> bool {
        let Some(agent) = self.agent_of(conn, req) else {
            return false;
        };
        let current = matches!(
            self.acd.agent_state(&agent),
            Some(AgentState::OnCall { call: c, .. }) if c == call
        ) && self.calls.contains_key(call);
        if !current {
            self.error(
                conn,
                req.clone(),
                ErrorCode::InvalidState,
                format!("{call} is not your current call"),
            );
        }
        current
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
        if !self.is_current_call_of(conn, &req, &call) {
            return;
        }
        let Some(live) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(caller) = live.caller_conn.map(PeerId) else {
            self.error(
                conn,
                req,
                ErrorCode::InvalidState,
                "the customer is not on the line yet".into(),
            );
            return;
        };
        let agent_peer = PeerId(conn);
        match (on, live.held_since) {
            (true, None) => {
                live.held_since = Some(now);
                if let Err(e) = self.store.hold_started(&call.0).await {
                    tracing::error!("could not count the hold: {e}");
                }
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

    /// The agent's phone muted (`on`) or unmuted its microphone on its current call; the
    /// muted time is added to the call record when mute ends (or the call does).
    async fn mute(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        call: CallId,
        on: bool,
    ) {
        if !self.is_current_call_of(conn, &req, &call) {
            return;
        }
        let Some(live) = self.calls.get_mut(&call) else {
            return;
        };
        match (on, live.muted_since) {
            (true, None) => live.muted_since = Some(now),
            (false, Some(since)) => {
                live.muted_since = None;
                let muted_ms = now.saturating_duration_since(since).as_millis() as i64;
                if let Err(e) = self.store.add_mute_ms(&call.0, muted_ms).await {
                    tracing::error!("could not store mute time: {e}");
                }
            }
            // Already in the asked state: nothing changes.
            _ => {}
        }
        self.send(conn, ServerMessage::Ok { req });
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
            self.calls.get(&call).and_then(|c| c.caller_conn),
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
            Party::Endpoint { number, call } => {
                if self.endpoints.get(&number) == Some(&conn) {
                    self.endpoints.remove(&number);
                }
                if let Some(call) = call
                    && let Some(live) = self.calls.get_mut(&call)
                {
                    live.caller_conn = None;
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
                if let Some(live) = self.calls.get_mut(&call) {
                    // A blind transfer may have moved it to another queue.
                    live.queue = queue.clone();
                }
                if let Some(conn) = self.calls.get(&call).and_then(|c| c.caller_conn) {
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
                let context = live.handover.as_ref().map(|h| OfferContext {
                    kind: h.kind.to_owned(),
                    from: h.from.clone(),
                    notes: h.notes.clone().filter(|n| !n.is_empty()),
                    callback_id: live.callback_id.clone(),
                });
                self.offer_to(&call, &agent, context).await?;
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
            AcdOutput::CallConnected { call, agent, via } => {
                // Calls an agent dialed were never offered; every other one was.
                let offered = self
                    .calls
                    .get(&call)
                    .is_some_and(|l| l.agent.as_ref() == Some(&agent));
                if offered {
                    self.store
                        .offer_ended(&call.0, &agent.0, now_ms, "answered")
                        .await?;
                }
                let Some(live) = self.calls.get_mut(&call) else {
                    return Ok(());
                };
                let first_answer = !live.answered;
                live.answered = true;
                live.agent = Some(agent.clone());
                let handover = live.handover.take();
                let ring_customer = live.ring_customer;
                if ring_customer {
                    live.customer_leg_why = via.label();
                }
                let number = live.caller.number.clone();
                if first_answer && !ring_customer {
                    self.store.call_answered(&call.0, &agent.0, now_ms).await?;
                }
                let role = self.role_label(&agent);
                self.start_leg(
                    &call,
                    &agent.0,
                    role,
                    via.label(),
                    handover.and_then(|h| h.notes),
                    now_ms,
                )
                .await;
                let agent_conn = self.users.get(&agent.0).copied();
                if ring_customer {
                    // Outbound or a callback: the agent hears ringback while the customer's
                    // endpoint rings; the bridge is made when it answers.
                    if let Some(agent_conn) = agent_conn {
                        self.media.route(
                            PeerId(agent_conn),
                            Slot::Main,
                            Source::Sound(Sound::Ringback),
                        );
                        self.send(
                            agent_conn,
                            ServerMessage::CallConnected {
                                call_id: call.0.clone(),
                                peer: number.clone(),
                            },
                        );
                    }
                    self.ring_endpoint(now, &call, &agent).await;
                } else {
                    let caller_conn = self.calls.get(&call).and_then(|c| c.caller_conn);
                    if let (Some(agent_conn), Some(caller_conn)) = (agent_conn, caller_conn) {
                        self.bridge(caller_conn, agent_conn);
                        self.send(
                            agent_conn,
                            ServerMessage::CallConnected {
                                call_id: call.0.clone(),
                                peer: number,
                            },
                        );
                    }
                    if let Some(caller_conn) = caller_conn {
                        self.send(
                            caller_conn,
                            ServerMessage::CallConnected {
                                call_id: call.0,
                                peer: agent.0,
                            },
                        );
                    }
                }
                self.queues_dirty = true;
            }
            AcdOutput::CallTransferred { call, from } => {
                self.end_monitors_of(now, &call).await;
                self.end_hold(now, &call).await?;
                self.end_leg(&call, &from.0, now_ms).await;
                let caller_conn = match self.calls.get_mut(&call) {
                    Some(live) => {
                        live.agent = None;
                        live.caller_conn
                    }
                    None => None,
                };
                if let Some(caller_conn) = caller_conn {
                    // Waiting again: hold music until the next agent answers.
                    self.media.route(
                        PeerId(caller_conn),
                        Slot::Main,
                        Source::Sound(Sound::HoldMusic),
                    );
                }
                self.leave_call(&from, &call, "transferred");
                self.queues_dirty = true;
            }
            AcdOutput::ConsultOffered {
                call,
                from,
                to,
                kind,
            } => {
                self.end_monitors_of(now, &call).await;
                if kind == ConsultKind::Transfer {
                    let newly_held = self
                        .calls
                        .get(&call)
                        .is_some_and(|l| l.held_since.is_none());
                    self.hold_for_consult(now, &call, &from);
                    if newly_held {
                        self.store.hold_started(&call.0).await?;
                    }
                }
                let context = self
                    .calls
                    .get_mut(&call)
                    .and_then(|l| l.handover.clone())
                    .map(|h| OfferContext {
                        kind: h.kind.to_owned(),
                        from: h.from,
                        notes: h.notes.filter(|n| !n.is_empty()),
                        callback_id: None,
                    });
                self.offer_to(&call, &to, context).await?;
                self.consult_state(&call, &from, &to, kind, ConsultPhase::Ringing, None);
            }
            AcdOutput::ConsultConnected {
                call,
                from,
                to,
                kind,
            } => {
                let (Some(from_conn), Some(to_conn)) = (
                    self.users.get(&from.0).copied(),
                    self.users.get(&to.0).copied(),
                ) else {
                    return Ok(());
                };
                let caller_conn = self.calls.get(&call).and_then(|c| c.caller_conn);
                let notes = self
                    .calls
                    .get_mut(&call)
                    .and_then(|l| l.handover.take())
                    .and_then(|h| h.notes);
                let (a, t) = (PeerId(from_conn), PeerId(to_conn));
                let peer = match (kind, caller_conn) {
                    (ConsultKind::Transfer, _) | (ConsultKind::Conference, None) => {
                        // Agent and colleague talk; the caller keeps hearing hold music.
                        self.media.route(a, Slot::Main, Source::Peer(t));
                        self.media.route(t, Slot::Main, Source::Peer(a));
                        self.start_leg(&call, &to.0, "consult", "consult", notes, now_ms)
                            .await;
                        from.0.clone()
                    }
                    (ConsultKind::Conference, Some(caller_conn)) => {
                        // Three-way: everyone hears one voice on main and the other on aux.
                        let c = PeerId(caller_conn);
                        self.media.route(t, Slot::Main, Source::Peer(c));
                        self.media.route(t, Slot::Aux, Source::Peer(a));
                        self.media.route(a, Slot::Aux, Source::Peer(t));
                        self.media.route(c, Slot::Aux, Source::Peer(t));
                        let role = self.role_label(&to);
                        self.start_leg(&call, &to.0, role, "escalation", notes, now_ms)
                            .await;
                        self.calls
                            .get(&call)
                            .map(|l| l.caller.number.clone())
                            .unwrap_or_default()
                    }
                };
                self.send(
                    to_conn,
                    ServerMessage::CallConnected {
                        call_id: call.0.clone(),
                        peer,
                    },
                );
                self.consult_state(&call, &from, &to, kind, ConsultPhase::Connected, None);
            }
            AcdOutput::ConsultEnded {
                call,
                from,
                to,
                kind,
                answered,
                why,
            } => {
                let reason = consult_end_label(why);
                if let Some(to_conn) = self.users.get(&to.0).copied() {
                    if answered {
                        self.end_leg(&call, &to.0, now_ms).await;
                        self.media
                            .route(PeerId(to_conn), Slot::Main, Source::Silence);
                        self.media
                            .route(PeerId(to_conn), Slot::Aux, Source::Silence);
                        let ended = match kind {
                            ConsultKind::Transfer => "consult_ended",
                            ConsultKind::Conference => "left_conference",
                        };
                        self.send(
                            to_conn,
                            ServerMessage::CallEnded {
                                call_id: call.0.clone(),
                                reason: ended.to_owned(),
                            },
                        );
                    } else {
                        self.send(
                            to_conn,
                            ServerMessage::OfferWithdrawn {
                                call_id: call.0.clone(),
                                reason: reason.to_owned(),
                            },
                        );
                    }
                }
                if why != ConsultEnd::CallEnded {
                    // Back to agent and caller alone.
                    self.end_hold(now, &call).await?;
                    let caller_conn = self.calls.get(&call).and_then(|c| c.caller_conn);
                    if let (Some(c), Some(a)) = (caller_conn, self.users.get(&from.0).copied()) {
                        self.bridge(c, a);
                    }
                }
                self.consult_state(
                    &call,
                    &from,
                    &to,
                    kind,
                    ConsultPhase::Ended,
                    Some(reason.to_owned()),
                );
            }
            AcdOutput::CallHandedOver {
                call,
                from,
                to,
                via,
            } => {
                self.end_hold(now, &call).await?;
                self.end_leg(&call, &from.0, now_ms).await;
                if via == Via::WarmTransfer {
                    // The consult leg ends; the colleague's leg with the caller begins.
                    self.end_leg(&call, &to.0, now_ms).await;
                    let role = self.role_label(&to);
                    self.start_leg(&call, &to.0, role, via.label(), None, now_ms)
                        .await;
                }
                let caller_conn = match self.calls.get_mut(&call) {
                    Some(live) => {
                        live.agent = Some(to.clone());
                        live.caller_conn
                    }
                    None => None,
                };
                let to_conn = self.users.get(&to.0).copied();
                if let (Some(c), Some(t)) = (caller_conn, to_conn) {
                    self.bridge(c, t);
                    self.send(
                        c,
                        ServerMessage::CallConnected {
                            call_id: call.0.clone(),
                            peer: to.0.clone(),
                        },
                    );
                }
                if via == Via::WarmTransfer
                    && let Some(t) = to_conn
                {
                    let number = self
                        .calls
                        .get(&call)
                        .map(|l| l.caller.number.clone())
                        .unwrap_or_default();
                    self.send(
                        t,
                        ServerMessage::CallConnected {
                            call_id: call.0.clone(),
                            peer: number,
                        },
                    );
                }
                let reason = match via {
                    Via::Escalation => "escalated",
                    _ => "transferred",
                };
                self.leave_call(&from, &call, reason);
                self.queues_dirty = true;
            }
            AcdOutput::CallbackKept { call } => {
                // The caller may hang up now: its connection no longer ends the call.
                let Some(live) = self.calls.get_mut(&call) else {
                    return Ok(());
                };
                live.ring_customer = true;
                live.customer_answered = false;
                live.handover = Some(Handover {
                    kind: "callback",
                    from: None,
                    notes: Some("the caller asked to be called back instead of waiting".into()),
                });
                if let Some(conn) = live.caller_conn.take() {
                    self.media.route(PeerId(conn), Slot::Main, Source::Silence);
                    if let Some(c) = self.connections.get_mut(&conn) {
                        c.party = Party::Unknown;
                    }
                }
                let number = live.caller.number.clone();
                self.end_leg(&call, &number, now_ms).await;
            }
            AcdOutput::CallEnded {
                call,
                agent,
                reason,
            } => {
                self.end_monitors_of(now, &call).await;
                let end_reason = reason;
                let reason = end_reason_label(reason);
                self.end_hold(now, &call).await?;
                if let Some(since) = self.calls.get(&call).and_then(|c| c.muted_since) {
                    let muted_ms = now.saturating_duration_since(since).as_millis() as i64;
                    self.store.add_mute_ms(&call.0, muted_ms).await?;
                }
                self.store.call_ended(&call.0, now_ms, reason).await?;
                if let Some(live) = self.calls.remove(&call) {
                    for leg in live.legs.values() {
                        if let Err(e) = self.store.leg_ended(leg, now_ms).await {
                            tracing::error!("could not end a call leg: {e}");
                        }
                    }
                    if let Some(id) = &live.callback_id {
                        let status = if live.customer_answered {
                            store::CallbackStatus::Done
                        } else {
                            store::CallbackStatus::Failed
                        };
                        self.store
                            .set_callback_status(id, status, None, now_ms)
                            .await?;
                    }
                    if let Some(conn) = live.caller_conn {
                        // Tones were only listened for in the menu.
                        if matches!(live.menu, MenuStage::Running(_)) {
                            self.media.detect_tones(PeerId(conn), false);
                        }
                        if let Some(Connection {
                            party: Party::Endpoint { call: rung, .. },
                            ..
                        }) = self.connections.get_mut(&conn)
                        {
                            *rung = None;
                        }
                    }
                    if let Some(conn) = live.caller_conn
                        && !self.start_survey(now, &call, &live, end_reason)
                    {
                        self.media.route(PeerId(conn), Slot::Main, Source::Silence);
                        self.media.route(PeerId(conn), Slot::Aux, Source::Silence);
                        self.send(
                            conn,
                            ServerMessage::CallEnded {
                                call_id: call.0.clone(),
                                reason: reason.to_owned(),
                            },
                        );
                    }
                }
                if let Some(agent) = agent
                    && let Some(conn) = self.users.get(&agent.0).copied()
                {
                    self.media.route(PeerId(conn), Slot::Main, Source::Silence);
                    self.media.route(PeerId(conn), Slot::Aux, Source::Silence);
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

    /// Sends `agent` the offer of `call`: the caller, its history, and why it comes.
    async fn offer_to(
        &mut self,
        call: &CallId,
        agent: &AgentId,
        context: Option<OfferContext>,
    ) -> Result<(), store::StoreError> {
        let Some(live) = self.calls.get(call) else {
            return Ok(());
        };
        let caller = live.caller.clone();
        let queue = live.queue.0.clone();
        let waited_ms = Instant::now()
            .saturating_duration_since(live.arrived)
            .as_millis() as u64;
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
                    context,
                },
            );
        }
        Ok(())
    }

    /// `agent` or `supervisor`, as the leg's role.
    fn role_label(&self, agent: &AgentId) -> &'static str {
        let role = self
            .users
            .get(&agent.0)
            .and_then(|c| self.connections.get(c))
            .map(|c| &c.party);
        match role {
            Some(Party::User {
                role: Role::Supervisor,
                ..
            }) => "supervisor",
            _ => "agent",
        }
    }

    /// Opens a leg of `call` for `party` (stored at once; a failure is logged, the call goes
    /// on).
    async fn start_leg(
        &mut self,
        call: &CallId,
        party: &str,
        role: &str,
        why: &str,
        notes: Option<String>,
        at_ms: i64,
    ) {
        match self
            .store
            .leg_started_with_notes(&call.0, party, role, at_ms, why, notes.as_deref())
            .await
        {
            Ok(leg) => {
                if let Some(live) = self.calls.get_mut(call) {
                    live.legs.insert(party.to_owned(), leg);
                }
            }
            Err(e) => tracing::error!("could not store a call leg: {e}"),
        }
    }

    async fn end_leg(&mut self, call: &CallId, party: &str, at_ms: i64) {
        let Some(leg) = self.calls.get_mut(call).and_then(|l| l.legs.remove(party)) else {
            return;
        };
        if let Err(e) = self.store.leg_ended(&leg, at_ms).await {
            tracing::error!("could not end a call leg: {e}");
        }
    }

    /// Caller and agent hear each other, and nobody else.
    fn bridge(&self, caller_conn: ConnId, agent_conn: ConnId) {
        let (c, a) = (PeerId(caller_conn), PeerId(agent_conn));
        self.media.route(c, Slot::Main, Source::Peer(a));
        self.media.route(a, Slot::Main, Source::Peer(c));
        self.media.route(c, Slot::Aux, Source::Silence);
        self.media.route(a, Slot::Aux, Source::Silence);
    }

    /// `agent` left `call`, which goes on without it: silence, and `call_ended` for its leg.
    fn leave_call(&self, agent: &AgentId, call: &CallId, reason: &str) {
        if let Some(conn) = self.users.get(&agent.0).copied() {
            self.media.route(PeerId(conn), Slot::Main, Source::Silence);
            self.media.route(PeerId(conn), Slot::Aux, Source::Silence);
            self.send(
                conn,
                ServerMessage::CallEnded {
                    call_id: call.0.clone(),
                    reason: reason.to_owned(),
                },
            );
        }
    }

    /// Ends every monitoring session on `call` (its parties are about to change).
    async fn end_monitors_of(&mut self, now: Instant, call: &CallId) {
        let watching: Vec<ConnId> = self
            .monitors
            .iter()
            .filter(|(_, s)| s.call == *call)
            .map(|(c, _)| *c)
            .collect();
        for sup in watching {
            self.end_monitor(now, sup, "call_ended").await;
        }
    }

    /// Stops counting hold time on `call` and stores what was counted.
    async fn end_hold(&mut self, now: Instant, call: &CallId) -> Result<(), store::StoreError> {
        if let Some(since) = self.calls.get_mut(call).and_then(|c| c.held_since.take()) {
            let held_ms = now.saturating_duration_since(since).as_millis() as i64;
            self.store.add_hold_ms(&call.0, held_ms).await?;
        }
        Ok(())
    }

    /// A warm-transfer consult starts: the caller hears hold music, the agent silence until
    /// the colleague answers. Counted as hold time.
    fn hold_for_consult(&mut self, now: Instant, call: &CallId, agent: &AgentId) {
        let Some(live) = self.calls.get_mut(call) else {
            return;
        };
        live.held_since.get_or_insert(now);
        if let Some(c) = live.caller_conn {
            self.media
                .route(PeerId(c), Slot::Main, Source::Sound(Sound::HoldMusic));
        }
        if let Some(a) = self.users.get(&agent.0).copied() {
            self.media.route(PeerId(a), Slot::Main, Source::Silence);
        }
    }

    /// Tells the consulting agent where its consult stands.
    fn consult_state(
        &self,
        call: &CallId,
        from: &AgentId,
        to: &AgentId,
        kind: ConsultKind,
        state: ConsultPhase,
        reason: Option<String>,
    ) {
        if let Some(conn) = self.users.get(&from.0).copied() {
            self.send(
                conn,
                ServerMessage::ConsultState {
                    call_id: call.0.clone(),
                    agent: to.0.clone(),
                    kind: match kind {
                        ConsultKind::Transfer => crate::protocol::ConsultKind::Transfer,
                        ConsultKind::Conference => crate::protocol::ConsultKind::Conference,
                    },
                    state,
                    reason,
                },
            );
        }
    }

    /// Like [`Self::acd_request`]; on success `handover` travels with the call.
    fn acd_request_with(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        input: AcdInput,
        call: &CallId,
        handover: Handover,
    ) {
        match self.acd.handle_input(now, input) {
            Ok(()) => {
                // Outputs are drained after this returns, so the offer they cause sees it.
                if let Some(live) = self.calls.get_mut(call) {
                    live.handover = Some(handover);
                }
                self.send(conn, ServerMessage::Ok { req });
            }
            Err(e) => self.error(conn, req, e.code(), e.to_string()),
        }
    }

    /// Handover notes are limited like disposition notes.
    fn notes_fit(&self, conn: ConnId, req: &Option<String>, notes: &Option<String>) -> bool {
        if notes.as_ref().is_some_and(|n| n.len() > 16 * 1024) {
            self.error(
                conn,
                req.clone(),
                ErrorCode::BadRequest,
                "notes are limited to 16 KiB".into(),
            );
            return false;
        }
        true
    }

    /// A customer endpoint registers: calls to `number` ring this connection (a newer
    /// registration of the same number takes over).
    async fn register(
        &mut self,
        conn: ConnId,
        req: Option<String>,
        number: String,
        name: Option<String>,
    ) {
        let number = number.trim().to_owned();
        if number.is_empty() || number.len() > 64 {
            self.error(
                conn,
                req,
                ErrorCode::BadRequest,
                "the number must be 1 to 64 characters".into(),
            );
            return;
        }
        if !matches!(
            self.connections.get(&conn).map(|c| &c.party),
            Some(Party::Unknown)
        ) {
            self.error(
                conn,
                req,
                ErrorCode::InvalidState,
                "this connection is already in use".into(),
            );
            return;
        }
        if let Err(e) = self.store.upsert_customer(&number, name.as_deref()).await {
            self.error(
                conn,
                req,
                ErrorCode::Internal,
                format!("not registered: {e}"),
            );
            return;
        }
        if let Some(c) = self.connections.get_mut(&conn) {
            c.party = Party::Endpoint {
                number: number.clone(),
                call: None,
            };
        }
        self.endpoints.insert(number.clone(), conn);
        tracing::info!(
            "endpoint {} registered",
            crate::protocol::redact_number(&number)
        );
        self.send(conn, ServerMessage::Registered { req, number });
    }

    /// Rings the endpoint registered for `call`'s number; a number with no free, connected
    /// endpoint is not reached.
    async fn ring_endpoint(&mut self, now: Instant, call: &CallId, agent: &AgentId) {
        let Some(number) = self.calls.get(call).map(|l| l.caller.number.clone()) else {
            return;
        };
        let endpoint = self.endpoints.get(&number).copied().filter(|c| {
            self.connections.get(c).is_some_and(|c| {
                c.media_connected && matches!(c.party, Party::Endpoint { call: None, .. })
            })
        });
        let Some(conn) = endpoint else {
            tracing::info!(
                "call {call}: no free endpoint for {}",
                crate::protocol::redact_number(&number)
            );
            let _ = self
                .acd
                .handle_input(now, AcdInput::CustomerNotReached { call: call.clone() });
            return;
        };
        if let Some(Connection {
            party: Party::Endpoint { call: rung, .. },
            ..
        }) = self.connections.get_mut(&conn)
        {
            *rung = Some(call.clone());
        }
        if let Some(live) = self.calls.get_mut(call) {
            live.caller_conn = Some(conn);
            live.ringing_since = Some(now);
        }
        self.send(
            conn,
            ServerMessage::IncomingCall {
                call_id: call.0.clone(),
                from: agent.0.clone(),
            },
        );
    }

    /// A rung endpoint answered: bridge it to the agent.
    async fn endpoint_answered(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        call: CallId,
    ) {
        let ringing = self.calls.get(&call).is_some_and(|l| {
            l.caller_conn == Some(conn) && l.ringing_since.is_some() && !l.customer_answered
        });
        if !ringing {
            self.error(
                conn,
                req,
                ErrorCode::InvalidState,
                format!("{call} is not ringing here"),
            );
            return;
        }
        let now_ms = self.clock.ms(now);
        let live = self.calls.get_mut(&call).expect("checked above");
        live.ringing_since = None;
        live.customer_answered = true;
        let agent = live.agent.clone();
        let number = live.caller.number.clone();
        let why = live.customer_leg_why;
        if let Some(agent) = &agent
            && let Err(e) = self.store.call_answered(&call.0, &agent.0, now_ms).await
        {
            tracing::warn!("call {call}: answer not stored: {e}");
        }
        self.send(conn, ServerMessage::Ok { req });
        self.start_leg(&call, &number, "caller", why, None, now_ms)
            .await;
        if let Some(agent) = agent
            && let Some(agent_conn) = self.users.get(&agent.0).copied()
        {
            self.bridge(conn, agent_conn);
            self.send(
                conn,
                ServerMessage::CallConnected {
                    call_id: call.0,
                    peer: agent.0,
                },
            );
        }
    }

    /// Endpoints that ring longer than the ring-no-answer time are given up.
    fn give_up_unanswered_rings(&mut self) {
        let now = Instant::now();
        let limit = self.config.ring_no_answer();
        let late: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, l)| {
                l.ringing_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= limit)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for call in late {
            if let Some(live) = self.calls.get_mut(&call) {
                live.ringing_since = None;
            }
            let _ = self
                .acd
                .handle_input(now, AcdInput::CustomerNotReached { call });
        }
    }

    /// Stores a new outbound call (or callback) and its live record.
    async fn new_outbound_call(
        &mut self,
        now: Instant,
        number: &str,
        name: Option<String>,
        queue: &str,
        callback_id: Option<String>,
        handover: Option<Handover>,
    ) -> Result<CallId, store::StoreError> {
        let now_ms = self.clock.ms(now);
        let call = new_call_id(now_ms);
        self.store
            .call_arrived(&store::NewCall {
                id: call.0.clone(),
                direction: store::Direction::Outbound,
                queue: queue.to_owned(),
                caller_number: number.to_owned(),
                caller_name: name.clone(),
                arrived_at: now_ms,
            })
            .await?;
        let notes = self
            .store
            .customer(number)
            .await?
            .and_then(|c| c.notes)
            .filter(|n| !n.is_empty());
        self.calls.insert(
            call.clone(),
            LiveCall {
                caller_conn: None,
                queue: QueueId(queue.to_owned()),
                caller: CallerInfo {
                    number: number.to_owned(),
                    name,
                    notes,
                },
                arrived: now,
                agent: None,
                answered: false,
                in_acd: true,
                held_since: None,
                ring_customer: true,
                customer_answered: false,
                ringing_since: None,
                callback_id,
                handover,
                legs: HashMap::new(),
                customer_leg_why: "outbound",
                muted_since: None,
                menu: MenuStage::None,
                // Nobody waits on an outbound call.
                callback_prompt: CallbackPrompt::Played,
            },
        );
        Ok(call)
    }

    /// `dial_out`: the agent calls a registered customer number.
    async fn dial_out(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        number: String,
        queue: Option<String>,
    ) {
        let Some(agent) = self.agent_of(conn, &req) else {
            return;
        };
        let number = number.trim().to_owned();
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
        if !self.endpoints.contains_key(&number) {
            self.error(
                conn,
                req,
                ErrorCode::Unreachable,
                format!("no endpoint is registered for {number:?}"),
            );
            return;
        }
        if !self.acd.agent_state(&agent).is_some_and(|s| {
            matches!(
                s,
                AgentState::Available { .. } | AgentState::NotReady { .. }
            )
        }) {
            self.error(
                conn,
                req,
                ErrorCode::InvalidState,
                "finish the current call first".into(),
            );
            return;
        }
        let name = self
            .store
            .customer(&number)
            .await
            .ok()
            .flatten()
            .and_then(|c| c.name);
        let call = match self
            .new_outbound_call(now, &number, name, &queue, None, None)
            .await
        {
            Ok(call) => call,
            Err(e) => {
                self.error(conn, req, ErrorCode::Internal, format!("not dialed: {e}"));
                return;
            }
        };
        self.dial_as_agent(now, conn, req, agent, call, queue, Via::Outbound);
    }

    /// `dial_callback`: the agent carries out one of its callbacks now.
    async fn dial_callback(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        callback_id: String,
    ) {
        let Some(agent) = self.agent_of(conn, &req) else {
            return;
        };
        let callback = match self.store.callback(&callback_id).await {
            Ok(Some(cb)) if cb.agent.as_deref() == Some(agent.0.as_str()) => cb,
            Ok(_) => {
                self.error(
                    conn,
                    req,
                    ErrorCode::BadRequest,
                    format!("no callback {callback_id:?} of yours"),
                );
                return;
            }
            Err(e) => {
                self.error(conn, req, ErrorCode::Internal, e.to_string());
                return;
            }
        };
        if callback.status != store::CallbackStatus::Pending {
            self.error(
                conn,
                req,
                ErrorCode::InvalidState,
                format!("callback {callback_id} is already {}", callback.status),
            );
            return;
        }
        if !self.acd.agent_state(&agent).is_some_and(|s| {
            matches!(
                s,
                AgentState::Available { .. } | AgentState::NotReady { .. }
            )
        }) {
            self.error(
                conn,
                req,
                ErrorCode::InvalidState,
                "finish the current call first".into(),
            );
            return;
        }
        let call = match self.start_callback_call(now, &callback).await {
            Ok(call) => call,
            Err(e) => {
                self.error(conn, req, ErrorCode::Internal, format!("not dialed: {e}"));
                return;
            }
        };
        self.dial_as_agent(
            now,
            conn,
            req,
            agent,
            call,
            callback.queue.clone(),
            Via::Callback,
        );
    }

    /// Stores the outbound call that carries out `callback` and marks it dialing.
    async fn start_callback_call(
        &mut self,
        now: Instant,
        callback: &store::Callback,
    ) -> Result<CallId, store::StoreError> {
        let call = self
            .new_outbound_call(
                now,
                &callback.number,
                callback.name.clone(),
                &callback.queue,
                Some(callback.id.clone()),
                Some(Handover {
                    kind: "callback",
                    from: callback.agent.clone(),
                    notes: Some(callback.notes.clone()),
                }),
            )
            .await?;
        self.store
            .set_callback_status(
                &callback.id,
                store::CallbackStatus::Dialing,
                Some(&call.0),
                self.clock.ms(now),
            )
            .await?;
        Ok(call)
    }

    #[allow(clippy::too_many_arguments)]
    fn dial_as_agent(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Option<String>,
        agent: AgentId,
        call: CallId,
        queue: String,
        via: Via,
    ) {
        let input = AcdInput::OutboundDialed {
            agent,
            call: call.clone(),
            queue: QueueId(queue),
            via,
        };
        if let Err(e) = self.acd.handle_input(now, input) {
            self.calls.remove(&call);
            self.error(conn, req, e.code(), e.to_string());
            return;
        }
        self.send(conn, ServerMessage::Ok { req });
    }

    /// Queues every callback that is due (the 1 s tick), offered first to the agent who
    /// promised it. The store is asked only when the earliest known due time has passed.
    async fn start_due_callbacks(&mut self) {
        let now = Instant::now();
        let now_ms = self.clock.ms(now);
        if self.next_callback_ms.is_none_or(|due| due > now_ms) {
            return;
        }
        let due = match self.store.due_callbacks(now_ms).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!("cannot read due callbacks: {e}");
                return;
            }
        };
        for callback in due {
            let call = match self.start_callback_call(now, &callback).await {
                Ok(call) => call,
                Err(e) => {
                    tracing::error!("callback {} not started: {e}", callback.id);
                    continue;
                }
            };
            tracing::info!("callback {} due: call {call}", callback.id);
            let input = AcdInput::CallbackDue {
                call: call.clone(),
                queue: QueueId(callback.queue.clone()),
                agent: callback.agent.clone().map(AgentId),
            };
            if let Err(e) = self.acd.handle_input(now, input) {
                tracing::error!("callback {} refused: {e}", callback.id);
                self.calls.remove(&call);
            }
        }
        self.queues_dirty = true;
        self.refresh_next_callback().await;
    }

    async fn refresh_next_callback(&mut self) {
        match self.store.next_callback_due().await {
            Ok(next) => self.next_callback_ms = next,
            Err(e) => tracing::error!("cannot read the next callback time: {e}"),
        }
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
                Some((i, PeerId(agent_conn), PeerId(call.caller_conn?)))
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

    /// Every [`RECEPTION_REPORT_EVERY`] status ticks: tells each client whose voice is flowing
    /// how much of it the bridge lost (before repair), as an RTCP receiver report would, so
    /// that it sizes its Opus FEC (webrtc-rs reads report blocks only from RR packets, and
    /// str0m sends them inside its SRs).
    async fn send_reception_reports(&mut self) {
        self.status_ticks = self.status_ticks.wrapping_add(1);
        if !self.status_ticks.is_multiple_of(RECEPTION_REPORT_EVERY) {
            return;
        }
        let conns: Vec<ConnId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.media_connected)
            .map(|(conn, _)| *conn)
            .collect();
        if conns.is_empty() {
            return;
        }
        let peers = conns.iter().map(|c| PeerId(*c)).collect();
        let figures = match self.media.quality(peers).await {
            Ok(figures) => figures,
            Err(e) => {
                tracing::debug!("no reception figures from the media bridge: {e}");
                return;
            }
        };
        for (conn, figure) in conns.into_iter().zip(figures) {
            if let Some(q) = figure {
                self.send(
                    conn,
                    ServerMessage::ReceptionReport {
                        loss_pct: q.loss_pct,
                    },
                );
            }
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
        let colleagues = self.colleagues();
        let changed = colleagues != self.colleagues_sent;
        if changed {
            self.colleagues_told.clear();
        }
        let conns: Vec<ConnId> = self.users.values().copied().collect();
        for conn in conns {
            // The list goes to whoever has not had this version of it.
            let colleagues = self
                .colleagues_told
                .insert(conn)
                .then(|| colleagues.clone());
            self.send(
                conn,
                ServerMessage::QueueStatus {
                    queues: queues.clone(),
                    colleagues,
                },
            );
        }
        self.colleagues_sent = colleagues;
    }

    /// Everyone logged in, by name, with their role and state.
    fn colleagues(&self) -> Vec<Colleague> {
        let mut list: Vec<Colleague> = self
            .users
            .iter()
            .filter_map(|(name, conn)| {
                let Some(Party::User { role, .. }) = self.connections.get(conn).map(|c| &c.party)
                else {
                    return None;
                };
                let state = self.acd.agent_state(&AgentId(name.clone()))?;
                Some(Colleague {
                    name: name.clone(),
                    role: *role,
                    state: state_name(state),
                })
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
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
        CallEndReason::NotReached => "not_reached",
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
        legs: h
            .legs
            .into_iter()
            .map(|l| crate::protocol::LegInfo {
                party: l.party,
                role: l.role,
                why: l.why,
                started_at_ms: l.started_at,
                ended_at_ms: l.ended_at,
                notes: l.notes,
            })
            .collect(),
        hold_ms: h.hold_ms,
        hold_count: h.hold_count,
        mute_ms: h.mute_ms,
        first_response_ms: h.first_response_ms,
        menu: h.menu,
        menu_choice: h.menu_choice,
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

fn consult_end_label(why: ConsultEnd) -> &'static str {
    match why {
        ConsultEnd::Cancelled => "cancelled",
        ConsultEnd::Declined => "declined",
        ConsultEnd::RingNoAnswer => "ring_no_answer",
        ConsultEnd::TargetLeft => "colleague_left",
        ConsultEnd::TargetLoggedOut => "colleague_logged_out",
        ConsultEnd::CallEnded => "call_ended",
    }
}

fn callback_info(cb: store::Callback) -> CallbackInfo {
    CallbackInfo {
        callback_id: cb.id,
        call_id: cb.call_id,
        number: cb.number,
        name: cb.name,
        queue: cb.queue,
        due_at_ms: cb.due_at,
        notes: cb.notes,
        status: cb.status.as_str().to_owned(),
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
