//! The call itself: the screen-pop while a call rings (who is calling, from which queue, how long
//! they waited, what happened on their earlier calls, Answer / Decline and the ring countdown),
//! and the in-call screen (timer, mute, hold, hang up, keypad, transfer, warm transfer, escalate,
//! the consult in progress, level meters, voice quality, the caller's history and the notes that
//! start the disposition). A call handed over by a colleague says so on both screens, with the
//! notes that came with it.

use egui::{
    CornerRadius, Frame, Grid, Margin, ProgressBar, RichText, ScrollArea, Stroke, TextEdit, Ui,
};

use crate::intent::Intent;
use crate::model::{
    ActiveCall, AgentRef, AgentState, CallOrigin, CallerInfo, ConsultKind, ConsultPhase,
    ConsultView, Directory, DispositionDraft, DraftStatus, RingingCall, Shortcuts,
};
use crate::theme;
use crate::time_text::{duration_text, elapsed_text, seconds_left};
use crate::widgets::{
    CommandButton, chip_ui, level_meter_ui, past_calls_ui, timer_text, voice_quality_ui,
};

/// The DTMF keypad, row by row.
const KEYPAD: [[char; 3]; 4] = [
    ['1', '2', '3'],
    ['4', '5', '6'],
    ['7', '8', '9'],
    ['*', '0', '#'],
];

/// The screen-pop for a ringing call.
pub fn ringing_ui(
    ui: &mut Ui,
    now_ms: u64,
    ringing: &RingingCall,
    shortcuts: &Shortcuts,
    intents: &mut Vec<Intent>,
) {
    Frame::new()
        .fill(theme::RINGING.gamma_multiply(0.12))
        .stroke(Stroke::new(3.0, theme::RINGING))
        .corner_radius(CornerRadius::same(10))
        .inner_margin(Margin::same(16))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                chip_ui(ui, "Incoming call", theme::RINGING);
                ui.label(RichText::new(format!("Queue: {}", ringing.queue)).strong());
                ui.label(format!("Waited {}", duration_text(ringing.waited_ms)));
            });
            if let Some(origin) = &ringing.origin {
                ui.add_space(4.0);
                origin_ui(ui, origin);
            }
            ui.add_space(6.0);
            caller_identity_ui(ui, &ringing.caller, 34.0);
            customer_notes_ui(ui, &ringing.caller, None);
            ui.add_space(8.0);

            let total_ms = ringing
                .ring_deadline_ms
                .saturating_sub(ringing.ring_started_ms)
                .max(1);
            let left_ms = ringing.ring_deadline_ms.saturating_sub(now_ms);
            let left_s = seconds_left(now_ms, ringing.ring_deadline_ms);
            ui.horizontal(|ui| {
                if ui
                    .add(
                        CommandButton::new("Answer")
                            .shortcut(shortcuts.answer)
                            .fill(theme::AVAILABLE)
                            .large(),
                    )
                    .clicked()
                {
                    intents.push(Intent::Answer);
                }
                if ui
                    .add(CommandButton::new("Decline").large())
                    .on_hover_text("The call goes to another agent")
                    .clicked()
                {
                    intents.push(Intent::Decline);
                }
                ui.vertical(|ui| {
                    ui.label(timer_text(format!("{left_s} s to answer"), 18.0));
                    ui.add(
                        ProgressBar::new(left_ms as f32 / total_ms as f32)
                            .desired_width(220.0)
                            .fill(if left_s <= 5 {
                                theme::DANGER
                            } else {
                                theme::RINGING
                            }),
                    );
                });
            });
        });
    ui.add_space(10.0);
    caller_history_ui(ui, &ringing.caller);
}

/// Why the call came to this agent, with the notes that travelled with it.
fn origin_ui(ui: &mut Ui, origin: &CallOrigin) {
    Frame::new()
        .fill(theme::ON_CALL.gamma_multiply(0.15))
        .corner_radius(CornerRadius::same(6))
        .inner_margin(Margin::symmetric(8, 4))
        .show(ui, |ui| {
            ui.label(RichText::new(origin.headline()).size(16.0).strong());
        });
}

