//! The supervisor's Reports tab: a date range, by agent or by queue, Run report, the resulting
//! table, and Export CSV. Dates are checked as they are typed; the engine runs the query.

use egui::{Grid, Key, RichText, ScrollArea, TextEdit, Ui};

use crate::intent::Intent;
use crate::model::{ReportGrouping, ReportsView};
use crate::time_text::{CalendarDate, DateTextError, parse_date};
use crate::widgets::{CommandButton, error_text_ui};

/// Draw the Reports tab; the dates and grouping are edited in place, running and exporting are
/// intents.
pub fn reports_ui(ui: &mut Ui, reports: &mut ReportsView, intents: &mut Vec<Intent>) {
    let mut enter_pressed = false;
    Grid::new("report_form")
        .num_columns(2)
        .spacing([14.0, 8.0])
        .show(ui, |ui| {
            for (label, text) in [
                ("From", &mut reports.from_text),
                ("To", &mut reports.to_text),
            ] {
                let label = ui.label(RichText::new(label).strong());
                ui.horizontal(|ui| {
                    let field = ui
                        .add(
                            TextEdit::singleline(text)
                                .hint_text("YYYY-MM-DD")
                                .desired_width(140.0),
                        )
                        .labelled_by(label.id);
                    if field.lost_focus() && ui.input(|input| input.key_pressed(Key::Enter)) {
                        enter_pressed = true;
                    }
                    match parse_date(text) {
                        Ok(_) | Err(DateTextError::Empty) => {}
                        Err(error) => {
                            error_text_ui(ui, error.to_string());
                        }
                    }
                });
                ui.end_row();
            }
            ui.label(RichText::new("Group").strong());
            ui.horizontal(|ui| {
                for grouping in [ReportGrouping::Agent, ReportGrouping::Queue] {
                    ui.radio_value(&mut reports.by, grouping, grouping.label());
                }
            });
            ui.end_row();
        });

    let range = date_range(&reports.from_text, &reports.to_text);
    ui.horizontal(|ui| {
        let can_run = range.is_ok() && !reports.in_progress;
        let clicked = ui
            .add_enabled(can_run, CommandButton::new("Run report"))
            .clicked();
        if let Ok((from, to)) = range
            && can_run
            && (clicked || enter_pressed)
        {
            intents.push(Intent::RunReport {
                from,
                to,
                by: reports.by,
            });
        }
        let has_table = reports.table.is_some();
        if ui
            .add_enabled(has_table, CommandButton::new("Export CSV"))
            .clicked()
        {
            intents.push(Intent::ExportReportCsv);
        }
        if reports.in_progress {
            ui.label(RichText::new("Running…").weak());
        } else if let Err(why) = &range {
            ui.label(RichText::new(*why).weak());
        }
    });
    if let Some(error) = &reports.error {
        error_text_ui(ui, error);
    }
    ui.add_space(8.0);

    let Some(table) = &reports.table else {
        return;
    };
    if table.rows.is_empty() {
        ui.label(RichText::new("No calls in this range.").weak());
        return;
    }
    ScrollArea::both()
        .id_salt("report_table")
        .auto_shrink([false, true])
        .show(ui, |ui| {
            Grid::new("report_table_grid")
                .num_columns(table.columns.len())
                .striped(true)
                .spacing([20.0, 6.0])
                .show(ui, |ui| {
                    for column in &table.columns {
                        ui.label(RichText::new(column).strong());
                    }
                    ui.end_row();
                    for row in &table.rows {
                        // The first column names the agent or queue; the rest are numbers.
                        for (index, cell) in row.iter().enumerate() {
                            let text = RichText::new(cell);
                            ui.label(if index == 0 { text } else { text.monospace() });
                        }
                        ui.end_row();
                    }
                });
        });
}

/// Both dates valid and in order, or a sentence saying what is missing.
fn date_range(
    from_text: &str,
    to_text: &str,
) -> Result<(CalendarDate, CalendarDate), &'static str> {
    let (Ok(from), Ok(to)) = (parse_date(from_text), parse_date(to_text)) else {
        return Err("Enter both dates as YYYY-MM-DD.");
    };
    if from > to {
        return Err("The start date is after the end date.");
    }
    Ok((from, to))
}
