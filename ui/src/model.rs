//! View models: plain data that the engine fills from its state before each frame and the views
//! draw.
//!
//! The engine owns one [`PhoneView`]. Each frame it refreshes the parts it is the source of
//! (`now_ms`, agent state, call, statistics, device lists), calls [`crate::phone_ui`], then
//! executes the returned [`crate::Intent`]s. The views edit in place only what a person types or
//! picks (the login form, the [`DispositionDraft`], search text, report dates, the selected tab),
//! so typed text survives from frame to frame; the engine leaves those fields alone except on
//! purpose (a fresh draft when a call is answered, clearing the password after a login).
//!
//! There is no clock in the views: every timer is [`PhoneView::now_ms`] minus a `*_since_ms`, or a
//! `*_deadline_ms` minus `now_ms`, all on the engine's clock. Statistics that come from the
//! switchboard (`longest_wait_ms`, `asa_ms`) are durations as of the engine's last update.
//! Wall-clock times that people read (a past call's date) come preformatted, because the engine
//! knows the time zone.

use std::fmt;

use egui::{Key, KeyboardShortcut, Modifiers};
use serde::{Deserialize, Serialize};

use crate::time_text::{self, DateTextError, LocalDateTime};

/// Everything the desktop app shows, one frame's worth.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PhoneView {
    /// The engine's clock in milliseconds (any epoch); every `*_since_ms` and `*_deadline_ms`
    /// below is on the same clock.
    pub now_ms: u64,
    /// The tab in front. The views change it when the agent picks a tab (and report
    /// [`crate::Intent::SelectTab`]) and bring the call tab forward when a call is answered.
    pub tab: Tab,
    /// What the agent typed on the login screen, and how the last attempt went.
    pub login: LoginForm,
    /// `None` until logged in; while `None` only the login screen is shown.
    pub agent: Option<AgentHeader>,
    /// The agent's call, from ringing to the end of wrap-up.
    pub call: CallView,
    /// The disposition being written for the current (or just ended) call; the views edit it in
    /// place and report every change as [`crate::Intent::DraftChanged`] so the engine can persist it.
    pub draft: DispositionDraft,
    /// Whether the engine has stored the latest draft; the views set `Saving` on each change.
    pub draft_status: DraftStatus,
    /// The configured disposition codes, in the order the form lists them.
    pub disposition_codes: Vec<DispositionCode>,
    /// Where a call can be transferred.
    pub directory: Directory,
    /// The History tab.
    pub history: HistoryTab,
    /// The Settings tab: audio devices and processing.
    pub settings: SettingsView,
    /// Supervisor statistics; `None` for agents, or until the first update arrives.
    pub wallboard: Option<WallboardView>,
    /// The supervisor's Reports tab.
    pub reports: ReportsView,
    /// Non-blocking messages shown under the header until dismissed.
    pub notices: Vec<Notice>,
    /// Keyboard shortcuts, configurable; the defaults are F6 to F10 and Ctrl+Enter.
    pub shortcuts: Shortcuts,
    /// The number typed on the dial pad (kept while the agent does something else).
    pub dial_number: String,
}

impl PhoneView {
    /// Is the signed-in user a supervisor (and so sees the Wallboard and Reports tabs)?
    pub fn is_supervisor(&self) -> bool {
        self.agent
            .as_ref()
            .is_some_and(|agent| agent.role == Role::Supervisor)
    }

    /// The tabs this user can open, in the order the tab bar shows them.
    pub fn available_tabs(&self) -> Vec<Tab> {
        let mut tabs = vec![Tab::Call, Tab::History, Tab::Settings];
        if self.is_supervisor() {
            tabs.extend([Tab::Wallboard, Tab::Reports]);
        }
        tabs
    }
}

/// The tabs of the workstation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tab {
    /// The call: screen-pop, call controls, wrap-up form.
    #[default]
    Call,
    History,
    Settings,
    /// Supervisors only.
    Wallboard,
    /// Supervisors only.
    Reports,
}

impl Tab {
    /// The tab's visible (and accessible) name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Call => "Call",
            Self::History => "History",
            Self::Settings => "Settings",
            Self::Wallboard => "Wallboard",
            Self::Reports => "Reports",
        }
    }
}

