//! Sapa's desktop views: egui screens that draw a [`PhoneView`] and return the [`Intent`]s of the
//! person at the desk.
//!
//! This crate has no sockets, audio, storage, threads or clock. The engine (in the `sapa` crate)
//! runs the loop, in the spirit of the egui demo app: update state, draw, then act.
//!
//! ```ignore
//! // every frame, in the window's WindowApp::ui (src/phone/app.rs)
//! engine.fill_view(&mut view);                 // now_ms, agent, call, stats...
//! let intents = sapa_ui::phone_ui(ui, &mut view);
//! for intent in intents { engine.execute(intent); }   // DraftChanged -> store the draft
//! ```
//!
//! [`phone_ui`] draws everything: the header (agent, state, connection, queues), notices, the
//! tab bar, and the screen for the call state or tab. Each screen also has its own `*_ui`
//! function, usable alone. Keyboard shortcuts ([`model::Shortcuts`]: F6 Available / Not ready,
//! F7 hold, F8 mute, F9 answer, F10 hang up, Ctrl+Enter submit) work anywhere in the window,
//! also while typing. Every control has an accessible name, so screen readers and
//! `egui_kittest` find it by its label.

pub mod call;
pub mod dial_pad;
pub mod header;
pub mod history;
pub mod intent;
pub mod login;
pub mod model;
pub mod notices;
pub mod reports;
pub mod settings;
pub mod theme;
pub mod time_text;
pub mod wallboard;
pub mod widgets;
pub mod wrapup;

use std::time::Duration;

use egui::{CentralPanel, Event, KeyboardShortcut, Panel, Ui};

pub use crate::intent::{Intent, Password};
pub use crate::model::*;
pub use crate::time_text::{CalendarDate, LocalDateTime};

/// How often to redraw while a timer is on screen, so seconds tick without the engine asking.
const TIMER_REPAINT: Duration = Duration::from_millis(250);
/// In a call the window redraws on the call timer's half seconds: the timer turns exactly on
/// time and the level meters (five new levels a second from the engine) move twice a second.
/// Each repaint costs, on a desktop without a GPU driver, a software-rendered window.
const IN_CALL_REPAINT_MS: u64 = 500;

/// Draw the whole app for one frame and return what the person asked for.
///
/// Edits in place only what a person types or picks (login fields, the disposition draft, search
/// text, report dates, the tab). A change to the draft is also returned as
/// [`Intent::DraftChanged`], and [`PhoneView::draft_status`] is set to `Saving` until the engine
/// says otherwise.
pub fn phone_ui(ui: &mut Ui, view: &mut PhoneView) -> Vec<Intent> {
    let mut intents = Vec::new();
    if view.agent.is_none() {
        CentralPanel::default().show(ui, |ui| {
            login::login_ui(ui, &mut view.login, &mut intents);
        });
        return intents;
    }
    if !view.available_tabs().contains(&view.tab) {
        view.tab = Tab::Call;
    }
    let draft_before = view.draft.clone();

    // Shortcuts first, so a text field with focus does not also get the key.
    shortcut_intents(ui.ctx(), view, &mut intents);

    Panel::top("sapa_header").show(ui, |ui| {
        ui.add_space(4.0);
        header::header_ui(ui, view, &mut intents);
        notices::notices_ui(ui, &view.notices, &mut intents);
        ui.add_space(2.0);
        header::tab_bar_ui(ui, view, &mut intents);
    });
    CentralPanel::default().show(ui, |ui| {
        body_ui(ui, view, &mut intents);
    });

    if intents.contains(&Intent::Answer) {
        // The call screen comes forward when the agent answers, whatever tab was open.
        view.tab = Tab::Call;
    }
    if view.draft != draft_before {
        view.draft_status = DraftStatus::Saving;
        intents.push(Intent::DraftChanged(view.draft.clone()));
    }
    let repaint_after = match &view.call {
        CallView::Idle => None,
        CallView::InCall(call) => Some(in_call_repaint_after(view.now_ms, call.answered_at_ms)),
        CallView::Ringing(_) | CallView::WrapUp(_) => Some(TIMER_REPAINT),
    };
    let repaint_after = if view.is_supervisor() {
        // The wallboard's clocks.
        Some(repaint_after.map_or(TIMER_REPAINT, |after| after.min(TIMER_REPAINT)))
    } else {
        repaint_after
    };
    if let Some(after) = repaint_after {
        ui.ctx().request_repaint_after(after);
    }
    intents
}

/// How long until just after the call timer's next half second (see [`IN_CALL_REPAINT_MS`]).
fn in_call_repaint_after(now_ms: u64, answered_at_ms: u64) -> Duration {
    let into = now_ms.saturating_sub(answered_at_ms) % IN_CALL_REPAINT_MS;
    // A few milliseconds late, so the second has surely turned when the frame reads the clock.
    Duration::from_millis(IN_CALL_REPAINT_MS - into + 5)
}

