//! The signaling protocol between the switchboard and its clients (phones, headless peers).
//!
//! One WebSocket per client at `/v1/ws`, JSON text frames, each an object with a `type` field.
//! Every message a client sends may carry a `req` string; the switchboard echoes it in the reply
//! (`ok`, the specific answer, or `error`) so a client can match answers to requests. The full
//! reference with an example of every message is `docs/protocol.md`; this file is the single
//! source of truth for the shapes, and `parse_client_message` is the one entry point for
//! untrusted input (size limit, JSON, known type), so it can be fuzzed on its own.

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks. Clients send it in `login` / `dial`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest message the switchboard accepts, in bytes. Larger ones get `too_large`.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Roles a logged-in user can have. Callers are not users: they `dial` without a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Supervisor,
}

/// What the agent's state is, as the switchboard (the single truth) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStateName {
    LoggedOut,
    NotReady,
    Available,
    Offered,
    OnCall,
    AfterCallWork,
}

/// How a disposition says the customer's problem ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Resolved,
    Escalated,
    FollowUp,
}

/// A caller as shown to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallerInfo {
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// One past call in a caller's history, newest first in lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub call_id: String,
    /// When the call arrived, milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub queue: String,
    pub agent: Option<String>,
    pub end_reason: Option<String>,
    pub talk_ms: Option<i64>,
    pub csat: Option<i64>,
    /// Time on hold (inside `talk_ms`) and how many times the caller was held.
    #[serde(default)]
    pub hold_ms: i64,
    #[serde(default)]
    pub hold_count: i64,
    /// Time the agent's microphone was muted during the call.
    #[serde(default)]
    pub mute_ms: i64,
    /// From the first offer (an agent's phone starting to ring) to the answer.
    #[serde(default)]
    pub first_response_ms: Option<i64>,
    /// The queue-entry menu the caller went through and the key that chose the queue
    /// (`timeout` when none did).
    #[serde(default)]
    pub menu: Option<String>,
    #[serde(default)]
    pub menu_choice: Option<String>,
    pub disposition: Option<DispositionInfo>,
    /// Who talked to the caller, from when to when, and why the call moved; oldest first.
    #[serde(default)]
    pub legs: Vec<LegInfo>,
}

/// One party's part in a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegInfo {
    /// An agent's or supervisor's name, or the customer's number.
    pub party: String,
    /// `caller`, `agent`, `supervisor` (an escalation) or `consult` (a colleague the agent
    /// talked to while the caller was on hold).
    pub role: String,
    /// Why the leg began: `dialed`, `answered`, `blind_transfer`, `warm_transfer`,
    /// `escalation`, `consult`, `callback`, `outbound`.
    pub why: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    /// Notes handed over with the call when this leg began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Why an offered call comes to this agent, when it is not simply the next caller in a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferContext {
    /// `blind_transfer`, `consult` (a colleague asks before a warm transfer), `escalation` (a
    /// three-way call with the agent), or `callback` (ring the customer when answered).
    pub kind: String,
    /// The agent who transferred, consults or escalates; the agent who promised a callback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The notes that travel with the call (the transferring agent's current notes, the
    /// callback's wrap-up notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
}

/// A callback as an agent's list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackInfo {
    pub callback_id: String,
    /// The call whose wrap-up promised it.
    pub call_id: String,
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub queue: String,
    pub due_at_ms: i64,
    pub notes: String,
    /// `pending` or `dialing`.
    pub status: String,
}

/// What a consulted colleague joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsultKind {
    /// Warm transfer: the caller hears hold music while the agent and the colleague talk.
    Transfer,
    /// Escalation: caller, agent and supervisor all hear each other.
    Conference,
}

/// Where a consult stands, as the consulting agent is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsultPhase {
    Ringing,
    Connected,
    Ended,
}

