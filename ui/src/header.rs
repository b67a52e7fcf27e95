//! The header, always on screen once logged in: who is signed in, their state and time in it, a
//! state selector, the call in progress, connection health, the queues at a glance and a
//! "Monitored" badge. Below it the tab bar.

use egui::{ComboBox, RichText, Ui};

use crate::intent::Intent;
use crate::model::{AgentHeader, AgentState, CallView, ConnectionHealth, PhoneView, Tab};
use crate::theme;
use crate::time_text::{elapsed_text, seconds_left};
use crate::widgets::{CommandButton, chip_ui, state_chip_ui, timer_text};

/// Waiting this long or more turns the queue summary amber.
const LONG_WAIT_MS: u64 = 60_000;
/// Waiting this long or more turns it red.
const VERY_LONG_WAIT_MS: u64 = 180_000;

/// Draw the header for a logged-in agent (nothing when logged out).
pub fn header_ui(ui: &mut Ui, view: &mut PhoneView, intents: &mut Vec<Intent>) {
    let Some(agent) = &view.agent else {
        return;
    };
    let now_ms = view.now_ms;
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(&agent.name).size(19.0).strong());
        if view.is_supervisor() {
            ui.label(RichText::new("Supervisor").weak());
        }
        let time_in_state = elapsed_text(now_ms, agent.state_since_ms);
        state_chip_ui(ui, &agent.state, Some(&time_in_state));
        state_selector_ui(ui, agent, view.shortcuts.toggle_ready, intents);
        if let Some(reason) = &agent.pending_not_ready {
            ui.label(
                RichText::new(format!("Not ready ({reason}) after this call"))
                    .color(theme::NOT_READY),
            );
        }
        if agent.monitored {
            chip_ui(ui, "Monitored", theme::WRAP_UP)
                .on_hover_text("A supervisor is listening to your call.");
        }
        ui.separator();
        queue_summary_ui(ui, agent);
        ui.separator();
        connection_ui(ui, now_ms, &agent.connection);
        ui.separator();
        if ui.add(CommandButton::new("Log out")).clicked() {
            intents.push(Intent::LogOut);
        }
    });
    if call_status_ui(ui, view) {
        view.tab = Tab::Call;
        intents.push(Intent::SelectTab(Tab::Call));
    }
}

/// Available, or Not ready with one of the configured reasons. During a call the choice is
/// applied after wrap-up, so agents can plan a break without ending up stuck in a wrong state.
fn state_selector_ui(
    ui: &mut Ui,
    agent: &AgentHeader,
    toggle_shortcut: egui::KeyboardShortcut,
    intents: &mut Vec<Intent>,
) {
    let idle = agent.state.is_idle();
    let selected_text = if idle {
        "Change state"
    } else {
        "After this call"
    };
    let shortcut_text = ui.ctx().format_shortcut(&toggle_shortcut);
    let response = ComboBox::from_id_salt("agent_state_selector")
        .selected_text(selected_text)
        .show_ui(ui, |ui| {
            let available = if idle {
                agent.state == AgentState::Available
            } else {
                agent.pending_not_ready.is_none()
            };
            if ui.selectable_label(available, "Available").clicked() && !available {
                intents.push(if idle {
                    Intent::SetAvailable
                } else {
                    Intent::CancelPendingNotReady
                });
            }
            for reason in &agent.not_ready_reasons {
                let current = if idle {
                    matches!(&agent.state, AgentState::NotReady { reason: r } if r == reason)
                } else {
                    agent.pending_not_ready.as_ref() == Some(reason)
                };
                let item = format!("Not ready: {reason}");
                if ui.selectable_label(current, item).clicked() && !current {
                    intents.push(Intent::SetNotReady {
                        reason: reason.clone(),
                    });
                }
            }
        })
        .response;
    response
        .accessible_name("Agent state")
        .on_hover_text(format!(
            "Choose Available or a Not ready reason ({shortcut_text} toggles)"
        ));
}

