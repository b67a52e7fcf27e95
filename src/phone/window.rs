//! The phone's window without a graphics driver: winit opens it and egui-winit turns its
//! events into egui input (and egui's accessibility tree into AccessKit's); each frame egui
//! lays out the views, `egui_software_backend` (vendored) rasterises them on the CPU, and
//! softbuffer shows the pixels.
//!
//! Why not OpenGL: a call-center phone is a form that changes a few pixels at a time (a call
//! timer, two level meters). The rasteriser keeps every shape's pixels from the frame before,
//! so a frame redraws only the 64-pixel tiles whose shapes changed, and only those tiles are
//! copied to the window. A GL driver redraws the whole window every frame and brings its
//! shader compiler into the process: Mesa's llvmpipe (what a desk without a GPU driver, or a
//! virtual desktop, gets) costs a call 1-2 % of a core and 60 MB of memory, an NVIDIA driver
//! 80 MB (BENCHMARKS.md, issue 4).
//!
//! Each shape is tessellated into its own mesh ([`tessellate_each_shape`]): egui's own
//! tessellator merges neighbours into one mesh, so one moving meter would make the rasteriser
//! redraw the whole panel around it.
//!
//! Repaints happen only when asked: input, `Context::request_repaint*` from any thread (the
//! engine's updates), or the delay a frame asks for (timers). An idle window draws nothing.

use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::{Duration, Instant};

use egui::{ClippedPrimitive, Context, ViewportBuilder, ViewportId, ViewportInfo};
use egui_software_backend::{BufferMutRef, ColorFieldOrder, EguiSoftwareRender};
use egui_winit::accesskit_winit;
use winit::application::ApplicationHandler;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop, EventLoopProxy};
use winit::window::{Window, WindowId};

/// What the window runs: an egui app that draws one frame at a time.
pub trait WindowApp {
    /// Draw one frame.
    fn ui(&mut self, ui: &mut egui::Ui, frame: &FrameInfo);

    /// The window's background behind the (transparent) panels.
    fn clear_color(&self, visuals: &egui::Visuals) -> egui::Color32;
}

/// About the previous frame, for benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameInfo {
    /// CPU time of the previous frame, from the start of its layout to the window showing it.
    pub previous_frame_s: Option<f32>,
}