/// The login screen's fields. The password is never serialized and never printed by `Debug`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    /// Switchboard address, e.g. `wss://switchboard.example:8443`.
    pub url: String,
    pub user: String,
    /// Typed by the agent; the engine clears it once it has used it.
    #[serde(skip)]
    pub password: String,
    /// True while the engine is connecting; the Log in button waits.
    pub in_progress: bool,
    /// Why the last attempt failed, shown under the form.
    pub error: Option<LoginError>,
}

impl fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginForm")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("in_progress", &self.in_progress)
            .field("error", &self.error)
            .finish()
    }
}

/// Why a login failed, as the agent needs to know it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginError {
    /// The switchboard did not answer; the detail (e.g. "connection refused") is shown too.
    Unreachable(String),
    /// User or password wrong.
    BadCredentials,
    /// Anything else, as a sentence.
    Other(String),
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(detail) => {
                write!(f, "Cannot reach the switchboard ({detail}). Check the URL.")
            }
            Self::BadCredentials => f.write_str("Wrong user or password."),
            Self::Other(text) => f.write_str(text),
        }
    }
}

/// The always-visible header: who, in which state, how the connection and the queues are doing.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentHeader {
    pub agent_id: String,
    /// Display name, e.g. "Maria Lopez".
    pub name: String,
    pub role: Role,
    pub state: AgentState,
    /// When `state` began, on the engine clock.
    pub state_since_ms: u64,
    /// The configured not-ready reasons ("Break", "Lunch", "Training"), in menu order.
    /// F6 uses the first one.
    pub not_ready_reasons: Vec<String>,
    /// A not-ready reason picked during a call; the engine applies it when wrap-up ends.
    pub pending_not_ready: Option<String>,
    pub connection: ConnectionHealth,
    pub queues: QueueSummary,
    /// A supervisor is listening, whispering or barged in on this agent.
    pub monitored: bool,
}

/// What the signed-in user may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    #[default]
    Agent,
    /// An agent who also sees the wallboard and reports and can monitor agents.
    Supervisor,
}

/// An agent's state as the switchboard sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AgentState {
    Available,
    NotReady {
        reason: String,
    },
    /// A call is being offered.
    Ringing,
    OnCall,
    /// After-call work: writing the disposition.
    WrapUp,
    /// Logged in but not yet placed in any state (e.g. right after login).
    #[default]
    Unknown,
}

impl AgentState {
    /// The state in words: "Available", "Not ready: Lunch", "On call".
    pub fn label(&self) -> String {
        match self {
            Self::Available => "Available".to_owned(),
            Self::NotReady { reason } if reason.is_empty() => "Not ready".to_owned(),
            Self::NotReady { reason } => format!("Not ready: {reason}"),
            Self::Ringing => "Ringing".to_owned(),
            Self::OnCall => "On call".to_owned(),
            Self::WrapUp => "Wrap-up".to_owned(),
            Self::Unknown => "Signing in".to_owned(),
        }
    }

    /// Can the agent choose Available / Not ready directly (no call in progress)?
    pub fn is_idle(&self) -> bool {
        matches!(
            self,
            Self::Available | Self::NotReady { .. } | Self::Unknown
        )
    }
}

/// The phone's link to the switchboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionHealth {
    Connected {
        /// Last measured signalling round trip.
        round_trip_ms: u32,
    },
    Reconnecting {
        /// 1 for the first retry.
        attempt: u32,
        /// When the link was lost, on the engine clock.
        since_ms: u64,
    },
}

impl Default for ConnectionHealth {
    fn default() -> Self {
        Self::Connected { round_trip_ms: 0 }
    }
}

/// The agent's queues in one line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSummary {
    pub calls_waiting: u32,
    /// How long the oldest waiting call has waited.
    pub longest_wait_ms: u64,
}

/// The agent's call, if any.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub enum CallView {
    #[default]
    Idle,
    Ringing(RingingCall),
    InCall(ActiveCall),
    WrapUp(WrapUpCall),
}

