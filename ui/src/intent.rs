//! Intents: what the person at the desk asked for this frame, returned by [`crate::phone_ui`] for
//! the engine to carry out after drawing.
//!
//! Intents are commands in the imperative. The views never assume one succeeded: the next
//! [`crate::PhoneView`] the engine fills shows what actually happened. Toggles are sent as the
//! state wanted (`SetMuted(true)`), not as "toggle", so a click made on a stale frame cannot
//! flip the state the wrong way.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{DeviceRole, Disposition, DispositionDraft, MonitorMode, ReportGrouping, Tab};
use crate::time_text::CalendarDate;

/// One request from the person at the desk.
#[derive(Clone, Debug, PartialEq)]
pub enum Intent {
    /// Log in to the switchboard (Log in button, or Enter in the login form).
    LogIn {
        url: String,
        user: String,
        password: Password,
    },
    LogOut,
    SetAvailable,
    /// Go not ready with one of the configured reasons. During a call the engine applies it
    /// when wrap-up ends (and shows it as `AgentHeader::pending_not_ready` until then).
    SetNotReady {
        reason: String,
    },
    /// Withdraw a pending not-ready choice made during a call.
    CancelPendingNotReady,
    /// Answer the ringing call (button or F9).
    Answer,
    /// Decline the ringing call; the switchboard offers it to someone else.
    Decline,
    /// Hang up the connected call (button or F10).
    HangUp,
    /// Mute (`true`) or unmute the microphone (button or F8).
    SetMuted(bool),
    /// Put the caller on hold (`true`) or resume (button or F7).
    SetHold(bool),
    /// Send one DTMF digit: `0`-`9`, `*` or `#`.
    SendDtmf(char),
    /// Blind-transfer the call to a queue, by `QueueRef::queue_id`.
    TransferToQueue(String),
    /// Blind-transfer the call to an agent, by `AgentRef::agent_id`.
    TransferToAgent(String),
    /// Warm transfer: ring a colleague (by `AgentRef::agent_id`) about the call while the
    /// caller waits on hold; then `CompleteTransfer` or `CancelConsult`.
    Consult(String),
    /// Bring a supervisor (by `AgentRef::agent_id`) into the call, all three hearing each
    /// other; the notes typed so far go with it. Then `CompleteTransfer` leaves the call to
    /// the supervisor, `CancelConsult` ends the escalation.
    Escalate(String),
    /// Hand the call to the consulted colleague (or leave it to the supervisor) and hang up.
    CompleteTransfer,
    /// End the consult or escalation and go back to the caller alone.
    CancelConsult,
    /// Ask the switchboard again for this agent's pending callbacks.
    RefreshCallbacks,
    /// Carry out a pending callback now, by `PendingCallback::callback_id`.
    DialCallback(String),
    /// Call a customer number from the dial pad (digits and `+` as typed, trimmed).
    DialOut(String),
    /// The draft changed (every keystroke); the engine stores it so nothing typed is lost,
    /// then sets `PhoneView::draft_status` to `Saved`.
    DraftChanged(DispositionDraft),
    /// Store the disposition and end wrap-up (Submit button or Ctrl+Enter). Checked by
    /// [`DispositionDraft::validate`] before it is sent.
    SubmitDisposition(Disposition),
    /// Look up past calls by caller number (digits as typed).
    SearchHistory(String),
    /// Replace what the team keeps about the customer at `number` (empty clears it); the
    /// switchboard stores it and it comes with every later call from that number.
    SaveCustomerNotes {
        number: String,
        notes: String,
    },
    /// Use a device for a role; `None` is the system default.
    SelectDevice {
        role: DeviceRole,
        name: Option<String>,
    },
    /// Play a short tone on the speaker (again to stop it).
    PlayTestTone,
    /// Start or stop the microphone test (shows the level in Settings).
    TestMicrophone,
    SetNoiseSuppression(bool),
    SetAutoGain(bool),
    /// Turn the desktop popup on an incoming call on or off.
    SetDesktopNotifications(bool),
    /// Supervisor: start monitoring an agent's call (or switch mode), by `AgentRow::agent_id`.
    Monitor {
        agent: String,
        mode: MonitorMode,
    },
    /// Supervisor: stop monitoring.
    StopMonitor,
    /// Supervisor: run a report over a date range, both days included.
    RunReport {
        from: CalendarDate,
        to: CalendarDate,
        by: ReportGrouping,
    },
    /// Supervisor: save the report on screen as CSV.
    ExportReportCsv,
    /// Hide a notice, by `Notice::id`.
    DismissNotice(u64),
    /// The agent brought a tab forward (the view has already switched).
    SelectTab(Tab),
}

/// A password on its way to the engine; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, for the login request and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}