/// A stored disposition, as it travels in history entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispositionInfo {
    pub code: String,
    pub resolution: Resolution,
    pub notes: String,
    pub follow_up_at_ms: Option<i64>,
    pub agent: String,
}

/// Per-queue figures pushed to agents (header summary) and supervisors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSummary {
    pub queue: String,
    pub waiting: u32,
    pub longest_wait_ms: u64,
}

/// A logged-in agent or supervisor, as its colleagues see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Colleague {
    pub name: String,
    pub role: Role,
    pub state: AgentStateName,
}

/// Configuration a logged-in client needs to draw its forms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientConfig {
    pub queues: Vec<String>,
    pub disposition_codes: Vec<String>,
    pub not_ready_reasons: Vec<String>,
    pub ring_no_answer_ms: u64,
    pub max_after_call_work_ms: u64,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Agents and supervisors: authenticate this connection.
    Login {
        #[serde(default)]
        req: Option<String>,
        protocol: u32,
        user: String,
        password: String,
        /// A lookup session (`sapa history`, `sapa report`): it reads history and reports
        /// and keeps customer notes, takes no calls, and leaves the user's phone logged in.
        /// Answered with `ok` rather than `logged_in`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        lookup: bool,
    },
    /// Callers: place a call into a queue (no password; the caller id is what the network says).
    Dial {
        #[serde(default)]
        req: Option<String>,
        protocol: u32,
        from: String,
        #[serde(default)]
        name: Option<String>,
        /// A queue, or the name of a queue-entry menu.
        #[serde(default)]
        queue: Option<String>,
        /// The number dialed; a menu configured for it answers the call.
        #[serde(default)]
        to: Option<String>,
    },
    /// Open (or replace) this connection's one peer connection: an SDP offer, answered by
    /// `media_answer`. Agents send it once per shift, callers once per call.
    MediaOffer {
        #[serde(default)]
        req: Option<String>,
        sdp: String,
    },
    /// Agent: ask for a state. The switchboard answers with `agent_state` when it applies.
    SetState {
        #[serde(default)]
        req: Option<String>,
        state: RequestedState,
        #[serde(default)]
        reason: Option<String>,
    },
    Answer {
        #[serde(default)]
        req: Option<String>,
        call_id: String,
    },
    Decline {
        #[serde(default)]
        req: Option<String>,
        call_id: String,
    },
    /// Agent: end the call. Caller: hang up (call_id optional, there is only one).
    Hangup {
        #[serde(default)]
        req: Option<String>,
        #[serde(default)]
        call_id: Option<String>,
    },
    /// Agent: the after-call form. Idempotent by `request_id`.
    Disposition {
        #[serde(default)]
        req: Option<String>,
        call_id: String,
        request_id: String,
        code: String,
        resolution: Resolution,
        #[serde(default)]
        notes: String,
        #[serde(default)]
        follow_up_at_ms: Option<i64>,
    },
    /// Agent or supervisor: a caller's history.
    History {
        #[serde(default)]
        req: Option<String>,
        number: String,
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Agent or supervisor: replace what the team keeps about a customer (preferences,
    /// account facts), which comes with every call from that number. Empty notes clear them.
    /// Answered with `ok`; calls in progress from the number carry the new notes from then on.
    CustomerNotes {
        #[serde(default)]
        req: Option<String>,
        number: String,
        notes: String,
    },
    /// Supervisor: a report over a time range, per agent or per queue.
    Report {
        #[serde(default)]
        req: Option<String>,
        from_ms: i64,
        to_ms: i64,
        by: crate::metrics::ReportBy,
    },
    /// Agent: put the caller on hold (`on: true`: the caller hears hold music, the agent
    /// hears nothing) or take them off it.
    Hold {
        #[serde(default)]
        req: Option<String>,
        call_id: String,
        on: bool,
    },
    /// Agent: the phone's microphone was muted (`on: true`) or unmuted during the call; the
    /// switchboard stores the muted time on the call.
    Mute {
        #[serde(default)]
        req: Option<String>,
        call_id: String,
        on: bool,
    },
    /// Supervisor: listen to, whisper to, or barge into an agent's current call; sent again
    /// with another mode, it switches mode without re-setup.
    Monitor {
        #[serde(default)]
        req: Option<String>,
        agent: String,
        mode: MonitorMode,
    },
    /// Supervisor: end the monitoring session.
    StopMonitor {
        #[serde(default)]
        req: Option<String>,
    },
    /// Agent: blind transfer of the current call to a queue (at its head) or to an available
    /// agent; exactly one of `queue` and `agent`. `notes` travel with the call.
    Transfer {
        #[serde(default)]
        req: Option<String>,
        call_id: String,
        #[serde(default)]
        queue: Option<String>,
        #[serde(default)]
        agent: Option<String>,
        #[serde(default)]
        notes: Option<String>,
    },
    /// Agent: ring a colleague or supervisor about the current call (warm transfer); the
    /// caller hears hold music. Then `complete_transfer` or `cancel_consult`.
    Consult {
        #[serde(default)]
        req: Option<String>,
        call_id: String,
        agent: String,
        #[serde(default)]
        notes: Option<String>,
    },
    /// Agent: bring a supervisor into the call (a three-way conference); the supervisor keeps
    /// the call when the agent leaves (`complete_transfer` or `hangup`).
    Escalate {
        #[serde(default)]
        req: Option<String>,
        call_id: String,
        supervisor: String,
        #[serde(default)]
        notes: Option<String>,
    },
    /// Agent: hand the call to the consulted colleague (who has answered) and leave.
    CompleteTransfer {
        #[serde(default)]
        req: Option<String>,
        call_id: String,
    },
    /// Agent: end the consult and go back to the caller.
    CancelConsult {
        #[serde(default)]
        req: Option<String>,
        call_id: String,
    },
    /// Agent: my callbacks not carried out yet; answered by `callbacks`.
    Callbacks {
        #[serde(default)]
        req: Option<String>,
    },
    /// Agent: carry out one of my callbacks now (before its time).
    DialCallback {
        #[serde(default)]
        req: Option<String>,
        callback_id: String,
    },
    /// Agent: call a customer number (a registered endpoint); `queue` is the one the call
    /// counts for (default: the first).
    DialOut {
        #[serde(default)]
        req: Option<String>,
        number: String,
        #[serde(default)]
        queue: Option<String>,
    },
    /// Customer endpoint (no password, like `dial`): the switchboard may ring this connection
    /// for calls to `number`. Answered by `registered`.
    Register {
        #[serde(default)]
        req: Option<String>,
        protocol: u32,
        number: String,
        #[serde(default)]
        name: Option<String>,
    },
    /// Caller, while waiting: call me back when my turn comes instead (allowed after the
    /// configured wait); answered by `callback_scheduled`.
    RequestCallback {
        #[serde(default)]
        req: Option<String>,
    },
    /// Keep-alive and round-trip measurement; answered by `pong` with the same `t`.
    Ping {
        #[serde(default)]
        req: Option<String>,
        t: u64,
    },
}

/// How a supervisor takes part in an agent's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorMode {
    /// Hears the caller and the agent; nobody hears the supervisor.
    Listen,
    /// Hears both; only the agent hears the supervisor (coaching).
    Whisper,
    /// A three-way call: both hear the supervisor.
    Barge,
}

