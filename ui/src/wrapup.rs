//! The wrap-up form: disposition code, resolution, notes and (for Follow-up) the date and time to
//! call back, with the after-call-work countdown and whether the draft is saved. Submit is
//! enabled only when the draft is complete; what is missing is listed beside it.

use egui::{ComboBox, Grid, RichText, TextEdit, Ui};

use crate::call::{DraftEditor, draft_status_ui};
use crate::intent::Intent;
use crate::model::{DispositionCode, DispositionDraft, Resolution, Shortcuts, WrapUpCall};
use crate::theme;
use crate::time_text::{duration_text, seconds_left};
use crate::widgets::{CommandButton, chip_ui, error_text_ui, timer_text};

/// Wider than this, the notes field gets hard to read.
const FORM_MAX_WIDTH: f32 = 860.0;
/// Countdown turns red with this many seconds left.
const ACW_WARNING_S: u64 = 15;

/// Draw the wrap-up form; edits `draft` in place (the caller reports changes) and pushes
/// `SubmitDisposition` when Submit is clicked on a valid draft.
pub fn wrap_up_ui(
    ui: &mut Ui,
    now_ms: u64,
    wrap_up: &WrapUpCall,
    editor: DraftEditor<'_>,
    codes: &[DispositionCode],
    shortcuts: &Shortcuts,
    intents: &mut Vec<Intent>,
) {
    let DraftEditor {
        draft,
        status: draft_status,
    } = editor;
    ui.set_max_width(FORM_MAX_WIDTH);
    ui.horizontal_wrapped(|ui| {
        chip_ui(ui, "Wrap-up", theme::WRAP_UP);
        ui.label(
            RichText::new(wrap_up.caller.display_name())
                .size(22.0)
                .strong(),
        );
        if wrap_up.caller.name.is_some() {
            ui.label(RichText::new(&wrap_up.caller.number).monospace());
        }
        ui.label(format!("Queue: {}", wrap_up.queue));
        ui.label(format!("Talk time {}", duration_text(wrap_up.talk_ms)));
    });
    ui.horizontal(|ui| {
        match wrap_up.acw_deadline_ms {
            Some(deadline_ms) => {
                let left_s = seconds_left(now_ms, deadline_ms);
                let color = if left_s <= ACW_WARNING_S {
                    theme::DANGER
                } else {
                    theme::WRAP_UP
                };
                ui.label(
                    timer_text(
                        format!("After-call work: {}", duration_text(left_s * 1000)),
                        20.0,
                    )
                    .color(color),
                )
                .on_hover_text("Time left before you are made available again");
            }
            None => {
                ui.label(RichText::new("After-call work: no time limit").weak());
            }
        }
        draft_status_ui(ui, draft_status);
    });
    ui.add_space(8.0);

    Grid::new("disposition_form")
        .num_columns(2)
        .spacing([14.0, 10.0])
        .show(ui, |ui| {
            let label = ui.label(RichText::new("Disposition code").strong());
            code_selector_ui(ui, draft, codes, label.id);
            ui.end_row();

            ui.label(RichText::new("Resolution").strong());
            ui.horizontal(|ui| {
                for resolution in Resolution::ALL {
                    ui.radio_value(&mut draft.resolution, Some(resolution), resolution.label());
                }
            });
            ui.end_row();

            let label = ui.label(RichText::new("Notes").strong());
            ui.add(
                TextEdit::multiline(&mut draft.notes)
                    .desired_rows(5)
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id);
            ui.end_row();

            let follow_up = draft.resolution == Some(Resolution::FollowUp);
            let label = ui.label(RichText::new("Follow-up date").strong());
            ui.vertical(|ui| {
                ui.add_enabled(
                    follow_up,
                    TextEdit::singleline(&mut draft.follow_up_text)
                        .hint_text("YYYY-MM-DD HH:MM")
                        .desired_width(220.0),
                )
                .labelled_by(label.id);
                if let Some(problem) = draft.follow_up_problem() {
                    error_text_ui(ui, problem.to_string());
                } else if !follow_up {
                    ui.label(RichText::new("Only for Follow-up").weak().small());
                }
            });
            ui.end_row();
        });

    ui.add_space(10.0);
    let checked = draft.validate(codes);
    ui.horizontal_wrapped(|ui| {
        let submit = CommandButton::new("Submit")
            .shortcut(shortcuts.submit_disposition)
            .fill(theme::WRAP_UP)
            .large();
        let clicked = ui.add_enabled(checked.is_ok(), submit).clicked();
        match checked {
            Ok(disposition) if clicked => intents.push(Intent::SubmitDisposition(disposition)),
            Ok(_) => {}
            Err(problems) => {
                ui.vertical(|ui| {
                    for problem in problems {
                        // The follow-up problem is already shown under its field.
                        if draft.follow_up_problem() != Some(problem) {
                            ui.label(RichText::new(problem.to_string()).weak());
                        }
                    }
                });
            }
        }
    });
}

/// The configured codes in a drop-down; a code no longer configured is shown as such.
fn code_selector_ui(
    ui: &mut Ui,
    draft: &mut DispositionDraft,
    codes: &[DispositionCode],
    label_id: egui::Id,
) {
    let selected_text = match &draft.code {
        None => "Choose…".to_owned(),
        Some(code) => codes.iter().find(|known| &known.code == code).map_or_else(
            || format!("{code} (no longer exists)"),
            |known| known.label.clone(),
        ),
    };
    ComboBox::from_id_salt("disposition_code")
        .selected_text(selected_text)
        .width(280.0)
        .show_ui(ui, |ui| {
            for code in codes {
                ui.selectable_value(&mut draft.code, Some(code.code.clone()), &code.label);
            }
        })
        .response
        .labelled_by(label_id);
}
