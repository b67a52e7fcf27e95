//! Shared by the UI tests: a stand-in engine that applies intents to the `PhoneView` the way the
//! real engine would (without any network or audio), fixtures, and a harness that runs
//! `phone_ui` on it.

#![allow(dead_code)] // each test file uses a different part of this module

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use sapa_ui::*;

/// The engine clock used by all fixtures.
pub const NOW_MS: u64 = 1_000_000;

/// The app under test: the view, and what the stand-in engine saw and stored.
pub struct App {
    pub view: PhoneView,
    /// Every intent, in order.
    pub intents: Vec<Intent>,
    /// The last draft the engine stored.
    pub stored_draft: Option<DispositionDraft>,
}

impl App {
    pub fn new(view: PhoneView) -> Self {
        Self {
            view,
            intents: Vec::new(),
            stored_draft: None,
        }
    }

    /// Carry out intents as the engine would, so the next frame shows their outcome.
    pub fn apply(&mut self, intents: Vec<Intent>) {
        for intent in intents {
            let view = &mut self.view;
            match &intent {
                Intent::LogIn { user, .. } => {
                    view.login.password.clear();
                    view.agent = Some(agent_header(user, Role::Agent));
                }
                Intent::SetAvailable => set_state(view, AgentState::Available),
                Intent::SetNotReady { reason } => set_state(
                    view,
                    AgentState::NotReady {
                        reason: reason.clone(),
                    },
                ),
                Intent::Answer => {
                    if let CallView::Ringing(ringing) = &view.call {
                        let call_id = ringing.call_id.clone();
                        view.call = CallView::InCall(ActiveCall {
                            call_id: call_id.clone(),
                            caller: ringing.caller.clone(),
                            queue: ringing.queue.clone(),
                            origin: ringing.origin.clone(),
                            answered_at_ms: view.now_ms,
                            mic_level_dbfs: -20.0,
                            speaker_level_dbfs: -25.0,
                            voice: VoiceStats {
                                loss_pct: 0.2,
                                jitter_ms: 8.0,
                                concealment_pct: 0.5,
                            },
                            ..ActiveCall::default()
                        });
                        view.draft = DispositionDraft::for_call(call_id);
                        set_state(view, AgentState::OnCall);
                    }
                }
                Intent::HangUp => {
                    if let CallView::InCall(call) = &view.call {
                        view.call = CallView::WrapUp(WrapUpCall {
                            call_id: call.call_id.clone(),
                            caller: call.caller.clone(),
                            queue: call.queue.clone(),
                            talk_ms: view.now_ms - call.answered_at_ms,
                            acw_deadline_ms: Some(view.now_ms + 60_000),
                        });
                        set_state(view, AgentState::WrapUp);
                    }
                }
                Intent::SetMuted(muted) => {
                    if let CallView::InCall(call) = &mut view.call {
                        call.muted = *muted;
                    }
                }
                Intent::DraftChanged(draft) => {
                    self.stored_draft = Some(draft.clone());
                    view.draft_status = DraftStatus::Saved;
                }
                Intent::SubmitDisposition(_) => {
                    view.call = CallView::Idle;
                    set_state(view, AgentState::Available);
                }
                _ => {}
            }
            self.intents.push(intent);
        }
    }

    /// The intents since the last call, leaving none behind.
    pub fn take_intents(&mut self) -> Vec<Intent> {
        std::mem::take(&mut self.intents)
    }
}

fn set_state(view: &mut PhoneView, state: AgentState) {
    if let Some(agent) = &mut view.agent {
        agent.state = state;
        agent.state_since_ms = view.now_ms;
    }
}

/// A harness large enough for the whole app, running `phone_ui` and the stand-in engine.
pub fn app_harness(view: PhoneView) -> Harness<'static, App> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 1000.0))
        .build_ui_state(
            |ui, app: &mut App| {
                let intents = phone_ui(ui, &mut app.view);
                app.apply(intents);
            },
            App::new(view),
        )
}

pub fn agent_header(name: &str, role: Role) -> AgentHeader {
    AgentHeader {
        agent_id: format!("id-{name}"),
        name: name.to_owned(),
        role,
        state: AgentState::Unknown,
        state_since_ms: NOW_MS,
        not_ready_reasons: vec!["Break".into(), "Lunch".into()],
        pending_not_ready: None,
        connection: ConnectionHealth::Connected { round_trip_ms: 23 },
        queues: QueueSummary {
            calls_waiting: 2,
            longest_wait_ms: 42_000,
        },
        monitored: false,
    }
}

pub fn disposition_codes() -> Vec<DispositionCode> {
    vec![
        DispositionCode {
            code: "BILLING".into(),
            label: "Billing question".into(),
        },
        DispositionCode {
            code: "TECH".into(),
            label: "Technical problem".into(),
        },
    ]
}

/// A logged-in agent's view with the configured codes.
pub fn logged_in_view(role: Role) -> PhoneView {
    PhoneView {
        now_ms: NOW_MS,
        agent: Some(agent_header("Maria Lopez", role)),
        disposition_codes: disposition_codes(),
        ..PhoneView::default()
    }
}