/// Who is calling, and what happened on their earlier calls.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallerInfo {
    /// As dialled, e.g. "+34 600 123 456".
    pub number: String,
    /// From the contact directory, when known.
    pub name: Option<String>,
    /// What the team keeps about this customer (preferences, account facts), when any.
    pub notes: Option<String>,
    /// Earlier calls from this number, any order (the views show the newest first).
    pub history: Vec<PastCall>,
}

/// Caller numbers and names are personal data: `Debug` (and so logs) shows only the last two
/// digits and whether a name is known.
impl fmt::Debug for CallerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits: Vec<char> = self.number.chars().filter(char::is_ascii_digit).collect();
        let tail: String = digits[digits.len().saturating_sub(2)..].iter().collect();
        f.debug_struct("CallerInfo")
            .field("number", &format!("…{tail}"))
            .field("name", &self.name.as_ref().map(|_| "<redacted>"))
            .field("notes", &self.notes.as_ref().map(|_| "<redacted>"))
            .field("history_len", &self.history.len())
            .finish()
    }
}

impl CallerInfo {
    /// The name if known, else the number.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.number)
    }
}

/// A call being offered to the agent: the screen-pop.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RingingCall {
    pub call_id: String,
    pub caller: CallerInfo,
    /// The queue's display name.
    pub queue: String,
    /// How long the caller waited in the queue before this offer.
    pub waited_ms: u64,
    /// When the offer started ringing, on the engine clock.
    pub ring_started_ms: u64,
    /// When the offer times out and goes to another agent, on the engine clock.
    pub ring_deadline_ms: u64,
    /// Why the call comes to this agent (a transfer, a consult, an escalation, a callback);
    /// `None` for the next caller of a queue.
    pub origin: Option<CallOrigin>,
}

/// Why a call comes to this agent rather than as the next caller of a queue, with the notes
/// that travelled with it. Shown on the ringing screen and kept on the in-call screen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallOrigin {
    pub kind: OriginKind,
    /// The colleague who transferred, consults or escalates (or who promised the callback).
    pub from: Option<String>,
    /// The notes that travelled with the call; empty when none did.
    pub notes: String,
}

/// How a call was handed to this agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OriginKind {
    /// A colleague sent the call straight over.
    #[default]
    BlindTransfer,
    /// A colleague asks first, before a warm transfer; the caller is on hold.
    Consult,
    /// An agent brings this supervisor into the call (all three hear each other).
    Escalation,
    /// A callback this agent promised: answering rings the customer.
    Callback,
    /// A call this agent dialled.
    Outbound,
    /// A kind this version does not know, as the switchboard named it.
    Other(String),
}

impl CallOrigin {
    /// One line for the screen: "Transfer from ana: wants a refund", "Your callback: …",
    /// "Consult from ana".
    pub fn headline(&self) -> String {
        let from = self.from.as_deref().unwrap_or("a colleague");
        let what = match &self.kind {
            OriginKind::BlindTransfer => format!("Transfer from {from}"),
            OriginKind::Consult => format!("Consult from {from}"),
            OriginKind::Escalation => format!("Escalation from {from}"),
            OriginKind::Callback => "Your callback".to_owned(),
            OriginKind::Outbound => "Your outbound call".to_owned(),
            OriginKind::Other(kind) => format!("Handed over ({kind}) by {from}"),
        };
        let notes = self.notes.trim();
        if notes.is_empty() {
            what
        } else {
            format!("{what}: {notes}")
        }
    }
}

/// A connected call.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ActiveCall {
    pub call_id: String,
    pub caller: CallerInfo,
    pub queue: String,
    /// When the agent answered, on the engine clock.
    pub answered_at_ms: u64,
    pub muted: bool,
    /// `Some(since)` while the caller is on hold.
    pub held_since_ms: Option<u64>,
    /// Microphone level after processing, dB full scale (0 = loudest; -90 or lower = silence).
    pub mic_level_dbfs: f32,
    /// Level of what the headset plays, dB full scale.
    pub speaker_level_dbfs: f32,
    /// Receive-side jitter buffer statistics over the last few seconds.
    pub voice: VoiceStats,
    /// The DTMF digits sent so far on this call, e.g. "1#".
    pub dtmf_sent: String,
    /// Why the call came to this agent, as the ringing screen showed it.
    pub origin: Option<CallOrigin>,
    /// A colleague this agent is consulting or a supervisor it escalated to, while that lasts.
    pub consult: Option<ConsultView>,
}

