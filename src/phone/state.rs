//! The window's state: the [`PhoneView`] that `sapa_ui::phone_ui` draws, kept up to date by
//! applying the engine's [`Update`]s in order. No I/O and no clock of its own (time comes in
//! as `now_ms`), so it is tested without a window or an engine.
//!
//! The views edit in place only what the agent types or picks (login fields, the draft,
//! search text, the tab); everything else here comes from the engine.

use sapa_ui::{
    AgentHeader, AgentRef, AgentState, CallView, ConnectionHealth, Directory, DispositionCode,
    DraftStatus, Intent, Notice, NoticeLevel, PhoneView, QueueRef, RingingCall, Role, Tab,
    WrapUpCall,
};

use super::clock;
use super::engine::{Levels, Update, active_call};
use crate::protocol::{self, AgentStateName};

/// At most this many notices stay on screen; older ones go first.
const MAX_NOTICES: usize = 4;

/// The window's model of the phone.
#[derive(Debug, Default)]
pub struct PhoneState {
    pub view: PhoneView,
    next_notice_id: u64,
    /// Notices that stop being true, with what they are about: taken down then.
    notices_about: Vec<(u64, NoticeAbout)>,
    /// Codes submitted per call, shown in the Today list once saved.
    submitted: Vec<(String, sapa_ui::Disposition)>,
    /// A supervisor's monitoring session; kept apart from the wallboard, which each push
    /// replaces, and put back into it.
    monitoring: Option<sapa_ui::MonitorSession>,
}

/// What a notice speaks of that can stop being true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoticeAbout {
    /// A missed call that made the agent Not ready: no longer true once Available.
    MissedCall,
    /// A form kept from before (a crash, a lost connection), shown below: no longer there once
    /// it makes way for a call or is sent.
    KeptForm,
}

impl PhoneState {
    pub fn new() -> PhoneState {
        PhoneState::default()
    }

