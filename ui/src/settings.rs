//! The Settings tab: which microphone, speaker and ringer to use (a remembered device that is
//! unplugged stays visible as "not connected" instead of silently vanishing), a test tone and a
//! microphone test, noise suppression and automatic gain, the desktop popup on an incoming call,
//! and the keyboard shortcuts.

use egui::{ComboBox, Grid, RichText, Ui};

use crate::intent::Intent;
use crate::model::{DeviceRole, SettingsView, Shortcuts};
use crate::theme;
use crate::widgets::{CommandButton, level_meter_ui};

/// The label of the "no particular device" choice.
const SYSTEM_DEFAULT: &str = "System default";

/// Draw the Settings tab. Nothing is changed in place: every choice is an intent, and the engine
/// shows the outcome in the next frame.
pub fn settings_ui(
    ui: &mut Ui,
    settings: &SettingsView,
    shortcuts: &Shortcuts,
    intents: &mut Vec<Intent>,
) {
    ui.label(RichText::new("Audio devices").size(18.0).strong());
    Grid::new("audio_devices")
        .num_columns(2)
        .spacing([14.0, 10.0])
        .show(ui, |ui| {
            for role in [
                DeviceRole::Microphone,
                DeviceRole::Speaker,
                DeviceRole::Ringer,
            ] {
                let label = ui.label(RichText::new(role.label()).strong());
                device_selector_ui(ui, settings, role, label.id, intents);
                ui.end_row();
            }
        });
    ui.label(
        RichText::new(
            "The ringer can be a different device, so you hear calls without the headset.",
        )
        .weak()
        .small(),
    );
    ui.add_space(8.0);

    ui.horizontal(|ui| {
        let tone = CommandButton::new("Play test tone").toggled(settings.test_tone_playing);
        if ui.add(tone).on_hover_text("Plays on the speaker").clicked() {
            intents.push(Intent::PlayTestTone);
        }
        let testing = settings.mic_test_level_dbfs.is_some();
        let mic = CommandButton::new("Test microphone").toggled(testing);
        if ui
            .add(mic)
            .on_hover_text("Shows your microphone level")
            .clicked()
        {
            intents.push(Intent::TestMicrophone);
        }
    });
    if let Some(level_dbfs) = settings.mic_test_level_dbfs {
        level_meter_ui(ui, "Mic", level_dbfs);
    }
    ui.add_space(8.0);

    ui.label(RichText::new("Voice processing").size(18.0).strong());
    let mut noise_suppression = settings.noise_suppression;
    if ui
        .checkbox(&mut noise_suppression, "Noise suppression")
        .on_hover_text("Removes steady background noise from your microphone")
        .changed()
    {
        intents.push(Intent::SetNoiseSuppression(noise_suppression));
    }
    let mut auto_gain = settings.auto_gain;
    if ui
        .checkbox(&mut auto_gain, "Automatic gain")
        .on_hover_text("Keeps your voice at an even level")
        .changed()
    {
        intents.push(Intent::SetAutoGain(auto_gain));
    }
    ui.add_space(8.0);

    ui.label(RichText::new("Incoming calls").size(18.0).strong());
    let mut desktop_notifications = settings.desktop_notifications;
    if ui
        .checkbox(&mut desktop_notifications, "Desktop notifications")
        .on_hover_text(
            "A popup with the caller's name while the call rings, also over other windows",
        )
        .changed()
    {
        intents.push(Intent::SetDesktopNotifications(desktop_notifications));
    }
    ui.add_space(8.0);

    ui.label(RichText::new("Keyboard shortcuts").size(18.0).strong());
    Grid::new("shortcut_list")
        .num_columns(2)
        .striped(true)
        .spacing([24.0, 6.0])
        .show(ui, |ui| {
            for (action, shortcut) in shortcuts.described() {
                ui.label(RichText::new(ui.ctx().format_shortcut(&shortcut)).monospace());
                ui.label(action);
                ui.end_row();
            }
        });
}

fn device_selector_ui(
    ui: &mut Ui,
    settings: &SettingsView,
    role: DeviceRole,
    label_id: egui::Id,
    intents: &mut Vec<Intent>,
) {
    let chosen = settings.chosen(role);
    let devices = settings.devices(role);
    let missing = chosen.filter(|name| !devices.iter().any(|device| device == name));
    let selected_text = match (chosen, missing) {
        (None, _) => RichText::new(SYSTEM_DEFAULT),
        (Some(name), Some(_)) => {
            RichText::new(format!("{name} (not connected)")).color(theme::CAUTION)
        }
        (Some(name), None) => RichText::new(name),
    };
    ComboBox::from_id_salt(("device", role))
        .selected_text(selected_text)
        .width(320.0)
        .show_ui(ui, |ui| {
            if ui
                .selectable_label(chosen.is_none(), SYSTEM_DEFAULT)
                .clicked()
                && chosen.is_some()
            {
                intents.push(Intent::SelectDevice { role, name: None });
            }
            if let Some(name) = missing {
                // Shown so the agent sees what was remembered; choosing it again does nothing.
                let _ = ui.selectable_label(true, format!("{name} (not connected)"));
            }
            for device in devices {
                let is_chosen = chosen == Some(device.as_str());
                if ui.selectable_label(is_chosen, device).clicked() && !is_chosen {
                    intents.push(Intent::SelectDevice {
                        role,
                        name: Some(device.clone()),
                    });
                }
            }
        })
        .response
        .labelled_by(label_id);
}