/// A consult (warm transfer) or escalation this agent started on its call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsultView {
    /// The colleague or supervisor, by name.
    pub colleague: String,
    pub kind: ConsultKind,
    pub phase: ConsultPhase,
}

/// What the consulted colleague joins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConsultKind {
    /// Warm transfer: the agent talks to the colleague while the caller is on hold.
    #[default]
    WarmTransfer,
    /// Escalation: caller, agent and supervisor all hear each other.
    Escalation,
}

/// Where a consult stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConsultPhase {
    /// The colleague's phone rings.
    #[default]
    Ringing,
    /// The colleague answered; the transfer can be completed.
    Connected,
}

/// A call that has ended, while the agent writes the disposition.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WrapUpCall {
    pub call_id: String,
    pub caller: CallerInfo,
    pub queue: String,
    /// How long the call lasted, answer to hang-up.
    pub talk_ms: u64,
    /// When after-call work ends and the agent goes back to Available on the engine clock;
    /// `None` when wrap-up has no time limit.
    pub acw_deadline_ms: Option<u64>,
}

/// Receive-side voice statistics from the jitter buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VoiceStats {
    /// Packets lost, percent.
    pub loss_pct: f32,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f32,
    /// Share of played audio that was concealment (made up for missing packets), percent.
    pub concealment_pct: f32,
}

/// Voice quality in one word, for a glance; ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VoiceQuality {
    Good,
    Fair,
    Poor,
}

impl VoiceQuality {
    pub fn label(self) -> &'static str {
        match self {
            Self::Good => "Good",
            Self::Fair => "Fair",
            Self::Poor => "Poor",
        }
    }
}

impl VoiceStats {
    /// Good: under 1 % loss, 30 ms jitter and 2 % concealment; Poor: 5 % loss, 60 ms jitter or
    /// 8 % concealment or more (people notice gaps and robotic speech); Fair in between.
    pub fn quality(&self) -> VoiceQuality {
        if self.loss_pct >= 5.0 || self.jitter_ms >= 60.0 || self.concealment_pct >= 8.0 {
            VoiceQuality::Poor
        } else if self.loss_pct >= 1.0 || self.jitter_ms >= 30.0 || self.concealment_pct >= 2.0 {
            VoiceQuality::Fair
        } else {
            VoiceQuality::Good
        }
    }
}

/// An earlier call, for the screen-pop and the History tab.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PastCall {
    pub call_id: String,
    /// When it started, on the engine clock; used only to sort newest first.
    pub started_ms: u64,
    /// When it started as the agent reads it, e.g. "2026-11-20 14:03".
    pub started_text: String,
    pub caller_number: String,
    pub caller_name: Option<String>,
    /// The agent who took it ("" if nobody did).
    pub agent_name: String,
    pub queue: String,
    pub talk_ms: u64,
    pub disposition_code: Option<String>,
    pub resolution: Option<Resolution>,
    pub notes: String,
    /// Customer satisfaction score, 1 to 5, when the caller answered the survey.
    pub csat: Option<u8>,
}

/// Numbers, names and notes are personal data: `Debug` shows only the call id and outcome.
impl fmt::Debug for PastCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PastCall")
            .field("call_id", &self.call_id)
            .field("started_text", &self.started_text)
            .field("disposition_code", &self.disposition_code)
            .field("resolution", &self.resolution)
            .field("csat", &self.csat)
            .finish_non_exhaustive()
    }
}

/// Past calls sorted newest first.
pub fn newest_first(calls: &[PastCall]) -> Vec<&PastCall> {
    let mut sorted: Vec<&PastCall> = calls.iter().collect();
    sorted.sort_by_key(|call| std::cmp::Reverse(call.started_ms));
    sorted
}

