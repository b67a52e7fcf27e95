//! Notices: banners under the header for things the agent should know but need not act on now
//! ("Remembered microphone 'X' is gone; using default"). They never block the screen; each has a
//! Dismiss button.

use egui::{CornerRadius, Frame, Margin, RichText, Stroke, Ui};

use crate::intent::Intent;
use crate::model::{Notice, NoticeLevel};
use crate::theme;
use crate::widgets::CommandButton;

/// Draw the notices, oldest first.
pub fn notices_ui(ui: &mut Ui, notices: &[Notice], intents: &mut Vec<Intent>) {
    for notice in notices {
        let color = theme::notice_color(notice.level);
        Frame::new()
            .fill(color.gamma_multiply(0.15))
            .stroke(Stroke::new(1.0, color))
            .corner_radius(CornerRadius::same(6))
            .inner_margin(Margin::symmetric(10, 4))
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                // The button is placed first; the text wraps in what is left, so a long
                // message never runs under it.
                egui::Sides::new().shrink_left().wrap().show(
                    ui,
                    |ui| {
                        let level = match notice.level {
                            NoticeLevel::Info => "Note",
                            NoticeLevel::Warning => "Warning",
                            NoticeLevel::Error => "Problem",
                        };
                        ui.label(RichText::new(level).color(color).strong());
                        ui.label(&notice.text);
                    },
                    |ui| {
                        let dismiss = CommandButton::new("Dismiss")
                            .accessible_name(format!("Dismiss: {}", notice.text));
                        if ui.add(dismiss).clicked() {
                            intents.push(Intent::DismissNotice(notice.id));
                        }
                    },
                );
            });
    }
}