/// Why the window could not open or went away.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("cannot talk to the display (is DISPLAY set?): {0}")]
    EventLoop(#[from] winit::error::EventLoopError),
    #[error("cannot open the window: {0}")]
    CreateWindow(#[from] winit::error::OsError),
    #[error("cannot draw into the window: {0}")]
    Surface(#[from] softbuffer::SoftBufferError),
    #[error("the app could not start: {0}")]
    App(String),
}

/// Messages to the event loop from other threads (and from AccessKit).
#[derive(Debug)]
pub enum UserEvent {
    /// egui wants a frame at `at` (from `request_repaint*`, any thread).
    Repaint {
        at: Instant,
    },
    AccessKit(accesskit_winit::Event),
}

impl From<accesskit_winit::Event> for UserEvent {
    fn from(event: accesskit_winit::Event) -> Self {
        UserEvent::AccessKit(event)
    }
}

/// Opens the window described by `viewport` and runs until it is closed. `make_app` gets the
/// egui context (to wake the window from other threads) and builds the app.
pub fn run<A: WindowApp>(
    viewport: ViewportBuilder,
    make_app: impl FnOnce(&Context) -> Result<A, String>,
) -> Result<(), WindowError> {
    let event_loop = EventLoop::<UserEvent>::with_user_event().build()?;
    let ctx = Context::default();
    let proxy = event_loop.create_proxy();
    {
        let proxy = proxy.clone();
        ctx.set_request_repaint_callback(move |info| {
            let _ = proxy.send_event(UserEvent::Repaint {
                at: Instant::now() + info.delay,
            });
        });
    }
    let app = make_app(&ctx).map_err(WindowError::App)?;
    let mut runner = Runner {
        ctx,
        app,
        viewport,
        proxy,
        open: None,
        next_repaint: None,
        previous_frame_s: None,
        error: None,
    };
    event_loop.run_app(&mut runner)?;
    match runner.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct Runner<A> {
    ctx: Context,
    app: A,
    viewport: ViewportBuilder,
    proxy: EventLoopProxy<UserEvent>,
    /// The window once the event loop has started.
    open: Option<OpenWindow>,
    /// The earliest frame anyone asked for.
    next_repaint: Option<Instant>,
    previous_frame_s: Option<f32>,
    error: Option<WindowError>,
}

struct OpenWindow {
    window: Rc<Window>,
    input: egui_winit::State,
    info: ViewportInfo,
    surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
    painter: TilePainter,
    /// Shown once the first frame is drawn, so nobody sees an empty window.
    shown: bool,
    /// The next frame is shown whole: the window was just mapped, or the X server asked for
    /// a redraw (part of the window was uncovered) instead of us.
    show_whole: bool,
    /// A redraw we asked for is pending; a redraw nobody here asked for is the X server's.
    redraw_asked: bool,
}

impl OpenWindow {
    fn open(
        ctx: &Context,
        event_loop: &ActiveEventLoop,
        viewport: &ViewportBuilder,
        proxy: EventLoopProxy<UserEvent>,
    ) -> Result<OpenWindow, WindowError> {
        // Invisible until the first frame; AccessKit also wants to attach before it shows.
        let window = Rc::new(egui_winit::create_window(
            ctx,
            event_loop,
            &viewport.clone().with_visible(false),
        )?);
        let mut input = egui_winit::State::new(
            ctx.clone(),
            ViewportId::ROOT,
            event_loop,
            Some(window.scale_factor() as f32),
            window.theme(),
            Some(MAX_TEXTURE_SIDE),
        );
        input.init_accesskit(event_loop, &window, proxy);
        let context = softbuffer::Context::new(window.clone())?;
        let surface = softbuffer::Surface::new(&context, window.clone())?;
        let mut info = ViewportInfo::default();
        egui_winit::update_viewport_info(&mut info, ctx, &window, true);
        Ok(OpenWindow {
            window,
            input,
            info,
            surface,
            painter: TilePainter::new(),
            shown: false,
            show_whole: true,
            redraw_asked: false,
        })
    }

    fn request_redraw(&mut self) {
        self.redraw_asked = true;
        self.window.request_redraw();
    }
}

/// The rasteriser keeps a copy of every texture; egui's glyph atlas grows in height as it
/// fills, so it is kept narrow. 2048 is egui's own portable default.
const MAX_TEXTURE_SIDE: usize = 2048;

/// The rasteriser's tile side in pixels (`TILE_SIZE` in egui_software_backend).
const TILE_SIDE: usize = 64;

impl<A: WindowApp> Runner<A> {
    fn fail(&mut self, event_loop: &ActiveEventLoop, error: WindowError) {
        self.error = Some(error);
        event_loop.exit();
    }

    /// Lays out and draws one frame, and shows what changed.
    fn paint(&mut self, event_loop: &ActiveEventLoop) -> Result<(), WindowError> {
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        let started = Instant::now();
        self.next_repaint = None;
        egui_winit::update_viewport_info(&mut open.info, &self.ctx, &open.window, false);
        let mut raw_input = open.input.take_egui_input(&open.window);
        raw_input
            .viewports
            .insert(ViewportId::ROOT, open.info.clone());
        let frame = FrameInfo {
            previous_frame_s: self.previous_frame_s,
        };
        let app = &mut self.app;
        let output = self.ctx.run_ui(raw_input, |ui| app.ui(ui, &frame));
        open.input.handle_platform_output_with_event_loop(
            &open.window,
            event_loop,
            output.platform_output,
        );
        if let Some(viewport) = output.viewport_output.get(&ViewportId::ROOT) {
            if viewport
                .commands
                .iter()
                .any(|c| matches!(c, egui::ViewportCommand::Close))
            {
                event_loop.exit();
            }
            if viewport.repaint_delay < Duration::MAX {
                let at = Instant::now() + viewport.repaint_delay;
                repaint_by(&mut self.next_repaint, at);
            }
        }

        open.painter.add_textures(output.textures_delta);
        let physical = open.window.inner_size();
        let (Some(width), Some(height)) = (
            NonZeroU32::new(physical.width),
            NonZeroU32::new(physical.height),
        ) else {
            return Ok(()); // minimised: nothing to draw into
        };
        let size = [physical.width as usize, physical.height as usize];
        if size != open.painter.size() {
            open.surface.resize(width, height)?;
        }
        let background = self.app.clear_color(&self.ctx.global_style().visuals);
        let painted = open.painter.paint(
            &self.ctx,
            output.shapes,
            output.pixels_per_point,
            size,
            background,
        );
        let pixels = open.painter.pixels();
        let mut buffer = open.surface.buffer_mut()?;
        // Many changed tiles (a new screen) go to the X server as one image, not one each.
        let tiles = size[0].div_ceil(TILE_SIDE) * size[1].div_ceil(TILE_SIDE);
        let whole = open.show_whole
            || buffer.age() == 0
            || painted.resized
            || painted.changed.len() * 2 > tiles;
        open.show_whole = false;
        let mut damage = Vec::with_capacity(painted.changed.len());
        if whole {
            copy_rect(pixels, &mut buffer, size[0], [0, 0, size[0], size[1]]);
            damage.push(to_damage([0, 0, size[0], size[1]]));
        } else {
            for rect in &painted.changed {
                copy_rect(pixels, &mut buffer, size[0], *rect);
                damage.push(to_damage(*rect));
            }
        }
        if !damage.is_empty() {
            buffer.present_with_damage(&damage)?;
        }
        if !open.shown {
            // What was shown before the window was mapped is gone: show the next frame whole.
            open.window.set_visible(true);
            open.shown = true;
            open.show_whole = true;
            open.request_redraw();
        }
        self.previous_frame_s = Some(started.elapsed().as_secs_f32());
        Ok(())
    }
}

/// Turns egui's output into pixels, redrawing only the tiles whose shapes changed. No window
/// here: the window copies the changed rectangles out, and tests compare the pixels.
pub struct TilePainter {
    renderer: EguiSoftwareRender,
    /// Texture changes not yet given to the renderer (a minimised window draws no frames, and
    /// the font atlas must not miss an update).
    textures: egui::TexturesDelta,
    /// The last frame, BGRA.
    pixels: Vec<[u8; 4]>,
    size: [usize; 2],
}

/// What [`TilePainter::paint`] changed.
#[derive(Debug)]
pub struct Painted {
    /// Rectangles (x, y, width, height) in pixels that differ from the frame before.
    pub changed: Vec<[usize; 4]>,
    /// The size changed, so everything was drawn.
    pub resized: bool,
}

impl Default for TilePainter {
    fn default() -> Self {
        TilePainter::new()
    }
}

impl TilePainter {
    pub fn new() -> TilePainter {
        TilePainter {
            renderer: EguiSoftwareRender::new(ColorFieldOrder::Bgra),
            textures: egui::TexturesDelta::default(),
            pixels: Vec::new(),
            size: [0, 0],
        }
    }

    /// Queues a frame's texture changes; they are applied by the next [`Self::paint`].
    pub fn add_textures(&mut self, delta: egui::TexturesDelta) {
        self.textures.append(delta);
    }

    /// Draws a frame of `size` pixels (both non-zero) over `background`.
    pub fn paint(
        &mut self,
        ctx: &Context,
        shapes: Vec<egui::epaint::ClippedShape>,
        pixels_per_point: f32,
        size: [usize; 2],
        background: egui::Color32,
    ) -> Painted {
        let resized = size != self.size;
        if resized {
            self.pixels = vec![[0; 4]; size[0] * size[1]];
            self.size = size;
        }
        let primitives = tessellate_each_shape(ctx, shapes, pixels_per_point);
        self.renderer.render_to_canvas(
            size[0],
            size[1],
            &primitives,
            &self.textures,
            pixels_per_point,
        );
        self.textures.clear();
        let [r, g, b, _] = background.to_array();
        let changed = self.renderer.paint_changed_tiles(
            &mut BufferMutRef::new(&mut self.pixels, size[0], size[1]),
            [b, g, r, 255],
            resized,
        );
        Painted { changed, resized }
    }

    /// The last frame, BGRA, row by row.
    pub fn pixels(&self) -> &[[u8; 4]] {
        &self.pixels
    }

    pub fn size(&self) -> [usize; 2] {
        self.size
    }
}

impl Drop for TilePainter {
    fn drop(&mut self) {
        // Changes for a frame never drawn are dropped with the textures they change.
        self.textures.clear();
    }
}

/// Keeps the earlier of the pending repaint and `at`.
fn repaint_by(next: &mut Option<Instant>, at: Instant) {
    *next = Some(next.map_or(at, |next| next.min(at)));
}

/// Tessellates every shape into its own primitive, so the rasteriser's cache (keyed by each
/// primitive's vertices) keeps everything that did not change. The discs egui prepares in its
/// font atlas are a GPU shortcut; without them circles are tessellated as paths.
fn tessellate_each_shape(
    ctx: &Context,
    shapes: Vec<egui::epaint::ClippedShape>,
    pixels_per_point: f32,
) -> Vec<ClippedPrimitive> {
    let options = ctx.tessellation_options(|options| *options);
    let atlas_size = ctx.fonts(|fonts| fonts.font_image_size());
    let mut tessellator =
        egui::epaint::Tessellator::new(pixels_per_point, options, atlas_size, Vec::new());
    let mut primitives = Vec::with_capacity(shapes.len());
    let mut one = Vec::new();
    for shape in shapes {
        tessellator.tessellate_clipped_shape(shape, &mut one);
        primitives.append(&mut one);
    }
    primitives
}

/// Copies one rectangle of BGRA pixels into the window's buffer (0RGB words).
fn copy_rect(pixels: &[[u8; 4]], buffer: &mut [u32], width: usize, [x, y, w, h]: [usize; 4]) {
    for row in y..y + h {
        let start = row * width + x;
        for (to, from) in buffer[start..start + w]
            .iter_mut()
            .zip(&pixels[start..start + w])
        {
            *to = u32::from_le_bytes([from[0], from[1], from[2], 0]);
        }
    }
}

fn to_damage([x, y, w, h]: [usize; 4]) -> softbuffer::Rect {
    softbuffer::Rect {
        x: x as u32,
        y: y as u32,
        width: NonZeroU32::new(w as u32).unwrap_or(NonZeroU32::MIN),
        height: NonZeroU32::new(h as u32).unwrap_or(NonZeroU32::MIN),
    }
}

impl<A: WindowApp> ApplicationHandler<UserEvent> for Runner<A> {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.open.is_some() {
            return;
        }
        match OpenWindow::open(&self.ctx, event_loop, &self.viewport, self.proxy.clone()) {
            Ok(mut open) => {
                open.request_redraw();
                self.open = Some(open);
            }
            Err(e) => self.fail(event_loop, e),
        }
    }

    fn user_event(&mut self, _event_loop: &ActiveEventLoop, event: UserEvent) {
        match event {
            UserEvent::Repaint { at } => repaint_by(&mut self.next_repaint, at),
            UserEvent::AccessKit(event) => {
                let Some(open) = &mut self.open else { return };
                match event.window_event {
                    accesskit_winit::WindowEvent::InitialTreeRequested => {
                        self.ctx.enable_accesskit();
                        open.request_redraw();
                    }
                    accesskit_winit::WindowEvent::ActionRequested(request) => {
                        open.input.on_accesskit_action_request(request);
                        open.request_redraw();
                    }
                    accesskit_winit::WindowEvent::AccessibilityDeactivated => {
                        self.ctx.disable_accesskit();
                    }
                }
            }
        }
    }

    fn window_event(
        &mut self,
        event_loop: &ActiveEventLoop,
        _window_id: WindowId,
        event: WindowEvent,
    ) {
        match &event {
            WindowEvent::CloseRequested | WindowEvent::Destroyed => {
                event_loop.exit();
                return;
            }
            WindowEvent::RedrawRequested => {
                if let Some(open) = &mut self.open {
                    if !open.redraw_asked {
                        open.show_whole = true;
                    }
                    open.redraw_asked = false;
                }
                if let Err(e) = self.paint(event_loop) {
                    self.fail(event_loop, e);
                }
                return;
            }
            _ => {}
        }
        let Some(open) = &mut self.open else { return };
        let response = open.input.on_window_event(&open.window, &event);
        if response.repaint {
            open.request_redraw();
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        match self.next_repaint {
            Some(at) if at <= Instant::now() => {
                self.next_repaint = None;
                if let Some(open) = &mut self.open {
                    open.request_redraw();
                }
                event_loop.set_control_flow(ControlFlow::Wait);
            }
            Some(at) => event_loop.set_control_flow(ControlFlow::WaitUntil(at)),
            None => event_loop.set_control_flow(ControlFlow::Wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sapa_ui::{
        ActiveCall, AgentHeader, AgentState, CallView, CallerInfo, ConnectionHealth, PastCall,
        PhoneView, QueueSummary, Role, VoiceStats,
    };

    const SIZE: [usize; 2] = [1280, 820];

    fn in_call_view() -> PhoneView {
        let history = (0..12)
            .map(|i| PastCall {
                call_id: format!("c{i}"),
                started_ms: 1_000 * i,
                started_text: format!("2026-11-{:02} 10:{:02}", 1 + i, 2 * i),
                caller_number: "+34 600 123 456".into(),
                agent_name: "Jon Ander".into(),
                queue: "Billing".into(),
                talk_ms: 60_000 + 1_000 * i,
                notes: format!("Call {i} about the invoice"),
                ..PastCall::default()
            })
            .collect();
        PhoneView {
            now_ms: 1_000_000,
            agent: Some(AgentHeader {
                agent_id: "a1".into(),
                name: "Maria Lopez".into(),
                role: Role::Agent,
                state: AgentState::OnCall,
                state_since_ms: 1_000_000,
                not_ready_reasons: vec!["Break".into()],
                pending_not_ready: None,
                connection: ConnectionHealth::Connected { round_trip_ms: 12 },
                queues: QueueSummary {
                    calls_waiting: 1,
                    longest_wait_ms: 9_000,
                },
                monitored: false,
            }),
            call: CallView::InCall(ActiveCall {
                call_id: "call-1".into(),
                caller: CallerInfo {
                    number: "+34 600 123 456".into(),
                    name: Some("Ana Ruiz".into()),
                    notes: None,
                    history,
                },
                queue: "Billing".into(),
                answered_at_ms: 1_000_000,
                muted: false,
                held_since_ms: None,
                mic_level_dbfs: -30.0,
                speaker_level_dbfs: -20.0,
                voice: VoiceStats::default(),
                dtmf_sent: String::new(),
                origin: None,
                consult: None,
            }),
            ..PhoneView::default()
        }
    }

    /// Runs one egui frame of `view` and paints it with each painter; returns the first
    /// painter's changes.
    fn frame(ctx: &Context, view: &mut PhoneView, painters: &mut [&mut TilePainter]) -> Painted {
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(SIZE[0] as f32, SIZE[1] as f32),
            )),
            ..egui::RawInput::default()
        };
        let mut output = ctx.run_ui(input, |ui| {
            sapa_ui::phone_ui(ui, view);
        });
        let background = ctx.global_style().visuals.panel_fill;
        let mut first = None;
        for painter in painters.iter_mut() {
            painter.add_textures(output.textures_delta.clone());
            let painted = painter.paint(
                ctx,
                output.shapes.clone(),
                output.pixels_per_point,
                SIZE,
                background,
            );
            first.get_or_insert(painted);
        }
        output.textures_delta.clear();
        first.expect("at least one painter")
    }

    /// A frame redrawn tile by tile must look exactly like the same frame drawn from nothing,
    /// whatever came and went before it, and a frame where only the timer and the meters moved
    /// must touch a few tiles, not the window.
    #[test]
    fn tile_by_tile_frames_equal_whole_frames_and_a_call_tick_touches_few_tiles() {
        let ctx = Context::default();
        sapa_ui::theme::install(&ctx);
        let mut view = in_call_view();
        let mut incremental = TilePainter::new();
        for _ in 0..3 {
            frame(&ctx, &mut view, &mut [&mut incremental]);
        }
        let tiles = SIZE[0].div_ceil(TILE_SIDE) * SIZE[1].div_ceil(TILE_SIDE);
        let mut most_changed = 0;
        for tick in 0..10u64 {
            view.now_ms += 500;
            if let CallView::InCall(call) = &mut view.call {
                call.mic_level_dbfs = -40.0 + 4.0 * (tick % 5) as f32;
                call.speaker_level_dbfs = -35.0 + 3.0 * (tick % 7) as f32;
            }
            let painted = frame(&ctx, &mut view, &mut [&mut incremental]);
            assert!(!painted.resized);
            most_changed = most_changed.max(painted.changed.len());
        }
        assert!(
            most_changed > 0 && most_changed * 10 < tiles,
            "a call tick repainted {most_changed} of {tiles} tiles"
        );

        // Things go away: mute shows, then the call ends and the wrap-up replaces the call.
        if let CallView::InCall(call) = &mut view.call {
            call.muted = true;
        }
        frame(&ctx, &mut view, &mut [&mut incremental]);
        view.call = CallView::Idle;
        if let Some(agent) = &mut view.agent {
            agent.state = AgentState::Available;
        }
        let painted = frame(&ctx, &mut view, &mut [&mut incremental]);
        assert!(painted.changed.len() > most_changed);
        frame(&ctx, &mut view, &mut [&mut incremental]);

        // The same frame, drawn incrementally and from nothing.
        let mut from_nothing = TilePainter::new();
        // The only texture is the glyph atlas: give it whole, as it is now.
        let atlas = ctx.fonts(|fonts| fonts.image());
        let mut atlas_delta = egui::TexturesDelta::default();
        atlas_delta.set.insert(
            egui::TextureId::default(),
            [egui::epaint::ImageDelta::full(
                atlas,
                egui::TextureOptions::LINEAR,
            )]
            .into_iter()
            .collect(),
        );
        from_nothing.add_textures(atlas_delta);
        frame(&ctx, &mut view, &mut [&mut incremental, &mut from_nothing]);
        let differing = incremental
            .pixels()
            .iter()
            .zip(from_nothing.pixels())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differing, 0,
            "pixels differ between tile-by-tile and whole frames"
        );
        // And it is a real picture, not a blank one.
        let background = incremental.pixels()[0];
        assert!(
            incremental
                .pixels()
                .iter()
                .filter(|p| **p != background)
                .count()
                > 10_000
        );
    }
}