/// How a call ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resolution {
    Resolved,
    Escalated,
    /// Someone must call back; a follow-up date and time is required.
    FollowUp,
}

impl Resolution {
    pub const ALL: [Self; 3] = [Self::Resolved, Self::Escalated, Self::FollowUp];

    pub fn label(self) -> &'static str {
        match self {
            Self::Resolved => "Resolved",
            Self::Escalated => "Escalated",
            Self::FollowUp => "Follow-up",
        }
    }
}

/// A configured disposition code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DispositionCode {
    /// Stored with the call, e.g. "BILLING".
    pub code: String,
    /// Shown to the agent, e.g. "Billing question".
    pub label: String,
}

/// The disposition as the agent is writing it: started during the call (notes), finished in
/// wrap-up. Free text stays exactly as typed; [`DispositionDraft::validate`] turns it into a
/// [`Disposition`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DispositionDraft {
    /// The call it belongs to.
    pub call_id: String,
    /// One of [`PhoneView::disposition_codes`]' `code`.
    pub code: Option<String>,
    pub resolution: Option<Resolution>,
    pub notes: String,
    /// `YYYY-MM-DD HH:MM`, required when the resolution is Follow-up.
    pub follow_up_text: String,
}

/// A complete, checked disposition, ready to store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposition {
    pub call_id: String,
    pub code: String,
    pub resolution: Resolution,
    pub notes: String,
    /// Present exactly when `resolution` is Follow-up; agent's local time.
    pub follow_up: Option<LocalDateTime>,
}

/// What is missing or wrong in a draft; `Display` is the sentence the form shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DraftProblem {
    NoCode,
    /// The code is not (or no longer) in the configured list.
    UnknownCode,
    NoResolution,
    FollowUp(DateTextError),
}

impl fmt::Display for DraftProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCode => f.write_str("Choose a disposition code."),
            Self::UnknownCode => {
                f.write_str("That disposition code no longer exists; choose another.")
            }
            Self::NoResolution => f.write_str("Choose a resolution."),
            Self::FollowUp(DateTextError::Empty) => {
                f.write_str("Follow-up date and time are required (YYYY-MM-DD HH:MM).")
            }
            Self::FollowUp(error) => write!(f, "Follow-up: {error}"),
        }
    }
}

impl DispositionDraft {
    /// A fresh draft for a call.
    pub fn for_call(call_id: impl Into<String>) -> Self {
        Self {
            call_id: call_id.into(),
            ..Self::default()
        }
    }

    /// The follow-up field's problem alone, so the form can show it under the field.
    pub fn follow_up_problem(&self) -> Option<DraftProblem> {
        if self.resolution != Some(Resolution::FollowUp) {
            return None;
        }
        time_text::parse_date_time(&self.follow_up_text)
            .err()
            .map(DraftProblem::FollowUp)
    }

    /// Check the draft against the configured codes; every problem at once, in form order.
    pub fn validate(&self, codes: &[DispositionCode]) -> Result<Disposition, Vec<DraftProblem>> {
        let mut problems = Vec::new();
        match &self.code {
            None => problems.push(DraftProblem::NoCode),
            Some(code) if !codes.iter().any(|known| &known.code == code) => {
                problems.push(DraftProblem::UnknownCode);
            }
            Some(_) => {}
        }
        let follow_up = match self.resolution {
            None => {
                problems.push(DraftProblem::NoResolution);
                None
            }
            Some(Resolution::FollowUp) => match time_text::parse_date_time(&self.follow_up_text) {
                Ok(at) => Some(at),
                Err(error) => {
                    problems.push(DraftProblem::FollowUp(error));
                    None
                }
            },
            Some(_) => None,
        };
        match (&self.code, self.resolution) {
            (Some(code), Some(resolution)) if problems.is_empty() => Ok(Disposition {
                call_id: self.call_id.clone(),
                code: code.clone(),
                resolution,
                notes: self.notes.trim_end().to_owned(),
                follow_up,
            }),
            _ => Err(problems),
        }
    }
}