/// States an agent may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestedState {
    Available,
    NotReady,
}

impl ClientMessage {
    /// The request id the client attached, echoed in the reply.
    pub fn req(&self) -> Option<&str> {
        match self {
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
            | ClientMessage::Ping { req, .. } => req.as_deref(),
        }
    }

    /// The `type` string, for logs and errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Login { .. } => "login",
            ClientMessage::Dial { .. } => "dial",
            ClientMessage::MediaOffer { .. } => "media_offer",
            ClientMessage::SetState { .. } => "set_state",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Decline { .. } => "decline",
            ClientMessage::Hangup { .. } => "hangup",
            ClientMessage::Disposition { .. } => "disposition",
            ClientMessage::History { .. } => "history",
            ClientMessage::CustomerNotes { .. } => "customer_notes",
            ClientMessage::Monitor { .. } => "monitor",
            ClientMessage::Hold { .. } => "hold",
            ClientMessage::Mute { .. } => "mute",
            ClientMessage::Report { .. } => "report",
            ClientMessage::StopMonitor { .. } => "stop_monitor",
            ClientMessage::Transfer { .. } => "transfer",
            ClientMessage::Consult { .. } => "consult",
            ClientMessage::Escalate { .. } => "escalate",
            ClientMessage::CompleteTransfer { .. } => "complete_transfer",
            ClientMessage::CancelConsult { .. } => "cancel_consult",
            ClientMessage::Callbacks { .. } => "callbacks",
            ClientMessage::DialCallback { .. } => "dial_callback",
            ClientMessage::DialOut { .. } => "dial_out",
            ClientMessage::Register { .. } => "register",
            ClientMessage::RequestCallback { .. } => "request_callback",
            ClientMessage::Ping { .. } => "ping",
        }
    }
}