/// The caller's name (or "Unknown caller") large, the number below in monospace.
fn caller_identity_ui(ui: &mut Ui, caller: &CallerInfo, size: f32) {
    match &caller.name {
        Some(name) => {
            ui.label(RichText::new(name).size(size).strong());
        }
        None => {
            ui.label(RichText::new("Unknown caller").size(size * 0.6).weak());
        }
    }
    ui.label(
        RichText::new(&caller.number)
            .monospace()
            .size(size * 0.75)
            .strong(),
    );
}

/// What the team keeps about the customer, under their name. With `editing` (the call's id
/// and the intents), the agent can write or change it; the text being edited lives in the
/// UI's memory for that call until it is saved or cancelled.
fn customer_notes_ui(ui: &mut Ui, caller: &CallerInfo, editing: Option<(&str, &mut Vec<Intent>)>) {
    let notes = caller
        .notes
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let Some((call_id, intents)) = editing else {
        if let Some(notes) = notes {
            ui.add_space(4.0);
            shown_notes_ui(ui, notes, false);
        }
        return;
    };
    let id = ui.scope_id().with(("customer_notes", call_id));
    let editor_id = id.with("editor");
    let mut text: Option<String> = ui.data_mut(|d| d.get_temp(id));
    ui.add_space(4.0);
    match &mut text {
        None => {
            let start = match notes {
                Some(notes) => shown_notes_ui(ui, notes, true),
                None => ui
                    .small_button("Add customer notes")
                    .on_hover_text("What the team should know next time this customer calls")
                    .clicked(),
            };
            if start {
                text = Some(notes.unwrap_or_default().to_owned());
                // The agent types at once, without a second click into the field.
                ui.memory_mut(|m| m.request_focus(editor_id));
            }
        }
        Some(draft) => {
            let mut done = false;
            notes_frame(ui, |ui| {
                ui.vertical(|ui| {
                    let label = ui.label(RichText::new("About this customer").strong());
                    ui.add(
                        TextEdit::multiline(draft)
                            .id(editor_id)
                            .desired_rows(2)
                            .desired_width(f32::INFINITY)
                            .hint_text("What the team should know next time they call"),
                    )
                    .labelled_by(label.id);
                    ui.horizontal(|ui| {
                        if ui.button("Save notes").clicked() {
                            intents.push(Intent::SaveCustomerNotes {
                                number: caller.number.clone(),
                                notes: draft.trim().to_owned(),
                            });
                            done = true;
                        }
                        if ui.button("Cancel").clicked() {
                            done = true;
                        }
                    });
                });
            });
            if done {
                text = None;
            }
        }
    }
    ui.data_mut(|d| match text {
        Some(text) => {
            d.insert_temp(id, text);
        }
        None => d.remove::<String>(id),
    });
}

/// The customer's notes in their box, with an Edit notes button when `editable`; returns
/// whether it was clicked.
fn shown_notes_ui(ui: &mut Ui, notes: &str, editable: bool) -> bool {
    let mut edit = false;
    notes_frame(ui, |ui| {
        ui.label(RichText::new("About this customer:").strong());
        ui.label(notes);
        edit = editable && ui.small_button("Edit notes").clicked();
    });
    edit
}

/// The tinted box the customer's notes sit in.
fn notes_frame(ui: &mut Ui, add: impl FnOnce(&mut Ui)) {
    Frame::new()
        .fill(theme::CAUTION.gamma_multiply(0.12))
        .corner_radius(CornerRadius::same(6))
        .inner_margin(Margin::symmetric(8, 4))
        .show(ui, |ui| {
            ui.horizontal_wrapped(add);
        });
}