/// Whether the engine has stored the latest draft.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DraftStatus {
    /// Stored (or nothing to store).
    #[default]
    Saved,
    /// Changed since the engine last stored it.
    Saving,
    /// The engine could not store it; the sentence says why. The text is still on screen.
    SaveFailed(String),
}

/// Transfer targets.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Directory {
    pub queues: Vec<QueueRef>,
    /// Other agents logged in (not the one at this desk).
    pub agents: Vec<AgentRef>,
    /// Supervisors logged in: who can take an escalation.
    pub supervisors: Vec<AgentRef>,
}

/// A queue by id and display name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueRef {
    pub queue_id: String,
    pub name: String,
}

/// Another agent, as a transfer target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentRef {
    pub agent_id: String,
    pub name: String,
    /// Only available agents can take a transfer.
    pub state: AgentState,
}

/// The History tab.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryTab {
    /// The agent's own calls today, any order (shown newest first).
    pub today: Vec<PastCall>,
    /// What the agent typed in the search field.
    pub search_text: String,
    /// The last search the engine ran, if any.
    pub search: Option<HistorySearch>,
    /// The callbacks this agent promised that are not done yet, as the switchboard last said
    /// (any order; shown soonest first).
    pub callbacks: Vec<PendingCallback>,
}

/// A callback the agent promised, for the list on the History tab.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingCallback {
    pub callback_id: String,
    pub number: String,
    pub name: Option<String>,
    pub queue: String,
    /// When it is due, on the engine clock (sorting and "overdue").
    pub due_ms: u64,
    /// When it is due as the agent reads it, e.g. "2026-11-24 09:30".
    pub due_text: String,
    pub notes: String,
    /// The switchboard is calling the customer for it now.
    pub dialing: bool,
}

/// Numbers, names and notes are personal data: `Debug` shows only the id and the time.
impl fmt::Debug for PendingCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingCallback")
            .field("callback_id", &self.callback_id)
            .field("due_text", &self.due_text)
            .field("dialing", &self.dialing)
            .finish_non_exhaustive()
    }
}

/// A search by caller number and its results.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HistorySearch {
    /// The text searched for (the field may have changed since).
    pub query: String,
    pub in_progress: bool,
    pub results: Vec<PastCall>,
}

/// Which audio device a choice is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeviceRole {
    Microphone,
    /// Where the call is heard (the headset).
    Speaker,
    /// Where the ring tone plays (often the desk speakers, so it is heard without the headset).
    Ringer,
}

impl DeviceRole {
    pub fn label(self) -> &'static str {
        match self {
            Self::Microphone => "Microphone",
            Self::Speaker => "Speaker",
            Self::Ringer => "Ringer",
        }
    }
}

/// The Settings tab.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SettingsView {
    /// Input devices present now, by name.
    pub microphones: Vec<String>,
    /// Output devices present now, by name (used for both speaker and ringer).
    pub speakers: Vec<String>,
    /// The chosen devices; `None` is the system default. A chosen device that is not present
    /// is shown as missing.
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    pub ringer: Option<String>,
    pub noise_suppression: bool,
    pub auto_gain: bool,
    /// A desktop popup when a call comes in.
    pub desktop_notifications: bool,
    /// The test tone is playing on the speaker.
    pub test_tone_playing: bool,
    /// `Some(level)` while the microphone test runs.
    pub mic_test_level_dbfs: Option<f32>,
}

impl SettingsView {
    /// The chosen device for a role.
    pub fn chosen(&self, role: DeviceRole) -> Option<&str> {
        match role {
            DeviceRole::Microphone => self.microphone.as_deref(),
            DeviceRole::Speaker => self.speaker.as_deref(),
            DeviceRole::Ringer => self.ringer.as_deref(),
        }
    }

    /// The devices that can fill a role.
    pub fn devices(&self, role: DeviceRole) -> &[String] {
        match role {
            DeviceRole::Microphone => &self.microphones,
            DeviceRole::Speaker | DeviceRole::Ringer => &self.speakers,
        }
    }
}

/// Keyboard shortcuts. They work anywhere in the window, also while typing notes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Shortcuts {
    /// Available <-> Not ready (first reason).
    pub toggle_ready: KeyboardShortcut,
    pub hold: KeyboardShortcut,
    pub mute: KeyboardShortcut,
    pub answer: KeyboardShortcut,
    pub hang_up: KeyboardShortcut,
    pub submit_disposition: KeyboardShortcut,
}