/// Messages the switchboard sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Sent once when the WebSocket opens.
    Welcome {
        protocol: u32,
        server: String,
    },
    LoggedIn {
        req: Option<String>,
        session: String,
        user: String,
        role: Role,
        config: ClientConfig,
    },
    /// Generic success for requests without a specific answer.
    Ok {
        req: Option<String>,
    },
    MediaAnswer {
        req: Option<String>,
        sdp: String,
    },
    /// The agent's peer connection finished ICE/DTLS; calls can now be bridged to it.
    MediaConnected,
    AgentState {
        state: AgentStateName,
        reason: Option<String>,
        /// When this state began, milliseconds since the Unix epoch.
        since_ms: i64,
        /// The call the state refers to (offered, on call, after-call work).
        call_id: Option<String>,
        /// After-call work ends by itself at this time (ms since epoch).
        deadline_ms: Option<i64>,
    },
    /// Agent: a call rings. History is attached so the screen-pop needs no second request.
    CallOffered {
        call_id: String,
        queue: String,
        caller: CallerInfo,
        waited_ms: u64,
        ring_timeout_ms: u64,
        history: Vec<HistoryEntry>,
        /// Why this call comes to this agent (a transfer, a consult, an escalation, a
        /// callback); absent for the next caller of a queue.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<OfferContext>,
    },
    /// Agent: the offer is gone (ring-no-answer, declined, caller hung up).
    OfferWithdrawn {
        call_id: String,
        reason: String,
    },
    /// Both sides: the call is bridged; audio flows.
    CallConnected {
        call_id: String,
        /// The agent's display name (for the caller) or the caller's number (for the agent).
        peer: String,
    },
    CallEnded {
        call_id: String,
        reason: String,
    },
    /// Caller: the answer to `dial` when the dialed entry has a queue-entry menu. The prompt
    /// plays once media is up; keys pressed (RFC 4733 telephone events, or in-band tones)
    /// choose the queue, and `call_queued` follows.
    InMenu {
        req: Option<String>,
        call_id: String,
        menu: String,
        /// Keys are awaited this long after the prompt has played.
        timeout_ms: u64,
    },
    /// Caller: the agent hung up and the post-call survey runs: press 1 to 5 within
    /// `timeout_ms` (after the prompt). `call_ended` follows.
    SurveyStarted {
        call_id: String,
        timeout_ms: u64,
    },
    /// Caller: the call waits in a queue.
    CallQueued {
        req: Option<String>,
        call_id: String,
        queue: String,
        position: u32,
    },
    DispositionSaved {
        req: Option<String>,
        call_id: String,
        request_id: String,
    },
    History {
        req: Option<String>,
        number: String,
        customer: Option<CallerInfo>,
        entries: Vec<HistoryEntry>,
    },
    /// Pushed to agents and supervisors whenever a queue changes, and at least every second
    /// while calls wait. `colleagues` comes with the first push after login and whenever a
    /// colleague's state changes (absent: unchanged): who can take a transfer, a consult or an
    /// escalation.
    QueueStatus {
        queues: Vec<QueueSummary>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        colleagues: Option<Vec<Colleague>>,
    },
    /// Supervisors: the live wallboard, pushed every second.
    Wallboard {
        board: Box<crate::metrics::Wallboard>,
    },
    /// Supervisor: the answer to `report`, with the same rows as CSV.
    Report {
        req: Option<String>,
        rows: Vec<crate::metrics::ReportRow>,
        csv: String,
    },
    /// Agent: the call's hold state changed (the switchboard is the truth).
    CallHeld {
        call_id: String,
        on: bool,
    },
    /// Supervisor: monitoring runs (sent on start and on each mode change).
    MonitorStarted {
        req: Option<String>,
        session_id: String,
        agent: String,
        call_id: String,
        mode: MonitorMode,
    },
    /// Supervisor: monitoring is over (`stopped`, `call_ended`, `supervisor_left`).
    MonitorEnded {
        session_id: String,
        reason: String,
    },
    /// Agent, when the switchboard is configured to say so: a supervisor is (or no longer is)
    /// taking part in this call.
    Monitored {
        active: bool,
        mode: Option<MonitorMode>,
    },
    /// Agent: where the consult it started stands (`ended` with a `reason`: `cancelled`,
    /// `declined`, `ring_no_answer`, `colleague_left`, `colleague_logged_out`, `call_ended`).
    ConsultState {
        call_id: String,
        agent: String,
        kind: ConsultKind,
        state: ConsultPhase,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Agent: the answer to `callbacks`.
    Callbacks {
        req: Option<String>,
        entries: Vec<CallbackInfo>,
    },
    /// Customer endpoint: registered for calls to `number`.
    Registered {
        req: Option<String>,
        number: String,
    },
    /// Customer endpoint: the switchboard rings it (an agent's outbound call or callback);
    /// answer with `answer`.
    IncomingCall {
        call_id: String,
        /// The agent calling.
        from: String,
    },
    /// Caller: the call will be called back when its turn comes; the caller may hang up.
    CallbackScheduled {
        req: Option<String>,
        call_id: String,
    },
    /// Every few seconds while media flows: how much of this client's voice the switchboard
    /// lost over the last seconds, percent, before any repair from redundancy (what an RTCP
    /// receiver report's fraction lost says). Clients size their Opus FEC from it.
    ReceptionReport {
        loss_pct: f64,
    },
    Pong {
        req: Option<String>,
        t: u64,
    },
    Error {
        req: Option<String>,
        code: ErrorCode,
        message: String,
    },
}

