//! The login screen: switchboard URL, user and password, a Log in button, and one line saying why
//! the last attempt failed. Enter in any field logs in too.

use egui::{Align, CornerRadius, Frame, Grid, Key, Layout, Margin, RichText, TextEdit, Ui};

use crate::intent::{Intent, Password};
use crate::model::LoginForm;
use crate::theme;
use crate::widgets::{CommandButton, error_text_ui};

/// Draw the login form in the middle of `ui`; editing changes `login` in place.
pub fn login_ui(ui: &mut Ui, login: &mut LoginForm, intents: &mut Vec<Intent>) {
    let form_width = 440.0_f32.min(ui.available_width() - 40.0).max(200.0);
    ui.add_space((ui.available_height() * 0.12).min(100.0));
    ui.vertical_centered(|ui| {
        ui.label(RichText::new("Sapa").size(34.0).strong());
        ui.label(RichText::new("Sign in to the switchboard").weak());
        ui.add_space(16.0);
        Frame::group(ui.style())
            .inner_margin(Margin::same(20))
            .corner_radius(CornerRadius::same(8))
            .show(ui, |ui| {
                ui.set_width(form_width);
                ui.with_layout(Layout::top_down(Align::Min), |ui| {
                    form_ui(ui, form_width, login, intents);
                });
            });
    });
}

fn form_ui(ui: &mut Ui, form_width: f32, login: &mut LoginForm, intents: &mut Vec<Intent>) {
    let field_width = form_width - 130.0;
    let mut enter_pressed = false;
    Grid::new("login_form")
        .num_columns(2)
        .spacing([12.0, 10.0])
        .show(ui, |ui| {
            let fields: [(&str, &mut String, &str, bool); 3] = [
                (
                    "Switchboard URL",
                    &mut login.url,
                    "wss://switchboard.example:8443",
                    false,
                ),
                ("User", &mut login.user, "", false),
                ("Password", &mut login.password, "", true),
            ];
            let mut first_empty_seen = false;
            for (label, value, hint, password) in fields {
                let label_response = ui.label(RichText::new(label).strong());
                let was_empty = value.is_empty();
                let response = ui
                    .add(
                        TextEdit::singleline(value)
                            .hint_text(hint)
                            .password(password)
                            .desired_width(field_width),
                    )
                    .labelled_by(label_response.id);
                // Start typing without reaching for the mouse: focus the first empty field.
                if was_empty && !first_empty_seen {
                    first_empty_seen = true;
                    if ui.memory(|memory| memory.focused().is_none()) {
                        response.request_focus();
                    }
                }
                if response.lost_focus() && ui.input(|input| input.key_pressed(Key::Enter)) {
                    enter_pressed = true;
                }
                ui.end_row();
            }
        });

    ui.add_space(8.0);
    let complete =
        !login.url.trim().is_empty() && !login.user.trim().is_empty() && !login.password.is_empty();
    let can_log_in = complete && !login.in_progress;
    ui.horizontal(|ui| {
        let clicked = ui
            .add_enabled(
                can_log_in,
                CommandButton::new("Log in").fill(theme::ON_CALL).large(),
            )
            .clicked();
        if (clicked || enter_pressed) && can_log_in {
            intents.push(Intent::LogIn {
                url: login.url.trim().to_owned(),
                user: login.user.trim().to_owned(),
                password: Password::new(login.password.clone()),
            });
        }
        if login.in_progress {
            ui.label(RichText::new("Connecting…").weak());
        }
    });
    match &login.error {
        Some(error) => {
            error_text_ui(ui, error.to_string());
        }
        None if !complete => {
            ui.label(RichText::new("Enter the switchboard URL, user and password.").weak());
        }
        None => {}
    }
}