/// The caller's earlier calls, newest first, in a scroll area that takes the rest of the height.
fn caller_history_ui(ui: &mut Ui, caller: &CallerInfo) {
    ui.label(
        RichText::new(format!("Earlier calls ({})", caller.history.len()))
            .size(18.0)
            .strong(),
    );
    ScrollArea::vertical()
        .id_salt("caller_history")
        .auto_shrink([false, true])
        .show(ui, |ui| {
            past_calls_ui(ui, &caller.history, false, "First call from this number.");
        });
}

/// The disposition draft as the call and wrap-up screens edit it, with whether the engine has
/// stored it.
pub struct DraftEditor<'a> {
    pub draft: &'a mut DispositionDraft,
    pub status: &'a DraftStatus,
}

/// The in-call screen. Edits the draft's notes in place (the caller of this function reports
/// the change); everything else is an intent.
pub fn in_call_ui(
    ui: &mut Ui,
    now_ms: u64,
    call: &ActiveCall,
    editor: DraftEditor<'_>,
    directory: &Directory,
    shortcuts: &Shortcuts,
    intents: &mut Vec<Intent>,
) {
    ui.columns(2, |columns| {
        let [left, right] = columns else {
            unreachable!("ui.columns(2) gives two columns");
        };
        controls_ui(left, now_ms, call, directory, shortcuts, intents);
        notes_ui(right, editor.draft, editor.status);
        right.add_space(8.0);
        caller_history_ui(right, &call.caller);
    });
}

fn controls_ui(
    ui: &mut Ui,
    now_ms: u64,
    call: &ActiveCall,
    directory: &Directory,
    shortcuts: &Shortcuts,
    intents: &mut Vec<Intent>,
) {
    ui.horizontal(|ui| {
        chip_ui(ui, "On call", theme::ON_CALL);
        ui.label(RichText::new(format!("Queue: {}", call.queue)).strong());
    });
    if let Some(origin) = &call.origin {
        origin_ui(ui, origin);
    }
    caller_identity_ui(ui, &call.caller, 28.0);
    customer_notes_ui(ui, &call.caller, Some((&call.call_id, intents)));
    ui.horizontal(|ui| {
        ui.label(timer_text(elapsed_text(now_ms, call.answered_at_ms), 30.0))
            .on_hover_text("Talk time");
        if call.muted {
            chip_ui(ui, "Muted", theme::CAUTION);
        }
        if let Some(held_since_ms) = call.held_since_ms {
            chip_ui(
                ui,
                format!("On hold {}", elapsed_text(now_ms, held_since_ms)),
                theme::CAUTION,
            );
        }
    });
    ui.add_space(6.0);

    let on_hold = call.held_since_ms.is_some();
    ui.horizontal_wrapped(|ui| {
        if ui
            .add(
                CommandButton::new("Mute")
                    .shortcut(shortcuts.mute)
                    .large()
                    .toggled(call.muted),
            )
            .clicked()
        {
            intents.push(Intent::SetMuted(!call.muted));
        }
        if ui
            .add(
                CommandButton::new("Hold")
                    .shortcut(shortcuts.hold)
                    .large()
                    .toggled(on_hold),
            )
            .clicked()
        {
            intents.push(Intent::SetHold(!on_hold));
        }
        if ui
            .add(
                CommandButton::new("Hang up")
                    .shortcut(shortcuts.hang_up)
                    .fill(theme::DANGER)
                    .large(),
            )
            .clicked()
        {
            intents.push(Intent::HangUp);
        }
    });
    match &call.consult {
        Some(consult) => consult_ui(ui, consult, intents),
        None => {
            ui.horizontal_wrapped(|ui| {
                transfer_menu_ui(ui, directory, intents);
                escalate_menu_ui(ui, &directory.supervisors, intents);
            });
        }
    }
    ui.add_space(6.0);

    ui.horizontal(|ui| {
        keypad_ui(ui, intents);
        ui.vertical(|ui| {
            ui.label(RichText::new("Sent").weak());
            let sent = if call.dtmf_sent.is_empty() {
                "—"
            } else {
                &call.dtmf_sent
            };
            ui.label(RichText::new(sent).monospace().size(18.0));
        });
    });
    ui.add_space(6.0);
    level_meter_ui(ui, "Mic", call.mic_level_dbfs);
    level_meter_ui(ui, "Speaker", call.speaker_level_dbfs);
    voice_quality_ui(ui, &call.voice);
}