impl Default for Shortcuts {
    fn default() -> Self {
        Self {
            toggle_ready: KeyboardShortcut::new(Modifiers::NONE, Key::F6),
            hold: KeyboardShortcut::new(Modifiers::NONE, Key::F7),
            mute: KeyboardShortcut::new(Modifiers::NONE, Key::F8),
            answer: KeyboardShortcut::new(Modifiers::NONE, Key::F9),
            hang_up: KeyboardShortcut::new(Modifiers::NONE, Key::F10),
            submit_disposition: KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter),
        }
    }
}

impl Shortcuts {
    /// Every shortcut with what it does, for the Settings tab.
    pub fn described(&self) -> [(&'static str, KeyboardShortcut); 6] {
        [
            ("Toggle Available / Not ready", self.toggle_ready),
            ("Hold / resume", self.hold),
            ("Mute / unmute", self.mute),
            ("Answer", self.answer),
            ("Hang up", self.hang_up),
            ("Submit disposition", self.submit_disposition),
        ]
    }
}

/// A supervisor's live view of queues and agents.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WallboardView {
    pub queues: Vec<QueueStats>,
    pub agents: Vec<AgentRow>,
    /// Today's 15-minute intervals, oldest first.
    pub intervals: Vec<IntervalStats>,
    /// Share of calls to answer within the threshold, e.g. 80.0 (drawn as a line).
    pub service_level_target_pct: f32,
    /// Whom this supervisor is monitoring now, if anyone.
    pub monitoring: Option<MonitorSession>,
}

/// One queue's numbers for today.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueStats {
    pub queue_id: String,
    pub name: String,
    pub waiting: u32,
    pub longest_wait_ms: u64,
    /// `None` until a call has been offered today.
    pub service_level_pct: Option<f32>,
    /// Average speed of answer.
    pub asa_ms: Option<u64>,
    /// Average handle time (talk + hold + wrap-up).
    pub aht_ms: Option<u64>,
    pub abandon_pct: Option<f32>,
    pub handled_today: u32,
}

/// One agent on the wallboard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentRow {
    pub agent_id: String,
    pub name: String,
    pub state: AgentState,
    pub state_since_ms: u64,
    /// `Some` while the agent is on a call (monitoring is possible then).
    pub call: Option<AgentCall>,
}

/// The call an agent is on, as the supervisor sees it.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentCall {
    /// Caller name or number as the engine chooses to show it.
    pub caller: String,
    pub started_ms: u64,
    /// The caller's voice as the switchboard receives it (what the agent hears); `None` until
    /// measured.
    pub caller_to_agent: Option<VoiceStats>,
    /// The agent's voice as the switchboard receives it (what the caller hears).
    pub agent_to_caller: Option<VoiceStats>,
}

impl AgentCall {
    /// The worse of the two legs; `None` when neither is measured.
    pub fn quality(&self) -> Option<VoiceQuality> {
        [self.caller_to_agent, self.agent_to_caller]
            .iter()
            .flatten()
            .map(VoiceStats::quality)
            .max()
    }
}

/// The caller is personal data: `Debug` leaves it out.
impl fmt::Debug for AgentCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentCall")
            .field("started_ms", &self.started_ms)
            .field("caller_to_agent", &self.caller_to_agent)
            .field("agent_to_caller", &self.agent_to_caller)
            .finish_non_exhaustive()
    }
}

/// How a supervisor joins an agent's call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MonitorMode {
    /// Hear both sides; nobody hears the supervisor.
    Listen,
    /// Coach: only the agent hears the supervisor, never the caller.
    Whisper,
    /// Join: agent and caller both hear the supervisor.
    Barge,
}

impl MonitorMode {
    pub const ALL: [Self; 3] = [Self::Listen, Self::Whisper, Self::Barge];