/// Stable error codes. Clients switch on these; the message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON, or a field has the wrong shape.
    BadJson,
    /// The `type` is not one this version knows.
    UnknownType,
    /// The frame is larger than 64 KiB.
    TooLarge,
    /// Binary frames are not part of the protocol.
    BinaryNotSupported,
    /// The client speaks a protocol version this switchboard does not.
    UnsupportedVersion,
    /// The message needs a login first.
    Unauthenticated,
    /// Wrong user or password.
    BadCredentials,
    /// The user's role may not send this message.
    Forbidden,
    /// The SDP offer does not parse or has no usable audio.
    BadSdp,
    UnknownQueue,
    UnknownCall,
    /// The request does not fit the current state (answer with no offer, dial twice, ...).
    InvalidState,
    /// A field value is out of range (empty number, follow-up without a time, ...).
    BadRequest,
    /// No customer endpoint is registered for the number dialed.
    Unreachable,
    /// The switchboard failed; the request was not carried out.
    Internal,
}

/// Why a frame from a client could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("message is {0} bytes; the limit is {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("malformed message: {0}")]
    BadJson(String),
}

impl ProtocolError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::TooLarge(_) => ErrorCode::TooLarge,
            ProtocolError::UnknownType(_) => ErrorCode::UnknownType,
            ProtocolError::BadJson(_) => ErrorCode::BadJson,
        }
    }
}

