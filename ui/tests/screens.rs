//! Each screen's controls, found by their accessible names (the harness also checks after every
//! step that no control on screen is missing a name).

mod common;

use common::*;
use egui::Key;
use egui::accesskit::Role as AccessRole;
use egui_kittest::kittest::Queryable as _;
use sapa_ui::*;

#[test]
fn settings_choose_devices_processing_and_popups() {
    let mut view = logged_in_view(Role::Agent);
    view.tab = Tab::Settings;
    view.settings = SettingsView {
        microphones: vec!["Jabra Evolve2 40".into(), "Built-in microphone".into()],
        speakers: vec!["Jabra Evolve2 40".into(), "Desk speakers".into()],
        microphone: Some("Jabra Evolve2 65".into()),
        speaker: None,
        ringer: Some("Desk speakers".into()),
        noise_suppression: true,
        auto_gain: false,
        desktop_notifications: true,
        test_tone_playing: false,
        mic_test_level_dbfs: None,
    };
    let mut harness = app_harness(view);

    // A remembered device that is unplugged stays visible as such.
    assert_eq!(
        harness.get_by_label("Microphone").value().as_deref(),
        Some("Jabra Evolve2 65 (not connected)")
    );
    assert_eq!(
        harness.get_by_label("Speaker").value().as_deref(),
        Some("System default")
    );
    click(&mut harness, "Microphone");
    click(&mut harness, "Built-in microphone");
    click(&mut harness, "Noise suppression");
    click(&mut harness, "Automatic gain");
    click(&mut harness, "Desktop notifications");
    click(&mut harness, "Play test tone");
    click(&mut harness, "Test microphone");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![
            Intent::SelectDevice {
                role: DeviceRole::Microphone,
                name: Some("Built-in microphone".into()),
            },
            Intent::SetNoiseSuppression(false),
            Intent::SetAutoGain(true),
            Intent::SetDesktopNotifications(false),
            Intent::PlayTestTone,
            Intent::TestMicrophone,
        ]
    );
    // The shortcut list.
    harness.get_by_label("F9");
    harness.get_by_label("Ctrl+Enter");
}

#[test]
fn history_searches_by_number() {
    let mut view = logged_in_view(Role::Agent);
    view.tab = Tab::History;
    view.history.today = caller_with_history().history;
    let mut harness = app_harness(view);
    harness.get_by_label("My calls today (2)");
    harness.get_by_label("Router replaced under warranty");

    assert!(is_disabled(&harness, "Search"));
    type_into(&mut harness, "Search by number", " 600 123 ");
    harness.key_press(Key::Enter);
    harness.run();
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::SearchHistory("600 123".into())]
    );

    harness.state_mut().view.history.search = Some(HistorySearch {
        query: "600 123".into(),
        in_progress: false,
        results: caller_with_history().history[..1].to_vec(),
    });
    harness.run();
    harness.get_by_label("1 call(s) for “600 123”");
}

#[test]
fn notices_can_be_dismissed() {
    let mut view = logged_in_view(Role::Agent);
    view.notices.push(Notice {
        id: 7,
        level: NoticeLevel::Warning,
        text: "Remembered microphone 'Jabra' is gone; using default".into(),
    });
    let mut harness = app_harness(view);
    click(
        &mut harness,
        "Dismiss: Remembered microphone 'Jabra' is gone; using default",
    );
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::DismissNotice(7)]
    );
}

#[test]
fn a_long_notice_wraps_beside_its_dismiss_button() {
    let mut view = logged_in_view(Role::Agent);
    let text = "No sound: cannot open input device 'default': the requested audio device is not \
                available; it may have been disconnected. Calls connect, but you will not hear \
                them until a headset is plugged in and chosen in Settings.";
    view.notices.push(Notice {
        id: 8,
        level: NoticeLevel::Warning,
        text: text.into(),
    });
    let harness = app_harness(view);
    let message = harness.get_by_label(text).rect();
    let dismiss = harness.get_by_label(&format!("Dismiss: {text}")).rect();
    assert!(
        message.max.x <= dismiss.min.x,
        "the text ends at x {} but the button starts at x {}",
        message.max.x,
        dismiss.min.x
    );
    assert!(message.height() > dismiss.height(), "the text did not wrap");
}

#[test]
fn in_call_transfer_keypad_and_after_call_break() {
    let mut view = logged_in_view(Role::Agent);
    view.directory = Directory {
        queues: vec![QueueRef {
            queue_id: "q-support".into(),
            name: "Technical support".into(),
        }],
        agents: vec![
            AgentRef {
                agent_id: "a-jon".into(),
                name: "Jon Ander".into(),
                state: AgentState::Available,
            },
            AgentRef {
                agent_id: "a-lea".into(),
                name: "Lea Weber".into(),
                state: AgentState::OnCall,
            },
        ],
        supervisors: vec![],
    };
    offer_call(&mut view);
    let mut harness = app_harness(view);
    click(&mut harness, "Answer");
    harness.state_mut().take_intents();

    click(&mut harness, "Keypad 5");
    click(&mut harness, "Keypad #");
    click(&mut harness, "Mute");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![
            Intent::SendDtmf('5'),
            Intent::SendDtmf('#'),
            Intent::SetMuted(true),
        ]
    );
    harness.get_by_label("Muted");

    click(&mut harness, "Transfer");
    // Only an available agent can take a transfer.
    assert!(is_disabled(&harness, "Transfer to agent Lea Weber"));
    click(&mut harness, "Transfer to queue Technical support");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::TransferToQueue("q-support".into())]
    );

    // Planning a break during the call: it applies after wrap-up.
    click(&mut harness, "Agent state");
    click(&mut harness, "Not ready: Lunch");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::SetNotReady {
            reason: "Lunch".into()
        }]
    );
}

#[test]
fn call_bar_brings_the_call_back_from_another_tab() {
    let mut view = logged_in_view(Role::Supervisor);
    offer_call(&mut view);
    view.tab = Tab::Settings;
    let mut harness = app_harness(view);
    // Ringing pops over every tab.
    harness.get_by_label("Answer");
    harness.key_press(Key::F9);
    harness.run();
    // Answering brings the call tab forward.
    assert_eq!(harness.state().view.tab, Tab::Call);
    harness.get_by_label("Hang up");

    harness
        .get_by_role_and_label(AccessRole::Button, "History")
        .click();
    harness.run();
    harness.get_by_label_contains("On call with Ana Ruiz");
    click(&mut harness, "Show call");
    assert_eq!(harness.state().view.tab, Tab::Call);
}

#[test]
fn reconnecting_is_shown_in_the_header() {
    let mut view = logged_in_view(Role::Agent);
    view.agent.as_mut().unwrap().connection = ConnectionHealth::Reconnecting {
        attempt: 3,
        since_ms: NOW_MS - 12_000,
    };
    view.agent.as_mut().unwrap().monitored = true;
    let harness = app_harness(view);
    harness.get_by_label("Reconnecting (attempt 3, 0:12)");
    harness.get_by_label("Monitored");
}
