//! The History tab: the agent's own calls today, and a search of past calls by caller number.

use egui::{Key, RichText, ScrollArea, TextEdit, Ui};

use crate::intent::Intent;
use crate::model::HistoryTab;
use crate::widgets::{CommandButton, past_calls_ui};

/// Draw the History tab; the search text is edited in place, a search is an intent.
pub fn history_ui(ui: &mut Ui, history: &mut HistoryTab, intents: &mut Vec<Intent>) {
    ui.columns(2, |columns| {
        let [today, search] = columns else {
            unreachable!("ui.columns(2) gives two columns");
        };
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
