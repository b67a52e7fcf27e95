//! The dial pad on the idle call screen, driven as a person would: tap digits (and fix one),
//! or type a number, then Dial; the view returns `Intent::DialOut` with the number. No dial pad
//! while a call rings.

mod common;

use common::*;
use egui_kittest::kittest::Queryable as _;
use sapa_ui::*;

fn idle_view(state: AgentState) -> PhoneView {
    let mut view = logged_in_view(Role::Agent);
    if let Some(agent) = &mut view.agent {
        agent.state = state;
    }
    view
}

#[test]
fn tapping_digits_and_dialing_returns_the_number() {
    let mut harness = app_harness(idle_view(AgentState::Available));
    assert!(is_disabled(&harness, "Dial"), "nothing to dial yet");
    for key in ["+", "1", "5", "5", "5", "0", "1", "0", "9"] {
        click(&mut harness, &format!("Dial pad {key}"));
    }
    click(&mut harness, "Delete last digit");
    click(&mut harness, "Dial pad 0");
    click(&mut harness, "Dial");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::DialOut("+15550100".into())]
    );
    // The number stays on the pad (to dial again after a busy line).
    assert_eq!(harness.state().view.dial_number, "+15550100");
}

#[test]
fn a_typed_number_is_dialed_trimmed_from_not_ready() {
    let mut harness = app_harness(idle_view(AgentState::NotReady {
        reason: "break".into(),
    }));
    type_into(&mut harness, "Number to dial", " +44 20 7946 0000 ");
    click(&mut harness, "Dial");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::DialOut("+44 20 7946 0000".into())]
    );
}

#[test]
fn no_dial_pad_while_a_call_rings() {
    let mut view = idle_view(AgentState::Available);
    offer_call(&mut view);
    let harness = app_harness(view);
    assert!(harness.query_by_label("Dial").is_none());
    assert!(harness.query_by_label("Number to dial").is_none());
}

#[test]
fn the_keys_sit_centred_under_the_number_field() {
    let harness = app_harness(idle_view(AgentState::Available));
    let centre_x = |label: &str| {
        let rect = harness.get_by_label(label).rect();
        (rect.min.x + rect.max.x) / 2.0
    };
    let field = centre_x("Number to dial");
    let middle_key = centre_x("Dial pad 5");
    assert!(
        (field - middle_key).abs() < 2.0,
        "the middle key is at x {middle_key}, the field at x {field}"
    );
}
