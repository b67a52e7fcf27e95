//! The supervisor's wallboard: one row per queue (waiting, longest wait, service level, ASA, AHT,
//! abandon rate, handled today), one row per agent (state, time in state, caller, call duration,
//! voice quality of both legs: a word, then loss and jitter) with Listen / Whisper / Barge / Stop
//! for agents on a call, and two charts of today: calls offered, answered and abandoned per 15
//! minutes, and service level.

use egui::{Grid, RichText, ScrollArea, Ui};
use egui_plot::{
    Bar, BarChart, GridMark, HLine, HoverPosition, Legend, Line, Plot, PlotPoints, Points,
};

use crate::intent::Intent;
use crate::model::{AgentCall, AgentRow, MonitorMode, QueueStats, VoiceStats, WallboardView};
use crate::theme;
use crate::time_text::{duration_text, elapsed_text};
use crate::widgets::{CommandButton, chip_ui, state_chip_ui};

/// A queue whose oldest caller waited this long or more shows the wait in red.
const LONG_WAIT_MS: u64 = 120_000;
/// Height of each chart.
const CHART_HEIGHT: f32 = 200.0;
/// Width of one interval on the charts' x axis, in hours.
const INTERVAL_H: f64 = 0.25;

/// Draw the wallboard; monitoring buttons push intents.
pub fn wallboard_ui(
    ui: &mut Ui,
    now_ms: u64,
    wallboard: &WallboardView,
    intents: &mut Vec<Intent>,
) {
    ScrollArea::vertical()
        .id_salt("wallboard")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            ui.label(RichText::new("Queues").size(18.0).strong());
            queues_table_ui(ui, wallboard);
            ui.add_space(12.0);
            ui.label(RichText::new("Agents").size(18.0).strong());
            monitoring_line_ui(ui, wallboard, intents);
            agents_table_ui(ui, now_ms, wallboard, intents);
            ui.add_space(12.0);
            ui.columns(2, |columns| {
                let [calls, service] = columns else {
                    unreachable!("ui.columns(2) gives two columns");
                };
                calls_chart_ui(calls, wallboard);
                service_level_chart_ui(service, wallboard);
            });
        });
}

fn optional_duration(duration_ms: Option<u64>) -> String {
    duration_ms.map_or_else(|| "—".to_owned(), duration_text)
}

fn optional_pct(pct: Option<f32>) -> String {
    pct.map_or_else(|| "—".to_owned(), |pct| format!("{pct:.0} %"))
}

fn queues_table_ui(ui: &mut Ui, wallboard: &WallboardView) {
    if wallboard.queues.is_empty() {
        ui.label(RichText::new("No queues.").weak());
        return;
    }
    let target_pct = wallboard.service_level_target_pct;
    Grid::new("wallboard_queues")
        .num_columns(8)
        .striped(true)
        .spacing([20.0, 6.0])
        .show(ui, |ui| {
            for heading in [
                "Queue",
                "Waiting",
                "Longest wait",
                "Service level",
                "ASA",
                "AHT",
                "Abandoned",
                "Handled",
            ] {
                ui.label(RichText::new(heading).strong());
            }
            ui.end_row();
            for queue in &wallboard.queues {
                queue_row_ui(ui, queue, target_pct);
                ui.end_row();
            }
        });
}

fn queue_row_ui(ui: &mut Ui, queue: &QueueStats, target_pct: f32) {
    ui.label(RichText::new(&queue.name).strong());
    ui.label(RichText::new(queue.waiting.to_string()).monospace());
    let wait = RichText::new(duration_text(queue.longest_wait_ms)).monospace();
    ui.label(if queue.longest_wait_ms >= LONG_WAIT_MS {
        wait.color(theme::DANGER)
    } else {
        wait
    });
    let service = RichText::new(optional_pct(queue.service_level_pct)).monospace();
    ui.label(match queue.service_level_pct {
        Some(pct) if pct < target_pct => service.color(theme::DANGER),
        Some(_) => service.color(theme::GOOD),
        None => service,
    });
    ui.label(RichText::new(optional_duration(queue.asa_ms)).monospace());
    ui.label(RichText::new(optional_duration(queue.aht_ms)).monospace());
    let abandon = queue
        .abandon_pct
        .map_or_else(|| "—".to_owned(), |pct| format!("{pct:.1} %"));
    ui.label(RichText::new(abandon).monospace());
    ui.label(RichText::new(queue.handled_today.to_string()).monospace());
}

/// Height of the line above the agents: the same with or without a monitoring session, so
/// that the rows' Listen / Whisper / Barge buttons never move under the pointer as a session
/// starts or ends (a second click would land on the next agent's row).
const MONITOR_LINE_HEIGHT: f32 = 30.0;