/// Two earlier calls, given oldest first so the test sees the views sort them, and the
/// customer's notes.
pub fn caller_with_history() -> CallerInfo {
    CallerInfo {
        number: "+34 600 123 456".into(),
        name: Some("Ana Ruiz".into()),
        notes: Some("Prefers email follow-ups; business plan since 2024.".into()),
        history: vec![
            PastCall {
                call_id: "old".into(),
                started_ms: 100,
                started_text: "2026-10-02 09:15".into(),
                caller_number: "+34 600 123 456".into(),
                agent_name: "Jon Ander".into(),
                queue: "Support".into(),
                talk_ms: 300_000,
                disposition_code: Some("TECH".into()),
                resolution: Some(Resolution::Resolved),
                notes: "Router replaced under warranty".into(),
                csat: Some(5),
                ..PastCall::default()
            },
            PastCall {
                call_id: "new".into(),
                started_ms: 200,
                started_text: "2026-11-20 14:03".into(),
                caller_number: "+34 600 123 456".into(),
                agent_name: "Maria Lopez".into(),
                queue: "Billing".into(),
                talk_ms: 120_000,
                disposition_code: Some("BILLING".into()),
                resolution: Some(Resolution::FollowUp),
                notes: "Asked about the November invoice".into(),
                csat: Some(3),
                ..PastCall::default()
            },
        ],
    }
}

pub fn ringing_call() -> RingingCall {
    RingingCall {
        call_id: "call-42".into(),
        caller: caller_with_history(),
        queue: "Billing".into(),
        waited_ms: 83_000,
        ring_started_ms: NOW_MS,
        ring_deadline_ms: NOW_MS + 20_000,
        origin: None,
    }
}

/// Put a ringing call on the view, as the engine does when the switchboard offers one.
pub fn offer_call(view: &mut PhoneView) {
    view.call = CallView::Ringing(ringing_call());
    set_state(view, AgentState::Ringing);
}

/// Is the widget with this accessible name disabled?
pub fn is_disabled(harness: &Harness<'_, App>, label: &str) -> bool {
    harness.get_by_label(label).accesskit_node().is_disabled()
}

/// Click a widget found by accessible name, and let the app settle.
pub fn click(harness: &mut Harness<'_, App>, label: &str) {
    harness.get_by_label(label).click();
    harness.run();
}

/// Focus a text field found by accessible name, type into it, and let the app settle.
pub fn type_into(harness: &mut Harness<'_, App>, label: &str, text: &str) {
    harness.get_by_label(label).click();
    harness.run();
    harness.get_by_label(label).type_text(text);
    harness.run();
}

/// A supervisor's view with two queues and three agents, two of them on calls.
pub fn supervisor_view() -> PhoneView {
    let mut view = logged_in_view(Role::Supervisor);
    view.wallboard = Some(WallboardView {
        queues: vec![
            QueueStats {
                queue_id: "q-billing".into(),
                name: "Billing".into(),
                waiting: 3,
                longest_wait_ms: 95_000,
                service_level_pct: Some(72.0),
                asa_ms: Some(31_000),
                aht_ms: Some(312_000),
                abandon_pct: Some(4.5),
                handled_today: 128,
            },
            QueueStats {
                queue_id: "q-support".into(),
                name: "Technical support".into(),
                waiting: 0,
                longest_wait_ms: 0,
                service_level_pct: Some(91.0),
                asa_ms: Some(12_000),
                aht_ms: Some(405_000),
                abandon_pct: Some(1.2),
                handled_today: 77,
            },
        ],
        agents: vec![
            AgentRow {
                agent_id: "a-jon".into(),
                name: "Jon Ander".into(),
                state: AgentState::OnCall,
                state_since_ms: NOW_MS - 200_000,
                call: Some(AgentCall {
                    caller: "+34 600 555 010".into(),
                    started_ms: NOW_MS - 200_000,
                    caller_to_agent: Some(VoiceStats {
                        loss_pct: 0.3,
                        jitter_ms: 9.0,
                        concealment_pct: 0.0,
                    }),
                    agent_to_caller: Some(VoiceStats {
                        loss_pct: 0.0,
                        jitter_ms: 4.0,
                        concealment_pct: 0.0,
                    }),
                }),
            },
            AgentRow {
                agent_id: "a-lea".into(),
                name: "Lea Weber".into(),
                state: AgentState::OnCall,
                state_since_ms: NOW_MS - 45_000,
                call: Some(AgentCall {
                    caller: "Carlos Vidal".into(),
                    started_ms: NOW_MS - 45_000,
                    caller_to_agent: Some(VoiceStats {
                        loss_pct: 6.0,
                        jitter_ms: 70.0,
                        concealment_pct: 0.0,
                    }),
                    agent_to_caller: Some(VoiceStats {
                        loss_pct: 0.5,
                        jitter_ms: 12.0,
                        concealment_pct: 0.0,
                    }),
                }),
            },
            AgentRow {
                agent_id: "a-sam".into(),
                name: "Sam Okafor".into(),
                state: AgentState::NotReady {
                    reason: "Lunch".into(),
                },
                state_since_ms: NOW_MS - 900_000,
                call: None,
            },
        ],
        intervals: (0..12)
            .map(|i| IntervalStats {
                start_minute: 8 * 60 + 15 * i,
                offered: 20 + u32::from(i % 5) * 3,
                answered: 18 + u32::from(i % 5) * 2,
                abandoned: u32::from(i % 3),
                service_level_pct: Some(70.0 + f32::from(i % 4) * 7.0),
            })
            .collect(),
        service_level_target_pct: 80.0,
        monitoring: None,
    });
    view
}

/// Replace the whole text of a field found by accessible name (select all, then type).
pub fn replace_text(harness: &mut Harness<'_, App>, label: &str, text: &str) {
    harness.get_by_label(label).click();
    harness.run();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.get_by_label(label).type_text(text);
    harness.run();
}
