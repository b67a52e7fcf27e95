//! The supervisor's screens in the app flow, drawn with egui_kittest from the phone's own
//! state: engine updates (login as a supervisor, a pushed wallboard converted as the engine
//! converts it) applied to `PhoneState`, then `sapa_ui::phone_ui` as the window runs it. A
//! supervisor gets the Wallboard tab with the figures and can start monitoring from it; an
//! agent gets no supervisor tab, and sees when they are monitored.

use egui::accesskit::Role as AccessRole;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use sapa::metrics::{AgentBoard, Interval, QueueBoard, StreamQuality, VoiceQuality, Wallboard};
use sapa::phone::engine::Update;
use sapa::phone::state::PhoneState;
use sapa::phone::supervisor::wallboard_view;
use sapa::protocol::{ClientConfig, Role};
use sapa_ui::{Intent, MonitorMode, Tab};

const NOW_MS: u64 = 1_795_000_000_000;

/// The window: the phone's state and the intents it handed to the engine.
struct Window {
    state: PhoneState,
    intents: Vec<Intent>,
}

fn window(state: PhoneState) -> Harness<'static, Window> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 1000.0))
        .build_ui_state(
            |ui, window: &mut Window| {
                window.state.view.now_ms = NOW_MS;
                for intent in sapa_ui::phone_ui(ui, &mut window.state.view) {
                    window.state.note_intent(&intent);
                    window.intents.push(intent);
                }
            },
            Window {
                state,
                intents: Vec::new(),
            },
        )
}

fn logged_in(user: &str, role: Role) -> PhoneState {
    let mut state = PhoneState::new();
    state.apply(
        Update::LoggedIn {
            user: user.into(),
            role,
            config: ClientConfig {
                queues: vec!["support".into()],
                disposition_codes: vec!["billing".into()],
                not_ready_reasons: vec!["break".into()],
                ring_no_answer_ms: 15_000,
                max_after_call_work_ms: 120_000,
            },
        },
        NOW_MS,
    );
    state
}

/// A wallboard as the switchboard pushes it: one queue, ana on a call whose caller loses a
/// fifth of the packets, budi at lunch.
fn board() -> Wallboard {
    Wallboard {
        now_ms: NOW_MS as i64,
        day_start_ms: NOW_MS as i64 - 10 * 3_600_000,
        queues: vec![QueueBoard {
            queue: "support".into(),
            service_level_secs: 20,
            waiting: 3,
            longest_wait_ms: 95_000,
            offered: 140,
            handled_today: 128,
            abandoned: 12,
            service_level_pct: Some(72.0),
            asa_ms: Some(31_000),
            aht_ms: Some(312_000),
            abandon_pct: Some(8.6),
        }],
        agents: vec![
            AgentBoard {
                name: "ana".into(),
                state: "on_call".into(),
                in_state_ms: 65_000,
                call_id: Some("c1".into()),
                caller: Some("+15550100".into()),
                call_duration_ms: Some(65_000),
                voice_quality: VoiceQuality::of(
                    Some(StreamQuality {
                        repaired_pct: 0.0,
                        loss_pct: 19.5,
                        jitter_ms: 4.0,
                        packets: 200,
                    }),
                    Some(StreamQuality {
                        repaired_pct: 0.0,
                        loss_pct: 0.0,
                        jitter_ms: 1.0,
                        packets: 250,
                    }),
                ),
                ..AgentBoard::default()
            },
            AgentBoard {
                name: "budi".into(),
                state: "not_ready".into(),
                reason: Some("lunch".into()),
                in_state_ms: 600_000,
                ..AgentBoard::default()
            },
        ],
        intervals: (0..40)
            .map(|i| Interval {
                start_minute: i * 15,
                offered: 3 + i % 4,
                answered: 3 + i % 3,
                abandoned: i % 2,
                service_level_pct: Some(70.0 + f64::from(i % 5) * 5.0),
                ..Interval::default()
            })
            .collect(),
    }
}

#[test]
fn a_supervisor_sees_the_wallboard_and_monitors_from_it() {
    let mut state = logged_in("sri", Role::Supervisor);
    state.apply(
        Update::Wallboard(wallboard_view(&board(), NOW_MS, 0)),
        NOW_MS,
    );
    let mut harness = window(state);
    harness
        .get_by_role_and_label(AccessRole::Button, "Wallboard")
        .click();
    harness.run();
    assert_eq!(harness.state().state.view.tab, Tab::Wallboard);
    // The queue's figures.
    harness.get_by_label("support");
    harness.get_by_label("72 %");
    harness.get_by_label("128");
    harness.get_by_label("8.6 %");
    // The agents, with the call's voice quality and both legs' numbers.
    harness.get_by_label("ana");
    harness.get_by_label("+15550100");
    harness.get_by_label("Poor");
    harness.get_by_label("from caller 19.5 % 4 ms · from agent 0.0 % 1 ms");
    harness.get_by_label("budi");
    assert!(harness.query_by_label("Listen to budi").is_none());

    harness.get_by_label("Listen to ana").click();
    harness.run();
    assert!(harness.state().intents.contains(&Intent::Monitor {
        agent: "ana".into(),
        mode: MonitorMode::Listen,
    }));
    // The engine reports the session; the next push keeps it on screen.
    harness.state_mut().state.apply(
        Update::Monitoring(Some(sapa_ui::MonitorSession {
            agent_id: "ana".into(),
            mode: MonitorMode::Listen,
        })),
        NOW_MS,
    );
    harness.state_mut().state.apply(
        Update::Wallboard(wallboard_view(&board(), NOW_MS, 0)),
        NOW_MS,
    );
    harness.run();
    harness.get_by_label("Listen: ana");
    harness.get_by_label("Whisper to ana").click();
    harness.run();
    assert_eq!(
        harness.state().intents.last(),
        Some(&Intent::Monitor {
            agent: "ana".into(),
            mode: MonitorMode::Whisper,
        })
    );
    harness.get_by_label("Stop monitoring ana").click();
    harness.run();
    assert_eq!(harness.state().intents.last(), Some(&Intent::StopMonitor));

    // Reports: the dates start on today.
    harness
        .get_by_role_and_label(AccessRole::Button, "Reports")
        .click();
    harness.run();
    assert_eq!(harness.state().state.view.tab, Tab::Reports);
    let today = harness.state().state.view.reports.from_text.clone();
    assert_eq!(today.len(), "2026-11-23".len());
    harness.get_by_label("Run report").click();
    harness.run();
    assert!(matches!(
        harness.state().intents.last(),
        Some(Intent::RunReport { .. })
    ));
}

#[test]
fn an_agent_has_no_wallboard_and_sees_when_monitored() {
    let mut state = logged_in("ana", Role::Agent);
    // Even a wallboard that arrived by mistake is not shown to an agent.
    state.apply(
        Update::Wallboard(wallboard_view(&board(), NOW_MS, 0)),
        NOW_MS,
    );
    let mut harness = window(state);
    harness.get_by_role_and_label(AccessRole::Button, "History");
    assert!(harness.query_by_label("Wallboard").is_none());
    assert!(harness.query_by_label("Reports").is_none());
    assert!(harness.query_by_label("Monitored").is_none());

    harness
        .state_mut()
        .state
        .apply(Update::Monitored(true), NOW_MS);
    harness.run();
    harness.get_by_label("Monitored");
    harness
        .state_mut()
        .state
        .apply(Update::Monitored(false), NOW_MS);
    harness.run();
    assert!(harness.query_by_label("Monitored").is_none());
}