    /// Applies one engine update; `now_ms` is the window's clock (ms since the Unix epoch,
    /// the same clock the engine stamps events with).
    pub fn apply(&mut self, update: Update, now_ms: u64) {
        let view = &mut self.view;
        match update {
            Update::LoginForm { url, user } => {
                if view.login.url.is_empty() {
                    view.login.url = url;
                }
                if view.login.user.is_empty() {
                    view.login.user = user;
                }
            }
            Update::LoggingIn => {
                view.login.in_progress = true;
                view.login.error = None;
            }
            Update::LoginFailed(error) => {
                view.login.in_progress = false;
                view.login.error = Some(error);
            }
            Update::LoggedIn { user, role, config } => {
                view.login.in_progress = false;
                view.login.error = None;
                view.login.password.clear();
                view.login.user = user.clone();
                view.agent = Some(AgentHeader {
                    agent_id: user.clone(),
                    name: user,
                    role: match role {
                        protocol::Role::Agent => Role::Agent,
                        protocol::Role::Supervisor => Role::Supervisor,
                    },
                    state: AgentState::Unknown,
                    state_since_ms: now_ms,
                    not_ready_reasons: config.not_ready_reasons.clone(),
                    pending_not_ready: None,
                    connection: ConnectionHealth::Connected { round_trip_ms: 0 },
                    queues: Default::default(),
                    monitored: false,
                });
                view.disposition_codes = config
                    .disposition_codes
                    .iter()
                    .map(|code| DispositionCode {
                        code: code.clone(),
                        label: code_label(code),
                    })
                    .collect();
                view.directory = Directory {
                    queues: config
                        .queues
                        .iter()
                        .map(|q| QueueRef {
                            queue_id: q.clone(),
                            name: q.clone(),
                        })
                        .collect(),
                    // Colleagues arrive with the first queue status.
                    ..Directory::default()
                };
                if role == protocol::Role::Supervisor {
                    // Reports start on today; the supervisor changes the dates as needed.
                    let today = clock::local_date(now_ms as i64).to_string();
                    if view.reports.from_text.is_empty() {
                        view.reports.from_text = today.clone();
                    }
                    if view.reports.to_text.is_empty() {
                        view.reports.to_text = today;
                    }
                }
            }
            Update::LoggedOut => {
                view.agent = None;
                view.wallboard = None;
                view.reports = Default::default();
                self.monitoring = None;
                view.call = CallView::Idle;
                view.draft = Default::default();
                view.draft_status = DraftStatus::Saved;
                view.history.callbacks.clear();
                view.tab = Tab::Call;
                view.login.in_progress = false;
            }
            Update::Connection(health) => {
                if let Some(agent) = &mut view.agent {
                    agent.connection = health;
                }
            }
            Update::AgentState {
                state,
                reason,
                since_ms,
                deadline_ms,
                call_id,
            } => {
                if let Some(agent) = &mut view.agent {
                    agent.state = agent_state(state, reason);
                    agent.state_since_ms = since_ms.max(0) as u64;
                }
                if state == AgentStateName::Available {
                    self.take_down(NoticeAbout::MissedCall);
                }
                let view = &mut self.view;
                match (&mut view.call, state) {
                    (CallView::WrapUp(wrap), AgentStateName::AfterCallWork)
                        if call_id.as_deref() == Some(wrap.call_id.as_str()) =>
                    {
                        wrap.acw_deadline_ms = deadline_ms.map(|d| d.max(0) as u64);
                    }
                    // Wrap-up time is over, but the form stays until it is submitted.
                    (CallView::WrapUp(wrap), _) => wrap.acw_deadline_ms = None,
                    (
                        CallView::Ringing(_) | CallView::InCall(_),
                        AgentStateName::Available | AgentStateName::NotReady,
                    ) => view.call = CallView::Idle,
                    _ => {}
                }
            }
            Update::PendingNotReady(reason) => {
                if let Some(agent) = &mut view.agent {
                    agent.pending_not_ready = reason;
                }
            }
            Update::Offered {
                call_id,
                queue,
                caller,
                waited_ms,
                ring_started_ms,
                ring_deadline_ms,
                origin,
            } => {
                self.take_down(NoticeAbout::KeptForm);
                let view = &mut self.view;
                view.call = CallView::Ringing(RingingCall {
                    call_id,
                    caller,
                    queue,
                    waited_ms,
                    ring_started_ms,
                    ring_deadline_ms,
                    origin,
                });
            }
            Update::OfferWithdrawn { call_id, reason } => {
                if let CallView::Ringing(ringing) = &view.call
                    && ringing.call_id == call_id
                {
                    let who = ringing.caller.display_name().to_owned();
                    view.call = CallView::Idle;
                    let text = match reason.as_str() {
                        "ring_no_answer" => Some((
                            NoticeLevel::Warning,
                            format!("Missed call from {who}. You are now Not ready (missed)."),
                        )),
                        "caller_hung_up" => Some((
                            NoticeLevel::Info,
                            format!("{who} hung up before the call was answered."),
                        )),
                        _ => None,
                    };
                    if let Some((level, text)) = text {
                        let about = (reason == "ring_no_answer").then_some(NoticeAbout::MissedCall);
                        self.push_notice_about(about, level, text);
                    }
                }
            }
            Update::Connected { call_id, at_ms } => {
                let (caller, queue, origin) = match &view.call {
                    CallView::Ringing(r) if r.call_id == call_id => {
                        (r.caller.clone(), r.queue.clone(), r.origin.clone())
                    }
                    _ => (Default::default(), String::new(), None),
                };
                view.call = CallView::InCall(active_call(&call_id, caller, &queue, origin, at_ms));
                view.tab = Tab::Call;
            }
            Update::Consult { call_id, consult } => {
                if let CallView::InCall(call) = &mut view.call
                    && call.call_id == call_id
                {
                    call.consult = consult;
                }
            }
            Update::Callbacks(callbacks) => view.history.callbacks = callbacks,
            Update::Ended {
                call_id,
                reason: _,
                at_ms,
            } => {
                if let CallView::InCall(call) = &view.call
                    && call.call_id == call_id
                {
                    view.call = CallView::WrapUp(WrapUpCall {
                        call_id,
                        caller: call.caller.clone(),
                        queue: call.queue.clone(),
                        talk_ms: at_ms.saturating_sub(call.answered_at_ms),
                        acw_deadline_ms: None,
                    });
                } else if let CallView::Ringing(r) = &view.call
                    && r.call_id == call_id
                {
                    view.call = CallView::Idle;
                }
            }
            Update::Muted(muted) => {
                if let CallView::InCall(call) = &mut view.call {
                    call.muted = muted;
                }
            }
            Update::DtmfSent(key) => {
                if let CallView::InCall(call) = &mut view.call {
                    call.dtmf_sent.push(key);
                }
            }
            Update::Held { on, at_ms } => {
                if let CallView::InCall(call) = &mut view.call {
                    call.held_since_ms = on.then_some(call.held_since_ms.unwrap_or(at_ms));
                }
            }
            Update::Monitored(on) => {
                if let Some(agent) = &mut view.agent {
                    agent.monitored = on;
                }
            }
            Update::Draft(draft) => {
                view.draft = draft;
                view.draft_status = DraftStatus::Saved;
            }
            Update::DraftStatus(status) => view.draft_status = status,
            Update::RestoreWrapUp { call, draft } => {
                if matches!(view.call, CallView::Idle) {
                    let text = format!(
                        "Your unfinished disposition for the call from {} was kept; finish it \
                         below.",
                        call.caller.display_name()
                    );
                    view.call = CallView::WrapUp(call);
                    view.draft = draft;
                    view.draft_status = DraftStatus::Saved;
                    self.take_down(NoticeAbout::KeptForm);
                    self.push_notice_about(Some(NoticeAbout::KeptForm), NoticeLevel::Info, text);
                }
            }
            Update::DispositionSaved { call_id } => {
                self.take_down(NoticeAbout::KeptForm);
                let view = &mut self.view;
                if let CallView::WrapUp(wrap) = &view.call
                    && wrap.call_id == call_id
                {
                    view.call = CallView::Idle;
                    view.draft = Default::default();
                    view.draft_status = DraftStatus::Saved;
                }
                if let Some(i) = self.submitted.iter().position(|(id, _)| *id == call_id) {
                    let (_, d) = self.submitted.remove(i);
                    if let Some(call) = view.history.today.iter_mut().find(|c| c.call_id == call_id)
                    {
                        call.disposition_code = Some(d.code);
                        call.resolution = Some(d.resolution);
                        call.notes = d.notes;
                    }
                }
            }
            Update::HistorySearching(query) => {
                view.history.search = Some(sapa_ui::HistorySearch {
                    query,
                    in_progress: true,
                    results: Vec::new(),
                });
            }
            Update::CustomerNotes { number, notes } => {
                let caller = match &mut view.call {
                    CallView::Ringing(call) => Some(&mut call.caller),
                    CallView::InCall(call) => Some(&mut call.caller),
                    CallView::WrapUp(call) => Some(&mut call.caller),
                    CallView::Idle => None,
                };
                if let Some(caller) = caller.filter(|c| c.number == number) {
                    // Blank notes show as none (the views hide them).
                    caller.notes = Some(notes);
                }
            }
            Update::HistoryResults { query, results } => {
                view.history.search = Some(sapa_ui::HistorySearch {
                    query,
                    in_progress: false,
                    results,
                });
            }
            Update::TodayCall(call) => {
                let today = &mut view.history.today;
                match today.iter_mut().find(|c| c.call_id == call.call_id) {
                    Some(known) => *known = call,
                    None => today.push(call),
                }
            }
            Update::Colleagues(colleagues) => {
                let me = view.agent.as_ref().map(|a| a.agent_id.clone());
                let (mut agents, mut supervisors) = (Vec::new(), Vec::new());
                for c in colleagues {
                    if me.as_deref() == Some(c.name.as_str()) {
                        continue;
                    }
                    let entry = AgentRef {
                        agent_id: c.name.clone(),
                        name: c.name,
                        state: agent_state(c.state, None),
                    };
                    match c.role {
                        protocol::Role::Agent => agents.push(entry),
                        protocol::Role::Supervisor => supervisors.push(entry),
                    }
                }
                view.directory.agents = agents;
                view.directory.supervisors = supervisors;
            }
            Update::Queues(queues) => {
                if let Some(agent) = &mut view.agent {
                    agent.queues = queues;
                }
            }
            Update::Settings(settings) => {
                let mic_test = view.settings.mic_test_level_dbfs;
                view.settings = settings;
                view.settings.mic_test_level_dbfs = mic_test;
            }
            Update::Notice { level, text } => {
                self.push_notice(level, text);
            }
            Update::Wallboard(mut wallboard) => {
                wallboard.monitoring = self.monitoring.clone();
                view.wallboard = Some(wallboard);
            }
            Update::Monitoring(session) => {
                self.monitoring = session.clone();
                if let Some(wallboard) = &mut view.wallboard {
                    wallboard.monitoring = session;
                }
            }
            Update::ReportRunning => {
                view.reports.in_progress = true;
                view.reports.error = None;
            }
            Update::Report(table) => {
                view.reports.in_progress = false;
                view.reports.error = None;
                view.reports.table = Some(table);
            }
            Update::ReportFailed(why) => {
                view.reports.in_progress = false;
                view.reports.error = Some(why);
            }
        }
    }

