//! Small pieces the screens share: state chips, command buttons that show and announce their
//! keyboard shortcut, level meters, the voice-quality badge and the past-call list.

use egui::{
    Button, Color32, CornerRadius, Frame, KeyboardShortcut, Margin, Response, RichText, Sense,
    Stroke, Ui, Widget, vec2,
};

use crate::model::{AgentState, PastCall, VoiceStats, newest_first};
use crate::theme;
use crate::time_text::duration_text;

/// A rounded, filled label: "Available 12:03", "Muted", "Voice: Good".
pub fn chip_ui(ui: &mut Ui, text: impl Into<String>, fill: Color32) -> Response {
    Frame::new()
        .fill(fill)
        .corner_radius(CornerRadius::same(10))
        .inner_margin(Margin::symmetric(10, 3))
        .show(ui, |ui| {
            ui.label(RichText::new(text).color(theme::text_on(fill)).strong())
        })
        .inner
}

/// The agent state as a coloured chip, with the time in state when given.
pub fn state_chip_ui(ui: &mut Ui, state: &AgentState, time_in_state: Option<&str>) -> Response {
    let text = match time_in_state {
        Some(time) => format!("{}  {time}", state.label()),
        None => state.label(),
    };
    chip_ui(ui, text, theme::state_color(state))
}

/// Large monospace text for timers, so digits do not jump as they change.
pub fn timer_text(text: impl Into<String>, size: f32) -> RichText {
    RichText::new(text).monospace().size(size).strong()
}

/// A button for a command with an optional keyboard shortcut.
///
/// The shortcut is shown on the button, in its tooltip and announced to screen readers; the
/// accessible name stays the plain label ("Answer") so it reads well and tests find it.
pub struct CommandButton<'a> {
    label: &'a str,
    shortcut: Option<KeyboardShortcut>,
    fill: Option<Color32>,
    large: bool,
    selected: Option<bool>,
    accessible_name: Option<String>,
}

impl<'a> CommandButton<'a> {
    pub fn new(label: &'a str) -> Self {
        Self {
            label,
            shortcut: None,
            fill: None,
            large: false,
            selected: None,
            accessible_name: None,
        }
    }

    pub fn shortcut(mut self, shortcut: KeyboardShortcut) -> Self {
        self.shortcut = Some(shortcut);
        self
    }

    /// A coloured button (green Answer, red Hang up).
    pub fn fill(mut self, fill: Color32) -> Self {
        self.fill = Some(fill);
        self
    }

    /// Bigger, for the main actions of a screen.
    pub fn large(mut self) -> Self {
        self.large = true;
        self
    }

    /// A toggle (Mute, Hold): shown pressed and announced as pressed when `selected`.
    pub fn toggled(mut self, selected: bool) -> Self {
        self.selected = Some(selected);
        self
    }

    /// A name for screen readers and tests when the visible label alone is ambiguous
    /// ("Listen to Maria" for a "Listen" button in a table row).
    pub fn accessible_name(mut self, name: impl Into<String>) -> Self {
        self.accessible_name = Some(name.into());
        self
    }
}

impl Widget for CommandButton<'_> {
    fn ui(self, ui: &mut Ui) -> Response {
        let enabled = ui.is_enabled();
        let mut text = RichText::new(self.label);
        if self.large {
            text = text.size(20.0).strong();
        }
        let text_color = self.fill.filter(|_| enabled).map(theme::text_on);
        if let Some(color) = text_color {
            text = text.color(color);
        }
        let shortcut_text = self
            .shortcut
            .map(|shortcut| ui.ctx().format_shortcut(&shortcut));
        let mut button = Button::new(text);
        if let Some(shortcut_text) = &shortcut_text {
            let mut hint = RichText::new(shortcut_text).monospace();
            if let Some(color) = text_color {
                hint = hint.color(color.gamma_multiply(0.8));
            } else {
                hint = hint.weak();
            }
            button = button.right_text(hint);
        }
        if let Some(fill) = self.fill.filter(|_| enabled) {
            button = button.fill(fill);
        }
        if let Some(selected) = self.selected {
            button = button.selected(selected);
        }
        if self.large {
            button = button.min_size(vec2(150.0, 46.0));
        }
        let name = self
            .accessible_name
            .unwrap_or_else(|| self.label.to_owned());
        let mut response = ui.add(button).accessible_name(name);
        if let Some(shortcut_text) = shortcut_text {
            ui.ctx().accesskit_node_builder(response.id, |node| {
                node.set_keyboard_shortcut(shortcut_text.clone());
            });
            response = response.on_hover_text(format!("Shortcut: {shortcut_text}"));
        }
        response
    }
}