fn queue_summary_ui(ui: &mut Ui, agent: &AgentHeader) {
    let summary = agent.queues;
    let color = if summary.calls_waiting == 0 {
        ui.visuals().weak_text_color()
    } else if summary.longest_wait_ms >= VERY_LONG_WAIT_MS {
        theme::DANGER
    } else if summary.longest_wait_ms >= LONG_WAIT_MS {
        theme::CAUTION
    } else {
        ui.visuals().text_color()
    };
    let text = if summary.calls_waiting == 0 {
        "No calls waiting".to_owned()
    } else {
        format!(
            "{} waiting · longest {}",
            summary.calls_waiting,
            crate::time_text::duration_text(summary.longest_wait_ms)
        )
    };
    ui.label(RichText::new(text).color(color).strong())
        .on_hover_text("Calls waiting in your queues");
}

fn connection_ui(ui: &mut Ui, now_ms: u64, connection: &ConnectionHealth) {
    match connection {
        ConnectionHealth::Connected { round_trip_ms } => {
            status_dot_ui(ui, theme::GOOD);
            ui.label(format!("Connected {round_trip_ms} ms"))
                .on_hover_text("Signalling round trip to the switchboard");
        }
        ConnectionHealth::Reconnecting { attempt, since_ms } => {
            status_dot_ui(ui, theme::DANGER);
            ui.label(
                RichText::new(format!(
                    "Reconnecting (attempt {attempt}, {})",
                    elapsed_text(now_ms, *since_ms)
                ))
                .color(theme::DANGER)
                .strong(),
            );
        }
    }
}

/// A small filled circle, the connection light.
fn status_dot_ui(ui: &mut Ui, color: egui::Color32) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), 5.0, color);
}

/// One line about the call in progress, so it stays in view on every tab; true when the agent
/// asked to see the call tab.
fn call_status_ui(ui: &mut Ui, view: &PhoneView) -> bool {
    let now_ms = view.now_ms;
    let (text, timer, color) = match &view.call {
        CallView::Idle => return false,
        CallView::Ringing(ringing) => (
            format!("Incoming call: {}", ringing.caller.display_name()),
            format!("{} s", seconds_left(now_ms, ringing.ring_deadline_ms)),
            theme::RINGING,
        ),
        CallView::InCall(call) => (
            format!(
                "On call with {}{}{}",
                call.caller.display_name(),
                if call.held_since_ms.is_some() {
                    " · on hold"
                } else {
                    ""
                },
                if call.muted { " · muted" } else { "" },
            ),
            elapsed_text(now_ms, call.answered_at_ms),
            theme::ON_CALL,
        ),
        CallView::WrapUp(wrap_up) => (
            format!("Wrap-up: {}", wrap_up.caller.display_name()),
            match wrap_up.acw_deadline_ms {
                Some(deadline_ms) => format!("{} s left", seconds_left(now_ms, deadline_ms)),
                None => String::new(),
            },
            theme::WRAP_UP,
        ),
    };
    ui.horizontal(|ui| {
        ui.label(RichText::new(text).color(color).strong());
        ui.label(timer_text(timer, 16.0).color(color));
        view.tab != Tab::Call && ui.add(CommandButton::new("Show call")).clicked()
    })
    .inner
}

/// The tab bar; switching changes `tab` at once and reports it.
pub fn tab_bar_ui(ui: &mut Ui, view: &mut PhoneView, intents: &mut Vec<Intent>) {
    ui.horizontal(|ui| {
        for tab in view.available_tabs() {
            let selected = view.tab == tab;
            let text = RichText::new(tab.label()).size(17.0);
            let text = if selected { text.strong() } else { text };
            if ui.selectable_label(selected, text).clicked() && !selected {
                view.tab = tab;
                intents.push(Intent::SelectTab(tab));
            }
        }
    });
}
