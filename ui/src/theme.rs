//! Colours and text sizes, chosen for people who look at this screen all day: one clear colour
//! per agent state, green/amber/red for quality, and text a little larger than egui's default.
//!
//! The state colours are saturated enough to read on both dark and light backgrounds; text on a
//! coloured fill uses [`text_on`] so it keeps its contrast.

use egui::{Color32, FontId, TextStyle};

use crate::model::{AgentState, NoticeLevel, VoiceQuality};

pub const AVAILABLE: Color32 = Color32::from_rgb(0x2e, 0x9d, 0x4f);
pub const NOT_READY: Color32 = Color32::from_rgb(0xe0, 0x9a, 0x10);
pub const RINGING: Color32 = Color32::from_rgb(0x12, 0xa4, 0xb8);
pub const ON_CALL: Color32 = Color32::from_rgb(0x2f, 0x6f, 0xd6);
pub const WRAP_UP: Color32 = Color32::from_rgb(0x8a, 0x4f, 0xd1);
pub const UNKNOWN: Color32 = Color32::from_rgb(0x80, 0x80, 0x80);

/// Hang up, decline, errors.
pub const DANGER: Color32 = Color32::from_rgb(0xc8, 0x2c, 0x2c);
/// Muted, on hold, warnings.
pub const CAUTION: Color32 = NOT_READY;
pub const GOOD: Color32 = AVAILABLE;

/// The colour of an agent state: available green, not ready amber, ringing teal, on call blue,
/// wrap-up purple.
pub fn state_color(state: &AgentState) -> Color32 {
    match state {
        AgentState::Available => AVAILABLE,
        AgentState::NotReady { .. } => NOT_READY,
        AgentState::Ringing => RINGING,
        AgentState::OnCall => ON_CALL,
        AgentState::WrapUp => WRAP_UP,
        AgentState::Unknown => UNKNOWN,
    }
}

pub fn quality_color(quality: VoiceQuality) -> Color32 {
    match quality {
        VoiceQuality::Good => GOOD,
        VoiceQuality::Fair => CAUTION,
        VoiceQuality::Poor => DANGER,
    }
}

pub fn notice_color(level: NoticeLevel) -> Color32 {
    match level {
        NoticeLevel::Info => ON_CALL,
        NoticeLevel::Warning => CAUTION,
        NoticeLevel::Error => DANGER,
    }
}

/// Black or white, whichever reads better on `fill`.
pub fn text_on(fill: Color32) -> Color32 {
    let [r, g, b, _] = fill.to_array();
    // Perceived brightness (ITU-R BT.601 weights), 0 to 255.
    let brightness = (299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b)) / 1000;
    if brightness > 150 {
        Color32::BLACK
    } else {
        Color32::WHITE
    }
}

/// Larger text and roomier spacing for all-day reading; call once after creating the context.
pub fn install(ctx: &egui::Context) {
    ctx.all_styles_mut(|style| {
        let sizes = [
            (TextStyle::Small, FontId::proportional(13.0)),
            (TextStyle::Body, FontId::proportional(16.0)),
            (TextStyle::Button, FontId::proportional(16.0)),
            (TextStyle::Heading, FontId::proportional(22.0)),
            (TextStyle::Monospace, FontId::monospace(15.0)),
        ];
        for (text_style, font) in sizes {
            style.text_styles.insert(text_style, font);
        }
        style.spacing.item_spacing = egui::vec2(10.0, 8.0);
        style.spacing.button_padding = egui::vec2(10.0, 5.0);
        style.spacing.interact_size.y = 28.0;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_on_fill_keeps_contrast() {
        assert_eq!(text_on(NOT_READY), Color32::BLACK);
        assert_eq!(text_on(ON_CALL), Color32::WHITE);
        assert_eq!(text_on(WRAP_UP), Color32::WHITE);
    }
}