    /// Copies the latest levels into the call screen and the microphone test.
    pub fn apply_levels(&mut self, levels: Levels) {
        if let CallView::InCall(call) = &mut self.view.call {
            call.mic_level_dbfs = levels.mic_dbfs;
            call.speaker_level_dbfs = levels.speaker_dbfs;
            call.voice = levels.voice;
        }
        self.view.settings.mic_test_level_dbfs = levels.mic_test.then_some(levels.mic_dbfs);
    }

    /// Notes what the window itself handles in an intent, before it goes to the engine.
    pub fn note_intent(&mut self, intent: &Intent) {
        match intent {
            Intent::DismissNotice(id) => self.view.notices.retain(|n| n.id != *id),
            Intent::SubmitDisposition(d) => {
                self.submitted.retain(|(id, _)| *id != d.call_id);
                self.submitted.push((d.call_id.clone(), d.clone()));
            }
            _ => {}
        }
    }

    /// Takes down the notices about `about`, which are no longer true.
    fn take_down(&mut self, about: NoticeAbout) {
        let notices = &mut self.view.notices;
        self.notices_about.retain(|&(id, a)| {
            if a == about {
                notices.retain(|n| n.id != id);
            }
            a != about
        });
    }

    /// Shows a notice; when it is `about` something, it is taken down with [`Self::take_down`].
    fn push_notice_about(&mut self, about: Option<NoticeAbout>, level: NoticeLevel, text: String) {
        if let Some(id) = self.push_notice(level, text)
            && let Some(about) = about
        {
            self.notices_about.push((id, about));
        }
    }