fn transfer_menu_ui(ui: &mut Ui, directory: &Directory, intents: &mut Vec<Intent>) {
    ui.menu_button("Transfer", |ui| {
        ui.label(RichText::new("To a queue").weak());
        if directory.queues.is_empty() {
            ui.label(RichText::new("No queues").weak());
        }
        for queue in &directory.queues {
            let button = CommandButton::new(&queue.name)
                .accessible_name(format!("Transfer to queue {}", queue.name));
            if ui.add(button).clicked() {
                intents.push(Intent::TransferToQueue(queue.queue_id.clone()));
                ui.close();
            }
        }
        ui.separator();
        ui.label(RichText::new("To an agent").weak());
        if directory.agents.is_empty() {
            ui.label(RichText::new("No agents").weak());
        }
        for agent in &directory.agents {
            let available = agent.state == AgentState::Available;
            let label = if available {
                agent.name.clone()
            } else {
                format!("{} ({})", agent.name, agent.state.label())
            };
            let button = CommandButton::new(&label)
                .accessible_name(format!("Transfer to agent {}", agent.name));
            if ui.add_enabled(available, button).clicked() {
                intents.push(Intent::TransferToAgent(agent.agent_id.clone()));
                ui.close();
            }
        }
        ui.separator();
        ui.label(RichText::new("Ask first (warm transfer)").weak());
        let colleagues: Vec<&AgentRef> = directory
            .agents
            .iter()
            .chain(&directory.supervisors)
            .collect();
        if colleagues.is_empty() {
            ui.label(RichText::new("No colleagues logged in").weak());
        }
        for colleague in colleagues {
            let label = colleague_label(colleague);
            let button =
                CommandButton::new(&label).accessible_name(format!("Ask {} first", colleague.name));
            if ui
                .add_enabled(can_join(&colleague.state), button)
                .on_hover_text("The caller waits on hold while you talk")
                .clicked()
            {
                intents.push(Intent::Consult(colleague.agent_id.clone()));
                ui.close();
            }
        }
    });
}

/// Can a colleague in this state be rung for a consult or an escalation? The switchboard
/// rings anyone who is not busy with a call: available, or not ready (supervisors who take
/// escalations usually stay not ready so that queue calls pass them by).
fn can_join(state: &AgentState) -> bool {
    matches!(state, AgentState::Available | AgentState::NotReady { .. })
}

/// "Bayu", or "Bayu (On call)" with the state when the colleague is not available.
fn colleague_label(colleague: &AgentRef) -> String {
    if colleague.state == AgentState::Available {
        colleague.name.clone()
    } else {
        format!("{} ({})", colleague.name, colleague.state.label())
    }
}

/// The Escalate menu: the supervisors logged in; those busy with a call cannot join.
fn escalate_menu_ui(ui: &mut Ui, supervisors: &[AgentRef], intents: &mut Vec<Intent>) {
    ui.menu_button("Escalate", |ui| {
        ui.label(RichText::new("Bring a supervisor into the call").weak());
        if !supervisors.iter().any(|s| can_join(&s.state)) {
            ui.label(RichText::new("No supervisor available").weak());
        }
        for supervisor in supervisors {
            let available = can_join(&supervisor.state);
            let label = colleague_label(supervisor);
            let button = CommandButton::new(&label)
                .accessible_name(format!("Escalate to {}", supervisor.name));
            if ui
                .add_enabled(available, button)
                .on_hover_text("All three of you hear each other; your notes go along")
                .clicked()
            {
                intents.push(Intent::Escalate(supervisor.agent_id.clone()));
                ui.close();
            }
        }
    });
}

