//! The eframe app: each frame it drains the engine's updates into [`PhoneState`], draws
//! `sapa_ui::phone_ui`, and hands the returned intents to the engine. It never waits on
//! anything.
//!
//! Repaints happen when something changes: input, an engine update (the engine calls
//! `request_repaint`), once a second while the header's state timer is on screen, and 4 Hz
//! while a call timer is (requested by `phone_ui` itself). An idle window draws nothing.

use std::time::Duration;

use super::engine::{self, EngineHandle, EngineOptions};
use super::state::PhoneState;

/// Default window size; the screenshots use the same.
pub const WINDOW_SIZE: [f32; 2] = [1280.0, 820.0];

pub struct PhoneApp {
    engine: EngineHandle,
    state: PhoneState,
}

impl PhoneApp {
    pub fn new(engine: EngineHandle) -> PhoneApp {
        PhoneApp {
            engine,
            state: PhoneState::new(),
        }
    }
}

impl eframe::App for PhoneApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let now_ms = crate::peer::now_ms().max(0) as u64;
        while let Some(update) = self.engine.try_recv() {
            self.state.apply(update, now_ms);
        }
        self.state.apply_levels(self.engine.levels());
        self.state.view.now_ms = now_ms;

        let intents = sapa_ui::phone_ui(ui, &mut self.state.view);
        for intent in intents {
            self.state.note_intent(&intent);
            self.engine.send(intent);
        }

        if let Some(agent) = &self.state.view.agent {
            // The state timer shows whole seconds: wake just after the next one turns.
            let into_second = now_ms.saturating_sub(agent.state_since_ms) % 1000;
            ui.ctx()
                .request_repaint_after(Duration::from_millis(1000 - into_second + 5));
        }
    }
}

/// Opens the window and runs until it is closed. The engine starts with the window (it
/// needs the window's context to wake it) and stops when the window closes.
pub fn run_window(options: EngineOptions) -> Result<(), eframe::Error> {
    let native = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default()
            .with_title("Sapa")
            .with_app_id("sapa")
            .with_inner_size(WINDOW_SIZE)
            .with_min_inner_size([900.0, 600.0]),
        ..Default::default()
    };
    eframe::run_native(
        "Sapa",
        native,
        Box::new(move |cc| {
            sapa_ui::theme::install(&cc.egui_ctx);
            let ctx = cc.egui_ctx.clone();
            let engine = engine::spawn(options, move || ctx.request_repaint())?;
            Ok(Box::new(PhoneApp::new(engine)))
        }),
    )
}