    /// Shows a notice; returns its id, or None when the same sentence is already shown.
    fn push_notice(&mut self, level: NoticeLevel, text: String) -> Option<u64> {
        // The same sentence again (a flapping link) does not stack up.
        if self.view.notices.iter().any(|n| n.text == text) {
            return None;
        }
        self.next_notice_id += 1;
        self.view.notices.push(Notice {
            id: self.next_notice_id,
            level,
            text,
        });
        let excess = self.view.notices.len().saturating_sub(MAX_NOTICES);
        self.view.notices.drain(..excess);
        Some(self.next_notice_id)
    }

    /// Whether something on screen counts seconds (state timer, call timers).
    pub fn shows_timer(&self) -> bool {
        self.view.agent.is_some()
    }
}

/// `general-inquiry` → `General inquiry`.
fn code_label(code: &str) -> String {
    let words = code.replace(['-', '_'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The switchboard's state name as the views show it.
fn agent_state(state: AgentStateName, reason: Option<String>) -> AgentState {
    match state {
        AgentStateName::Available => AgentState::Available,
        AgentStateName::NotReady => AgentState::NotReady {
            reason: reason.unwrap_or_default(),
        },
        AgentStateName::Offered => AgentState::Ringing,
        AgentStateName::OnCall => AgentState::OnCall,
        AgentStateName::AfterCallWork => AgentState::WrapUp,
        AgentStateName::LoggedOut => AgentState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ClientConfig;
    use sapa_ui::CallerInfo;

    fn logged_in() -> PhoneState {
        let mut s = PhoneState::new();
        s.apply(
            Update::LoggedIn {
                user: "ana".into(),
                role: protocol::Role::Agent,
                config: ClientConfig {
                    queues: vec!["support".into()],
                    disposition_codes: vec!["general-inquiry".into()],
                    not_ready_reasons: vec!["break".into()],
                    ring_no_answer_ms: 15_000,
                    max_after_call_work_ms: 120_000,
                },
            },
            1_000,
        );
        s
    }

    #[test]
    fn a_call_goes_ringing_in_call_wrap_up_idle() {
        let mut s = logged_in();
        assert_eq!(s.view.disposition_codes[0].label, "General inquiry");
        s.apply(
            Update::Offered {
                call_id: "c1".into(),
                queue: "support".into(),
                caller: CallerInfo {
                    number: "+15550100".into(),
                    name: Some("Budi".into()),
                    notes: None,
                    history: vec![],
                },
                waited_ms: 3_000,
                ring_started_ms: 2_000,
                ring_deadline_ms: 17_000,
                origin: None,
            },
            2_000,
        );
        assert!(matches!(s.view.call, CallView::Ringing(_)));
        s.view.tab = Tab::History;
        s.apply(
            Update::Connected {
                call_id: "c1".into(),
                at_ms: 5_000,
            },
            5_000,
        );
        let CallView::InCall(call) = &s.view.call else {
            panic!("in call")
        };
        assert_eq!(call.caller.name.as_deref(), Some("Budi"));
        assert_eq!(s.view.tab, Tab::Call);
        s.apply(Update::Muted(true), 6_000);
        s.apply(
            Update::Ended {
                call_id: "c1".into(),
                reason: "caller_hung_up".into(),
                at_ms: 65_000,
            },
            65_000,
        );
        let CallView::WrapUp(wrap) = &s.view.call else {
            panic!("wrap-up")
        };
        assert_eq!(wrap.talk_ms, 60_000);
        // Wrap-up time running out does not take the form away.
        s.apply(
            Update::AgentState {
                state: AgentStateName::Available,
                reason: None,
                since_ms: 70_000,
                call_id: None,
                deadline_ms: None,
            },
            70_000,
        );
        assert!(matches!(s.view.call, CallView::WrapUp(_)));
        s.apply(
            Update::DispositionSaved {
                call_id: "c1".into(),
            },
            71_000,
        );
        assert!(matches!(s.view.call, CallView::Idle));
    }

    #[test]
    fn a_supervisor_gets_the_wallboard_and_keeps_the_monitoring_across_pushes() {
        let mut s = PhoneState::new();
        s.apply(
            Update::LoggedIn {
                user: "sri".into(),
                role: protocol::Role::Supervisor,
                config: ClientConfig {
                    queues: vec!["support".into()],
                    disposition_codes: vec![],
                    not_ready_reasons: vec!["break".into()],
                    ring_no_answer_ms: 15_000,
                    max_after_call_work_ms: 120_000,
                },
            },
            1_000,
        );
        assert!(s.view.available_tabs().contains(&Tab::Wallboard));
        assert_eq!(s.view.reports.from_text, "1970-01-01");
        let board = sapa_ui::WallboardView {
            agents: vec![sapa_ui::AgentRow {
                agent_id: "ana".into(),
                name: "ana".into(),
                state: AgentState::OnCall,
                ..Default::default()
            }],
            ..Default::default()
        };
        s.apply(Update::Wallboard(board.clone()), 2_000);
        let session = sapa_ui::MonitorSession {
            agent_id: "ana".into(),
            mode: sapa_ui::MonitorMode::Whisper,
        };
        s.apply(Update::Monitoring(Some(session.clone())), 2_100);
        // The next push replaces the figures, not the session.
        s.apply(Update::Wallboard(board), 3_000);
        let wallboard = s.view.wallboard.as_ref().unwrap();
        assert_eq!(wallboard.monitoring.as_ref(), Some(&session));
        s.apply(Update::Monitoring(None), 3_100);
        assert_eq!(s.view.wallboard.as_ref().unwrap().monitoring, None);

        s.apply(Update::ReportRunning, 4_000);
        assert!(s.view.reports.in_progress);
        s.apply(
            Update::ReportFailed("The report failed: boom".into()),
            4_100,
        );
        assert!(!s.view.reports.in_progress);
        assert!(s.view.reports.error.as_deref().unwrap().contains("boom"));

        s.apply(Update::LoggedOut, 5_000);
        assert!(s.view.wallboard.is_none());
    }

    #[test]
    fn a_missed_call_says_so_once() {
        let mut s = logged_in();
        for _ in 0..2 {
            s.apply(
                Update::Offered {
                    call_id: "c2".into(),
                    queue: "support".into(),
                    caller: CallerInfo {
                        number: "+15550111".into(),
                        name: None,
                        notes: None,
                        history: vec![],
                    },
                    waited_ms: 0,
                    ring_started_ms: 0,
                    ring_deadline_ms: 15_000,
                    origin: None,
                },
                0,
            );
            s.apply(
                Update::OfferWithdrawn {
                    call_id: "c2".into(),
                    reason: "ring_no_answer".into(),
                },
                15_000,
            );
        }
        assert!(matches!(s.view.call, CallView::Idle));
        assert_eq!(s.view.notices.len(), 1);
        let id = s.view.notices[0].id;
        s.note_intent(&Intent::DismissNotice(id));
        assert!(s.view.notices.is_empty());
    }

    #[test]
    fn a_missed_call_notice_goes_when_the_agent_is_available_again() {
        let mut s = logged_in();
        s.push_notice(NoticeLevel::Warning, "The microphone was unplugged.".into());
        offer(&mut s, "c3", None);
        s.apply(
            Update::OfferWithdrawn {
                call_id: "c3".into(),
                reason: "ring_no_answer".into(),
            },
            15_000,
        );
        let state = |state, since_ms| Update::AgentState {
            state,
            reason: Some("missed".into()),
            since_ms,
            call_id: None,
            deadline_ms: None,
        };
        s.apply(state(AgentStateName::NotReady, 15_000), 15_000);
        assert_eq!(s.view.notices.len(), 2, "{:?}", s.view.notices);
        assert!(s.view.notices[1].text.starts_with("Missed call from Budi"));
        s.apply(state(AgentStateName::Available, 20_000), 20_000);
        let texts: Vec<&str> = s.view.notices.iter().map(|n| n.text.as_str()).collect();
        assert_eq!(texts, ["The microphone was unplugged."]);
    }

    #[test]
    fn the_kept_form_s_notice_stays_only_while_the_form_is_shown() {
        let mut s = logged_in();
        let restore = |call_id: &str| Update::RestoreWrapUp {
            call: WrapUpCall {
                call_id: call_id.into(),
                caller: CallerInfo {
                    number: "+15550302".into(),
                    name: Some("Citra".into()),
                    notes: None,
                    history: vec![],
                },
                queue: "support".into(),
                talk_ms: 11_000,
                acw_deadline_ms: None,
            },
            draft: Default::default(),
        };
        let texts = |s: &PhoneState| -> Vec<String> {
            s.view.notices.iter().map(|n| n.text.clone()).collect()
        };
        s.apply(restore("c0"), 1_000);
        assert_eq!(
            texts(&s),
            ["Your unfinished disposition for the call from Citra was kept; finish it below."]
        );
        // A call comes before the form is sent: the form makes way, and so does its notice.
        offer(&mut s, "c1", None);
        assert!(s.view.notices.is_empty(), "{:?}", s.view.notices);
        // After that call's form is sent the kept one comes back, told once.
        s.apply(
            Update::Connected {
                call_id: "c1".into(),
                at_ms: 3_000,
            },
            3_000,
        );
        s.apply(
            Update::Ended {
                call_id: "c1".into(),
                reason: "caller_hung_up".into(),
                at_ms: 9_000,
            },
            9_000,
        );
        s.apply(
            Update::DispositionSaved {
                call_id: "c1".into(),
            },
            12_000,
        );
        s.apply(restore("c0"), 12_000);
        assert_eq!(texts(&s).len(), 1, "{:?}", texts(&s));
        assert!(matches!(&s.view.call, CallView::WrapUp(w) if w.call_id == "c0"));
        s.apply(
            Update::DispositionSaved {
                call_id: "c0".into(),
            },
            15_000,
        );
        assert!(s.view.notices.is_empty(), "{:?}", s.view.notices);
    }

    fn offer(s: &mut PhoneState, call_id: &str, origin: Option<sapa_ui::CallOrigin>) {
        s.apply(
            Update::Offered {
                call_id: call_id.into(),
                queue: "support".into(),
                caller: CallerInfo {
                    number: "+15550100".into(),
                    name: Some("Budi".into()),
                    notes: None,
                    history: vec![],
                },
                waited_ms: 0,
                ring_started_ms: 2_000,
                ring_deadline_ms: 17_000,
                origin,
            },
            2_000,
        );
    }

    fn in_call(s: &PhoneState) -> &sapa_ui::ActiveCall {
        match &s.view.call {
            CallView::InCall(call) => call,
            other => panic!("expected a call in progress, got {other:?}"),
        }
    }

    #[test]
    fn a_transferred_call_keeps_why_it_came_from_ringing_to_the_call() {
        let mut s = logged_in();
        let origin = sapa_ui::CallOrigin {
            kind: sapa_ui::OriginKind::BlindTransfer,
            from: Some("bayu".into()),
            notes: "wants a refund".into(),
        };
        offer(&mut s, "c7", Some(origin.clone()));
        let CallView::Ringing(ringing) = &s.view.call else {
            panic!("ringing")
        };
        assert_eq!(ringing.origin.as_ref(), Some(&origin));
        s.apply(
            Update::Connected {
                call_id: "c7".into(),
                at_ms: 3_000,
            },
            3_000,
        );
        assert_eq!(in_call(&s).origin.as_ref(), Some(&origin));
        // The notes are shown, not put in this agent's draft.
        assert!(s.view.draft.notes.is_empty());
    }

    #[test]
    fn a_consult_shows_on_its_call_until_it_ends() {
        let mut s = logged_in();
        offer(&mut s, "c8", None);
        s.apply(
            Update::Connected {
                call_id: "c8".into(),
                at_ms: 3_000,
            },
            3_000,
        );
        let ringing = sapa_ui::ConsultView {
            colleague: "bayu".into(),
            kind: sapa_ui::ConsultKind::WarmTransfer,
            phase: sapa_ui::ConsultPhase::Ringing,
        };
        // About another call: ignored.
        s.apply(
            Update::Consult {
                call_id: "other".into(),
                consult: Some(ringing.clone()),
            },
            3_500,
        );
        assert_eq!(in_call(&s).consult, None);
        s.apply(
            Update::Consult {
                call_id: "c8".into(),
                consult: Some(ringing.clone()),
            },
            4_000,
        );
        assert_eq!(in_call(&s).consult.as_ref(), Some(&ringing));
        let connected = sapa_ui::ConsultView {
            phase: sapa_ui::ConsultPhase::Connected,
            ..ringing
        };
        s.apply(
            Update::Consult {
                call_id: "c8".into(),
                consult: Some(connected.clone()),
            },
            5_000,
        );
        assert_eq!(in_call(&s).consult.as_ref(), Some(&connected));
        s.apply(
            Update::Consult {
                call_id: "c8".into(),
                consult: None,
            },
            6_000,
        );
        assert_eq!(in_call(&s).consult, None);
        // A completed transfer ends this agent's call: the banner goes with it.
        s.apply(
            Update::Consult {
                call_id: "c8".into(),
                consult: Some(connected),
            },
            7_000,
        );
        s.apply(
            Update::Ended {
                call_id: "c8".into(),
                reason: "transferred".into(),
                at_ms: 8_000,
            },
            8_000,
        );
        assert!(matches!(s.view.call, CallView::WrapUp(_)));
    }

    #[test]
    fn callbacks_replace_the_list_and_go_at_logout() {
        let mut s = logged_in();
        let callback = |id: &str| sapa_ui::PendingCallback {
            callback_id: id.into(),
            number: "+15550100".into(),
            due_ms: 9_000,
            due_text: "1970-01-01 00:00".into(),
            ..Default::default()
        };
        s.apply(
            Update::Callbacks(vec![callback("cb1"), callback("cb2")]),
            2_000,
        );
        assert_eq!(s.view.history.callbacks.len(), 2);
        s.apply(Update::Callbacks(vec![callback("cb2")]), 3_000);
        let ids: Vec<&str> = s
            .view
            .history
            .callbacks
            .iter()
            .map(|c| c.callback_id.as_str())
            .collect();
        assert_eq!(ids, ["cb2"]);
        s.apply(Update::LoggedOut, 4_000);
        assert!(s.view.history.callbacks.is_empty());
    }
}