/// "Listen: Maria" with a Stop button while monitoring; otherwise how to start.
fn monitoring_line_ui(ui: &mut Ui, wallboard: &WallboardView, intents: &mut Vec<Intent>) {
    ui.horizontal(|ui| {
        ui.set_min_height(MONITOR_LINE_HEIGHT);
        monitoring_line_contents_ui(ui, wallboard, intents);
    });
}

fn monitoring_line_contents_ui(ui: &mut Ui, wallboard: &WallboardView, intents: &mut Vec<Intent>) {
    let Some(session) = &wallboard.monitoring else {
        ui.label(
            RichText::new("Listen, whisper to the agent or barge in on a call from its row.")
                .weak(),
        );
        return;
    };
    let name = wallboard
        .agents
        .iter()
        .find(|agent| agent.agent_id == session.agent_id)
        .map_or(session.agent_id.as_str(), |agent| agent.name.as_str());
    {
        chip_ui(
            ui,
            format!("{}: {name}", session.mode.label()),
            theme::WRAP_UP,
        );
        ui.label(RichText::new(session.mode.explanation()).weak());
        if ui
            .add(CommandButton::new("Stop monitoring").fill(theme::DANGER))
            .clicked()
        {
            intents.push(Intent::StopMonitor);
        }
    }
}

fn agents_table_ui(ui: &mut Ui, now_ms: u64, wallboard: &WallboardView, intents: &mut Vec<Intent>) {
    if wallboard.agents.is_empty() {
        ui.label(RichText::new("No agents logged in.").weak());
        return;
    }
    Grid::new("wallboard_agents")
        .num_columns(7)
        .striped(true)
        .spacing([20.0, 6.0])
        .show(ui, |ui| {
            for heading in [
                "Agent", "State", "In state", "Caller", "Call", "Voice", "Monitor",
            ] {
                ui.label(RichText::new(heading).strong());
            }
            ui.end_row();
            for agent in &wallboard.agents {
                agent_row_ui(ui, now_ms, agent, wallboard, intents);
                ui.end_row();
            }
        });
}

fn agent_row_ui(
    ui: &mut Ui,
    now_ms: u64,
    agent: &AgentRow,
    wallboard: &WallboardView,
    intents: &mut Vec<Intent>,
) {
    ui.label(RichText::new(&agent.name).strong());
    state_chip_ui(ui, &agent.state, None);
    ui.label(RichText::new(elapsed_text(now_ms, agent.state_since_ms)).monospace());
    let Some(call) = &agent.call else {
        for _ in 0..4 {
            ui.label("");
        }
        return;
    };
    ui.label(&call.caller);
    ui.label(RichText::new(elapsed_text(now_ms, call.started_ms)).monospace());
    voice_cell_ui(ui, call);
    let current = wallboard
        .monitoring
        .as_ref()
        .filter(|session| session.agent_id == agent.agent_id)
        .map(|session| session.mode);
    ui.horizontal(|ui| {
        for mode in MonitorMode::ALL {
            let name = match mode {
                MonitorMode::Listen => format!("Listen to {}", agent.name),
                MonitorMode::Whisper => format!("Whisper to {}", agent.name),
                MonitorMode::Barge => format!("Barge in on {}", agent.name),
            };
            let button = CommandButton::new(mode.label())
                .toggled(current == Some(mode))
                .accessible_name(name);
            if ui.add(button).on_hover_text(mode.explanation()).clicked() && current != Some(mode) {
                intents.push(Intent::Monitor {
                    agent: agent.agent_id.clone(),
                    mode,
                });
            }
        }
        if current.is_some() {
            let stop = CommandButton::new("Stop")
                .accessible_name(format!("Stop monitoring {}", agent.name));
            if ui.add(stop).clicked() {
                intents.push(Intent::StopMonitor);
            }
        }
    });
}

/// The call's voice quality in a word (the worse leg), then each leg's loss and jitter as the
/// switchboard receives it: "from caller" is what the agent hears, "from agent" what the
/// caller hears.
fn voice_cell_ui(ui: &mut Ui, call: &AgentCall) {
    let Some(quality) = call.quality() else {
        ui.label("—");
        return;
    };
    let leg_text = |voice: Option<VoiceStats>| {
        voice.map_or_else(
            || "—".to_owned(),
            |v| format!("{:.1} % {:.0} ms", v.loss_pct, v.jitter_ms),
        )
    };
    ui.horizontal(|ui| {
        ui.label(
            RichText::new(quality.label())
                .color(theme::quality_color(quality))
                .strong(),
        );
        ui.label(
            RichText::new(format!(
                "from caller {} · from agent {}",
                leg_text(call.caller_to_agent),
                leg_text(call.agent_to_caller)
            ))
            .monospace()
            .weak(),
        );
    })
    .response
    .on_hover_text(
        "Packet loss and jitter over the last 5 seconds, as the switchboard receives each \
         side: from the caller (what the agent hears) and from the agent (what the caller hears).",
    );
}

