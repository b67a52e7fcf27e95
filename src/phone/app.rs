//! The phone's app in its window ([`super::window`]): each frame it drains the engine's
//! updates into [`PhoneState`], draws `sapa_ui::phone_ui`, and hands the returned intents to
//! the engine. It never waits on anything.
//!
//! Repaints happen when something changes: input, an engine update (the engine calls
//! `request_repaint`), once a second for the header's state timer between calls, twice a
//! second in a call (the call timer and the level meters) and 4 Hz while a call rings or is
//! wrapped up (requested by `phone_ui` itself). An idle window draws nothing.
//!
//! The panels are not filled; the window is cleared to their colour instead, so the
//! rasteriser keeps no panel-sized shapes.
//!
//! `SAPA_BENCH_LOG=FILE` makes the window write one line per frame to FILE ([`FrameLog`]), so
//! `examples/bench_phone.rs` can count repaints and time the screen-pop.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sapa_ui::CallView;

use super::engine::{self, EngineHandle, EngineOptions};
use super::state::PhoneState;
use super::window::{self, FrameInfo, WindowApp, WindowError};

/// Default window size; the screenshots use the same.
pub const WINDOW_SIZE: [f32; 2] = [1280.0, 820.0];

pub struct PhoneApp {
    engine: EngineHandle,
    state: PhoneState,
    /// Only with `SAPA_BENCH_LOG` set.
    frame_log: Option<FrameLog>,
    /// The panels' colour in the dark and the light theme: the window is cleared to it.
    panel_fill: PanelFill,
}

impl PhoneApp {
    pub fn new(engine: EngineHandle, panel_fill: PanelFill) -> PhoneApp {
        PhoneApp {
            engine,
            state: PhoneState::new(),
            frame_log: FrameLog::from_env(),
            panel_fill,
        }
    }
}

/// The panels' fill of each theme, taken from the style before [`PanelFill::clear_panels`]
/// makes it transparent.
#[derive(Debug, Clone, Copy)]
pub struct PanelFill {
    dark: egui::Color32,
    light: egui::Color32,
}

impl PanelFill {
    /// Makes the panels of both themes transparent and returns the fills they had, for the
    /// window's clear colour: the screen looks the same, and the renderer does not paint the
    /// whole window a second time on every frame.
    pub fn clear_panels(ctx: &egui::Context) -> PanelFill {
        let fill = PanelFill {
            dark: ctx.style_of(egui::Theme::Dark).visuals.panel_fill,
            light: ctx.style_of(egui::Theme::Light).visuals.panel_fill,
        };
        ctx.all_styles_mut(|style| style.visuals.panel_fill = egui::Color32::TRANSPARENT);
        fill
    }

    fn of(&self, visuals: &egui::Visuals) -> egui::Color32 {
        if visuals.dark_mode {
            self.dark
        } else {
            self.light
        }
    }
}

/// One line per frame, for benchmarks: `frame START_US PREV_CPU_US [pop CALL_ID]`.
/// START_US is when this frame's `ui` began (microseconds since the Unix epoch); PREV_CPU_US
/// is the CPU time of the previous frame from its start until the window showed it, or -1;
/// `pop CALL_ID` marks the first frame that draws the screen-pop of an offered call. So the
/// screen-pop was painted at START_US of its frame plus PREV_CPU_US of the next line.
struct FrameLog {
    file: BufWriter<File>,
    /// The offered call whose screen-pop has been drawn.
    popped: Option<String>,
}

impl FrameLog {
    fn from_env() -> Option<FrameLog> {
        let path = std::env::var_os("SAPA_BENCH_LOG")?;
        match File::create(&path) {
            Ok(file) => Some(FrameLog {
                file: BufWriter::new(file),
                popped: None,
            }),
            Err(e) => {
                eprintln!("sapa phone: SAPA_BENCH_LOG {}: {e}", path.to_string_lossy());
                None
            }
        }
    }

    fn frame(&mut self, start_us: i64, prev_cpu_s: Option<f32>, call: &CallView) {
        let prev_cpu_us = prev_cpu_s.map_or(-1, |s| (s * 1e6) as i64);
        let _ = write!(self.file, "frame {start_us} {prev_cpu_us}");
        if let CallView::Ringing(ringing) = call
            && self.popped.as_deref() != Some(ringing.call_id.as_str())
        {
            let _ = write!(self.file, " pop {}", ringing.call_id);
            self.popped = Some(ringing.call_id.clone());
        }
        let _ = writeln!(self.file);
        let _ = self.file.flush();
    }
}

impl WindowApp for PhoneApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &FrameInfo) {
        let start_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let now_ms = crate::peer::now_ms().max(0) as u64;
        while let Some(update) = self.engine.try_recv() {
            self.state.apply(update, now_ms);
        }
        self.state.apply_levels(self.engine.levels());
        self.state.view.now_ms = now_ms;

        let intents = sapa_ui::phone_ui(ui, &mut self.state.view);
        if let Some(log) = &mut self.frame_log {
            log.frame(start_us, frame.previous_frame_s, &self.state.view.call);
        }
        for intent in intents {
            self.state.note_intent(&intent);
            self.engine.send(intent);
        }

        if let Some(agent) = &self.state.view.agent
            && matches!(self.state.view.call, CallView::Idle)
        {
            // The state timer shows whole seconds: wake just after the next one turns. With
            // a call on screen `phone_ui` repaints more often, which ticks this timer too.
            let into_second = now_ms.saturating_sub(agent.state_since_ms) % 1000;
            ui.ctx()
                .request_repaint_after(Duration::from_millis(1000 - into_second + 5));
        }
    }

    fn clear_color(&self, visuals: &egui::Visuals) -> egui::Color32 {
        self.panel_fill.of(visuals)
    }
}

/// Opens the window and runs until it is closed. The engine starts with the window (it
/// needs the window's context to wake it) and stops when the window closes.
pub fn run_window(options: EngineOptions) -> Result<(), WindowError> {
    let viewport = egui::ViewportBuilder::default()
        .with_title("Sapa")
        .with_app_id("sapa")
        .with_inner_size(WINDOW_SIZE)
        .with_min_inner_size([900.0, 600.0]);
    window::run(viewport, move |ctx| {
        sapa_ui::theme::install(ctx);
        let panel_fill = PanelFill::clear_panels(ctx);
        let wake = ctx.clone();
        let engine = engine::spawn(options, move || wake.request_repaint())
            .map_err(|e| format!("the phone's engine did not start: {e}"))?;
        Ok(PhoneApp::new(engine, panel_fill))
    })
}