/// The central area: a ringing call pops over every tab; otherwise the selected tab.
fn body_ui(ui: &mut Ui, view: &mut PhoneView, intents: &mut Vec<Intent>) {
    let now_ms = view.now_ms;
    if let CallView::Ringing(ringing) = &view.call {
        call::ringing_ui(ui, now_ms, ringing, &view.shortcuts, intents);
        return;
    }
    match view.tab {
        Tab::Call => match &view.call {
            CallView::Idle => idle_ui(ui, view, intents),
            // Drawn above.
            CallView::Ringing(_) => {}
            CallView::InCall(call) => call::in_call_ui(
                ui,
                now_ms,
                call,
                call::DraftEditor {
                    draft: &mut view.draft,
                    status: &view.draft_status,
                },
                &view.directory,
                &view.shortcuts,
                intents,
            ),
            CallView::WrapUp(wrap_up) => wrapup::wrap_up_ui(
                ui,
                now_ms,
                wrap_up,
                call::DraftEditor {
                    draft: &mut view.draft,
                    status: &view.draft_status,
                },
                &view.disposition_codes,
                &view.shortcuts,
                intents,
            ),
        },
        Tab::History => history::history_ui(ui, now_ms, &mut view.history, intents),
        Tab::Settings => settings::settings_ui(ui, &view.settings, &view.shortcuts, intents),
        Tab::Wallboard => match &view.wallboard {
            Some(wallboard) => wallboard::wallboard_ui(ui, now_ms, wallboard, intents),
            None => {
                ui.label("Waiting for statistics from the switchboard…");
            }
        },
        Tab::Reports => reports::reports_ui(ui, &mut view.reports, intents),
    }
}

/// The call tab with no call: what the agent is waiting for.
fn idle_ui(ui: &mut Ui, view: &mut PhoneView, intents: &mut Vec<Intent>) {
    let Some(state) = view.agent.as_ref().map(|a| a.state.clone()) else {
        return;
    };
    ui.add_space(40.0);
    ui.vertical_centered(|ui| {
        let (headline, hint) = match &state {
            AgentState::Available => ("Waiting for a call", "Calls ring here. Answer with F9."),
            AgentState::NotReady { .. } => (
                "Not ready",
                "No calls are offered to you. Choose Available when you are ready.",
            ),
            _ => ("No call", ""),
        };
        ui.label(
            egui::RichText::new(headline)
                .size(26.0)
                .color(theme::state_color(&state)),
        );
        ui.label(egui::RichText::new(hint).weak());
        // Calling a customer: from available or not ready, never while offered a call.
        if matches!(state, AgentState::Available | AgentState::NotReady { .. }) {
            ui.add_space(24.0);
            dial_pad::dial_pad_ui(ui, &mut view.dial_number, intents);
        }
    });
}

/// Turn this frame's shortcut key presses into intents, for the state the agent sees.
fn shortcut_intents(ctx: &egui::Context, view: &PhoneView, intents: &mut Vec<Intent>) {
    let Some(agent) = &view.agent else {
        return;
    };
    let shortcuts = &view.shortcuts;
    let pressed = |shortcut: &KeyboardShortcut| take_key_press(ctx, shortcut);

    // The shortcut with modifiers first, so a plain-key shortcut cannot shadow it.
    if let CallView::WrapUp(_) = view.call
        && pressed(&shortcuts.submit_disposition)
        && let Ok(disposition) = view.draft.validate(&view.disposition_codes)
    {
        intents.push(Intent::SubmitDisposition(disposition));
    }
    if pressed(&shortcuts.toggle_ready) {
        let first_reason = agent.not_ready_reasons.first().cloned().unwrap_or_default();
        intents.push(match &agent.state {
            AgentState::Available => Intent::SetNotReady {
                reason: first_reason,
            },
            AgentState::NotReady { .. } | AgentState::Unknown => Intent::SetAvailable,
            _ if agent.pending_not_ready.is_some() => Intent::CancelPendingNotReady,
            _ => Intent::SetNotReady {
                reason: first_reason,
            },
        });
    }
    match &view.call {
        CallView::Ringing(_) => {
            if pressed(&shortcuts.answer) {
                intents.push(Intent::Answer);
            }
        }
        CallView::InCall(call) => {
            if pressed(&shortcuts.hang_up) {
                intents.push(Intent::HangUp);
            }
            if pressed(&shortcuts.mute) {
                intents.push(Intent::SetMuted(!call.muted));
            }
            if pressed(&shortcuts.hold) {
                intents.push(Intent::SetHold(call.held_since_ms.is_none()));
            }
        }
        CallView::Idle | CallView::WrapUp(_) => {}
    }
}

/// Consume every press of `shortcut` this frame; true if one was a fresh press. Key repeats are
/// swallowed, so holding F8 does not flip mute on and off.
fn take_key_press(ctx: &egui::Context, shortcut: &KeyboardShortcut) -> bool {
    ctx.input_mut(|input| {
        let mut fresh_press = false;
        input.events.retain(|event| match event {
            Event::Key {
                key,
                pressed: true,
                repeat,
                modifiers,
                ..
            } if *key == shortcut.logical_key
                && modifiers.matches_logically(shortcut.modifiers) =>
            {
                fresh_press |= !repeat;
                false
            }
            _ => true,
        });
        fresh_press
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_repaints_just_after_each_half_second_of_its_timer() {
        let answered = 1_000_000;
        assert_eq!(
            in_call_repaint_after(answered + 1_200, answered),
            Duration::from_millis(305)
        );
        assert_eq!(
            in_call_repaint_after(answered + 1_500, answered),
            Duration::from_millis(505)
        );
        assert_eq!(
            in_call_repaint_after(answered + 1_999, answered),
            Duration::from_millis(6)
        );
        // A clock that reads before the answer (another machine's time): no panic, a full wait.
        assert_eq!(
            in_call_repaint_after(answered - 10, answered),
            Duration::from_millis(505)
        );
    }
}
