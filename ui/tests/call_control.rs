//! Call control beyond a blind transfer, through the real views: asking a colleague first
//! (warm transfer), escalating to a supervisor, the banner of a consult in progress with its
//! Complete / Back buttons, why a handed-over call comes to this agent (on the ringing and
//! the in-call screen), and the pending callbacks with Call now.

mod common;

use common::*;
use egui_kittest::kittest::Queryable as _;
use sapa_ui::*;

fn colleague(id: &str, name: &str, state: AgentState) -> AgentRef {
    AgentRef {
        agent_id: id.into(),
        name: name.into(),
        state,
    }
}

/// An agent on a call. Bayu and Sri are available, Ines (a supervisor) is on a break, Lea and
/// Tom are busy with calls.
fn on_call_view() -> PhoneView {
    let mut view = logged_in_view(Role::Agent);
    view.directory = Directory {
        queues: vec![],
        agents: vec![
            colleague("bayu", "Bayu", AgentState::Available),
            colleague("lea", "Lea Weber", AgentState::OnCall),
        ],
        supervisors: vec![
            colleague("sri", "Sri", AgentState::Available),
            colleague(
                "ines",
                "Ines",
                AgentState::NotReady {
                    reason: "Break".into(),
                },
            ),
            colleague("tom", "Tom", AgentState::WrapUp),
        ],
    };
    offer_call(&mut view);
    view
}

fn answered(view: PhoneView) -> egui_kittest::Harness<'static, App> {
    let mut harness = app_harness(view);
    click(&mut harness, "Answer");
    harness.state_mut().take_intents();
    harness
}

fn set_consult(harness: &mut egui_kittest::Harness<'static, App>, consult: Option<ConsultView>) {
    let CallView::InCall(call) = &mut harness.state_mut().view.call else {
        panic!("a call in progress");
    };
    call.consult = consult;
    harness.run();
}

#[test]
fn ask_first_rings_an_available_colleague_or_supervisor() {
    let mut harness = answered(on_call_view());
    click(&mut harness, "Transfer");
    harness.get_by_label("Ask first (warm transfer)");
    assert!(is_disabled(&harness, "Ask Lea Weber first"), "on a call");
    assert!(is_disabled(&harness, "Ask Tom first"), "writing up a call");
    // The switchboard rings a colleague on a break too (a supervisor's usual state).
    assert!(!is_disabled(&harness, "Ask Ines first"));
    assert!(!is_disabled(&harness, "Ask Sri first"));
    click(&mut harness, "Ask Bayu first");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::Consult("bayu".into())]
    );
}

#[test]
fn escalate_offers_the_supervisors_that_are_available() {
    let mut harness = answered(on_call_view());
    click(&mut harness, "Escalate");
    assert!(is_disabled(&harness, "Escalate to Tom"));
    assert!(!is_disabled(&harness, "Escalate to Ines"));
    assert!(harness.query_by_label("No supervisor available").is_none());
    click(&mut harness, "Escalate to Sri");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::Escalate("sri".into())]
    );

    // Nobody to escalate to: the menu says so.
    let mut view = on_call_view();
    view.directory.supervisors.retain(|s| s.agent_id == "tom");
    let mut harness = answered(view);
    click(&mut harness, "Escalate");
    harness.get_by_label("No supervisor available");
    assert!(is_disabled(&harness, "Escalate to Tom"));
}

#[test]
fn a_warm_transfer_completes_only_once_the_colleague_answers() {
    let mut harness = answered(on_call_view());
    let consult = ConsultView {
        colleague: "Bayu".into(),
        kind: ConsultKind::WarmTransfer,
        phase: ConsultPhase::Ringing,
    };
    set_consult(&mut harness, Some(consult.clone()));
    harness.get_by_label("Calling Bayu — caller on hold");
    // No second transfer while one is being set up.
    assert!(harness.query_by_label("Transfer").is_none());
    assert!(harness.query_by_label("Escalate").is_none());
    assert!(is_disabled(&harness, "Complete transfer"));

    set_consult(
        &mut harness,
        Some(ConsultView {
            phase: ConsultPhase::Connected,
            ..consult
        }),
    );
    harness.get_by_label("Consulting Bayu — caller on hold");
    click(&mut harness, "Complete transfer");
    click(&mut harness, "Back to caller");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::CompleteTransfer, Intent::CancelConsult]
    );

    // Over: the usual buttons are back.
    set_consult(&mut harness, None);
    harness.get_by_label("Transfer");
    assert!(harness.query_by_label("Complete transfer").is_none());
}

#[test]
fn an_escalation_is_a_three_way_call_the_agent_can_leave() {
    let mut harness = answered(on_call_view());
    set_consult(
        &mut harness,
        Some(ConsultView {
            colleague: "Sri".into(),
            kind: ConsultKind::Escalation,
            phase: ConsultPhase::Connected,
        }),
    );
    harness.get_by_label("Three-way with Sri");
    click(&mut harness, "Leave the call to Sri");
    click(&mut harness, "End escalation");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::CompleteTransfer, Intent::CancelConsult]
    );
}

