//! The dial pad: an agent with no call types or taps a customer number and dials it (a manual
//! outbound call to a number the switchboard can ring). Draws from the number being typed and
//! returns [`Intent::DialOut`]; the engine sends `dial_out` and shows the call as it connects.

use egui::{Grid, RichText, Ui};

use crate::intent::Intent;
use crate::widgets::CommandButton;

/// The keys, row by row, with `+` in place of `*` (numbers start with it; DTMF tones are
/// sent from the in-call keypad).
const KEYS: [[char; 3]; 4] = [
    ['1', '2', '3'],
    ['4', '5', '6'],
    ['7', '8', '9'],
    ['+', '0', DELETE],
];

/// The key that deletes the last digit (drawn as "Del": the bundled fonts have no ⌫).
const DELETE: char = '<';

/// Size of one key, and the gap between keys.
const KEY_SIZE: egui::Vec2 = egui::vec2(56.0, 34.0);
const KEY_GAP: f32 = 4.0;

/// Longest number the switchboard accepts.
const MAX_NUMBER_CHARS: usize = 64;

/// Draws the pad for `number` (edited in place by the keys and the text field); `Dial` or
/// Enter in the field pushes [`Intent::DialOut`] with the number trimmed.
pub fn dial_pad_ui(ui: &mut Ui, number: &mut String, intents: &mut Vec<Intent>) {
    ui.label(RichText::new("Dial a customer").strong());
    let label = ui.label("Number to dial");
    let field = ui
        .add(
            egui::TextEdit::singleline(number)
                .hint_text("+1 555 0100")
                .char_limit(MAX_NUMBER_CHARS)
                .desired_width(190.0),
        )
        .labelled_by(label.id);
    let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    // A grid always starts at the left edge of what it is given: give it exactly its own
    // width, which the screen's centred layout then places under the field.
    let pad_width = 3.0 * KEY_SIZE.x + 2.0 * KEY_GAP;
    ui.allocate_ui_with_layout(
        egui::vec2(pad_width, 0.0),
        egui::Layout::top_down(egui::Align::Min),
        |ui| keys_ui(ui, number),
    );
    let dialable = !number.trim().is_empty();
    let dial = ui.add_enabled(dialable, CommandButton::new("Dial").large());
    if dialable && (dial.clicked() || entered) {
        intents.push(Intent::DialOut(number.trim().to_owned()));
    }
}

/// The twelve keys, three to a row.
fn keys_ui(ui: &mut Ui, number: &mut String) {
    Grid::new("dial_pad")
        .spacing([KEY_GAP, KEY_GAP])
        .show(ui, |ui| {
            for row in KEYS {
                for key in row {
                    let (text, name) = match key {
                        DELETE => ("Del".to_owned(), "Delete last digit".to_owned()),
                        _ => (key.to_string(), format!("Dial pad {key}")),
                    };
                    let button = egui::Button::new(RichText::new(text).monospace().size(18.0))
                        .min_size(KEY_SIZE);
                    if ui.add(button).accessible_name(&name).clicked() {
                        match key {
                            DELETE => {
                                number.pop();
                            }
                            _ if number.chars().count() < MAX_NUMBER_CHARS => number.push(key),
                            _ => {}
                        }
                    }
                }
                ui.end_row();
            }
        });
}
