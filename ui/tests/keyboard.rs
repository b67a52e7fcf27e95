//! Keyboard shortcuts: the agent can work the whole call without the mouse, also while the
//! cursor is in the notes field.

mod common;

use common::*;
use egui::{Key, Modifiers};
use sapa_ui::*;

#[test]
fn f9_answers_a_ringing_call() {
    let mut view = logged_in_view(Role::Agent);
    offer_call(&mut view);
    let mut harness = app_harness(view);
    harness.key_press(Key::F9);
    harness.run();
    assert_eq!(harness.state_mut().take_intents(), vec![Intent::Answer]);
    assert!(matches!(harness.state().view.call, CallView::InCall(_)));
}

#[test]
fn f9_does_nothing_without_a_ringing_call() {
    let mut harness = app_harness(logged_in_view(Role::Agent));
    harness.key_press(Key::F9);
    harness.run();
    assert_eq!(harness.state_mut().take_intents(), vec![]);
}

#[test]
fn call_keys_work_while_typing_notes() {
    let mut view = logged_in_view(Role::Agent);
    offer_call(&mut view);
    let mut harness = app_harness(view);
    harness.key_press(Key::F9);
    harness.run();
    type_into(&mut harness, "Notes", "abc");
    harness.state_mut().take_intents();

    harness.key_press(Key::F8);
    harness.run();
    harness.key_press(Key::F7);
    harness.run();
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::SetMuted(true), Intent::SetHold(true)]
    );
    // The keys did not end up in the notes.
    assert_eq!(harness.state().view.draft.notes, "abc");

    // Holding F8 down: the system repeats the key press, but only the first one counts, so
    // mute does not flicker on and off.
    harness.key_down(Key::F8);
    harness.run();
    harness.key_down(Key::F8);
    harness.run();
    harness.key_down(Key::F8);
    harness.run();
    harness.key_up(Key::F8);
    harness.run();
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::SetMuted(false)]
    );
}

#[test]
fn f6_toggles_available_and_not_ready() {
    let mut view = logged_in_view(Role::Agent);
    view.agent.as_mut().unwrap().state = AgentState::Available;
    let mut harness = app_harness(view);
    harness.key_press(Key::F6);
    harness.run();
    harness.key_press(Key::F6);
    harness.run();
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![
            Intent::SetNotReady {
                reason: "Break".into()
            },
            Intent::SetAvailable
        ]
    );
}

#[test]
fn ctrl_enter_submits_a_valid_wrap_up_only() {
    let mut view = logged_in_view(Role::Agent);
    offer_call(&mut view);
    let mut harness = app_harness(view);
    harness.key_press(Key::F9);
    harness.run();
    harness.key_press(Key::F10);
    harness.run();
    harness.state_mut().take_intents();

    // Incomplete: nothing is sent.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Enter);
    harness.run();
    assert_eq!(harness.state_mut().take_intents(), vec![]);

    click(&mut harness, "Disposition code");
    click(&mut harness, "Technical problem");
    click(&mut harness, "Resolved");
    type_into(&mut harness, "Notes", "Reset the router");
    harness.state_mut().take_intents();

    // The cursor is still in the notes: Ctrl+Enter submits rather than adding a line.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Enter);
    harness.run();
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::SubmitDisposition(Disposition {
            call_id: "call-42".into(),
            code: "TECH".into(),
            resolution: Resolution::Resolved,
            notes: "Reset the router".into(),
            follow_up: None,
        })]
    );
}
