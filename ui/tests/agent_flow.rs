//! An agent's shift in miniature, driven through the UI as a person would: log in, go
//! available, see a call ring with the caller's history, answer, take notes, hang up, and
//! complete the wrap-up form, with a stand-in engine applying the intents.

mod common;

use common::*;
use egui::Key;
use egui_kittest::kittest::Queryable as _;
use sapa_ui::*;

#[test]
fn login_to_submitted_disposition() {
    let mut harness = app_harness(PhoneView {
        now_ms: NOW_MS,
        disposition_codes: disposition_codes(),
        ..PhoneView::default()
    });

    // Login: Log in waits until every field is filled.
    assert!(is_disabled(&harness, "Log in"));
    type_into(
        &mut harness,
        "Switchboard URL",
        "wss://switchboard.test:8443",
    );
    type_into(&mut harness, "User", "Maria Lopez");
    type_into(&mut harness, "Password", "correct horse");
    assert!(!is_disabled(&harness, "Log in"));
    click(&mut harness, "Log in");
    let intents = harness.state_mut().take_intents();
    let Some(Intent::LogIn {
        url,
        user,
        password,
    }) = intents.first()
    else {
        panic!("expected LogIn, got {intents:?}");
    };
    assert_eq!(url, "wss://switchboard.test:8443");
    assert_eq!(user, "Maria Lopez");
    assert_eq!(password.expose(), "correct horse");
    assert!(!format!("{intents:?}").contains("correct horse"));

    // The header shows the agent; the state selector makes them available.
    harness.get_by_label("Maria Lopez");
    click(&mut harness, "Agent state");
    click(&mut harness, "Available");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::SetAvailable]
    );
    harness.get_by_label_contains("Available");

    // A call rings: the screen-pop shows who calls and their history, before answering.
    offer_call(&mut harness.state_mut().view);
    harness.run();
    harness.get_by_label("Ana Ruiz");
    harness.get_by_label("+34 600 123 456");
    harness.get_by_label("Prefers email follow-ups; business plan since 2024.");
    harness.get_by_label("Queue: Billing");
    let newer = harness
        .get_by_label("Asked about the November invoice")
        .rect();
    let older = harness
        .get_by_label("Router replaced under warranty")
        .rect();
    assert!(newer.top() < older.top(), "history is newest first");
    harness.get_by_label_contains("CSAT 3/5");
    harness.get_by_label("20 s to answer");

    click(&mut harness, "Answer");
    assert_eq!(harness.state_mut().take_intents(), vec![Intent::Answer]);

    // In call: the history and the customer's notes stay in view; notes start the draft
    // and are stored as typed.
    harness.get_by_label("Asked about the November invoice");
    harness.get_by_label("Prefers email follow-ups; business plan since 2024.");
    harness.get_by_label("Hang up");
    type_into(
        &mut harness,
        "Notes",
        "Wants a refund of the duplicate charge",
    );
    let intents = harness.state_mut().take_intents();
    assert!(
        intents
            .iter()
            .any(|intent| matches!(intent, Intent::DraftChanged(draft) if draft.notes == "Wants a refund of the duplicate charge")),
        "{intents:?}"
    );
    assert_eq!(
        harness
            .state()
            .stored_draft
            .as_ref()
            .map(|d| d.call_id.as_str()),
        Some("call-42")
    );
    harness.get_by_label_contains("Draft saved");

    harness.key_press(Key::F10);
    harness.run();
    assert_eq!(harness.state_mut().take_intents(), vec![Intent::HangUp]);

    // Wrap-up: the notes carried over, the countdown runs, Submit waits for a valid form.
    harness.get_by_label("After-call work: 1:00");
    assert_eq!(
        harness.get_by_label("Notes").value().as_deref(),
        Some("Wants a refund of the duplicate charge")
    );
    assert!(is_disabled(&harness, "Submit"));
    click(&mut harness, "Disposition code");
    click(&mut harness, "Billing question");
    click(&mut harness, "Follow-up");
    harness.get_by_label("Follow-up date and time are required (YYYY-MM-DD HH:MM).");
    assert!(is_disabled(&harness, "Submit"));

    type_into(&mut harness, "Follow-up date", "2026-11-24");
    harness.get_by_label_contains("Use the format YYYY-MM-DD HH:MM");
    assert!(is_disabled(&harness, "Submit"));
    harness.get_by_label("Follow-up date").type_text(" 09:30");
    harness.run();
    assert!(
        harness
            .query_by_label_contains("Follow-up date and time are required")
            .is_none()
    );
    assert!(!is_disabled(&harness, "Submit"));
    harness.state_mut().take_intents();

    click(&mut harness, "Submit");
    let intents = harness.state_mut().take_intents();
    let expected = Disposition {
        call_id: "call-42".into(),
        code: "BILLING".into(),
        resolution: Resolution::FollowUp,
        notes: "Wants a refund of the duplicate charge".into(),
        follow_up: Some(LocalDateTime {
            date: CalendarDate {
                year: 2026,
                month: 11,
                day: 24,
            },
            hour: 9,
            minute: 30,
        }),
    };
    assert_eq!(intents, vec![Intent::SubmitDisposition(expected)]);
    harness.get_by_label("Waiting for a call");
}

#[test]
fn draft_survives_a_restart() {
    let mut view = logged_in_view(Role::Agent);
    offer_call(&mut view);
    let mut harness = app_harness(view);
    click(&mut harness, "Answer");
    type_into(
        &mut harness,
        "Notes",
        "Customer moved house; new address pending",
    );
    harness.key_press(Key::F10);
    harness.run();

    // The engine stores the draft as JSON; the app stops.
    let saved_json = serde_json::to_string(&harness.state().view.draft).unwrap();
    let wrap_up = harness.state().view.call.clone();
    drop(harness);

    // A fresh start: a new view built from what was stored.
    let mut view = logged_in_view(Role::Agent);
    view.call = wrap_up;
    view.draft = serde_json::from_str(&saved_json).unwrap();
    let harness = app_harness(view);
    assert_eq!(
        harness.get_by_label("Notes").value().as_deref(),
        Some("Customer moved house; new address pending")
    );
}
