//! The History tab: the callbacks the agent promised and not yet made (with Call now), the
//! agent's own calls today, and a search of past calls by caller number.

use egui::{Frame, Key, Margin, RichText, ScrollArea, TextEdit, Ui};

use crate::intent::Intent;
use crate::model::{HistoryTab, PendingCallback};
use crate::theme;
use crate::widgets::{CommandButton, past_calls_ui};

/// Draw the History tab; the search text is edited in place, a search is an intent.
/// `now_ms` marks callbacks that are overdue.
pub fn history_ui(ui: &mut Ui, now_ms: u64, history: &mut HistoryTab, intents: &mut Vec<Intent>) {
    ui.columns(2, |columns| {
        let [today, search] = columns else {
            unreachable!("ui.columns(2) gives two columns");
        };
        callbacks_ui(today, now_ms, &history.callbacks, intents);
        today.add_space(8.0);
        today.label(
            RichText::new(format!("My calls today ({})", history.today.len()))
                .size(18.0)
                .strong(),
        );
        ScrollArea::vertical()
            .id_salt("calls_today")
            .auto_shrink([false, true])
            .show(today, |ui| {
                past_calls_ui(ui, &history.today, true, "No calls yet today.");
            });

        search_ui(search, history, intents);
    });
}

/// The agent's pending callbacks, soonest first, each with Call now.
fn callbacks_ui(
    ui: &mut Ui,
    now_ms: u64,
    callbacks: &[PendingCallback],
    intents: &mut Vec<Intent>,
) {
    ui.horizontal(|ui| {
        ui.label(
            RichText::new(format!("My callbacks ({})", callbacks.len()))
                .size(18.0)
                .strong(),
        );
        if ui
            .add(CommandButton::new("Refresh").accessible_name("Refresh callbacks"))
            .clicked()
        {
            intents.push(Intent::RefreshCallbacks);
        }
    });
    if callbacks.is_empty() {
        ui.label(RichText::new("No callbacks waiting.").weak());
        return;
    }
    let mut sorted: Vec<&PendingCallback> = callbacks.iter().collect();
    sorted.sort_by_key(|c| c.due_ms);
    ScrollArea::vertical()
        .id_salt("callbacks")
        .max_height(220.0)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            for callback in sorted {
                Frame::group(ui.style())
                    .inner_margin(Margin::same(6))
                    .show(ui, |ui| {
                        ui.set_width(ui.available_width());
                        ui.horizontal(|ui| {
                            let who = match &callback.name {
                                Some(name) => format!("{name}  {}", callback.number),
                                None => callback.number.clone(),
                            };
                            ui.label(RichText::new(who).strong());
                            let due = format!("Due {}", callback.due_text);
                            if callback.due_ms <= now_ms {
                                ui.label(RichText::new(due).color(theme::DANGER));
                            } else {
                                ui.label(due);
                            }
                            if callback.dialing {
                                ui.label(RichText::new("Calling now…").weak());
                            } else if ui
                                .add(CommandButton::new("Call now").accessible_name(format!(
                                    "Call back {}",
                                    callback.name.as_deref().unwrap_or(&callback.number)
                                )))
                                .on_hover_text("Ring the customer now; you take the call")
                                .clicked()
                            {
                                intents.push(Intent::DialCallback(callback.callback_id.clone()));
                            }
                        });
                        if !callback.notes.trim().is_empty() {
                            ui.label(RichText::new(callback.notes.trim()).weak());
                        }
                    });
            }
        });
}

fn search_ui(ui: &mut Ui, history: &mut HistoryTab, intents: &mut Vec<Intent>) {
    let label = ui.label(RichText::new("Search by number").size(18.0).strong());
    let mut run_search = false;
    ui.horizontal(|ui| {
        let field = ui
            .add(
                TextEdit::singleline(&mut history.search_text)
                    .hint_text("e.g. 600 123")
                    .desired_width(220.0),
            )
            .labelled_by(label.id);
        if field.lost_focus() && ui.input(|input| input.key_pressed(Key::Enter)) {
            run_search = true;
        }
        let has_text = !history.search_text.trim().is_empty();
        if ui
            .add_enabled(has_text, CommandButton::new("Search"))
            .clicked()
        {
            run_search = true;
        }
    });
    let query = history.search_text.trim();
    if run_search && !query.is_empty() {
        intents.push(Intent::SearchHistory(query.to_owned()));
    }
    match &history.search {
        None => {
            ui.label(RichText::new("Type part of a number and press Enter.").weak());
        }
        Some(search) if search.in_progress => {
            ui.label(RichText::new(format!("Searching for “{}”…", search.query)).weak());
        }
        Some(search) => {
            ui.label(format!(
                "{} call(s) for “{}”",
                search.results.len(),
                search.query
            ));
            ScrollArea::vertical()
                .id_salt("search_results")
                .auto_shrink([false, true])
                .show(ui, |ui| {
                    past_calls_ui(ui, &search.results, true, "No calls found.");
                });
        }
    }
}