/// A horizontal level meter on a -60 to 0 dBFS scale: green, amber above -12, red above -3.
pub fn level_meter_ui(ui: &mut Ui, label: &str, level_dbfs: f32) {
    ui.horizontal(|ui| {
        // A fixed-width label column, so the bars of several meters line up.
        ui.allocate_ui_with_layout(
            vec2(70.0, 18.0),
            egui::Layout::left_to_right(egui::Align::Center),
            |ui| ui.label(label),
        );
        let (rect, _) = ui.allocate_exact_size(vec2(180.0, 12.0), Sense::hover());
        let painter = ui.painter_at(rect);
        let fraction = ((level_dbfs + 60.0) / 60.0).clamp(0.0, 1.0);
        let color = if level_dbfs > -3.0 {
            theme::DANGER
        } else if level_dbfs > -12.0 {
            theme::CAUTION
        } else {
            theme::GOOD
        };
        painter.rect_filled(rect, 3.0, ui.visuals().extreme_bg_color);
        let mut filled = rect;
        filled.set_width(rect.width() * fraction);
        painter.rect_filled(filled, 3.0, color);
        painter.rect_stroke(
            rect,
            3.0,
            Stroke::new(1.0, ui.visuals().widgets.noninteractive.bg_stroke.color),
            egui::StrokeKind::Inside,
        );
        let level_text = if level_dbfs <= -60.0 {
            "silent".to_owned()
        } else {
            format!("{level_dbfs:.0} dB")
        };
        ui.label(RichText::new(level_text).monospace().small());
    });
}

/// Good / Fair / Poor with the numbers it comes from.
pub fn voice_quality_ui(ui: &mut Ui, voice: &VoiceStats) {
    let quality = voice.quality();
    ui.horizontal_wrapped(|ui| {
        chip_ui(
            ui,
            format!("Voice: {}", quality.label()),
            theme::quality_color(quality),
        );
        ui.label(
            RichText::new(format!(
                "loss {:.1} %  ·  jitter {:.0} ms  ·  concealed {:.1} %",
                voice.loss_pct, voice.jitter_ms, voice.concealment_pct
            ))
            .monospace()
            .small(),
        );
    });
}

/// A customer satisfaction score out of 5: "4/5".
pub fn csat_text(csat: u8) -> String {
    format!("{}/5", csat.min(5))
}

/// Past calls, newest first, one card each: when, who handled it, outcome, CSAT, then the notes.
/// `show_caller` adds the caller's number (for lists that mix callers).
pub fn past_calls_ui(ui: &mut Ui, calls: &[PastCall], show_caller: bool, empty_text: &str) {
    if calls.is_empty() {
        ui.label(RichText::new(empty_text).weak());
        return;
    }
    for call in newest_first(calls) {
        Frame::group(ui.style())
            .corner_radius(CornerRadius::same(6))
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.horizontal_wrapped(|ui| {
                    ui.label(RichText::new(&call.started_text).monospace().strong());
                    if show_caller {
                        let caller = match &call.caller_name {
                            Some(name) => format!("{name} ({})", call.caller_number),
                            None => call.caller_number.clone(),
                        };
                        ui.label(RichText::new(caller).strong());
                    }
                    if !call.agent_name.is_empty() {
                        ui.label(format!("Agent: {}", call.agent_name));
                    }
                    if !call.queue.is_empty() {
                        ui.label(RichText::new(&call.queue).weak());
                    }
                    ui.label(
                        RichText::new(duration_text(call.talk_ms))
                            .monospace()
                            .weak(),
                    );
                });
                ui.horizontal_wrapped(|ui| {
                    match &call.disposition_code {
                        Some(code) => ui.label(RichText::new(code).strong()),
                        None => ui.label(RichText::new("No disposition").weak()),
                    };
                    if let Some(resolution) = call.resolution {
                        ui.label(resolution.label());
                    }
                    match call.csat {
                        Some(csat) => ui.label(format!("CSAT {}", csat_text(csat))),
                        None => ui.label(RichText::new("No CSAT").weak()),
                    };
                });
                if call.notes.trim().is_empty() {
                    ui.label(RichText::new("No notes").weak().italics());
                } else {
                    ui.label(&call.notes);
                }
            });
    }
}

/// An error sentence under a field, in red.
pub fn error_text_ui(ui: &mut Ui, text: impl Into<String>) -> Response {
    ui.label(RichText::new(text).color(theme::DANGER))
}