/// The consult or escalation in progress: who, where it stands, and how to end it.
fn consult_ui(ui: &mut Ui, consult: &ConsultView, intents: &mut Vec<Intent>) {
    let who = &consult.colleague;
    let connected = consult.phase == ConsultPhase::Connected;
    let (banner, complete, cancel) = match (consult.kind, consult.phase) {
        (ConsultKind::WarmTransfer, ConsultPhase::Ringing) => (
            format!("Calling {who} — caller on hold"),
            "Complete transfer".to_owned(),
            "Back to caller",
        ),
        (ConsultKind::WarmTransfer, ConsultPhase::Connected) => (
            format!("Consulting {who} — caller on hold"),
            "Complete transfer".to_owned(),
            "Back to caller",
        ),
        (ConsultKind::Escalation, ConsultPhase::Ringing) => (
            format!("Calling {who} to join the call"),
            format!("Leave the call to {who}"),
            "End escalation",
        ),
        (ConsultKind::Escalation, ConsultPhase::Connected) => (
            format!("Three-way with {who}"),
            format!("Leave the call to {who}"),
            "End escalation",
        ),
    };
    Frame::new()
        .fill(theme::CAUTION.gamma_multiply(0.15))
        .stroke(Stroke::new(2.0, theme::CAUTION))
        .corner_radius(CornerRadius::same(8))
        .inner_margin(Margin::same(8))
        .show(ui, |ui| {
            ui.label(RichText::new(banner).size(18.0).strong());
            ui.horizontal_wrapped(|ui| {
                let hover = if connected {
                    "You leave the call; the caller stays with them"
                } else {
                    "Possible once they answer"
                };
                if ui
                    .add_enabled(
                        connected,
                        CommandButton::new(&complete).fill(theme::AVAILABLE),
                    )
                    .on_hover_text(hover)
                    .on_disabled_hover_text(hover)
                    .clicked()
                {
                    intents.push(Intent::CompleteTransfer);
                }
                if ui.add(CommandButton::new(cancel)).clicked() {
                    intents.push(Intent::CancelConsult);
                }
            });
        });
}

fn keypad_ui(ui: &mut Ui, intents: &mut Vec<Intent>) {
    Grid::new("dtmf_keypad").spacing([4.0, 4.0]).show(ui, |ui| {
        for row in KEYPAD {
            for digit in row {
                let label = digit.to_string();
                let button = egui::Button::new(RichText::new(&label).monospace().size(18.0))
                    .min_size(egui::vec2(40.0, 34.0));
                if ui
                    .add(button)
                    .accessible_name(format!("Keypad {digit}"))
                    .on_hover_text(format!("Send DTMF {digit}"))
                    .clicked()
                {
                    intents.push(Intent::SendDtmf(digit));
                }
            }
            ui.end_row();
        }
    });
}

/// Notes typed during the call; they become the disposition's notes.
fn notes_ui(ui: &mut Ui, draft: &mut DispositionDraft, draft_status: &DraftStatus) {
    let label = ui
        .horizontal(|ui| {
            let label = ui.label(RichText::new("Notes").size(18.0).strong());
            draft_status_ui(ui, draft_status);
            label
        })
        .inner;
    ui.add(
        TextEdit::multiline(&mut draft.notes)
            .hint_text("What the caller needs, what you did")
            .desired_rows(6)
            .desired_width(f32::INFINITY),
    )
    .labelled_by(label.id);
}

/// "Draft saved" / "Saving…" / "Draft not saved: …".
pub fn draft_status_ui(ui: &mut Ui, draft_status: &DraftStatus) {
    match draft_status {
        DraftStatus::Saved => {
            ui.label(RichText::new("Draft saved").color(theme::GOOD).small());
        }
        DraftStatus::Saving => {
            ui.label(RichText::new("Saving draft…").weak().small());
        }
        DraftStatus::SaveFailed(why) => {
            ui.label(
                RichText::new(format!("Draft not saved: {why}"))
                    .color(theme::DANGER)
                    .small(),
            );
        }
    }
}