    pub fn label(self) -> &'static str {
        match self {
            Self::Listen => "Listen",
            Self::Whisper => "Whisper",
            Self::Barge => "Barge",
        }
    }

    /// Who hears the supervisor, in words.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::Listen => "Hear the call; nobody hears you.",
            Self::Whisper => "Only the agent hears you; the caller does not.",
            Self::Barge => "Join the call: the agent and the caller hear you.",
        }
    }
}

/// The supervisor's current monitoring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorSession {
    pub agent_id: String,
    pub mode: MonitorMode,
}

/// One 15-minute interval of today.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntervalStats {
    /// Start of the interval, minutes since local midnight (0, 15, 30, ...).
    pub start_minute: u16,
    pub offered: u32,
    pub answered: u32,
    pub abandoned: u32,
    /// `None` when no call was offered in the interval.
    pub service_level_pct: Option<f32>,
}

/// The supervisor's Reports tab.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportsView {
    /// `YYYY-MM-DD`, inclusive.
    pub from_text: String,
    /// `YYYY-MM-DD`, inclusive.
    pub to_text: String,
    pub by: ReportGrouping,
    pub in_progress: bool,
    /// The last report the engine produced.
    pub table: Option<ReportTable>,
    /// Why the last report or export failed.
    pub error: Option<String>,
}

/// What a report has one row per.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReportGrouping {
    #[default]
    Agent,
    Queue,
}

impl ReportGrouping {
    pub fn label(self) -> &'static str {
        match self {
            Self::Agent => "By agent",
            Self::Queue => "By queue",
        }
    }
}

/// A report as text cells, formatted by the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A message for the agent that does not block anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Stable while the notice is shown, so dismissing one is not confused by others arriving.
    pub id: u64,
    pub level: NoticeLevel,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NoticeLevel {
    Info,
    Warning,
    Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes() -> Vec<DispositionCode> {
        vec![DispositionCode {
            code: "BILLING".into(),
            label: "Billing question".into(),
        }]
    }

    #[test]
    fn a_draft_lists_every_problem_then_validates() {
        let mut draft = DispositionDraft::for_call("c1");
        assert_eq!(
            draft.validate(&codes()),
            Err(vec![DraftProblem::NoCode, DraftProblem::NoResolution])
        );
        draft.code = Some("BILLING".into());
        draft.resolution = Some(Resolution::FollowUp);
        assert_eq!(
            draft.validate(&codes()),
            Err(vec![DraftProblem::FollowUp(DateTextError::Empty)])
        );
        draft.follow_up_text = "2026-11-24 09:30".into();
        draft.notes = "Call back about the refund\n".into();
        let disposition = draft.validate(&codes()).unwrap();
        assert_eq!(disposition.notes, "Call back about the refund");
        assert_eq!(
            disposition.follow_up.unwrap().to_string(),
            "2026-11-24 09:30"
        );
        draft.resolution = Some(Resolution::Resolved);
        assert_eq!(draft.validate(&codes()).unwrap().follow_up, None);
        draft.code = Some("GONE".into());
        assert_eq!(
            draft.validate(&codes()),
            Err(vec![DraftProblem::UnknownCode])
        );
    }

    #[test]
    fn voice_quality_thresholds() {
        let good = VoiceStats::default();
        assert_eq!(good.quality(), VoiceQuality::Good);
        let fair = VoiceStats {
            jitter_ms: 35.0,
            ..good
        };
        assert_eq!(fair.quality(), VoiceQuality::Fair);
        let poor = VoiceStats {
            concealment_pct: 9.0,
            ..good
        };
        assert_eq!(poor.quality(), VoiceQuality::Poor);
    }

    #[test]
    fn debug_output_redacts_personal_data() {
        let caller = CallerInfo {
            number: "+34 600 123 456".into(),
            name: Some("Ana Ruiz".into()),
            notes: Some("Prefers email".into()),
            history: vec![],
        };
        let text = format!("{caller:?}");
        assert!(text.contains("…56") && !text.contains("600") && !text.contains("Ana"));
        assert!(!text.contains("email"));
        let login = LoginForm {
            password: "hunter2".into(),
            ..LoginForm::default()
        };
        assert!(!format!("{login:?}").contains("hunter2"));
    }
}
