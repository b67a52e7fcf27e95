//! Pictures of every screen, for a person to look at, without a GPU: the frames are tessellated
//! by egui and filled by a small software rasterizer here, and written as PPM images.
//!
//! Not part of the normal test run. To look at the screens:
//!
//! ```text
//! SAPA_UI_SHOTS=/tmp/shots cargo test -p sapa-ui --test screenshots -- --ignored
//! for f in /tmp/shots/*.ppm; do convert "$f" "${f%.ppm}.png"; done
//! ```

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::*;
use egui::epaint::{ClippedPrimitive, ImageData, Primitive};
use egui::{Color32, Context, RawInput, Rect, TextureId, pos2, vec2};
use sapa_ui::*;

const WIDTH: usize = 1400;
const HEIGHT: usize = 900;

/// A texture as straight RGBA rows.
struct Texture {
    size: [usize; 2],
    pixels: Vec<Color32>,
}

/// Runs `phone_ui` on a bare context and keeps the textures egui uploads.
struct Painter {
    ctx: Context,
    textures: HashMap<TextureId, Texture>,
}

impl Painter {
    fn new(dark: bool) -> Self {
        let ctx = Context::default();
        ctx.set_theme(if dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
        theme::install(&ctx);
        Self {
            ctx,
            textures: HashMap::new(),
        }
    }

    /// Run a few frames (layout settles, grids size themselves), return the last one's pixels.
    fn frame(&mut self, view: &mut PhoneView) -> Vec<Color32> {
        let mut primitives = Vec::new();
        for _ in 0..4 {
            let input = RawInput {
                screen_rect: Some(Rect::from_min_size(
                    pos2(0.0, 0.0),
                    vec2(WIDTH as f32, HEIGHT as f32),
                )),
                ..RawInput::default()
            };
            let mut output = self.ctx.run_ui(input, |ui| {
                phone_ui(ui, view);
            });
            for (id, delta) in output
                .textures_delta
                .set
                .iter()
                .flat_map(|(id, deltas)| deltas.iter().map(move |delta| (id, delta)))
            {
                let ImageData::Color(image) = &delta.image;
                match delta.pos {
                    None => {
                        self.textures.insert(
                            *id,
                            Texture {
                                size: image.size,
                                pixels: image.pixels.clone(),
                            },
                        );
                    }
                    Some([x0, y0]) => {
                        let texture = self.textures.get_mut(id).expect("patch of a known texture");
                        for y in 0..image.size[1] {
                            for x in 0..image.size[0] {
                                texture.pixels[(y0 + y) * texture.size[0] + x0 + x] =
                                    image.pixels[y * image.size[0] + x];
                            }
                        }
                    }
                }
            }
            for id in &output.textures_delta.free {
                self.textures.remove(id);
            }
            output.textures_delta.clear();
            primitives = self.ctx.tessellate(output.shapes, output.pixels_per_point);
        }
        let background = self.ctx.global_style().visuals.panel_fill;
        let mut pixels = vec![background; WIDTH * HEIGHT];
        for primitive in &primitives {
            self.draw(&mut pixels, primitive);
        }
        pixels
    }

    fn draw(&self, pixels: &mut [Color32], clipped: &ClippedPrimitive) {
        let Primitive::Mesh(mesh) = &clipped.primitive else {
            return;
        };
        let Some(texture) = self.textures.get(&mesh.texture_id) else {
            return;
        };
        let clip = clipped.clip_rect;
        for triangle in mesh.indices.chunks_exact(3) {
            let [a, b, c] = [0, 1, 2].map(|i| &mesh.vertices[triangle[i] as usize]);
            let area = edge(a.pos, b.pos, c.pos);
            if area.abs() < 1e-6 {
                continue;
            }
            let min_x = a.pos.x.min(b.pos.x).min(c.pos.x).max(clip.min.x).max(0.0) as usize;
            let max_x = a
                .pos
                .x
                .max(b.pos.x)
                .max(c.pos.x)
                .min(clip.max.x)
                .min(WIDTH as f32);
            let min_y = a.pos.y.min(b.pos.y).min(c.pos.y).max(clip.min.y).max(0.0) as usize;
            let max_y = a
                .pos
                .y
                .max(b.pos.y)
                .max(c.pos.y)
                .min(clip.max.y)
                .min(HEIGHT as f32);
            for y in min_y..(max_y.ceil().max(0.0) as usize) {
                for x in min_x..(max_x.ceil().max(0.0) as usize) {
                    let p = pos2(x as f32 + 0.5, y as f32 + 0.5);
                    let (wa, wb, wc) = (
                        edge(b.pos, c.pos, p) / area,
                        edge(c.pos, a.pos, p) / area,
                        edge(a.pos, b.pos, p) / area,
                    );
                    if wa < 0.0 || wb < 0.0 || wc < 0.0 {
                        continue;
                    }
                    let u = wa * a.uv.x + wb * b.uv.x + wc * c.uv.x;
                    let v = wa * a.uv.y + wb * b.uv.y + wc * c.uv.y;
                    let tx = ((u * texture.size[0] as f32) as usize).min(texture.size[0] - 1);
                    let ty = ((v * texture.size[1] as f32) as usize).min(texture.size[1] - 1);
                    let texel = texture.pixels[ty * texture.size[0] + tx];
                    let channel = |i: usize| {
                        let vertex = wa * f32::from(a.color[i])
                            + wb * f32::from(b.color[i])
                            + wc * f32::from(c.color[i]);
                        vertex * f32::from(texel[i]) / 255.0
                    };
                    let source = [channel(0), channel(1), channel(2), channel(3)];
                    let target = &mut pixels[y * WIDTH + x];
                    let keep = 1.0 - source[3] / 255.0;
                    *target = Color32::from_rgb(
                        (source[0] + f32::from(target.r()) * keep).min(255.0) as u8,
                        (source[1] + f32::from(target.g()) * keep).min(255.0) as u8,
                        (source[2] + f32::from(target.b()) * keep).min(255.0) as u8,
                    );
                }
            }
        }
    }
}

fn edge(a: egui::Pos2, b: egui::Pos2, p: egui::Pos2) -> f32 {
    (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x)
}

fn write_ppm(name: &str, pixels: &[Color32]) {
    let dir = PathBuf::from(
        std::env::var("SAPA_UI_SHOTS").unwrap_or_else(|_| "/tmp/sapa-ui-shots".to_owned()),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = format!("P6\n{WIDTH} {HEIGHT}\n255\n").into_bytes();
    for pixel in pixels {
        bytes.extend_from_slice(&[pixel.r(), pixel.g(), pixel.b()]);
    }
    std::fs::write(dir.join(format!("{name}.ppm")), bytes).unwrap();
}

fn scenes() -> Vec<(&'static str, PhoneView)> {
    let mut scenes = Vec::new();

    let mut login = PhoneView::default();
    login.login.url = "wss://switchboard.example:8443".into();
    login.login.user = "maria".into();
    login.login.error = Some(LoginError::BadCredentials);
    scenes.push(("1-login", login));

    let mut ringing = logged_in_view(Role::Agent);
    offer_call(&mut ringing);
    ringing.now_ms = NOW_MS + 6_000;
    ringing.notices.push(Notice {
        id: 1,
        level: NoticeLevel::Warning,
        text: "Remembered microphone 'Jabra Evolve2 65' is gone; using the default.".into(),
    });
    scenes.push(("2-ringing", ringing));

    let mut in_call = logged_in_view(Role::Agent);
    let ringing = ringing_call();
    in_call.now_ms = NOW_MS + 192_000;
    in_call.agent.as_mut().unwrap().state = AgentState::OnCall;
    in_call.agent.as_mut().unwrap().monitored = true;
    in_call.call = CallView::InCall(ActiveCall {
        call_id: ringing.call_id.clone(),
        caller: ringing.caller.clone(),
        queue: ringing.queue.clone(),
        answered_at_ms: NOW_MS,
        muted: true,
        held_since_ms: None,
        mic_level_dbfs: -18.0,
        speaker_level_dbfs: -9.0,
        voice: VoiceStats {
            loss_pct: 1.4,
            jitter_ms: 22.0,
            concealment_pct: 1.1,
        },
        dtmf_sent: "1#".into(),
        origin: Some(CallOrigin {
            kind: OriginKind::BlindTransfer,
            from: Some("Jon Ander".into()),
            notes: "Billing question, already verified".into(),
        }),
        consult: None,
    });
    in_call.draft = DispositionDraft {
        call_id: "call-42".into(),
        notes: "Duplicate charge on the November invoice; refund requested.".into(),
        ..DispositionDraft::default()
    };
    scenes.push(("3-in-call", in_call.clone()));
    let mut consulting = in_call.clone();
    if let CallView::InCall(call) = &mut consulting.call {
        call.consult = Some(ConsultView {
            colleague: "Lea Weber".into(),
            kind: ConsultKind::WarmTransfer,
            phase: ConsultPhase::Connected,
        });
    }
    scenes.push(("3b-consulting", consulting));

    let mut wrap_up = in_call;
    wrap_up.agent.as_mut().unwrap().state = AgentState::WrapUp;
    wrap_up.agent.as_mut().unwrap().monitored = false;
    wrap_up.call = CallView::WrapUp(WrapUpCall {
        call_id: "call-42".into(),
        caller: ringing.caller.clone(),
        queue: "Billing".into(),
        talk_ms: 192_000,
        acw_deadline_ms: Some(NOW_MS + 192_000 + 48_000),
    });
    wrap_up.draft.code = Some("BILLING".into());
    wrap_up.draft.resolution = Some(Resolution::FollowUp);
    wrap_up.draft.follow_up_text = "2026-11-24".into();
    wrap_up.draft_status = DraftStatus::Saved;
    scenes.push(("4-wrap-up", wrap_up));

    let mut history = logged_in_view(Role::Agent);
    history.tab = Tab::History;
    history.history.today = caller_with_history().history;
    history.history.search_text = "600 123".into();
    history.history.search = Some(HistorySearch {
        query: "600 123".into(),
        in_progress: false,
        results: caller_with_history().history,
    });
    history.history.callbacks = vec![PendingCallback {
        callback_id: "cb-1".into(),
        number: "+34 600 123 456".into(),
        name: Some("Ana Ruiz".into()),
        queue: "Billing".into(),
        due_ms: NOW_MS - 60_000,
        due_text: "2026-11-24 09:30".into(),
        notes: "Confirm the refund arrived".into(),
        dialing: false,
    }];
    scenes.push(("5-history", history));

    let mut settings = logged_in_view(Role::Agent);
    settings.tab = Tab::Settings;
    settings.settings = SettingsView {
        microphones: vec!["Jabra Evolve2 40".into(), "Built-in microphone".into()],
        speakers: vec!["Jabra Evolve2 40".into(), "Desk speakers".into()],
        microphone: Some("Jabra Evolve2 65".into()),
        speaker: Some("Jabra Evolve2 40".into()),
        ringer: Some("Desk speakers".into()),
        noise_suppression: true,
        auto_gain: false,
        desktop_notifications: true,
        test_tone_playing: false,
        mic_test_level_dbfs: Some(-24.0),
    };
    scenes.push(("6-settings", settings));

    let mut wallboard = supervisor_view();
    wallboard.tab = Tab::Wallboard;
    wallboard.agent.as_mut().unwrap().state = AgentState::Available;
    scenes.push(("7-wallboard", wallboard));

    let mut reports = supervisor_view();
    reports.tab = Tab::Reports;
    reports.reports.from_text = "2026-11-01".into();
    reports.reports.to_text = "2026-11-30".into();
    reports.reports.table = Some(ReportTable {
        columns: vec![
            "Agent".into(),
            "Handled".into(),
            "AHT".into(),
            "CSAT".into(),
        ],
        rows: vec![
            vec![
                "Jon Ander".into(),
                "412".into(),
                "5:02".into(),
                "4.4".into(),
            ],
            vec![
                "Lea Weber".into(),
                "388".into(),
                "6:11".into(),
                "4.1".into(),
            ],
        ],
    });
    scenes.push(("8-reports", reports));
    scenes
}

#[test]
#[ignore = "writes pictures for a person to look at"]
fn screenshots() {
    for dark in [true, false] {
        let mut painter = Painter::new(dark);
        for (name, mut view) in scenes() {
            let pixels = painter.frame(&mut view);
            let theme = if dark { "dark" } else { "light" };
            write_ppm(&format!("{name}-{theme}"), &pixels);
        }
    }
}