/// Hours since midnight as "HH:MM".
fn clock_label(hours: f64) -> String {
    let minutes = (hours * 60.0).round().clamp(0.0, 24.0 * 60.0) as u32;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn interval_start_h(start_minute: u16) -> f64 {
    f64::from(start_minute) / 60.0
}

/// From the start of the first interval to the end of the last, in hours; both charts show
/// the same span so their times line up.
fn day_span_h(wallboard: &WallboardView) -> (f64, f64) {
    let starts = wallboard
        .intervals
        .iter()
        .map(|interval| interval_start_h(interval.start_minute));
    let first = starts.clone().fold(f64::INFINITY, f64::min);
    let last = starts.fold(f64::NEG_INFINITY, f64::max);
    if first.is_finite() {
        (first, last + INTERVAL_H)
    } else {
        (8.0, 18.0)
    }
}

fn calls_chart_ui(ui: &mut Ui, wallboard: &WallboardView) {
    ui.label(RichText::new("Calls per 15 minutes").strong());
    let bar_width = INTERVAL_H / 4.0;
    let series = |name: &str, offset: f64, value: fn(&crate::model::IntervalStats) -> u32| {
        let bars = wallboard
            .intervals
            .iter()
            .map(|interval| {
                let center = interval_start_h(interval.start_minute) + INTERVAL_H / 2.0 + offset;
                Bar::new(center, f64::from(value(interval))).width(bar_width)
            })
            .collect();
        BarChart::new(name, bars)
    };
    let offered = series("Offered", -bar_width, |i| i.offered).color(theme::ON_CALL);
    let answered = series("Answered", 0.0, |i| i.answered).color(theme::AVAILABLE);
    let abandoned = series("Abandoned", bar_width, |i| i.abandoned).color(theme::DANGER);
    let most_offered = wallboard
        .intervals
        .iter()
        .map(|interval| interval.offered.max(interval.answered))
        .max()
        .unwrap_or(0);
    let (first_h, last_h) = day_span_h(wallboard);
    Plot::new("calls_per_interval")
        .height(CHART_HEIGHT)
        .legend(Legend::default())
        // Headroom above the tallest bar, so the legend does not cover it.
        .include_y(f64::from(most_offered.max(5)) * 1.45)
        .include_x(first_h)
        .include_x(last_h)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .include_y(0.0)
        .x_axis_formatter(|mark: GridMark, _| clock_label(mark.value))
        .label_formatter(|hover| match hover {
            HoverPosition::NearDataPoint {
                plot_name,
                position,
                ..
            } => Some(format!(
                "{plot_name} {}: {:.0}",
                clock_label((position.x / INTERVAL_H).floor() * INTERVAL_H),
                position.y
            )),
            HoverPosition::Elsewhere { .. } => None,
        })
        .show(ui, |plot| {
            plot.bar_chart(offered);
            plot.bar_chart(answered);
            plot.bar_chart(abandoned);
        });
}

fn service_level_chart_ui(ui: &mut Ui, wallboard: &WallboardView) {
    ui.label(RichText::new("Service level today").strong());
    let points: Vec<[f64; 2]> = wallboard
        .intervals
        .iter()
        .filter_map(|interval| {
            let pct = interval.service_level_pct?;
            Some([
                interval_start_h(interval.start_minute) + INTERVAL_H / 2.0,
                f64::from(pct),
            ])
        })
        .collect();
    let target_pct = f64::from(wallboard.service_level_target_pct);
    let (first_h, last_h) = day_span_h(wallboard);
    Plot::new("service_level_today")
        .height(CHART_HEIGHT)
        .legend(Legend::default().position(egui_plot::Corner::LeftBottom))
        .include_x(first_h)
        .include_x(last_h)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .include_y(0.0)
        .include_y(100.0)
        .x_axis_formatter(|mark: GridMark, _| clock_label(mark.value))
        .y_axis_formatter(|mark: GridMark, _| format!("{:.0} %", mark.value))
        .show(ui, |plot| {
            // Markers too, so an interval with no neighbour (early in the day) still shows.
            plot.points(
                Points::new("Service level", PlotPoints::from(points.clone()))
                    .color(theme::ON_CALL)
                    .filled(true)
                    .radius(3.0),
            );
            plot.line(
                Line::new("Service level", PlotPoints::from(points))
                    .color(theme::ON_CALL)
                    .width(2.0),
            );
            plot.hline(
                HLine::new(format!("Target {target_pct:.0} %"), target_pct).color(theme::CAUTION),
            );
        });
}