const CLIENT_TYPES: &[&str] = &[
    "login",
    "dial",
    "media_offer",
    "set_state",
    "answer",
    "decline",
    "hangup",
    "disposition",
    "history",
    "customer_notes",
    "monitor",
    "stop_monitor",
    "hold",
    "mute",
    "report",
    "transfer",
    "consult",
    "escalate",
    "complete_transfer",
    "cancel_consult",
    "callbacks",
    "dial_callback",
    "dial_out",
    "register",
    "request_callback",
    "ping",
];

/// Parses one untrusted text frame. Never panics; every failure has a stable error code.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ProtocolError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge(text.len()));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ProtocolError::BadJson(e.to_string()))?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return Err(ProtocolError::BadJson(
            "expected an object with a string field \"type\"".into(),
        ));
    };
    if !CLIENT_TYPES.contains(&kind) {
        return Err(ProtocolError::UnknownType(kind.chars().take(64).collect()));
    }
    serde_json::from_value(value).map_err(|e| ProtocolError::BadJson(e.to_string()))
}

/// The request id of a frame that failed to parse, if one can be read, so even errors for
/// malformed messages can be matched by the client.
pub fn salvage_req(text: &str) -> Option<String> {
    if text.len() > MAX_MESSAGE_BYTES {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("req")?.as_str().map(str::to_owned)
}

/// The caller's number shown in logs: all but the last three digits masked.
pub fn redact_number(number: &str) -> String {
    let n = number.chars().count();
    number
        .chars()
        .enumerate()
        .map(|(i, c)| if i + 3 < n { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_message_type() {
        let samples = [
            r#"{"type":"login","protocol":1,"user":"ana","password":"pw","req":"1"}"#,
            r#"{"type":"dial","protocol":1,"from":"+15551234","name":"Bo","queue":"support"}"#,
            r#"{"type":"media_offer","sdp":"v=0"}"#,
            r#"{"type":"set_state","state":"not_ready","reason":"lunch"}"#,
            r#"{"type":"answer","call_id":"c1"}"#,
            r#"{"type":"decline","call_id":"c1"}"#,
            r#"{"type":"hangup"}"#,
            r#"{"type":"disposition","call_id":"c1","request_id":"r1","code":"billing","resolution":"follow_up","notes":"n","follow_up_at_ms":5}"#,
            r#"{"type":"history","number":"+1555"}"#,
            r#"{"type":"customer_notes","number":"+1555","notes":"Prefers email"}"#,
            r#"{"type":"monitor","agent":"ana","mode":"whisper"}"#,
            r#"{"type":"stop_monitor"}"#,
            r#"{"type":"hold","call_id":"c1","on":true}"#,
            r#"{"type":"mute","call_id":"c1","on":false}"#,
            r#"{"type":"report","from_ms":0,"to_ms":86400000,"by":"agent"}"#,
            r#"{"type":"transfer","call_id":"c1","queue":"billing","notes":"n"}"#,
            r#"{"type":"consult","call_id":"c1","agent":"bayu"}"#,
            r#"{"type":"escalate","call_id":"c1","supervisor":"sri","notes":"angry"}"#,
            r#"{"type":"complete_transfer","call_id":"c1"}"#,
            r#"{"type":"cancel_consult","call_id":"c1"}"#,
            r#"{"type":"callbacks"}"#,
            r#"{"type":"dial_callback","callback_id":"cb-c1-ana"}"#,
            r#"{"type":"dial_out","number":"+15550100"}"#,
            r#"{"type":"register","protocol":1,"number":"+15550100"}"#,
            r#"{"type":"request_callback"}"#,
            r#"{"type":"ping","t":7}"#,
        ];
        assert_eq!(samples.len(), CLIENT_TYPES.len());
        for s in samples {
            let m = parse_client_message(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert!(s.contains(m.type_name()));
        }
    }

    #[test]
    fn rejects_bad_frames_with_stable_codes() {
        assert_eq!(
            parse_client_message("{not json").unwrap_err().code(),
            ErrorCode::BadJson
        );
        assert_eq!(
            parse_client_message(r#"{"type":"launch_rocket"}"#)
                .unwrap_err()
                .code(),
            ErrorCode::UnknownType
        );
        assert_eq!(
            parse_client_message(r#"{"type":"answer"}"#)
                .unwrap_err()
                .code(),
            ErrorCode::BadJson
        );
        assert_eq!(
            parse_client_message("[1,2]").unwrap_err().code(),
            ErrorCode::BadJson
        );
        let big = format!(
            r#"{{"type":"ping","t":1,"pad":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(
            parse_client_message(&big).unwrap_err().code(),
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn salvages_request_id_from_bad_message() {
        assert_eq!(
            salvage_req(r#"{"type":"nope","req":"42"}"#).as_deref(),
            Some("42")
        );
        assert_eq!(salvage_req("{"), None);
    }

    #[test]
    fn server_messages_round_trip() {
        let m = ServerMessage::Error {
            req: Some("9".into()),
            code: ErrorCode::Forbidden,
            message: "agents may not monitor".into(),
        };
        let s = serde_json::to_string(&m).unwrap();
        assert!(s.contains(r#""type":"error""#) && s.contains(r#""code":"forbidden""#));
        assert_eq!(serde_json::from_str::<ServerMessage>(&s).unwrap(), m);
    }

    #[test]
    fn every_documented_server_example_parses() {
        let doc = include_str!("../docs/protocol.md");
        let start = doc.find("## Switchboard → client").expect("the section");
        let end = doc.find("## Error codes").expect("the next section");
        let examples: Vec<&str> = doc[start..end]
            .lines()
            .filter(|l| l.starts_with("{\"type\""))
            .collect();
        assert!(examples.len() >= 10, "{examples:?}");
        for line in examples {
            if let Err(e) = serde_json::from_str::<ServerMessage>(line) {
                panic!("{e}: {line}");
            }
        }
        let wallboard = doc[start..end]
            .lines()
            .find(|l| l.starts_with("{\"type\":\"wallboard\""))
            .expect("a wallboard example");
        let Ok(ServerMessage::Wallboard { board }) = serde_json::from_str(wallboard) else {
            panic!("a wallboard");
        };
        let quality = board.agents[0].voice_quality.expect("voice quality");
        assert_eq!(quality.rating, crate::metrics::QualityRating::Poor);
        assert_eq!(quality.caller_to_agent.map(|q| q.loss_pct), Some(19.6));
    }

    #[test]
    fn every_documented_client_example_parses() {
        let doc = include_str!("../docs/protocol.md");
        let start = doc.find("## Client → switchboard").expect("the section");
        let end = doc
            .find("## Switchboard → client")
            .expect("the next section");
        let examples: Vec<&str> = doc[start..end]
            .lines()
            .filter(|l| l.starts_with("{\"type\""))
            .collect();
        let mut types: Vec<&str> = Vec::new();
        for line in examples {
            match parse_client_message(line) {
                Ok(m) => types.push(m.type_name()),
                Err(e) => panic!("{e}: {line}"),
            }
        }
        for kind in CLIENT_TYPES {
            assert!(types.contains(kind), "no example of {kind}");
        }
    }

    #[test]
    fn redacts_all_but_last_three() {
        assert_eq!(redact_number("+15551234"), "******234");
        assert_eq!(redact_number("12"), "12");
    }
}