#[test]
fn a_transferred_call_says_who_sent_it_and_why() {
    let mut view = on_call_view();
    let CallView::Ringing(ringing) = &mut view.call else {
        unreachable!("offered above")
    };
    ringing.origin = Some(CallOrigin {
        kind: OriginKind::BlindTransfer,
        from: Some("ana".into()),
        notes: "Wants a refund for November".into(),
    });
    let mut harness = app_harness(view);
    harness.get_by_label("Transfer from ana: Wants a refund for November");
    click(&mut harness, "Answer");
    // Still there on the in-call screen; the notes are shown, not put in this agent's draft.
    harness.get_by_label("Hang up");
    harness.get_by_label("Transfer from ana: Wants a refund for November");
    assert!(harness.state().view.draft.notes.is_empty());

    // The other kinds, as the in-call screen words them.
    for (kind, from, notes, text) in [
        (
            OriginKind::Escalation,
            Some("ana"),
            "Angry",
            "Escalation from ana: Angry",
        ),
        (OriginKind::Consult, Some("ana"), "", "Consult from ana"),
        (
            OriginKind::Callback,
            None,
            "Refund",
            "Your callback: Refund",
        ),
    ] {
        let CallView::InCall(call) = &mut harness.state_mut().view.call else {
            panic!("in call")
        };
        call.origin = Some(CallOrigin {
            kind,
            from: from.map(str::to_owned),
            notes: notes.into(),
        });
        harness.run();
        harness.get_by_label(text);
    }
}

#[test]
fn callbacks_are_listed_soonest_first_and_can_be_called_now() {
    let mut view = logged_in_view(Role::Agent);
    view.tab = Tab::History;
    view.history.callbacks = vec![
        PendingCallback {
            callback_id: "cb-later".into(),
            number: "+34 600 999 000".into(),
            name: None,
            queue: "Billing".into(),
            due_ms: NOW_MS + 3_600_000,
            due_text: "2026-11-24 10:30".into(),
            notes: "Confirm the refund arrived".into(),
            dialing: false,
        },
        PendingCallback {
            callback_id: "cb-budi".into(),
            number: "+34 600 123 456".into(),
            name: Some("Budi".into()),
            queue: "Billing".into(),
            due_ms: NOW_MS - 60_000,
            due_text: "2026-11-24 09:29".into(),
            notes: "Call back about the refund".into(),
            dialing: false,
        },
    ];
    let mut harness = app_harness(view);
    harness.get_by_label("My callbacks (2)");
    harness.get_by_label("Due 2026-11-24 09:29");
    harness.get_by_label("Call back about the refund");
    // Soonest first.
    let budi = harness.get_by_label("Call back Budi").rect().min.y;
    let later = harness
        .get_by_label("Call back +34 600 999 000")
        .rect()
        .min
        .y;
    assert!(budi < later, "the overdue callback is listed first");

    click(&mut harness, "Call back Budi");
    click(&mut harness, "Refresh callbacks");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![
            Intent::DialCallback("cb-budi".into()),
            Intent::RefreshCallbacks
        ]
    );

    // One being called has no second Call now.
    harness.state_mut().view.history.callbacks[1].dialing = true;
    harness.run();
    assert!(harness.query_by_label("Call back Budi").is_none());
    harness.get_by_label("Calling now…");
}

/// The agent changes what the team keeps about the customer during the call: Edit opens the
/// notes, Save sends them (trimmed) and closes the editor, Cancel sends nothing; a customer
/// with no notes offers to add some.
#[test]
fn the_customer_s_notes_are_edited_during_the_call() {
    let mut harness = answered(on_call_view());
    harness.get_by_label("Prefers email follow-ups; business plan since 2024.");

    // Cancel leaves everything as it was.
    click(&mut harness, "Edit notes");
    click(&mut harness, "Cancel");
    assert!(harness.state_mut().take_intents().is_empty());
    harness.get_by_label("Edit notes");

    click(&mut harness, "Edit notes");
    harness.run();
    assert!(
        harness.get_by_label("About this customer").is_focused(),
        "the agent types at once"
    );
    assert_eq!(
        harness
            .get_by_label("About this customer")
            .value()
            .as_deref(),
        Some("Prefers email follow-ups; business plan since 2024.")
    );
    type_into(
        &mut harness,
        "About this customer",
        " Refund promised by Friday.  ",
    );
    click(&mut harness, "Save notes");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::SaveCustomerNotes {
            number: "+34 600 123 456".into(),
            notes: "Prefers email follow-ups; business plan since 2024. Refund promised by Friday."
                .into(),
        }]
    );
    assert!(
        harness.query_by_label("Save notes").is_none(),
        "the editor closes"
    );

    // No notes yet: the agent can add the first.
    let CallView::InCall(call) = &mut harness.state_mut().view.call else {
        panic!("a call in progress");
    };
    call.caller.notes = None;
    harness.run();
    assert!(harness.query_by_label("Edit notes").is_none());
    click(&mut harness, "Add customer notes");
    type_into(
        &mut harness,
        "About this customer",
        "Hard of hearing: speak slowly",
    );
    click(&mut harness, "Save notes");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::SaveCustomerNotes {
            number: "+34 600 123 456".into(),
            notes: "Hard of hearing: speak slowly".into(),
        }]
    );
}
